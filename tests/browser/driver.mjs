#!/usr/bin/env node
// Headless-Chromium driver for the Rust integration tests.
//
//   node driver.mjs SCENARIO.json      (or: node driver.mjs - < SCENARIO.json)
//
// Runs every step of the scenario in one browser context (one cookie jar) and
// one page, serving src/audit/standin-widget.js in place of the Intercom widget, and
// prints one JSON object {"steps": [...]} on stdout. See README.md.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
// Shared with `intercom-secure-proxy audit`, which embeds it.
const WIDGET_SOURCE = readFileSync(join(HERE, '..', '..', 'src', 'audit', 'standin-widget.js'), 'utf8');

const CHROMIUM = process.env.INTERCOM_TEST_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const DEFAULT_TIMEOUT_MS = 8000;
const SETTLE_MS = 300;
const POLL_MS = 50;
const WAITS = new Set(['load', 'boot', 'shutdown', 'update']);
const TABS = new Set(['main', 'other']);
const FORM_FROM = new Set(['auto', 'current', 'blank', 'origin']);
// Path fulfilled by the driver itself (never sent to the server) when a form
// must be submitted from a page on the target origin (formFrom: "origin").
const FORM_PAGE_PATH = '/__intercom_test_driver_form__';

// ---------------------------------------------------------------- scenario

function readScenario() {
  const arg = process.argv[2];
  const text = !arg || arg === '-' ? readFileSync(0, 'utf8') : readFileSync(arg, 'utf8');
  let scenario;
  try {
    scenario = JSON.parse(text);
  } catch (e) {
    throw new Error(`scenario is not valid JSON: ${e.message}`);
  }
  if (!scenario || !Array.isArray(scenario.steps)) {
    throw new Error('scenario must be an object with a "steps" array');
  }
  return scenario.steps.map((step, i) => normalizeStep(step, i));
}

function normalizeStep(step, i) {
  const where = `steps[${i}]`;
  if (!step || typeof step !== 'object') throw new Error(`${where} must be an object`);
  const tab = step.tab ?? 'main';
  if (!TABS.has(tab)) throw new Error(`${where}.tab must be main or other`);
  const stay = step.stay === true;
  if (stay) {
    const waitFor = step.waitFor ?? null;
    if (waitFor !== null && typeof waitFor !== 'string') throw new Error(`${where}.waitFor must be a JavaScript expression`);
    const wait = step.wait ?? (waitFor ? 'none' : 'load');
    if (!(WAITS.has(wait) || wait === 'none') || wait === 'load') throw new Error(`${where}: a stay step waits for boot, shutdown, update or waitFor`);
    const fill = step.fill ?? {};
    if (typeof fill !== 'object' || Array.isArray(fill)) throw new Error(`${where}.fill must map selectors to values`);
    const click = step.click ?? null;
    if (click !== null && typeof click !== 'string') throw new Error(`${where}.click must be a selector`);
    const timeoutMs = step.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error(`${where}.timeoutMs must be a positive number`);
    const count = step.count ?? 1;
    const wakeAfterMs = step.wakeAfterMs ?? 0;
    if (!Number.isFinite(wakeAfterMs) || wakeAfterMs < 0) throw new Error(`${where}.wakeAfterMs must be a number of milliseconds`);
    return { stay, tab, wait, timeoutMs, count, wakeAfterMs, settleMs: step.settleMs ?? SETTLE_MS, fill, click, waitFor, eval: evalOf(step, where) };
  }
  if (typeof step.goto !== 'string' || !step.goto) throw new Error(`${where}.goto must be a URL string`);
  let url;
  try {
    url = new URL(step.goto);
  } catch {
    throw new Error(`${where}.goto is not an absolute URL: ${step.goto}`);
  }
  const wait = step.wait ?? 'load';
  if (!WAITS.has(wait)) throw new Error(`${where}.wait must be one of load, boot, shutdown, update`);
  const method = String(step.method ?? (step.form ? 'POST' : 'GET')).toUpperCase();
  if (method !== 'GET' && method !== 'POST') throw new Error(`${where}.method must be GET or POST`);
  const timeoutMs = step.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error(`${where}.timeoutMs must be a positive number`);
  const form = step.form ?? {};
  if (typeof form !== 'object' || Array.isArray(form)) throw new Error(`${where}.form must be an object`);
  const fields = [];
  for (const [name, value] of Object.entries(form)) {
    for (const v of Array.isArray(value) ? value : [value]) fields.push([name, v == null ? '' : String(v)]);
  }
  const formFrom = step.formFrom ?? 'auto';
  if (!FORM_FROM.has(formFrom)) throw new Error(`${where}.formFrom must be one of auto, current, blank, origin`);
  const settleMs = step.settleMs ?? SETTLE_MS;
  const installClock = step.installClock === true;
  return { url: url.href, origin: url.origin, wait, method, timeoutMs, fields, formFrom, settleMs, tab, stay, count: 1, installClock, eval: evalOf(step, where) };
}

