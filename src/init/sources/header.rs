//! `signed_header` and `trusted_header`, from the identity headers given with
//! `--header`: an assertion an identity-aware proxy signs is recognised by the header
//! its preset signs into (Cloudflare Access, Pomerium, Google IAP, AWS ALB,
//! oauth2-proxy's bearer token); any other header whose value is the page's user id
//! (email, name) is one an authenticating proxy sets in clear.

use super::jwt::{verify_yaml, OriginJwks, Unverified};
use super::{Candidate, Evidence};
use crate::init::candidate::Attempt;
use crate::init::pointer::Fields;
use crate::init::yaml::quote;
use intercom_secure_proxy::config::Preset;

/// The `type` of a signed assertion's source.
const SIGNED: &str = "signed_header";
/// The `type` of a clear header's source.
const TRUSTED: &str = "trusted_header";

/// Tries the signed assertions among the headers first (the signature is the proof),
/// then the clear ones.
pub(super) fn find(ev: &Evidence<'_>, attempts: &mut Vec<Attempt>) -> Option<Candidate> {
    let headers = &ev.plan.headers;
    if headers.is_empty() {
        attempts.push(Attempt::rejected(TRUSTED, "(--header)", "no --header given".into()));
        return None;
    }
    let mut clear = Vec::new();
    for (name, value) in headers {
        let Some((preset, assertion)) = signed_by(name, value) else {
            clear.push((name.as_str(), value.as_str()));
            continue;
        };
        match signed(ev, preset, name, assertion) {
            Ok(candidate) => {
                if let Some(accepted) = ev.try_candidate(candidate, attempts) {
                    return Some(accepted);
                }
            }
            Err(why) => attempts.push(Attempt::rejected(SIGNED, &format!("header {name}"), why)),
        }
    }
    if clear.is_empty() {
        return None;
    }
    let names: Vec<&str> = clear.iter().map(|(n, _)| *n).collect();
    match trusted(&ev.learned.answer, &clear) {
        Ok(candidate) => ev.try_candidate(candidate, attempts),
        Err(why) => {
            attempts.push(Attempt::rejected(
                TRUSTED,
                &format!("headers {}", names.join(", ")),
                why,
            ));
            None
        }
    }
}

/// The preset whose proxy signs into header `name`, and the assertion in `value`
/// (after `Bearer ` for oauth2-proxy's `Authorization`).
fn signed_by<'v>(name: &str, value: &'v str) -> Option<(Preset, &'v str)> {
    let preset = Preset::ALL
        .into_iter()
        .find(|p| p.header().is_some_and(|h| h.eq_ignore_ascii_case(name)))?;
    let assertion = match preset {
        Preset::Oauth2Proxy => value
            .trim()
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))?
            .1
            .trim(),
        _ => value.trim(),
    };
    Some((preset, assertion))
}

/// Where a preset's proxy publishes its keys, for the message naming the key needed.
fn published_at(preset: Preset, token: &Unverified) -> String {
    let iss = token.issuer().unwrap_or("ISSUER").trim_end_matches('/');
    match preset {
        Preset::CloudflareAccess => format!("Cloudflare publishes them at {iss}/cdn-cgi/access/certs"),
        Preset::Pomerium => "Pomerium publishes them at /.well-known/pomerium/jwks.json on the host it serves the app on".into(),
        Preset::GoogleIap => format!("Google publishes them at {}", intercom_secure_proxy::config::GOOGLE_IAP_JWKS_URL),
        Preset::Oauth2Proxy => format!("they are the identity provider's: the jwks_uri of {iss}/.well-known/openid-configuration"),
        Preset::AwsAlb | Preset::None => "they are the signer's".into(),
    }
}

/// The candidate for the assertion in header `name`, or why it cannot be one.
fn signed(
    ev: &Evidence<'_>,
    preset: Preset,
    name: &str,
    assertion: &str,
) -> Result<Candidate, String> {
    let what = format!("the {name} header is a {} assertion", preset.name());
    let token =
        Unverified::read(assertion).ok_or_else(|| format!("{what}, but its value is not a JWT"))?;
    if preset == Preset::AwsAlb {
        // Its keys are AWS's, per region: nothing on the app's origin can stand in.
        let signer = token.signer.as_deref().unwrap_or("the load balancer's ARN");
        return Err(format!(
            "{what} ({}): AWS publishes its keys per region, which init does not fetch (it talks only to the app's origin); write preset: aws_alb with signer: {signer:?} by hand",
            token.key_needed()
        ));
    }
    let alg = token.algorithm().map_err(|why| format!("{what}, but {why}"))?;
    if !preset.algorithms().contains(&alg) {
        return Err(format!(
            "{what}, but it is signed with {}, not what {} signs with",
            token.alg,
            preset.name()
        ));
    }
    if token.expired() {
        return Err(format!("{what}, but it has expired: give a fresh one"));
    }
    if preset.needs_audience() && token.audience().is_empty() {
        return Err(format!("{what}, but it has no aud, which the {} preset pins", preset.name()));
    }
    let places = Fields::find(
        &serde_json::Value::Object(token.claims.clone()),
        &ev.learned.answer,
        "its claims",
    )
    .map_err(|why| format!("{what}, but {why}"))?;
    let keys = OriginJwks::find(ev, &token).map_err(|looked| {
        format!(
            "{what}; its key ({}) is needed: {}, and init talks only to the app's origin, where it found none ({looked}); set jwks_url by hand",
            token.key_needed(),
            published_at(preset, &token)
        )
    })?;
    Ok(Candidate {
        source: SIGNED,
        tried: format!("header {name}"),
        why: format!("{what} whose claim {} is the page's user_id", places.user_id),
        yaml: format!(
            "    - type: signed_header\n      # the preset of the proxy that signs into {name}: it reads that header and removes it before the app\n      preset: {}\n{}",
            preset.name(),
            verify_yaml(&token, &keys.yaml(), &places)
        ),
        claims: places.claims(),
    })
}

