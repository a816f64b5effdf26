//! Report only in real headless Chromium (issue 26), on the demo's sample app and on a
//! real legacy app (Apache + mod_php, tests/legacy/php): through a proxy in
//! `rollout.mode: report_only`,
//! - the page is the app's, byte for byte, but for the observer script;
//! - the Messenger boots exactly as it does when the app is visited directly (the
//!   stand-in widget's calls are compared step by step);
//! - the observer's beacons reach the proxy, which counts and logs them: `insecure`
//!   with `user_id` and `email` on the app's insecure page, `jwt` on a page the app
//!   already signs, `none` on a page without Intercom;
//! - the raw beacon bodies, as Chromium sent them (read off the wire by a relay
//!   between Chromium and the proxy), hold no user id and no email.
//!
//! Needs Node 20+, Debian's Chromium, `npm ci` in tests/browser, and Apache with
//! mod_php (`make test` installs them); without them these tests fail, they never skip.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use support::legacy::{Kind, Server};
use support::{scrape, value, without_our_script, Proxy};

/// A proxy in report only in front of `app`, whose session cookie is `cookie`.
fn report_only_proxy(app: SocketAddr, app_id: &str, cookie: &str) -> Proxy {
    let identity = format!(
        "identity:\n  sources:\n    - type: current_user_endpoint\n      path: /api/me\n      cookies: [\"{cookie}\"]\n      timeout: 2s\n"
    );
    let sections = support::sections(
        app,
        &identity,
        "logout:\n  paths: [\"GET|POST /logout\"]\nrollout:\n  mode: report_only\n",
    );
    Proxy::start_with_admin(
        &sections.replace(&format!("app_id: {}", support::APP_ID), &format!("app_id: {app_id}")),
    )
}

/// What the browser sent on one connection, so far.
type Recorded = Arc<Mutex<Record>>;

/// The bytes of one connection, and where each read of them began: (offset, the read's
/// number among every connection's reads), so requests on different connections can be
/// put in the order they arrived.
#[derive(Default)]
struct Record {
    bytes: Vec<u8>,
    reads: Vec<(usize, usize)>,
}

/// Numbers the relay's reads across connections.
static READS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A TCP relay in front of the proxy that keeps every byte the browser sent: beacons
/// are sent as a page is left, where neither Playwright's routes nor its network events
/// see them, so they are read off the wire.
struct Relay {
    addr: SocketAddr,
    /// What the browser sent on each connection, in order.
    sent: Arc<Mutex<Vec<Recorded>>>,
}

impl Relay {
    fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sent: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let all = sent.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(to) else { continue };
                let record = Recorded::default();
                all.lock().unwrap().push(record.clone());
                let (client_in, server_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || copy(client_in, server_out, Some(record)));
                std::thread::spawn(move || copy(server, client, None));
            }
        });
        Relay { addr, sent }
    }

    /// The bodies of the `POST {path}` requests the browser sent, raw, in the order
    /// their first bytes arrived (Chromium may send a later one on an older connection).
    fn bodies(&self, path: &str) -> Vec<String> {
        let start = format!("POST {path} HTTP/1.1\r\n");
        let mut out = Vec::new();
        for record in self.sent.lock().unwrap().iter() {
            let record = record.lock().unwrap();
            let bytes = String::from_utf8_lossy(&record.bytes).into_owned();
            for (at, _) in bytes.match_indices(&start) {
                let read = record.reads.iter().rev().find(|(offset, _)| *offset <= at).unwrap().1;
                let request = &bytes[at + start.len()..];
                let (head, rest) = request.split_once("\r\n\r\n").expect("a whole request head");
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .expect("a beacon announces its length");
                out.push((read, rest[..length].to_string()));
            }
        }
        out.sort_by_key(|(read, _)| *read);
        out.into_iter().map(|(_, body)| body).collect()
    }
}

