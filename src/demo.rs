//! Demo: a built-in sample "legacy app" that embeds Intercom insecurely, and the proxy
//! in front of it, in one process (`intercom-secure-proxy demo`).
//!
//! The app: `GET /login` (form), `POST /login` (`username` = alice or bob) sets the
//! `demo_session` cookie and redirects to `/`; `GET /` boots Intercom the insecure way
//! (plain `user_id` and `email`, no JWT); `GET /account` has no Intercom code at all
//! (the proxy's auto-include adds it); `GET /api/me` answers `{"id","email","name"}` or
//! 401; `GET /logout` ends the session and redirects to `/login`.
//!
//! `/` and `/account` show what they handed the Messenger (the `PANEL` script), so that
//! the app and the proxy side by side show what the proxy changes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use pingora::server::configuration::Opt;
use pingora::server::Server;
use pingora::services::listening::Service;
use sha2::{Digest, Sha256};

use intercom_secure_proxy::config::{Config, ConfigError};

/// App id used by the demo.
pub const DEMO_APP_ID: &str = "demo1234";
/// Secret used when `INTERCOM_SECRET` is not set. Never use it in production.
pub const DEMO_SECRET: &str = "demo-secret-not-for-production";
/// Name of the sample app's session cookie.
pub const SESSION_COOKIE: &str = "demo_session";

const USERS: [(&str, &str, &str); 2] =
    [("alice", "alice@example.com", "Alice Example"), ("bob", "bob@example.com", "Bob Example")];

/// The sample legacy app.
#[derive(Default)]
pub struct SampleApp {
    sessions: Mutex<HashMap<String, &'static str>>,
    counter: AtomicU64,
    /// With `--identity redis`: where sessions are also written, as connect-redis does.
    redis: Option<redis::Client>,
}

/// How long a session lives in Redis.
const SESSION_TTL_SECS: u64 = 3600;

fn user(name: &str) -> Option<(&'static str, &'static str, &'static str)> {
    USERS.iter().copied().find(|(u, _, _)| *u == name)
}

fn page(
    status: u16,
    content_type: &str,
    body: String,
    extra: &[(&str, String)],
) -> Response<Vec<u8>> {
    let mut r = Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len().to_string());
    for (k, v) in extra {
        r = r.header(*k, v);
    }
    r.body(body.into_bytes()).expect("static response parts are valid")
}

fn redirect(to: &str, extra: &[(&str, String)]) -> Response<Vec<u8>> {
    let mut headers = vec![("location", to.to_string())];
    headers.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    page(302, "text/html; charset=utf-8", String::new(), &headers)
}

const LOADER: &str = "(function(){var w=window;var ic=w.Intercom;if(typeof ic===\"function\"){ic('reattach_activator');ic('update',w.intercomSettings);}else{var d=document;var i=function(){i.c(arguments);};i.q=[];i.c=function(args){i.q.push(args);};w.Intercom=i;var l=function(){var s=d.createElement('script');s.type='text/javascript';s.async=true;s.src='https://widget.intercom.io/widget/demo1234';var x=d.getElementsByTagName('script')[0];x.parentNode.insertBefore(s,x);};if(document.readyState==='complete'){l();}else if(w.attachEvent){w.attachEvent('onload',l);}else{w.addEventListener('load',l,false);}}})();";

/// The demo session cookie's value (the cookie crate parses the header).
fn session_id(session: &ServerSession) -> Option<String> {
    let header = session.req_header().headers.get(http::header::COOKIE)?.to_str().ok()?;
    cookie::Cookie::split_parse(header)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_string())
}

impl SampleApp {
    fn session_user(
        &self,
        session: &ServerSession,
    ) -> Option<(&'static str, &'static str, &'static str)> {
        let id = session_id(session)?;
        let name = *self.sessions.lock().ok()?.get(&id)?;
        user(name)
    }

