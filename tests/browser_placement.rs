//! Where the page script goes, checked in a real browser (headless Chromium through
//! tests/browser/driver.mjs): for every kind of page whose first `<script>`, or whose
//! end, lies where a script is not run (inside `<template>`, `<svg>` or `<math>`, an
//! open comment or bogus comment, after `<plaintext>` or a `<frameset>`, in foreign
//! content left open, after leading text), the script placed by the proxy ran
//! (`window.__intercomSecureProxy` is set) and, where the page hands Intercom a plain
//! `user_id`, the Messenger settings lose it.
//!
//! Needs Node 20+, Debian's Chromium and `npm ci` in tests/browser (`make test` does it).

mod support;

use serde_json::{json, Value};
use support::{run_browser, Proxy, Reply, Upstream, APP_ID};

/// A page's own Intercom settings, with the plain identity Secure Mode must strip.
fn settings_script() -> String {
    format!("<script>window.intercomSettings = {{app_id: \"{APP_ID}\", user_id: \"u-alice-1001\", email: \"alice@example.com\"}};</script>")
}

/// The pages, by name: each is one way a page can start (or end) where a script placed
/// there would not run. `true` when the page sets plain settings in a script that runs.
fn pages() -> Vec<(&'static str, String, bool)> {
    let settings = settings_script();
    vec![
        ("template", format!("<template><script>window.inTemplate = 1;</script></template>{settings}<p>x</p>"), true),
        ("head-template", format!("<head><template><script>window.inTemplate = 1;</script></template>{settings}</head><body>x</body>"), true),
        // An SVG script runs; its settings must meet ours.
        ("svg", format!("<svg><script>window.intercomSettings = {{app_id: \"{APP_ID}\", user_id: \"u-alice-1001\"}};</script></svg><p>x</p>"), true),
        ("math", format!("<math><script>1</script></math>{settings}"), true),
        ("comment", "<meta name=viewport content=\"width=device-width\"><!-- the page ends in here".to_string(), false),
        ("bogus-comment", "<?xml version=\"1.0\" encoding=\"utf-8\"".to_string(), false),
        ("plaintext", "<plaintext>hello <b>world</b>".to_string(), false),
        ("frameset", "<frameset cols=\"50%,50%\"><frame src=\"about:blank\"><frame src=\"about:blank\"></frameset>".to_string(), false),
        ("foreign-open", "<svg width=10 height=10><circle r=4 cx=5 cy=5>".to_string(), false),
        ("text-first", format!("hello <b>x</b>{settings}"), true),
    ]
}

/// The app: `/login` gives a session cookie, `/api/me` says whose it is, `/p/NAME` is a page.
fn app() -> Upstream {
    Upstream::start(|req| match req.path() {
        "/login" => Reply::with(
            302,
            &[("Location", "/p/text-first"), ("Set-Cookie", "sid=alice; Path=/; HttpOnly")],
            "",
        ),
        "/api/me" if req.cookie("sid").as_deref() == Some("alice") => Reply::with(
            200,
            &[("Content-Type", "application/json")],
            json!({"id": "u-alice-1001", "email": "alice@example.com"}).to_string(),
        ),
        "/api/me" => Reply::with(401, &[], "{}"),
        path => match pages().into_iter().find(|(name, ..)| path.strip_prefix("/p/") == Some(name))
        {
            Some((_, page, _)) => Reply::html(page),
            None => Reply::with(404, &[], ""),
        },
    })
}

fn proxy(up: &Upstream) -> Proxy {
    // A generous timeout: Chromium and other tests load the machine.
    let identity = "identity:\n  sources:\n    - type: current_user_endpoint\n      path: /api/me\n      cookies: [sid]\n      timeout: 5s\n";
    Proxy::start(&support::sections(up.addr, identity, ""))
}

#[test]
fn the_script_runs_on_pages_whose_first_script_or_end_is_not_where_scripts_run() {
    let up = app();
    let proxy = proxy(&up);
    let pages = pages();
    let mut steps = vec![json!({"goto": proxy.url("/login"), "wait": "load", "timeoutMs": 8000})];
    steps.extend(pages.iter().map(|(name, ..)| {
        json!({"goto": proxy.url(&format!("/p/{name}")), "wait": "load", "timeoutMs": 8000, "eval": "window.__intercomSecureProxy"})
    }));
    let report = run_browser(steps, &|| format!("proxy log:\n{}", proxy.log_text()));
    // Every page is judged, so that one run names every kind that fails.
    let failures: Vec<String> = pages
        .iter()
        .zip(&report[1..])
        .filter_map(|((name, _, plain), step)| {
            let problem = what_went_wrong(step, *plain)?;
            Some(format!("page {name}: {problem}\n{}", serde_json::to_string_pretty(step).unwrap()))
        })
        .collect();
    assert!(failures.is_empty(), "{}\nproxy log:\n{}", failures.join("\n\n"), proxy.log_text());
}

/// What is wrong with a page's step, if anything: our script did not run, or (where the
/// page sets plain settings) the Messenger settings kept a plain identity.
fn what_went_wrong(step: &Value, plain_settings: bool) -> Option<&'static str> {
    let settings = &step["intercomSettings"];
    if step["status"] != 200 {
        Some("not served")
    } else if step["evalResult"] != json!(1) {
        Some("our script did not run")
    } else if step["pageErrors"] != json!([]) {
        Some("the page threw")
    } else if plain_settings && !settings.is_object() {
        Some("the page's settings are gone")
    } else if plain_settings
        && (settings.get("user_id").is_some() || settings.get("email").is_some())
    {
        Some("the settings keep a plain identity")
    } else if plain_settings && !settings["intercom_user_jwt"].is_string() {
        Some("the settings have no token")
    } else {
        None
    }
}

/// The driver's `eval` is what the test above relies on: a page without the proxy
/// reports no flag, and a page's own value comes back as JSON.
#[test]
fn without_the_proxy_the_flag_is_not_set() {
    let up = app();
    let url = |name: &str| format!("http://{}/p/{name}", up.addr);
    let report = run_browser(
        vec![
            json!({"goto": url("text-first"), "wait": "load", "eval": "window.__intercomSecureProxy"}),
            json!({"goto": url("text-first"), "wait": "load", "eval": "window.intercomSettings.user_id"}),
        ],
        &String::new,
    );
    assert_eq!(report[0]["evalResult"], Value::Null);
    assert_eq!(report[1]["evalResult"], json!("u-alice-1001"));
}
