//! What the JWT finders (`jwt_cookie`, `signed_header`) share: a token read without
//! verification, only to learn its algorithm, key id, issuer and audience and where
//! the page's user is among its claims; the verification keys the app's origin
//! publishes; and the lines of the source's YAML that verify it.
//!
//! A token is a credential: nothing here keeps, prints or writes it, only what its
//! header and claims say.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use serde_json::{Map, Value};
use url::Url;

use super::Evidence;
use crate::audit::classify::text;
use crate::init::pointer::Fields;
use crate::init::yaml::quote;

/// base64url with or without padding (AWS ALB pads, everyone else does not).
const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Where a JWKS may be on the app's origin, after those an OpenID discovery document
/// names (Pomerium answers its own path on every route it fronts).
const JWKS_PATHS: [&str; 2] = ["/.well-known/jwks.json", "/.well-known/pomerium/jwks.json"];

/// A JWT's header and claims, read without verification.
#[derive(Debug)]
pub(super) struct Unverified {
    /// The header's `alg`, as written.
    pub alg: String,
    /// The header's `kid`.
    pub kid: Option<String>,
    /// The header's `signer` (AWS ALB names its load balancer there).
    pub signer: Option<String>,
    /// The claims.
    pub claims: Map<String, Value>,
}

impl Unverified {
    /// Reads a compact JWS (`header.claims.signature`); `None` when `token` is not one
    /// whose header and claims are JSON objects.
    pub fn read(token: &str) -> Option<Unverified> {
        let mut parts = token.trim().split('.');
        let (header, claims, _signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let object =
            |part: &str| match serde_json::from_slice::<Value>(&B64.decode(part).ok()?).ok()? {
                Value::Object(map) => Some(map),
                _ => None,
            };
        let header = object(header)?;
        Some(Unverified {
            alg: header.get("alg")?.as_str()?.to_string(),
            kid: header.get("kid").and_then(Value::as_str).map(str::to_string),
            signer: header.get("signer").and_then(Value::as_str).map(str::to_string),
            claims: object(claims)?,
        })
    }

    /// The algorithm, when the proxy verifies it (`none` is never one).
    pub fn algorithm(&self) -> Result<Algorithm, String> {
        self.alg.parse::<Algorithm>().map_err(|_| match self.alg.eq_ignore_ascii_case("none") {
            true => "it is not signed (alg none): the proxy never trusts such a token".to_string(),
            false => {
                format!("it is signed with {:?}, an algorithm the proxy does not verify", self.alg)
            }
        })
    }

    /// Whether it is signed with a shared secret (HS256/384/512).
    pub fn is_hmac(&self) -> bool {
        self.algorithm().is_ok_and(|a| a.family() == AlgorithmFamily::Hmac)
    }

    /// The `iss` claim.
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    /// The `aud` claim: one string or a list of them.
    pub fn audience(&self) -> Vec<String> {
        match self.claims.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(list)) => {
                list.iter().filter_map(Value::as_str).map(str::to_string).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Whether its `exp` has passed.
    pub fn expired(&self) -> bool {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.claims.get("exp").and_then(Value::as_u64).is_some_and(|exp| exp < now)
    }

    /// What the key verifying it must be, for a message: `alg HS256, kid "k1", iss "..."`.
    pub fn key_needed(&self) -> String {
        let mut out = format!("alg {}", self.alg);
        if let Some(kid) = &self.kid {
            out.push_str(&format!(", kid {kid:?}"));
        }
        if let Some(iss) = self.issuer() {
            out.push_str(&format!(", iss {iss:?}"));
        }
        out
    }
}

/// The source's lines after its first (`type`, and `cookie` or `preset`): the
/// algorithm pinned, `key` (lines of their own, commented), the issuer and audience
/// the token carries, and the claims.
pub(super) fn verify_yaml(token: &Unverified, key: &str, places: &Fields) -> String {
    let mut out = format!("      # the token's header says {alg}: pinned, so no other algorithm (nor none) is accepted\n      algorithms: [{alg}]\n", alg = token.alg);
    out.push_str(key);
    if let Some(iss) = token.issuer() {
        out.push_str(&format!(
            "      # the token's iss: a token from any other issuer is refused\n      issuer: {}\n",
            quote(iss)
        ));
    }
    let audience = token.audience();
    if !audience.is_empty() {
        let list: Vec<String> = audience.iter().map(|a| quote(a)).collect();
        out.push_str(&format!(
            "      # the token's aud: a token for another app is refused\n      audience: [{}]\n",
            list.join(", ")
        ));
    }
    out.push_str(&places.yaml("the claim holding"));
    out
}

/// A JWKS on the app's origin that holds the token's key.
#[derive(Debug)]
pub(super) struct OriginJwks {
    /// Its absolute URL.
    pub url: Url,
    /// How it was found, for the configuration's comment.
    pub how: String,
}

impl OriginJwks {
    /// The key lines of the source's YAML.
    pub fn yaml(&self) -> String {
        format!("      # {}\n      jwks_url: {}\n", self.how, quote(self.url.as_str()))
    }

    /// Finds, on the app's origin only, a JWKS holding the token's key (its `kid`, or
    /// any key when the token names none): the `jwks_uri` of the OpenID discovery
    /// document of the issuer (when the issuer is on the origin) and of the origin's
    /// root, then the usual JWKS paths. `Err` says what was looked at and why each
    /// does not do.
    pub fn find(ev: &Evidence<'_>, token: &Unverified) -> Result<OriginJwks, String> {
        let origin = &ev.plan.origin;
        let mut looked = Vec::new();
        let mut discovery = Vec::new();
        if let Some(iss) = token
            .issuer()
            .and_then(|i| Url::parse(i).ok())
            .filter(|u| u.origin() == origin.origin())
        {
            let path =
                format!("{}/.well-known/openid-configuration", iss.path().trim_end_matches('/'));
            discovery.push(path);
        }
        if !discovery.iter().any(|p| p == "/.well-known/openid-configuration") {
            discovery.push("/.well-known/openid-configuration".into());
        }
        let mut jwks: Vec<(String, String)> = Vec::new();
        for path in &discovery {
            match jwks_uri(ev, path) {
                Ok(uri) if uri.origin() == origin.origin() => jwks.push((
                    uri[url::Position::BeforePath..].to_string(),
                    format!("the jwks_uri of {path} on the app's origin"),
                )),
                Ok(_) => looked.push(format!(
                    "{path}: its jwks_uri is on another origin, which init does not fetch"
                )),
                Err(why) => looked.push(format!("{path}: {why}")),
            }
        }
        for path in JWKS_PATHS {
            if !jwks.iter().any(|(p, _)| p == path) {
                jwks.push((path.to_string(), format!("{path} on the app's origin")));
            }
        }
        for (path, how) in jwks {
            match holds_key(ev, &path, token.kid.as_deref()) {
                Ok(()) => {
                    let url = origin.join(&path).map_err(|e| e.to_string())?;
                    let holds = token
                        .kid
                        .as_deref()
                        .map_or("its keys".to_string(), |k| format!("key {k:?}"));
                    return Ok(OriginJwks {
                        url,
                        how: format!("the token's {holds} is in the JWKS at {how}"),
                    });
                }
                Err(why) => looked.push(format!("{path}: {why}")),
            }
        }
        Err(looked.join("; "))
    }
}

/// The `jwks_uri` of the OpenID discovery document at `path`.
fn jwks_uri(ev: &Evidence<'_>, path: &str) -> Result<Url, String> {
    let doc = json_at(ev, path)?;
    let uri = doc.get("jwks_uri").and_then(Value::as_str).ok_or("no jwks_uri in it")?;
    ev.plan.origin.join(uri).map_err(|_| "its jwks_uri is not a URL".to_string())
}

/// Whether the JWKS at `path` holds the key `kid` (any key when `None`).
fn holds_key(ev: &Evidence<'_>, path: &str, kid: Option<&str>) -> Result<(), String> {
    let doc = json_at(ev, path)?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .filter(|k| !k.is_empty())
        .ok_or("not a JWKS with keys")?;
    match kid {
        Some(kid) if !keys.iter().any(|k| text(k.get("kid")).as_deref() == Some(kid)) => {
            Err(format!("no key {kid:?} in it"))
        }
        _ => Ok(()),
    }
}

/// The JSON document the app answers at `path` (asked without the session: keys
/// and discovery documents are public).
fn json_at(ev: &Evidence<'_>, path: &str) -> Result<Value, String> {
    let response = ev.app.get(path, &[], "application/json")?;
    if response.status != 200 {
        return Err(format!("answered {}", response.status));
    }
    serde_json::from_slice(&response.body).map_err(|_| "not JSON".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::sources::test_answer as answer;
    use serde_json::json;

    fn token(header: Value, claims: Value, pad: bool) -> String {
        let engine = match pad {
            true => base64::engine::general_purpose::URL_SAFE,
            false => base64::engine::general_purpose::URL_SAFE_NO_PAD,
        };
        format!("{}.{}.c2ln", engine.encode(header.to_string()), engine.encode(claims.to_string()))
    }

    #[test]
    fn header_and_claims_are_read_padded_or_not() {
        let claims =
            json!({"sub": "u-1", "iss": "https://id.example", "aud": ["a", "b"], "exp": 1});
        for pad in [false, true] {
            let t =
                Unverified::read(&token(json!({"alg": "ES256", "kid": "k1"}), claims.clone(), pad))
                    .unwrap();
            assert_eq!(
                (t.alg.as_str(), t.kid.as_deref(), t.issuer()),
                ("ES256", Some("k1"), Some("https://id.example"))
            );
            assert_eq!(t.audience(), ["a", "b"]);
            assert!(t.expired() && !t.is_hmac());
            assert_eq!(t.key_needed(), r#"alg ES256, kid "k1", iss "https://id.example""#);
        }
        let hs =
            Unverified::read(&token(json!({"alg": "HS256"}), json!({"aud": "x"}), false)).unwrap();
        assert!(hs.is_hmac() && !hs.expired());
        assert_eq!(
            (hs.audience(), hs.key_needed()),
            (vec!["x".to_string()], "alg HS256".to_string())
        );
    }

    #[test]
    fn what_is_not_a_signed_jwt_is_said() {
        for not in [
            "a1b2c3",
            "a.b",
            "a.b.c.d",
            &token(json!(["alg"]), json!({}), false),
            &token(json!({"typ": "JWT"}), json!({}), false),
        ] {
            assert!(Unverified::read(not).is_none(), "{not}");
        }
        let none = Unverified::read(&token(json!({"alg": "none"}), json!({}), false)).unwrap();
        assert!(none.algorithm().unwrap_err().contains("not signed"));
        let odd = Unverified::read(&token(json!({"alg": "XS1"}), json!({}), false)).unwrap();
        assert!(odd.algorithm().unwrap_err().contains("does not verify"));
    }

    #[test]
    fn claims_hold_the_page_user_or_say_what_is_missing() {
        let claims = json!({"sub": "u-1", "email": "a@x", "user_metadata": {"full_name": "Ann"}});
        let places = Fields::find(&claims, &answer(Some("a@x")), "its claims").unwrap();
        assert_eq!(places.user_id, "/sub");
        assert_eq!(
            places.others,
            [("email", "/email".to_string()), ("name", "/user_metadata/full_name".to_string())]
        );
        assert_eq!(places.claims(), ["email", "name"]);
        let without_email = json!({"sub": "u-1"});
        assert!(Fields::find(&without_email, &answer(Some("a@x")), "its claims")
            .unwrap_err()
            .contains("not its email"));
        assert!(Fields::find(&without_email, &answer(None), "its claims").is_ok());
        assert!(Fields::find(&json!({"sub": "u-2"}), &answer(None), "its claims")
            .unwrap_err()
            .contains("user_id"));
    }

    #[test]
    fn the_yaml_pins_what_the_token_carries() {
        let t = Unverified::read(&token(
            json!({"alg": "RS256"}),
            json!({"sub": "u-1", "iss": "https://id.example", "aud": "app"}),
            false,
        ))
        .unwrap();
        let places = Fields { user_id: "/sub".into(), others: vec![("email", "/email".into())] };
        let yaml = verify_yaml(&t, "      jwks_url: \"http://app/jwks\"\n", &places);
        let doc: yaml_serde::Value = yaml_serde::from_str(&format!(
            "type: jwt_cookie\n{}",
            yaml.replace("\n      ", "\n").trim_start()
        ))
        .unwrap();
        assert_eq!(doc["algorithms"][0], "RS256");
        assert_eq!(
            (doc["issuer"].as_str(), doc["audience"][0].as_str()),
            (Some("https://id.example"), Some("app"))
        );
        assert_eq!(
            (doc["fields"]["user_id"].as_str(), doc["fields"]["email"].as_str()),
            (Some("/sub"), Some("/email"))
        );
        let no_iss =
            Unverified::read(&token(json!({"alg": "HS256"}), json!({"sub": "u-1"}), false))
                .unwrap();
        let yaml = verify_yaml(&no_iss, "", &places);
        assert!(!yaml.contains("issuer") && !yaml.contains("audience"), "{yaml}");
    }
}