    /// Writes the session to Redis as JSON (or deletes it), when the demo runs with
    /// `--identity redis`. A Redis error is printed: the demo goes on without it.
    async fn store_session(&self, id: &str, user: Option<(&str, &str, &str)>) {
        let Some(client) = &self.redis else { return };
        let key = format!("demo:sess:{id}");
        let result = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            match user {
                Some((user, email, name)) => {
                    let doc = serde_json::json!({"passport": {"user": user}, "profile": {"email": email, "name": name}});
                    redis::cmd("SET").arg(&key).arg(doc.to_string()).arg("EX").arg(SESSION_TTL_SECS).exec_async(&mut conn).await
                }
                None => redis::cmd("DEL").arg(&key).exec_async(&mut conn).await,
            }
        }
        .await;
        if let Err(e) = result {
            eprintln!("demo app: cannot write the session to Redis: {e}");
        }
    }

    fn new_session(&self, name: &'static str) -> String {
        // Unguessable enough for a demo on loopback: hash of time and a counter.
        let mut h = Sha256::new();
        h.update(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
                .to_le_bytes(),
        );
        h.update(self.counter.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        let id = hex::encode(&h.finalize()[..16]);
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(id.clone(), name);
        }
        id
    }
}

#[async_trait]
impl ServeHttp for SampleApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_string();
        let html = "text/html; charset=utf-8";
        match (method.as_str(), path.as_str()) {
            ("GET", "/login") => page(200, html, login_form(""), &[]),
            ("POST", "/login") => {
                let mut body = Vec::new();
                while let Ok(Some(chunk)) = session.read_request_body().await {
                    body.extend_from_slice(&chunk);
                    if body.len() > 4096 {
                        break;
                    }
                }
                let form = String::from_utf8_lossy(&body);
                let name = form
                    .split('&')
                    .filter_map(|p| p.split_once('='))
                    .find(|(k, _)| *k == "username")
                    .map(|(_, v)| v.trim().to_ascii_lowercase());
                match name.as_deref().and_then(user) {
                    Some((name, email, display)) => {
                        let id = self.new_session(name);
                        self.store_session(&id, Some((name, email, display))).await;
                        let cookie =
                            format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax");
                        redirect("/", &[("set-cookie", cookie)])
                    }
                    None => page(200, html, login_form("Unknown user: try alice or bob."), &[]),
                }
            }
            ("GET", "/logout") => {
                if let Some(id) = session_id(session) {
                    if let Ok(mut s) = self.sessions.lock() {
                        s.remove(&id);
                    }
                    self.store_session(&id, None).await;
                }
                redirect(
                    "/login",
                    &[("set-cookie", format!("{SESSION_COOKIE}=; Path=/; Max-Age=0"))],
                )
            }
            ("GET", "/api/me") => match self.session_user(session) {
                Some((id, email, name)) => page(
                    200,
                    "application/json",
                    serde_json::json!({"id": id, "email": email, "name": name}).to_string(),
                    &[],
                ),
                None => page(401, "application/json", "{\"error\":\"not logged in\"}".into(), &[]),
            },
            ("GET", "/") => match self.session_user(session) {
                Some((id, email, name)) => page(200, html, home_page(id, email, name), &[]),
                None => redirect("/login", &[]),
            },
            ("GET", "/account") => match self.session_user(session) {
                Some((_, email, name)) => page(200, html, account_page(email, name), &[]),
                None => redirect("/login", &[]),
            },
            _ => page(404, "text/plain", "not found\n".into(), &[]),
        }
    }
}

fn login_form(message: &str) -> String {
    format!("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Legacy app: log in</title></head>\n<body><h1>Log in</h1><p>{message}</p>\n<form method=\"post\" action=\"/login\"><input name=\"username\" placeholder=\"alice or bob\"><button>Log in</button></form>\n</body></html>\n")
}

fn home_page(id: &str, email: &str, name: &str) -> String {
    format!("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Legacy app</title><style>{STYLE}</style></head>\n<body><h1>Hello {name}</h1><p><a href=\"/account\">Account</a> · <a href=\"/logout\">Log out</a></p>\n<section id=\"messenger\"></section>\n<script>\n  window.intercomSettings = {{\n    app_id: \"{DEMO_APP_ID}\",\n    user_id: \"{id}\",\n    email: \"{email}\",\n    name: \"{name}\"\n  }};\n</script>\n<script>{LOADER}</script>\n<script>{PANEL}</script>\n</body></html>\n")
}

