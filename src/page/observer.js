// The script report-only pages get instead of the page script (rollout.mode: report_only,
// see src/page/script.rs). It leaves the page's Intercom code alone: every call goes
// through unchanged. It only notes how the Messenger boots, by the verdict classes of
// `audit` (src/audit/classify.rs: none, anonymous, jwt, user_hash, insecure), and sends
// the page's worst verdict with the names of the identifying fields given in clear,
// never a value, once per page view, with navigator.sendBeacon to the proxy.
// Pages get it minified by terser (src/page/min/observer.js): run `make page-js` after a change.
// Parameters (c): p the report path, s the identifying fields (user_id, email).
(function (w, c) {
if (w.__intercomSecureProxy || typeof Proxy !== 'function' || !w.navigator || !w.navigator.sendBeacon || !w.JSON) { return; }
w.__intercomSecureProxy = 1;
var VERDICTS = ['none', 'anonymous', 'jwt', 'user_hash', 'insecure'];
// Each Messenger booted so far, by which fields it was given (1) or given empty (0): no values.
var messengers = [];
var running = null;
// Updates before a boot, which the widget merges into it.
var waiting = {};
// A boot was called on the loader's stub: the widget boots with it, not with intercomSettings.
var queuedBoot = false;
var given = function (v) { return (typeof v === 'string' && v !== '') || typeof v === 'number'; };
var names = c.s.concat(['user_hash', 'intercom_user_jwt']);
var merge = function (into, s) {
  if (!s || typeof s !== 'object') { return into; }
  for (var n = 0; n < names.length; n++) {
    if (names[n] in s) { into[names[n]] = given(s[names[n]]) ? 1 : 0; }
  }
  return into;
};
var note = function (method, s) {
  if (method === 'boot') {
    running = merge(merge({}, s), waiting);
    waiting = {};
    messengers.push(running);
  } else if (method === 'update') {
    merge(running || waiting, s);
  } else if (method === 'shutdown') {
    running = null;
    waiting = {};
  }
};
// As audit classifies a Messenger: a token wins, then user_hash with a field in clear, then a field in clear.
var verdict = function (m) {
  var clear = [];
  for (var n = 0; n < c.s.length; n++) { if (m[c.s[n]]) { clear.push(c.s[n]); } }
  var v = m.intercom_user_jwt ? 2 : m.user_hash && clear.length ? 3 : clear.length ? 4 : 1;
  return { v: v, f: clear };
};
var wrapped = typeof WeakSet === 'function' ? new WeakSet() : null;
var wrap = function (f) {
  if (typeof f !== 'function' || !wrapped || wrapped.has(f)) { return f; }
  var stub = !!(f.q && typeof f.q.length === 'number');
  if (!stub) {
// The widget itself: with no boot queued, it boots with intercomSettings.
    var s = w.intercomSettings;
    if (!queuedBoot && s && typeof s === 'object' && s.app_id) { note('boot', s); }
    queuedBoot = false;
  }
  var p = new Proxy(f, { apply: function (t, self, args) {
    try {
      note(args[0], args[1]);
      if (args[0] === 'boot' && stub) { queuedBoot = true; }
    } catch (e) {}
    return Reflect.apply(t, self, args);
  } });
  wrapped.add(p);
  return p;
};
var intercom = wrap(w.Intercom);
try {
  Object.defineProperty(w, 'Intercom', { configurable: true, enumerable: true,
    get: function () { return intercom; }, set: function (v) { intercom = wrap(v); } });
} catch (e) { return; }
var sent = false;
var send = function () {
  if (sent) { return; }
  sent = true;
// The page's worst Messenger, the first of equals.
  var worst = { v: 0, f: [] };
  for (var n = 0; n < messengers.length; n++) {
    var m = verdict(messengers[n]);
    if (m.v > worst.v) { worst = m; }
  }
  try { w.navigator.sendBeacon(c.p, JSON.stringify({ verdict: VERDICTS[worst.v], fields: worst.f })); } catch (e) {}
};
// Once per page view: when it is left or hidden, or a while after it loaded.
w.addEventListener('pagehide', send);
document.addEventListener('visibilitychange', function () { if (document.visibilityState === 'hidden') { send(); } });
var later = function () { setTimeout(send, 3000); };
if (document.readyState === 'complete') { later(); } else { w.addEventListener('load', later); }
})
