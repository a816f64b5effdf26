//! The rollout through the real binary (issue 26): `report_only` pages are the app's
//! bytes with the observer added and nothing else; `off` passes everything through
//! without a lookup; `percent` puts the same users in on every process and after a
//! restart; the report path refuses what is not a same-origin report and is never
//! forwarded; the admin listener's kill switch takes effect on the next page, under
//! load, and only with the token.
//!
//! The report-only runs in real Chromium are in tests/rollout_browser.rs.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{
    carries_the_observer, check_config, get, request, scrape, send, value, without_our_script,
    Proxy, Reply, Upstream, ADMIN_TOKEN, TRUSTED_HEADER,
};

/// A page of an app that boots Intercom the insecure way.
const PAGE: &str = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>App</title>\n<script>window.intercomSettings = {app_id: \"abc12345\", user_id: \"u-1\", email: \"u1@example.com\"};</script>\n</head><body><p>page</p></body></html>\n";

/// The report an observer sends for an insecure page.
const INSECURE_REPORT: &[u8] = br#"{"verdict":"insecure","fields":["user_id","email"]}"#;

/// The test app: `PAGE` everywhere (cacheable), `/logout` a redirect.
fn app() -> Upstream {
    Upstream::start(|r| match r.path() {
        "/logout" => {
            Reply::with(302, &[("location", "/"), ("set-cookie", "sid=; Max-Age=0; Path=/")], "")
        }
        _ => Reply::with(
            200,
            &[
                ("content-type", "text/html; charset=utf-8"),
                ("cache-control", "public, max-age=60"),
            ],
            PAGE,
        ),
    })
}

/// Trusted-header identity, `/logout`, and `more` (a `rollout` section, say).
fn config(app: &Upstream, more: &str) -> String {
    support::sections(app.addr, TRUSTED_HEADER, &format!("logout:\n  paths: [\"/logout\"]\n{more}"))
}

fn as_user(id: &str) -> [(&str, &str); 2] {
    [("x-forwarded-user", id), ("accept", "text/html")]
}

/// The proxy's own cookies a response sets (`__isp_…`).
fn own_cookies(got: &support::Got) -> Vec<&str> {
    got.all("set-cookie").into_iter().filter(|c| c.starts_with("__isp_")).collect()
}

/// `PUT /rollout` (or `/rollout/<site>`) with `body` and the given `Authorization`.
fn put(proxy: &Proxy, path: &str, body: &str, authorization: Option<&str>) -> support::Got {
    let auth = authorization.map(|a| ("authorization", a));
    let headers: Vec<(&str, &str)> =
        auth.into_iter().chain([("content-type", "application/json")]).collect();
    send("PUT", &proxy.admin_url(path), &headers, body.as_bytes())
}

fn bearer() -> String {
    format!("Bearer {ADMIN_TOKEN}")
}

fn rollout_now(proxy: &Proxy, path: &str) -> serde_json::Value {
    let got = get(&proxy.admin_url(path), &[]);
    assert_eq!(got.status, 200, "{}", got.text());
    serde_json::from_slice(&got.body).expect("GET /rollout is JSON")
}

#[test]
fn the_report_path_takes_same_origin_posts_of_a_bounded_report_and_is_never_forwarded() {
    let app = app();
    let proxy = Proxy::start_with_admin(&config(&app, "rollout:\n  mode: report_only\n"));
    let url = proxy.url("/__isp/report");
    let same = [("sec-fetch-site", "same-origin"), ("content-type", "text/plain;charset=UTF-8")];

    for method in ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"] {
        let got = send(method, &url, &same, if method == "PUT" { INSECURE_REPORT } else { b"" });
        assert_eq!((got.status, got.header("allow")), (405, Some("POST")), "{method}");
    }
    let origin_of = format!("http://{}", proxy.addr);
    for (why, headers) in [
        ("no sign of the origin", vec![]),
        ("a cross-site request", vec![("sec-fetch-site", "cross-site")]),
        ("a same-site request", vec![("sec-fetch-site", "same-site")]),
        ("another origin", vec![("origin", "http://evil.example")]),
        (
            "another origin claiming to be same-origin",
            vec![("sec-fetch-site", "cross-site"), ("origin", origin_of.as_str())],
        ),
    ] {
        assert_eq!(send("POST", &url, &headers, INSECURE_REPORT).status, 403, "{why}");
    }
    let mut big = INSECURE_REPORT.to_vec();
    big.resize(4096, b' ');
    assert_eq!(send("POST", &url, &same, &big).status, 413, "a body over the bound");
    assert_eq!(
        send("POST", &url, &same, b"{\"verdict\":\"alice@example.com\"}").status,
        400,
        "not a report"
    );

    let from_page = [
        ("sec-fetch-site", "same-origin"),
        ("referer", "http://app.test/orders/;jsessionid=S3SS10N?q=QUERYVALUE"),
    ];
    let ok = send("POST", &url, &from_page, INSECURE_REPORT);
    assert_eq!((ok.status, ok.body.len()), (204, 0));
    assert_eq!(ok.header("cache-control"), Some("no-store"));
    assert!(ok.header("set-cookie").is_none());
    assert_eq!(
        send("POST", &url, &[("origin", origin_of.as_str())], INSECURE_REPORT).status,
        204,
        "Origin naming the host"
    );

    assert_eq!(app.count("/__isp/report"), 0, "never forwarded to the app");
    let (text, samples) = scrape(&proxy);
    assert_eq!(
        value(&samples, "intercom_secure_proxy_page_reports_total{verdict=insecure}"),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(&samples, "intercom_secure_proxy_requests_total{outcome=report}"),
        14.0,
        "every request to it is one"
    );
    let log = proxy.log_text();
    assert!(log.contains("report-only page /orders/: the Messenger boots insecure (fields in clear: user_id, email)"), "{log}");
    for leak in ["QUERYVALUE", "S3SS10N", "alice@example.com"] {
        assert!(!log.contains(leak), "{leak} in the log:\n{log}");
    }
}

