//! Logouts and Content-Security-Policy through the real proxy, at the HTTP level (the
//! browser-level proof is in tests/browser.rs).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use support::{get, page_token, sections, verify, Got, Proxy, Reply, Upstream};

const LOGIN_PAGE: &str =
    "<!DOCTYPE html><html><head><title>Log in</title></head><body><form></form></body></html>";
const HOME: &str =
    "<!DOCTYPE html><html><head><script src=/app.js></script></head><body>home</body></html>";

fn identity() -> &'static str {
    "identity:\n  sources:\n    - type: current_user_endpoint\n      path: /api/me\n      cookies: [sid]\n"
}

/// An app with sessions `sid=alice`/`sid=bob`, a logout by path and one by cookie expiry.
fn app(me_calls: Arc<AtomicUsize>) -> Upstream {
    Upstream::start(move |req| match req.path() {
        "/api/me" => {
            me_calls.fetch_add(1, Ordering::SeqCst);
            match req.cookie("sid").as_deref() {
                Some(u @ ("alice" | "bob")) => {
                    Reply::with(200, &[], format!(r#"{{"id":"{u}","email":"{u}@example.com"}}"#))
                }
                _ => Reply::with(401, &[], "{}"),
            }
        }
        "/logout" => Reply::with(
            302,
            &[
                ("Location", "/login"),
                ("Set-Cookie", "sid=; Path=/; Max-Age=0"),
                ("Set-Cookie", "flash=bye; Path=/"),
                ("Cache-Control", "public, max-age=60"),
            ],
            "",
        ),
        "/signout" => Reply::with(
            302,
            &[
                ("Location", "/login"),
                ("Set-Cookie", "sid=deleted; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/"),
            ],
            "",
        ),
        "/evil-logout" => Reply::with(
            302,
            &[("Location", "//evil.example/login"), ("Set-Cookie", "sid=; Max-Age=0")],
            "",
        ),
        // A logout that lands on a page (Flask's habit), expiring Intercom's cookie itself
        // as intercom-rails' shutdown helper does.
        "/bye" => Reply::with(
            200,
            &[
                ("Content-Type", "text/html"),
                ("Set-Cookie", "sid=; Path=/; Max-Age=0"),
                ("Set-Cookie", "intercom-session-abc12345=; path=/; max-age=0"),
            ],
            LOGIN_PAGE,
        ),
        "/login" => Reply::html(LOGIN_PAGE),
        "/data.json" => Reply::with(200, &[("Content-Type", "application/json")], "{}"),
        "/csp-nonce" => Reply::with(
            200,
            &[
                ("Content-Type", "text/html"),
                (
                    "Content-Security-Policy",
                    "script-src 'nonce-Zm9vYmFy' 'strict-dynamic'; object-src 'none'",
                ),
                ("Content-Security-Policy-Report-Only", "script-src 'none'"),
            ],
            "<html><head><script nonce=Zm9vYmFy src=/app.js></script></head></html>",
        ),
        "/csp-hash" => Reply::with(
            200,
            &[
                ("Content-Type", "text/html"),
                ("Content-Security-Policy", "default-src 'self'; img-src *"),
            ],
            HOME,
        ),
        _ => Reply::html(HOME),
    })
}

fn proxy(up: &Upstream, logout: &str) -> Proxy {
    Proxy::start(&sections(up.addr, identity(), logout))
}

fn cookies(r: &Got) -> Vec<&str> {
    r.all("set-cookie")
}

fn script_flags(r: &Got) -> (Option<String>, bool) {
    let text = r.text();
    (page_token(&text), support::runs_a_shutdown(&text))
}

#[test]
fn a_logout_by_path_expires_intercom_cookies_marks_the_browser_and_keeps_app_cookies() {
    let up = app(Arc::new(AtomicUsize::new(0)));
    let proxy =
        proxy(&up, "logout:\n  paths: [\"GET|POST /logout\"]\n  cookie_domain: example.com\n");
    let r = get(&proxy.url("/logout"), &[("Cookie", "sid=alice"), ("Host", "app.example.com")]);
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/login"));
    let c = cookies(&r);
    assert!(c.contains(&"sid=; Path=/; Max-Age=0") && c.contains(&"flash=bye; Path=/"), "{c:?}");
    for name in ["intercom-session-abc12345", "intercom-id-abc12345", "intercom-device-id-abc12345"]
    {
        let host_only = c
            .iter()
            .filter(|v| v.starts_with(&format!("{name}=;")) && !v.contains("Domain"))
            .count();
        let dotted = c
            .iter()
            .filter(|v| v.starts_with(&format!("{name}=;")) && v.ends_with("Domain=.example.com"))
            .count();
        assert_eq!((host_only, dotted), (1, 1), "{name}: {c:?}");
    }
    assert!(c.iter().any(|v| v.starts_with("__isp_shutdown=1;")
        && v.contains("HttpOnly")
        && v.contains("SameSite=Lax")));
    let cc = r.header("cache-control").unwrap();
    assert!(cc.contains("no-store") && !cc.contains("public"), "{cc}");
}

#[test]
fn on_localhost_no_cookie_domain_is_sent() {
    let up = app(Arc::new(AtomicUsize::new(0)));
    let proxy = proxy(&up, "logout:\n  paths: [\"/logout\"]\n");
    let r = get(&proxy.url("/logout"), &[("Cookie", "sid=alice")]);
    let intercom: Vec<_> = cookies(&r).into_iter().filter(|v| v.starts_with("intercom-")).collect();
    assert_eq!(intercom.len(), 3);
    assert!(intercom.iter().all(|v| !v.contains("Domain")));
}

#[test]
fn the_marker_makes_the_next_page_shut_down_first_then_is_cleared() {
    let calls = Arc::new(AtomicUsize::new(0));
    let up = app(calls.clone());
    let proxy = proxy(&up, "logout:\n  paths: [\"/logout\"]\n");
    get(&proxy.url("/logout"), &[("Cookie", "sid=alice")]);
    // A JSON response does not consume the marker.
    let json = get(&proxy.url("/data.json"), &[("Cookie", "__isp_shutdown=1")]);
    assert_eq!(json.body, b"{}");
    assert!(cookies(&json).is_empty());
    // The login page (no Intercom code, logged-out visitor) carries the shutdown.
    let r = get(&proxy.url("/login"), &[("Cookie", "__isp_shutdown=1")]);
    assert_eq!(script_flags(&r), (None, true));
    assert!(cookies(&r)
        .iter()
        .any(|v| v.starts_with("__isp_shutdown=;") && v.contains("Max-Age=0")));
    assert_eq!(support::without_our_script(&r.body), LOGIN_PAGE.as_bytes());
    // Without the marker the same page gets only the logged-out watcher again.
    let again = get(&proxy.url("/login"), &[]);
    assert_eq!(script_flags(&again), (None, false));
    assert_eq!(support::without_our_script(&again.body), LOGIN_PAGE.as_bytes());
}

#[test]
fn a_logout_detected_by_session_cookie_expiry_needs_no_configuration() {
    let calls = Arc::new(AtomicUsize::new(0));
    let up = app(calls.clone());
    let proxy = proxy(&up, "");
    // Prime the identity cache for alice's session.
    assert!(page_token(&get(&proxy.url("/"), &[("Cookie", "sid=alice")]).text()).is_some());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let r = get(&proxy.url("/signout"), &[("Cookie", "sid=alice")]);
    assert!(cookies(&r).iter().any(|v| v.starts_with("__isp_shutdown=1")));
    assert!(cookies(&r).iter().any(|v| v.starts_with("intercom-session-abc12345=;")));
    // The cached identity of that session was dropped: the endpoint is asked again.
    get(&proxy.url("/"), &[("Cookie", "sid=alice")]);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn an_interstitial_runs_the_shutdown_then_continues_to_the_location() {
    let up = app(Arc::new(AtomicUsize::new(0)));
    let proxy =
        proxy(&up, "logout:\n  mode: interstitial\n  paths: [\"/logout\", \"/evil-logout\"]\n");
    let nav =
        [("Cookie", "sid=alice"), ("Sec-Fetch-Mode", "navigate"), ("Sec-Fetch-Dest", "document")];
    let r = get(&proxy.url("/logout"), &nav);
    assert_eq!(r.status, 200);
    assert!(r.header("location").is_none());
    assert!(r.header("cache-control").unwrap().contains("no-store"));
    let html = r.text();
    assert!(html.contains("<meta http-equiv=\"refresh\" content=\"3;url=/login\">"), "{html}");
    assert!(html.contains("location.replace(t)") && html.contains("var t=\"/login\""));
    assert!(support::runs_a_shutdown(&html));
    // The app's own cookies and the marker still go out.
    assert!(cookies(&r).contains(&"sid=; Path=/; Max-Age=0"));
    assert!(cookies(&r).iter().any(|v| v.starts_with("__isp_shutdown=1")));

    // Not a top-level navigation: the redirect is left as it is.
    let r = get(
        &proxy.url("/logout"),
        &[("Cookie", "sid=alice"), ("Sec-Fetch-Mode", "cors"), ("Sec-Fetch-Dest", "empty")],
    );
    assert_eq!(r.status, 302);

    // A target off-site is never followed from an interstitial (no open redirect).
    let r = get(&proxy.url("/evil-logout"), &nav);
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("//evil.example/login"));
    assert!(
        cookies(&r).iter().any(|v| v.starts_with("__isp_shutdown=1")),
        "the marker still covers the shutdown"
    );
}

#[test]
fn a_user_switch_without_logout_shuts_the_old_user_down_first() {
    let up = app(Arc::new(AtomicUsize::new(0)));
    let proxy = proxy(&up, "");
    let alice = get(&proxy.url("/"), &[("Cookie", "sid=alice")]);
    let tag = cookies(&alice)
        .iter()
        .find_map(|v| v.strip_prefix("__isp_user="))
        .map(|v| v.split(';').next().unwrap().to_string())
        .expect("last-user cookie");
    assert!(!tag.contains("alice"), "the tag is a keyed hash, not the id");
    let (token, shutdown) = script_flags(&alice);
    assert!(token.is_some() && !shutdown);
    // Same browser, now bob's session.
    let bob = get(&proxy.url("/"), &[("Cookie", &format!("sid=bob; __isp_user={tag}"))]);
    let (token, shutdown) = script_flags(&bob);
    assert_eq!(verify(&token.unwrap())["user_id"], "bob");
    assert!(shutdown, "the switch shuts alice's Messenger down before bob boots");
    // Alice again on her own browser: no shutdown.
    let again = get(&proxy.url("/"), &[("Cookie", &format!("sid=alice; __isp_user={tag}"))]);
    assert!(!script_flags(&again).1);
}

fn sha256_source(script_html: &str) -> String {
    let inner =
        &script_html[script_html.find('>').unwrap() + 1..script_html.rfind("</script>").unwrap()];
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(inner.as_bytes()))
    )
}

