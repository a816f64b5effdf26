// The script the proxy puts before the first script of a page (see src/page/script.rs).
// Pages get it minified by terser, without the blocks that cannot run there
// (src/page/min/): run `make page-js` after a change.
// Parameters (c): a app_id, b api_base, s plain fields to strip,
// k cookie domain, l widget URL, n Intercom's cookie name prefixes, r the token refresh path (null: none),
// g refresh this many seconds before the token expires, j the signed token (null when logged out),
// h user_id, email and user_hash to give in the clear (intercom.mode user_hash or both; else null).
// Two blocks are switched by the script served, not by a parameter: `if (c.x)`, a shutdown
// first (after a logout or a user switch), and `if (c.i)`, auto-include; the proxy gives
// only the parameters its script reads (k and n for the shutdown, l for either block).
(function (w, c) {
if (w.__intercomSecureProxy) { return; }
w.__intercomSecureProxy = 1;
var d = document;
var ours = null;
var nonce = d.currentScript && (d.currentScript.nonce || d.currentScript.getAttribute('nonce'));
var clean = function (s) {
  if ((c.j || c.h) && s && typeof s === 'object') {
    for (var n = 0; n < c.s.length; n++) { if (c.s[n] in s) { delete s[c.s[n]]; } }
// The deprecated Identity Verification: the proxy's user_id, email and user_hash, never the page's.
    if (c.h) { for (var f in c.h) { if (s[f] !== c.h[f]) { s[f] = c.h[f]; } } }
    if (c.j && s.intercom_user_jwt !== c.j) { s.intercom_user_jwt = c.j; }
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
    for (var h = 0; h < host.length - 1; h++) { d.cookie = gone + '; Domain=.' + host.slice(h).join('.'); }
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
if (c.j || c.h) {
  var settings = w.intercomSettings;
  var intercom = w.Intercom;
  var wrapped = typeof WeakSet === 'function' ? new WeakSet() : null;
  var wrap = function (f) {
    if (typeof f !== 'function' || typeof Proxy !== 'function' || !wrapped || wrapped.has(f)) { return f; }
    var p = new Proxy(f, { apply: function (t, self, args) {
      if ((args[0] === 'boot' || args[0] === 'update') && args[1]) { clean(args[1]); }
      return Reflect.apply(t, self, args);
    } });
    wrapped.add(p);
    return p;
  };
  intercom = wrap(intercom);
  if (ours) { ours = intercom; }
  try {
    Object.defineProperty(w, 'intercomSettings', { configurable: true, enumerable: true,
      get: function () { return clean(settings); }, set: function (v) { settings = v; } });
    Object.defineProperty(w, 'Intercom', { configurable: true, enumerable: true,
      get: function () { return intercom; }, set: function (v) { intercom = wrap(v); } });
  } catch (e) {}
  if (c.i) {
// Auto-include: decided once the page's own scripts have run, so no page is parsed to the end.
    var go = function () {
      var theirs = w.Intercom && w.Intercom !== ours;
      if (theirs || d.querySelector('script[src*="widget.intercom.io"]:not([data-intercom-secure-proxy])')) { return; }
      if (!w.intercomSettings) { w.intercomSettings = { app_id: c.a, api_base: c.b }; }
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
}
if (c.j && c.r && w.fetch && w.JSON && w.atob) {
// Tokens that outlive the page: fetch a fresh one from the proxy shortly before this one expires.
// The user is compared by the user_id in the JWT payload, which the page can read anyway.
  var claims = function (t) {
    try {
      var p = t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return JSON.parse(atob(p + '==='.slice((p.length + 3) % 4)));
    } catch (e) { return null; }
  };
  var who = (claims(c.j) || {}).user_id;
  var due = 0;
  var timer = null;
  var later = function (ms) { clearTimeout(timer); due = Date.now() + ms; timer = setTimeout(refresh, ms); };
// The wait uses the token's own lifetime (exp - iat), so the browser's clock does not matter.
  var plan = function (t) {
    var p = claims(t) || {};
    later(Math.max(((p.exp || 0) - (p.iat || 0) - c.g) * 1000, 5000));
  };
  var gone = function () {
    clearTimeout(timer);
    due = 0;
    c.j = null;
    c.h = null;
    try { delete w.intercomSettings; } catch (e) { w.intercomSettings = undefined; }
    if (typeof w.Intercom === 'function') { w.Intercom('shutdown'); }
  };
  var refresh = function () {
    due = 0;
    w.fetch(c.r, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } }).then(function (r) {
// 204 is nobody; with Retry-After the proxy could not tell now (a slow endpoint is not a logout).
      if (r.status === 204) { return r.headers.get('Retry-After') ? {} : { none: 1 }; }
      if (!r.ok) { throw r.status; }
      return r.json();
    }).then(function (a) {
      var t = a && a.intercom_user_jwt;
      var p = t && claims(t);
      if (a.none || (p && p.user_id !== who)) { gone(); return; }
      if (!p) { later(30000); return; }
      c.j = t;
      plan(t);
      if (typeof w.Intercom === 'function') { w.Intercom('update', { intercom_user_jwt: t }); }
    }).catch(function () { later(30000); });
  };
// Timers are throttled while a tab sleeps: catch up when it is shown again.
  d.addEventListener('visibilitychange', function () {
    if (d.visibilityState === 'visible' && due && Date.now() >= due) { clearTimeout(timer); refresh(); }
  });
  plan(c.j);
}
})
