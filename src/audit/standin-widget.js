/*
 * Stand-in for the Intercom Messenger widget script
 * (https://widget.intercom.io/widget/APP_ID).
 *
 * The browser tests' driver (tests/browser/driver.mjs) and
 * `intercom-secure-proxy audit` serve this file whenever a page asks for the
 * real widget. It does not render a Messenger; it only records what the
 * Messenger would have been booted with, so tests can assert on it:
 *
 *   window.__intercom = {
 *     calls: [{method, settings, auto}, ...],  // every Intercom(...) call, in order
 *     loads: N,                                 // how many times this script ran
 *     widgetAppId: "abc12345"                   // APP_ID from this script's URL
 *   }
 *
 * Behaviour copied from the real widget, as far as the tests care:
 *   - calls queued on the loader stub (window.Intercom.q) are replayed in order;
 *   - window.Intercom is replaced (plain assignment) by the widget's function;
 *   - with no queued 'boot', window.intercomSettings (if it has an app_id)
 *     boots the Messenger automatically;
 *   - 'boot' sets the intercom-session-APPID and intercom-id-APPID cookies,
 *     'shutdown' expires intercom-session-APPID.
 *
 * When the audit's DevTools binding window.__ispAuditReport exists, each
 * recorded call is also sent through it as JSON {method, settings, auto, url}:
 * bindings survive navigations, so the audit sees the calls of every page a
 * logout goes through.
 */
(function () {
  'use strict';

  var w = window;
  var WEEK_SECONDS = 7 * 24 * 60 * 60;

  var state = w.__intercom;
  if (!state || typeof state !== 'object') {
    state = { calls: [], loads: 0 };
    w.__intercom = state;
  }
  if (!Array.isArray(state.calls)) state.calls = [];
  if (typeof state.loads !== 'number') state.loads = 0;
  state.loads += 1;

  // The app id this script was requested for: last path segment of its URL.
  function scriptAppId() {
    var src = '';
    try {
      if (document.currentScript && document.currentScript.src) {
        src = document.currentScript.src;
      } else {
        var scripts = document.getElementsByTagName('script');
        for (var k = scripts.length - 1; k >= 0; k--) {
          if (/\/widget\/[^\/?#]+/.test(scripts[k].src || '')) {
            src = scripts[k].src;
            break;
          }
        }
      }
    } catch (e) {
      src = '';
    }
    if (!src) return null;
    var path = src.split('#')[0].split('?')[0].replace(/\/+$/, '');
    var last = path.substring(path.lastIndexOf('/') + 1);
    try {
      last = decodeURIComponent(last);
    } catch (e) {
      /* keep it raw */
    }
    return last || null;
  }

  var widgetAppId = scriptAppId();
  state.widgetAppId = widgetAppId;

  // Already running on this page (the loader ran twice): the real widget does
  // not boot a second Messenger; only count the load.
  if (typeof w.Intercom === 'function' && w.Intercom.__intercomStandin) {
    return;
  }

  function jsonCopy(x) {
    try {
      var s = JSON.stringify(x);
      return s === undefined ? null : JSON.parse(s);
    } catch (e) {
      return null;
    }
  }

  function randomToken() {
    var out = '';
    for (var n = 0; n < 4; n++) {
      out += Math.floor(Math.random() * 0x100000000).toString(16);
    }
    return out;
  }

  function readCookie(name) {
    var parts = (document.cookie || '').split(';');
    for (var n = 0; n < parts.length; n++) {
      var p = parts[n].replace(/^\s+/, '');
      var eq = p.indexOf('=');
      if (eq > 0 && p.substring(0, eq) === name) return p.substring(eq + 1);
    }
    return null;
  }

  function setCookie(name, value, maxAge) {
    try {
      document.cookie =
        name + '=' + value + '; path=/; max-age=' + maxAge + '; SameSite=Lax';
    } catch (e) {
      /* sandboxed / opaque origin: no cookies, like the real widget */
    }
  }

  var bootedAppId = null; // app id of the Messenger currently booted on this page
  var booted = false;

  function settingsAppId(settings) {
    if (settings && typeof settings === 'object' && settings.app_id) {
      return String(settings.app_id);
    }
    var s = w.intercomSettings;
    if (s && typeof s === 'object' && s.app_id) return String(s.app_id);
    return widgetAppId;
  }

  function onBoot(settings) {
    var appId = settingsAppId(settings);
    booted = true;
    bootedAppId = appId;
    state.booted = true;
    state.appId = appId;
    if (!appId) return;
    var sessionName = 'intercom-session-' + appId;
    var idName = 'intercom-id-' + appId;
    setCookie(sessionName, readCookie(sessionName) || randomToken(), WEEK_SECONDS);
    setCookie(idName, readCookie(idName) || randomToken(), WEEK_SECONDS);
  }

  function onShutdown() {
    var names = [];
    if (bootedAppId) {
      names.push('intercom-session-' + bootedAppId);
    } else {
      var parts = (document.cookie || '').split(';');
      for (var n = 0; n < parts.length; n++) {
        var p = parts[n].replace(/^\s+/, '');
        var eq = p.indexOf('=');
        var name = eq > 0 ? p.substring(0, eq) : p;
        if (name.indexOf('intercom-session-') === 0) names.push(name);
      }
    }
    for (var m = 0; m < names.length; m++) setCookie(names[m], '', 0);
    booted = false;
    bootedAppId = null;
    state.booted = false;
  }

  function record(method, arg, auto) {
    var settings = arg !== null && typeof arg === 'object' ? jsonCopy(arg) : null;
    state.calls.push({ method: method, settings: settings, auto: !!auto });
    if (typeof w.__ispAuditReport === 'function') {
      try {
        w.__ispAuditReport(JSON.stringify({ method: method, settings: settings, auto: !!auto, url: String(w.location.href) }));
      } catch (e) {
        /* the audit's report must never break the page */
      }
    }
  }

  function Intercom(method, arg) {
    record(String(method), arg, false);
    if (method === 'boot') {
      onBoot(arg);
    } else if (method === 'shutdown') {
      onShutdown();
    }
  }
  Intercom.__intercomStandin = true;

  // Calls made before this script ran, queued by the official loader stub.
  var queued = [];
  var stub = w.Intercom;
  if (stub && stub.q && typeof stub.q.length === 'number') {
    for (var n = 0; n < stub.q.length; n++) {
      queued.push(Array.prototype.slice.call(stub.q[n]));
    }
  }

  w.Intercom = Intercom;

  var bootedFromQueue = false;
  for (var j = 0; j < queued.length; j++) {
    var args = queued[j];
    if (args[0] === 'boot') bootedFromQueue = true;
    try {
      Intercom.apply(w, args);
    } catch (e) {
      /* one bad call must not stop the replay */
    }
  }

  if (!bootedFromQueue) {
    var settings = w.intercomSettings;
    if (settings && typeof settings === 'object' && settings.app_id) {
      record('boot', settings, true);
      onBoot(settings);
    }
  }
})();
