// The script the proxy puts before the first script of a page (see src/page/script.rs).
// Pages get it minified by terser, without the blocks that cannot run there
// (src/page/min/): run `make page-js` after a change.
// Parameters (c): a app_id, b api_base, s identifying fields always stripped,
// k cookie domain, l widget URL, n Intercom's cookie name prefixes, r the token refresh path (null: none),
// g refresh this many seconds before the token expires, j the signed token (null when there is none),
// h user_id, email and user_hash to give in the clear (intercom.mode user_hash or both; else null),
// d what the page is: 0 the proxy knows who the session is (a user, or nobody), 1 the
// proxy could not tell (defer: hold the Messenger and ask), 2 strip only (never ask).
// Two blocks are switched by the script served, not by a parameter: `if (c.x)`, a shutdown
// first (after a logout or a user switch), and `if (c.i)`, auto-include; the proxy gives
// only the parameters its script reads (k and n for the shutdown, l for either block).
(function (w, c) {
if (w.__intercomSecureProxy) { return; }
w.__intercomSecureProxy = 1;
var d = document;
var ours = null;
var nonce = d.currentScript && (d.currentScript.nonce || d.currentScript.getAttribute('nonce'));
var claims = function (t) {
  try {
    var p = t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(p + '==='.slice((p.length + 3) % 4)));
  } catch (e) { return null; }
};
// Whose Messenger this tab runs, by the user_id the proxy vouched for (the token's or the plain one).
var who = c.j ? (claims(c.j) || {}).user_id : c.h ? c.h.user_id : null;
// Tokens this script handed out: taken back from the page's settings when none is confirmed.
var mine = [];
// The proxy is being asked who the session is now: Intercom calls wait for the answer.
var pending = false;
// Page settings hidden while pending (so nothing boots from them): booted once answered.
var hidden = false;
// This script shut the Messenger down: the next update must boot it again.
var down = false;
var held = [];
var reported = false;
var report = function (id) {
// A page booting another workspace gets a token it cannot use: tell the proxy once (app ids are not secret).
  if (reported || !c.r || !w.fetch || typeof id !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(id)) { return; }
  reported = true;
  w.fetch(c.r, { credentials: 'same-origin', cache: 'no-store', headers: { 'X-Intercom-Secure-Proxy-App-Id': id } }).catch(function () {});
};
// The plain identity a page's settings carry ('' when none), as one string.
var identity = function (s) {
  var k = '';
  if (s && typeof s === 'object') {
    for (var n = 0; n < c.s.length; n++) { if (s[c.s[n]] != null && s[c.s[n]] !== '') { k += c.s[n] + '=' + s[c.s[n]] + '\n'; } }
  }
  return k;
};
// The plain identity last asked about: a page that boots with it again is not a new login.
var askedFor = '';
// A plain identity with no token to replace it (a login this page did not see): ask first.
var unseen = function (s) {
  var k = !pending && asks && !c.j && !c.h ? identity(s) : '';
  if (k && k !== askedFor) { askedFor = k; ask(true); }
};
var clean = function (s) {
  if (!s || typeof s !== 'object') { return s; }
  for (var n = 0; n < c.s.length; n++) { if (c.s[n] in s) { delete s[c.s[n]]; } }
  if (s.app_id && s.app_id !== c.a) { report(s.app_id); }
  if (c.j) {
// Claims the token carries replace the page's plain values; others the page keeps.
    var p = claims(c.j) || {};
    for (var f in p) { if (f !== 'exp' && f !== 'iat' && f in s) { delete s[f]; } }
    s.intercom_user_jwt = c.j;
  } else if (mine.indexOf(s.intercom_user_jwt) >= 0) {
    delete s.intercom_user_jwt;
  }
// The deprecated Identity Verification: the proxy's user_id, email and user_hash, never the page's.
  if (c.h) { for (var h in c.h) { s[h] = c.h[h]; } }
  if (c.j || c.h) {
    if (!s.app_id) { s.app_id = c.a; }
    if (!s.api_base) { s.api_base = c.b; }
  }
  return s;
};
var loadWidget = function () {
  var s = d.createElement('script');
  s.async = true;
  s.setAttribute('data-intercom-secure-proxy', '');
// The page's nonce, when our script came before the policy that needs it.
  var n = nonce || (d.querySelector('script[nonce]') || {}).nonce;
  if (n) { s.nonce = n; }
  s.src = c.l;
  var x = d.getElementsByTagName('script')[0];
  if (x && x.parentNode) { x.parentNode.insertBefore(s, x); } else { (d.head || d.documentElement).appendChild(s); }
};
if (c.x) {
// A logout (or user switch) happened: forget the previous user before anything boots.
  try { delete w.intercomSettings; } catch (e) { w.intercomSettings = undefined; }
  var names = c.n;
  var host = location.hostname.split('.');
  for (var i = 0; i < names.length; i++) {
    var gone = names[i] + c.a + '=; Max-Age=0; Path=/';
    d.cookie = gone;
    if (c.k) { d.cookie = gone + '; Domain=.' + c.k; }
    for (var hh = 0; hh < host.length - 1; hh++) { d.cookie = gone + '; Domain=.' + host.slice(hh).join('.'); }
  }
  try {
    for (var st = [w.localStorage, w.sessionStorage], m = 0; m < st.length; m++) {
      for (var key = st[m].length - 1; key >= 0; key--) {
        if (/^intercom/.test(st[m].key(key))) { st[m].removeItem(st[m].key(key)); }
      }
    }
  } catch (e) {}
// The official stub, with the shutdown queued first; the widget runs the queue in order.
  var stub = function () { stub.c(arguments); };
  stub.q = [['shutdown']];
  stub.c = function (args) { stub.q.push(args); };
  ours = stub;
  w.Intercom = stub;
// Like the official loader, wait for the page: late page code can still set its settings.
  if (d.readyState === 'complete') { loadWidget(); } else { w.addEventListener('load', loadWidget, false); }
}
var settings = w.intercomSettings;
var intercom = w.Intercom;
// Whether the proxy can be asked who the session is now (not on a strip-only page).
var asks = !!(c.r && c.d !== 2 && w.fetch && w.JSON && w.atob);
var ask;
var wrapped = typeof WeakSet === 'function' ? new WeakSet() : null;
var wrap = function (f) {
  if (typeof f !== 'function' || typeof Proxy !== 'function' || !wrapped || wrapped.has(f)) { return f; }
  var p = new Proxy(f, { apply: function (t, self, args) {
    var s = args[1];
    if (args[0] === 'boot' || args[0] === 'update') {
      unseen(s);
      if (pending) { held.push([self, args]); return; }
// After this script's shutdown an update cannot identify anyone: it boots again.
      if (args[0] === 'update' && down) { s = s || {}; args = ['boot', s].concat([].slice.call(args, 2)); }
      clean(s);
      if (args[0] === 'boot') { down = false; }
    } else if (args[0] === 'shutdown') {
      down = true;
    }
    return Reflect.apply(t, self, args);
  } });
  wrapped.add(p);
  return p;
};
intercom = wrap(intercom);
if (ours) { ours = intercom; }
try {
  Object.defineProperty(w, 'intercomSettings', { configurable: true, enumerable: true,
    get: function () {
      unseen(settings);
      if (pending && settings) { hidden = true; return undefined; }
      return clean(settings);
    },
    set: function (v) { settings = v; } });
  Object.defineProperty(w, 'Intercom', { configurable: true, enumerable: true,
    get: function () { return intercom; }, set: function (v) { intercom = wrap(v); } });
} catch (e) {}
if (c.i) {
// Auto-include: decided once the page's own scripts have run, so no page is parsed to the end.
  var go = function () {
    if (!c.j && !c.h && !pending) { return; }
    var theirs = w.Intercom && w.Intercom !== ours;
    if (theirs || d.querySelector('script[src*="widget.intercom.io"]:not([data-intercom-secure-proxy])')) { return; }
    if (!settings) { settings = { app_id: c.a, api_base: c.b }; }
    if (ours) { w.Intercom('boot', w.intercomSettings); return; }
    var stub2 = function () { stub2.c(arguments); };
    stub2.q = [];
    stub2.c = function (args) { stub2.q.push(args); };
    w.Intercom = stub2;
    ours = w.Intercom;
    if (d.readyState === 'complete') { loadWidget(); } else { w.addEventListener('load', loadWidget, false); }
  };
  if (d.readyState === 'loading') { d.addEventListener('DOMContentLoaded', go); } else { go(); }
}
var shutdown = function () {
  settings = undefined;
  if (typeof w.Intercom === 'function') { w.Intercom('shutdown'); }
  down = true;
};
// The Messenger's calls held while the proxy was asked, run now with what it answered.
var release = function (switched) {
  pending = false;
  var calls = held;
  held = [];
  var booted = false;
  for (var q = 0; q < calls.length; q++) {
    var method = calls[q][1][0];
    booted = booted || method === 'boot' || (method === 'update' && down);
// The Messenger the page has now (the widget may have replaced the stub meanwhile).
    try { w.Intercom.apply(calls[q][0], calls[q][1]); } catch (e) {}
  }
  if (!booted && (hidden || (switched && c.j)) && typeof w.Intercom === 'function') {
    w.Intercom('boot', settings || {});
  }
  hidden = false;
};
if (asks) {
  var due = 0;
  var timer = null;
  var asked = 0;
  var tries = 0;
  var later = function (ms) { clearTimeout(timer); due = Date.now() + ms; timer = setTimeout(function () { ask(false); }, ms); };
// The wait uses the token's own lifetime (exp - iat), so the browser's clock does not matter.
  var plan = function (t) {
    var p = claims(t) || {};
    later(Math.max(((p.exp || 0) - (p.iat || 0) - c.g) * 1000, 5000));
  };
// What the proxy answered: a token (for whom), nobody, or that it cannot tell yet.
  var answer = function (a, hold) {
    var t = a.intercom_user_jwt;
    var p = t && claims(t);
// In the user_hash modes the answer carries the plain user_id, email and user_hash too.
    var id = p ? p.user_id : a.user ? a.user.user_id : null;
    var switched = false;
    if (id != null) {
      if (who != null && id !== who) { shutdown(); switched = true; }
      c.j = p ? t : null;
      c.h = a.user || null;
      who = id;
      if (c.j) { mine.push(t); plan(t); }
      if (!hold && !pending && typeof w.Intercom === 'function') { w.Intercom('update', {}); }
    } else if (a.none) {
      if (who != null) { shutdown(); }
      c.j = null;
      c.h = null;
      who = null;
      clearTimeout(timer);
      due = 0;
    } else if (hold || pending) {
// Unknown while holding: a few quick tries, then go on without a token (never with an unconfirmed one).
      if (++tries <= 4) { setTimeout(function () { ask(true); }, 250 << tries); return; }
      c.j = null;
      c.h = null;
    } else {
      later(30000);
      return;
    }
    tries = 0;
    if (pending) { release(switched); }
  };
  ask = function (hold) {
    var mark = ++asked;
    if (hold) { pending = true; }
    due = 0;
    w.fetch(c.r, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } }).then(function (r) {
// 204 is nobody; with Retry-After the proxy could not tell now (a slow source is not a logout).
      if (r.status === 204) { return r.headers.get('Retry-After') ? {} : { none: 1 }; }
      if (!r.ok) { throw r.status; }
      return r.json();
    }).then(function (a) {
// Only the answer to the last question counts: a navigation since may have changed the session.
      if (mark === asked) { answer(a || {}, hold); }
    }).catch(function () { if (mark === asked) { answer({}, hold); } });
  };
