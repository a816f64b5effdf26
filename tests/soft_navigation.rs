//! Soft navigations in real Chromium: Turbo 8, Turbolinks 5, htmx `hx-boost` and
//! jquery-pjax (from npm) fetch the next page and run its scripts in the window of the
//! first full load, where the page script of that load still sits with its token.
//!
//! The app (`tests/legacy/express/softnav.js`, Express) boots Intercom the insecure way
//! on every page, with the snippet in the body, so the next page's scripts hand the
//! Messenger the next user. In one tab: a full load as alice, a logout through the
//! library, then a login as bob through the library. The Messenger must be shut down
//! after the logout, no call may ever carry alice's token after it, no call may carry a
//! plain identity, and bob's Messenger must carry bob's own verified token.
//!
//! Needs Node 20+, Debian's Chromium, `npm ci` in tests/browser and tests/legacy/express
//! (`make test` does it); without them these tests fail, they never skip.

mod support;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::Proxy;

const ALICE_ID: &str = "u-alice-1001";
const BOB_ID: &str = "u-bob-2002";

/// The Express app of one library, on its own port and in its own process group.
struct App {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl App {
    fn start(lib: &str) -> App {
        support::on_a_free_port(&format!("the {lib} app"), || App::try_start(lib))
    }

    fn try_start(lib: &str) -> Result<App, String> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let express = root.join("tests/legacy/express");
        assert!(
            express.join("node_modules/express-session").is_dir() && root.join("tests/browser/node_modules/@hotwired/turbo").is_dir(),
            "the soft navigation app's dependencies are missing: run `make test`, or `npm ci` in tests/legacy/express and tests/browser"
        );
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let port = support::free_port();
        let mut child = Command::new("node")
            .arg(express.join("softnav.js"))
            .env("PORT", port.to_string())
            .env("LIB", lib)
            .env("LIBS", root.join("tests/browser/node_modules"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run node ({e}): install Node 20+; `make test` does")
            });
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let text = || std::fs::read_to_string(&log).unwrap_or_default();
        support::listening_or_exited(
            addr,
            &mut child,
            Duration::from_secs(20),
            &format!("{lib} app"),
            &text,
        )?;
        Ok(App { child, addr, _dir: dir })
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ =
            Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.wait();
    }
}

fn start_proxy(app: &App) -> Proxy {
    let identity = "identity:\n  sources:\n    - type: current_user_endpoint\n      path: /api/me\n      cookies: [connect.sid]\n      timeout: 2s\n";
    Proxy::start(&support::sections(
        app.addr,
        identity,
        "logout:\n  paths: [\"GET|POST /logout\"]\n",
    ))
}

/// The user a call's token is for (after verifying it), if it carries one.
fn token_user(call: &Value) -> Option<String> {
    let token = call["settings"]["intercom_user_jwt"].as_str()?;
    Some(support::verify(token)["user_id"].as_str().expect("user_id in the token").to_string())
}

/// A page expression: some Messenger call carries a token for `user`.
fn booted_with_token_of(user: &str) -> String {
    format!(
        "(window.__intercom && window.__intercom.calls || []).some(function (c) {{ var t = c.settings && c.settings.intercom_user_jwt; \
         if (!t) return false; var p = t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'); \
         return JSON.parse(atob(p + '==='.slice((p.length + 3) % 4))).user_id === '{user}'; }})"
    )
}