// A step's `eval`: a JavaScript expression to evaluate in the page once it settled.
function evalOf(step, where) {
  if (step.eval === undefined) return undefined;
  if (typeof step.eval !== 'string' || !step.eval) throw new Error(`${where}.eval must be a JavaScript expression`);
  return step.eval;
}

// ---------------------------------------------------------------- routing

function isLocalHost(hostname) {
  return (
    hostname === 'localhost' ||
    hostname.endsWith('.localhost') ||
    /^127(\.\d{1,3}){3}$/.test(hostname) ||
    hostname === '[::1]'
  );
}

function classify(urlString) {
  let u;
  try {
    u = new URL(urlString);
  } catch {
    return 'block';
  }
  if (u.protocol === 'https:' && u.hostname === 'widget.intercom.io' && u.pathname.startsWith('/widget/')) {
    return 'widget';
  }
  if ((u.protocol === 'http:' || u.protocol === 'https:' || u.protocol === 'ws:' || u.protocol === 'wss:') && isLocalHost(u.hostname)) {
    return 'local';
  }
  return 'block';
}

// ---------------------------------------------------------------- in-page helpers

// Installed in every document before any page script runs.
function installCspRecorder() {
  document.addEventListener(
    'securitypolicyviolation',
    (e) =>
      (window.__cspViolations ||= []).push({
        directive: e.violatedDirective,
        effective: e.effectiveDirective,
        blocked: e.blockedURI,
        sample: e.sample,
        disposition: e.disposition,
      }),
    true,
  );
}

function pageHasCall([method, count]) {
  const s = window.__intercom;
  return !!(s && Array.isArray(s.calls) && s.calls.filter((c) => c && c.method === method).length >= count);
}

function collectInPage() {
  const copy = (x) => {
    try {
      const s = JSON.stringify(x);
      return s === undefined ? null : JSON.parse(s);
    } catch {
      return null;
    }
  };
  let intercomSettings = null;
  try {
    intercomSettings = copy(window.intercomSettings);
  } catch {
    intercomSettings = null;
  }
  const state = copy(window.__intercom) || {};
  let documentCookie = '';
  try {
    documentCookie = document.cookie;
  } catch {
    documentCookie = '';
  }
  return {
    calls: Array.isArray(state.calls) ? state.calls : [],
    loads: typeof state.loads === 'number' ? state.loads : 0,
    widgetAppId: state.widgetAppId ?? null,
    intercomSettings,
    documentCookie,
    cspViolations: copy(window.__cspViolations) || [],
  };
}

// The page's value of `expression` as JSON text (undefined as null), or the error it
// threw. Evaluated by the debugger, so the page's CSP does not apply.
function evalSource(expression) {
  return `(() => { try { const s = JSON.stringify((${expression})); return s === undefined ? 'null' : s; } catch (e) { return JSON.stringify({ evalError: String(e) }); } })()`;
}

function submitForm({ action, fields }) {
  const form = document.createElement('form');
  form.setAttribute('method', 'post');
  form.setAttribute('action', action);
  form.setAttribute('enctype', 'application/x-www-form-urlencoded');
  form.style.display = 'none';
  for (const [name, value] of fields) {
    const input = document.createElement('input');
    input.type = 'hidden';
    input.name = name;
    input.value = value;
    form.appendChild(input);
  }
  (document.body || document.documentElement).appendChild(form);
  // Not form.submit(): a field named "submit" would shadow it.
  HTMLFormElement.prototype.submit.call(form);
}

// ---------------------------------------------------------------- helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const isTimeout = (e) => e && (e.name === 'TimeoutError' || /Timeout \d+ms exceeded/.test(String(e.message)));

