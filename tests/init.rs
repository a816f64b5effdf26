//! `intercom-secure-proxy init` against the real app servers the suite runs (Python's
//! http.server, `php -S`, Apache + mod_php, Express with memory sessions, the demo)
//! and against loopback apps made for one case each: the written configuration loads
//! with `check`, picks the expected source and verifies through a temporary proxy
//! (exit 0); an app whose identity cannot be found exits 4 naming what was tried; a
//! page with nothing to learn from exits 4; nothing is fetched from another origin;
//! no cookie value appears in stdout, stderr or the file. Each run starts headless
//! Chromium (three times: to learn, then the audits before and after).
//!
//! The JWT-cookie, HTML-account-page and trusted-header apps are in
//! tests/init_sources.rs; the Redis session stores in tests/init_redis.rs.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::init::{run_init, InitRun};
use support::legacy::{Kind, Server};
use support::{Reply, Upstream, APP_ID};

/// The official Intercom loader, as apps paste it.
const LOADER: &str = r#"(function(){var w=window;var ic=w.Intercom;if(typeof ic==="function"){ic('reattach_activator');ic('update',w.intercomSettings);}else{var d=document;var i=function(){i.c(arguments);};i.q=[];i.c=function(args){i.q.push(args);};w.Intercom=i;var l=function(){var s=d.createElement('script');s.type='text/javascript';s.async=true;s.src='https://widget.intercom.io/widget/abc12345';var x=d.getElementsByTagName('script')[0];x.parentNode.insertBefore(s,x);};if(document.readyState==='complete'){l();}else if(w.attachEvent){w.attachEvent('onload',l);}else{w.addEventListener('load',l,false);}}})();"#;

/// A page that boots the Messenger the insecure way with `settings`, and `extra` markup.
fn insecure_page(settings: &Value, extra: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>app</title>\n<script>window.intercomSettings = {settings};</script>\n<script>{LOADER}</script>\n</head>\n<body>{extra}<p><a href=\"/logout\">Log out</a></p></body></html>\n"
    )
}

/// A legacy app server: init with its session cookie verifies a current-user endpoint
/// at /api/me with the user's id, email and name, and the logout link.
fn a_legacy_app_gets_a_verified_endpoint(kind: Kind) {
    let app = Server::start(kind);
    let cookie = app.login("alice");
    let session = cookie[kind.session_cookie().len() + 1..].to_string();
    let run = run_init(app.addr, &["--cookie", &cookie], &[]);
    run.expect(0, &[&session]).picked("current_user_endpoint");
    verified(&run);
    let doc: yaml_serde::Value = yaml_serde::from_str(&run.yaml).unwrap();
    let source = &doc["identity"]["sources"][0];
    assert_eq!(source["path"].as_str(), Some("/api/me"), "{}", run.yaml);
    assert_eq!(source["cookies"][0].as_str(), Some(kind.session_cookie()), "{}", run.yaml);
    assert_eq!(source["fields"]["user_id"].as_str(), Some("/id"), "{}", run.yaml);
    assert_eq!(source["fields"]["email"].as_str(), Some("/email"), "{}", run.yaml);
    assert_eq!(doc["intercom"]["app_id"].as_str(), Some(APP_ID), "{}", run.yaml);
    assert_eq!(doc["intercom"]["secret_env"].as_str(), Some("INTERCOM_SECRET"), "{}", run.yaml);
    assert_eq!(doc["logout"]["paths"][0].as_str(), Some("GET /logout"), "{}", run.yaml);
    assert!(
        run.stdout.contains("session cookies: ") && run.stdout.contains(kind.session_cookie()),
        "{}",
        run.all()
    );
    assert!(
        run.yaml.contains("# user id at GET /api/me → /id, matched the page's user_id"),
        "each decision says why:\n{}",
        run.yaml
    );
}

/// The verification ran and passed: the audit through the proxy saw a verified token.
fn verified(run: &InitRun) {
    assert!(run.stdout.contains("\nverified: "), "no verification:\n{}", run.all());
    assert!(run.stdout.contains("jwt (verified)"), "{}", run.all());
    assert!(
        run.stdout.contains("INSECURE"),
        "the before table shows the page as it is:\n{}",
        run.all()
    );
}

#[test]
fn python_http_server() {
    a_legacy_app_gets_a_verified_endpoint(Kind::Python);
}

#[test]
fn php_builtin_server() {
    a_legacy_app_gets_a_verified_endpoint(Kind::Php);
}

#[test]
fn apache_mod_php() {
    a_legacy_app_gets_a_verified_endpoint(Kind::Apache);
}

#[test]
fn express_with_memory_sessions() {
    a_legacy_app_gets_a_verified_endpoint(Kind::Express);
}

