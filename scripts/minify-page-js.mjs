// Minifies src/page/page.js (the readable source) into what the proxy serves, with
// terser from tests/browser/node_modules. page.js has two optional blocks, and every
// byte of the script is sent with every page, so each page gets a script without the
// blocks that cannot run there:
//   shutdown  `if (c.x) {…}`  clears Intercom's cookies and storage and queues the
//                            `shutdown`: only pages that run a shutdown first;
//   auto      `if (c.i) {…}`  adds the official loader: only with `inject.auto_include`.
// Four files, src/page/min/{live,shutdown}{,-auto}.js: the block's opening becomes
// `if (true) {` or `if (false) {`, and terser drops what is dead.
//
//   node scripts/minify-page-js.mjs           # rewrite them (`make page-js`)
//   node scripts/minify-page-js.mjs --check   # exit 1 if any is out of date
//
// page.js is one function expression: the proxy appends its call, `(window,{…})`, so
// the output keeps it an expression (no trailing `;`, not dropped as unused).
// src/page/observer.js, what report-only pages get instead, is minified the same way
// into src/page/min/observer.js.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, "tests/browser/package.json"));
const { minify } = require("terser");

const source = readFileSync(join(root, "src/page/page.js"), "utf8");

// Each block's opening, found exactly once.
const SHUTDOWN = "if (c.x) {";
const AUTO = "if (c.i) {";
for (const opening of [SHUTDOWN, AUTO]) {
  if (source.split(opening).length !== 2) {
    console.error(`minify-page-js: page.js must open a block with \`${opening}\` exactly once`);
    process.exit(1);
  }
}

async function minified(js) {
  const result = await minify(js, {
    compress: { expression: true },
    mangle: true,
    format: { ascii_only: true },
  });
  const code = result.code.replace(/;$/, "");
  if (!code.startsWith("(function(") || !code.endsWith("})")) {
    console.error("minify-page-js: the output is not one function expression");
    process.exit(1);
  }
  return code;
}

const outputs = [];
for (const shutdown of [false, true]) {
  for (const auto of [false, true]) {
    const js = source
      .replace(SHUTDOWN, `if (${shutdown}) {`)
      .replace(AUTO, `if (${auto}) {`);
    const name = `src/page/min/${shutdown ? "shutdown" : "live"}${auto ? "-auto" : ""}.js`;
    outputs.push([name, await minified(js)]);
  }
}
const observer = readFileSync(join(root, "src/page/observer.js"), "utf8");
outputs.push(["src/page/min/observer.js", await minified(observer)]);
for (const [path, code] of outputs) {
  const target = join(root, path);
  if (process.argv.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(target, "utf8");
    } catch {}
    if (current !== code) {
      console.error(`${path} is not page.js minified: run \`make page-js\``);
      process.exit(1);
    }
  } else {
    writeFileSync(target, code);
  }
}
