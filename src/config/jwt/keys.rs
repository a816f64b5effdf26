//! The key source of a JWT source: exactly one of `jwks_url`, `jwks_file`,
//! `public_key_file`, `secret_env`, `secret_file` (or, for AWS ALB, `key_url`), checked
//! against the pinned algorithms so a public key can never be used as an HMAC secret.
//! Files are read and parsed here, so `check` catches a bad key before anything runs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use super::super::{ConfigError, Result, Secret};

/// Google IAP's JWKS (the `google_iap` preset's default `jwks_url`).
pub const GOOGLE_IAP_JWKS_URL: &str = "https://www.gstatic.com/iap/verify/public_key-jwk";

/// Where verification keys come from.
#[derive(Clone)]
pub enum KeySource {
    /// A JWKS fetched from this URL (cached, refreshed).
    JwksUrl(String),
    /// A JWKS read from a file at start.
    Jwks(Arc<JwkSet>),
    /// One public key (PEM) read from a file at start.
    PublicKeyPem(Arc<Vec<u8>>),
    /// An HMAC secret (from `secret_env` or `secret_file`).
    Secret(Secret),
    /// AWS ALB: the PEM key of each `kid` is fetched from `{base}/{kid}`.
    AlbKeyUrl(String),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl KeySource {
    /// A summary for `check` and logs (never a key's or secret's value).
    pub fn describe(&self) -> String {
        match self {
            KeySource::JwksUrl(u) => format!("JWKS {u}"),
            KeySource::Jwks(set) => format!("JWKS file ({} keys)", set.keys.len()),
            KeySource::PublicKeyPem(_) => "public key file".into(),
            KeySource::Secret(s) => format!("shared secret ({} bytes)", s.expose().len()),
            KeySource::AlbKeyUrl(u) => format!("ALB keys {u}/<kid>"),
        }
    }
}

/// The key-source keys of a JWT source, as the file has them.
pub(super) struct FileKeys<'a> {
    pub jwks_url: Option<&'a str>,
    pub jwks_file: Option<&'a PathBuf>,
    pub public_key_file: Option<&'a PathBuf>,
    pub secret_env: Option<&'a str>,
    pub secret_file: Option<&'a PathBuf>,
    pub key_url: Option<&'a str>,
    pub preset: Option<&'a str>,
}

impl FileKeys<'_> {
    /// The names of the key-source keys that are set, in the file's documented order.
    fn set_keys(&self) -> Vec<&'static str> {
        [
            ("jwks_url", self.jwks_url.is_some()),
            ("jwks_file", self.jwks_file.is_some()),
            ("public_key_file", self.public_key_file.is_some()),
            ("secret_env", self.secret_env.is_some()),
            ("secret_file", self.secret_file.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
    }
}

/// The AWS ALB key URL base of a region: keys are at `{base}/{kid}`.
pub fn alb_key_url(region: &str) -> String {
    format!("https://public-keys.auth.elb.{region}.amazonaws.com")
}

