//! `init` against apps that keep who is logged in where only one of its finders looks
//! (tests/legacy/python/: none has a JSON current-user endpoint), each booting the
//! Messenger the insecure way so `init` has an answer to learn:
//! - a JWT session cookie: HS256 with `--jwt-secret-env`, RS256 with its keys at
//!   /.well-known/jwks.json, ES256 with its keys at the jwks_uri of the OpenID discovery
//!   document, Supabase's chunked `base64-` session; HS256 without the key's variable
//!   finds nothing and says which flag is missing;
//! - an HTML account page linked from the dashboard as "My account";
//! - an app behind an auth proxy: clear `X-Forwarded-*` headers, a Pomerium assertion
//!   whose keys the route serves, and a Cloudflare Access assertion whose keys are on
//!   Cloudflare's host, which `init` does not fetch, so it says which key is needed.
//!
//! Every run is real: the app process, Chromium, the proxy's resolver and the
//! verification through a temporary proxy. Each checks the exit code, the source the
//! written YAML picked, that `check` loads it, and that no cookie value, key or
//! assertion shows in stdout, stderr or the file. Needs /usr/bin/python3 with PyJWT and
//! cryptography, and Chromium (`make test` installs them).

#[path = "jwt/sign.rs"]
mod sign;
mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::init::{run_init, InitRun};
use support::python_app::PythonApp;

/// The user every legacy app knows as `alice` (tests/legacy/python/app.py).
const ALICE: &str = "u-alice-1001";
const ALICE_EMAIL: &str = "alice@example.com";
/// The HMAC key the JWT app signs its sessions with.
const JWT_KEY: &str = "legacy-app-jwt-key-0123456789abcdef";
const JWT_KEY_ENV: &str = "APP_JWT_SECRET";

/// `--cookie NAME=VALUE` for each cookie.
fn cookie_args(cookies: &[String]) -> Vec<&str> {
    cookies.iter().flat_map(|c| ["--cookie", c.as_str()]).collect()
}

/// The cookies' values: never to be shown.
fn values(cookies: &[String]) -> Vec<&str> {
    cookies.iter().map(|c| c.split_once('=').map_or(c.as_str(), |(_, v)| v)).collect()
}

/// The written configuration's identity source, after checking the run verified it
/// through the temporary proxy.
fn verified_source(run: &InitRun) -> yaml_serde::Value {
    assert!(
        run.stdout.contains("\nverified: "),
        "the configuration was not verified:\n{}",
        run.all()
    );
    let doc: yaml_serde::Value = yaml_serde::from_str(&run.yaml).unwrap();
    doc["identity"]["sources"][0].clone()
}

fn the_jwt_app(mode: &str) -> PythonApp {
    PythonApp::start("jwt_cookie_app.py", &[mode], &[(JWT_KEY_ENV, JWT_KEY)])
}

/// `init` on the JWT app in an HMAC `mode`, its key's variable given and set: the
/// jwt_cookie source it verified, and the run.
fn with_the_key_variable(mode: &str) -> (yaml_serde::Value, InitRun) {
    let app = the_jwt_app(mode);
    let cookies = app.log_in("alice");
    let mut args = cookie_args(&cookies);
    args.extend(["--jwt-secret-env", JWT_KEY_ENV]);
    let run = run_init(app.addr, &args, &[(JWT_KEY_ENV, JWT_KEY)]);
    let mut secrets = values(&cookies);
    secrets.push(JWT_KEY);
    run.expect(0, &secrets).picked("jwt_cookie");
    (verified_source(&run), run)
}

#[test]
fn an_hs256_session_cookie_with_its_key_variable_is_a_jwt_cookie_source() {
    let (source, run) = with_the_key_variable("hs256");
    assert_eq!(source["cookie"], "session", "{}", run.yaml);
    assert_eq!(source["algorithms"][0], "HS256");
    assert_eq!(source["secret_env"], JWT_KEY_ENV);
    assert_eq!(
        (source["fields"]["user_id"].as_str(), source["fields"]["email"].as_str()),
        (Some("/sub"), Some("/email"))
    );
    assert!(
        source["issuer"].is_null() && source["audience"].is_null(),
        "the token has neither iss nor aud:\n{}",
        run.yaml
    );
}

