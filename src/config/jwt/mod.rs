//! `identity.sources` of `type: jwt_cookie` and `type: signed_header`: a JWT the app
//! (or an identity-aware proxy in front of it) signed, verified with pinned
//! algorithms against keys from a JWKS, a PEM file or a shared secret.
//!
//! Both types share one file shape ([`FileJwtSource`]); the keys that only make sense
//! for one of them (`cookie`, `preset`, `signer`, ...) are refused on the other. Where
//! the keys come from is [`keys`]; what each `preset` fills in is [`presets`].

use std::path::PathBuf;

use jsonwebtoken::Algorithm;

use super::fields::{attributes, FieldPointers, FileFieldPointers};
use super::fields::{DEFAULT_EMAIL_POINTER, DEFAULT_JWT_USER_ID_POINTER, DEFAULT_NAME_POINTER};
use super::*;
pub(crate) use keys::pem_key;
use keys::{key_source, FileKeys};
pub use keys::{KeySource, GOOGLE_IAP_JWKS_URL};
pub use presets::Preset;

mod keys;
mod presets;
#[cfg(test)]
mod tests;

/// Default `leeway`: clock skew allowed on `exp` and `nbf` (small: a token just expired
/// is a token someone may be replaying).
pub const DEFAULT_JWT_LEEWAY: Duration = Duration::from_secs(30);
/// Default `key_timeout`: how long fetching a JWKS or an AWS ALB key may delay a page.
pub const DEFAULT_KEY_TIMEOUT: Duration = Duration::from_secs(1);
/// Default `key_refresh`: keys fetched from a URL are fetched again after this long,
/// so a rotation is picked up without a restart even before an unknown `kid` appears.
pub const DEFAULT_KEY_REFRESH: Duration = Duration::from_secs(3600);
/// Default `key_refetch_interval`: at most one fetch per this interval because of an
/// unknown `kid` (anyone can send a token naming a `kid` that does not exist).
pub const DEFAULT_KEY_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Google IAP's issuer (the `google_iap` preset's default `issuer`).
pub const GOOGLE_IAP_ISSUER: &str = "https://cloud.google.com/iap";

/// Settings of the `jwt_cookie` source.
#[derive(Debug, Clone)]
pub struct JwtCookieConfig {
    /// Where the token is read from.
    pub location: TokenLocation,
    /// How it is verified.
    pub verify: JwtVerifyConfig,
    /// Which claims become the identity (JSON pointers into the claims).
    pub fields: FieldPointers,
}

/// Settings of the `signed_header` source.
#[derive(Debug, Clone)]
pub struct SignedHeaderConfig {
    /// The preset that filled the defaults.
    pub preset: Preset,
    /// The header holding the assertion (lowercase); always removed before the app.
    pub header: String,
    /// How it is verified.
    pub verify: JwtVerifyConfig,
    /// Which claims become the identity (JSON pointers into the claims).
    pub fields: FieldPointers,
}

/// Where a `jwt_cookie` token is read from.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenLocation {
    /// A cookie (Supabase-style `base64-` values and `name.0`, `name.1`, ... chunks too).
    Cookie(String),
    /// A header (lowercase); for `authorization` the `Bearer` scheme is required.
    Header(String),
}

/// How a token is verified.
#[derive(Debug, Clone)]
pub struct JwtVerifyConfig {
    /// The only algorithms accepted.
    pub algorithms: Vec<Algorithm>,
    /// Where the keys come from.
    pub keys: KeySource,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Accepted `aud` values (one must match); empty: `aud` is not checked.
    pub audience: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// Fetching keys from a URL gives up after this long.
    pub key_timeout: Duration,
    /// Keys from a URL are fetched again after this long.
    pub key_refresh: Duration,
    /// At most one fetch per this interval because of an unknown `kid`.
    pub key_refetch_interval: Duration,
    /// The token format.
    pub format: TokenFormat,
}

/// The token format.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenFormat {
    /// A standard JWS compact JWT.
    Jwt,
    /// AWS ALB's `x-amzn-oidc-data`: padded base64url, `exp` and `signer` in the header.
    AwsAlb {
        /// The load balancer's ARN the header's `signer` must equal.
        signer: String,
    },
}

/// The YAML shape of both JWT source types.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileJwtSource {
    cookie: Option<String>,
    header: Option<String>,
    preset: Option<String>,
    #[serde(default)]
    algorithms: Vec<String>,
    jwks_url: Option<String>,
    jwks_file: Option<PathBuf>,
    public_key_file: Option<PathBuf>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    key_url: Option<String>,
    signer: Option<String>,
    issuer: Option<String>,
    audience: Option<OneOrMany>,
    leeway: Option<String>,
    key_timeout: Option<String>,
    key_refresh: Option<String>,
    key_refetch_interval: Option<String>,
    #[serde(default)]
    fields: FileFieldPointers,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Validates a `jwt_cookie` source at `base` (`identity.sources[n]`).