function originOf(url) {
  try {
    const o = new URL(url).origin;
    return o === 'null' ? null : o;
  } catch {
    return null;
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// page.evaluate, bounded in time (an evaluate can block while a navigation
// hangs) and retried while the page is between documents.
async function evaluateSettled(page, fn, arg, deadline) {
  for (;;) {
    try {
      return await withTimeout(page.evaluate(fn, arg), Math.max(1, deadline - Date.now()), 'page.evaluate');
    } catch (e) {
      const transient = /Execution context was destroyed|navigat|Cannot find context/i.test(String(e.message));
      if (!transient || Date.now() >= deadline) throw e;
      await sleep(POLL_MS);
    }
  }
}

// ---------------------------------------------------------------- one step

async function runStep(page, context, cdp, step, events) {
  const started = Date.now();
  const deadline = started + step.timeoutMs;
  events.reset();
  let status = null;
  let timedOut = false;
  let navigationError = null;
  let formSubmittedFrom = null;

  try {
    if (step.installClock) {
      // Playwright's fake clock for the whole context; time keeps flowing until a step moves it.
      await context.clock.install();
    }
    if (step.stay) {
      // No navigation: keep watching the document the tab already shows. With
      // wakeAfterMs, the machine "slept": the clock jumps without firing timers, and
      // the tab is shown again.
      if (step.wakeAfterMs > 0) {
        const now = await page.evaluate(() => Date.now());
        await page.clock.setSystemTime(now + step.wakeAfterMs);
        await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
      }
      // In-page actions, as a user does them: a soft navigation stays in this document.
      for (const [selector, value] of Object.entries(step.fill)) {
        await page.fill(selector, String(value), { timeout: Math.max(1, deadline - Date.now()) });
      }
      if (step.click) await page.click(step.click, { timeout: Math.max(1, deadline - Date.now()) });
    } else if (step.method === 'GET') {
      const response = await page.goto(step.url, {
        waitUntil: step.wait === 'load' ? 'load' : 'domcontentloaded',
        timeout: step.timeoutMs,
      });
      status = response ? response.status() : events.lastNavigationStatus();
    } else {
      let from = step.formFrom;
      if (from === 'auto') from = originOf(page.url()) === step.origin ? 'current' : 'blank';
      formSubmittedFrom = from;
      if (from === 'blank') {
        await page.goto('about:blank', { timeout: step.timeoutMs });
      } else if (from === 'origin') {
        await page.goto(step.origin + FORM_PAGE_PATH, { waitUntil: 'load', timeout: step.timeoutMs });
      }
      events.reset(); // the form page is not part of what the step observes
      const navigated = page.waitForEvent('framenavigated', {
        predicate: (f) => f === page.mainFrame(),
        timeout: step.timeoutMs,
      });
      navigated.catch(() => {});
      await page.evaluate(submitForm, { action: step.url, fields: step.fields });
      await navigated;
      await page.waitForLoadState(step.wait === 'load' ? 'load' : 'domcontentloaded', {
        timeout: Math.max(1, deadline - Date.now()),
      });
      status = events.lastNavigationStatus();
    }
  } catch (e) {
    if (isTimeout(e)) timedOut = true;
    else navigationError = String(e.message || e).split('\n')[0];
    status ??= events.lastNavigationStatus();
    // A navigation that is still pending would block everything after it.
    await withTimeout(cdp.send('Page.stopLoading'), 2000, 'Page.stopLoading').catch(() => {});
  }

  if (!navigationError && step.waitFor) {
    let seen = false;
    while (!seen && Date.now() < deadline) {
      seen = await withTimeout(page.evaluate(step.waitFor), Math.max(1, deadline - Date.now()), 'waitFor').catch(() => false);
      if (!seen) await sleep(POLL_MS);
    }
    if (!seen) timedOut = true;
  }
  if (!navigationError && step.wait !== 'load' && step.wait !== 'none') {
    let seen = false;
    while (!seen && Date.now() < deadline) {
      try {
        seen = await withTimeout(page.evaluate(pageHasCall, [step.wait, step.count]), Math.max(1, deadline - Date.now()), 'poll');
      } catch {
        seen = false; // between documents; try again
      }
      if (!seen) await sleep(POLL_MS);
    }
    if (!seen) timedOut = true;
  }

  await sleep(step.settleMs);

  const empty = {
    calls: [],
    loads: 0,
    widgetAppId: null,
    intercomSettings: null,
    documentCookie: '',
    cspViolations: [],
  };
  // If no new document was committed, the page still shows the previous
  // step's document: report nothing from it.
  const committed = step.stay || events.committed();
  const inPage = committed
    ? await evaluateSettled(page, collectInPage, undefined, Date.now() + 5000).catch((e) => ({
        ...empty,
        collectError: String(e.message || e).split('\n')[0],
      }))
    : empty;
  const cookies = (await context.cookies()).map((c) => ({
    name: c.name,
    value: c.value,
    domain: c.domain,
    path: c.path,
    expires: c.expires,
    httpOnly: c.httpOnly,
    secure: c.secure,
    sameSite: c.sameSite,
  }));

  const result = {
    url: page.url(),
    status,
    calls: inPage.calls,
    loads: inPage.loads,
    widgetAppId: inPage.widgetAppId,
    intercomSettings: inPage.intercomSettings,
    documentCookie: inPage.documentCookie,
    cookies,
    cspViolations: inPage.cspViolations,
    consoleErrors: events.consoleErrors(),
    pageErrors: [...events.pageErrors],
    failedRequests: events.failedRequests(),
    blockedRequests: [...events.blocked],
    timedOut,
    committed,
    navigationError,
    formSubmittedFrom,
    elapsedMs: Date.now() - started,
  };
  if (inPage.collectError) result.collectError = inPage.collectError;
  if (step.eval !== undefined) {
    result.evalResult = committed
      ? await evaluateSettled(page, evalSource(step.eval), undefined, Date.now() + 5000).then(
          (text) => JSON.parse(text),
          (e) => ({ evalError: String(e.message || e).split('\n')[0] }),
        )
      : null;
  }
  return result;
}

// ---------------------------------------------------------------- main

async function main() {
  const steps = readScenario();

  // Watchdog: never let a hung browser hang the Rust test run.
  const budget = steps.reduce((sum, s) => sum + s.timeoutMs + s.settleMs + 10000, 30000);
  const watchdog = setTimeout(() => {
    process.stderr.write(`driver: gave up after ${budget} ms\n`);
    process.exit(1); // playwright-core kills the browser it launched on exit
  }, budget);
  watchdog.unref();

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30000,
  });
  try {
    // Test servers use self-signed certificates (tests/tls.rs).
    const context = await browser.newContext({ serviceWorkers: 'block', ignoreHTTPSErrors: true });
    await context.addInitScript(installCspRecorder);

    const blocked = [];
    await context.route('**/*', async (route) => {
      const url = route.request().url();
      try {
        switch (classify(url)) {
          case 'widget':
            await route.fulfill({
              status: 200,
              contentType: 'application/javascript; charset=utf-8',
              headers: { 'cache-control': 'no-store', 'access-control-allow-origin': '*' },
              body: WIDGET_SOURCE,
            });
            return;
          case 'local': {
            const u = new URL(url);
            if (u.pathname === FORM_PAGE_PATH && route.request().isNavigationRequest()) {
              await route.fulfill({
                status: 200,
                contentType: 'text/html; charset=utf-8',
                body: '<!doctype html><title>form</title><body></body>',
              });
              return;
            }
            await route.continue();
            return;
          }
          default:
            blocked.push(url);
            await route.abort('blockedbyclient');
        }
      } catch {
        // the page went away while the request was in flight
      }
    });

    const tabs = {};
    const results = [];
    for (const step of steps) {
      // A second tab of the same browser context (same cookies), opened on first use.
      tabs[step.tab] ||= await openTab(context, blocked);
      const { page, cdp, events } = tabs[step.tab];
      results.push(await runStep(page, context, cdp, step, events));
    }
    const out = JSON.stringify({ steps: results }) + '\n';
    await new Promise((resolve) => process.stdout.write(out, resolve));
  } finally {
    await browser.close().catch(() => {});
  }
}

