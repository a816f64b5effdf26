//! The demo's pages show what they handed the Messenger, so that opening the app
//! (insecure) and the proxy (Secure Mode) side by side shows the difference: the real
//! `demo` subcommand, real headless Chromium (tests/browser/driver.mjs, whose stand-in
//! widget records what the Messenger booted with).
//! - straight to the app: the plain `user_id` and `email`, in red, said to be insecure;
//! - through the proxy: the token shortened and its payload decoded (alice, `exp` as a
//!   time), no plain `user_id` or `email`, on `/` and on the auto-included `/account`;
//! - in both, the panel's keys are those the Messenger booted with.
//!
//! Needs Node 20+, Debian's Chromium and `npm ci` in tests/browser (`make test` does it).

mod support;

use std::process::Stdio;

use serde_json::{json, Value};

/// The demo's documented default secret (`INTERCOM_SECRET` unset).
const DEMO_SECRET: &[u8] = b"demo-secret-not-for-production";

/// The panel as the page renders it, and the settings the stand-in widget last booted with.
const PANEL: &str = r#"(() => {
  const box = document.getElementById('messenger');
  if (!box) return null;
  const rows = (id) => [...document.querySelectorAll('#' + id + ' tr')].map((r) => ({
    key: r.cells[0].textContent, value: r.cells[1].textContent, insecure: r.classList.contains('insecure'),
    color: getComputedStyle(r.cells[1]).color, time: (r.querySelector('time') || {}).dateTime || null }));
  const boots = ((window.__intercom || {}).calls || []).filter((c) => c.method === 'boot');
  return { settings: rows('messenger-settings'), token: rows('messenger-token'), text: box.innerText,
    insecure: box.querySelectorAll('.insecure').length, booted: boots.length ? boots[boots.length - 1].settings : null };
})()"#;

/// `intercom-secure-proxy demo` on free ports, killed when dropped.
struct Demo {
    child: std::process::Child,
    app: u16,
    proxy: u16,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Logs alice in on `port` with the login form, then opens `/` and `/account` there.
fn alice_on(port: u16, tab: &str) -> Vec<Value> {
    let base = format!("http://127.0.0.1:{port}");
    vec![
        json!({"tab": tab, "goto": format!("{base}/login")}),
        json!({"tab": tab, "goto": format!("{base}/login"), "form": {"username": "alice"}, "wait": "boot", "eval": PANEL}),
        json!({"tab": tab, "goto": format!("{base}/account"), "eval": PANEL}),
    ]
}

fn row<'a>(rows: &'a Value, key: &str) -> Option<&'a Value> {
    rows.as_array().unwrap().iter().find(|r| r["key"] == key)
}

/// The keys of the panel's rows, sorted.
fn keys(rows: &Value) -> Vec<&str> {
    sorted(rows.as_array().unwrap().iter().map(|r| r["key"].as_str().unwrap()))
}

/// The keys of what the Messenger booted with, sorted.
fn booted_keys(booted: &serde_json::Map<String, Value>) -> Vec<&str> {
    sorted(booted.keys().map(String::as_str))
}

fn sorted<'a>(keys: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut k: Vec<&str> = keys.collect();
    k.sort_unstable();
    k
}

/// Red: the red channel strong, green and blue weak.
fn is_red(color: &Value) -> bool {
    let c = color.as_str().unwrap_or("");
    let n: Vec<u32> = c
        .trim_start_matches("rgb(")
        .trim_end_matches(')')
        .split(", ")
        .filter_map(|v| v.parse().ok())
        .collect();
    matches!(n[..], [r, g, b] if r >= 150 && g < 80 && b < 80)
}

#[test]
fn the_panel_shows_plain_identity_in_red_directly_and_a_decoded_token_through_the_proxy() {
    let (child, app, proxy) = support::start_demo(&[], Stdio::null);
    let demo = Demo { child, app, proxy };
    let mut steps = alice_on(demo.app, "main");
    steps.extend(alice_on(demo.proxy, "other"));
    let s = support::run_browser(steps, &|| String::new());
    for (n, step) in s.iter().enumerate() {
        assert_eq!(
            (step["timedOut"].as_bool(), &step["pageErrors"]),
            (Some(false), &json!([])),
            "step {n}: {step:#}"
        );
    }

    // Straight to the app: the Messenger gets alice's plain user_id and email.
    let direct = &s[1]["evalResult"];
    assert!(direct.is_object(), "no panel on the app's home page: {:#}", s[1]);
    let booted = direct["booted"].as_object().expect("the Messenger booted");
    assert_eq!(
        keys(&direct["settings"]),
        booted_keys(booted),
        "the panel shows what the Messenger got: {direct:#}"
    );
    for (key, value) in [("user_id", "alice"), ("email", "alice@example.com")] {
        let r = row(&direct["settings"], key).unwrap_or_else(|| panic!("no {key} row: {direct:#}"));
        assert_eq!(r["value"], value);
        assert_eq!(r["insecure"], true, "{r}");
        assert!(is_red(&r["color"]), "{key} is not red: {r}");
    }
    let text = direct["text"].as_str().unwrap();
    assert!(text.contains("Insecure") && text.contains("chat history"), "{text}");
    assert_eq!(direct["token"], json!([]));
    // /account has no Messenger of its own.
    let account = &s[2]["evalResult"];
    assert_eq!(
        (account["settings"].clone(), account["token"].clone()),
        (json!([]), json!([])),
        "{account:#}"
    );
    assert!(account["text"].as_str().unwrap().contains("Nothing"), "{account:#}");

    // Through the proxy, on the page that had the plain identity and on the one that had
    // no Messenger (auto-included): the token, shortened, and what it says.
    for step in [&s[4], &s[5]] {
        let p = &step["evalResult"];
        assert!(p.is_object(), "no panel: {step:#}");
        let booted =
            p["booted"].as_object().unwrap_or_else(|| panic!("the Messenger booted: {step:#}"));
        assert_eq!(keys(&p["settings"]), booted_keys(booted), "{p:#}");
        let jwt = booted["intercom_user_jwt"].as_str().expect("booted with a token");
        let shown = row(&p["settings"], "intercom_user_jwt").unwrap()["value"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(shown, format!("{}…", &jwt[..12]), "the token shortened");
        assert!(
            row(&p["settings"], "user_id").is_none() && row(&p["settings"], "email").is_none(),
            "{p:#}"
        );
        assert_eq!(p["insecure"], 0, "nothing marked insecure: {p:#}");

        let claims = jsonwebtoken::decode::<Value>(
            jwt,
            &jsonwebtoken::DecodingKey::from_secret(DEMO_SECRET),
            &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256),
        )
        .expect("verifies with the demo secret")
        .claims;
        let token = &p["token"];
        assert_eq!(row(token, "user_id").unwrap()["value"], "alice", "{p:#}");
        assert_eq!(row(token, "email").unwrap()["value"], "alice@example.com");
        assert_eq!(row(token, "name").unwrap()["value"], "Alice Example");
        let exp = row(token, "exp").unwrap();
        assert_ne!(exp["value"], claims["exp"].to_string(), "exp as a time, not a number");
        let at = humantime::parse_rfc3339_weak(exp["time"].as_str().unwrap()).unwrap();
        let at = at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(Some(at), claims["exp"].as_u64(), "{exp}");
    }
}