pub(super) fn validate_jwt_cookie(
    base: &str,
    f: FileJwtSource,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<JwtCookieConfig> {
    for (key, set) in [
        ("preset", f.preset.is_some()),
        ("signer", f.signer.is_some()),
        ("key_url", f.key_url.is_some()),
    ] {
        if set {
            return Err(ConfigError::new(
                format!("{base}.{key}"),
                "only a signed_header source has this key",
            ));
        }
    }
    let location = match (&f.cookie, &f.header) {
        (Some(c), None) => TokenLocation::Cookie(cookie_name(&format!("{base}.cookie"), c)?),
        (None, Some(h)) => TokenLocation::Header(header_name(&format!("{base}.header"), h)?),
        _ => {
            return Err(ConfigError::new(
                format!("{base}.cookie"),
                "set exactly one of cookie (the session cookie holding the JWT) and header (e.g. Authorization for bearer tokens)",
            ))
        }
    };
    if f.algorithms.is_empty() {
        return Err(ConfigError::new(
            format!("{base}.algorithms"),
            "pin the algorithms the app signs with, e.g. [RS256] or [HS256]; there is no default",
        ));
    }
    let verify = verify_config(base, &f, Vec::new(), None, TokenFormat::Jwt, env)?;
    let fields = claim_fields(base, f.fields)?;
    Ok(JwtCookieConfig { location, verify, fields })
}

/// Validates a `signed_header` source at `base` (`identity.sources[n]`).
pub(super) fn validate_signed_header(
    base: &str,
    f: FileJwtSource,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SignedHeaderConfig> {
    if f.cookie.is_some() {
        return Err(ConfigError::new(
            format!("{base}.cookie"),
            "a signed_header source reads a header; use type: jwt_cookie for a cookie",
        ));
    }
    let preset = match f.preset.as_deref() {
        None => Preset::None,
        Some(p) => Preset::parse(p).ok_or_else(|| {
            ConfigError::new(
                format!("{base}.preset"),
                format!("{p:?} is not a preset; use cloudflare_access, pomerium, google_iap, aws_alb, oauth2_proxy or none"),
            )
        })?,
    };
    let header = match (f.header.as_deref(), preset.header()) {
        (Some(h), _) => header_name(&format!("{base}.header"), h)?,
        (None, Some(h)) => h.to_string(),
        (None, None) => {
            return Err(ConfigError::new(
                format!("{base}.header"),
                "name the header the proxy in front signs into (or pick a preset)",
            ))
        }
    };
    if preset.needs_audience() && f.audience.is_none() {
        return Err(ConfigError::new(
            format!("{base}.audience"),
            format!("the {} preset needs the audience this app's tokens carry (otherwise another app's token behind the same proxy would do)", preset.name()),
        ));
    }
    let format = if preset == Preset::AwsAlb {
        let signer = f.signer.clone().filter(|s| s.starts_with("arn:")).ok_or_else(|| {
            ConfigError::new(
                format!("{base}.signer"),
                "the aws_alb preset pins the load balancer: set signer to its ARN, e.g. arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/my-alb/50dc6c495c0c9188",
            )
        })?;
        TokenFormat::AwsAlb { signer }
    } else {
        if f.signer.is_some() || f.key_url.is_some() {
            let key = if f.signer.is_some() { "signer" } else { "key_url" };
            return Err(ConfigError::new(
                format!("{base}.{key}"),
                "only the aws_alb preset has this key",
            ));
        }
        TokenFormat::Jwt
    };
    let default_issuer = (preset == Preset::GoogleIap).then_some(GOOGLE_IAP_ISSUER);
    let verify = verify_config(base, &f, preset.algorithms(), default_issuer, format, env)?;
    let fields = claim_fields(base, f.fields)?;
    Ok(SignedHeaderConfig { preset, header, verify, fields })
}

fn verify_config(
    base: &str,
    f: &FileJwtSource,
    default_algorithms: Vec<Algorithm>,
    default_issuer: Option<&str>,
    format: TokenFormat,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<JwtVerifyConfig> {
    let algorithms = if f.algorithms.is_empty() {
        default_algorithms
    } else {
        f.algorithms
            .iter()
            .enumerate()
            .map(|(i, a)| {
                a.parse::<Algorithm>().map_err(|_| {
                    ConfigError::new(
                        format!("{base}.algorithms[{i}]"),
                        format!("{a:?} is not an algorithm; use HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA"),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?
    };
    if algorithms.is_empty() {
        return Err(ConfigError::new(
            format!("{base}.algorithms"),
            "pin at least one algorithm, e.g. [RS256]",
        ));
    }
    let signer = match &format {
        TokenFormat::AwsAlb { signer } => Some(signer.as_str()),
        TokenFormat::Jwt => None,
    };
    let keys = key_source(base, f.keys(), &algorithms, signer, env)?;
    let audience = match &f.audience {
        None => Vec::new(),
        Some(OneOrMany::One(a)) => vec![a.clone()],
        Some(OneOrMany::Many(v)) => v.clone(),
    };
    if audience.iter().any(|a| a.is_empty()) {
        return Err(ConfigError::new(
            format!("{base}.audience"),
            "an audience is a non-empty string",
        ));
    }
    Ok(JwtVerifyConfig {
        algorithms,
        keys,
        issuer: f.issuer.clone().or(default_issuer.map(str::to_string)),
        audience,
        leeway: duration(&format!("{base}.leeway"), f.leeway.as_deref(), DEFAULT_JWT_LEEWAY)?,
        key_timeout: positive_duration(
            &format!("{base}.key_timeout"),
            f.key_timeout.as_deref(),
            DEFAULT_KEY_TIMEOUT,
        )?,
        key_refresh: positive_duration(
            &format!("{base}.key_refresh"),
            f.key_refresh.as_deref(),
            DEFAULT_KEY_REFRESH,
        )?,
        key_refetch_interval: duration(
            &format!("{base}.key_refetch_interval"),
            f.key_refetch_interval.as_deref(),
            DEFAULT_KEY_REFETCH_INTERVAL,
        )?,
        format,
    })
}

impl FileJwtSource {
    /// The key-source half, for [`keys`].
    fn keys(&self) -> FileKeys<'_> {
        FileKeys {
            jwks_url: self.jwks_url.as_deref(),
            jwks_file: self.jwks_file.as_ref(),
            public_key_file: self.public_key_file.as_ref(),
            secret_env: self.secret_env.as_deref(),
            secret_file: self.secret_file.as_ref(),
            key_url: self.key_url.as_deref(),
            preset: self.preset.as_deref(),
        }
    }
}

fn cookie_name(key: &str, c: &str) -> Result<String> {
    if c.is_empty() || c.contains([';', '=', ' ', ',']) {
        return Err(ConfigError::new(key, format!("{c:?} is not a cookie name")));
    }
    Ok(c.to_string())
}

fn claim_fields(base: &str, f: FileFieldPointers) -> Result<FieldPointers> {
    let attributes = attributes(base, f.attributes, json_pointer)?;
    Ok(FieldPointers {
        user_id: json_pointer(
            &format!("{base}.fields.user_id"),
            f.user_id.as_deref().unwrap_or(DEFAULT_JWT_USER_ID_POINTER),
        )?,
        email: Some(json_pointer(
            &format!("{base}.fields.email"),
            f.email.as_deref().unwrap_or(DEFAULT_EMAIL_POINTER),
        )?),
        name: Some(json_pointer(
            &format!("{base}.fields.name"),
            f.name.as_deref().unwrap_or(DEFAULT_NAME_POINTER),
        )?),
        attributes,
    })
}

impl JwtVerifyConfig {
    /// One line for `check`: algorithms, keys, issuer, audience (never a secret).
    pub fn summary(&self) -> String {
        let algs: Vec<String> = self.algorithms.iter().map(|a| format!("{a:?}")).collect();
        format!(
            "{}, keys: {}, issuer {}, audience {}, leeway {}",
            algs.join("|"),
            self.keys.describe(),
            self.issuer.as_deref().unwrap_or("any"),
            if self.audience.is_empty() { "any".to_string() } else { self.audience.join(", ") },
            humantime::format_duration(self.leeway)
        )
    }
}

impl JwtCookieConfig {
    /// One line for `check`.
    pub fn summary(&self) -> String {
        let from = match &self.location {
            TokenLocation::Cookie(c) => format!("cookie {c}"),
            TokenLocation::Header(h) => format!("header {h}"),
        };
        format!(
            "jwt_cookie from {from}, {} (user id {})",
            self.verify.summary(),
            self.fields.user_id
        )
    }
}

impl SignedHeaderConfig {
    /// One line for `check`.
    pub fn summary(&self) -> String {
        let signer = match &self.verify.format {
            TokenFormat::AwsAlb { signer } => format!(", signer {signer}"),
            TokenFormat::Jwt => String::new(),
        };
        format!(
            "signed_header {} ({}), {}{signer} (user id {}; header removed before the app)",
            self.header,
            self.preset.name(),
            self.verify.summary(),
            self.fields.user_id
        )
    }
}
