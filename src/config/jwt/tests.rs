//! Validation of the `jwt_cookie` and `signed_header` sources: each mistake names its
//! key, presets fill their defaults, and no key source can serve as an HMAC secret
//! for a public-key algorithm.

use super::*;

fn yaml(source: &str) -> String {
    format!(
        "listen: [\"127.0.0.1:8080\"]\nupstream: {{addresses: [\"127.0.0.1:3000\"]}}\nintercom: {{app_id: abc12345, secret_env: S}}\nidentity:\n  sources:\n    - {source}\n"
    )
}

fn env(name: &str) -> Option<String> {
    match name {
        "S" => Some("messenger-secret".into()),
        "APP_JWT" => Some("app-jwt-secret".into()),
        _ => None,
    }
}

fn source(source: &str) -> std::result::Result<SourceConfig, ConfigError> {
    Config::from_yaml(&yaml(source), &env).map(|c| c.site().identity.sources[0].clone())
}

fn error_key(s: &str) -> String {
    source(s).expect_err(s).key
}

#[test]
fn mistakes_name_their_key() {
    let cases = [
        ("{type: jwt_cookie, algorithms: [RS256], jwks_url: \"https://a.example/j\"}", "identity.sources[0].cookie"),
        ("{type: jwt_cookie, cookie: s, jwks_url: \"https://a.example/j\"}", "identity.sources[0].algorithms"),
        ("{type: jwt_cookie, cookie: s, algorithms: [RS257], jwks_url: \"https://a.example/j\"}", "identity.sources[0].algorithms[0]"),
        ("{type: jwt_cookie, cookie: s, algorithms: [none], jwks_url: \"https://a.example/j\"}", "identity.sources[0].algorithms[0]"),
        ("{type: jwt_cookie, cookie: s, algorithms: [RS256], jwks_url: \"ftp://a.example/j\"}", "identity.sources[0].jwks_url"),
        ("{type: jwt_cookie, cookie: s, algorithms: [RS256], jwks_url: \"https://a/j\", jwks_file: /x}", "identity.sources[0].jwks_file"),
        ("{type: jwt_cookie, cookie: s, algorithms: [RS256], jwks_file: /nonexistent/jwks.json}", "identity.sources[0].jwks_file"),
        ("{type: jwt_cookie, cookie: s, algorithms: [ES256], public_key_file: /nonexistent.pem}", "identity.sources[0].public_key_file"),
        ("{type: jwt_cookie, cookie: s, algorithms: [HS256], secret_env: UNSET}", "identity.sources[0].secret_env"),
        ("{type: jwt_cookie, cookie: s, algorithms: [RS256], jwks_url: \"https://a/j\", leeway: soon}", "identity.sources[0].leeway"),
        ("{type: jwt_cookie, cookie: s, algorithms: [RS256], jwks_url: \"https://a/j\", key_timeout: 0s}", "identity.sources[0].key_timeout"),
        ("{type: jwt_cookie, cookie: s, preset: pomerium, algorithms: [RS256], jwks_url: \"https://a/j\"}", "identity.sources[0].preset"),
        ("{type: signed_header, preset: cloudflare, jwks_url: \"https://a/j\"}", "identity.sources[0].preset"),
        ("{type: signed_header, preset: cloudflare_access, jwks_url: \"https://a/j\"}", "identity.sources[0].audience"),
        ("{type: signed_header, preset: none, algorithms: [RS256], jwks_url: \"https://a/j\"}", "identity.sources[0].header"),
        ("{type: signed_header, preset: aws_alb}", "identity.sources[0].signer"),
        ("{type: signed_header, preset: pomerium, jwks_url: \"https://a/j\", signer: \"arn:x\"}", "identity.sources[0].signer"),
        ("{type: signed_header, preset: aws_alb, signer: \"arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/a/b\", jwks_url: \"https://a/j\"}", "identity.sources[0].jwks_url"),
    ];
    for (yaml, key) in cases {
        assert_eq!(error_key(yaml), key, "{yaml}");
    }
}