/// Copies `from` to `to` until either ends, keeping a copy in `record`.
fn copy(mut from: TcpStream, mut to: TcpStream, record: Option<Recorded>) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
        if let Some(r) = &record {
            let mut r = r.lock().unwrap();
            let offset = r.bytes.len();
            r.reads.push((offset, READS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)));
            r.bytes.extend_from_slice(&buf[..n]);
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// The same visit, directly at the app and through the proxy (by the relay).
struct Visits {
    direct: Vec<Value>,
    proxied: Vec<Value>,
    relay: Relay,
}

/// Runs `steps(base)` in Chromium at the app and at the proxy.
fn visit(app: SocketAddr, proxy: &Proxy, steps: impl Fn(&str) -> Vec<Value>) -> Visits {
    let context = || format!("proxy log:\n{}", proxy.log_text());
    let relay = Relay::start(proxy.addr);
    let direct = support::run_browser(steps(&format!("http://{app}")), &context);
    let proxied = support::run_browser(steps(&format!("http://{}", relay.addr)), &context);
    Visits { direct, proxied, relay }
}

/// A step's Messenger calls, with a JWT the app signs (its `exp` is the second it was
/// signed) as a placeholder.
fn calls(step: &Value) -> Value {
    let mut calls = step["calls"].clone();
    for call in calls.as_array_mut().into_iter().flatten() {
        if let Some(jwt) = call["settings"].get_mut("intercom_user_jwt") {
            *jwt = json!("(the app's JWT)");
        }
    }
    calls
}

impl Visits {
    /// Every step loaded cleanly and the Messenger got the same calls on it both ways.
    fn assert_booted_as_directly(&self) {
        for (n, (direct, proxied)) in self.direct.iter().zip(&self.proxied).enumerate() {
            for step in [direct, proxied] {
                assert_eq!(step["status"], 200, "step {n}: {step:#}");
                assert_eq!(step["pageErrors"], json!([]), "step {n}: {step:#}");
                assert_eq!(step["cspViolations"], json!([]), "step {n}: {step:#}");
                assert_eq!(step["timedOut"], false, "step {n}: {step:#}");
            }
            assert_eq!(
                calls(proxied),
                calls(direct),
                "step {n}: the Messenger booted otherwise through the proxy"
            );
        }
    }

    /// The report bodies Chromium sent to the proxy, raw, after `user_values` were
    /// checked absent from them.
    fn reports(&self, user_values: &[&str]) -> Vec<Value> {
        let raw = self.relay.bodies("/__isp/report");
        for body in &raw {
            for v in user_values {
                assert!(!body.contains(v), "{v:?} left the browser in a report: {body}");
            }
        }
        raw.iter()
            .map(|b| {
                serde_json::from_str(b).unwrap_or_else(|e| panic!("a report is JSON ({e}): {b}"))
            })
            .collect()
    }
}

/// `verdict` with `fields` in the proxy's metrics and log sample.
fn assert_received(proxy: &Proxy, verdict: &str, fields: &str) {
    let (text, samples) = scrape(proxy);
    assert!(
        value(&samples, &format!("intercom_secure_proxy_page_reports_total{{verdict={verdict}}}"))
            >= 1.0,
        "{text}"
    );
    let log = proxy.log_text();
    assert!(
        log.contains(&format!("the Messenger boots {verdict} (fields in clear: {fields})")),
        "{log}"
    );
}

// ---------------------------------------------------------------------------
// The demo's sample app.

/// `intercom-secure-proxy demo` on free ports (only its sample app is used), killed
/// when dropped.
struct Demo {
    child: Child,
    app: SocketAddr,
}

