//! The proxy in front of real app servers that legacy apps run on, each started on a
//! free loopback port with a small login app from tests/legacy/ (tests/support/legacy.rs):
//! - Python's `http.server` (HTTP/1.0: Content-Length, connection closed after each
//!   response);
//! - PHP's built-in server (`php -S`, PHP sessions; bodies end at connection close);
//! - Apache httpd + mod_php (prefork, keep-alive, chunked because the page flushes
//!   mid-way, gzip from mod_deflate), with its own config, not /etc/apache2;
//! - Express with express-session.
//!
//! For each, in headless Chromium through the proxy (tests/browser/driver.mjs): the
//! login lands on a page whose Messenger boots with a verified JWT for the user and no
//! plain identity, no request fails and nothing fails to decode, the logout's next page
//! shuts the Messenger down, and the logged-out page changes only by the watcher script.
//!
//! Needs python3, php-cli, apache2 + libapache2-mod-php, Node 20+ with `npm ci` in
//! tests/legacy/express and tests/browser, and Chromium (`make test` installs them).
//! Without them these tests fail, they never skip.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};
use support::conn::{fetch, Conn};
use support::legacy::{Kind, Server};
use support::{Proxy, APP_ID};

/// The user every app knows as `alice` (tests/legacy/*).
const ALICE_ID: &str = "u-alice-1001";
const ALICE_EMAIL: &str = "alice@example.com";
const ALICE_NAME: &str = "Alice Liddell";

/// The official Intercom loader (the same as in tests/browser.rs); every app pastes it.
const LOADER: &str = r#"(function(){var w=window;var ic=w.Intercom;if(typeof ic==="function"){ic('reattach_activator');ic('update',w.intercomSettings);}else{var d=document;var i=function(){i.c(arguments);};i.q=[];i.c=function(args){i.q.push(args);};w.Intercom=i;var l=function(){var s=d.createElement('script');s.type='text/javascript';s.async=true;s.src='https://widget.intercom.io/widget/abc12345';var x=d.getElementsByTagName('script')[0];x.parentNode.insertBefore(s,x);};if(document.readyState==='complete'){l();}else if(w.attachEvent){w.attachEvent('onload',l);}else{w.addEventListener('load',l,false);}}})();"#;

fn start_proxy(app: &Server) -> Proxy {
    // A 2 s lookup timeout (default 500 ms): four servers, four Chromiums and the
    // proxies share the machine's cores while these tests run.
    let identity = format!(
        "identity:\n  sources:\n    - type: current_user_endpoint\n      path: /api/me\n      cookies: [\"{}\"]\n      timeout: 2s\n",
        app.kind.session_cookie()
    );
    Proxy::start(&support::sections(
        app.addr,
        &identity,
        "logout:\n  paths: [\"GET|POST /logout\"]\n",
    ))
}

/// What a browser asks for a page (compression included).
const PAGE_HEADERS: &[(&str, &str)] = &[("Accept", "text/html"), ("Accept-Encoding", "gzip")];

// ---------------------------------------------------------------------------
// The browser driver (tests/browser/driver.mjs).

struct Run {
    names: Vec<&'static str>,
    steps: Vec<Value>,
    proxy_log: String,
    server_log: String,
}

impl Run {
    fn step(&self, name: &str) -> &Value {
        &self.steps
            [self.names.iter().position(|n| *n == name).unwrap_or_else(|| panic!("no step {name}"))]
    }

    /// The step's report (cookies left out) and the logs' tails, for assertion messages.
    fn excerpt(&self, name: &str) -> String {
        let mut s = self.step(name).clone();
        if let Some(o) = s.as_object_mut() {
            o.remove("cookies");
        }
        format!(
            "step {name}:\n{}\nproxy log (tail):\n{}\napp server log (tail):\n{}",
            serde_json::to_string_pretty(&s).unwrap(),
            support::log_tail(&self.proxy_log, 12),
            support::log_tail(&self.server_log, 12)
        )
    }
}