/// The trusted_header candidate: each field read from the header whose value is the
/// page's, or why there is none.
fn trusted(
    answer: &crate::init::answer::Answer,
    clear: &[(&str, &str)],
) -> Result<Candidate, String> {
    let holding = |want: &str| clear.iter().find(|(_, v)| v.trim() == want).map(|(n, _)| *n);
    let user_id = holding(&answer.user_id).ok_or("no --header's value is the page's user_id")?;
    let email = answer.email.as_deref().and_then(holding);
    if answer.email.is_some() && email.is_none() {
        return Err(format!(
            "{user_id} holds the page's user_id, but no --header's value is its email"
        ));
    }
    let name = answer.name.as_deref().and_then(holding);
    let mut yaml = format!(
        "    - type: trusted_header\n      # only the auth proxy in front may set these headers: 127.0.0.1 is where init checked from; put the auth proxy's address (or network) here\n      trusted_cidrs: [\"127.0.0.1/32\"]\n      headers:\n        user_id: {}   # its value is the page's user_id\n",
        quote(user_id)
    );
    let mut claims = Vec::new();
    for (field, header) in [("email", email), ("name", name)] {
        if let Some(h) = header {
            yaml.push_str(&format!(
                "        {field}: {}   # its value is the page's {field}\n",
                quote(h)
            ));
            claims.push(field);
        }
    }
    Ok(Candidate {
        source: TRUSTED,
        tried: format!("header {user_id}"),
        why: format!("the auth proxy's {user_id} header is the page's user_id"),
        yaml,
        claims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::sources::test_answer as answer;

    #[test]
    fn assertions_are_known_by_their_presets_header() {
        assert_eq!(
            signed_by("CF-Access-JWT-Assertion", " a.b.c "),
            Some((Preset::CloudflareAccess, "a.b.c"))
        );
        assert_eq!(
            signed_by("x-pomerium-jwt-assertion", "a.b.c").map(|p| p.0),
            Some(Preset::Pomerium)
        );
        assert_eq!(
            signed_by("X-Goog-IAP-JWT-Assertion", "a.b.c").map(|p| p.0),
            Some(Preset::GoogleIap)
        );
        assert_eq!(signed_by("x-amzn-oidc-data", "a.b.c").map(|p| p.0), Some(Preset::AwsAlb));
        assert_eq!(
            signed_by("Authorization", "bearer a.b.c"),
            Some((Preset::Oauth2Proxy, "a.b.c"))
        );
        assert_eq!(signed_by("Authorization", "Basic dTpw"), None);
        assert_eq!(signed_by("X-Forwarded-User", "u-1"), None);
    }

    #[test]
    fn clear_headers_map_by_value() {
        let c = trusted(
            &answer(Some("a@x")),
            &[("X-Auth-Email", "a@x"), ("X-Auth-User", "u-1"), ("X-Other", "z")],
        )
        .unwrap();
        let doc: yaml_serde::Value = yaml_serde::from_str(&c.yaml).unwrap();
        let item = &doc[0];
        assert_eq!(
            (item["headers"]["user_id"].as_str(), item["headers"]["email"].as_str()),
            (Some("X-Auth-User"), Some("X-Auth-Email"))
        );
        assert_eq!(item["trusted_cidrs"][0], "127.0.0.1/32");
        assert!(item["headers"]["name"].is_null());
        assert_eq!(c.claims, ["email"]);
        assert!(trusted(&answer(Some("a@x")), &[("X-Auth-User", "u-1")])
            .unwrap_err()
            .contains("email"));
        assert!(trusted(&answer(None), &[("X-Auth-User", "u-2")]).unwrap_err().contains("user_id"));
        assert!(trusted(&answer(None), &[("X-Auth-User", "u-1")]).is_ok());
    }
}