fn our_script(html: &str) -> &str {
    let start = html[..html.find(support::our_script_marker()).unwrap()].rfind("<script").unwrap();
    let end = start + html[start..].find("</script>").unwrap() + "</script>".len();
    &html[start..end]
}

#[test]
fn csp_nonces_are_reused_and_report_only_policies_untouched() {
    let up = app(Arc::new(AtomicUsize::new(0)));
    let proxy = proxy(&up, "");
    let r = get(&proxy.url("/csp-nonce"), &[("Cookie", "sid=alice")]);
    assert!(our_script(&r.text()).starts_with("<script nonce=\"Zm9vYmFy\">"));
    assert_eq!(
        r.header("content-security-policy"),
        Some("script-src 'nonce-Zm9vYmFy' 'strict-dynamic'; object-src 'none'")
    );
    assert_eq!(r.header("content-security-policy-report-only"), Some("script-src 'none'"));
}

#[test]
fn csp_without_nonces_gets_the_hash_of_exactly_our_script() {
    let up = app(Arc::new(AtomicUsize::new(0)));
    let proxy = proxy(&up, "");
    let r = get(&proxy.url("/csp-hash"), &[("Cookie", "sid=alice")]);
    let html = r.text();
    let expected = sha256_source(our_script(&html));
    let policy = r.header("content-security-policy").unwrap();
    assert_eq!(policy, format!("default-src 'self' {expected}; img-src *"));
    assert!(!policy.contains("unsafe-inline"));
}

