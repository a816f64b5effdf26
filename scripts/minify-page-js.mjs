// Minifies src/page/page.js (the readable source) into what the proxy serves, with
// terser from tests/browser/node_modules:
//   src/page/page.min.js        the whole script, for pages that run a shutdown first;
//   src/page/page-live.min.js   without the shutdown block (`if (c.x) {…}`), for every
//                               other page: that block never runs there, and every
//                               byte of the script is sent with every page.
//
//   node scripts/minify-page-js.mjs           # rewrite both (`make page-js`)
//   node scripts/minify-page-js.mjs --check   # exit 1 if either is out of date
//
// page.js is one function expression: the proxy appends its call, `(window,{…})`, so
// the output keeps it an expression (no trailing `;`, not dropped as unused).
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, "tests/browser/package.json"));
const { minify } = require("terser");

const source = readFileSync(join(root, "src/page/page.js"), "utf8");

// The shutdown block's opening, found exactly once: `false` there lets terser drop
// the block as dead code.
const SHUTDOWN = "if (c.x) {";
if (source.split(SHUTDOWN).length !== 2) {
  console.error(`minify-page-js: page.js must open its shutdown block with \`${SHUTDOWN}\` exactly once`);
  process.exit(1);
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

const outputs = [
  ["src/page/page.min.js", await minified(source)],
  ["src/page/page-live.min.js", await minified(source.replace(SHUTDOWN, "if (false) {"))],
];
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
