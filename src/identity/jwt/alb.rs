//! AWS ALB's `x-amzn-oidc-data`: three base64url parts like a JWT, but padded, with
//! `exp`, `kid`, `signer` (the load balancer's ARN) and `iss` in the header, signed
//! ES256 over the parts exactly as sent. jsonwebtoken's decoder rejects the padding,
//! so the parts are checked here and only the signature check is jsonwebtoken's.
//!
//! Pinning `signer` matters: every ALB in the region signs with the same regional keys,
//! so without it a token from someone else's load balancer would verify.

use jsonwebtoken::Algorithm;

use super::keys::KeyStore;
use super::JwtError;
use crate::config::JwtVerifyConfig;

#[derive(serde::Deserialize)]
struct AlbHeader {
    alg: String,
    kid: Option<String>,
    signer: Option<String>,
    iss: Option<String>,
    exp: Option<serde_json::Number>,
}

/// The verified claims of an ALB token whose `signer` must be `signer`.
pub async fn verify(
    token: &str,
    signer: &str,
    config: &JwtVerifyConfig,
    keys: &KeyStore,
) -> Result<serde_json::Value, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: AlbHeader = super::base64url(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwtError::Malformed)?;
    if header.alg != "ES256" {
        return Err(JwtError::Algorithm);
    }
    if header.signer.as_deref() != Some(signer) {
        return Err(JwtError::Signer);
    }
    let exp = header
        .exp
        .as_ref()
        .and_then(|n| n.as_u64())
        .ok_or_else(|| JwtError::MissingClaim("exp".into()))?;
    if exp.saturating_add(config.leeway.as_secs()) < now() {
        return Err(JwtError::Expired);
    }
    let key = keys.key(header.kid.as_deref(), Algorithm::ES256).await?;
    let message = &token[..h.len() + 1 + p.len()];
    let ok = jsonwebtoken::crypto::verify(
        sig.trim_end_matches('='),
        message.as_bytes(),
        &key,
        Algorithm::ES256,
    )
    .map_err(|e| super::verify::refusal(e.kind()))?;
    if !ok {
        return Err(JwtError::Signature);
    }
    let claims: serde_json::Value = super::base64url(p)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwtError::Malformed)?;
    if let Some(want) = &config.issuer {
        let iss = header.iss.as_deref().or_else(|| claims.get("iss").and_then(|v| v.as_str()));
        if iss != Some(want.as_str()) {
            return Err(JwtError::Issuer);
        }
    }
    Ok(claims)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
