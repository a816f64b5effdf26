//! `current_user_endpoint` with `format: html` through the real proxy, against a real
//! loopback app serving an HTML account page: the right user (attribute and text
//! selectors, company), a logged-out page, a huge page, hostile markup, and selectors
//! that do not parse refused before anything listens.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{
    check_config, free_port, get, page_token, sections, verify, Proxy, Reply, Upstream, SECRET,
};

const PAGE: &str = "<!DOCTYPE html><html><head><title>t</title><script>window.intercomSettings={app_id:'abc12345'};</script></head><body>hi</body></html>";

fn account(head: &str, body: &str) -> Reply {
    Reply::html(format!("<!DOCTYPE html><html><head><title>Account</title>{head}</head><body><nav><a href=/>Home</a></nav>{body}</body></html>"))
}

/// The app's /account page per session cookie `sid`.
fn app(calls: Arc<AtomicUsize>) -> Upstream {
    Upstream::start(move |req| match req.path() {
        "/account" => {
            calls.fetch_add(1, Ordering::SeqCst);
            match req.cookie("sid").as_deref() {
                Some("alice") => account(
                    r#"<meta name="user-id" content="42"><meta name=company-id content="acme-7">"#,
                    r#"<h1>Your account</h1><dl><dt>Email</dt><dd id="account-email">
                        alice&#64;example.com
                    </dd><dt>Name</dt><dd class=name>Alice &amp; Co</dd><dd class=company>Acme Corp</dd></dl>"#,
                ),
                // Logged out: the app shows its login form on the account URL.
                Some("stranger") => account("", "<form action=/login method=post><input name=user></form>"),
                // A comment and a script holding the markup are not elements.
                Some("commented") => account(
                    r#"<!-- <meta name="user-id" content="evil"> --><script>var s='<meta name="user-id" content="evil">';</script><meta name="user-id" content="7">"#,
                    "",
                ),
                // A user's own content that imitates the app's markup.
                Some("imitated") => account(
                    r#"<meta name="user-id" content="8">"#,
                    r#"<div class=bio><meta name="user-id" content="1"></div>"#,
                ),
                Some("two-emails") => account(
                    r#"<meta name="user-id" content="9">"#,
                    r#"<p id=account-email>bob@example.com</p><p id=account-email>mallory@example.com</p>"#,
                ),
                // A legacy page in windows-1252: "Renée" is one byte 0xE9 there.
                Some("latin1") => Reply::with(
                    200,
                    &[("Content-Type", "text/html; charset=windows-1252")],
                    b"<html><head><meta name=\"user-id\" content=\"11\"></head><body><dd class=name>Ren\xe9e</dd></body></html>".to_vec(),
                ),
                Some("entity") => account(r#"<meta name="user-id" content="a&unknown;b">"#, ""),
                Some("broken") => Reply::html(r#"<meta name="user-id" content="5"<<<<div id=account-email>>"#),
                Some("huge") => {
                    let mut left = 4 * 1024 * 1024;
                    Reply::Stream {
                        status: 200,
                        headers: vec![("Content-Type".into(), "text/html".into())],
                        next: Box::new(move || {
                            if left == 0 {
                                return None;
                            }
                            left -= 64 * 1024;
                            Some(vec![b'x'; 64 * 1024])
                        }),
                    }
                }
                _ => Reply::with(302, &[("Location", "/login")], ""),
            }
        }
        _ => Reply::html(PAGE),
    })
}

const FIELDS: &str = "      format: html\n      fields:\n        user_id: \"meta[name=user-id]@content\"\n        email: \"#account-email\"\n        name: \"dd.name\"\n        company_id: \"meta[name=company-id]@content\"\n        company_name: \"dd.company\"\n";

fn proxy(up: &Upstream) -> Proxy {
    let identity = format!(
        "identity:\n  sources:\n    - type: current_user_endpoint\n      path: /account\n      cookies: [sid]\n      timeout: 2s\n{FIELDS}"
    );
    Proxy::start(&sections(up.addr, &identity, ""))
}

fn token_for(proxy: &Proxy, sid: &str) -> (u16, Option<String>, String) {
    let r = get(&proxy.url("/"), &[("Cookie", &format!("sid={sid}"))]);
    let text = r.text();
    (r.status, page_token(&text), text)
}

#[test]
fn the_account_page_names_the_user_and_is_cached_per_session() {
    let calls = Arc::new(AtomicUsize::new(0));
    let up = app(calls.clone());
    let proxy = proxy(&up);
    let (status, token, _) = token_for(&proxy, "alice");
    assert_eq!(status, 200);
    let claims = verify(&token.expect("a token for alice"));
    assert_eq!(claims["user_id"], "42");
    assert_eq!(
        claims["email"], "alice@example.com",
        "text content, trimmed, character references decoded"
    );
    assert_eq!(claims["name"], "Alice & Co");
    assert_eq!(claims["company"], serde_json::json!({"id": "acme-7", "name": "Acme Corp"}));
    let asked = up.requests().into_iter().find(|q| q.path() == "/account").unwrap();
    assert_eq!(asked.header("cookie"), Some("sid=alice"));
    assert_eq!(asked.header("accept"), Some("text/html"));
    token_for(&proxy, "alice");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the second page came from the cache");
}

#[test]
fn the_account_pages_charset_is_honoured() {
    let up = app(Arc::new(AtomicUsize::new(0)));
    let proxy = proxy(&up);
    let claims = verify(&token_for(&proxy, "latin1").1.expect("token"));
    assert_eq!(claims["user_id"], "11");
    assert_eq!(claims["name"], "Ren\u{e9}e");
}

#[test]
fn a_logged_out_account_page_is_anonymous_and_cached_negatively() {
    let calls = Arc::new(AtomicUsize::new(0));
    let up = app(calls.clone());
    let proxy = proxy(&up);
    for _ in 0..2 {
        let (status, token, text) = token_for(&proxy, "stranger");
        assert_eq!((status, token), (200, None));
        assert_eq!(
            support::without_our_script(text.as_bytes()),
            PAGE.as_bytes(),
            "only the logged-out watcher"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(!proxy.log_text().contains("without a Messenger token"), "logged out is not a failure");
}

#[test]
fn a_huge_account_page_is_bounded_and_fails_open() {
    let up = app(Arc::new(AtomicUsize::new(0)));
    let proxy = proxy(&up);
    let started = Instant::now();
    let (status, token, text) = token_for(&proxy, "huge");
    assert_eq!((status, token), (200, None));
    assert!(support::defers_the_boot(&text));
    assert_eq!(support::without_our_script(text.as_bytes()), PAGE.as_bytes());
    assert!(started.elapsed() < Duration::from_secs(2), "gave up at the bound, not at the timeout");
    let log =
        proxy.wait_for_log("current-user endpoint /account failed: answer larger than 65536 bytes");
    assert!(!log.contains("sid=huge"), "the session cookie leaked into the log");
}

#[test]
fn hostile_markup_names_nobody_or_only_the_apps_element() {
    let up = app(Arc::new(AtomicUsize::new(0)));
    let proxy = proxy(&up);
    // Comments and script text are not elements: the app's own meta names the user.
    assert_eq!(verify(&token_for(&proxy, "commented").1.expect("token"))["user_id"], "7");
    let (status, _, _) = token_for(&proxy, "broken");
    assert_eq!(status, 200);
    // Two candidates, an undecoded reference, or markup the parser cannot place: no identity, page served.
    for sid in ["imitated", "two-emails", "entity"] {
        let (status, token, text) = token_for(&proxy, sid);
        assert_eq!((status, token), (200, None), "{sid}");
        assert_eq!(support::without_our_script(text.as_bytes()), PAGE.as_bytes(), "{sid}");
    }
    // The last request's warning: the lines of all the others are in the log then.
    let log = proxy.wait_for_log("character reference");
    assert!(
        log.contains("field user_id is doubtful (the selector matches more than one element)"),
        "{log}"
    );
    assert!(log.contains("field email is doubtful"), "{log}");
    assert!(log.contains("character reference"), "{log}");
    for leaked in ["mallory@example.com", "bob@example.com", "evil", SECRET] {
        assert!(!log.contains(leaked), "{leaked} leaked into the log");
    }
}

#[test]
fn selectors_that_do_not_parse_are_refused_before_listening() {
    let write = |fields: &str| {
        check_config(&format!(
            "listen: [\"127.0.0.1:{}\"]\nupstream:\n  addresses: [\"127.0.0.1:9\"]\nintercom:\n  app_id: abc12345\n  secret_env: TEST_INTERCOM_SECRET\nidentity:\n  sources:\n    - type: current_user_endpoint\n      path: /account\n{fields}",
            free_port()
        ))
    };
    let cases = [
        ("      format: html\n      fields:\n        user_id: \"div[\"\n", "`identity.sources[0].fields.user_id`"),
        ("      format: html\n      fields:\n        user_id: \"#id\"\n        email: \"p >> q\"\n", "`identity.sources[0].fields.email`"),
        ("      format: html\n", "`identity.sources[0].fields.user_id`"),
        ("      format: xml\n      fields:\n        user_id: \"#id\"\n", "`identity.sources[0].format`"),
        ("      format: html\n      fields:\n        user_id: \"#id\"\n        company_name: \".c\"\n", "`identity.sources[0].fields.company_name`"),
    ];
    for (fields, key) in cases {
        let (code, text) = write(fields);
        assert_eq!(code, Some(2), "{fields}: {text}");
        assert!(text.contains(key), "{fields}: {text}");
    }
    let (code, text) = write(FIELDS);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("current_user_endpoint GET /account (html, with company"), "{text}");
}