#[test]
fn report_only_serves_the_apps_bytes_with_the_observer_added_and_no_cookie_token_or_marker() {
    let app = app();
    let proxy = Proxy::start_with_admin(&config(&app, "rollout:\n  mode: report_only\n"));

    let page = get(&proxy.url("/account"), &as_user("u-1"));
    assert_eq!(page.status, 200);
    assert!(carries_the_observer(&page.text()), "{}", page.text());
    assert_eq!(
        without_our_script(&page.body),
        PAGE.as_bytes(),
        "the app's bytes, but for the observer"
    );
    assert!(support::page_token(&page.text()).is_none(), "no token in report only");
    assert_eq!(own_cookies(&page), Vec::<&str>::new(), "no cookie of ours");
    assert_eq!(
        page.header("cache-control"),
        Some("public, max-age=60"),
        "the same bytes for everyone: still cacheable"
    );

    let refresh = get(&proxy.url("/__isp/token"), &as_user("u-1"));
    assert_eq!((refresh.status, refresh.body.len()), (204, 0), "no token handed out");
    let logout = get(
        &proxy.url("/logout"),
        &[("x-forwarded-user", "u-1"), ("cookie", "__isp_user=sometag")],
    );
    assert_eq!(logout.status, 302);
    assert_eq!(own_cookies(&logout), Vec::<&str>::new(), "no logout marker");
    let anonymous = get(&proxy.url("/"), &[("accept", "text/html")]);
    assert!(carries_the_observer(&anonymous.text()), "logged-out visitors' pages are observed too");

    let (_, samples) = scrape(&proxy);
    assert_eq!(value(&samples, "intercom_secure_proxy_requests_total{outcome=observed}"), 2.0);
    assert_eq!(value(&samples, "intercom_secure_proxy_rollout_mode{mode=report_only,site=*}"), 1.0);
    assert_eq!(value(&samples, "intercom_secure_proxy_rollout_mode{mode=enforce,site=*}"), 0.0);
}

