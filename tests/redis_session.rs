//! The `redis_session` identity source against the real thing: a real `redis-server`
//! on a free loopback port, and real apps that write their sessions into it:
//! - the Express app of tests/legacy/express with express-session + connect-redis
//!   (signed `connect.sid`, JSON under `sess:<id>`);
//! - the PHP app of tests/legacy/php under `php -S` with the phpredis session handler
//!   (`PHPSESSID`, PHP's session format under `PHPREDIS_SESSION:<id>`).
//!
//! Through the proxy in headless Chromium: a login gives a verified JWT for that user,
//! the logout shuts the Messenger down, and the next user's login gives their JWT and
//! nothing of the first. A fault test stops Redis while requests flow, another hangs it;
//! others read over rediss:// with an ACL user and a private CA, and from a three-node
//! Redis Cluster.
//!
//! Needs redis-server (and redis-cli), openssl, php-cli + php-redis, Node 20+ with `npm ci` in tests/legacy/express
//! and tests/browser, and Chromium (`make test` installs them). Without them these
//! tests fail, they never skip.

mod support;

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::legacy::{self, Server};
use support::redis::Redis;
use support::{Proxy, Reply, Upstream, APP_ID};

const ALICE_ID: &str = "u-alice-1001";
const ALICE_EMAIL: &str = "alice@example.com";
const ALICE_NAME: &str = "Alice Liddell";
const BOB_ID: &str = "u-bob-2002";
const BOB_EMAIL: &str = "bob@example.org";
/// The Express app's session secret (what the proxy verifies `connect.sid` with).
const SESSION_SECRET: &str = legacy::EXPRESS_SESSION_SECRET;
/// How long one redis-cli call may take: a node port held by a process that never
/// answers fails the test instead of hanging it.
const CLI_TIME: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// The app servers.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Express,
    /// The PHP app, writing its sessions with this `session.serialize_handler`.
    Php(&'static str),
}

/// A legacy app of tests/legacy (support::legacy) with its sessions in a Redis.
struct App {
    kind: Kind,
    server: Server,
    addr: SocketAddr,
}

impl App {
    fn start(kind: Kind, redis: &Redis) -> App {
        let server = match kind {
            Kind::Express => Server::start_with_redis_sessions(legacy::Kind::Express, redis.port),
            Kind::Php(format) => Server::start_php_with_redis_sessions_in(redis.port, format),
        };
        App { kind, addr: server.addr, server }
    }

    fn log_text(&self) -> String {
        self.server.log_text()
    }

    /// The proxy's redis_session source for this app.
    fn identity(&self, redis: &Redis) -> String {
        match self.kind {
            Kind::Express => format!(
                "identity:\n  sources:\n    - type: redis_session\n      redis: {}\n      cookie: connect.sid\n      cookie_signature: express\n      cookie_secrets_env: [TEST_SESSION_SECRET]\n      key: \"sess:{{id}}\"\n      format: json\n      fields: {{user_id: /passport/user, email: /profile/email, name: /profile/name}}\n      timeout: 1s\n",
                redis.url()
            ),
            // php_binary has no format of its own: configured as php, it is refused.
            Kind::Php(handler) => format!(
                "identity:\n  sources:\n    - type: redis_session\n      redis: {}\n      cookie: PHPSESSID\n      key: \"PHPREDIS_SESSION:{{id}}\"\n      format: {}\n      fields: {{user_id: /account/id, email: /account/email, name: /account/name}}\n      timeout: 1s\n",
                redis.url(),
                if handler == "php_binary" { "php" } else { handler }
            ),
        }
    }
}

fn proxy_for(app: &App, redis: &Redis) -> Proxy {
    Proxy::start_with_env(
        &support::sections(
            app.addr,
            &app.identity(redis),
            "logout:\n  paths: [\"GET|POST /logout\"]\n",
        ),
        &[("TEST_SESSION_SECRET", SESSION_SECRET)],
    )
}

// ---------------------------------------------------------------------------
// Chromium through the proxy.

