//! The checks of a page's `intercom_user_jwt`: with the proxy's configuration, the
//! HS256 signature with the site's Messenger secret, the workspace, `user_id`, and an
//! `exp` in the future but not further than the configured lifetime; without it, the
//! claims are only read for the report. The token itself is never reported.

use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Serialize;
use serde_json::Value;

use intercom_secure_proxy::config::{SecretSource, SiteConfig};

/// Clock difference allowed between this machine and the one that signed, on top of
/// the configured lifetime.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// What a page's token is checked against.
pub struct Expectations<'a> {
    /// The proxy's site for the page's host, when `-c` was given.
    pub site: Option<&'a SiteConfig>,
    /// The user the token must name (`--expect-user`, else the page's plain `user_id`).
    pub user: Option<&'a str>,
    /// Now, in seconds since the epoch.
    pub now: u64,
}

/// What the report says about a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JwtReport {
    /// The signature verified with the site's secret; `None` without `-c`.
    pub verified: Option<bool>,
    /// The token's `user_id` claim (unverified without `-c`).
    pub user_id: Option<String>,
    /// The token's `exp` claim, seconds since the epoch.
    pub exp: Option<u64>,
    /// Every check that failed; empty when all passed (or none ran).
    pub problems: Vec<String>,
}

/// Checks `token`, booted for `app_id`.
pub fn check(token: &str, app_id: Option<&str>, expect: &Expectations<'_>) -> JwtReport {
    let claims = payload(token);
    let user_id = claims.as_ref().and_then(|c| match c.get("user_id") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    });
    let exp = claims.as_ref().and_then(|c| c.get("exp")).and_then(Value::as_u64);
    let mut report = JwtReport { verified: None, user_id, exp, problems: Vec::new() };
    let Some(site) = expect.site else { return report };
    let problems = &mut report.problems;
    let verified = verify(token, site);
    if let Err(problem) = &verified {
        problems.push(problem.clone());
    }
    report.verified = Some(verified.is_ok());
    if claims.is_none() {
        return report;
    }
    if let Some(app_id) = app_id.filter(|a| *a != site.intercom.app_id) {
        problems.push(format!(
            "the Messenger booted app_id {app_id}, but the configuration's workspace is {}",
            site.intercom.app_id
        ));
    }
    match (&report.user_id, expect.user) {
        (None, _) => problems.push("no user_id claim: Intercom cannot tell who the user is".into()),
        (Some(got), Some(wanted)) if got != wanted => {
            problems.push(format!("names user_id {got}, expected {wanted}"))
        }
        _ => {}
    }
    let longest = site.intercom.token_lifetime + CLOCK_SKEW;
    match exp {
        None => problems.push("no exp claim: the token never expires".into()),
        Some(exp) if exp <= expect.now => {
            problems.push(format!("expired {} ago", human(expect.now - exp)))
        }
        Some(exp) if exp - expect.now > longest.as_secs() => problems.push(format!(
            "expires in {}, more than intercom.token_lifetime ({}) plus {} s of clock skew",
            human(exp - expect.now),
            humantime::format_duration(site.intercom.token_lifetime),
            CLOCK_SKEW.as_secs()
        )),
        Some(_) => {}
    }
    report
}

/// The claims, read without verification (for the report, and to check them).
pub(crate) fn payload(token: &str) -> Option<serde_json::Map<String, Value>> {
    let part = token.split('.').nth(1)?;
    let bytes =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// HS256 with the site's secret; `Err` says why not, naming where the secret came from.
fn verify(token: &str, site: &SiteConfig) -> Result<(), String> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| "not a JWT: its header does not decode".to_string())?;
    if header.alg != Algorithm::HS256 {
        return Err(format!("signed with {:?}; Intercom's Messenger tokens are HS256", header.alg));
    }
    let mut validation = Validation::new(Algorithm::HS256);
    // The claims are checked one by one above, for messages that say which one.
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let key = DecodingKey::from_secret(site.intercom.secret.expose());
    jsonwebtoken::decode::<Value>(token, &key, &validation).map(drop).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => {
            format!(
                "the signature does not verify with the Messenger secret of the configuration ({})",
                secret_origin(&site.intercom.secret_source)
            )
        }
        _ => "not a JWT: it does not decode".to_string(),
    })
}

fn secret_origin(source: &SecretSource) -> String {
    match source {
        SecretSource::Env(name) => format!("intercom.secret_env {name}"),
        SecretSource::File(path) => format!("intercom.secret_file {}", path.display()),
        SecretSource::Inline => "set in code".into(),
    }
}

