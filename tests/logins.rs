//! Logins the proxy sees (docs/identity.md, "Logins the proxy sees"): apps that keep the session
//! id across a login. The proxy has cached "nobody" for that session before the login;
//! the pages after it must still boot with a signed token, at once and a second later.
//!
//! - The PHP app of tests/legacy/php, whose `/signin` starts a session on the sign-in
//!   page and keeps its id at login: under `php -S`, identified by its `/api/me`
//!   (`format: json`) and by its account page (`format: html`); under Apache + mod_php
//!   with phpredis sessions, read by `redis_session`. In headless Chromium.
//! - A lookup of the app's endpoint still in flight when the login happens (a scripted
//!   app whose first `/api/me` answer is slow), with and without `identity.shared_cache`.
//!
//! Needs php-cli, apache2 + libapache2-mod-php, php-redis, redis-server, Node 20+ with
//! `npm ci` in tests/browser, and Chromium (`make test` installs them). Without them
//! these tests fail, they never skip.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::legacy::{Kind, Server};
use support::redis::Redis;
use support::{Proxy, Reply, Upstream, APP_ID};

/// The user the apps know as `alice`.
const ALICE_ID: &str = "u-alice-1001";
const ALICE_EMAIL: &str = "alice@example.com";
const ALICE_NAME: &str = "Alice Liddell";

/// An endpoint source on the PHP app's session cookie (2 s timeout: Chromium and the
/// app share the machine's cores). `format` is the rest of the source's YAML.
fn endpoint_source(path: &str, format: &str) -> String {
    format!(
        "identity:\n  sources:\n    - type: current_user_endpoint\n      path: {path}\n      cookies: [PHPSESSID]\n      timeout: 2s\n{format}"
    )
}

fn php_proxy(app: &Server, identity: &str) -> Proxy {
    Proxy::start(&support::sections(app.addr, identity, ""))
}

fn session_id(step: &Value) -> Option<&str> {
    step["cookies"].as_array()?.iter().find(|c| c["name"] == "PHPSESSID")?["value"].as_str()
}

fn boots(step: &Value) -> Vec<&Value> {
    step["calls"]
        .as_array()
        .map(|c| c.iter().filter(|c| c["method"] == "boot").collect())
        .unwrap_or_default()
}

/// In Chromium through the proxy: the sign-in page (the app starts a session), a page
/// for that session's visitor (the proxy caches "nobody"), the login, which keeps the
/// session id and lands on the dashboard, and the dashboard again a second later.
/// Both dashboards must boot once, with alice's verified token and nothing plain.
fn a_login_that_keeps_the_session_id(app: &Server, proxy: &Proxy) {
    let goto =
        |path: &str, wait: &str| json!({"goto": proxy.url(path), "wait": wait, "timeoutMs": 8000});
    let mut login = json!({
        "goto": proxy.url("/signin"), "method": "POST", "form": {"user": "alice"}, "formFrom": "current",
        "wait": "boot", "timeoutMs": 8000
    });
    // The next step starts a second after this one's page booted.
    login["settleMs"] = json!(1000);
    let logs = || format!("proxy log:\n{}\napp log:\n{}", proxy.log_text(), app.log_text());
    let steps = support::run_browser(
        vec![goto("/signin", "load"), goto("/", "boot"), login, goto("/", "boot")],
        &logs,
    );
    let [signin, guest, first, later] = &steps[..] else { unreachable!("four steps") };
    let show = |step: &Value| {
        format!("{}\n{}", serde_json::to_string_pretty(&step["calls"]).unwrap(), logs())
    };

    // The case at hand: the session exists before the login and keeps its id through it.
    let sid = session_id(signin)
        .unwrap_or_else(|| panic!("the sign-in page started no session\n{}", show(signin)));
    assert_eq!(session_id(guest), Some(sid));
    assert_eq!(session_id(first), Some(sid), "the login should keep the session id");
    let guest_boots = boots(guest);
    assert_eq!(guest_boots.len(), 1, "{}", show(guest));
    assert!(
        guest_boots[0]["settings"].get("intercom_user_jwt").is_none(),
        "a visitor got a token\n{}",
        show(guest)
    );

    for (when, step) in [("0 s", first), ("1 s", later)] {
        assert!(
            step["url"].as_str().unwrap_or("").ends_with('/'),
            "{when} after the login: {}",
            show(step)
        );
        let boots = boots(step);
        assert_eq!(boots.len(), 1, "{when} after the login: expected one boot\n{}", show(step));
        assert_eq!(boots[0]["settings"]["app_id"], APP_ID);
        let token = boots[0]["settings"]["intercom_user_jwt"].as_str().unwrap_or_else(|| {
            panic!("{when} after the login, the Messenger booted without a token\n{}", show(step))
        });
        let claims = support::verify(token);
        assert_eq!(
            (claims["user_id"].as_str(), claims["email"].as_str()),
            (Some(ALICE_ID), Some(ALICE_EMAIL))
        );
        assert_eq!(claims["name"], ALICE_NAME);
        let mut given: Vec<&Value> =
            step["calls"].as_array().unwrap().iter().map(|c| &c["settings"]).collect();
        given.push(&step["intercomSettings"]);
        for settings in given.into_iter().filter(|s| s.is_object()) {
            for key in ["user_id", "email", "name"] {
                assert!(
                    settings.get(key).is_none(),
                    "{when} after the login, the Messenger got plain `{key}`\n{}",
                    show(step)
                );
            }
        }
    }
}

