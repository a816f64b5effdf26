//! The current-user endpoint source through the real proxy: mapping, per-session
//! caching, one upstream call for concurrent requests, negative caching, and failing
//! open (page served, no token, warning logged without secrets or cookies).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{get, page_token, sections, verify, Proxy, Reply, Upstream, SECRET};

const PAGE: &str = "<!DOCTYPE html><html><head><title>t</title><script>window.intercomSettings={app_id:'abc12345',user_id:'u'};</script></head><body>hi</body></html>";

fn endpoint_identity(extra: &str) -> String {
    format!(
        "identity:\n  sources:\n    - type: current_user_endpoint\n      path: /api/me\n      cookies: [sid]\n      timeout: 300ms\n{extra}"
    )
}

/// An app whose /api/me behaves per session cookie value:
/// `alice` → alice, `big1`/`big2` → ids beyond 2^53, `float` → a non-integer id, `slow` → answers after 2 s, `boom` → 500, `junk` → not JSON, else 401.
fn app(calls: Arc<AtomicUsize>) -> Upstream {
    Upstream::start(move |req| match req.path() {
        "/api/me" => {
            calls.fetch_add(1, Ordering::SeqCst);
            match req.cookie("sid").as_deref() {
                Some("alice") => Reply::After(
                    Duration::from_millis(150),
                    Box::new(Reply::with(
                        200,
                        &[("Content-Type", "application/json")],
                        r#"{"user":{"id":42,"mail":"alice@example.com","plan":"pro"},"name":"Alice"}"#,
                    )),
                ),
                Some("big1") => Reply::with(200, &[], r#"{"user":{"id":12345678901234567890123}}"#),
                Some("big2") => Reply::with(200, &[], r#"{"user":{"id":12345678901234567890124}}"#),
                Some("float") => Reply::with(200, &[], r#"{"user":{"id":4.2e1}}"#),
                Some("slow") => Reply::After(
                    Duration::from_secs(2),
                    Box::new(Reply::with(200, &[], r#"{"id":"x"}"#)),
                ),
                Some("boom") => Reply::with(500, &[], "oops"),
                Some("junk") => {
                    Reply::with(200, &[("Content-Type", "application/json")], "<html>not json")
                }
                _ => Reply::with(401, &[], r#"{"error":"login"}"#),
            }
        }
        _ => Reply::html(PAGE),
    })
}

fn proxy(up: &Upstream) -> Proxy {
    // `claims` belongs to the intercom section: splice it in there.
    let base = sections(up.addr, &endpoint_identity(
        "      fields:\n        user_id: /user/id\n        email: /user/mail\n        name: /name\n        attributes:\n          plan: /user/plan\n",
    ), "");
    Proxy::start(&base.replace(
        "secret_env: TEST_INTERCOM_SECRET\n",
        "secret_env: TEST_INTERCOM_SECRET\n  claims: [email, name, plan]\n",
    ))
}

#[test]
fn the_endpoint_answer_is_mapped_signed_and_cached_per_session() {
    let calls = Arc::new(AtomicUsize::new(0));
    let up = app(calls.clone());
    let proxy = proxy(&up);
    let r = get(&proxy.url("/"), &[("Cookie", "other=1; sid=alice")]);
    let claims = verify(&page_token(&r.text()).expect("token"));
    assert_eq!(claims["user_id"], "42", "numeric ids become strings");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["name"], "Alice");
    assert_eq!(claims["plan"], "pro");
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    // Only the named session cookie is replayed to the endpoint.
    let asked = up.requests().into_iter().find(|q| q.path() == "/api/me").unwrap();
    assert_eq!(asked.header("cookie"), Some("sid=alice"));
    // A second page of the same session is served from the cache.
    get(&proxy.url("/"), &[("Cookie", "sid=alice; other=2")]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn concurrent_requests_of_one_session_make_one_endpoint_call() {
    let calls = Arc::new(AtomicUsize::new(0));
    let up = app(calls.clone());
    let proxy = proxy(&up);
    let url = proxy.url("/");
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || get(&url, &[("Cookie", "sid=alice")]))
        })
        .collect();
    for t in threads {
        let r = t.join().unwrap();
        assert!(page_token(&r.text()).is_some());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the 150 ms lookup was shared");
}

#[test]
fn logged_out_sessions_are_cached_negatively_and_pages_get_the_shared_watcher() {
    let calls = Arc::new(AtomicUsize::new(0));
    let up = app(calls.clone());
    let proxy = proxy(&up);
    let watcher = get(&proxy.url("/"), &[]).body;
    assert_eq!(support::without_our_script(&watcher), PAGE.as_bytes());
    for _ in 0..3 {
        let r = get(&proxy.url("/"), &[("Cookie", "sid=stranger")]);
        assert_eq!(r.body, watcher, "the same bytes as for a visitor without a session");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // No session cookie at all: no lookup.
    assert_eq!(get(&proxy.url("/"), &[]).body, watcher);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_slow_failing_or_garbled_endpoint_fails_open() {
    let calls = Arc::new(AtomicUsize::new(0));
    let up = app(calls.clone());
    let proxy = proxy(&up);
    for sid in ["slow", "boom", "junk"] {
        let r = get(&proxy.url("/"), &[("Cookie", &format!("sid={sid}"))]);
        assert_eq!(r.status, 200, "{sid}");
        assert!(
            support::defers_the_boot(&r.text()),
            "{sid}: served with the boot deferred, without a token"
        );
        assert_eq!(support::without_our_script(&r.body), PAGE.as_bytes(), "{sid}");
    }
    // The last request's warning: every line of the three requests is in the log then.
    let log = proxy.wait_for_log("not JSON");
    assert!(log.contains("no answer within 300ms"), "{log}");
    assert!(log.contains("status 500"), "{log}");
    assert!(log.contains("not JSON"), "{log}");
    assert_eq!(log.matches("without a Messenger token").count(), 3, "{log}");
    assert!(!log.contains(SECRET), "the secret leaked into the log");
    for raw in ["sid=slow", "sid=boom", "sid=junk"] {
        assert!(!log.contains(raw), "a raw cookie leaked into the log");
    }
    // Failures are not cached: the endpoint is asked again.
    let before = calls.load(Ordering::SeqCst);
    get(&proxy.url("/"), &[("Cookie", "sid=boom")]);
    assert_eq!(calls.load(Ordering::SeqCst), before + 1);
}

#[test]
fn an_unreachable_endpoint_host_still_serves_the_page() {
    // The proxied app answers pages, but its connections for /api/me are refused: here the
    // whole upstream is replaced by one that resets every /api/me connection.
    let up = Upstream::start(|req| match req.path() {
        "/api/me" => Reply::Raw(Vec::new()),
        _ => Reply::html(PAGE),
    });
    let proxy = Proxy::start(&sections(up.addr, &endpoint_identity(""), ""));
    let r = get(&proxy.url("/"), &[("Cookie", "sid=alice")]);
    assert_eq!(r.status, 200);
    assert!(support::defers_the_boot(&r.text()));
    assert_eq!(support::without_our_script(&r.body), PAGE.as_bytes());
}

#[test]
fn a_login_drops_the_cached_answer_for_that_session() {
    // Apps that keep the session id across login must not see a stale "logged out".
    let logged_in = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = logged_in.clone();
    let up = Upstream::start(move |req| match req.path() {
        "/api/me" if flag.load(Ordering::SeqCst) => {
            Reply::with(200, &[], r#"{"id":"7","email":"x@example.com"}"#)
        }
        "/api/me" => Reply::with(401, &[], "{}"),
        "/login" => {
            flag.store(true, Ordering::SeqCst);
            Reply::with(302, &[("Location", "/"), ("Set-Cookie", "sid=same; Path=/")], "")
        }
        _ => Reply::html(PAGE),
    });
    let proxy = Proxy::start(&sections(up.addr, &endpoint_identity(""), ""));
    assert!(page_token(&get(&proxy.url("/"), &[("Cookie", "sid=same")]).text()).is_none());
    get(&proxy.url("/login"), &[("Cookie", "sid=same")]);
    let r = get(&proxy.url("/"), &[("Cookie", "sid=same")]);
    assert_eq!(verify(&page_token(&r.text()).expect("fresh lookup after login"))["user_id"], "7");
}

#[test]
fn numeric_ids_beyond_2_pow_53_keep_every_digit() {
    let up = app(Arc::new(AtomicUsize::new(0)));
    let proxy = proxy(&up);
    let id = |sid: &str| {
        let r = get(&proxy.url("/"), &[("Cookie", &format!("sid={sid}"))]);
        verify(&page_token(&r.text()).expect("token"))["user_id"].clone()
    };
    assert_eq!(id("big1"), "12345678901234567890123");
    assert_eq!(id("big2"), "12345678901234567890124");
    // A number that is not an integer names nobody for sure: no token.
    let r = get(&proxy.url("/"), &[("Cookie", "sid=float")]);
    assert_eq!(page_token(&r.text()), None);
    assert!(proxy.log_text().contains("not an integer"), "{}", proxy.log_text());
}