fn account_page(email: &str, name: &str) -> String {
    format!("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Account</title><style>{STYLE}</style></head>\n<body><h1>Account of {name}</h1><p>{email}</p><p><a href=\"/\">Home</a> · <a href=\"/logout\">Log out</a></p>\n<section id=\"messenger\"></section>\n<script>{PANEL}</script>\n</body></html>\n")
}

const STYLE: &str = "#messenger{font:14px monospace;border:1px solid #888;padding:0 1em 1em;max-width:46em}#messenger h2{font-size:1.2em}#messenger th{text-align:left;padding-right:1em}.insecure{color:#c00;font-weight:bold}.signed{color:#070}";

/// The pages' panel: what the page handed the Messenger, so that the app (port 3000)
/// and the proxy (8080) side by side show what the proxy changes. It reads the settings
/// where the widget does, after the proxy's page script has done its work, and needs
/// no widget: the loader's queueing stub holds the calls until one arrives.
const PANEL: &str = r#"
(function () {
  var w = window, d = document, box = d.getElementById('messenger');
  var el = function (parent, tag, text, cls) {
    var e = parent.appendChild(d.createElement(tag));
    if (text != null) { e.textContent = text; }
    if (cls) { e.className = cls; }
    return e;
  };
  var row = function (table, key, value, cls) {
    var tr = el(table, 'tr', null, cls);
    el(tr, 'th', key);
    return el(tr, 'td', value);
  };
  var copy = function (s) { return s && typeof s === 'object' ? JSON.parse(JSON.stringify(s)) : null; };
  // The widget replays the loader's queue; with no boot queued it boots from window.intercomSettings.
  var given = function () {
    var q = (w.Intercom && w.Intercom.q) || [], s = null, booted = false;
    for (var i = 0; i < q.length; i++) {
      if (q[i][0] === 'boot') { s = copy(q[i][1]) || {}; booted = true; }
      else if (q[i][0] === 'update' && s) { Object.assign(s, copy(q[i][1])); }
      else if (q[i][0] === 'shutdown') { s = null; }
    }
    return booted ? s : copy(w.intercomSettings);
  };
  var claims = function (t) {
    try { return JSON.parse(atob(t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))); } catch (e) { return {}; }
  };
  var show = function () {
    var s = given(), jwt = s && s.intercom_user_jwt, plain = [];
    box.replaceChildren();
    el(box, 'h2', 'What this page handed the Messenger');
    if (!s) { el(box, 'p', 'Nothing: no Messenger on this page.'); return; }
    var t = el(box, 'table');
    t.id = 'messenger-settings';
    for (var k in s) {
      var bad = !jwt && (k === 'user_id' || k === 'email');
      if (bad) { plain.push(k); }
      row(t, k, k === 'intercom_user_jwt' ? jwt.slice(0, 12) + '…' : String(s[k]), bad ? 'insecure' : k === 'intercom_user_jwt' ? 'signed' : '');
    }
    if (plain.length) {
      el(box, 'p', 'Insecure: ' + plain.join(' and ') + ' given in clear, nothing signed: anyone who knows the email can open this user\'s chat history.', 'insecure');
    }
    if (!jwt) { return; }
    el(box, 'p', 'Signed by the proxy. What the token says (decoded here):', 'signed');
    var p = claims(jwt), u = el(box, 'table');
    u.id = 'messenger-token';
    for (var c in p) {
      var td = row(u, c, null);
      if (c === 'exp' || c === 'iat') { var at = new Date(p[c] * 1000); el(td, 'time', at.toLocaleString()).dateTime = at.toISOString(); }
      else { td.textContent = String(p[c]); }
    }
  };
  // Calls queued before the widget arrives (the proxy's script may hold some and replay
  // them later) go through the stub's c: each is shown as it is queued.
  var watch = function () {
    var f = w.Intercom;
    if (f && f.q && typeof f.c === 'function') { var c = f.c; f.c = function (a) { c(a); show(); }; }
  };
  // After the page's scripts: the proxy's auto-include adds the Messenger then.
  d.addEventListener('DOMContentLoaded', function () { watch(); show(); });
})();
"#;