#[test]
fn logging_in_through_the_apps_own_form() {
    let app = Server::start(Kind::Php);
    let run =
        run_init(app.addr, &["--login", "/login-page", "--form", "user=alice", "--json"], &[]);
    run.expect(0, &[]).picked("current_user_endpoint");
    let report: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("--json: {e}\n{}", run.all()));
    assert_eq!(report["answer"]["user_id"], "u-alice-1001", "{report:#}");
    assert_eq!(report["session_cookies"], json!(["PHPSESSID"]), "{report:#}");
    assert_eq!(report["verification"]["passed"], true, "{report:#}");
    // The browser's session is never in the report: only its name.
    let cookies = report.to_string();
    assert!(!cookies.contains("PHPSESSID="), "{cookies}");
}

#[test]
fn the_demo() {
    let (mut child, app_port, _) = support::start_demo(&[], std::process::Stdio::null);
    let r = support::client()
        .post(&format!("http://127.0.0.1:{app_port}/login"))
        .content_type("application/x-www-form-urlencoded")
        .send("username=alice")
        .unwrap();
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("demo_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let run = run_init(
        ([127, 0, 0, 1], app_port).into(),
        &["--cookie", &format!("demo_session={session}")],
        &[],
    );
    let _ = child.kill();
    let _ = child.wait();
    run.expect(0, &[&session]).picked("current_user_endpoint");
    verified(&run);
}

#[test]
fn a_page_with_no_identified_boot_has_nothing_to_learn_from() {
    let app = Server::start(Kind::Python);
    // A cookie the app does not know: the visitor's page boots anonymously.
    let run = run_init(app.addr, &["--cookie", "sid=not-a-session-0123456789"], &[]);
    run.expect(4, &["not-a-session-0123456789"]);
    assert!(run.stderr.contains("no page booted the Messenger with a user"), "{}", run.all());
    assert!(run.stderr.contains(": anonymous"), "says what the page did:\n{}", run.all());
    assert!(run.yaml.is_empty(), "nothing written:\n{}", run.all());
}

/// An app that knows its user only from an opaque cookie and says so on no endpoint
/// (or on /api/me with `api_me`).
fn opaque_app(extra: &'static str, api_me: bool) -> Upstream {
    policed_app(extra, api_me, None)
}

/// [`opaque_app`] whose pages carry this Content-Security-Policy.
fn policed_app(extra: &'static str, api_me: bool, csp: Option<&'static str>) -> Upstream {
    Upstream::start(move |req| {
        let user = req.cookie("opaque").filter(|v| v == "opaque-session-value-42");
        let page = |settings: Value| {
            let html = insecure_page(&settings, extra);
            match csp {
                Some(policy) => Reply::with(
                    200,
                    &[
                        ("Content-Type", "text/html; charset=utf-8"),
                        ("Content-Security-Policy", policy),
                    ],
                    html,
                ),
                None => Reply::html(html),
            }
        };
        match (req.path(), user) {
            ("/", Some(_)) => {
                page(json!({"app_id": APP_ID, "user_id": "u-42", "email": "u42@example.com"}))
            }
            ("/", None) => page(json!({"app_id": APP_ID})),
            ("/api/me", Some(_)) if api_me => Reply::with(
                200,
                &[("Content-Type", "application/json")],
                r#"{"user":{"id":"u-42","email":"u42@example.com"}}"#,
            ),
            ("/api/me", None) if api_me => {
                Reply::with(401, &[("Content-Type", "application/json")], "{}")
            }
            ("/logout", _) => Reply::with(
                302,
                &[("Location", "/"), ("Set-Cookie", "opaque=; Max-Age=0; Path=/")],
                "",
            ),
            _ => Reply::with(404, &[("Content-Type", "text/plain")], "not found"),
        }
    })
}

#[test]
fn an_app_whose_identity_cannot_be_found_exits_4_naming_every_source_tried() {
    let app = opaque_app("", false);
    let run = run_init(app.addr, &["--cookie", "opaque=opaque-session-value-42"], &[]);
    run.expect(4, &["opaque-session-value-42"]);
    assert!(run.yaml.is_empty(), "nothing written:\n{}", run.all());
    assert!(run.stdout.contains("no identity source found"), "{}", run.all());
    let tried_lines: Vec<&str> = run.stdout.lines().filter(|l| l.contains("rejected: ")).collect();
    for source in ["trusted_header", "jwt_cookie", "redis_session", "current_user_endpoint"] {
        assert!(
            tried_lines.iter().any(|l| l.trim_start().starts_with(source)),
            "{source} not among the sources tried:\n{}",
            run.all()
        );
    }
    for tried in [
        "no --header given",
        "no --redis given",
        "GET /api/me",
        "GET /users/me",
        "GET /profile.json",
        "GET /account",
        "answered 404",
    ] {
        assert!(run.stdout.contains(tried), "{tried:?} not in the report:\n{}", run.all());
    }
}

