//! `intercom-secure-proxy audit`: the real binary, real headless Chromium, real loopback
//! servers.
//! - the demo app direct (insecure, exit 1, the fields named; the session survives the
//!   logout) and through the proxy (verified JWTs for alice, exit 0; the logout shuts
//!   the Messenger down, also through an interstitial page), the `--json` output parsed;
//! - fixture pages, each classified: `user_hash`, no Intercom, anonymous, an expired JWT
//!   (signed with PyJWT), a per-user page that shared caches may store;
//! - nothing reaches a host outside the audited origins, and the stand-in widget still
//!   answers the Messenger;
//! - bad arguments exit 2 with one message, a Chromium that cannot start exits 3.
//!
//! Needs Chromium (`INTERCOM_TEST_CHROMIUM` or the first on PATH) and, for the tokens,
//! Debian's python3-jwt; without them these tests fail, they never skip.

#[path = "jwt/sign.rs"]
mod sign;
mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::{binary, free_port, Reply, Upstream, APP_ID, SECRET};

/// The demo's documented default secret (`INTERCOM_SECRET` unset).
const DEMO_SECRET: &str = "demo-secret-not-for-production";

/// The official loader for the test workspace: it loads the real widget URL, which the
/// audit answers with the stand-in.
const LOADER: &str = r#"(function(){var w=window;var ic=w.Intercom;if(typeof ic==="function"){ic('reattach_activator');ic('update',w.intercomSettings);}else{var d=document;var i=function(){i.c(arguments);};i.q=[];i.c=function(args){i.q.push(args);};w.Intercom=i;var l=function(){var s=d.createElement('script');s.type='text/javascript';s.async=true;s.src='https://widget.intercom.io/widget/abc12345';var x=d.getElementsByTagName('script')[0];x.parentNode.insertBefore(s,x);};if(document.readyState==='complete'){l();}else if(w.attachEvent){w.attachEvent('onload',l);}else{w.addEventListener('load',l,false);}}})();"#;

/// What one `audit` run printed and returned.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("--json output is not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr)
        })
    }
}

/// Runs `audit` with `args` (and `--chromium` from INTERCOM_TEST_CHROMIUM when set).
fn audit(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(binary());
    command.arg("audit").args(args).env_remove("INTERCOM_SECRET").envs(env.iter().copied());
    if let Some(chromium) = std::env::var_os("INTERCOM_TEST_CHROMIUM") {
        command.arg("--chromium").arg(chromium);
    }
    let out = command.output().expect("run the binary");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn page<'a>(report: &'a Value, url: &str) -> &'a Value {
    report["pages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["url"] == url)
        .unwrap_or_else(|| panic!("no page {url} in {report:#}"))
}