/// Where the demo's proxy learns who is logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemoIdentity {
    /// The sample app's `/api/me` (conf/demo.yaml).
    Endpoint,
    /// The sample app's sessions, also written to this Redis (conf/demo-redis.yaml).
    Redis(String),
}

/// The demo's proxy configuration: `conf/demo.yaml` (or `conf/demo-redis.yaml`) with
/// the given ports and Redis URL.
pub fn demo_config(
    app_port: u16,
    proxy_port: u16,
    identity: &DemoIdentity,
) -> Result<Config, ConfigError> {
    let yaml = match identity {
        DemoIdentity::Endpoint => include_str!("../conf/demo.yaml").to_string(),
        DemoIdentity::Redis(url) => {
            include_str!("../conf/demo-redis.yaml").replace("redis://127.0.0.1:6379/0", url)
        }
    };
    let yaml = yaml
        .replace("127.0.0.1:3000", &format!("127.0.0.1:{app_port}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{proxy_port}"));
    Config::from_yaml(&yaml, &|name| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .or_else(|| Some(DEMO_SECRET.to_string()))
    })
}

/// Runs the sample app and the proxy until interrupted.
pub fn run(
    app_port: u16,
    proxy_port: u16,
    identity: DemoIdentity,
) -> Result<(), Box<dyn std::error::Error>> {
    let config = demo_config(app_port, proxy_port, &identity)?;
    let redis = match &identity {
        DemoIdentity::Endpoint => None,
        DemoIdentity::Redis(url) => Some(redis::Client::open(url.as_str())?),
    };
    // As `run` does: a port in use is an error now, not a banner over a server that
    // waits for its port.
    intercom_secure_proxy::server::probe(std::net::SocketAddr::from(([127, 0, 0, 1], app_port)))?;
    intercom_secure_proxy::server::probe_listeners(&config)?;
    let mut server = Server::new_with_opt_and_conf(
        Opt::default(),
        intercom_secure_proxy::server::server_conf(&config),
    );
    server.bootstrap();
    let mut app =
        Service::new("sample legacy app".to_string(), SampleApp { redis, ..SampleApp::default() });
    app.add_tcp(&format!("127.0.0.1:{app_port}"));
    server.add_service(app);
    intercom_secure_proxy::server::add_proxy(&mut server, &config)?;
    let secret_note = if std::env::var("INTERCOM_SECRET").is_ok_and(|v| !v.trim().is_empty()) {
        "from INTERCOM_SECRET"
    } else {
        "the documented default demo-secret-not-for-production"
    };
    println!(
        "intercom-secure-proxy demo\n\
         \x20 sample legacy app: http://127.0.0.1:{app_port}/  (boots Intercom insecurely)\n\
         \x20 the proxy:         http://127.0.0.1:{proxy_port}/  (Secure Mode added)\n\
         \x20 app_id {DEMO_APP_ID}, secret {secret_note}\n\n\
         Open http://127.0.0.1:{proxy_port}/login and log in as alice or bob, and http://127.0.0.1:{app_port}/\n\
         beside it: each page shows what it handed the Messenger, plain user_id and email from the\n\
         app, a signed intercom_user_jwt through the proxy; /account has no Intercom code (auto-include adds it);\n\
         /logout runs Intercom('shutdown') on the next page. Or with curl:\n\
         \x20 curl -si -c /tmp/jar -d username=alice http://127.0.0.1:{proxy_port}/login\n\
         \x20 curl -s -b /tmp/jar http://127.0.0.1:{proxy_port}/ | grep -o '\"j\":\"[^\"]*\"'\n\
         Stop with Ctrl-C."
    );
    server.run_forever();
}
