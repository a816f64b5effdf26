//! Verification of a standard JWT (JWS compact form) with the source's pinned
//! algorithms: the header's `alg` must be pinned (so `none` and any algorithm the app
//! does not use are refused before a key is looked at), the key must be of that
//! algorithm's family (so an RSA public key is never used as an HMAC secret), then
//! jsonwebtoken checks the signature, `exp` and `nbf` with the leeway, `iss` and `aud`.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};

use super::keys::KeyStore;
use super::JwtError;
use crate::config::JwtVerifyConfig;

/// The jsonwebtoken validations of a source, one per algorithm family pinned:
/// jsonwebtoken refuses a validation listing algorithms of another family than the key.
pub fn validations(config: &JwtVerifyConfig) -> Vec<Validation> {
    let mut out: Vec<Validation> = Vec::new();
    for alg in &config.algorithms {
        match out.iter_mut().find(|v| v.algorithms[0].family() == alg.family()) {
            Some(v) => v.algorithms.push(*alg),
            None => out.push(validation(config, *alg)),
        }
    }
    out
}

fn validation(config: &JwtVerifyConfig, alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = config.leeway.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    // A token that never expires is a session nobody can end.
    v.set_required_spec_claims(&["exp"]);
    if let Some(iss) = &config.issuer {
        v.set_issuer(&[iss]);
        v.required_spec_claims.insert("iss".into());
    }
    if config.audience.is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(&config.audience);
        v.required_spec_claims.insert("aud".into());
    }
    v
}

/// The verified claims of `token`.
pub async fn verify(
    token: &str,
    validations: &[Validation],
    keys: &KeyStore,
) -> Result<serde_json::Value, JwtError> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
        // serde could not name the algorithm: `none`, or something we do not know.
        ErrorKind::Json(_) => JwtError::Algorithm,
        _ => JwtError::Malformed,
    })?;
    let validation = validations
        .iter()
        .find(|v| v.algorithms.contains(&header.alg))
        .ok_or(JwtError::Algorithm)?;
    let key = keys.key(header.kid.as_deref(), header.alg).await?;
    if key.family() != header.alg.family() {
        return Err(JwtError::KeyMismatch);
    }
    let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, validation)
        .map_err(|e| refusal(e.kind()))?;
    Ok(data.claims)
}

/// What a jsonwebtoken error means for us.
pub fn refusal(kind: &ErrorKind) -> JwtError {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_) => JwtError::Signature,
        ErrorKind::ExpiredSignature => JwtError::Expired,
        ErrorKind::ImmatureSignature => JwtError::NotYetValid,
        ErrorKind::InvalidIssuer => JwtError::Issuer,
        ErrorKind::InvalidAudience => JwtError::Audience,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => JwtError::Algorithm,
        ErrorKind::MissingRequiredClaim(c) => JwtError::MissingClaim(c.clone()),
        _ => JwtError::Malformed,
    }
}
