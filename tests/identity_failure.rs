//! When the proxy cannot tell who the user is, or did not see the login, the page is
//! still served and the Messenger still never gets a plain identity, in real Chromium:
//!
//! - `inject.on_identity_failure: defer` (default): an `/api/me` slower than the
//!   source's timeout, or a Redis that hangs, and the page's Messenger boots with the
//!   right user's verified token once the lookup (which went on in the background) has
//!   its answer; `strip` boots it without identity; `pass` is the old, insecure way;
//! - `inject.watch_logged_out` (default on): a page served to a logged-out visitor that
//!   logs in by XHR and then boots the Messenger itself with a plain identity gets the
//!   token instead; off, the page is the app's byte for byte;
//! - a page that boots another workspace is reported and counted.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::redis::Redis;
use support::{Proxy, Reply, Request, Upstream, APP_ID};

const ALICE_ID: &str = "u-alice-1001";
const ALICE_EMAIL: &str = "alice@example.com";

/// The official loader with the app's plain identity, as an insecure app renders it.
fn insecure_page(app_id: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Dashboard</title>\n\
<script>window.intercomSettings = {{app_id: \"{app_id}\", user_id: \"{ALICE_ID}\", email: \"{ALICE_EMAIL}\", name: \"Alice\"}};</script>\n\
<script>(function(){{var w=window;var ic=w.Intercom;if(typeof ic===\"function\"){{ic('update',w.intercomSettings);}}else{{var d=document;var i=function(){{i.c(arguments);}};i.q=[];i.c=function(args){{i.q.push(args);}};w.Intercom=i;var l=function(){{var s=d.createElement('script');s.async=true;s.src='https://widget.intercom.io/widget/{app_id}';var x=d.getElementsByTagName('script')[0];x.parentNode.insertBefore(s,x);}};if(document.readyState==='complete'){{l();}}else{{w.addEventListener('load',l,false);}}}}}})();</script>\n\
</head><body><p>Hello</p></body></html>\n"
    )
}

fn html(body: String) -> Reply {
    Reply::with(
        200,
        &[("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")],
        body,
    )
}

fn me(req: &Request) -> Reply {
    match req.cookie("sid").as_deref() {
        Some("alice-session") => Reply::with(
            200,
            &[("Content-Type", "application/json")],
            format!("{{\"id\":\"{ALICE_ID}\",\"email\":\"{ALICE_EMAIL}\"}}"),
        ),
        _ => Reply::with(401, &[], ""),
    }
}

/// An app whose `/api/me` answers after `delay`.
fn slow_app(delay: Duration) -> Upstream {
    Upstream::start(with_login(move |req| match req.path() {
        "/api/me" => Reply::After(delay, Box::new(me(req))),
        _ => html(insecure_page(APP_ID)),
    }))
}

fn endpoint(timeout: &str) -> String {
    format!("identity:\n  sources:\n    - type: current_user_endpoint\n      path: /api/me\n      cookies: [sid]\n      fields: {{user_id: /id, email: /email}}\n      timeout: {timeout}\n")
}

/// A browser with alice's session cookie loads `/` and waits for the Messenger's boot.
fn load_as_alice(proxy: &Proxy) -> Value {
    let steps = vec![
        // The cookie is set by a page of the app's origin, as the app's login would.
        json!({"goto": proxy.url("/set-cookie"), "wait": "load"}),
        json!({"goto": proxy.url("/"), "wait": "boot", "timeoutMs": 12000}),
    ];
    let report = support::run_browser(steps, &|| format!("proxy log:\n{}", proxy.log_text()));
    report[1].clone()
}

fn boots(step: &Value) -> Vec<&Value> {
    step["calls"]
        .as_array()
        .map(|c| c.iter().filter(|c| c["method"] == "boot").collect())
        .unwrap_or_default()
}

fn no_plain_identity(step: &Value, context: &dyn Fn() -> String) {
    for c in step["calls"].as_array().unwrap() {
        let s = &c["settings"];
        assert!(
            s.get("user_id").is_none() && s.get("email").is_none(),
            "a plain identity reached the Messenger: {c}\n{}",
            context()
        );
    }
}

/// Wraps an app so that `/set-cookie` gives the browser alice's session cookie.
fn with_login(
    inner: impl Fn(&Request) -> Reply + Send + Sync + 'static,
) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |req| match req.path() {
        "/set-cookie" => Reply::with(
            200,
            &[
                ("Content-Type", "text/plain"),
                ("Set-Cookie", "sid=alice-session; Path=/; HttpOnly; SameSite=Lax"),
            ],
            "ok",
        ),
        _ => inner(req),
    }
}