#[test]
fn an_hs256_session_cookie_without_its_key_variable_names_the_flag() {
    let app = the_jwt_app("hs256");
    let cookies = app.log_in("alice");
    let run = run_init(app.addr, &cookie_args(&cookies), &[]);
    run.expect(4, &values(&cookies));
    assert!(run.yaml.is_empty(), "nothing is written when nothing is found:\n{}", run.all());
    let said = run
        .stdout
        .lines()
        .find(|l| l.contains("jwt_cookie") && l.contains("cookie session"))
        .unwrap_or_else(|| panic!("{}", run.all()));
    assert!(
        said.contains("rejected")
            && said.contains("HS256 JWT")
            && said.contains("--jwt-secret-env"),
        "{said}"
    );
    // Every finder says what it tried.
    for tried in ["no --header given", "GET /api/me", "GET /account (html)"] {
        assert!(run.stdout.contains(tried), "{tried:?} is not in the report:\n{}", run.stdout);
    }
}

#[test]
fn an_rs256_session_cookie_uses_the_jwks_on_the_apps_origin() {
    let app = the_jwt_app("rs256");
    let cookies = app.log_in("alice");
    let run = run_init(app.addr, &cookie_args(&cookies), &[]);
    run.expect(0, &values(&cookies)).picked("jwt_cookie");
    let source = verified_source(&run);
    let origin = format!("http://{}", app.addr);
    assert_eq!(source["algorithms"][0], "RS256", "{}", run.yaml);
    assert_eq!(
        source["jwks_url"].as_str(),
        Some(format!("{origin}/.well-known/jwks.json").as_str())
    );
    assert_eq!(
        (source["issuer"].as_str(), source["audience"][0].as_str()),
        (Some(origin.as_str()), Some("legacy-app"))
    );
    assert!(
        run.yaml.contains("key \"legacy-rs256-1\" is in the JWKS"),
        "the comment says why:\n{}",
        run.yaml
    );
}

#[test]
fn an_es256_session_cookie_uses_the_jwks_uri_of_the_discovery_document() {
    let app = the_jwt_app("es256");
    let cookies = app.log_in("alice");
    let run = run_init(app.addr, &cookie_args(&cookies), &[]);
    run.expect(0, &values(&cookies)).picked("jwt_cookie");
    let source = verified_source(&run);
    assert_eq!(source["algorithms"][0], "ES256", "{}", run.yaml);
    assert_eq!(
        source["jwks_url"].as_str(),
        Some(format!("http://{}/oauth/keys", app.addr).as_str())
    );
}

#[test]
fn a_supabase_session_in_chunks_is_read_by_its_cookie_name() {
    let (source, run) = with_the_key_variable("supabase");
    let chunks = run.stdout.lines().find(|l| l.contains("session cookies:")).unwrap_or_default();
    assert!(
        chunks.contains("sb-127-auth-token.0, sb-127-auth-token.1"),
        "the session spans several cookies: {chunks}"
    );
    assert_eq!(source["cookie"], "sb-127-auth-token", "{}", run.yaml);
    assert_eq!(source["audience"][0], "authenticated");
    assert_eq!(source["fields"]["name"], "/user_metadata/full_name");
}

#[test]
fn an_account_page_linked_from_the_dashboard_is_an_html_endpoint() {
    let app = PythonApp::start("account_page_app.py", &[], &[]);
    let cookies = app.log_in("alice");
    let run = run_init(app.addr, &cookie_args(&cookies), &[]);
    run.expect(0, &values(&cookies)).picked("current_user_endpoint");
    let source = verified_source(&run);
    assert_eq!(source["format"], "html", "{}", run.yaml);
    // Not a usual path: found by the dashboard's "My account" link.
    assert_eq!(source["path"], "/my/details");
    assert_eq!(source["fields"]["user_id"], "meta[name=user-id]@content");
    // `dd` and `#account dd` match two elements: a path unique on the page is written.
    assert_eq!(source["fields"]["email"], "#account > dl:nth-of-type(1) > dd:nth-of-type(1)");
    assert_eq!(source["fields"]["name"], "span.who");
    assert!(
        run.stdout.contains("jwt_cookie") && run.stdout.contains("not a JWT"),
        "the JWT finder said why the session is not one:\n{}",
        run.stdout
    );
}