/// The region of an ALB ARN `arn:aws:elasticloadbalancing:REGION:ACCOUNT:loadbalancer/...`.
fn arn_region(arn: &str) -> Option<&str> {
    arn.split(':')
        .nth(3)
        .filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// The key source of the JWT source at `base`, checked against its pinned `algorithms`;
/// `alb_signer` is the load balancer's ARN for the aws_alb preset.
pub(super) fn key_source(
    base: &str,
    k: FileKeys<'_>,
    algorithms: &[Algorithm],
    alb_signer: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<KeySource> {
    let family = single_family(algorithms);
    if let Some(signer) = alb_signer {
        if let Some(key) = k.set_keys().first() {
            return Err(ConfigError::new(
                format!("{base}.{key}"),
                "AWS ALB keys are fetched per kid from key_url; remove this key",
            ));
        }
        if algorithms != [Algorithm::ES256] {
            return Err(ConfigError::new(
                format!("{base}.algorithms"),
                "AWS ALB signs with ES256 only; remove algorithms",
            ));
        }
        let url = match k.key_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => alb_key_url(arn_region(signer).ok_or_else(|| {
                ConfigError::new(format!("{base}.signer"), "no region in this ARN; write it like arn:aws:elasticloadbalancing:REGION:ACCOUNT:loadbalancer/app/NAME/ID")
            })?),
        };
        http_url(&format!("{base}.key_url"), &url)?;
        return Ok(KeySource::AlbKeyUrl(url));
    }
    let set = k.set_keys();
    let google_default = k.preset == Some("google_iap") && set.is_empty();
    if set.len() != 1 && !google_default {
        return Err(ConfigError::new(
            format!("{base}.{}", set.get(1).copied().unwrap_or("jwks_url")),
            "set exactly one of jwks_url, jwks_file, public_key_file (PEM), secret_env and secret_file",
        ));
    }
    let hmac = algorithms.iter().any(|a| a.family() == AlgorithmFamily::Hmac);
    let shared = k.secret_env.is_some() || k.secret_file.is_some();
    if hmac != shared || (hmac && family.is_none()) {
        return Err(ConfigError::new(
            format!("{base}.algorithms"),
            "HS256/384/512 verify with a shared secret (secret_env or secret_file) and nothing else; RS*, PS*, ES* and EdDSA with public keys (jwks_url, jwks_file, public_key_file). Pin only algorithms of the key you configure",
        ));
    }
    if google_default {
        return Ok(KeySource::JwksUrl(GOOGLE_IAP_JWKS_URL.to_string()));
    }
    if let Some(url) = k.jwks_url {
        http_url(&format!("{base}.jwks_url"), url)?;
        return Ok(KeySource::JwksUrl(url.to_string()));
    }
    if let Some(path) = k.jwks_file {
        let key = format!("{base}.jwks_file");
        let text = read(&key, path)?;
        let jwks: JwkSet = serde_json::from_slice(&text).map_err(|e| {
            ConfigError::new(&key, format!("not a JWKS ({{\"keys\": [...]}}): {e}"))
        })?;
        let usable = jwks.keys.iter().filter(|j| DecodingKey::from_jwk(j).is_ok()).count();
        if usable == 0 {
            return Err(ConfigError::new(
                key,
                "the JWKS holds no key this proxy can use (RSA, EC P-256/P-384 or Ed25519)",
            ));
        }
        return Ok(KeySource::Jwks(Arc::new(jwks)));
    }
    if let Some(path) = k.public_key_file {
        let key = format!("{base}.public_key_file");
        let pem = read(&key, path)?;
        let family = family.ok_or_else(|| {
            ConfigError::new(format!("{base}.algorithms"), "one public key file serves one key type: pin algorithms of one family (e.g. RS256 and PS256, or ES256)")
        })?;
        pem_key(&pem, family).map_err(|e| {
            ConfigError::new(&key, format!("not a PEM public key for {family:?} ({e})"))
        })?;
        return Ok(KeySource::PublicKeyPem(Arc::new(pem)));
    }
    let (key, secret) = match (k.secret_env, k.secret_file) {
        (Some(name), _) => (
            format!("{base}.secret_env"),
            env(name).filter(|v| !v.is_empty()).map(|v| v.into_bytes()).ok_or_else(|| {
                ConfigError::new(format!("{base}.secret_env"), "the environment variable it names is not set or is empty; set secret_env to the variable's name (not the secret) and export the app's JWT secret in it")
            })?,
        ),
        (None, Some(path)) => {
            let key = format!("{base}.secret_file");
            let mut bytes = read(&key, path)?;
            while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                bytes.pop();
            }
            (key, bytes)
        }
        (None, None) => unreachable!("exactly one key source is set"),
    };
    if secret.is_empty() {
        return Err(ConfigError::new(key, "the secret is empty"));
    }
    Ok(KeySource::Secret(Secret::new(secret)))
}

/// The single family of `algorithms`, or `None` when they mix families.
fn single_family(algorithms: &[Algorithm]) -> Option<AlgorithmFamily> {
    let first = algorithms.first()?.family();
    algorithms.iter().all(|a| a.family() == first).then_some(first)
}

/// Parses a PEM public key of `family` (PKCS#1 or SPKI for RSA, SPKI for EC and Ed25519).
pub(crate) fn pem_key(
    pem: &[u8],
    family: AlgorithmFamily,
) -> std::result::Result<DecodingKey, jsonwebtoken::errors::Error> {
    match family {
        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
        AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem),
        AlgorithmFamily::Hmac => Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into()),
    }
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        ConfigError::new(key, format!("cannot read {} ({})", path.display(), e.kind()))
    })
}

/// An absolute http(s) URL with a host.
fn http_url(key: &str, url: &str) -> Result<()> {
    let ok = url.parse::<http::Uri>().ok().filter(|u| {
        matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some_and(|h| !h.is_empty())
    });
    if ok.is_none() {
        return Err(ConfigError::new(key, format!("{url:?} is not an http(s) URL; write it like https://auth.example.com/.well-known/jwks.json")));
    }
    Ok(())
}