fn calls(step: &Value) -> &[Value] {
    step["calls"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn excerpt(step: &Value, proxy: &Proxy, app: &App) -> String {
    let mut s = step.clone();
    if let Some(o) = s.as_object_mut() {
        o.remove("cookies");
    }
    format!(
        "{}\nproxy log (tail):\n{}\napp log (tail):\n{}",
        serde_json::to_string_pretty(&s).unwrap(),
        support::log_tail(&proxy.log_text(), 12),
        support::log_tail(&app.log_text(), 12)
    )
}

/// The one boot of a step and the claims of its verified token.
fn booted_claims(step: &Value, proxy: &Proxy, app: &App) -> Value {
    let boots: Vec<&Value> = calls(step).iter().filter(|c| c["method"] == "boot").collect();
    assert_eq!(boots.len(), 1, "expected exactly one boot\n{}", excerpt(step, proxy, app));
    assert_eq!(boots[0]["settings"]["app_id"], APP_ID);
    let token = boots[0]["settings"]["intercom_user_jwt"]
        .as_str()
        .unwrap_or_else(|| panic!("boot without intercom_user_jwt\n{}", excerpt(step, proxy, app)));
    support::verify(token)
}

fn login(proxy: &Proxy, user: &str) -> Value {
    json!({"goto": proxy.url("/login"), "method": "POST", "form": {"user": user}, "formFrom": "current", "wait": "boot", "timeoutMs": 8000})
}

fn session_in_redis_gives_tokens_in_chromium(kind: Kind) {
    let redis = Redis::start();
    let app = App::start(kind, &redis);
    let proxy = proxy_for(&app, &redis);
    let u = |p: &str| proxy.url(p);
    let goto = |p: &str, wait: &str| json!({"goto": u(p), "wait": wait, "timeoutMs": 8000});
    let mut logout = goto("/logout", "shutdown");
    logout["settleMs"] = json!(500);
    let steps = vec![
        goto("/login-page", "load"),
        login(&proxy, "alice"),
        logout,
        login(&proxy, "bob"),
        goto("/", "boot"),
    ];
    let steps = support::run_browser(steps, &|| {
        format!("proxy log:\n{}\napp log:\n{}", proxy.log_text(), app.log_text())
    });
    let prefix = if kind == Kind::Express { "sess:*" } else { "PHPREDIS_SESSION:*" };
    assert!(
        redis.count_keys(prefix) >= 1,
        "the {kind:?} app wrote no session into Redis\n{}",
        app.log_text()
    );

    // alice logs in: her token, verified, with her email and name.
    let alice = booted_claims(&steps[1], &proxy, &app);
    assert_eq!(alice["user_id"], ALICE_ID, "{}", excerpt(&steps[1], &proxy, &app));
    assert_eq!(alice["email"], ALICE_EMAIL);
    assert_eq!(alice["name"], ALICE_NAME);

    // The logout: the next page shuts the Messenger down first, and nothing boots.
    let methods: Vec<&str> =
        calls(&steps[2]).iter().map(|c| c["method"].as_str().unwrap_or("?")).collect();
    assert_eq!(methods.first(), Some(&"shutdown"), "{}", excerpt(&steps[2], &proxy, &app));
    assert!(!methods.contains(&"boot"), "{}", excerpt(&steps[2], &proxy, &app));

    // bob logs in on the same browser: his token, and nothing of alice anywhere.
    for step in &steps[3..] {
        let bob = booted_claims(step, &proxy, &app);
        assert_eq!(bob["user_id"], BOB_ID, "{}", excerpt(step, &proxy, &app));
        assert_eq!(bob["email"], BOB_EMAIL);
        let text = step["calls"].to_string() + &step["intercomSettings"].to_string();
        assert!(
            !text.contains(ALICE_ID) && !text.contains(ALICE_EMAIL),
            "alice leaked into bob's page\n{}",
            excerpt(step, &proxy, &app)
        );
    }
    assert!(!proxy.log_text().contains(" ERROR "), "{}", proxy.log_text());
}

#[test]
fn express_session_in_redis_login_logout_switch_in_chromium() {
    session_in_redis_gives_tokens_in_chromium(Kind::Express);
}

#[test]
fn php_phpredis_session_login_logout_switch_in_chromium() {
    session_in_redis_gives_tokens_in_chromium(Kind::Php("php"));
}

// ---------------------------------------------------------------------------
// PHP's other session serializers, through a plain HTTP client (the page's JS does
// not matter here: the token is in the page or not).

/// Logs `user` in through the proxy (`GET /login?user=`) and loads `/` with the
/// session cookie the app set; the page and the cookie's value.
fn php_dashboard(proxy: &Proxy, user: &str) -> (support::Got, String) {
    let login = support::get(&proxy.url(&format!("/login?user={user}")), &[]);
    assert_eq!(login.status, 302, "login of {user}: {}", proxy.log_text());
    let sid = login
        .all("set-cookie")
        .iter()
        .find_map(|c| c.strip_prefix("PHPSESSID=").and_then(|v| v.split(';').next()))
        .unwrap_or_else(|| panic!("no PHPSESSID set at login: {:?}", login.headers))
        .to_string();
    let page = support::get(
        &proxy.url("/"),
        &[("Cookie", &format!("PHPSESSID={sid}")), ("Accept", "text/html")],
    );
    assert_eq!(page.status, 200, "{}", proxy.log_text());
    assert!(
        page.text().contains("Dashboard"),
        "the app did not see {user}'s session:\n{}",
        page.text()
    );
    (page, sid)
}

#[test]
fn php_serialize_sessions_give_each_user_their_own_token() {
    let redis = Redis::start();
    let app = App::start(Kind::Php("php_serialize"), &redis);
    let proxy = proxy_for(&app, &redis);
    for (user, id, email) in [("alice", ALICE_ID, ALICE_EMAIL), ("bob", BOB_ID, BOB_EMAIL)] {
        let (page, _) = php_dashboard(&proxy, user);
        let token = token_of(&page).unwrap_or_else(|| {
            panic!("no token for {user}:\n{}\napp log:\n{}", proxy.log_text(), app.log_text())
        });
        let claims = support::verify(&token);
        assert_eq!((claims["user_id"].as_str(), claims["email"].as_str()), (Some(id), Some(email)));
    }
    assert!(!proxy.log_text().contains("WARN"), "{}", proxy.log_text());
}

#[test]
fn php_binary_sessions_are_refused_with_a_warning_naming_the_setting_and_the_page_still_served() {
    let redis = Redis::start();
    let app = App::start(Kind::Php("php_binary"), &redis);
    let proxy = proxy_for(&app, &redis);
    let (page, sid) = php_dashboard(&proxy, "alice");
    assert!(token_of(&page).is_none(), "a token from a php_binary session");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !proxy.log_text().contains("session.serialize_handler") {
        assert!(
            Instant::now() < deadline,
            "no warning naming session.serialize_handler:\n{}",
            proxy.log_text()
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        proxy.log_text().contains("php_serialize"),
        "the warning does not say what to set:\n{}",
        proxy.log_text()
    );
    assert!(!proxy.log_text().contains(&sid), "the session id was logged");
}

// ---------------------------------------------------------------------------
// Faults: Redis stops while requests flow.

const PAGE: &str =
    "<!DOCTYPE html><html><head><title>t</title></head><body><p>hello</p></body></html>";

fn token_of(got: &support::Got) -> Option<String> {
    support::page_token(&got.text())
}

#[test]
fn redis_down_serves_pages_without_tokens_and_tokens_come_back_without_a_restart() {
    let mut redis = Redis::start();
    let session = r#"{"cookie":{"path":"/"},"passport":{"user":"u-42"}}"#;
    assert_eq!(redis.command(&["SET", "sess:abc123", session]).as_deref(), Some("+OK"));
    let app = Upstream::start(|_| Reply::html(PAGE));
    let identity = format!(
        "identity:\n  sources:\n    - type: redis_session\n      redis: {}\n      cookie: sid\n      fields: {{user_id: /passport/user}}\n      timeout: 100ms\n      cache_ttl: 0s\n      negative_cache_ttl: 0s\n",
        redis.url()
    );
    let proxy = Proxy::start(&support::sections(app.addr, &identity, ""));
    let pid = proxy.pid();
    let page =
        || support::get(&proxy.url("/"), &[("Cookie", "sid=abc123"), ("Accept", "text/html")]);

    let up = page();
    assert_eq!(up.status, 200);
    let token = token_of(&up)
        .unwrap_or_else(|| panic!("no token while Redis is up:\n{}", proxy.log_text()));
    assert_eq!(support::verify(&token)["user_id"], "u-42");

    redis.stop();
    let mut served = 0;
    let down_since = Instant::now();
    while down_since.elapsed() < Duration::from_secs(3) {
        let started = Instant::now();
        let got = page();
        assert!(got.status < 500, "a {} while Redis is down:\n{}", got.status, proxy.log_text());
        assert_eq!(got.status, 200);
        assert!(token_of(&got).is_none(), "a token while Redis is down");
        assert!(got.text().contains("<p>hello</p>"));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a page took {:?} with Redis down",
            started.elapsed()
        );
        served += 1;
    }
    assert!(served > 10, "only {served} pages in 3 s");
    let warnings = proxy
        .log_text()
        .lines()
        .filter(|l| l.contains("redis_session") && l.contains("WARN"))
        .count();
    assert!(warnings >= 1, "no warning while Redis is down:\n{}", proxy.log_text());
    assert!(
        warnings <= 10,
        "{warnings} warnings for {served} pages: not rate-limited:\n{}",
        proxy.log_text()
    );
    assert!(!proxy.log_text().contains("abc123"), "the session id was logged");

    redis.launch();
    let deadline = Instant::now() + Duration::from_secs(10);
    let back = loop {
        let got = page();
        assert!(got.status < 500);
        if let Some(t) = token_of(&got) {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "no token 10 s after Redis came back:\n{}",
            proxy.log_text()
        );
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(support::verify(&back)["user_id"], "u-42");
    assert_eq!(proxy.pid(), pid, "the proxy was restarted");
}

#[test]
fn a_hung_redis_costs_a_page_no_more_than_the_timeout() {
    let redis = Redis::start();
    let session = r#"{"passport":{"user":"u-7"}}"#;
    assert_eq!(redis.command(&["SET", "sess:slow1", session]).as_deref(), Some("+OK"));
    let app = Upstream::start(|_| Reply::html(PAGE));
    let identity = format!(
        "identity:\n  sources:\n    - type: redis_session\n      redis: {}\n      cookie: sid\n      fields: {{user_id: /passport/user}}\n      timeout: 200ms\n      cache_ttl: 0s\n      negative_cache_ttl: 0s\n",
        redis.url()
    );
    let proxy = Proxy::start(&support::sections(app.addr, &identity, ""));
    let page =
        || support::get(&proxy.url("/"), &[("Cookie", "sid=slow1"), ("Accept", "text/html")]);
    assert!(token_of(&page()).is_some(), "no token while Redis is up:\n{}", proxy.log_text());

    // SIGSTOP: the server keeps its connections open and answers nothing.
    let pid = redis.child.as_ref().unwrap().id() as i32;
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let all = Instant::now();
    for _ in 0..5 {
        let started = Instant::now();
        let got = page();
        let took = started.elapsed();
        assert_eq!(got.status, 200, "{}", proxy.log_text());
        assert!(token_of(&got).is_none());
        assert!(
            took < Duration::from_millis(900),
            "a page took {took:?} with a 200ms Redis timeout"
        );
    }
    // After the first timeout Redis is not asked again for a second: the next pages do
    // not each wait the timeout (5 × 200ms).
    assert!(
        all.elapsed() < Duration::from_millis(700),
        "5 pages took {:?}: each waited for Redis",
        all.elapsed()
    );
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while token_of(&page()).is_none() {
        assert!(
            Instant::now() < deadline,
            "no token 10 s after Redis resumed:\n{}",
            proxy.log_text()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn unreadable_sessions_are_served_without_tokens_with_a_warning_naming_the_fix() {
    let redis = Redis::start();
    // Marshal.dump({"user_id" => 1}) as Rails' redis-session-store writes by default.
    let marshal = "\u{4}\u{8}{\u{6}I\"\u{c}user_id\u{6}:\u{6}ETi\u{6}";
    assert_eq!(redis.command(&["SET", "sess:ruby1", marshal]).as_deref(), Some("+OK"));
    let app = Upstream::start(|_| Reply::html(PAGE));
    let identity = format!(
        "identity:\n  sources:\n    - type: redis_session\n      redis: {}\n      cookie: sid\n      fields: {{user_id: /user_id}}\n",
        redis.url()
    );
    let proxy = Proxy::start(&support::sections(app.addr, &identity, ""));
    let got = support::get(&proxy.url("/"), &[("Cookie", "sid=ruby1"), ("Accept", "text/html")]);
    assert_eq!(got.status, 200);
    assert!(token_of(&got).is_none());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !proxy.log_text().contains("Ruby Marshal") {
        assert!(Instant::now() < deadline, "no warning naming the format:\n{}", proxy.log_text());
        thread::sleep(Duration::from_millis(20));
    }
    assert!(proxy.log_text().contains("serializer: :json"), "{}", proxy.log_text());
    assert!(!proxy.log_text().contains("ruby1"), "the session id was logged");
}

/// The text of the admin listener's `/metrics`.
fn metrics(proxy: &Proxy) -> String {
    support::get(&proxy.admin_url("/metrics"), &[]).text()
}

/// The value of the sample named `name` (without labels) in `/metrics`.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn a_key_pattern_that_never_matches_is_warned_about_and_counted() {
    let redis = Redis::start();
    // What a PHP app with phpredis writes; 25 distinct sessions.
    let ids: Vec<String> = (0..25).map(|n| format!("qz7sid{n:02}x")).collect();
    for id in &ids {
        let key = format!("PHPREDIS_SESSION:{id}");
        assert_eq!(
            redis.command(&["SET", &key, r#"account|a:1:{s:2:"id";s:4:"u-k1";}"#]).as_deref(),
            Some("+OK")
        );
    }
    let app = Upstream::start(|_| Reply::html(PAGE));
    let source = |key: &str| {
        format!(
            "identity:\n  sources:\n    - type: redis_session\n      redis: {}\n      cookie: PHPSESSID\n      key: \"{key}\"\n      format: php\n      fields: {{user_id: /account/id}}\n      timeout: 1s\n",
            redis.url()
        )
    };
    let visit = |proxy: &Proxy, id: &str| {
        let got = support::get(
            &proxy.url("/"),
            &[("Cookie", &format!("PHPSESSID={id}")), ("Accept", "text/html")],
        );
        assert_eq!(got.status, 200);
        token_of(&got).is_some()
    };
    const KEY_MISSES: &str = "intercom_secure_proxy_redis_session_key_misses_total";
    const NEVER_FOUND: &str = "intercom_secure_proxy_redis_session_keys_never_found";

    // The default key (connect-redis' "sess:{id}") never matches what phpredis writes.
    let wrong = Proxy::start_with_admin(&support::sections(app.addr, &source("sess:{id}"), ""));
    for id in &ids {
        assert!(!visit(&wrong, id), "a token although the key never matches");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !wrong
        .log_text()
        .lines()
        .any(|l| l.contains("WARN") && l.contains("sess:{id}") && l.contains("missing"))
    {
        assert!(
            Instant::now() < deadline,
            "no warning naming the key pattern:\n{}",
            wrong.log_text()
        );
        thread::sleep(Duration::from_millis(20));
    }
    let log = wrong.log_text();
    assert!(log.contains("PHPSESSID"), "the warning does not name the source:\n{log}");
    assert!(!ids.iter().any(|id| log.contains(id.as_str())), "a session id was logged:\n{log}");
    let text = metrics(&wrong);
    assert_eq!(sample(&text, KEY_MISSES), Some(25.0), "{text}");
    assert_eq!(sample(&text, NEVER_FOUND), Some(1.0), "{text}");

    // The right key: every session is found, nothing is warned about.
    let right =
        Proxy::start_with_admin(&support::sections(app.addr, &source("PHPREDIS_SESSION:{id}"), ""));
    for id in &ids {
        assert!(visit(&right, id), "no token with the right key:\n{}", right.log_text());
    }
    assert!(!right.log_text().contains("missing"), "{}", right.log_text());
    let text = metrics(&right);
    assert_eq!(sample(&text, KEY_MISSES), Some(0.0), "{text}");
    assert_eq!(sample(&text, NEVER_FOUND), Some(0.0), "{text}");
}

#[test]
fn check_reports_an_unreachable_redis_as_a_warning() {
    let port = support::free_port();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("c.yaml");
    std::fs::write(
        &conf,
        format!(
            "listen: [\"127.0.0.1:1\"]\nupstream: {{addresses: [\"127.0.0.1:2\"]}}\nintercom: {{app_id: {APP_ID}, secret_env: TEST_INTERCOM_SECRET}}\nidentity:\n  sources:\n    - {{type: redis_session, redis: \"redis://app:hunter2@127.0.0.1:{port}/0\", cookie: sid, fields: {{user_id: /u}}}}\n"
        ),
    )
    .unwrap();
    let (code, all) = support::check_config_file(&conf, &[("TEST_INTERCOM_SECRET", "s")]);
    assert_eq!(code, Some(0), "an unreachable Redis must not fail check:\n{all}");
    assert!(all.contains("identity.sources[0].redis") && all.contains("does not answer"), "{all}");
    assert!(!all.contains("hunter2"), "the Redis password was printed:\n{all}");
}

// ---------------------------------------------------------------------------
// TLS (rustls) and an ACL user.

/// A CA and a certificate for 127.0.0.1 signed by it, made with the openssl CLI.
fn make_certificates(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (install it; `make test` does)");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    std::fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=redis-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext",
    ]);
}

/// redis-server with TLS only and an ACL user `app` (password `pw`); the default user is off.
struct TlsRedis {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl TlsRedis {
    fn start() -> TlsRedis {
        let dir = tempfile::tempdir().unwrap();
        make_certificates(dir.path());
        let port = support::free_port();
        let conf = format!(
            "port 0\ntls-port {port}\nbind 127.0.0.1\ntls-cert-file server.crt\ntls-key-file server.key\ntls-ca-cert-file ca.crt\ntls-auth-clients no\nsave \"\"\nappendonly no\nuser default off\nuser app on >pw ~* &* +@all\n"
        );
        std::fs::write(dir.path().join("redis.conf"), conf).unwrap();
        let log = File::create(dir.path().join("redis.log")).unwrap();
        let child = Command::new("redis-server")
            .arg("redis.conf")
            .current_dir(dir.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("redis-server");
        let redis = TlsRedis { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.cli(&["PING"]) != "PONG" {
            assert!(Instant::now() < deadline, "TLS redis-server did not answer");
            thread::sleep(Duration::from_millis(50));
        }
        redis
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = support::output_within(
            Command::new("redis-cli")
                .args([
                    "--tls",
                    "--cacert",
                    "ca.crt",
                    "--user",
                    "app",
                    "--pass",
                    "pw",
                    "--no-auth-warning",
                    "-p",
                    &self.port.to_string(),
                ])
                .args(args)
                .current_dir(self.dir.path()),
            CLI_TIME,
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn rediss_with_an_acl_user_and_a_private_ca_gives_tokens_and_an_untrusted_certificate_none() {
    let redis = TlsRedis::start();
    assert_eq!(redis.cli(&["SET", "sess:tls1", r#"{"passport":{"user":"u-tls"}}"#]), "OK");
    let app = Upstream::start(|_| Reply::html(PAGE));
    let ca = redis.dir.path().join("ca.crt");
    let source = |url: &str, ca_line: &str| {
        format!(
            "identity:\n  sources:\n    - type: redis_session\n      redis: \"{url}\"\n{ca_line}      cookie: sid\n      fields: {{user_id: /passport/user}}\n      timeout: 1s\n"
        )
    };
    let url = format!("rediss://app:pw@127.0.0.1:{}/0", redis.port);
    let page = |proxy: &Proxy| {
        support::get(&proxy.url("/"), &[("Cookie", "sid=tls1"), ("Accept", "text/html")])
    };

    let trusted = Proxy::start(&support::sections(
        app.addr,
        &source(&url, &format!("      tls_ca_file: {}\n", ca.display())),
        "",
    ));
    let got = page(&trusted);
    assert_eq!(got.status, 200);
    let token =
        token_of(&got).unwrap_or_else(|| panic!("no token over TLS:\n{}", trusted.log_text()));
    assert_eq!(support::verify(&token)["user_id"], "u-tls");
    assert!(!trusted.log_text().contains("pw@"), "the Redis password was logged");

    // The system's roots do not know the test CA: the certificate is refused.
    let untrusted = Proxy::start(&support::sections(app.addr, &source(&url, ""), ""));
    let got = page(&untrusted);
    assert_eq!(got.status, 200);
    assert!(token_of(&got).is_none(), "a token although Redis' certificate is not trusted");

    // A wrong ACL password: no identity, page served.
    let wrong = format!("rediss://app:nope@127.0.0.1:{}/0", redis.port);
    let denied = Proxy::start(&support::sections(
        app.addr,
        &source(&wrong, &format!("      tls_ca_file: {}\n", ca.display())),
        "",
    ));
    let got = page(&denied);
    assert_eq!(got.status, 200);
    assert!(token_of(&got).is_none(), "a token with a wrong Redis password");
    assert!(!denied.log_text().contains("nope"), "the Redis password was logged");
}

// ---------------------------------------------------------------------------
// Redis Cluster.

/// Three cluster-enabled redis-servers joined into one cluster (no replicas).
struct Cluster {
    children: Vec<Child>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..3).map(|_| support::free_port()).collect();
        let children = ports
            .iter()
            .map(|p| {
                let node = dir.path().join(p.to_string());
                std::fs::create_dir(&node).unwrap();
                Command::new("redis-server")
                    .args([
                        "--port",
                        &p.to_string(),
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ])
                    .args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
                    .current_dir(&node)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .process_group(0)
                    .spawn()
                    .expect("redis-server")
            })
            .collect();
        let cluster = Cluster { children, ports, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cluster.ports.iter().all(|p| cluster.cli(*p, &["PING"]) == "PONG") {
            assert!(Instant::now() < deadline, "cluster nodes did not start");
            thread::sleep(Duration::from_millis(50));
        }
        let nodes: Vec<String> = cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mut create = vec!["--cluster", "create"];
        create.extend(nodes.iter().map(String::as_str));
        create.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = support::output_within(Command::new("redis-cli").args(&create), CLI_TIME);
        assert!(out.status.success(), "cluster create: {}", String::from_utf8_lossy(&out.stdout));
        while !cluster.cli(cluster.ports[0], &["CLUSTER", "INFO"]).contains("cluster_state:ok") {
            assert!(
                Instant::now() < deadline + Duration::from_secs(10),
                "the cluster never became ok"
            );
            thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// redis-cli in cluster mode (-c follows MOVED redirects).
    fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = support::output_within(
            Command::new("redis-cli").args(["-c", "-p", &port.to_string()]).args(args),
            CLI_TIME,
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn a_list_of_addresses_reads_sessions_from_a_redis_cluster() {
    let cluster = Cluster::start();
    // Keys on different slots, so that more than one node holds sessions.
    let users = [("c1", "u-c1"), ("c2", "u-c2"), ("c3", "u-c3"), ("c4", "u-c4")];
    for (id, user) in users {
        let session = format!(r#"{{"passport":{{"user":"{user}"}}}}"#);
        assert_eq!(cluster.cli(cluster.ports[0], &["SET", &format!("sess:{id}"), &session]), "OK");
    }
    let holding = cluster.ports.iter().filter(|p| cluster.cli(**p, &["DBSIZE"]) != "0").count();
    assert!(holding >= 2, "the sessions landed on {holding} node(s); the test needs several");
    let app = Upstream::start(|_| Reply::html(PAGE));
    // Only the first node is named: the client learns the others from it.
    let identity = format!(
        "identity:\n  sources:\n    - type: redis_session\n      redis: [\"127.0.0.1:{}\"]\n      cookie: sid\n      fields: {{user_id: /passport/user}}\n      timeout: 2s\n",
        cluster.ports[0]
    );
    let proxy = Proxy::start(&support::sections(app.addr, &identity, ""));
    for (id, user) in users {
        let got = support::get(
            &proxy.url("/"),
            &[("Cookie", &format!("sid={id}")), ("Accept", "text/html")],
        );
        assert_eq!(got.status, 200);
        let token = token_of(&got)
            .unwrap_or_else(|| panic!("no token for {id} from the cluster:\n{}", proxy.log_text()));
        assert_eq!(support::verify(&token)["user_id"], user);
    }
}

#[test]
fn readyz_says_503_while_redis_is_down_and_200_when_it_is_back() {
    let mut redis = Redis::start();
    let app = Upstream::start(|_| Reply::html(PAGE));
    let identity = format!(
        "identity:\n  sources:\n    - type: redis_session\n      redis: {}\n      cookie: sid\n      fields: {{user_id: /passport/user}}\n      timeout: 200ms\n",
        redis.url()
    );
    let proxy = Proxy::start_with_admin(&support::sections(app.addr, &identity, ""));
    let readyz = proxy.admin_url("/readyz");
    // Readiness is reached once its first Redis probe answers, which a loaded machine
    // can take past the 200 ms timeout.
    let deadline = Instant::now() + Duration::from_secs(10);
    while support::get(&readyz, &[]).status != 200 {
        assert!(Instant::now() < deadline, "not ready with Redis up:\n{}", proxy.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    redis.stop();
    let down = support::get(&readyz, &[]);
    assert_eq!(down.status, 503);
    assert!(
        down.text().contains(&format!("Redis redis://127.0.0.1:{}/0 does not answer", redis.port)),
        "{}",
        down.text()
    );
    redis.launch();
    let deadline = Instant::now() + Duration::from_secs(10);
    while support::get(&readyz, &[]).status != 200 {
        assert!(Instant::now() < deadline, "not ready again after Redis came back");
        thread::sleep(Duration::from_millis(100));
    }
}

/// A Django session in Redis holds only `_auth_user_id`: a source with nothing mapped
/// for `email` or `name`.
const DJANGO_SOURCE: &str = "    - {type: redis_session, redis: \"redis://127.0.0.1:REDIS_PORT/0\", cookie: sessionid, key: \"sess:{id}\", fields: {user_id: /_auth_user_id}}\n";

#[test]
fn check_says_which_claims_each_source_signs_and_warns_about_those_it_cannot_fill() {
    let identity = format!(
        "identity:\n  sources:\n{}    - {{type: trusted_header, trusted_cidrs: [\"127.0.0.1/32\"], headers: {{user_id: X-User, email: X-Email, name: X-Name}}}}\n    - {{type: current_user_endpoint, path: /api/me, fields: {{user_id: /id, email: /email, name: /name, attributes: {{plan: /plan}}}}}}\n",
        DJANGO_SOURCE.replace("REDIS_PORT", &support::free_port().to_string())
    );
    let yaml = format!(
        "listen: [\"127.0.0.1:{}\"]\n{}",
        support::free_port(),
        support::sections("127.0.0.1:2".parse().unwrap(), &identity, "")
            .replace("intercom:\n", "intercom:\n  claims: [email, name, plan]\n")
    );
    let (code, out) = support::check_config(&yaml);
    assert_eq!(code, Some(0), "{out}");
    for claim in ["email", "name", "plan"] {
        assert!(
            out.contains(&format!(
                "claim \"{claim}\" has no field in source redis_session (identity.sources[0])"
            )),
            "{claim}: {out}"
        );
    }
    assert!(
        out.contains("claim \"plan\" has no field in source trusted_header (identity.sources[1])"),
        "{out}"
    );
    assert!(
        !out.contains("claim \"email\" has no field in source trusted_header")
            && !out.contains("in source current_user_endpoint"),
        "{out}"
    );
    assert!(
        out.contains("the page's plain name is kept"),
        "what becomes of a page's own value: {out}"
    );
    assert!(out.contains("the page's plain email is removed all the same"), "{out}");
    let sources: Vec<&str> = out.lines().filter(|l| l.trim_start().starts_with("signs:")).collect();
    assert_eq!(
        sources,
        [
            "           signs: user_id",
            "           signs: user_id, email, name",
            "           signs: user_id, email, name, plan"
        ],
        "{out}"
    );
    assert!(
        !out.contains("signed: user_id, email, name"),
        "no promise the sources cannot keep: {out}"
    );
}

#[test]
fn a_django_session_with_only_the_user_id_gives_a_token_with_only_the_user_id() {
    let redis = Redis::start();
    assert_eq!(
        redis
            .command(&["SET", "sess:dj4ng0", r#"{"_auth_user_id":"42","_auth_user_backend":"x"}"#])
            .as_deref(),
        Some("+OK")
    );
    let app = Upstream::start(|_| Reply::html(PAGE));
    let identity = format!(
        "identity:\n  sources:\n{}",
        DJANGO_SOURCE.replace("REDIS_PORT", &redis.port.to_string())
    );
    let proxy = Proxy::start(&support::sections(app.addr, &identity, ""));
    let page =
        support::get(&proxy.url("/"), &[("Cookie", "sessionid=dj4ng0"), ("Accept", "text/html")]);
    let token = token_of(&page).unwrap_or_else(|| panic!("no token:\n{}", proxy.log_text()));
    let claims = support::verify(&token);
    let mut names: Vec<&str> = claims.as_object().unwrap().keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["exp", "iat", "user_id"], "what check said the source signs: {claims}");
}