/// A number of seconds for people: `42s`, `5m`, `3h 20m`, `2d 1h`.
pub fn human(seconds: u64) -> String {
    let (d, h, m, s) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m"),
        (0, _, 0) => format!("{h}h"),
        (0, _, _) => format!("{h}h {m}m"),
        _ if h == 0 => format!("{d}d"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn site() -> SiteConfig {
        let yaml = "listen: [\"127.0.0.1:8080\"]\nupstream: {addresses: [\"127.0.0.1:3000\"]}\nintercom: {app_id: abc12345, secret_env: S, token_lifetime: 1h}\nidentity: {sources: [{type: current_user_endpoint, path: /api/me, cookies: [sid]}]}\n";
        let config =
            intercom_secure_proxy::Config::from_yaml(yaml, &|_| Some("the-secret".into())).unwrap();
        config.site().clone()
    }

    fn sign(claims: Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn problems(token: &str, user: Option<&str>) -> Vec<String> {
        let site = site();
        check(token, Some("abc12345"), &Expectations { site: Some(&site), user, now: NOW }).problems
    }

    #[test]
    fn a_good_token_passes_and_is_described() {
        let token = sign(
            json!({"user_id": "alice", "email": "a@x", "iat": NOW, "exp": NOW + 3600}),
            "the-secret",
        );
        let site = site();
        let report = check(
            &token,
            Some("abc12345"),
            &Expectations { site: Some(&site), user: Some("alice"), now: NOW },
        );
        assert_eq!(
            report,
            JwtReport {
                verified: Some(true),
                user_id: Some("alice".into()),
                exp: Some(NOW + 3600),
                problems: vec![]
            }
        );
    }

    #[test]
    fn each_failed_check_is_named() {
        let good = json!({"user_id": "alice", "exp": NOW + 600});
        let forged = sign(good.clone(), "another-secret");
        assert_eq!(problems(&forged, None), ["the signature does not verify with the Messenger secret of the configuration (intercom.secret_env S)"]);
        assert_eq!(
            problems(&sign(json!({"user_id": "alice", "exp": NOW - 90}), "the-secret"), None),
            ["expired 1m ago"]
        );
        assert_eq!(
            problems(&sign(json!({"user_id": "alice", "exp": NOW}), "the-secret"), None),
            ["expired 0s ago"]
        );
        assert_eq!(
            problems(&sign(json!({"user_id": "alice"}), "the-secret"), None),
            ["no exp claim: the token never expires"]
        );
        assert_eq!(
            problems(
                &sign(json!({"user_id": "alice", "exp": NOW + 86_400 * 30}), "the-secret"),
                None
            ),
            ["expires in 30d, more than intercom.token_lifetime (1h) plus 60 s of clock skew"]
        );
        // The lifetime plus the skew is still fine.
        assert!(problems(
            &sign(json!({"user_id": "alice", "exp": NOW + 3660}), "the-secret"),
            None
        )
        .is_empty());
        assert_eq!(
            problems(&sign(json!({"exp": NOW + 60}), "the-secret"), None),
            ["no user_id claim: Intercom cannot tell who the user is"]
        );
        assert_eq!(
            problems(&sign(good.clone(), "the-secret"), Some("bob")),
            ["names user_id alice, expected bob"]
        );
        assert_eq!(problems("garbage", None), ["not a JWT: its header does not decode"]);
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &good,
            &EncodingKey::from_secret(b"the-secret"),
        )
        .unwrap();
        assert_eq!(
            problems(&hs512, None),
            ["signed with HS512; Intercom's Messenger tokens are HS256"]
        );
        let site = site();
        let other = check(
            &sign(good, "the-secret"),
            Some("zzz"),
            &Expectations { site: Some(&site), user: None, now: NOW },
        );
        assert_eq!(
            other.problems,
            ["the Messenger booted app_id zzz, but the configuration's workspace is abc12345"]
        );
    }

    #[test]
    fn without_the_configuration_the_claims_are_only_read() {
        let token = sign(json!({"user_id": 42, "exp": NOW - 10}), "whatever");
        let report = check(&token, None, &Expectations { site: None, user: Some("bob"), now: NOW });
        assert_eq!(
            report,
            JwtReport {
                verified: None,
                user_id: Some("42".into()),
                exp: Some(NOW - 10),
                problems: vec![]
            }
        );
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(
            [human(5), human(300), human(7200), human(7260), human(86_400), human(90_000)],
            ["5s", "5m", "2h", "2h 1m", "1d", "1d 1h"]
        );
    }
}