/// Asserts that no cookie (same name, domain and path) is set twice by one response:
/// browsers apply them in order, and which one wins is not something to rely on.
fn assert_one_set_cookie_each(what: &str, r: &Got) {
    let mut seen = std::collections::HashSet::new();
    for value in cookies(r) {
        let c = cookie::Cookie::parse(value)
            .unwrap_or_else(|e| panic!("{what}: unparsable Set-Cookie {value:?} ({e})"));
        let domain = c.domain().map(|d| d.trim_start_matches('.').to_ascii_lowercase());
        let key = (c.name().to_string(), domain, c.path().map(str::to_string));
        assert!(seen.insert(key.clone()), "{what}: {key:?} set twice in {:#?}", cookies(r));
    }
}

#[test]
fn every_response_the_proxy_writes_or_amends_sets_each_cookie_once() {
    let up = app(Arc::new(AtomicUsize::new(0)));
    let logout = "logout:\n  paths: [\"/logout\", \"/bye\"]\n  cookie_domain: example.com\n";
    let marked = proxy(&up, logout);
    let host = ("Host", "app.example.com");
    let nav = [("Sec-Fetch-Mode", "navigate"), ("Sec-Fetch-Dest", "document"), host];

    let r = get(&marked.url("/logout"), &[("Cookie", "sid=alice; __isp_shutdown=1"), host]);
    assert_one_set_cookie_each("logout response", &r);

    // A logout that lands on a page, for a browser still carrying a marker: the marker is
    // set again (this page's shutdown may not be the last word), never set and cleared.
    let r = get(&marked.url("/bye"), &[("Cookie", "sid=alice; __isp_shutdown=1"), host]);
    assert_one_set_cookie_each("logout landing page", &r);
    assert!(support::runs_a_shutdown(&r.text()), "the landing page shuts the Messenger down");
    assert!(cookies(&r).iter().any(|v| v.starts_with("__isp_shutdown=1;")), "{:?}", cookies(&r));
    assert!(
        cookies(&r)
            .iter()
            .any(|v| v.starts_with("intercom-session-abc12345=;") && v.contains("Max-Age=0")),
        "{:?}",
        cookies(&r)
    );

    let r = get(&marked.url("/login"), &[("Cookie", "__isp_shutdown=1"), host]);
    assert_one_set_cookie_each("page clearing the marker", &r);

    let alice = get(&marked.url("/"), &[("Cookie", "sid=alice"), host]);
    assert_one_set_cookie_each("rewritten page with the last-user tag", &alice);
    let tag = cookies(&alice)
        .iter()
        .find_map(|v| v.strip_prefix("__isp_user="))
        .map(|v| v.split(';').next().unwrap().to_string())
        .unwrap();

    let r = get(
        &marked.url("/"),
        &[("Cookie", &format!("sid=bob; __isp_user={tag}; __isp_shutdown=1")), host],
    );
    assert_one_set_cookie_each("user switch with a marker", &r);

    let r = get(
        &marked.url("/__isp/token"),
        &[("Cookie", &format!("sid=bob; __isp_user={tag}")), host],
    );
    assert_eq!(r.status, 200);
    assert_one_set_cookie_each("refresh path", &r);

    let interstitial = proxy(&up, "logout:\n  mode: interstitial\n  paths: [\"/logout\", \"/bye\"]\n  cookie_domain: example.com\n");
    let r = get(
        &interstitial.url("/logout"),
        &[&[("Cookie", "sid=alice; __isp_shutdown=1")][..], &nav].concat(),
    );
    assert_eq!(r.status, 200, "an interstitial");
    assert_one_set_cookie_each("interstitial", &r);
    let r = get(
        &interstitial.url("/bye"),
        &[&[("Cookie", "sid=alice; __isp_shutdown=1")][..], &nav].concat(),
    );
    assert_one_set_cookie_each("logout landing page in interstitial mode", &r);
}
