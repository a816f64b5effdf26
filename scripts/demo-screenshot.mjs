// Redraws docs/demo-direct-vs-proxy.png, the README's picture of `make demo`: alice's
// home page straight from the sample app and through the proxy, side by side, each with
// the panel of what the page handed the Messenger.
//
//   make demo-screenshot                                   # builds the release binary first
//   node scripts/demo-screenshot.mjs [BINARY] [OUT.png]
//
// It starts `BINARY demo` (default target/release/intercom-secure-proxy) on make demo's
// ports, 3000 and 8080 (DEMO_APP_PORT, DEMO_PROXY_PORT to change them), so stop a running
// `make demo` first. Headless Chromium (INTERCOM_TEST_CHROMIUM, default /usr/bin/chromium)
// with playwright-core from tests/browser/node_modules. Only loopback is reached: the
// real widget is not loaded, so the pictures show no Messenger launcher.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { connect } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, "tests/browser/package.json"));
const { chromium } = require("playwright-core");

const binary = process.argv[2] || join(root, "target/release/intercom-secure-proxy");
const out = process.argv[3] || join(root, "docs/demo-direct-vs-proxy.png");
const appPort = Number(process.env.DEMO_APP_PORT || 3000);
const proxyPort = Number(process.env.DEMO_PROXY_PORT || 8080);

const listening = (port) =>
  new Promise((resolve) => {
    const s = connect(port, "127.0.0.1", () => { s.destroy(); resolve(true); });
    s.on("error", () => resolve(false));
  });

// INTERCOM_SECRET unset: the demo signs with its documented default secret.
const env = { ...process.env };
delete env.INTERCOM_SECRET;
const demo = spawn(binary, ["demo", "--app-port", String(appPort), "--proxy-port", String(proxyPort)], { env, stdio: ["ignore", "ignore", "pipe"] });
// Its log is shown only when it exits early (a port in use, say).
let log = "";
demo.stderr.on("data", (chunk) => { log += chunk; });
let exited = null;
demo.on("exit", (code) => { exited = code; });

// Alice's home page on `port`, logged in with the form as a user does: a PNG.
async function home(browser, port) {
  const context = await browser.newContext({ viewport: { width: 600, height: 420 } });
  await context.route("**/*", (route) => (new URL(route.request().url()).hostname === "127.0.0.1" ? route.continue() : route.abort()));
  const page = await context.newPage();
  await page.goto(`http://127.0.0.1:${port}/login`);
  await page.fill("input[name=username]", "alice");
  await Promise.all([page.waitForURL(`http://127.0.0.1:${port}/`), page.click("button")]);
  await page.waitForSelector("#messenger table");
  const png = await page.screenshot();
  await context.close();
  return png.toString("base64");
}

try {
  for (let tries = 0; !((await listening(appPort)) && (await listening(proxyPort))); tries++) {
    if (exited !== null) throw new Error(`the demo exited (${exited}):\n${log}`);
    if (tries > 200) throw new Error("the demo did not listen within 20 s");
    await new Promise((r) => setTimeout(r, 100));
  }
  const browser = await chromium.launch({ executablePath: process.env.INTERCOM_TEST_CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
  try {
    const [direct, proxied] = [await home(browser, appPort), await home(browser, proxyPort)];
    const side = (title, png) =>
      `<figure><figcaption>${title}</figcaption><img src="data:image/png;base64,${png}"></figure>`;
    const page = await browser.newPage({ viewport: { width: 1250, height: 480 } });
    await page.setContent(
      `<!DOCTYPE html><style>body{margin:0;display:flex;gap:10px;padding:10px;font:15px sans-serif;background:#ddd}` +
        `figure{margin:0}figcaption{padding:4px 0 6px}img{display:block;border:1px solid #999}</style>` +
        side(`<b>http://127.0.0.1:${appPort}/</b>: the app itself`, direct) +
        side(`<b>http://127.0.0.1:${proxyPort}/</b>: through the proxy`, proxied),
    );
    await page.screenshot({ path: out, fullPage: true });
    console.log(`wrote ${out}`);
  } finally {
    await browser.close();
  }
} finally {
  // Its graceful shutdown takes a second: wait, so the ports are free when this ends.
  if (exited === null) {
    await new Promise((resolve) => { demo.on("exit", resolve); demo.kill(); });
  }
}
