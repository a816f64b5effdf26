//! Tokens in a real browser (headless Chromium through tests/browser/driver.mjs, with
//! the stand-in widget recording every Messenger call):
//! - per `intercom.mode`, what the Messenger boots with: the JWT only, the proxy's
//!   `user_id`/`email`/`user_hash` only (checked against an independent HMAC), or both;
//! - with a short `token_lifetime` and refresh margin, an open page hands the Messenger
//!   a fresh, verifying token before its first one expires;
//! - a tab shown again after a long sleep (fake clock) refreshes at once;
//! - a logout in another tab shuts this tab's Messenger down at its next refresh, and
//!   so does another user's login.
//!
//! Needs Node 20+, Debian's Chromium and `npm ci` in tests/browser (`make test` does it).

mod support;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use support::{run_browser, verify, Proxy, Reply, Upstream, APP_ID, SECRET};

/// The official Intercom loader (app id abc12345).
const LOADER: &str = r#"(function(){var w=window;var ic=w.Intercom;if(typeof ic==="function"){ic('reattach_activator');ic('update',w.intercomSettings);}else{var d=document;var i=function(){i.c(arguments);};i.q=[];i.c=function(args){i.q.push(args);};w.Intercom=i;var l=function(){var s=d.createElement('script');s.type='text/javascript';s.async=true;s.src='https://widget.intercom.io/widget/abc12345';var x=d.getElementsByTagName('script')[0];x.parentNode.insertBefore(s,x);};if(document.readyState==='complete'){l();}else if(w.attachEvent){w.attachEvent('onload',l);}else{w.addEventListener('load',l,false);}}})();"#;

fn user(sid: &str) -> Option<(&'static str, &'static str)> {
    match sid {
        "alice" => Some(("u-alice-1001", "alice@example.com")),
        "bob" => Some(("u-bob-2002", "bob@example.org")),
        _ => None,
    }
}