#[test]
fn clear_identity_headers_from_an_auth_proxy_are_a_trusted_header_source() {
    let app = PythonApp::start("auth_header_app.py", &[], &[]);
    let user = format!("X-Forwarded-User={ALICE}");
    let email = format!("X-Forwarded-Email={ALICE_EMAIL}");
    let run = run_init(app.addr, &["--header", &user, "--header", &email], &[]);
    run.expect(0, &[]).picked("trusted_header");
    let source = verified_source(&run);
    assert_eq!(source["trusted_cidrs"][0], "127.0.0.1/32", "{}", run.yaml);
    assert_eq!(
        (source["headers"]["user_id"].as_str(), source["headers"]["email"].as_str()),
        (Some("X-Forwarded-User"), Some("X-Forwarded-Email"))
    );
    assert!(
        run.yaml.contains("put the auth proxy's address"),
        "the comment says what to put there:\n{}",
        run.yaml
    );
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// An assertion for alice signed with a fresh `kind` key `kid`, and its JWKS.
fn assertion(kind: &str, kid: &str, alg: &str, iss: &str, aud: &str) -> (String, Value) {
    let claims = json!({"sub": ALICE, "email": ALICE_EMAIL, "name": "Alice Liddell", "iss": iss, "aud": aud, "iat": now(), "exp": now() + 3600});
    let s = sign::sign(
        json!({"keys": {kid: kind}, "tokens": {"a": {"key": kid, "alg": alg, "claims": claims}}}),
    );
    (s["tokens"]["a"].as_str().unwrap().to_string(), s["jwks"].clone())
}

#[test]
fn a_pomerium_assertion_whose_keys_the_route_serves_is_a_signed_header_source() {
    let (token, jwks) = assertion(
        "EC",
        "pomerium-1",
        "ES256",
        "https://authenticate.example.com",
        "app.example.com",
    );
    let app = PythonApp::start("auth_header_app.py", &[], &[("ASSERTION_JWKS", &jwks.to_string())]);
    let header = format!("X-Pomerium-Jwt-Assertion={token}");
    let run = run_init(app.addr, &["--header", &header], &[]);
    run.expect(0, &[&token]).picked("signed_header");
    let source = verified_source(&run);
    assert_eq!(source["preset"], "pomerium", "{}", run.yaml);
    assert_eq!(
        source["jwks_url"].as_str(),
        Some(format!("http://{}/.well-known/pomerium/jwks.json", app.addr).as_str())
    );
    assert_eq!(
        (source["issuer"].as_str(), source["audience"][0].as_str()),
        (Some("https://authenticate.example.com"), Some("app.example.com"))
    );
}

#[test]
fn a_cloudflare_assertion_whose_keys_are_elsewhere_names_the_key_needed() {
    let (token, _) =
        assertion("RSA", "cf-key-7", "RS256", "https://team.cloudflareaccess.com", "aud-tag-1");
    let app = PythonApp::start("auth_header_app.py", &[], &[]);
    let header = format!("Cf-Access-Jwt-Assertion={token}");
    let run = run_init(app.addr, &["--header", &header], &[]);
    run.expect(4, &[&token]);
    let said = run
        .stdout
        .lines()
        .find(|l| l.contains("signed_header"))
        .unwrap_or_else(|| panic!("{}", run.all()));
    for needed in [
        "cloudflare_access",
        "kid \"cf-key-7\"",
        "https://team.cloudflareaccess.com/cdn-cgi/access/certs",
        "jwks_url",
    ] {
        assert!(said.contains(needed), "{needed:?} is not said: {said}");
    }
}