#[test]
fn a_slow_endpoint_defers_the_boot_until_the_token_comes() {
    let app = slow_app(Duration::from_millis(700));
    let proxy = Proxy::start(&support::sections(app.addr, &endpoint("500ms"), ""));
    let step = load_as_alice(&proxy);
    let context = || {
        format!(
            "{}\nproxy log:\n{}",
            serde_json::to_string_pretty(&step).unwrap(),
            proxy.log_text()
        )
    };
    assert_eq!(step["timedOut"], false, "{}", context());
    no_plain_identity(&step, &context);
    let boot = boots(&step);
    assert_eq!(boot.len(), 1, "{}", context());
    let token = boot[0]["settings"]["intercom_user_jwt"]
        .as_str()
        .unwrap_or_else(|| panic!("the deferred boot has no token\n{}", context()));
    assert_eq!(support::verify(token)["user_id"], ALICE_ID, "{}", context());
    assert!(
        proxy.log_text().contains("current-user endpoint /api/me failed"),
        "the page's own lookup timed out\n{}",
        context()
    );
}

#[test]
fn strip_boots_without_identity_and_pass_keeps_the_old_insecure_page() {
    let app = slow_app(Duration::from_millis(700));
    let strip = Proxy::start(&support::sections(
        app.addr,
        &endpoint("300ms"),
        "inject:\n  on_identity_failure: strip\n",
    ));
    let step = load_as_alice(&strip);
    let context = || {
        format!(
            "{}\nproxy log:\n{}",
            serde_json::to_string_pretty(&step).unwrap(),
            strip.log_text()
        )
    };
    no_plain_identity(&step, &context);
    let boot = boots(&step);
    assert_eq!(boot.len(), 1, "{}", context());
    assert!(boot[0]["settings"].get("intercom_user_jwt").is_none(), "{}", context());

    let pass = Proxy::start(&support::sections(
        app.addr,
        &endpoint("300ms"),
        "inject:\n  on_identity_failure: pass\n",
    ));
    let step = load_as_alice(&pass);
    assert_eq!(
        boots(&step)[0]["settings"]["user_id"],
        ALICE_ID,
        "pass leaves the page as the app sent it"
    );
}