fn step(url: String, wait: &str) -> Value {
    json!({"goto": url, "wait": wait, "timeoutMs": 8000})
}

fn drive(proxy: &Proxy, app: &Server, steps: Vec<(&'static str, Value)>) -> Run {
    let (names, steps): (Vec<_>, Vec<_>) = steps.into_iter().unzip();
    let steps = support::run_browser(steps, &|| format!("proxy log:\n{}", proxy.log_text()));
    Run { names, steps, proxy_log: proxy.log_text(), server_log: app.log_text() }
}

fn calls(step: &Value) -> &[Value] {
    step["calls"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn methods(step: &Value) -> Vec<&str> {
    calls(step).iter().map(|c| c["method"].as_str().unwrap_or("?")).collect()
}

/// The step's page loaded with status 200 and Chromium saw no failed request (network or
/// decoding error), no console error and no uncaught exception.
fn assert_clean(r: &Run, name: &str) {
    let s = r.step(name);
    assert_eq!(s["navigationError"], Value::Null, "navigation failed\n{}", r.excerpt(name));
    assert_eq!(s["status"], 200, "{}", r.excerpt(name));
    assert_eq!(
        s["failedRequests"],
        json!([]),
        "Chromium reports failed requests\n{}",
        r.excerpt(name)
    );
    assert_eq!(s["consoleErrors"], json!([]), "console errors\n{}", r.excerpt(name));
    assert_eq!(s["pageErrors"], json!([]), "page errors\n{}", r.excerpt(name));
    assert_eq!(s["timedOut"], false, "the awaited Messenger call never came\n{}", r.excerpt(name));
}

/// Exactly one boot on this step, without a token and without any user: a visitor's.
fn assert_visitor_boot(r: &Run, name: &str) {
    let s = r.step(name);
    let boots: Vec<&Value> = calls(s).iter().filter(|c| c["method"] == "boot").collect();
    assert_eq!(boots.len(), 1, "{}", r.excerpt(name));
    let text = s["calls"].to_string();
    assert!(!text.contains("intercom_user_jwt"), "a visitor got a token\n{}", r.excerpt(name));
    assert!(
        !text.contains(ALICE_ID) && !text.contains(ALICE_EMAIL),
        "a visitor got alice's identity\n{}",
        r.excerpt(name)
    );
}

// ---------------------------------------------------------------------------
// One app server: protocol facts, the logged-out page, the browser run.

fn legacy_server(kind: Kind) {
    let app = Server::start(kind);
    let proxy = start_proxy(&app);

    // The logged-out page, direct and through the proxy, with the same request headers.
    // Bodies are compared after removing the content coding: Apache gzips, and the
    // coding is checked to be the same on both sides.
    let mut direct_conn = Conn::open(app.addr);
    let direct = direct_conn.send("GET", "/", PAGE_HEADERS, b"");
    assert_eq!(direct.status, 200, "{}", direct.describe());
    let direct_page = direct.decoded();
    assert!(
        String::from_utf8_lossy(&direct_page).contains(LOADER),
        "the {kind:?} app's page should carry the official Intercom loader"
    );

    // What makes each server what it is, seen on that direct response.
    match kind {
        Kind::Python => {
            assert_eq!(direct.version, "HTTP/1.0", "{}", direct.describe());
            assert!(
                direct.header("content-length").is_some() && !direct.chunked,
                "{}",
                direct.describe()
            );
        }
        Kind::Php => {
            // The body ends where the connection closes (no length, no chunks).
            assert_eq!(direct.header("connection"), Some("close"), "{}", direct.describe());
            assert!(
                direct.header("content-length").is_none() && !direct.chunked,
                "{}",
                direct.describe()
            );
        }
        Kind::Apache => {
            assert_eq!(direct.version, "HTTP/1.1", "{}", direct.describe());
            assert!(
                direct.chunked,
                "Apache should send the flushed page chunked:\n{}",
                direct.describe()
            );
            assert_eq!(direct.header("content-encoding"), Some("gzip"), "{}", direct.describe());
        }
        Kind::Express => {
            assert_eq!(direct.version, "HTTP/1.1", "{}", direct.describe());
            assert!(
                direct.header("content-length").is_some() && !direct.chunked,
                "{}",
                direct.describe()
            );
        }
    }
    if matches!(kind, Kind::Apache | Kind::Express) {
        // Keep-alive: a second request is answered on the same connection.
        let again = direct_conn.send("GET", "/", PAGE_HEADERS, b"");
        assert_eq!(again.status, 200, "no keep-alive:\n{}", direct.describe());
    }

    let through = fetch(proxy.addr, "GET", "/", PAGE_HEADERS, b"");
    assert_eq!(through.status, 200, "{}\nproxy log:\n{}", through.describe(), proxy.log_text());
    // The logged-out watcher is the only change; a rewritten page is compressed anew
    // for a client that accepts gzip.
    assert_eq!(through.header("content-encoding"), Some("gzip"), "{}", through.describe());
    let through_page = support::without_our_script(&through.decoded());
    assert!(
        through_page == direct_page,
        "the logged-out page through the proxy differs from the app's beyond the watcher:\n--- app\n{}\n--- proxy\n{}",
        String::from_utf8_lossy(&direct_page),
        String::from_utf8_lossy(&through_page)
    );

    // In Chromium, through the proxy: visitor, sign-in form, login, logout, visitor again.
    let u = |p: &str| proxy.url(p);
    let login = json!({
        "goto": u("/login"), "method": "POST", "form": {"user": "alice"}, "formFrom": "current",
        "wait": "boot", "timeoutMs": 8000
    });
    let mut logout = step(u("/logout"), "shutdown");
    logout["settleMs"] = json!(500);
    let r = drive(
        &proxy,
        &app,
        vec![
            ("guest", step(u("/"), "boot")),
            ("login-page", step(u("/login-page"), "load")),
            ("login", login),
            ("logout", logout),
            ("after", step(u("/"), "boot")),
        ],
    );
    for name in ["guest", "login-page", "login", "logout", "after"] {
        assert_clean(&r, name);
    }
    assert_visitor_boot(&r, "guest");

    // The login redirects to the dashboard, whose Messenger boots once, with alice's token.
    let s = r.step("login");
    assert!(
        s["url"].as_str().unwrap_or("").ends_with("/"),
        "the login should land on /\n{}",
        r.excerpt("login")
    );
    let boots: Vec<&Value> = calls(s).iter().filter(|c| c["method"] == "boot").collect();
    assert_eq!(boots.len(), 1, "expected exactly one boot\n{}", r.excerpt("login"));
    assert_eq!(boots[0]["settings"]["app_id"], APP_ID, "{}", r.excerpt("login"));
    let token = boots[0]["settings"]["intercom_user_jwt"]
        .as_str()
        .unwrap_or_else(|| panic!("boot without intercom_user_jwt\n{}", r.excerpt("login")));
    let claims = support::verify(token);
    assert_eq!(claims["user_id"], ALICE_ID, "token for the wrong user\n{}", r.excerpt("login"));
    assert_eq!(claims["email"], ALICE_EMAIL, "{}", r.excerpt("login"));
    assert_eq!(claims["name"], ALICE_NAME, "{}", r.excerpt("login"));
    // No plain identity in what the Messenger got: not in any call's settings, not in
    // window.intercomSettings (the token itself is base64url, so it cannot match).
    let mut given: Vec<&Value> =
        calls(s).iter().map(|c| &c["settings"]).filter(|v| v.is_object()).collect();
    given.push(&s["intercomSettings"]);
    for o in given {
        for key in ["user_id", "email", "user_hash", "name"] {
            assert!(
                o.get(key).is_none(),
                "the Messenger got plain `{key}`: {o}\n{}",
                r.excerpt("login")
            );
        }
        let text = o.to_string();
        assert!(
            !text.contains(ALICE_ID) && !text.contains(ALICE_EMAIL),
            "plain identity: {o}\n{}",
            r.excerpt("login")
        );
    }
    assert_eq!(s["loads"], 1, "the widget script should run once\n{}", r.excerpt("login"));

    // The logout redirects to the sign-in page (no Intercom code of its own): the proxy's
    // script shuts the Messenger down there, and nothing boots.
    let lo = r.step("logout");
    assert!(lo["url"].as_str().unwrap_or("").ends_with("/login-page"), "{}", r.excerpt("logout"));
    let m = methods(lo);
    assert_eq!(
        m.first(),
        Some(&"shutdown"),
        "the page after the logout must shut the Messenger down\n{}",
        r.excerpt("logout")
    );
    assert!(!m.contains(&"boot"), "nothing may boot after the logout\n{}", r.excerpt("logout"));

    // The app's session is gone: / is the visitor's page again, without a token.
    assert_visitor_boot(&r, "after");
}

#[test]
fn python_http_server_http10() {
    legacy_server(Kind::Python);
}

#[test]
fn php_builtin_server_sessions() {
    legacy_server(Kind::Php);
}

#[test]
fn apache_mod_php_keepalive_chunked_gzip() {
    legacy_server(Kind::Apache);
}

#[test]
fn express_session() {
    legacy_server(Kind::Express);
}

// ---------------------------------------------------------------------------
// An HTTP/1.0 client.

/// `GET / HTTP/1.0` for a logged-in page, through the proxy in front of PHP's built-in
/// server (an HTTP/1.1 upstream, so only the client side is HTTP/1.0). HTTP/1.0 has no
/// chunked coding: the body must come as plain bytes, ended by Content-Length or the close.
#[test]
fn http10_client_gets_the_logged_in_page_without_chunked_framing() {
    let app = Server::start(Kind::Php);
    let proxy = start_proxy(&app);
    let session = app.login("alice");
    let page = fetch(
        app.addr,
        "GET",
        "/",
        &[("Accept", "text/html"), ("Cookie", &session), ("Connection", "close")],
        b"",
    );
    assert_eq!(page.status, 200, "{}", page.describe());

    let mut stream = TcpStream::connect(proxy.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "GET / HTTP/1.0\r\nHost: {}\r\nAccept: text/html\r\nCookie: {session}\r\n\r\n",
        proxy.addr
    );
    stream.write_all(req.as_bytes()).unwrap();
    // HTTP/1.0 without keep-alive: the response ends with the connection (the read
    // timeout only keeps a proxy that never closes from hanging the test).
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = support::find(&raw, b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = &raw[split + 4..];

    assert!(head.starts_with("HTTP/1.") && head.split(' ').nth(1) == Some("200"), "{head}");
    let te: Vec<&str> =
        head.lines().filter(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:")).collect();
    assert!(
        te.is_empty(),
        "the HTTP/1.0 response uses {te:?}, which HTTP/1.0 does not have:\n{head}"
    );
    assert!(
        body.starts_with(b"<!DOCTYPE html>"),
        "the body should be the HTML itself, it starts with {:?}",
        String::from_utf8_lossy(&body[..body.len().min(40)])
    );
    if let Some(len) = head.lines().find_map(|l| {
        l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
    }) {
        assert_eq!(len, body.len().to_string(), "Content-Length and the body disagree");
    }
    let html = String::from_utf8_lossy(body);
    let token =
        support::page_token(&html).unwrap_or_else(|| panic!("the page carries no token:\n{html}"));
    assert_eq!(support::verify(&token)["user_id"], ALICE_ID);
    assert!(
        support::without_our_script(body) == page.body,
        "apart from the proxy's script, the page should be the app's:\n--- app\n{}\n--- proxy\n{html}",
        String::from_utf8_lossy(&page.body)
    );
}
