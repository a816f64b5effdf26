//! Redis passwords outside the config file: `username` and `password_env` /
//! `password_file` beside a Redis address, against a real `redis-server` started with
//! `requirepass` and an ACL user, for a redis_session source and for the shared
//! identity cache (asked by `check`'s reachability probe). And `check` warns when a
//! URL carries a password.
//!
//! Needs redis-server (`make test` installs it). Without it these tests fail, they
//! never skip.

mod support;

use support::redis::Redis;
use support::{Proxy, Reply, Upstream, APP_ID};

const DEFAULT_PASSWORD: &str = "defaultPw-7f3a";
const APP_USER: &str = "app";
const APP_PASSWORD: &str = "appPw-91c2";
const PAGE: &str =
    "<!DOCTYPE html><html><head><title>t</title></head><body><p>hello</p></body></html>";

/// A redis-server whose default user has a password, with an ACL user `app` besides.
fn protected_redis() -> Redis {
    let acl = format!(">{APP_PASSWORD}");
    let redis = Redis::start_with(
        &["--requirepass", DEFAULT_PASSWORD, "--user", APP_USER, "on", &acl, "~*", "&*", "+@all"],
        &[DEFAULT_PASSWORD],
    );
    assert_eq!(
        redis.command(&["SET", "sess:auth1", r#"{"passport":{"user":"u-auth"}}"#]).as_deref(),
        Some("+OK")
    );
    redis
}

/// A redis_session source on `redis` with `auth` (indented YAML lines).
fn source(redis: &Redis, auth: &str) -> String {
    format!(
        "identity:\n  sources:\n    - type: redis_session\n      redis: \"redis://127.0.0.1:{}/0\"\n{auth}      cookie: sid\n      fields: {{user_id: /passport/user}}\n      timeout: 1s\n",
        redis.port
    )
}

/// The user id of the token on the page of session `auth1`, if any.
fn page_user(proxy: &Proxy) -> Option<String> {
    let got = support::get(&proxy.url("/"), &[("Cookie", "sid=auth1"), ("Accept", "text/html")]);
    assert_eq!(got.status, 200, "{}", proxy.log_text());
    support::page_token(&got.text())
        .map(|t| support::verify(&t)["user_id"].as_str().unwrap_or_default().to_string())
}

#[test]
fn password_env_and_password_file_authenticate_a_redis_session_source() {
    let redis = protected_redis();
    let app = Upstream::start(|_| Reply::html(PAGE));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redis-password");
    std::fs::write(&file, format!("{APP_PASSWORD}\n")).unwrap();

    let by_env = Proxy::start_with_env(
        &support::sections(
            app.addr,
            &source(&redis, "      password_env: TEST_REDIS_PASSWORD\n"),
            "",
        ),
        &[("TEST_REDIS_PASSWORD", DEFAULT_PASSWORD)],
    );
    assert_eq!(
        page_user(&by_env).as_deref(),
        Some("u-auth"),
        "requirepass with password_env:\n{}",
        by_env.log_text()
    );

    let acl = format!("      username: {APP_USER}\n      password_file: {}\n", file.display());
    let by_file = Proxy::start(&support::sections(app.addr, &source(&redis, &acl), ""));
    assert_eq!(
        page_user(&by_file).as_deref(),
        Some("u-auth"),
        "ACL user with password_file:\n{}",
        by_file.log_text()
    );

    // Without the password Redis refuses: no token, the page is served, nothing leaks.
    let none = Proxy::start(&support::sections(app.addr, &source(&redis, ""), ""));
    assert_eq!(page_user(&none), None);
    let wrong = Proxy::start_with_env(
        &support::sections(
            app.addr,
            &source(&redis, "      password_env: TEST_REDIS_PASSWORD\n"),
            "",
        ),
        &[("TEST_REDIS_PASSWORD", "not-the-password")],
    );
    assert_eq!(page_user(&wrong), None);
    for proxy in [&by_env, &by_file, &none, &wrong] {
        let log = proxy.log_text();
        assert!(
            !log.contains(DEFAULT_PASSWORD)
                && !log.contains(APP_PASSWORD)
                && !log.contains("not-the-password"),
            "a password was logged:\n{log}"
        );
    }
}

/// `check -c` on a config whose identity section is `identity`, with `env` exported.
fn check(identity: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("c.yaml");
    std::fs::write(
        &conf,
        format!("listen: [\"127.0.0.1:1\"]\nupstream: {{addresses: [\"127.0.0.1:2\"]}}\nintercom: {{app_id: {APP_ID}, secret_env: TEST_INTERCOM_SECRET}}\n{identity}"),
    )
    .unwrap();
    let secret = "s".repeat(40);
    let secret = [("TEST_INTERCOM_SECRET", secret.as_str())];
    let env: Vec<(&str, &str)> = secret.into_iter().chain(env.iter().copied()).collect();
    let (code, text) = support::check_config_file(&conf, &env);
    (code == Some(0), text)
}

#[test]
fn the_shared_cache_authenticates_with_a_username_and_password_file() {
    let redis = protected_redis();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redis-password");
    std::fs::write(&file, APP_PASSWORD).unwrap();
    let endpoint = "  sources: [{type: current_user_endpoint, path: /api/me}]\n";
    let url = format!("redis://127.0.0.1:{}/0", redis.port);

    let identity = format!("identity:\n  shared_cache: {{redis: \"{url}\", username: {APP_USER}, password_file: {}}}\n{endpoint}", file.display());
    let (ok, out) = check(&identity, &[]);
    assert!(ok, "{out}");
    assert!(
        !out.contains("does not answer"),
        "the shared cache's Redis refused the ACL user:\n{out}"
    );

    // The probe does authenticate: without the password the same Redis refuses it.
    let (ok, out) =
        check(&format!("identity:\n  shared_cache: {{redis: \"{url}\"}}\n{endpoint}"), &[]);
    assert!(ok, "{out}");
    assert!(out.contains("identity.shared_cache") && out.contains("does not answer"), "{out}");

    let identity = format!("identity:\n  shared_cache: {{redis: \"{url}\", password_env: TEST_REDIS_PASSWORD}}\n{endpoint}");
    let (ok, out) = check(&identity, &[("TEST_REDIS_PASSWORD", DEFAULT_PASSWORD)]);
    assert!(ok && !out.contains("does not answer"), "{out}");
    assert!(
        !out.contains(DEFAULT_PASSWORD) && !out.contains(APP_PASSWORD),
        "a password was printed:\n{out}"
    );
}

#[test]
fn check_warns_when_a_url_carries_a_password_and_never_prints_it() {
    let redis = protected_redis();
    let identity = format!(
        "identity:\n  sources:\n    - {{type: redis_session, redis: \"redis://:{DEFAULT_PASSWORD}@127.0.0.1:{}/0\", cookie: sid, fields: {{user_id: /u}}}}\n",
        redis.port
    );
    let (ok, out) = check(&identity, &[]);
    assert!(ok, "{out}");
    assert!(
        out.contains("identity.sources[0].redis") && out.contains("password_env"),
        "no warning about the password in the URL:\n{out}"
    );
    assert!(!out.contains("does not answer"), "{out}");
    assert!(!out.contains(DEFAULT_PASSWORD), "the password was printed:\n{out}");
}

#[test]
fn conflicting_password_keys_are_config_errors_naming_the_key() {
    let url = "redis://127.0.0.1:6379/0";
    let with_password = "redis://:inUrlPw@127.0.0.1:6379/0";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "fromFilePw").unwrap();
    let f = file.display();
    let cases = [
        (
            format!("redis: \"{url}\", password_env: TEST_REDIS_PASSWORD, password_file: {f}"),
            "password_env",
        ),
        (format!("redis: \"{with_password}\", password_env: TEST_REDIS_PASSWORD"), "password_env"),
        (format!("redis: \"{with_password}\", password_file: {f}"), "password_file"),
        (format!("redis: \"{url}\", password_env: UNSET_REDIS_PASSWORD"), "password_env"),
        (format!("redis: \"{url}\", username: app"), "username"),
    ];
    for (redis, key) in &cases {
        let yaml = format!("identity:\n  sources:\n    - {{type: redis_session, {redis}, cookie: sid, fields: {{user_id: /u}}}}\n");
        let (ok, out) = check(&yaml, &[("TEST_REDIS_PASSWORD", "fromEnvPw")]);
        assert!(!ok, "accepted {redis}:\n{out}");
        assert!(out.contains(&format!("identity.sources[0].{key}")), "{redis}: {out}");
        assert!(
            !["inUrlPw", "fromFilePw", "fromEnvPw"].iter().any(|pw| out.contains(pw)),
            "a password was printed:\n{out}"
        );
        let shared = format!("identity:\n  shared_cache: {{{redis}}}\n  sources: [{{type: current_user_endpoint, path: /api/me}}]\n");
        let (ok, out) = check(&shared, &[("TEST_REDIS_PASSWORD", "fromEnvPw")]);
        assert!(!ok, "accepted {redis}:\n{out}");
        assert!(out.contains(&format!("identity.shared_cache.{key}")), "{redis}: {out}");
        assert!(
            !["inUrlPw", "fromFilePw", "fromEnvPw"].iter().any(|pw| out.contains(pw)),
            "a password was printed:\n{out}"
        );
    }
}