#[test]
fn a_hanging_redis_defers_the_boot_until_redis_answers() {
    let redis = Redis::start();
    let session =
        format!("{{\"passport\":{{\"user\":\"{ALICE_ID}\"}},\"email\":\"{ALICE_EMAIL}\"}}");
    assert_eq!(redis.command(&["SET", "sess:alice-session", &session]).as_deref(), Some("+OK"));
    // Redis stops answering (CLIENT PAUSE, 1.5 s) when the app serves the page, as a
    // Redis under a long command or a failover does: the proxy's lookup times out.
    let port = redis.port;
    let hung = Arc::new(AtomicBool::new(false));
    let once = hung.clone();
    let app = Upstream::start(with_login(move |req| {
        if req.path() == "/" && !once.swap(true, Ordering::SeqCst) {
            let mut r = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            use std::io::{Read, Write};
            r.write_all(b"*4\r\n$6\r\nCLIENT\r\n$5\r\nPAUSE\r\n$4\r\n1500\r\n$3\r\nALL\r\n")
                .unwrap();
            let mut buf = [0u8; 16];
            let _ = r.read(&mut buf);
        }
        html(insecure_page(APP_ID))
    }));
    let identity = format!(
        "identity:\n  sources:\n    - type: redis_session\n      redis: {}\n      cookie: sid\n      fields: {{user_id: /passport/user, email: /email}}\n      timeout: 200ms\n",
        redis.url()
    );
    let proxy = Proxy::start(&support::sections(app.addr, &identity, ""));
    let steps = vec![
        json!({"goto": proxy.url("/set-cookie"), "wait": "load"}),
        json!({"goto": proxy.url("/"), "wait": "boot", "timeoutMs": 15000}),
    ];
    let report = support::run_browser(steps, &|| format!("proxy log:\n{}", proxy.log_text()));
    let step = &report[1];
    let context = || {
        format!("{}\nproxy log:\n{}", serde_json::to_string_pretty(step).unwrap(), proxy.log_text())
    };
    assert!(hung.load(Ordering::SeqCst));
    assert!(
        proxy.log_text().contains("redis_session"),
        "the page's lookup failed while Redis slept\n{}",
        context()
    );
    no_plain_identity(step, &context);
    let boot = boots(step);
    assert_eq!(boot.len(), 1, "{}", context());
    let token = boot[0]["settings"]["intercom_user_jwt"]
        .as_str()
        .unwrap_or_else(|| panic!("the deferred boot has no token\n{}", context()));
    assert_eq!(support::verify(token)["user_id"], ALICE_ID, "{}", context());
}

/// A logged-out page whose login is an XHR, after which the page boots the Messenger
/// itself with the plain identity the login answered (a jQuery modal, any SPA).
fn xhr_login_app() -> Upstream {
    let page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Shop</title></head><body>\n\
<button id=\"login\">Sign in</button>\n\
<script>document.getElementById('login').onclick = function () {{\n\
  var x = new XMLHttpRequest(); x.open('POST', '/xhr-login');\n\
  x.onload = function () {{ var u = JSON.parse(x.responseText);\n\
    window.Intercom('boot', {{app_id: '{APP_ID}', user_id: u.id, email: u.email}}); }};\n\
  x.send('user=alice');\n}};\n\
(function(){{var w=window;var d=document;var i=function(){{i.c(arguments);}};i.q=[];i.c=function(a){{i.q.push(a);}};w.Intercom=i;\
var s=d.createElement('script');s.async=true;s.src='https://widget.intercom.io/widget/{APP_ID}';d.body.appendChild(s);}})();\n\
</script></body></html>\n"
    );
    Upstream::start(move |req| match req.path() {
        "/xhr-login" => Reply::with(
            200,
            &[
                ("Content-Type", "application/json"),
                ("Set-Cookie", "sid=alice-session; Path=/; HttpOnly; SameSite=Lax"),
            ],
            format!("{{\"id\":\"{ALICE_ID}\",\"email\":\"{ALICE_EMAIL}\"}}"),
        ),
        "/api/me" => me(req),
        _ => Reply::with(
            200,
            &[
                ("Content-Type", "text/html; charset=utf-8"),
                ("Cache-Control", "public, max-age=60"),
                ("ETag", "\"v1\""),
            ],
            page.clone(),
        ),
    })
}