fn codes(page: &Value) -> Vec<&str> {
    page["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect()
}

// ---------------------------------------------------------------------------
// The demo app, direct and through the proxy.

/// `intercom-secure-proxy demo` on free ports, killed when dropped.
struct Demo {
    child: Child,
    app: u16,
    proxy: u16,
}

impl Demo {
    fn start() -> Demo {
        let (child, app, proxy) = support::start_demo(&[], Stdio::null);
        Demo { child, app, proxy }
    }

    /// Logs `user` in with a real form POST to `port`; the session cookie's value.
    fn login(&self, port: u16, user: &str) -> String {
        let r = support::client()
            .post(&format!("http://127.0.0.1:{port}/login"))
            .content_type("application/x-www-form-urlencoded")
            .send(format!("username={user}"))
            .unwrap();
        assert_eq!(r.status().as_u16(), 302);
        let cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .find(|c| c.starts_with("demo_session="))
            .expect("a session cookie");
        cookie["demo_session=".len()..].split(';').next().unwrap().to_string()
    }

    /// A proxy of its own in front of the demo's app (its /api/me, its workspace:
    /// a token for another one would fail -c), with `more` config.
    fn proxy(&self, more: &str) -> support::Proxy {
        let app: std::net::SocketAddr = format!("127.0.0.1:{}", self.app).parse().unwrap();
        let identity = "identity:\n  sources:\n    - type: current_user_endpoint\n      path: /api/me\n      cookies: [demo_session]\n";
        let sections = support::sections(app, identity, more);
        support::Proxy::start(&sections.replace(&format!("app_id: {APP_ID}"), "app_id: demo1234"))
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_demo_app_direct_is_insecure_and_its_session_survives_logout() {
    let demo = Demo::start();
    let session = demo.login(demo.app, "alice");
    let base = format!("http://127.0.0.1:{}", demo.app);
    let home = format!("{base}/");
    let run = audit(
        &[
            "--json",
            "--cookie",
            &format!("demo_session={session}"),
            &home,
            "--logout",
            &format!("{base}/logout"),
        ],
        &[],
    );
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(
        !run.stdout.contains(&session) && !run.stderr.contains(&session),
        "the session cookie's value is never printed"
    );
    let report = run.json();
    assert_eq!(report["passed"], false);
    let p = page(&report, &home);
    assert_eq!(p["classification"], "insecure");
    assert_eq!(p["fields"], json!(["user_id", "email"]));
    assert_eq!(p["user_id"], "alice");
    assert_eq!(p["app_id"], "demo1234");
    assert_eq!(p["status"], 200);
    assert_eq!(p["jwt"], Value::Null);
    assert_eq!(codes(p), ["insecure_identity"]);
    assert!(p["findings"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("user_id, email given to the Messenger in clear"));

    let logout = &report["logout"];
    assert_eq!(logout["passed"], false);
    assert_eq!(logout["shutdown_seen"], false);
    assert_eq!(logout["intercom_cookies_left"], json!(["intercom-session-demo1234"]));
    assert_eq!(logout["findings"].as_array().unwrap().len(), 1, "{logout:#}");
    assert_eq!(logout["findings"][0]["code"], "logout_no_shutdown");
    let message = logout["findings"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("session survives logout") && message.contains("user_id=alice"),
        "{message}"
    );
    // The logout went to the login page, and the home page afterwards did too.
    assert_eq!(logout["pages"], json!([format!("{base}/login"), format!("{base}/login")]));
}

#[test]
fn the_demo_through_the_proxy_boots_with_verified_tokens_and_shuts_down_on_logout() {
    let demo = Demo::start();
    let session = demo.login(demo.proxy, "alice");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("demo.yaml");
    let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/demo.yaml"))
        .unwrap()
        .replace("127.0.0.1:3000", &format!("127.0.0.1:{}", demo.app))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", demo.proxy));
    std::fs::write(&conf, yaml).unwrap();
    let base = format!("http://127.0.0.1:{}", demo.proxy);
    let (home, account) = (format!("{base}/"), format!("{base}/account"));
    let cookie = format!("demo_session={session}");
    let args = [
        "--json",
        "-c",
        conf.to_str().unwrap(),
        "--expect-user",
        "alice",
        "--cookie",
        &cookie,
        &home,
        &account,
        "--logout",
        &format!("{base}/logout"),
    ];
    let run = audit(&args, &[("INTERCOM_SECRET", DEMO_SECRET)]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(
        !run.stdout.contains(&session) && !run.stdout.contains("eyJ"),
        "no cookie value or token in the report"
    );
    let report = run.json();
    assert_eq!(report["passed"], true);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    for url in [&home, &account] {
        let p = page(&report, url);
        assert_eq!(p["classification"], "jwt", "{p:#}");
        assert_eq!(p["fields"], json!([]), "nothing identifying in clear");
        assert_eq!(p["user_id"], "alice");
        assert_eq!(p["jwt"]["verified"], true);
        assert_eq!(p["jwt"]["user_id"], "alice");
        assert_eq!(p["jwt"]["problems"], json!([]));
        let exp = p["jwt"]["exp"].as_u64().unwrap();
        assert!(exp > now && exp <= now + 3600 + 60, "exp {exp} within the demo's 1h lifetime");
        assert!(p["cache_control"].as_str().unwrap().contains("private"));
        assert_eq!(p["shared_cacheable"], false);
        assert_eq!(p["findings"], json!([]));
        assert_eq!(p["passed"], true);
    }
    let logout = &report["logout"];
    assert_eq!(logout["shutdown_seen"], true, "{logout:#}");
    assert_eq!(logout["identified_after"], json!([]));
    assert_eq!(logout["intercom_cookies_left"], json!([]));
    assert_eq!(logout["passed"], true);

    // The same pages with another user expected: the token names alice, not bob.
    let session = demo.login(demo.proxy, "alice");
    let cookie = format!("demo_session={session}");
    let run = audit(
        &[
            "--json",
            "-c",
            conf.to_str().unwrap(),
            "--expect-user",
            "bob",
            "--cookie",
            &cookie,
            &home,
        ],
        &[("INTERCOM_SECRET", DEMO_SECRET)],
    );
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    let p = page(&run.json(), &home).clone();
    assert_eq!(p["jwt"]["problems"], json!(["names user_id alice, expected bob"]));
    assert_eq!(codes(&p), ["jwt_check_failed"]);
}

#[test]
fn a_report_only_page_is_audited_as_the_app_makes_it() {
    // report_only leaves the page's Intercom code alone (only an observer is added):
    // the audit must say what the page is today, insecure, not what enforce would make it.
    let demo = Demo::start();
    let proxy = demo.proxy("rollout:\n  mode: report_only\n");
    let session = demo.login(proxy.addr.port(), "alice");
    let home = proxy.url("/");
    let run = audit(&["--json", "--cookie", &format!("demo_session={session}"), &home], &[]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    let report = run.json();
    let p = page(&report, &home);
    assert_eq!(p["classification"], "insecure", "{p:#}");
    assert_eq!(p["fields"], json!(["user_id", "email"]));
    assert_eq!(p["user_id"], "alice");
    assert_eq!(p["jwt"], Value::Null);
    assert_eq!(codes(p), ["insecure_identity"]);
}

#[test]
fn an_interstitial_logout_is_followed_to_its_shutdown() {
    // The demo's app behind a proxy whose logouts answer with the interstitial page,
    // which runs the shutdown and then navigates on by itself.
    let demo = Demo::start();
    let proxy = demo.proxy("logout:\n  mode: interstitial\n  paths: [\"GET /logout\"]\n");
    let session = demo.login(proxy.addr.port(), "bob");
    let conf = proxy.dir.path().join("proxy.yaml");
    let home = proxy.url("/");
    let cookie = format!("demo_session={session}");
    let args = [
        "--json",
        "-c",
        conf.to_str().unwrap(),
        "--cookie",
        &cookie,
        &home,
        "--logout",
        &proxy.url("/logout"),
    ];
    let run = audit(&args, &[("TEST_INTERCOM_SECRET", SECRET)]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let report = run.json();
    let p = page(&report, &home);
    assert_eq!(
        (
            p["classification"].as_str(),
            p["jwt"]["user_id"].as_str(),
            p["jwt"]["verified"].as_bool()
        ),
        (Some("jwt"), Some("bob"), Some(true))
    );
    let logout = &report["logout"];
    // The interstitial is a page of its own, and the browser went on to the login page.
    assert_eq!(
        logout["pages"],
        json!([proxy.url("/logout"), proxy.url("/login"), proxy.url("/login")]),
        "{logout:#}"
    );
    assert_eq!(
        (logout["shutdown_seen"].as_bool(), logout["passed"].as_bool()),
        (Some(true), Some(true)),
        "{logout:#}"
    );
}

// ---------------------------------------------------------------------------
// Fixture pages.

fn html(head: &str) -> String {
    format!("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>fixture</title>\n{head}</head>\n<body><p>fixture</p></body></html>\n")
}

fn intercom(settings: &Value) -> String {
    format!("<script>window.intercomSettings = {settings};</script>\n<script>{LOADER}</script>\n")
}

/// A config file for the test workspace (the secret in TEST_INTERCOM_SECRET).
fn test_config(dir: &tempfile::TempDir, upstream: std::net::SocketAddr) -> String {
    let path = dir.path().join("proxy.yaml");
    let yaml = format!(
        "listen: [\"127.0.0.1:{}\"]\n{}",
        free_port(),
        support::sections(upstream, support::TRUSTED_HEADER, "")
    );
    std::fs::write(&path, yaml).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn fixture_pages_are_each_classified() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let tokens = sign::sign(json!({"tokens": {
        "expired": {"alg": "HS256", "secret": SECRET, "claims": {"user_id": "u-exp", "iat": now - 7200, "exp": now - 3600}},
        "fresh": {"alg": "HS256", "secret": SECRET, "claims": {"user_id": "u-cache", "iat": now, "exp": now + 600}},
    }}))["tokens"]
        .clone();
    let expired = intercom(&json!({"app_id": APP_ID, "intercom_user_jwt": tokens["expired"]}));
    let cached = intercom(&json!({"app_id": APP_ID, "intercom_user_jwt": tokens["fresh"]}));
    let app = Upstream::start(move |req| match req.path() {
        "/user-hash" => Reply::html(html(&intercom(
            &json!({"app_id": APP_ID, "user_id": "u-7", "email": "u7@example.com", "user_hash": "0f".repeat(32)}),
        ))),
        "/plain" => Reply::html(html("<script>document.title = 'no Intercom';</script>\n")),
        "/anonymous" => Reply::html(html(&intercom(&json!({"app_id": APP_ID})))),
        "/expired" => Reply::html(html(&expired)),
        "/cached" => Reply::with(
            200,
            &[
                ("Content-Type", "text/html; charset=utf-8"),
                ("Cache-Control", "public, max-age=60"),
            ],
            html(&cached),
        ),
        _ => Reply::with(404, &[("Content-Type", "text/plain")], "not found"),
    });
    let dir = tempfile::tempdir().unwrap();
    let conf = test_config(&dir, app.addr);
    let url = |path: &str| format!("http://{}{path}", app.addr);
    let urls: Vec<String> = ["/user-hash", "/plain", "/anonymous", "/expired", "/cached"]
        .iter()
        .map(|p| url(p))
        .collect();
    let mut args = vec!["--json", "-c", &conf];
    args.extend(urls.iter().map(String::as_str));
    let run = audit(&args, &[("TEST_INTERCOM_SECRET", SECRET)]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(!run.stdout.contains("eyJ"), "tokens are never printed");
    let report = run.json();

    let p = page(&report, &url("/user-hash"));
    assert_eq!(
        (p["classification"].as_str(), p["user_id"].as_str()),
        (Some("user_hash"), Some("u-7"))
    );
    assert_eq!(p["fields"], json!(["user_id", "email"]));
    assert_eq!(p["passed"], true, "user_hash is legacy, not a failure: {p:#}");

    let p = page(&report, &url("/plain"));
    assert_eq!(
        (p["classification"].as_str(), p["passed"].as_bool()),
        (Some("none"), Some(true)),
        "{p:#}"
    );
    assert_eq!(p["app_id"], Value::Null);

    let p = page(&report, &url("/anonymous"));
    assert_eq!(
        (p["classification"].as_str(), p["passed"].as_bool()),
        (Some("anonymous"), Some(true)),
        "{p:#}"
    );
    assert_eq!((p["app_id"].as_str(), &p["user_id"]), (Some(APP_ID), &Value::Null));

    let p = page(&report, &url("/expired"));
    assert_eq!(p["classification"], "jwt", "{p:#}");
    assert_eq!(p["jwt"]["verified"], true, "signed with the workspace's secret");
    assert_eq!(p["jwt"]["user_id"], "u-exp");
    assert_eq!(p["jwt"]["exp"], now - 3600);
    let problems = p["jwt"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{p:#}");
    assert!(problems[0].as_str().unwrap().starts_with("expired 1h"), "{problems:?}");
    assert_eq!(codes(p), ["jwt_check_failed"]);

    let p = page(&report, &url("/cached"));
    assert_eq!(p["classification"], "jwt", "{p:#}");
    assert_eq!(p["jwt"]["problems"], json!([]));
    assert_eq!(p["cache_control"], "public, max-age=60");
    assert_eq!(p["shared_cacheable"], true);
    assert_eq!(codes(p), ["shared_cacheable"]);
}

#[test]
fn nothing_leaves_for_other_hosts_and_the_stand_in_answers_the_messenger() {
    let other = Upstream::start(|_| Reply::with(200, &[("Content-Type", "text/plain")], "leaked"));
    let o = other.addr;
    let page_html = html(&format!(
        "<img src=\"http://{o}/pixel.gif\">\n<script src=\"http://{o}/vendor.js\"></script>\n<script>fetch('http://{o}/x').catch(function () {{}}); try {{ new WebSocket('ws://{o}/ws'); }} catch (e) {{}}</script>\n<img src=\"https://www.google-analytics.com/collect?uid=u-leak\">\n{}",
        intercom(&json!({"app_id": APP_ID, "user_id": "u-leak", "email": "leak@example.com"}))
    ));
    let app = Upstream::start(move |req| match req.path() {
        "/" => Reply::html(page_html.clone()),
        _ => Reply::with(404, &[("Content-Type", "text/plain")], "not found"),
    });
    let home = format!("http://{}/", app.addr);
    let run = audit(&["--json", &home], &[]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        other.requests().len(),
        0,
        "the other loopback server was reached: {:?}",
        other.requests()
    );
    let report = run.json();
    let p = page(&report, &home);
    // Classified from the stand-in widget's calls, the real widget URL answered locally.
    assert_eq!(p["classification"], "insecure", "{p:#}");
    assert_eq!(p["user_id"], "u-leak");
    // The image, the script and fetch(); the WebSocket; the analytics pixel.
    let expected = json!({format!("http://{o}"): 3, format!("ws://{o}"): 1, "https://www.google-analytics.com": 1});
    assert_eq!(p["blocked_origins"], expected, "{p:#}");
}

// ---------------------------------------------------------------------------
// Usage errors.

#[test]
fn bad_arguments_exit_2_with_one_clear_message() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["--cookie", "sessionS3CR3T", "http://127.0.0.1:9/"],
            "--cookie #1: there is no '='; write it as NAME=VALUE",
        ),
        (
            &["--cookie", "a=b", "--cookie", "s=S3CR3T value", "http://127.0.0.1:9/"],
            "--cookie #2: the value of cookie s has a space",
        ),
        (&["127.0.0.1:9/"], "URL #1 \"127.0.0.1:9/\" is not an absolute http:// or https:// URL"),
        (
            &["-c", "/nonexistent/proxy.yaml", "http://127.0.0.1:9/"],
            "config error at `-c`: cannot read config file /nonexistent/proxy.yaml",
        ),
    ];
    for (args, expected) in cases {
        let run = audit(args, &[]);
        assert_eq!(run.code, Some(2), "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.starts_with(&format!("intercom-secure-proxy audit: {expected}")),
            "{args:?}: {}",
            run.stderr
        );
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(!run.stderr.contains("S3CR3T"), "a cookie value was printed: {}", run.stderr);
        assert!(run.stdout.is_empty());
    }
    // A URL outside every site of a `sites:` config cannot have its tokens checked.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("sites.yaml");
    let yaml = format!(
        "listen: [\"127.0.0.1:{}\"]\nsites:\n  - hosts: [app.example.com]\n    upstream: {{addresses: [\"127.0.0.1:9\"]}}\n    intercom: {{app_id: {APP_ID}, secret_env: TEST_INTERCOM_SECRET}}\n    identity: {{sources: [{{type: trusted_header, trusted_cidrs: [\"127.0.0.1/32\"]}}]}}\n",
        free_port()
    );
    std::fs::write(&conf, yaml).unwrap();
    let run = audit(
        &["-c", conf.to_str().unwrap(), "http://127.0.0.1:9/"],
        &[("TEST_INTERCOM_SECRET", SECRET)],
    );
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("no site of the configuration answers host \"127.0.0.1\""),
        "{}",
        run.stderr
    );
}

#[test]
fn a_chromium_that_cannot_start_exits_3() {
    let out = Command::new(binary())
        .args(["audit", "--chromium", "/nonexistent/chromium", "http://127.0.0.1:9/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr, "intercom-secure-proxy audit: cannot start Chromium at /nonexistent/chromium: No such file or directory (os error 2)\n");
    let out = Command::new(binary())
        .args(["audit", "--chromium", "/bin/false", "http://127.0.0.1:9/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with(
        "intercom-secure-proxy audit: Chromium at /bin/false exited or closed its DevTools pipe"
    ));
}
