// A small login app on Express whose pages navigate without full page loads, the way
// Rails 7+ apps (Turbo Drive), older Rails apps (Turbolinks 5), pjax sites and htmx
// `hx-boost` sites do: the library fetches the next page and runs its scripts in the
// same window. Every page boots Intercom the insecure way, with the Rails-style snippet
// in the body (plain user_id/email; `Intercom('update', intercomSettings)` when the
// Messenger already runs), so each soft navigation hands the Messenger a new user.
//
//   PORT=3000 LIB=turbo LIBS=/path/to/node_modules node softnav.js
//       LIB: turbo | turbolinks | htmx | pjax
//
//   GET  /login-page             sign-in form and links
//   POST /login (user=NAME)      (or GET /login?user=NAME) new session, 303 to /
//   POST /logout                 (or GET) session destroyed, 303 to /login-page
//   GET  /api/me                 the session's user as JSON, or 401
//   GET  /                       dashboard for a user, welcome page otherwise
'use strict';

const path = require('path');
const express = require('express');
const session = require('express-session');

const APP_ID = 'abc12345';
const USERS = {
  alice: { id: 'u-alice-1001', email: 'alice@example.com', name: 'Alice Liddell' },
  bob: { id: 'u-bob-2002', email: 'bob@example.org', name: 'Bob Builder' },
};
const LIB = process.env.LIB;
const LIBS = process.env.LIBS;
// The scripts each library needs in <head>, and how its pages turn it on.
const HEADS = {
  turbo: '<meta name="turbo-prefetch" content="false">\n<script src="/lib/@hotwired/turbo/dist/turbo.es2017-umd.js"></script>\n',
  turbolinks: '<script src="/lib/turbolinks/dist/turbolinks.js"></script>\n<script>Turbolinks.start();</script>\n',
  htmx: '<script src="/lib/htmx.org/dist/htmx.min.js"></script>\n',
  pjax:
    '<script src="/lib/jquery/dist/jquery.min.js"></script>\n<script src="/lib/jquery-pjax/jquery.pjax.js"></script>\n' +
    '<script>$(document).pjax("a", "#main", {fragment: "#main"}); $(document).on("submit", "form", function (e) { $.pjax.submit(e, "#main", {fragment: "#main"}); });</script>\n',
};
if (!Object.hasOwn(HEADS, LIB) || !LIBS) {
  console.error('LIB must be one of turbo, turbolinks, htmx, pjax, and LIBS a node_modules folder');
  process.exit(2);
}
// The official loader, as intercom-rails puts it in the body: with a Messenger already
// running (a soft navigation), it hands it the new page's settings.
const LOADER = `(function(){var w=window;var ic=w.Intercom;if(typeof ic==="function"){ic('reattach_activator');ic('update',w.intercomSettings);}else{var d=document;var i=function(){i.c(arguments);};i.q=[];i.c=function(args){i.q.push(args);};w.Intercom=i;var l=function(){var s=d.createElement('script');s.type='text/javascript';s.async=true;s.src='https://widget.intercom.io/widget/abc12345';var x=d.getElementsByTagName('script')[0];x.parentNode.insertBefore(s,x);};if(document.readyState==='complete'){l();}else if(w.attachEvent){w.attachEvent('onload',l);}else{w.addEventListener('load',l,false);}}})();`;

function intercom(settings) {
  const json = JSON.stringify({ api_base: 'https://api-iam.intercom.io', app_id: APP_ID, ...settings }).replace(/</g, '\\u003c');
  return `<script>window.intercomSettings = ${json};\n${LOADER}</script>\n`;
}

function page(title, body, settings) {
  const boost = LIB === 'htmx' ? ' hx-boost="true"' : '';
  return `<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>${title}</title>\n${HEADS[LIB]}</head>\n<body${boost}>\n<div id="main">\n<h1 id="title">${title}</h1>\n${body}${intercom(settings)}</div>\n</body>\n</html>\n`;
}

const app = express();
app.use('/lib', express.static(path.resolve(LIBS), { fallthrough: false }));
app.use(express.urlencoded({ extended: false }));
app.use(
  session({
    secret: 'softnav-test-secret',
    resave: false,
    saveUninitialized: false,
    cookie: { httpOnly: true, sameSite: 'lax', path: '/' },
  }),
);
app.use((req, res, next) => {
  res.set('Cache-Control', 'no-store');
  next();
});

const currentUser = (req) => (req.session && USERS[req.session.user]) || null;
// pjax keeps the address bar right after a redirect only when told where it ended.
const landed = (req, res, url) => {
  if (req.get('X-PJAX')) res.set('X-PJAX-URL', url);
  res.redirect(303, url);
};

app.get('/login-page', (req, res) => {
  const body =
    '<form id="login-form" action="/login" method="post"><input id="user" name="user"><button id="login">Sign in</button></form>\n' +
    '<p><a id="login-bob" href="/login?user=bob">Sign in as bob</a> <a id="login-alice" href="/login?user=alice">Sign in as alice</a></p>\n';
  res.type('html').send(page('Sign in', body, {}));
});

app.all('/login', (req, res, next) => {
  const name = (req.body && req.body.user) || req.query.user || '';
  if (!Object.hasOwn(USERS, name)) return res.status(403).type('html').send(page('Unknown user', '', {}));
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = name;
    req.session.save((err2) => (err2 ? next(err2) : landed(req, res, '/')));
  });
});

app.all('/logout', (req, res, next) => {
  req.session.destroy((err) => {
    if (err) return next(err);
    res.clearCookie('connect.sid', { path: '/' });
    landed(req, res, '/login-page');
  });
});

app.get('/api/me', (req, res) => {
  const u = currentUser(req);
  if (!u) return res.status(401).json({ error: 'not logged in' });
  res.json(u);
});

app.get('/', (req, res) => {
  const u = currentUser(req);
  if (!u) return res.type('html').send(page('Welcome', '<p><a id="sign-in" href="/login-page">Sign in</a></p>\n', {}));
  const body =
    `<p id="who">${u.name}</p>\n<form id="logout-form" action="/logout" method="post"><button id="logout">Log out</button></form>\n` +
    '<p><a id="logout-link" href="/logout">Log out (link)</a></p>\n';
  res.type('html').send(page(`Dashboard ${u.id}`, body, { user_id: u.id, email: u.email, name: u.name }));
});

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('PORT must be set');
  process.exit(2);
}
app.listen(port, '127.0.0.1', () => console.log(`softnav (${LIB}) on 127.0.0.1:${port}`));