#[test]
fn a_login_by_xhr_on_a_logged_out_page_boots_with_the_token() {
    let app = xhr_login_app();
    let proxy = Proxy::start(&support::sections(app.addr, &endpoint("2s"), ""));
    // The logged-out page is the same for every visitor and keeps its caching headers.
    let direct = support::get(&format!("http://{}/", app.addr), &[("Accept", "text/html")]);
    let through = support::get(&proxy.url("/"), &[("Accept", "text/html")]);
    assert_eq!(through.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(through.header("etag"), Some("\"v1\""));
    assert_eq!(
        support::without_our_script(through.text().as_bytes()),
        direct.text().as_bytes(),
        "only the watcher is added"
    );
    let again = support::get(&proxy.url("/"), &[("Accept", "text/html"), ("Cookie", "other=1")]);
    assert_eq!(again.text(), through.text(), "the same bytes for every visitor");

    let steps = vec![
        json!({"goto": proxy.url("/"), "wait": "load"}),
        json!({"stay": true, "click": "#login", "wait": "boot", "timeoutMs": 8000}),
    ];
    let report = support::run_browser(steps, &|| format!("proxy log:\n{}", proxy.log_text()));
    let step = &report[1];
    let context = || {
        format!("{}\nproxy log:\n{}", serde_json::to_string_pretty(step).unwrap(), proxy.log_text())
    };
    no_plain_identity(step, &context);
    let boot = boots(step);
    assert_eq!(boot.len(), 1, "{}", context());
    let token = boot[0]["settings"]["intercom_user_jwt"]
        .as_str()
        .unwrap_or_else(|| panic!("the boot after the XHR login has no token\n{}", context()));
    assert_eq!(support::verify(token)["user_id"], ALICE_ID, "{}", context());
}

#[test]
fn without_the_watcher_a_logged_out_page_passes_byte_for_byte() {
    let app = xhr_login_app();
    let proxy = Proxy::start(&support::sections(
        app.addr,
        &endpoint("2s"),
        "inject:\n  watch_logged_out: false\n",
    ));
    let direct = support::get(&format!("http://{}/", app.addr), &[("Accept", "text/html")]);
    let through = support::get(&proxy.url("/"), &[("Accept", "text/html")]);
    assert_eq!(through.text(), direct.text());
}

#[test]
fn a_page_booting_another_workspace_is_reported_and_counted() {
    let app = Upstream::start(with_login(|req| match req.path() {
        "/api/me" => me(req),
        _ => html(insecure_page("other999")),
    }));
    let proxy = Proxy::start_with_admin(&support::sections(app.addr, &endpoint("2s"), ""));
    let steps = vec![
        json!({"goto": proxy.url("/set-cookie"), "wait": "load"}),
        json!({"goto": proxy.url("/"), "wait": "boot"}),
    ];
    let report = support::run_browser(steps, &|| format!("proxy log:\n{}", proxy.log_text()));
    assert_eq!(report[1]["timedOut"], false);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !proxy.log_text().contains("app_id other999") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = proxy.log_text();
    assert!(
        log.contains("app_id other999") && log.contains(APP_ID),
        "the warning names both app ids:\n{log}"
    );
    let metrics = support::get(&proxy.admin_url("/metrics"), &[]).text();
    assert!(metrics.contains("intercom_secure_proxy_page_app_id_mismatches_total 1"), "{metrics}");
}

#[test]
fn the_refresh_path_refuses_other_sites() {
    let app = Upstream::start(me);
    let proxy = Proxy::start(&support::sections(app.addr, &endpoint("2s"), ""));
    let cross = support::get(
        &proxy.url("/__isp/token"),
        &[("Cookie", "sid=alice-session"), ("Sec-Fetch-Site", "cross-site")],
    );
    assert_eq!(cross.status, 403);
    let same = support::get(
        &proxy.url("/__isp/token"),
        &[("Cookie", "sid=alice-session"), ("Sec-Fetch-Site", "same-origin")],
    );
    assert_eq!(same.status, 200);
    assert_eq!(app.count("/__isp/token"), 0, "never forwarded");
}

#[test]
fn paths_the_proxy_answers_itself_are_refused_with_dot_segments() {
    for path in ["/../x", "/a/./b", "//x", "/a//b", "/a%2Fb", "/a?b=1"] {
        let yaml = format!(
            "listen: [\"127.0.0.1:1\"]\nupstream: {{addresses: [\"127.0.0.1:2\"]}}\nintercom: {{app_id: {APP_ID}, secret_env: TEST_INTERCOM_SECRET}}\ninject: {{token_refresh_path: \"{path}\"}}\n"
        );
        let (code, out) = support::check_config(&yaml);
        assert_eq!(code, Some(2), "{path}: {out}");
        assert!(out.contains("inject.token_refresh_path"), "{path}: {out}");
    }
}