#[test]
fn the_observer_gets_the_pages_csp_nonce_or_its_own_hash() {
    let app = Upstream::start(|r| {
        let csp = match r.path() {
            "/nonce" => "script-src 'nonce-r4nd0m' 'strict-dynamic'",
            _ => "script-src 'self'",
        };
        Reply::with(
            200,
            &[("content-type", "text/html; charset=utf-8"), ("content-security-policy", csp)],
            PAGE,
        )
    });
    let proxy = Proxy::start(&config(&app, "rollout:\n  mode: report_only\n"));
    let nonce = get(&proxy.url("/nonce"), &as_user("u-1"));
    assert!(nonce.text().contains("<script nonce=\"r4nd0m\""), "{}", nonce.text());
    assert_eq!(
        nonce.header("content-security-policy"),
        Some("script-src 'nonce-r4nd0m' 'strict-dynamic'")
    );
    let hashed = get(&proxy.url("/self"), &as_user("u-1"));
    let policy = hashed.header("content-security-policy").unwrap_or_default();
    assert!(policy.starts_with("script-src 'self' 'sha256-"), "{policy}");
    assert!(carries_the_observer(&hashed.text()));
}

#[test]
fn off_passes_every_response_through_without_a_lookup_and_the_refresh_path_answers_204() {
    let app = Upstream::start(|r| match r.path() {
        "/api/me" => Reply::with(
            200,
            &[("content-type", "application/json")],
            r#"{"id":"u-1","email":"u1@example.com"}"#,
        ),
        "/logout" => Reply::with(302, &[("location", "/")], ""),
        _ => Reply::html(PAGE),
    });
    let identity = "identity:\n  sources:\n    - type: current_user_endpoint\n      path: /api/me\n      cookies: [sid]\n";
    let proxy = Proxy::start_with_admin_token(&support::sections(
        app.addr,
        identity,
        "logout:\n  paths: [\"/logout\"]\n",
    ));
    let page = |sid: &str| {
        get(&proxy.url("/"), &[("cookie", &format!("sid={sid}")), ("accept", "text/html")])
    };

    // Enforced first: the page is looked up and rewritten, so the same steps can fail.
    let enforced = page("first");
    assert!(support::page_token(&enforced.text()).is_some());
    assert_eq!(app.count("/api/me"), 1);

    assert_eq!(put(&proxy, "/rollout", r#"{"mode":"off"}"#, Some(&bearer())).status, 200);
    let off = page("second");
    assert_eq!(off.body, PAGE.as_bytes(), "untouched");
    assert!(off.header("set-cookie").is_none());
    let refresh = get(&proxy.url("/__isp/token"), &[("cookie", "sid=third")]);
    assert_eq!(refresh.status, 204);
    let logout = get(&proxy.url("/logout"), &[("cookie", "sid=second; __isp_user=sometag")]);
    assert_eq!(own_cookies(&logout), Vec::<&str>::new(), "no logout marker");
    assert_eq!(app.count("/api/me"), 1, "no identity lookup while off");
    let report = send(
        "POST",
        &proxy.url("/__isp/report"),
        &[("sec-fetch-site", "same-origin")],
        INSECURE_REPORT,
    );
    assert_eq!(report.status, 204, "reports of pages still open are taken");
    assert_eq!(app.count("/__isp/report") + app.count("/__isp/token"), 0, "never forwarded");
}

#[test]
fn put_rollout_needs_the_token_and_is_refused_without_one_configured() {
    let app = app();
    let proxy = Proxy::start_with_admin_token(&config(&app, "rollout:\n  percent: 40\n"));
    assert_eq!(
        rollout_now(&proxy, "/rollout"),
        serde_json::json!({"mode": "enforce", "percent": 40})
    );

    let wrong = format!("Bearer {ADMIN_TOKEN}x");
    for (why, auth) in [
        ("no token", None),
        ("a wrong token", Some(wrong.as_str())),
        ("no bearer", Some(ADMIN_TOKEN)),
        ("empty", Some("Bearer ")),
    ] {
        let got = put(&proxy, "/rollout", r#"{"mode":"off"}"#, auth);
        assert_eq!((got.status, got.header("www-authenticate")), (401, Some("Bearer")), "{why}");
    }
    for bad in
        [r#"{"mode":"on"}"#, r#"{"percent":101}"#, r#"{}"#, r#"{"mode":"off","extra":1}"#, "off"]
    {
        assert_eq!(put(&proxy, "/rollout", bad, Some(&bearer())).status, 400, "{bad}");
    }
    assert_eq!(
        rollout_now(&proxy, "/rollout"),
        serde_json::json!({"mode": "enforce", "percent": 40}),
        "unchanged"
    );

    let done = put(&proxy, "/rollout", r#"{"mode":"report_only","percent":70}"#, Some(&bearer()));
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(
        rollout_now(&proxy, "/rollout"),
        serde_json::json!({"mode": "report_only", "percent": 70})
    );
    let (_, samples) = scrape(&proxy);
    assert_eq!(value(&samples, "intercom_secure_proxy_rollout_mode{mode=report_only,site=*}"), 1.0);
    assert_eq!(value(&samples, "intercom_secure_proxy_rollout_mode{mode=enforce,site=*}"), 0.0);
    assert_eq!(value(&samples, "intercom_secure_proxy_rollout_percent{site=*}"), 70.0);
    let log = proxy.log_text();
    assert!(
        log.contains("rollout of site *: mode enforce -> report_only, percent 40 -> 70"),
        "{log}"
    );
    assert!(!log.contains(ADMIN_TOKEN), "the token in the log:\n{log}");
    assert_eq!(request("DELETE", &proxy.admin_url("/rollout"), &[]).status, 405);

    let untokened = Proxy::start_with_admin(&config(&app, ""));
    let refused = put(&untokened, "/rollout", r#"{"mode":"off"}"#, Some(&bearer()));
    assert_eq!((refused.status, refused.header("allow")), (405, Some("GET, HEAD")));
    assert_eq!(rollout_now(&untokened, "/rollout")["mode"], "enforce", "unchanged");
}

#[test]
fn with_sites_each_named_site_has_its_own_rollout_and_admin_path() {
    let app = app();
    let site = |name: &str, host: &str| {
        format!(
            "  - name: {name}\n    hosts: [\"{host}\"]\n    upstream:\n      addresses: [\"{}\"]\n    intercom:\n      app_id: abc12345\n      secret_env: TEST_INTERCOM_SECRET\n    identity:\n      sources:\n        - type: trusted_header\n          trusted_cidrs: [\"127.0.0.1/32\"]\n          headers: {{user_id: X-Forwarded-User}}\n",
            app.addr
        )
    };
    let sections = format!(
        "sites:\n{}{}    rollout:\n      mode: report_only\n",
        site("shop", "127.0.0.1"),
        site("blog", "localhost")
    );
    let proxy = Proxy::start_with_admin_token(&sections);
    assert_eq!(
        rollout_now(&proxy, "/rollout/blog"),
        serde_json::json!({"mode": "report_only", "percent": 100})
    );
    assert_eq!(put(&proxy, "/rollout/shop", r#"{"mode":"off"}"#, Some(&bearer())).status, 200);
    assert_eq!(put(&proxy, "/rollout/nosuch", r#"{"mode":"off"}"#, Some(&bearer())).status, 404);
    assert_eq!(
        rollout_now(&proxy, "/rollout"),
        serde_json::json!({"sites": {"shop": {"mode": "off", "percent": 100}, "blog": {"mode": "report_only", "percent": 100}}})
    );
    let shop = get(&proxy.url("/"), &as_user("u-1"));
    assert_eq!(shop.body, PAGE.as_bytes(), "the shop is off");
    let blog = get(&format!("http://localhost:{}/", proxy.addr.port()), &as_user("u-1"));
    assert!(carries_the_observer(&blog.text()), "the blog is still observed");
    // PUT /rollout is every site at once.
    assert_eq!(put(&proxy, "/rollout", r#"{"mode":"enforce"}"#, Some(&bearer())).status, 200);
    assert!(support::page_token(&get(&proxy.url("/"), &as_user("u-1")).text()).is_some());
}

/// Whether each of `users` is in the rollout on `proxy`, by the refresh path (a token,
/// or 204 for a user outside).
fn decisions(proxy: &Proxy, users: &[String]) -> Vec<bool> {
    users
        .iter()
        .map(|u| match get(&proxy.url("/__isp/token"), &[("x-forwarded-user", u)]).status {
            200 => true,
            204 => false,
            other => panic!("{other} from the refresh path for {u}"),
        })
        .collect()
}

#[test]
fn thirty_percent_of_a_thousand_users_are_in_and_each_decision_holds_on_every_process_and_after_a_restart(
) {
    let app = app();
    let conf = config(&app, "rollout:\n  percent: 30\n");
    let users: Vec<String> = (0..1000).map(|n| format!("user-{n:04}@example.com")).collect();
    let mut proxies: Vec<Proxy> = (0..3).map(|_| Proxy::start(&conf)).collect();

    let first = decisions(&proxies[0], &users);
    let share = first.iter().filter(|d| **d).count();
    assert!((250..=350).contains(&share), "{share} of 1000 users in a 30% rollout");
    for (n, p) in proxies.iter().enumerate().skip(1) {
        assert_eq!(decisions(p, &users), first, "process {n} decides otherwise");
    }
    proxies.remove(0);
    proxies.push(Proxy::start(&conf));
    assert_eq!(decisions(&proxies[2], &users), first, "a restarted process decides otherwise");

    // The page follows the same decision: a user outside gets the app's page.
    let inside = &users[first.iter().position(|d| *d).unwrap()];
    let outside = &users[first.iter().position(|d| !*d).unwrap()];
    let page = get(&proxies[1].url("/"), &as_user(inside));
    assert!(support::page_token(&page.text()).is_some());
    let untouched = get(&proxies[1].url("/"), &as_user(outside));
    assert_eq!(untouched.body, PAGE.as_bytes());
    assert_eq!(own_cookies(&untouched), Vec::<&str>::new());
    assert_eq!(untouched.header("cache-control"), Some("public, max-age=60"));
}

#[test]
fn a_logged_out_browser_keeps_the_slice_its_user_was_in() {
    let app = app();
    let proxy = Proxy::start_with_admin_token(&config(&app, "rollout:\n  percent: 30\n"));
    let users: Vec<String> = (0..40).map(|n| format!("user-{n}")).collect();
    let slice = decisions(&proxy, &users);
    let inside = &users[slice.iter().position(|d| *d).expect("a user in")];
    let outside = &users[slice.iter().position(|d| !*d).expect("a user out")];
    // The last-user cookie of each (the one outside gets one only while everyone is in).
    let tag_of = |user: &str| {
        let page = get(&proxy.url("/"), &as_user(user));
        let cookie = own_cookies(&page)
            .into_iter()
            .find(|c| c.starts_with("__isp_user="))
            .map(str::to_string);
        cookie
            .and_then(|c| c.split(';').next().map(str::to_string))
            .unwrap_or_else(|| panic!("no last-user cookie for {user}"))
    };
    let inside_tag = tag_of(inside);
    assert_eq!(put(&proxy, "/rollout", r#"{"percent":100}"#, Some(&bearer())).status, 200);
    let outside_tag = tag_of(outside);
    assert_eq!(put(&proxy, "/rollout", r#"{"percent":30}"#, Some(&bearer())).status, 200);

    let logout = |tag: &str| get(&proxy.url("/logout"), &[("cookie", tag)]);
    assert!(
        own_cookies(&logout(&inside_tag)).iter().any(|c| c.starts_with("__isp_shutdown=1")),
        "a logout in the rollout sets the marker"
    );
    assert_eq!(
        own_cookies(&logout(&outside_tag)),
        Vec::<&str>::new(),
        "a logout outside it is left alone"
    );
    let page = |cookie: &str| get(&proxy.url("/"), &[("cookie", cookie), ("accept", "text/html")]);
    assert!(
        support::runs_a_shutdown(&page("__isp_shutdown=1").text()),
        "the marker's shutdown still runs"
    );
    assert!(
        page(&inside_tag).text().contains("__intercomSecureProxy"),
        "its watcher, as for a visitor in the rollout"
    );
    assert_eq!(
        page(&outside_tag).body,
        PAGE.as_bytes(),
        "a visitor whose user was outside: untouched"
    );
    assert_eq!(page("").body, PAGE.as_bytes(), "a visitor never in the rollout: untouched");
}

/// One page a sampler fetched while the switch was thrown: the phase it was sent and
/// answered in, the app's sequence number in it, and what the proxy did with it.
struct Sample {
    phase: u8,
    seq: u64,
    rewritten: bool,
    untouched: bool,
    text: String,
}

/// The phases of the kill-switch run: before, switching off, off, switching back, after.
const BEFORE: u8 = 0;
const OFF: u8 = 2;
const AFTER: u8 = 4;
/// A page sent in one phase and answered in another (the proxy, busy with wrk's load,
/// may read the mode after the next switch): either way is right for it.
const ACROSS: u8 = u8::MAX;

fn numbered_page(seq: u64) -> String {
    format!("<!DOCTYPE html>\n<html><head><title>n</title><script>window.intercomSettings={{app_id:\"abc12345\",user_id:\"alice\"}};</script></head><body><p id=\"seq\">{seq}</p></body></html>\n")
}

#[test]
fn the_kill_switch_under_wrk_load_fails_no_request_and_every_later_page_is_untouched_then_rewritten_again(
) {
    let counter = Arc::new(AtomicU64::new(0));
    let next = counter.clone();
    let app = Upstream::start(move |_| {
        Reply::html(numbered_page(next.fetch_add(1, Ordering::SeqCst) + 1))
    });
    let proxy = Proxy::start_with_admin_token(&support::sections(app.addr, TRUSTED_HEADER, ""));
    let phase = Arc::new(AtomicU8::new(BEFORE));
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (phase, stop, samples, url) =
            (phase.clone(), stop.clone(), samples.clone(), proxy.url("/"));
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let at = phase.load(Ordering::SeqCst);
                let got = get(&url, &[("x-forwarded-user", "alice"), ("accept", "text/html")]);
                let at = if phase.load(Ordering::SeqCst) == at { at } else { ACROSS };
                assert_eq!(got.status, 200);
                let text = got.text();
                let seq = text
                    .split("<p id=\"seq\">")
                    .nth(1)
                    .and_then(|t| t.split('<').next())
                    .and_then(|n| n.parse().ok());
                let seq = seq.unwrap_or_else(|| panic!("no sequence number in {text}"));
                let rewritten = support::page_token(&text).is_some();
                let untouched = text == numbered_page(seq);
                samples.lock().unwrap().push(Sample { phase: at, seq, rewritten, untouched, text });
            }
        })
    };
    let port = proxy.addr.port();
    support::under_keep_alive_load(port, || {
        let switch = |to: &str, during: u8, after: u8| {
            phase.store(during, Ordering::SeqCst);
            let got = put(&proxy, "/rollout", &format!("{{\"mode\":\"{to}\"}}"), Some(&bearer()));
            assert_eq!(got.status, 200, "{}", got.text());
            phase.store(after, Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(2));
        };
        switch("off", 1, OFF);
        switch("enforce", 3, AFTER);
    });
    stop.store(true, Ordering::SeqCst);
    sampler.join().unwrap();

    let samples = samples.lock().unwrap();
    let mut seen: HashMap<u8, usize> = HashMap::new();
    for s in samples.iter() {
        *seen.entry(s.phase).or_default() += 1;
        match s.phase {
            BEFORE | AFTER => assert!(
                s.rewritten,
                "page {} (phase {}) was not rewritten: {}",
                s.seq, s.phase, s.text
            ),
            OFF => assert!(
                s.untouched,
                "page {} was sent after the switch to off, and changed: {}",
                s.seq, s.text
            ),
            _ => assert!(s.rewritten || s.untouched, "page {} half rewritten: {}", s.seq, s.text),
        }
    }
    for p in [BEFORE, OFF, AFTER] {
        assert!(seen.get(&p).copied().unwrap_or(0) >= 5, "too few pages in phase {p}: {seen:?}");
    }
    let log = proxy.log_text();
    assert!(log.contains("mode enforce -> off") && log.contains("mode off -> enforce"), "{log}");
}

#[test]
fn check_prints_the_rollout_and_refuses_a_bad_one_by_key() {
    let app = app();
    let (code, out) = check_config(&format!(
        "listen: [\"127.0.0.1:8080\"]\nadmin:\n  listen: \"127.0.0.1:9090\"\n{}",
        config(&app, "rollout:\n  mode: report_only\n  percent: 25\n")
    ));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("rollout:   report_only: pages left as the app sent them, an observer for 25% of users, reports at /__isp/report"), "{out}");
    assert!(
        out.contains(
            "admin:     127.0.0.1:9090 (metrics, health, rollout; no token: PUT /rollout refused)"
        ),
        "{out}"
    );
    for (yaml, key) in [
        ("rollout:\n  percent: 130\n", "`rollout.percent`"),
        ("rollout:\n  mode: canary\n", "`rollout.mode`"),
        ("rollout:\n  report_path: /__isp/token\n", "`rollout.report_path`"),
    ] {
        let (code, out) =
            check_config(&format!("listen: [\"127.0.0.1:8080\"]\n{}", config(&app, yaml)));
        assert_eq!(code, Some(2), "{yaml}: {out}");
        assert!(out.contains(key), "{yaml}: {out}");
    }
    let (code, out) = check_config(&format!(
        "listen: [\"127.0.0.1:8080\"]\nadmin:\n  listen: \"127.0.0.1:9090\"\n  token_env: NO_SUCH_ADMIN_TOKEN_VARIABLE\n{}",
        config(&app, "")
    ));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("`admin.token_env`"), "{out}");
    // The token in a file: named in the summary, never shown; never in the file itself.
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let (code, out) = check_config(&format!(
        "listen: [\"127.0.0.1:8080\"]\nadmin:\n  listen: \"127.0.0.1:9090\"\n  token_file: {}\n{}",
        token_file.display(),
        config(&app, "")
    ));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("PUT /rollout with the token from file {}", token_file.display())),
        "{out}"
    );
    assert!(!out.contains(ADMIN_TOKEN), "{out}");
    let (code, out) = check_config(&format!("listen: [\"127.0.0.1:8080\"]\nadmin:\n  listen: \"127.0.0.1:9090\"\n  token: {ADMIN_TOKEN}\n{}", config(&app, "")));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("`admin.token`") && !out.contains(ADMIN_TOKEN), "{out}");
}

#[test]
fn the_grafana_dashboard_queries_only_metrics_the_proxy_exports() {
    let path =
        concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/intercom-secure-proxy-rollout.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap())
            .expect("the dashboard is JSON");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().map(str::to_string).expect("every target has a query"))
        .collect();
    assert!(exprs.len() >= 8, "{exprs:?}");

    // Every metric the dashboard reads, given something to count.
    let app = app();
    let proxy = Proxy::start_with_admin(&config(&app, ""));
    assert!(support::page_token(&get(&proxy.url("/"), &as_user("u-1")).text()).is_some());
    get(&proxy.url("/logout"), &as_user("u-1"));
    send(
        "POST",
        &proxy.url("/__isp/report"),
        &[("sec-fetch-site", "same-origin")],
        INSECURE_REPORT,
    );
    let (text, _) = scrape(&proxy);
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();

    let mut read = Vec::new();
    for expr in &exprs {
        let names = expr.match_indices("intercom_secure_proxy_").map(|(at, _)| {
            let rest = &expr[at..];
            &rest[..rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len())]
        });
        for name in names {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| families.contains(f))
                .unwrap_or(name);
            assert!(
                families.contains(&family),
                "{expr}: {name} is not a metric the proxy exports:\n{text}"
            );
            read.push(family);
        }
    }
    for wanted in [
        "rollout_mode",
        "rollout_percent",
        "rollout_pages_total",
        "page_reports_total",
        "requests_total",
    ] {
        assert!(
            read.contains(&format!("intercom_secure_proxy_{wanted}").as_str()),
            "the dashboard shows no {wanted}"
        );
    }
}