// Soft navigations (Turbo, Turbolinks, pjax, htmx) fetch the next page and run its scripts in this
// window: this tab's token is confirmed again before anything of the next page reaches the Messenger.
  var moved = function () { if (who != null || c.j || pending) { ask(true); } };
  var evs = ['turbo:visit', 'turbo:submit-start', 'turbo:before-fetch-response', 'turbo:before-render', 'turbo:before-frame-render',
    'turbolinks:visit', 'turbolinks:request-end', 'turbolinks:before-render',
    'htmx:beforeSwap', 'htmx:historyRestore', 'pjax:beforeReplace', 'popstate', 'pageshow'];
  for (var v = 0; v < evs.length; v++) {
    (evs[v] === 'popstate' || evs[v] === 'pageshow' ? w : d).addEventListener(evs[v], function (e) {
      if (e.type !== 'pageshow' || e.persisted) { moved(); }
    }, true);
  }
  var hist = function (name) {
    var f = w.history && w.history[name];
    if (typeof f !== 'function') { return; }
    w.history[name] = function () {
      var before = location.href;
      var r = f.apply(this, arguments);
      if (location.href !== before) { moved(); }
      return r;
    };
  };
  hist('pushState');
  hist('replaceState');
// The proxy marks its answers to the libraries' page fetches; seen here before the library renders them.
  var MARK = 'X-Intercom-Secure-Proxy-Navigation';
  var f0 = w.fetch;
  w.fetch = function () {
    return f0.apply(this, arguments).then(function (r) {
      try { if (r && r.headers && r.headers.get(MARK)) { moved(); } } catch (e) {}
      return r;
    });
  };
  var X = w.XMLHttpRequest && w.XMLHttpRequest.prototype;
  if (X && X.open) {
    var open = X.open;
    X.open = function () {
      var x = this;
      x.addEventListener('readystatechange', function () {
        if (x.readyState === 2) { try { if (x.getResponseHeader(MARK)) { moved(); } } catch (e) {} }
      });
      return open.apply(x, arguments);
    };
  }
// Timers are throttled while a tab sleeps: catch up when it is shown again.
  d.addEventListener('visibilitychange', function () {
    if (d.visibilityState === 'visible' && due && Date.now() >= due) { clearTimeout(timer); ask(false); }
  });
  if (c.j) { mine.push(c.j); plan(c.j); }
// The proxy could not tell who this is: hold the Messenger and ask.
  if (c.d === 1) { ask(true); }
}
})