// One tab and the events its steps report.
async function openTab(context, blocked) {
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  page.setDefaultTimeout(DEFAULT_TIMEOUT_MS);

  const consoleErrors = [];
  const pageErrors = [];
  const failedRequests = [];
  let navStatus = null;
  let committed = false;
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) committed = true;
  });
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const location = msg.location() || {};
    consoleErrors.push({ text: msg.text(), url: location.url || null });
  });
  page.on('pageerror', (err) => pageErrors.push(String(err && err.message ? err.message : err)));
  // Network and decoding failures (net::ERR_CONTENT_DECODING_FAILED,
  // net::ERR_INVALID_CHUNKED_ENCODING, a reset connection, ...) of any request.
  page.on('requestfailed', (request) => {
    const failure = request.failure();
    failedRequests.push({
      url: request.url(),
      errorText: failure ? failure.errorText : null,
      resourceType: request.resourceType(),
      navigation: request.isNavigationRequest(),
    });
  });
  page.on('response', (response) => {
    const request = response.request();
    if (request.isNavigationRequest() && request.frame() === page.mainFrame()) navStatus = response.status();
  });
  page.on('dialog', (dialog) => dialog.dismiss().catch(() => {}));

  const events = {
    reset() {
      consoleErrors.length = 0;
      pageErrors.length = 0;
      failedRequests.length = 0;
      blocked.length = 0;
      navStatus = null;
      committed = false;
    },
    committed: () => committed,
    lastNavigationStatus: () => navStatus,
    pageErrors,
    blocked,
    // Requests the driver aborted itself are reported in blockedRequests instead.
    failedRequests: () => failedRequests.filter((f) => !(f.errorText === 'net::ERR_BLOCKED_BY_CLIENT' && blocked.includes(f.url))),
    // A request the driver aborted shows up as a console error too; those are
    // reported in blockedRequests instead.
    consoleErrors: () =>
      consoleErrors
        .filter((m) => !(/ERR_BLOCKED_BY_CLIENT/.test(m.text) && (m.url === null || blocked.includes(m.url))))
        .map((m) => m.text),
  };
  return { page, cdp, events };
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`driver: ${e && e.stack ? e.stack : e}\n`);
    process.exit(1);
  },
);