/// An insecure app: `/login?user=NAME` and `/logout` manage the `sid` cookie, `/api/me`
/// says who it is, `/` boots Intercom with a plain user_id and email (spoofable).
fn app() -> Upstream {
    // `/break` makes /api/me fail from then on (a database outage, say).
    let broken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    Upstream::start(move |req| {
        let sid = req.cookie("sid").unwrap_or_default();
        if req.path() == "/break" {
            broken.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        if req.path() == "/api/me" && broken.load(std::sync::atomic::Ordering::SeqCst) {
            return Reply::with(500, &[], "database down");
        }
        match req.path() {
            "/login" => {
                let name = req.target.split("user=").nth(1).unwrap_or("").to_string();
                Reply::with(302, &[("Location", "/"), ("Set-Cookie", &format!("sid={name}; Path=/; HttpOnly"))], "")
            }
            "/logout" => Reply::with(302, &[("Location", "/bye"), ("Set-Cookie", "sid=; Path=/; Max-Age=0")], ""),
            "/api/me" => match user(&sid) {
                Some((id, email)) => Reply::with(200, &[("Content-Type", "application/json")], json!({"id": id, "email": email}).to_string()),
                None => Reply::with(401, &[], "{}"),
            },
            "/bye" => Reply::html("<!DOCTYPE html><html><head><title>Bye</title></head><body>Signed out</body></html>"),
            _ => {
                let (id, email) = user(&sid).unwrap_or(("guest", "guest@example.net"));
                Reply::html(format!(
                    "<!DOCTYPE html><html><head><title>App</title><script>window.intercomSettings = {{app_id: \"{APP_ID}\", user_id: \"{id}\", email: \"{email}\", user_hash: \"forged\"}};</script><script>{LOADER}</script></head><body>Dashboard</body></html>"
                ))
            }
        }
    })
}

fn proxy(up: &Upstream, intercom: &str) -> Proxy {
    proxy_caching(up, intercom, "60s")
}

fn proxy_caching(up: &Upstream, intercom: &str, cache_ttl: &str) -> Proxy {
    // A generous timeout: Chromium and other tests load the machine.
    let identity = format!("identity:\n  sources:\n    - type: current_user_endpoint\n      path: /api/me\n      cookies: [sid]\n      timeout: 5s\n      cache_ttl: {cache_ttl}\n");
    let yaml = support::sections(up.addr, &identity, "").replace(
        "secret_env: TEST_INTERCOM_SECRET\n",
        &format!("secret_env: TEST_INTERCOM_SECRET\n{intercom}"),
    );
    Proxy::start(&yaml)
}

fn independent_user_hash(user_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(user_id.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn calls<'a>(step: &'a Value, method: &str) -> Vec<&'a Value> {
    step["calls"].as_array().unwrap().iter().filter(|c| c["method"] == method).collect()
}

/// The settings the Messenger booted with (the first boot).
fn booted(step: &Value) -> &Value {
    &calls(step, "boot").first().unwrap_or_else(|| panic!("no boot: {step}"))["settings"]
}

#[test]
fn each_mode_boots_the_messenger_with_its_fields() {
    let up = app();
    let jwt = proxy(&up, "");
    let hash = proxy(&up, "  mode: user_hash\n");
    let both = proxy(&up, "  mode: both\n");
    let step = |p: &Proxy| json!({"goto": p.url("/login?user=alice"), "wait": "boot"});
    let steps = run_browser(vec![step(&jwt), step(&hash), step(&both)], &|| {
        format!("{}\n{}\n{}", jwt.log_text(), hash.log_text(), both.log_text())
    });
    let expected_hash = independent_user_hash("u-alice-1001");

    let s = booted(&steps[0]);
    assert_eq!(
        verify(s["intercom_user_jwt"].as_str().expect("jwt mode: a JWT"))["user_id"],
        "u-alice-1001"
    );
    for plain in ["user_id", "email", "user_hash"] {
        assert!(s.get(plain).is_none(), "jwt mode gives no plain {plain}: {s}");
    }

    let s = booted(&steps[1]);
    assert!(s.get("intercom_user_jwt").is_none(), "user_hash mode gives no JWT: {s}");
    assert_eq!(s["user_id"], "u-alice-1001");
    assert_eq!(s["email"], "alice@example.com");
    assert_eq!(s["user_hash"], expected_hash.as_str(), "the page's forged hash is replaced");

    let s = booted(&steps[2]);
    assert_eq!(
        verify(s["intercom_user_jwt"].as_str().expect("both mode: a JWT"))["user_id"],
        "u-alice-1001"
    );
    assert_eq!(s["user_id"], "u-alice-1001");
    assert_eq!(s["user_hash"], expected_hash.as_str());
    for step in &steps {
        assert_eq!(step["pageErrors"], json!([]), "{step}");
    }
}

/// Tokens live 1 minute and pages refresh 54 s before expiry: every ~6 s.
const SHORT: &str = "  token_lifetime: 1m\n  token_refresh_margin: 54s\n";

#[test]
fn an_open_page_gets_a_fresh_verifying_token_before_the_first_expires() {
    let up = app();
    let p = proxy(&up, SHORT);
    let steps = run_browser(
        vec![
            json!({"goto": p.url("/login?user=alice"), "wait": "boot"}),
            json!({"stay": true, "wait": "update", "count": 2, "timeoutMs": 20000}),
        ],
        &|| p.log_text(),
    );
    let first = verify(booted(&steps[0])["intercom_user_jwt"].as_str().unwrap());
    let refreshed: Vec<Value> = calls(&steps[1], "update")
        .iter()
        .filter_map(|c| c["settings"]["intercom_user_jwt"].as_str())
        .map(verify)
        .collect();
    assert!(refreshed.len() >= 2, "two refreshes in ~12 s: {}", steps[1]);
    let mut previous = first.clone();
    for claims in &refreshed {
        assert_eq!(claims["user_id"], "u-alice-1001");
        assert!(
            claims["iat"].as_u64() > previous["iat"].as_u64(),
            "a fresh token each time: {claims} after {previous}"
        );
        assert!(
            claims["iat"].as_u64() < previous["exp"].as_u64(),
            "received before the previous one expired"
        );
        previous = claims.clone();
    }
    assert!(steps[1]["timedOut"] == false, "{}", steps[1]);
    assert_eq!(up.count("/__isp/token"), 0, "the app never sees the refresh path");
}

#[test]
fn a_tab_shown_again_after_a_long_sleep_refreshes_at_once() {
    // The default lifetime (1h) and margin (5m): the refresh timer is 55 minutes away.
    let up = app();
    let p = proxy(&up, "");
    let steps = run_browser(
        vec![
            // settleMs: the refreshed token is signed in a later second than the first.
            json!({"goto": p.url("/login?user=alice"), "wait": "boot", "installClock": true, "settleMs": 1200}),
            // The clock jumps 56 minutes without firing timers: only the wake-up can refresh.
            json!({"stay": true, "wakeAfterMs": 56 * 60 * 1000, "wait": "update", "timeoutMs": 8000}),
        ],
        &|| p.log_text(),
    );
    let first = verify(booted(&steps[0])["intercom_user_jwt"].as_str().unwrap());
    let main = &steps[1];
    assert_eq!(main["timedOut"], false, "no refresh on wake-up: {main}");
    let update = calls(main, "update")
        .into_iter()
        .find_map(|c| c["settings"]["intercom_user_jwt"].as_str())
        .expect("a token update");
    let fresh = verify(update);
    assert_eq!(fresh["user_id"], "u-alice-1001");
    assert!(fresh["iat"].as_u64() > first["iat"].as_u64(), "a fresh token: {fresh} after {first}");
}

/// Alice's page in the main tab, `other_path` opened in a second tab of the same
/// browser (same cookies), then the main tab watched until its Messenger shuts down.
fn alice_then_another_tab(p: &Proxy, other_path: &str, other_wait: &str) -> Vec<Value> {
    run_browser(
        vec![
            json!({"goto": p.url("/login?user=alice"), "wait": "boot"}),
            json!({"tab": "other", "goto": p.url(other_path), "wait": other_wait}),
            json!({"stay": true, "wait": "shutdown", "timeoutMs": 15000}),
        ],
        &|| p.log_text(),
    )
}

#[test]
fn a_logout_in_another_tab_shuts_this_tabs_messenger_down_at_its_next_refresh() {
    let up = app();
    let p = proxy(&up, SHORT);
    let steps = alice_then_another_tab(&p, "/logout", "load");
    assert!(
        verify(booted(&steps[0])["intercom_user_jwt"].as_str().unwrap())["user_id"]
            == "u-alice-1001"
    );
    assert_eq!(steps[1]["url"], p.url("/bye"));
    let main = &steps[2];
    assert_eq!(main["timedOut"], false, "no shutdown within 15 s: {main}");
    assert_eq!(calls(main, "shutdown").len(), 1, "{main}");
    assert_eq!(main["intercomSettings"], Value::Null, "the settings are gone");
    let all = main["calls"].as_array().unwrap();
    let at = all.iter().position(|c| c["method"] == "shutdown").unwrap();
    assert!(
        all[at + 1..].iter().all(|c| c["settings"]["intercom_user_jwt"].is_null()),
        "no token after the shutdown: {main}"
    );
}

#[test]
fn another_users_login_in_another_tab_shuts_this_tabs_messenger_down() {
    let up = app();
    let p = proxy(&up, SHORT);
    let steps = alice_then_another_tab(&p, "/login?user=bob", "boot");
    assert_eq!(
        verify(booted(&steps[1])["intercom_user_jwt"].as_str().unwrap())["user_id"],
        "u-bob-2002"
    );
    let main = &steps[2];
    assert_eq!(main["timedOut"], false, "no shutdown within 15 s: {main}");
    for update in calls(main, "update") {
        if let Some(t) = update["settings"]["intercom_user_jwt"].as_str() {
            assert_eq!(
                verify(t)["user_id"],
                "u-alice-1001",
                "bob's token never reaches alice's tab"
            );
        }
    }
}

#[test]
fn a_failing_endpoint_at_refresh_time_does_not_shut_the_messenger_down() {
    // Identities are cached for 1 s only, so the refresh really asks the broken endpoint.
    let up = app();
    let p = proxy_caching(&up, SHORT, "1s");
    let steps = alice_then_another_tab(&p, "/break", "load");
    let main = &steps[2];
    assert_eq!(main["timedOut"], true, "no shutdown while the endpoint fails: {main}");
    assert!(calls(main, "shutdown").is_empty(), "{main}");
    assert!(
        calls(main, "update").iter().all(|c| c["settings"]["intercom_user_jwt"].is_null()),
        "no token while the endpoint fails: {main}"
    );
    assert!(p.log_text().contains("status 500"), "the failure is warned about");
    assert!(up.count("/api/me") >= 2, "the refresh asked the endpoint again");
}
