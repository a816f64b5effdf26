// Minifies src/page/page.js (the readable source) into src/page/page.min.js (what the
// proxy serves, in every rewritten page), with terser from tests/browser/node_modules.
//
//   node scripts/minify-page-js.mjs           # rewrite page.min.js (`make page-js`)
//   node scripts/minify-page-js.mjs --check   # exit 1 if page.min.js is out of date
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

const source = join(root, "src/page/page.js");
const target = join(root, "src/page/page.min.js");

const result = await minify(readFileSync(source, "utf8"), {
  compress: { expression: true },
  mangle: true,
  format: { ascii_only: true },
});
const code = result.code.replace(/;$/, "");
if (!code.startsWith("(function(") || !code.endsWith("})")) {
  console.error("minify-page-js: the output is not one function expression");
  process.exit(1);
}

if (process.argv.includes("--check")) {
  let current = "";
  try {
    current = readFileSync(target, "utf8");
  } catch {}
  if (current !== code) {
    console.error("src/page/page.min.js is not page.js minified: run `make page-js`");
    process.exit(1);
  }
} else {
  writeFileSync(target, code);
}