#[test]
fn nothing_is_fetched_from_another_origin() {
    let other = Upstream::start(|_| Reply::with(200, &[("Content-Type", "text/plain")], "leaked"));
    let o = other.addr;
    let extra: &'static str = Box::leak(
        format!("<img src=\"http://{o}/pixel.gif\"><script src=\"http://{o}/vendor.js\"></script><script>fetch('http://{o}/x').catch(function () {{}}); fetch('/api/me');</script><a href=\"http://{o}/account\">Account</a>").into_boxed_str(),
    );
    let app = opaque_app(extra, true);
    let run = run_init(app.addr, &["--cookie", "opaque=opaque-session-value-42"], &[]);
    run.expect(0, &["opaque-session-value-42"]).picked("current_user_endpoint");
    assert!(run.yaml.contains("user_id: \"/user/id\""), "{}", run.yaml);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        other.requests().len(),
        0,
        "the other origin was reached: {:?}",
        other.requests().iter().map(|r| r.path().to_string()).collect::<Vec<_>>()
    );
    // The page's own same-origin JSON request was the first candidate.
    assert!(app.count("/api/me") > 0);
}

#[test]
fn a_policy_that_blocks_the_messenger_is_learned_through_and_its_additions_printed() {
    let app = policed_app(
        "",
        true,
        Some("default-src 'self'; script-src 'self' 'unsafe-inline'; connect-src 'self'"),
    );
    let run = run_init(app.addr, &["--cookie", "opaque=opaque-session-value-42"], &[]);
    // Learned and written, but through the proxy the policy still keeps the Messenger
    // from loading: not verified until the app's team adds what is printed.
    run.expect(1, &["opaque-session-value-42"]).picked("current_user_endpoint");
    assert!(
        run.stdout.contains("the page's policy blocks the Messenger; the app's team must add:"),
        "{}",
        run.all()
    );
    assert!(
        run.stdout
            .contains("    script-src https://widget.intercom.io https://js.intercomcdn.com\n"),
        "{}",
        run.all()
    );
    assert!(
        run.stdout.contains(
            "    connect-src https://api-iam.intercom.io https://*.intercom.io wss://*.intercom.io"
        ),
        "{}",
        run.all()
    );
    assert!(run.stdout.contains("NOT verified"), "{}", run.all());
}

#[test]
fn bad_arguments_exit_2_with_one_clear_message() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--upstream", "ftp://127.0.0.1:9"],
            "--upstream \"ftp://127.0.0.1:9\" is not an absolute http:// or https:// URL",
        ),
        (&["--upstream", "http://127.0.0.1:9/app"], "must be the app's origin only"),
        (&["--upstream", "http://127.0.0.1:9"], "init learns from a logged-in page"),
        (
            &["--upstream", "http://127.0.0.1:9", "--form", "password=S3CR3TPASS"],
            "--form needs --login PATH",
        ),
        (
            &["--upstream", "http://127.0.0.1:9", "--cookie", "s=S3CR3TPASS value"],
            "--cookie #1: the value of cookie s has a space",
        ),
    ];
    for (args, message) in cases {
        let out = Command::new(support::binary()).arg("init").args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("S3CR3TPASS"), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
}

#[test]
fn a_chromium_that_cannot_start_exits_3() {
    let app = opaque_app("", true);
    let out = Command::new(support::binary())
        .args([
            "init",
            "--upstream",
            &format!("http://{}", app.addr),
            "--cookie",
            "opaque=opaque-session-value-42",
            "--chromium",
            "/bin/false",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The processes whose parent is `pid`, with their command lines.
fn children(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        // The parent is the second field after the command name in parentheses.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if parent == Some(pid) {
            let cmdline = std::fs::read_to_string(format!("/proc/{child}/cmdline"))
                .unwrap_or_default()
                .replace('\0', " ");
            out.push((child, cmdline));
        }
    }
    out
}

/// Whether `pid` is running (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn ctrl_c_stops_the_browser_and_the_temporary_proxy() {
    let app = opaque_app("", true);
    let mut init = Command::new(support::binary())
        .args([
            "init",
            "--upstream",
            &format!("http://{}", app.addr),
            "--cookie",
            "opaque=opaque-session-value-42",
            "--settle",
            "3s",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the verification: the temporary proxy and an audit's Chromium running at once.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let helpers = loop {
        let now = children(init.id());
        let proxy =
            now.iter().any(|(_, cmd)| cmd.contains(" run -c ") && cmd.contains("verify.yaml"));
        if proxy && now.len() >= 2 {
            break now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no temporary proxy and browser seen; children: {now:?}"
        );
        assert!(init.try_wait().unwrap().is_none(), "init ended before its verification was seen");
        std::thread::sleep(Duration::from_millis(50));
    };
    sigint(init.id());
    let status = init.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 2), "{status:?}");
    std::thread::sleep(Duration::from_millis(500));
    for (pid, cmd) in helpers {
        assert!(!alive(pid), "still running after Ctrl-C: {pid} {cmd}");
    }
}

fn sigint(pid: u32) {
    let ok = Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap();
    assert!(ok.success());
}