#[test]
fn an_hmac_algorithm_never_meets_a_public_key_source() {
    for s in [
        "{type: jwt_cookie, cookie: s, algorithms: [HS256], jwks_url: \"https://a/j\"}",
        "{type: jwt_cookie, cookie: s, algorithms: [RS256, HS256], jwks_url: \"https://a/j\"}",
        "{type: jwt_cookie, cookie: s, algorithms: [RS256], secret_env: APP_JWT}",
    ] {
        assert_eq!(error_key(s), "identity.sources[0].algorithms", "{s}");
    }
    let Ok(SourceConfig::JwtCookie(c)) =
        source("{type: jwt_cookie, cookie: s, algorithms: [HS256, HS512], secret_env: APP_JWT}")
    else {
        panic!("an HMAC source with a secret is valid")
    };
    assert!(!format!("{c:?}").contains("app-jwt-secret"), "the secret never shows in Debug");
    assert!(!c.summary().contains("app-jwt-secret"));
}

#[test]
fn presets_fill_header_algorithm_issuer_and_keys() {
    let Ok(SourceConfig::SignedHeader(c)) =
        source("{type: signed_header, preset: google_iap, audience: /projects/1/apps/a}")
    else {
        panic!("google_iap needs only the audience")
    };
    assert_eq!(c.header, "x-goog-iap-jwt-assertion");
    assert_eq!(c.verify.algorithms, [jsonwebtoken::Algorithm::ES256]);
    assert_eq!(c.verify.issuer.as_deref(), Some(jwt::GOOGLE_IAP_ISSUER));
    assert!(matches!(&c.verify.keys, KeySource::JwksUrl(u) if u == jwt::GOOGLE_IAP_JWKS_URL));
    let arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/my-alb/50dc6c495c0c9188";
    let Ok(SourceConfig::SignedHeader(c)) =
        source(&format!("{{type: signed_header, preset: aws_alb, signer: \"{arn}\"}}"))
    else {
        panic!("aws_alb needs only the signer")
    };
    assert_eq!(c.header, "x-amzn-oidc-data");
    assert!(
        matches!(&c.verify.keys, KeySource::AlbKeyUrl(u) if u == "https://public-keys.auth.elb.eu-west-1.amazonaws.com")
    );
    assert_eq!(c.verify.format, TokenFormat::AwsAlb { signer: arn.into() });
    let Ok(SourceConfig::SignedHeader(c)) = source("{type: signed_header, preset: oauth2_proxy, jwks_url: \"https://idp/j\", audience: client-id}") else {
        panic!("oauth2_proxy with keys and audience is valid")
    };
    assert_eq!(c.header, "authorization");
}

#[test]
fn claims_mapped_by_a_jwt_source_may_be_signed() {
    let text = yaml("{type: jwt_cookie, cookie: s, algorithms: [HS256], secret_env: APP_JWT, fields: {attributes: {plan: /plan}}}")
        .replace("secret_env: S}", "secret_env: S, claims: [email, plan]}");
    let config = Config::from_yaml(&text, &env).expect("plan is provided by the jwt_cookie source");
    assert!(config.site().intercom.claims.contains(&"plan".to_string()));
}

/// A secret pasted where its variable's name belongs is refused at its own key and
/// never quoted back (the source is read in place, so the path reaches the key).
#[test]
fn a_pasted_secret_is_refused_at_its_key_and_never_echoed() {
    for value in ["[sk_live_pasted]", "{a: sk_live_pasted}"] {
        let s =
            format!("{{type: jwt_cookie, cookie: c, algorithms: [HS256], secret_env: {value}}}");
        let e = source(&s).expect_err(&s);
        assert_eq!(e.key, "identity.sources[0].secret_env", "{e}");
        assert!(
            e.message.contains("JWT secret") && !e.to_string().contains("sk_live_pasted"),
            "{e}"
        );
    }
}
