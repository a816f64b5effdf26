//! The Messenger token: where the Messenger JWT (`intercom_user_jwt`) is signed.
//!
//! HS256 with the workspace's Messenger secret. Claims: `user_id` (always a string),
//! the configured identity fields the user has (`email`, `name`, protected attributes),
//! the user's `company` (`{"id", "name"}`) when a source maps one, `iat` and `exp`. Signed tokens are cached per identity and reused until a tenth of
//! their lifetime is left, so a busy user costs one HMAC per ~54 minutes, not per page.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use quick_cache::sync::Cache;
use serde_json::{Map, Value};

use crate::config::IntercomConfig;
use crate::identity::{Company, Identity};

/// Why a token could not be made. Never contains the secret or the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The JWT library refused to encode the claims.
    #[error("could not sign the Messenger token: {0}")]
    Encode(String),
    /// The system clock is before 1970.
    #[error("system clock is before the Unix epoch")]
    Clock,
}

/// Signs Messenger tokens and caches them per identity.
///
/// ```
/// use intercom_secure_proxy::config::{IntercomConfig, Secret};
/// use intercom_secure_proxy::{Identity, TokenSigner};
///
/// let signer = TokenSigner::new(&IntercomConfig::new("abc12345", Secret::new(b"messenger-secret".to_vec())));
/// let mut alice = Identity::new("42");
/// alice.email = Some("alice@example.com".into());
/// let token = signer.token_for(&alice)?;
/// assert_eq!(token.split('.').count(), 3);
/// // Cached: the same user gets the same token until a tenth of its lifetime is left.
/// assert_eq!(signer.token_for(&alice)?, token);
/// # Ok::<(), intercom_secure_proxy::TokenError>(())
/// ```
pub struct TokenSigner {
    key: EncodingKey,
    header: Header,
    lifetime: Duration,
    claims: Vec<String>,
    /// How long a signed token is handed out again: until a tenth of its lifetime is left.
    reuse: Duration,
    /// Claims without `iat`/`exp`, serialized ([`TokenSigner::cache_key`]), to the token
    /// signed for them. quick_cache rather than moka: a hit is one shard read, and on a
    /// page it is the signer's whole cost (moka's bookkeeping of every read was half of
    /// it); expiry is checked on read.
    cache: Cache<Vec<u8>, Signed>,
}

/// A cached token and until when it is handed out.
#[derive(Clone)]
struct Signed {
    token: Arc<str>,
    reuse_until: Instant,
}

impl TokenSigner {
    /// Builds a signer for the workspace.
    pub fn new(config: &IntercomConfig) -> Self {
        TokenSigner {
            key: EncodingKey::from_secret(config.secret.expose()),
            header: Header::new(Algorithm::HS256),
            lifetime: config.token_lifetime,
            claims: config.claims.clone(),
            reuse: config.token_lifetime - config.token_lifetime / 10,
            cache: Cache::new(100_000),
        }
    }

    /// A valid token for this identity, from the cache when one is fresh enough.
    pub fn token_for(&self, identity: &Identity) -> Result<Arc<str>, TokenError> {
        let key = self.cache_key(identity);
        if let Some(signed) = self.cache.get(&key).filter(|s| s.reuse_until > Instant::now()) {
            return Ok(signed.token);
        }
        // Two pages of a new user at once may both sign: harmless, and no page waits.
        let token: Arc<str> = self.sign(self.claims_of(identity))?.into();
        self.cache
            .insert(key, Signed { token: token.clone(), reuse_until: Instant::now() + self.reuse });
        Ok(token)
    }

    /// The exact claim set (without `iat`/`exp`), so two users never share a cache entry:
    /// each claim's name, a NUL, its JSON, a NUL (JSON never holds a raw NUL, so the
    /// encoding is unambiguous). Written straight from the identity: a cache hit builds
    /// no claims map.
    fn cache_key(&self, identity: &Identity) -> Vec<u8> {
        fn push(key: &mut Vec<u8>, name: &str, value: &impl serde::Serialize) {
            key.extend_from_slice(name.as_bytes());
            key.push(0);
            // Strings and JSON values always serialize, and a Vec takes every write.
            let _ = serde_json::to_writer(&mut *key, value);
            key.push(0);
        }
        let mut key = Vec::with_capacity(128);
        push(&mut key, "user_id", &identity.user_id);
        for name in &self.claims {
            if let Some(value) = identity.field_ref(name) {
                push(&mut key, name, &value);
            }
        }
        if let Some(company) = &identity.company {
            push(&mut key, "company.id", &company.id);
            if let Some(name) = &company.name {
                push(&mut key, "company.name", name);
            }
        }
        key
    }

    /// Signs a fresh token, bypassing the cache.
    pub fn sign_fresh(&self, identity: &Identity) -> Result<String, TokenError> {
        self.fresh_token(identity).map(|(token, _)| token)
    }

