//! The `jwt_cookie` and `signed_header` sources through the real proxy, with keys and
//! tokens made by an independent library (PyJWT + cryptography, tests/jwt/sign.py):
//! valid tokens give the page a Messenger token for that user; expired, not yet valid,
//! foreign (issuer, audience), `alg: none`, HMAC-keyed-with-the-public-key, unknown-kid
//! and tampered tokens give none, and the page is still served. JWKS and AWS ALB keys
//! are served by a local HTTP server; the signed header never reaches the app.

#[path = "jwt/sign.rs"]
mod sign;
mod support;

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use sign::sign;
use support::{get, page_token, sections, verify, Proxy, Reply, Upstream};

const PAGE: &str = "<!DOCTYPE html><html><head><title>t</title><script>window.intercomSettings={app_id:'abc12345'};</script></head><body>hi</body></html>";
const ISSUER: &str = "https://auth.example.com/";
const AUDIENCE: &str = "my-app";
const ALB_ARN: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/my-alb/50dc6c495c0c9188";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Standard claims for `sub`, valid for five minutes.
fn claims(sub: &str) -> Value {
    json!({"sub": sub, "email": format!("{sub}@example.com"), "name": sub.to_uppercase(), "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "exp": now() + 300})
}

fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

/// A local key server answering `path` with whatever `body` holds at the time.
fn key_server(path: &'static str, body: Arc<Mutex<String>>) -> Upstream {
    Upstream::start(move |req| {
        if req.path() == path {
            Reply::with(200, &[("Content-Type", "application/json")], body.lock().unwrap().clone())
        } else {
            Reply::with(404, &[], "no such key")
        }
    })
}

fn app() -> Upstream {
    Upstream::start(|_| Reply::html(PAGE))
}

fn jwt_cookie_proxy(app: &Upstream, keys: &str) -> Proxy {
    let identity = format!(
        "identity:\n  sources:\n    - type: jwt_cookie\n      cookie: session_token\n      algorithms: [RS256, ES256, EdDSA]\n{keys}      issuer: {ISSUER}\n      audience: {AUDIENCE}\n      fields: {{user_id: /sub, email: /email, name: /name}}\n"
    );
    Proxy::start(&sections(app.addr, &identity, ""))
}

/// The Messenger token's claims for a page fetched with `session_token=token`.
fn page_claims(proxy: &Proxy, cookie: &str) -> Option<Value> {
    let r = get(&proxy.url("/"), &[("Cookie", cookie)]);
    assert_eq!(r.status, 200, "the page is always served");
    page_token(&r.text()).map(|t| verify(&t))
}

#[test]
fn rs256_es256_and_eddsa_tokens_from_a_jwks_url_identify_the_user() {
    let s = sign(json!({
        "keys": {"rsa1": "RSA", "ec1": "EC", "ed1": "Ed25519"},
        "tokens": {
            "rs": {"key": "rsa1", "alg": "RS256", "claims": claims("alice")},
            "es": {"key": "ec1", "alg": "ES256", "claims": claims("bob")},
            "ed": {"key": "ed1", "alg": "EdDSA", "claims": claims("carol")},
        }
    }));
    let jwks = key_server("/jwks.json", Arc::new(Mutex::new(s["jwks"].to_string())));
    let app = app();
    let proxy =
        jwt_cookie_proxy(&app, &format!("      jwks_url: http://{}/jwks.json\n", jwks.addr));
    for (name, user) in [("rs", "alice"), ("es", "bob"), ("ed", "carol")] {
        let token = s["tokens"][name].as_str().unwrap();
        let c = page_claims(&proxy, &format!("other=1; session_token={token}"))
            .unwrap_or_else(|| panic!("{name}: no token\n{}", proxy.log_text()));
        assert_eq!(c["user_id"], user, "{name}");
        assert_eq!(c["email"], format!("{user}@example.com"), "{name}");
        assert_eq!(c["name"], user.to_uppercase(), "{name}");
    }
    assert_eq!(jwks.count("/jwks.json"), 1, "the JWKS is fetched once and cached");
    // The app still gets its own cookie.
    assert!(app.requests().iter().all(|r| r.cookie("session_token").is_some()));
}

#[test]
fn refused_tokens_give_no_identity_and_the_page_is_still_served() {
    let base = claims("alice");
    let s = sign(json!({
        "keys": {"rsa1": "RSA", "stranger": "RSA"},
        "tokens": {
            "valid": {"key": "rsa1", "alg": "RS256", "claims": base},
            "expired": {"key": "rsa1", "alg": "RS256", "claims": with(base.clone(), json!({"iat": now() - 3600, "exp": now() - 600}))},
            "not_yet_valid": {"key": "rsa1", "alg": "RS256", "claims": with(base.clone(), json!({"nbf": now() + 600}))},
            "wrong_issuer": {"key": "rsa1", "alg": "RS256", "claims": with(base.clone(), json!({"iss": "https://evil.example.com/"}))},
            "wrong_audience": {"key": "rsa1", "alg": "RS256", "claims": with(base.clone(), json!({"aud": "other-app"}))},
            "alg_none": {"mode": "none", "key": "rsa1", "claims": base},
            "hs256_with_rsa_public_key": {"mode": "hs_with_public", "key": "rsa1", "claims": base},
            "unknown_kid": {"key": "stranger", "alg": "RS256", "claims": base},
            "tampered_payload": {"mode": "tamper", "key": "rsa1", "alg": "RS256", "claims": base},
            "no_exp": {"key": "rsa1", "alg": "RS256", "claims": json!({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE})},
        }
    }));
    // Only rsa1 is published.
    let mut jwks = s["jwks"].clone();
    jwks["keys"].as_array_mut().unwrap().retain(|k| k["kid"] == "rsa1");
    let server = key_server("/jwks.json", Arc::new(Mutex::new(jwks.to_string())));
    let app = app();
    let proxy = jwt_cookie_proxy(
        &app,
        &format!(
            "      jwks_url: http://{}/jwks.json\n      key_refetch_interval: 0s\n",
            server.addr
        ),
    );
    let valid = s["tokens"]["valid"].as_str().unwrap();
    assert_eq!(
        page_claims(&proxy, &format!("session_token={valid}")).expect("the valid token identifies")
            ["user_id"],
        "alice"
    );
    for name in [
        "expired",
        "not_yet_valid",
        "wrong_issuer",
        "wrong_audience",
        "alg_none",
        "hs256_with_rsa_public_key",
        "unknown_kid",
        "tampered_payload",
        "no_exp",
    ] {
        let token = s["tokens"][name].as_str().unwrap();
        assert!(
            page_claims(&proxy, &format!("session_token={token}")).is_none(),
            "{name} must give no identity"
        );
    }
    let log = proxy.log_text();
    assert!(log.contains("jwt_cookie token refused"), "refusals are logged: {log}");
    for name in ["valid", "tampered_payload", "alg_none"] {
        let token = s["tokens"][name].as_str().unwrap();
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !log.contains(token) && (signature.is_empty() || !log.contains(signature)),
            "{name} leaked into the log"
        );
    }
}

#[test]
fn a_new_kid_in_the_jwks_is_accepted_without_a_restart() {
    let s = sign(json!({
        "keys": {"old": "RSA", "new": "RSA"},
        "tokens": {
            "old": {"key": "old", "alg": "RS256", "claims": claims("alice")},
            "new": {"key": "new", "alg": "RS256", "claims": claims("bob")},
        }
    }));
    let keys = s["jwks"]["keys"].as_array().unwrap();
    let only = |kid: &str| {
        json!({"keys": keys.iter().filter(|k| k["kid"] == kid).collect::<Vec<_>>()}).to_string()
    };
    let body = Arc::new(Mutex::new(only("old")));
    let server = key_server("/jwks.json", body.clone());
    let app = app();
    let proxy = jwt_cookie_proxy(
        &app,
        &format!(
            "      jwks_url: http://{}/jwks.json\n      key_refetch_interval: 0s\n",
            server.addr
        ),
    );
    let cookie = |name: &str| format!("session_token={}", s["tokens"][name].as_str().unwrap());
    assert_eq!(page_claims(&proxy, &cookie("old")).unwrap()["user_id"], "alice");
    assert!(page_claims(&proxy, &cookie("new")).is_none(), "not yet published");
    // The identity provider rotates: the new key appears, the old one goes.
    *body.lock().unwrap() = only("new");
    assert_eq!(
        page_claims(&proxy, &cookie("new")).expect("the rotated key is fetched")["user_id"],
        "bob"
    );
    assert!(server.count("/jwks.json") >= 3, "an unknown kid made the proxy look again");
}

#[test]
fn a_supabase_session_split_over_chunked_cookies_is_read() {
    use base64::Engine as _;
    let secret = "supabase-jwt-secret-0123456789abcdef";
    let s = sign(
        json!({"tokens": {"t": {"secret": secret, "alg": "HS256", "kid": null, "claims": with(claims("supa"), json!({"aud": "authenticated", "iss": ISSUER}))}}}),
    );
    let access = s["tokens"]["t"].as_str().unwrap();
    let session = json!({"access_token": access, "token_type": "bearer", "refresh_token": "r3fresh", "user": {"id": "supa"}});
    let value = format!(
        "base64-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(session.to_string())
    );
    let (a, b) = value.split_at(value.len() / 2);
    let app = app();
    let identity = format!(
        "identity:\n  sources:\n    - type: jwt_cookie\n      cookie: sb-proj-auth-token\n      algorithms: [HS256]\n      secret_env: SUPABASE_JWT_SECRET\n      issuer: {ISSUER}\n      audience: authenticated\n"
    );
    let proxy = Proxy::start_with_env(
        &sections(app.addr, &identity, ""),
        &[("SUPABASE_JWT_SECRET", secret)],
    );
    let c = page_claims(&proxy, &format!("sb-proj-auth-token.1={b}; sb-proj-auth-token.0={a}"))
        .expect("the chunked session identifies");
    assert_eq!(c["user_id"], "supa");
    assert_eq!(c["email"], "supa@example.com");
    assert!(
        page_claims(&proxy, &format!("sb-proj-auth-token.0={a}")).is_none(),
        "half a session is no identity"
    );
}

#[test]
fn a_bearer_token_in_the_authorization_header_is_read() {
    let s = sign(
        json!({"keys": {"e": "EC"}, "tokens": {"t": {"key": "e", "alg": "ES256", "claims": claims("dora")}}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("key.pem");
    std::fs::write(&pem, s["pem"]["e"].as_str().unwrap()).unwrap();
    let app = app();
    let identity = format!(
        "identity:\n  sources:\n    - type: jwt_cookie\n      header: Authorization\n      algorithms: [ES256]\n      public_key_file: {}\n      audience: {AUDIENCE}\n",
        pem.display()
    );
    let proxy = Proxy::start(&sections(app.addr, &identity, ""));
    let token = s["tokens"]["t"].as_str().unwrap();
    let r = get(&proxy.url("/"), &[("Authorization", &format!("Bearer {token}"))]);
    assert_eq!(verify(&page_token(&r.text()).expect("token"))["user_id"], "dora");
    let r = get(&proxy.url("/"), &[("Authorization", &format!("Basic {token}"))]);
    assert!(page_token(&r.text()).is_none(), "only the Bearer scheme carries a token");
}

#[test]
fn a_cloudflare_access_assertion_identifies_the_user_and_never_reaches_the_app() {
    let aud = "4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2";
    let team = "https://team.cloudflareaccess.com";
    let cf = |sub: &str| json!({"sub": sub, "email": format!("{sub}@example.com"), "aud": [aud], "iss": team, "iat": now(), "exp": now() + 300, "type": "app"});
    let s = sign(json!({
        "keys": {"cf1": "RSA"},
        "tokens": {
            "valid": {"key": "cf1", "alg": "RS256", "claims": cf("7335d417-61da-459d-899c-0a01c76a2f94")},
            "other_app": {"key": "cf1", "alg": "RS256", "claims": with(cf("eve"), json!({"aud": ["another-app"]}))},
            "forged": {"mode": "tamper", "key": "cf1", "alg": "RS256", "claims": cf("alice"), "tamper_sub": "admin"},
        }
    }));
    let certs = key_server("/cdn-cgi/access/certs", Arc::new(Mutex::new(s["jwks"].to_string())));
    let app = app();
    let identity = format!(
        "identity:\n  sources:\n    - type: signed_header\n      preset: cloudflare_access\n      jwks_url: http://{}/cdn-cgi/access/certs\n      audience: {aud}\n      issuer: {team}\n      fields: {{user_id: /sub, email: /email}}\n",
        certs.addr
    );
    let proxy = Proxy::start(&sections(app.addr, &identity, ""));
    let assertion = |name: &str| s["tokens"][name].as_str().unwrap().to_string();
    let r = get(
        &proxy.url("/"),
        &[
            ("Cf-Access-Jwt-Assertion", &assertion("valid")),
            ("Cf_Access_Jwt_Assertion", "smuggled"),
        ],
    );
    assert_eq!(r.status, 200);
    let c = verify(&page_token(&r.text()).expect("the assertion identifies"));
    assert_eq!(c["user_id"], "7335d417-61da-459d-899c-0a01c76a2f94");
    assert_eq!(c["email"], "7335d417-61da-459d-899c-0a01c76a2f94@example.com");
    for name in ["other_app", "forged"] {
        let r = get(&proxy.url("/"), &[("Cf-Access-Jwt-Assertion", &assertion(name))]);
        assert_eq!(r.status, 200);
        assert!(page_token(&r.text()).is_none(), "{name} must give no identity");
    }
    let seen = app.requests();
    assert_eq!(seen.len(), 3);
    for req in &seen {
        assert!(
            req.headers
                .iter()
                .all(|(k, _)| !k.replace('_', "-").eq_ignore_ascii_case("cf-access-jwt-assertion")),
            "the assertion (verified or not, in any spelling) reached the app: {:?}",
            req.headers
        );
    }
}

#[test]
fn an_aws_alb_token_signed_like_alb_is_accepted_and_a_tampered_one_refused() {
    let kid = "5d6e1b2a-4c7f-4a4e-9a61-0b9c1d2e3f40";
    let alb = |mode: &str, signer: &str| json!({"mode": mode, "key": kid, "signer": signer, "exp": now() + 120, "claims": {"sub": "1234567890", "email": "alb@example.com", "name": "Alb User", "exp": now() + 120, "iss": "https://idp.example.com"}});
    let s = sign(json!({
        "keys": {kid: "EC"},
        "tokens": {
            "valid": alb("alb", ALB_ARN),
            "tampered": alb("alb_tamper", ALB_ARN),
            "other_alb": alb("alb", "arn:aws:elasticloadbalancing:us-east-1:999999999999:loadbalancer/app/theirs/1"),
        }
    }));
    let valid = s["tokens"]["valid"].as_str().unwrap();
    assert!(valid.split('.').take(2).any(|p| p.ends_with('=')), "ALB pads its parts: {valid}");
    let pem = s["pem"][kid].as_str().unwrap().to_string();
    let key_path: &'static str = Box::leak(format!("/keys/{kid}").into_boxed_str());
    let keys = key_server(key_path, Arc::new(Mutex::new(pem)));
    let app = app();
    let identity = format!(
        "identity:\n  sources:\n    - type: signed_header\n      preset: aws_alb\n      signer: {ALB_ARN}\n      key_url: http://{}/keys\n",
        keys.addr
    );
    let proxy = Proxy::start(&sections(app.addr, &identity, ""));
    let r = get(&proxy.url("/"), &[("x-amzn-oidc-data", valid)]);
    let c = verify(
        &page_token(&r.text())
            .unwrap_or_else(|| panic!("the ALB token identifies\n{}", proxy.log_text())),
    );
    assert_eq!(c["user_id"], "1234567890");
    assert_eq!(c["email"], "alb@example.com");
    assert_eq!(c["name"], "Alb User");
    for name in ["tampered", "other_alb"] {
        let r = get(&proxy.url("/"), &[("x-amzn-oidc-data", s["tokens"][name].as_str().unwrap())]);
        assert_eq!(r.status, 200);
        assert!(page_token(&r.text()).is_none(), "{name} must give no identity");
    }
    assert_eq!(keys.count(key_path), 1, "the key of a kid is fetched once");
    assert!(
        app.requests().iter().all(|r| r.header("x-amzn-oidc-data").is_none()),
        "the ALB header never reaches the app"
    );
}

#[test]
fn a_pomerium_assertion_verifies_against_a_jwks_file() {
    let s = sign(
        json!({"keys": {"p1": "EC"}, "tokens": {"t": {"key": "p1", "alg": "ES256", "claims": with(claims("pia"), json!({"aud": "app.example.com", "iss": "authenticate.example.com"}))}}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, s["jwks"].to_string()).unwrap();
    let app = app();
    let identity = format!(
        "identity:\n  sources:\n    - type: signed_header\n      preset: pomerium\n      jwks_file: {}\n      audience: app.example.com\n",
        jwks.display()
    );
    let proxy = Proxy::start(&sections(app.addr, &identity, ""));
    let r =
        get(&proxy.url("/"), &[("X-Pomerium-Jwt-Assertion", s["tokens"]["t"].as_str().unwrap())]);
    let token = page_token(&r.text())
        .unwrap_or_else(|| panic!("no token; proxy log:\n{}", proxy.log_text()));
    assert_eq!(verify(&token)["user_id"], "pia");
    assert!(app.requests().iter().all(|r| r.header("x-pomerium-jwt-assertion").is_none()));
}

#[test]
fn keys_unavailable_means_pages_without_tokens_until_the_jwks_answers() {
    let s = sign(
        json!({"keys": {"k": "RSA"}, "tokens": {"t": {"key": "k", "alg": "RS256", "claims": claims("alice")}}}),
    );
    let published: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let jwks = published.clone();
    let server = Upstream::start(move |_| match jwks.lock().unwrap().clone() {
        Some(body) => Reply::with(200, &[("Content-Type", "application/json")], body),
        None => Reply::with(503, &[], "down"),
    });
    let app = app();
    let proxy = jwt_cookie_proxy(
        &app,
        &format!(
            "      jwks_url: http://{}/jwks.json\n      key_refetch_interval: 0s\n",
            server.addr
        ),
    );
    let cookie = format!("session_token={}", s["tokens"]["t"].as_str().unwrap());
    for _ in 0..3 {
        assert!(
            page_claims(&proxy, &cookie).is_none(),
            "no keys, no identity (the page is still served)"
        );
    }
    assert!(
        proxy.log_text().contains("keys unavailable"),
        "the failure is logged: {}",
        proxy.log_text()
    );
    *published.lock().unwrap() = Some(s["jwks"].to_string());
    assert_eq!(
        page_claims(&proxy, &cookie).expect("tokens come back by themselves")["user_id"],
        "alice"
    );
}

#[test]
fn unknown_kids_fetch_the_jwks_again_at_most_once_per_interval() {
    let s = sign(json!({
        "keys": {"known": "RSA", "stranger": "RSA"},
        "tokens": {
            "known": {"key": "known", "alg": "RS256", "claims": claims("alice")},
            "a": {"key": "stranger", "kid": "made-up-1", "alg": "RS256", "claims": claims("mallory")},
            "b": {"key": "stranger", "kid": "made-up-2", "alg": "RS256", "claims": claims("mallory")},
            "c": {"key": "stranger", "kid": "made-up-3", "alg": "RS256", "claims": claims("mallory")},
        }
    }));
    let mut jwks = s["jwks"].clone();
    jwks["keys"].as_array_mut().unwrap().retain(|k| k["kid"] == "known");
    let server = key_server("/jwks.json", Arc::new(Mutex::new(jwks.to_string())));
    let app = app();
    // The default key_refetch_interval (30 s).
    let proxy =
        jwt_cookie_proxy(&app, &format!("      jwks_url: http://{}/jwks.json\n", server.addr));
    let cookie = |name: &str| format!("session_token={}", s["tokens"][name].as_str().unwrap());
    assert_eq!(page_claims(&proxy, &cookie("known")).unwrap()["user_id"], "alice");
    for name in ["a", "b", "c", "a", "b", "c"] {
        assert!(page_claims(&proxy, &cookie(name)).is_none(), "{name}");
    }
    assert_eq!(
        server.count("/jwks.json"),
        1,
        "made-up kids within the interval make no request to the identity provider"
    );
}

#[test]
fn check_accepts_an_unreachable_jwks_url_with_a_warning_and_refuses_a_bad_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let conf = |source: &str| {
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, format!("listen: [\"127.0.0.1:8080\"]\nupstream: {{addresses: [\"127.0.0.1:3000\"]}}\nintercom: {{app_id: abc12345, secret_env: TEST_INTERCOM_SECRET}}\nidentity:\n  sources:\n    - {source}\n")).unwrap();
        support::check_config_file(&path, &[("TEST_INTERCOM_SECRET", support::SECRET)])
    };
    let (code, stderr) = conf(&format!(
        "{{type: jwt_cookie, cookie: s, algorithms: [RS256], jwks_url: \"http://{closed}/jwks.json\"}}"
    ));
    assert_eq!(code, Some(0), "an unreachable JWKS is a warning: {stderr}");
    assert!(
        stderr.contains("identity.sources[0].jwks_url") && stderr.contains("cannot fetch"),
        "{stderr}"
    );
    let pem = dir.path().join("not-a-key.pem");
    std::fs::write(&pem, "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n")
        .unwrap();
    let (code, text) = conf(&format!(
        "{{type: jwt_cookie, cookie: s, algorithms: [ES256], public_key_file: {}}}",
        pem.display()
    ));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("identity.sources[0].public_key_file"), "{text}");
}
