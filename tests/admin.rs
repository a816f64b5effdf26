//! The admin listener through the real binary: `/metrics` parsed as Prometheus text,
//! with bounded labels and no user, cookie or path in it; `/healthz`; `/readyz` 503
//! while the app is down and 200 once it listens.

mod support;

use std::net::TcpListener;

use support::{get, request, scrape, value, Proxy, Reply, Upstream, TRUSTED_HEADER};

const PAGE: &str = "<html><head><script>1</script></head><body>page</body></html>";

/// The proxy with its admin listener, in front of `upstream`; `more` is added to the
/// config.
fn proxy_with_admin(upstream: std::net::SocketAddr, more: &str) -> Proxy {
    Proxy::start_with_admin(&support::sections(
        upstream,
        TRUSTED_HEADER,
        &format!("logout:\n  paths: [\"/logout\"]\n{more}"),
    ))
}

#[test]
fn metrics_count_outcomes_lookups_tokens_and_logouts_with_bounded_labels() {
    let app = Upstream::start(|r| match r.path() {
        "/style.css" => Reply::with(200, &[("content-type", "text/css")], "body{}"),
        "/logout" => Reply::with(302, &[("location", "/")], ""),
        _ => Reply::html(PAGE),
    });
    // The access log says, if a count is off, which request it was.
    let logs = tempfile::tempdir().unwrap();
    let access = logs.path().join("access.log");
    let proxy = proxy_with_admin(app.addr, &format!("log:\n  access: {}\n", access.display()));

    let alice = [("x-forwarded-user", "alice-id-123"), ("cookie", "sid=COOKIEVALUE")];
    assert!(
        support::page_token(&get(&proxy.url("/account?tab=SECRETQUERY"), &alice).text()).is_some()
    );
    get(&proxy.url("/"), &[]);
    get(&proxy.url("/style.css"), &alice);
    request("POST", &proxy.url("/form"), &alice);
    get(&proxy.url("/logout"), &alice);

    let (text, samples) = scrape(&proxy);
    let p = "intercom_secure_proxy_";
    // Its writer thread may lag behind the responses: wait for the five lines.
    let requests = || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            let lines = std::fs::read_to_string(&access).unwrap_or_default();
            if lines.lines().count() >= 5 || std::time::Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    assert_eq!(
        value(&samples, &format!("{p}requests_total{{outcome=rewritten}}")),
        1.0,
        "{}\n{text}",
        requests()
    );
    assert!(value(&samples, &format!("{p}requests_total{{outcome=anonymous}}")) >= 1.0);
    assert_eq!(value(&samples, &format!("{p}requests_total{{outcome=content-type}}")), 1.0);
    assert!(value(&samples, &format!("{p}requests_total{{outcome=passthrough}}")) >= 1.0);
    assert!(
        value(&samples, &format!("{p}identity_lookups_total{{result=hit,source=trusted_header}}"))
            >= 1.0
    );
    assert!(value(&samples, &format!("{p}tokens_signed_total{{}}")) >= 1.0);
    assert_eq!(value(&samples, &format!("{p}logouts_total{{mode=marker}}")), 1.0);
    assert!(value(&samples, &format!("{p}response_seconds{{}}")) >= 5.0, "every response is timed");
    for leak in
        ["alice-id-123", "COOKIEVALUE", "SECRETQUERY", "/account", "/style.css", support::SECRET]
    {
        assert!(!text.contains(leak), "{leak:?} in /metrics:\n{text}");
    }

    assert_eq!(get(&proxy.admin_url("/healthz"), &[]).status, 200);
    let ready = get(&proxy.admin_url("/readyz"), &[]);
    assert_eq!((ready.status, ready.text().as_str()), (200, "ready\n"));
}

#[test]
fn readyz_says_503_while_the_app_is_down_and_200_once_it_listens() {
    // An app address where nothing listens yet.
    let app_port = support::free_port();
    let app_addr = format!("127.0.0.1:{app_port}").parse().unwrap();
    let proxy = proxy_with_admin(app_addr, "");
    let readyz = proxy.admin_url("/readyz");

    let down = get(&readyz, &[]);
    assert_eq!(down.status, 503);
    assert!(
        down.text().contains(&format!("no app address accepts connections (127.0.0.1:{app_port})")),
        "{}",
        down.text()
    );
    assert_eq!(get(&proxy.admin_url("/healthz"), &[]).status, 200, "alive even when not ready");
    assert_eq!(get(&proxy.url("/"), &[]).status, 502);
    let (_, samples) = scrape(&proxy);
    assert!(value(&samples, "intercom_secure_proxy_upstream_errors_total{}") >= 1.0);

    let _app = TcpListener::bind(("127.0.0.1", app_port)).unwrap();
    assert_eq!(get(&readyz, &[]).status, 200);
}

#[test]
fn the_admin_listener_may_not_share_a_proxy_port() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let conf = dir.path().join("c.yaml");
    std::fs::write(
        &conf,
        format!(
            "listen: [\"127.0.0.1:{port}\"]\nadmin:\n  listen: \"0.0.0.0:{port}\"\n{}",
            support::sections("127.0.0.1:3000".parse().unwrap(), TRUSTED_HEADER, "")
        ),
    )
    .unwrap();
    let (code, text) =
        support::check_config_file(&conf, &[("TEST_INTERCOM_SECRET", support::SECRET)]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("`admin.listen`"), "{text}");
}

#[test]
fn the_admin_paths_answer_get_and_head_only_and_405_with_allow_otherwise() {
    let app = Upstream::start(|_| Reply::html(PAGE));
    let proxy = proxy_with_admin(app.addr, "");
    for path in ["/metrics", "/healthz", "/readyz"] {
        let url = proxy.admin_url(path);
        assert_eq!(get(&url, &[]).status, 200, "GET {path}");
        let head = request("HEAD", &url, &[]);
        assert_eq!(
            (head.status, head.text().as_str()),
            (200, ""),
            "HEAD {path}: a status and no body"
        );
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let got = request(method, &url, &[]);
            assert_eq!(got.status, 405, "{method} {path}");
            assert_eq!(got.header("allow"), Some("GET, HEAD"), "{method} {path}");
        }
    }
    assert_eq!(
        request("POST", &proxy.admin_url("/elsewhere"), &[]).status,
        404,
        "an unknown path is unknown whatever the method"
    );
}
