// A small legacy login app on Express with express-session (default MemoryStore)
// that boots Intercom the insecure way (plain user_id/email, no token).
//
//   PORT=3000 node app.js
//   PORT=3000 REDIS_URL=redis://127.0.0.1:6379 SESSION_SECRET=... node app.js
//       the same app with its sessions in Redis (connect-redis, keys "sess:<id>"),
//       as tests/redis_session.rs reads them; the session holds passport-style
//       {"passport": {"user": id}} and {"profile": {email, name}}.
//
//   GET  /login-page            sign-in form
//   POST /login (user=NAME)     req.session.user, 302 to /
//   GET|POST /logout            session destroyed, connect.sid cleared, 302 to /login-page
//   GET  /api/me                the session's user as JSON, or 401
//   GET  /                      dashboard for a user, guest page otherwise
'use strict';

const express = require('express');
const session = require('express-session');

const APP_ID = 'abc12345';
const USERS = {
  alice: { id: 'u-alice-1001', email: 'alice@example.com', name: 'Alice Liddell' },
  bob: { id: 'u-bob-2002', email: 'bob@example.org', name: 'Bob Builder' },
};
// The official Intercom loader, as pasted into the app.
const LOADER = `(function(){var w=window;var ic=w.Intercom;if(typeof ic==="function"){ic('reattach_activator');ic('update',w.intercomSettings);}else{var d=document;var i=function(){i.c(arguments);};i.q=[];i.c=function(args){i.q.push(args);};w.Intercom=i;var l=function(){var s=d.createElement('script');s.type='text/javascript';s.async=true;s.src='https://widget.intercom.io/widget/abc12345';var x=d.getElementsByTagName('script')[0];x.parentNode.insertBefore(s,x);};if(document.readyState==='complete'){l();}else if(w.attachEvent){w.attachEvent('onload',l);}else{w.addEventListener('load',l,false);}}})();`;

const escapeHtml = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

function intercom(settings) {
  const json = JSON.stringify({ api_base: 'https://api-iam.intercom.io', app_id: APP_ID, ...settings }).replace(/</g, '\\u003c');
  return `<script>window.intercomSettings = ${json};</script>\n<script>${LOADER}</script>\n`;
}

function page(title, head, body) {
  let rows = '';
  for (let n = 1; n <= 60; n++) rows += `<tr><td>Invoice #${1000 + n}</td><td>${(n * 7) % 100}.00 EUR</td><td>paid</td></tr>\n`;
  const t = escapeHtml(title);
  return `<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>${t}</title>\n${head}</head>\n<body>\n<h1>${t}</h1>\n${body}<table>\n${rows}</table>\n</body>\n</html>\n`;
}

// With REDIS_URL, sessions live in Redis (connect-redis); otherwise in memory.
function sessionStore() {
  if (!process.env.REDIS_URL) return undefined;
  const { createClient } = require('redis');
  const { RedisStore } = require('connect-redis');
  const client = createClient({ url: process.env.REDIS_URL });
  client.on('error', (err) => console.error('redis:', err.message));
  client.connect().catch((err) => console.error('redis connect:', err.message));
  return new RedisStore({ client, prefix: 'sess:' });
}

const app = express();
app.use(express.urlencoded({ extended: false }));
app.use(
  session({
    store: sessionStore(),
    secret: process.env.SESSION_SECRET || 'legacy-express-test-secret',
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

app.get('/login-page', (req, res) => {
  res.type('html').send(page('Sign in', '', '<form action="/login" method="post"><input name="user"><button>Sign in</button></form>\n'));
});

app.all('/login', (req, res, next) => {
  const name = (req.body && req.body.user) || req.query.user || '';
  if (!Object.hasOwn(USERS, name)) {
    res.status(403).type('html').send(page('Sign in', '', '<p>Unknown user.</p>\n'));
    return;
  }
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = name;
    // What passport and a profile cache would keep: read by the redis_session source.
    req.session.passport = { user: USERS[name].id };
    req.session.profile = { email: USERS[name].email, name: USERS[name].name };
    req.session.save((err2) => (err2 ? next(err2) : res.redirect(302, '/')));
  });
});

app.all('/logout', (req, res, next) => {
  req.session.destroy((err) => {
    if (err) return next(err);
    res.clearCookie('connect.sid', { path: '/' });
    res.redirect(302, '/login-page');
  });
});

app.get('/api/me', (req, res) => {
  const u = currentUser(req);
  if (!u) return res.status(401).json({ error: 'not logged in' });
  res.json(u);
});

app.get('/', (req, res) => {
  const u = currentUser(req);
  if (!u) {
    res.type('html').send(page('Welcome', intercom({}), '<p>Hello, visitor. <a href="/login-page">Sign in</a></p>\n'));
    return;
  }
  const settings = { user_id: u.id, email: u.email, name: u.name };
  res.type('html').send(page('Dashboard', intercom(settings), `<p>Hello, ${escapeHtml(u.name)}. <a href="/logout">Log out</a></p>\n`));
});

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('PORT must be set');
  process.exit(2);
}
app.listen(port, '127.0.0.1');