impl Demo {
    fn start() -> Demo {
        let (child, app, _) = support::start_demo(&[], Stdio::null);
        Demo { child, app: SocketAddr::from(([127, 0, 0, 1], app)) }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Logs `form` in with a real form POST to `at` and returns the `Cookie` header of the
/// session cookie named `cookie`.
fn login(at: &str, form: &str, cookie: &str) -> String {
    let got = support::send(
        "POST",
        &format!("{at}/login"),
        &[("content-type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    );
    assert_eq!(got.status, 302, "{}", got.text());
    // PHP's session_regenerate_id() sends two cookies: the last one counts.
    let set = got
        .all("set-cookie")
        .into_iter()
        .rfind(|c| c.starts_with(&format!("{cookie}=")))
        .expect("a session cookie");
    set.split(';').next().unwrap().to_string()
}

/// The same page, directly and through the proxy, is the same bytes but for the
/// observer.
fn assert_same_bytes(app: SocketAddr, proxy: &Proxy, path: &str, cookie: &str) {
    let headers = [("cookie", cookie), ("accept", "text/html")];
    let direct = support::get(&format!("http://{app}{path}"), &headers);
    let proxied = support::get(&proxy.url(path), &headers);
    assert_eq!(direct.status, 200);
    assert!(support::carries_the_observer(&proxied.text()), "{}", proxied.text());
    assert_eq!(
        String::from_utf8_lossy(&without_our_script(&proxied.body)),
        direct.text(),
        "{path}: not the app's bytes"
    );
    assert!(
        proxied.all("set-cookie").iter().all(|c| !c.starts_with("__isp_")),
        "no cookie of ours"
    );
}

#[test]
fn the_demo_in_report_only_boots_as_directly_and_reports_insecure_without_a_value() {
    let demo = Demo::start();
    let proxy = report_only_proxy(demo.app, "demo1234", "demo_session");
    let session = login(&proxy.url(""), "username=alice", "demo_session");
    assert_same_bytes(demo.app, &proxy, "/", &session);

    let visits = visit(demo.app, &proxy, |base| {
        vec![
            json!({"goto": format!("{base}/login"), "form": {"username": "alice"}, "wait": "boot"}),
            json!({"goto": format!("{base}/account")}),
            json!({"goto": format!("{base}/login")}),
        ]
    });
    visits.assert_booted_as_directly();
    assert_eq!(
        visits.proxied[0]["calls"][0]["settings"]["user_id"], "alice",
        "the demo's insecure boot, as the app makes it"
    );
    let reports = visits.reports(&["alice", "alice@example.com", "Alice Example"]);
    assert_eq!(
        reports,
        [
            json!({"verdict": "insecure", "fields": ["user_id", "email"]}),
            json!({"verdict": "none", "fields": []})
        ],
        "one report per page view, in order"
    );
    assert_received(&proxy, "insecure", "user_id, email");
    assert_received(&proxy, "none", "none");
}

// ---------------------------------------------------------------------------
// Apache + mod_php.

#[test]
fn apache_mod_php_in_report_only_boots_as_directly_and_reports_insecure_and_jwt_without_a_value() {
    let app = Server::start(Kind::Apache);
    let proxy = report_only_proxy(app.addr, support::APP_ID, Kind::Apache.session_cookie());
    let session =
        login(&format!("http://{}", app.addr), "user=alice", Kind::Apache.session_cookie());
    assert_same_bytes(app.addr, &proxy, "/", &session);
    assert_same_bytes(app.addr, &proxy, "/account", &session);

    let visits = visit(app.addr, &proxy, |base| {
        vec![
            json!({"goto": format!("{base}/login"), "form": {"user": "alice"}, "wait": "boot"}),
            json!({"goto": format!("{base}/secure"), "wait": "boot"}),
            json!({"goto": format!("{base}/login-page")}),
        ]
    });
    visits.assert_booted_as_directly();
    assert!(
        visits.proxied[1]["calls"][0]["settings"]["intercom_user_jwt"].is_string(),
        "the app's own token, untouched"
    );
    let reports = visits.reports(&["u-alice-1001", "alice@example.com", "Alice Liddell"]);
    assert_eq!(
        reports,
        [
            json!({"verdict": "insecure", "fields": ["user_id", "email"]}),
            json!({"verdict": "jwt", "fields": []})
        ],
        "one report per page view, in order"
    );
    assert_received(&proxy, "insecure", "user_id, email");
    assert_received(&proxy, "jwt", "none");
}