    /// A freshly signed token and its `exp` (seconds since the epoch), bypassing the
    /// cache: for pages that replace a token about to expire.
    pub fn fresh_token(&self, identity: &Identity) -> Result<(String, u64), TokenError> {
        let mut claims = self.claims_of(identity);
        let exp = self.stamp(&mut claims)?;
        let token = jsonwebtoken::encode(&self.header, &Value::Object(claims), &self.key)
            .map_err(|e| TokenError::Encode(e.to_string()))?;
        Ok((token, exp))
    }

    fn claims_of(&self, identity: &Identity) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert("user_id".into(), Value::String(identity.user_id.clone()));
        for name in &self.claims {
            if let Some(v) = identity.field(name) {
                claims.insert(name.clone(), v);
            }
        }
        if let Some(company) = &identity.company {
            claims.insert("company".into(), company_claim(company));
        }
        claims
    }

    /// Adds `iat` (now) and `exp` to the claims; returns `exp`.
    fn stamp(&self, claims: &mut Map<String, Value>) -> Result<u64, TokenError> {
        let now =
            SystemTime::now().duration_since(UNIX_EPOCH).map_err(|_| TokenError::Clock)?.as_secs();
        let exp = now + self.lifetime.as_secs();
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), exp.into());
        Ok(exp)
    }

    fn sign(&self, mut claims: Map<String, Value>) -> Result<String, TokenError> {
        self.stamp(&mut claims)?;
        crate::metrics::METRICS.tokens_signed.inc();
        jsonwebtoken::encode(&self.header, &Value::Object(claims), &self.key)
            .map_err(|e| TokenError::Encode(e.to_string()))
    }
}

/// Intercom's `company` claim: `{"id": ..., "name": ...}` (the name when known).
fn company_claim(company: &Company) -> Value {
    let mut c = Map::new();
    c.insert("id".into(), Value::String(company.id.clone()));
    if let Some(name) = &company.name {
        c.insert("name".into(), Value::String(name.clone()));
    }
    Value::Object(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, SecretSource};
    use jsonwebtoken::{decode, DecodingKey, Validation};

    fn signer() -> TokenSigner {
        TokenSigner::new(&signer_config())
    }

    fn signer_config() -> IntercomConfig {
        IntercomConfig {
            app_id: "abc".into(),
            api_base: "https://api-iam.intercom.io".into(),
            secret: Secret::new(b"test-secret".to_vec()),
            secret_source: SecretSource::Inline,
            token_lifetime: Duration::from_secs(3600),
            claims: vec!["email".into(), "plan".into()],
            mode: crate::config::MessengerMode::Jwt,
            token_refresh_margin: Duration::from_secs(300),
        }
    }

    #[test]
    fn signs_string_user_id_and_configured_claims_only() {
        let mut id = Identity::new("42");
        id.email = Some("a@example.com".into());
        id.name = Some("Not Signed".into());
        id.attributes.insert("plan".into(), Value::String("pro".into()));
        let token = signer().token_for(&id).unwrap();
        let data = decode::<Value>(
            token.as_bytes(),
            &DecodingKey::from_secret(b"test-secret"),
            &Validation::new(Algorithm::HS256),
        )
        .unwrap();
        let c = data.claims;
        assert_eq!(c["user_id"], "42");
        assert_eq!(c["email"], "a@example.com");
        assert_eq!(c["plan"], "pro");
        assert!(c.get("name").is_none());
        assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 3600);
    }

    #[test]
    fn cache_is_per_identity() {
        let s = signer();
        let a = s.token_for(&Identity::new("a")).unwrap();
        let a2 = s.token_for(&Identity::new("a")).unwrap();
        let b = s.token_for(&Identity::new("b")).unwrap();
        assert!(Arc::ptr_eq(&a, &a2));
        assert_ne!(a, b);
    }

    #[test]
    fn a_token_is_handed_out_again_only_while_fresh() {
        let mut config = signer_config();
        // No lifetime: no time to reuse it in.
        config.token_lifetime = Duration::ZERO;
        let s = TokenSigner::new(&config);
        let a = s.token_for(&Identity::new("a")).unwrap();
        let a2 = s.token_for(&Identity::new("a")).unwrap();
        assert!(!Arc::ptr_eq(&a, &a2), "a token past its reuse time was handed out again");
    }

    #[test]
    fn identities_that_sign_differently_never_share_a_token() {
        let s = signer();
        let with = |f: &dyn Fn(&mut Identity)| {
            let mut id = Identity::new("a");
            f(&mut id);
            s.token_for(&id).unwrap()
        };
        let tokens = [
            with(&|_| {}),
            with(&|id| id.email = Some("a@example.com".into())),
            with(&|id| id.email = Some("b@example.com".into())),
            with(&|id| {
                id.attributes.insert("plan".into(), Value::String("a@example.com".into()));
            }),
            with(&|id| id.company = Some(Company { id: "c1".into(), name: None })),
            with(&|id| id.company = Some(Company { id: "c1".into(), name: Some("C".into()) })),
            with(&|id| id.user_id = "a\u{0}email\u{0}\"x\"".into()),
        ];
        for (i, a) in tokens.iter().enumerate() {
            for b in &tokens[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Fields that are not signed do not split the cache.
        assert!(Arc::ptr_eq(&with(&|_| {}), &with(&|id| id.name = Some("N".into()))));
    }
}