#[test]
fn a_login_that_keeps_the_php_session_id_is_seen_by_the_json_endpoint() {
    let app = Server::start(Kind::Php);
    let proxy = php_proxy(&app, &endpoint_source("/api/me", ""));
    a_login_that_keeps_the_session_id(&app, &proxy);
}

#[test]
fn a_login_that_keeps_the_php_session_id_is_seen_by_the_account_page_source() {
    let app = Server::start(Kind::Php);
    let fields = "      format: html\n      fields:\n        user_id: \"meta[name=user-id]@content\"\n        email: \"#account-email\"\n        name: \"dd.name\"\n";
    let proxy = php_proxy(&app, &endpoint_source("/account", fields));
    a_login_that_keeps_the_session_id(&app, &proxy);
}

#[test]
fn a_login_that_keeps_the_phpredis_session_id_under_apache_is_seen_by_redis_session() {
    let redis = Redis::start();
    let app = Server::start_with_redis_sessions(Kind::Apache, redis.port);
    let identity = format!(
        "identity:\n  sources:\n    - type: redis_session\n      redis: {}\n      cookie: PHPSESSID\n      key: \"PHPREDIS_SESSION:{{id}}\"\n      format: php\n      fields: {{user_id: /account/id, email: /account/email, name: /account/name}}\n      timeout: 1s\n",
        redis.url()
    );
    let proxy = php_proxy(&app, &identity);
    a_login_that_keeps_the_session_id(&app, &proxy);
    assert!(
        redis.count_keys("PHPREDIS_SESSION:*") >= 1,
        "the app kept no session in Redis\n{}",
        app.log_text()
    );
}

// ---------------------------------------------------------------------------
// A lookup in flight at the login.

/// How long the app takes to answer the first `/api/me` (a visitor's).
const SLOW_ANSWER: Duration = Duration::from_millis(1500);
const SESSION: &str = "sid=kept-across-the-login";

/// An app whose `POST /login` logs the session in without a new cookie, and whose first
/// `/api/me` ("nobody") comes only after [`SLOW_ANSWER`].
fn app_with_a_slow_first_lookup() -> Upstream {
    let logged_in = Arc::new(AtomicBool::new(false));
    let first = Arc::new(AtomicBool::new(true));
    Upstream::start(move |req| match req.path() {
        "/login" => {
            logged_in.store(true, Ordering::SeqCst);
            Reply::with(302, &[("Location", "/")], "")
        }
        "/api/me" if logged_in.load(Ordering::SeqCst) => Reply::with(
            200,
            &[("Content-Type", "application/json")],
            format!(r#"{{"id":"{ALICE_ID}"}}"#),
        ),
        "/api/me" if first.swap(false, Ordering::SeqCst) => {
            Reply::After(SLOW_ANSWER, Box::new(Reply::with(401, &[], "")))
        }
        "/api/me" => Reply::with(401, &[], ""),
        _ => Reply::html(
            "<!DOCTYPE html><html><head><title>Dashboard</title></head><body>hello</body></html>",
        ),
    })
}

/// A page is asked for while the session is nobody's, and its lookup is still on its
/// way when the login is posted; the page asked for after the login must not share it.
fn lookup_in_flight_at_the_login(shared_cache: &str) {
    let app = app_with_a_slow_first_lookup();
    let identity = format!(
        "identity:\n{shared_cache}  sources:\n    - type: current_user_endpoint\n      path: /api/me\n      cookies: [sid]\n      timeout: 3s\n"
    );
    let proxy = Proxy::start(&support::sections(app.addr, &identity, ""));
    let page = |proxy: &Proxy| {
        support::get(&proxy.url("/"), &[("Accept", "text/html"), ("Cookie", SESSION)])
    };

    let before = thread::scope(|s| {
        let before = s.spawn(|| page(&proxy));
        let deadline = Instant::now() + Duration::from_secs(10);
        while app.count("/api/me") == 0 {
            assert!(
                Instant::now() < deadline,
                "the proxy never asked /api/me\n{}",
                proxy.log_text()
            );
            thread::sleep(Duration::from_millis(10));
        }
        let login = support::request("POST", &proxy.url("/login"), &[("Cookie", SESSION)]);
        assert_eq!(
            (login.status, login.header("set-cookie")),
            (302, None),
            "a login that keeps the session"
        );
        let after = page(&proxy);
        let token = support::page_token(&after.text()).unwrap_or_else(|| {
            panic!("the page after the login has no token:\n{}\n{}", after.text(), proxy.log_text())
        });
        assert_eq!(support::verify(&token)["user_id"], ALICE_ID);
        before.join().unwrap()
    });
    // The page asked for before the login is served as the app answered then.
    assert_eq!(before.status, 200);
    assert!(support::page_token(&before.text()).is_none(), "{}", before.text());
    // Its "nobody" was kept nowhere: not here, nor in the shared cache, which this
    // instance reads again once its own copy is older than 1 s.
    thread::sleep(Duration::from_millis(1100));
    let later = page(&proxy);
    assert!(
        support::page_token(&later.text()).is_some(),
        "a stale \"nobody\" answered:\n{}",
        later.text()
    );
}

#[test]
fn a_lookup_in_flight_at_the_login_is_not_the_answer_after_it() {
    lookup_in_flight_at_the_login("");
}

#[test]
fn a_lookup_in_flight_at_the_login_is_not_the_answer_after_it_with_a_shared_cache() {
    let redis = Redis::start();
    lookup_in_flight_at_the_login(&format!("  shared_cache: \"{}\"\n", redis.url()));
}