/// One tab: a full load as alice, a logout and a login as bob through the library.
fn logout_then_login_as_another_user(lib: &str, logout: Value, login: Value) {
    let app = App::start(lib);
    let proxy = start_proxy(&app);
    let url = |p: &str| proxy.url(p);
    let logged_out = "document.getElementById('title') && document.getElementById('title').textContent === 'Sign in'";
    let mut steps = vec![
        json!({"goto": url("/login?user=alice"), "wait": "boot"}),
        logout,
        login,
        json!({"stay": true, "waitFor": booted_with_token_of("u-bob-2002"), "timeoutMs": 8000, "eval": "document.title"}),
    ];
    steps[1]["waitFor"] = json!(logged_out);
    let report = support::run_browser(steps, &|| format!("proxy log:\n{}", proxy.log_text()));
    let context = || {
        format!(
            "{}\nproxy log:\n{}",
            serde_json::to_string_pretty(&report).unwrap(),
            proxy.log_text()
        )
    };

    let first = &report[0];
    assert_eq!(first["status"], 200, "{}", context());
    assert!(
        calls(first).iter().any(|c| token_user(c).as_deref() == Some(ALICE_ID)),
        "alice's full load carries her token\n{}",
        context()
    );
    for (n, step) in report.iter().enumerate() {
        assert_eq!(step["timedOut"], false, "step {n} never saw what it waited for\n{}", context());
        assert_eq!(step["pageErrors"], json!([]), "page errors in step {n}\n{}", context());
    }
    assert_eq!(
        report[3]["evalResult"],
        json!(format!("Dashboard {BOB_ID}")),
        "bob's page came by a soft navigation\n{}",
        context()
    );

    // Every call of the one document the tab kept, in order.
    let all = calls(&report[3]);
    for c in all {
        let s = &c["settings"];
        assert!(
            s.get("user_id").is_none() && s.get("email").is_none(),
            "a plain identity reached the Messenger: {c}\n{}",
            context()
        );
    }
    let shutdown = all
        .iter()
        .position(|c| c["method"] == "shutdown")
        .unwrap_or_else(|| panic!("no shutdown ran after the logout\n{}", context()));
    let last_alice = all
        .iter()
        .rposition(|c| token_user(c).as_deref() == Some(ALICE_ID))
        .expect("alice's calls");
    let first_bob =
        all.iter().position(|c| token_user(c).as_deref() == Some(BOB_ID)).expect("bob's call");
    assert!(
        last_alice < shutdown && shutdown < first_bob,
        "alice's token after the logout, or bob's before the shutdown\n{}",
        context()
    );
    // Bob's Messenger is a new one: booted after the shutdown, with his token from then on.
    let boot = all[shutdown..first_bob + 1].iter().any(|c| c["method"] == "boot");
    assert!(boot, "nothing booted between the shutdown and bob's token\n{}", context());
    for c in &all[first_bob..] {
        assert_ne!(
            token_user(c).as_deref(),
            Some(ALICE_ID),
            "alice's token after bob's login\n{}",
            context()
        );
    }
}

fn calls(step: &Value) -> &[Value] {
    step["calls"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

#[test]
fn turbo_logout_and_login_through_forms() {
    logout_then_login_as_another_user(
        "turbo",
        json!({"stay": true, "click": "#logout", "timeoutMs": 8000}),
        json!({"stay": true, "fill": {"#user": "bob"}, "click": "#login", "waitFor": "document.title.indexOf('Dashboard') === 0", "timeoutMs": 8000}),
    );
}

#[test]
fn turbolinks_logout_and_login_through_links() {
    logout_then_login_as_another_user(
        "turbolinks",
        json!({"stay": true, "click": "#logout-link", "timeoutMs": 8000}),
        json!({"stay": true, "click": "#login-bob", "waitFor": "document.title.indexOf('Dashboard') === 0", "timeoutMs": 8000}),
    );
}

#[test]
fn htmx_boost_logout_and_login_through_forms() {
    logout_then_login_as_another_user(
        "htmx",
        json!({"stay": true, "click": "#logout", "timeoutMs": 8000}),
        json!({"stay": true, "fill": {"#user": "bob"}, "click": "#login", "waitFor": "document.title.indexOf('Dashboard') === 0", "timeoutMs": 8000}),
    );
}

#[test]
fn pjax_logout_and_login_through_links() {
    logout_then_login_as_another_user(
        "pjax",
        json!({"stay": true, "click": "#logout-link", "timeoutMs": 8000}),
        json!({"stay": true, "click": "#login-bob", "waitFor": "document.title.indexOf('Dashboard') === 0", "timeoutMs": 8000}),
    );
}
