//! Verification of JWTs for the `jwt_cookie` and `signed_header` sources: pinned
//! algorithms, keys from a JWKS (file or URL, cached and refreshed), a PEM file or a
//! shared secret, standard claims checked with a small leeway, and AWS ALB's own
//! format. A token that fails any check is no identity; keys that cannot be fetched
//! are a source failure (page served without a token, rate-limited warning).

mod alb;
mod cache;
mod claims;
mod fetch;
mod keys;
mod reach;
mod verify;

use std::fmt;
use std::sync::Arc;

use super::{Lookup, SourceError};
use crate::config::{FieldPointers, JwtVerifyConfig, TokenFormat};

pub use fetch::FetchError;

/// base64url that accepts padding and its absence (AWS ALB pads, Supabase does not).
const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// The token of an `Authorization` value: the `Bearer` scheme (any case) is required.
pub(super) fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let token = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Decodes base64url, padded or not.
pub(super) fn base64url(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    B64.decode(text).ok()
}
pub use keys::KeyError;
pub use reach::key_url_warnings;

/// A token taken from a request. `Debug` never shows it.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token([redacted, {} bytes])", self.0.len())
    }
}

/// Why a token is not accepted (never includes the token or its claims).
#[derive(Debug, Clone, thiserror::Error)]
pub enum JwtError {
    /// Not a JWT (or not ALB's format).
    #[error("malformed token")]
    Malformed,
    /// `alg` is `none`, unknown, or not pinned for this source.
    #[error("algorithm not pinned for this source")]
    Algorithm,
    /// The key found is of another family than the token's algorithm.
    #[error("key type does not fit the token's algorithm")]
    KeyMismatch,
    /// No key (unknown `kid`), or keys unavailable.
    #[error("{0}")]
    Key(#[from] KeyError),
    /// The signature does not verify (a tampered or foreign token).
    #[error("bad signature")]
    Signature,
    /// `exp` is past (beyond the leeway).
    #[error("expired")]
    Expired,
    /// `nbf` is ahead (beyond the leeway).
    #[error("not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` holds none of the configured audiences.
    #[error("wrong audience")]
    Audience,
    /// AWS ALB: `signer` is not the pinned load balancer.
    #[error("signed by another load balancer")]
    Signer,
    /// A required claim is missing.
    #[error("claim {0} missing")]
    MissingClaim(String),
}

impl JwtError {
    /// Whether the failure is ours (keys unavailable) rather than the token's.
    fn is_source_failure(&self) -> bool {
        matches!(self, JwtError::Key(KeyError::Fetch(_) | KeyError::Empty | KeyError::Unavailable))
    }
}

/// Verifies tokens of one source and maps their claims to an identity.
pub struct JwtVerifier {
    /// The source type, for warnings (`jwt_cookie`, `signed_header`).
    kind: &'static str,
    config: JwtVerifyConfig,
    fields: FieldPointers,
    validations: Vec<jsonwebtoken::Validation>,
    keys: keys::KeyStore,
    verified: cache::VerifiedCache,
}

impl JwtVerifier {
    /// A verifier for `config`, mapping claims with `fields`.
    pub fn new(
        kind: &'static str,
        config: JwtVerifyConfig,
        fields: FieldPointers,
    ) -> Arc<JwtVerifier> {
        Arc::new(JwtVerifier {
            kind,
            validations: verify::validations(&config),
            keys: keys::KeyStore::new(&config),
            verified: cache::VerifiedCache::new(config.leeway),
            config,
            fields,
        })
    }

    /// The verified claims of `token`.
    pub async fn claims(&self, token: &Token) -> Result<serde_json::Value, JwtError> {
        match &self.config.format {
            TokenFormat::Jwt => verify::verify(&token.0, &self.validations, &self.keys).await,
            TokenFormat::AwsAlb { signer } => {
                alb::verify(&token.0, signer, &self.config, &self.keys).await
            }
        }
    }

    /// Who `token` says is logged in: found, nobody (a refused token), or failed (keys
    /// unavailable). Refusals are logged, rate-limited, by reason only. `true` when the
    /// token had to be verified (not in the cache of verified tokens).
    pub async fn lookup(&self, token: &Token) -> (Lookup, bool) {
        if let Some(identity) = self.verified.get(&token.0) {
            return (Lookup::Found(identity), false);
        }
        (self.verify(token).await, true)
    }

    async fn verify(&self, token: &Token) -> Lookup {
        match self.claims(token).await {
            Ok(claims) => match claims::identity(&claims, &self.fields) {
                Some(identity) => {
                    let identity = Arc::new(identity);
                    self.verified.insert(
                        &token.0,
                        identity.clone(),
                        claims.get("exp").and_then(|e| e.as_u64()),
                    );
                    Lookup::Found(identity)
                }
                None => {
                    crate::warn_limited!(
                        "{} token has no usable user id at {}; no identity",
                        self.kind,
                        self.fields.user_id
                    );
                    Lookup::Anonymous
                }
            },
            Err(why) if why.is_source_failure() => {
                Lookup::Failed(SourceError::Jwt { source_type: self.kind, why })
            }
            Err(why) => {
                crate::warn_limited!(
                    "{} token refused ({why}); no identity for this request",
                    self.kind
                );
                Lookup::Anonymous
            }
        }
    }
}
