//! The two shapes every identity source that looks a user up shares: where in what it
//! reads the user's fields are ([`FieldPointers`]), and how long, and how many, lookups
//! are cached ([`CacheSettings`]), with their defaults. Their keys stay where they are
//! in the file (`fields:` of a source, `cache_ttl` and the others inline in it), so the
//! YAML reads as before and an unknown key is still refused at its line and column.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{duration, ConfigError, Result};
use std::time::Duration;

/// Default JSON pointer of the user id (a current_user_endpoint's answer).
pub const DEFAULT_USER_ID_POINTER: &str = "/id";
/// Default claim pointer of the user id in a JWT.
pub const DEFAULT_JWT_USER_ID_POINTER: &str = "/sub";
/// Default JSON pointer of the email (an endpoint's answer, a JWT's claims).
pub const DEFAULT_EMAIL_POINTER: &str = "/email";
/// Default JSON pointer of the display name (an endpoint's answer, a JWT's claims).
pub const DEFAULT_NAME_POINTER: &str = "/name";
/// Names `fields.attributes` may not use: fields of their own, or set by the proxy.
pub const RESERVED_ATTRIBUTES: &[&str] = &[
    "user_id",
    "email",
    "name",
    "iat",
    "exp",
    "intercom_user_jwt",
    "company",
    "company_id",
    "company_name",
    "user_hash",
];

/// Where a source finds the user's fields in what it reads: JSON pointers into an
/// endpoint's answer, a decoded session or a JWT's claims, or, for an endpoint with
/// `format: html`, CSS selectors (`selector@attribute` for an attribute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPointers {
    /// The user id (a string or an integer).
    pub user_id: String,
    /// The email.
    pub email: Option<String>,
    /// The display name.
    pub name: Option<String>,
    /// Extra attributes: (name, pointer).
    pub attributes: Vec<(String, String)>,
}

impl FieldPointers {
    /// The user id at `user_id`, the email and name at their default pointers, and no
    /// attributes. Nothing is checked.
    pub fn new(user_id: impl Into<String>) -> FieldPointers {
        FieldPointers {
            user_id: user_id.into(),
            email: Some(DEFAULT_EMAIL_POINTER.to_string()),
            name: Some(DEFAULT_NAME_POINTER.to_string()),
            attributes: Vec::new(),
        }
    }
}

/// How long, and how many, lookups of a source are cached per session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// How long a found identity is cached (`cache_ttl`).
    pub ttl: Duration,
    /// How long "not logged in" is cached (`negative_cache_ttl`).
    pub negative_ttl: Duration,
    /// Maximum cached sessions (`cache_capacity`).
    pub capacity: u64,
}

impl CacheSettings {
    /// A current_user_endpoint source's defaults. "Not logged in" is short, so a fresh
    /// login is seen soon even where the proxy does not notice it.
    pub const ENDPOINT: CacheSettings = CacheSettings {
        ttl: Duration::from_secs(60),
        negative_ttl: Duration::from_secs(10),
        capacity: 100_000,
    };
    /// A redis_session source's defaults: shorter than the endpoint's, since a lookup is
    /// cheap and a session destroyed elsewhere (another tab, an admin) should end the
    /// tokens soon; "not logged in" shorter still, because an app that writes the user
    /// into an existing session on login sets no new cookie the proxy sees.
    pub const REDIS_SESSION: CacheSettings = CacheSettings {
        ttl: Duration::from_secs(10),
        negative_ttl: Duration::from_secs(2),
        capacity: 100_000,
    };
}

/// The cache keys of a source's mapping, as the file has them.
pub(super) struct FileCache<'a> {
    pub cache_ttl: Option<&'a str>,
    pub negative_cache_ttl: Option<&'a str>,
    pub cache_capacity: Option<u64>,
}

impl FileCache<'_> {
    /// The validated settings of the source at `base`, `default` where a key is unset.
    pub(super) fn validate(&self, base: &str, default: CacheSettings) -> Result<CacheSettings> {
        Ok(CacheSettings {
            ttl: duration(&format!("{base}.cache_ttl"), self.cache_ttl, default.ttl)?,
            negative_ttl: duration(
                &format!("{base}.negative_cache_ttl"),
                self.negative_cache_ttl,
                default.negative_ttl,
            )?,
            capacity: self.cache_capacity.unwrap_or(default.capacity),
        })
    }
}

/// `fields:` of a redis_session or JWT source (an endpoint's also has company keys).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileFieldPointers {
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// `fields.attributes` of the source at `base`, each place checked by `place` (a JSON
/// pointer or a CSS selector); a name of a field of its own is refused.
pub(super) fn attributes(
    base: &str,
    attributes: BTreeMap<String, String>,
    place: impl Fn(&str, &str) -> Result<String>,
) -> Result<Vec<(String, String)>> {
    attributes
        .into_iter()
        .map(|(name, spec)| {
            let key = format!("{base}.fields.attributes.{name}");
            if RESERVED_ATTRIBUTES.contains(&name.as_str()) {
                return Err(ConfigError::new(
                    key,
                    "this name is reserved; map it under fields instead",
                ));
            }
            let spec = place(&key, &spec)?;
            Ok((name, spec))
        })
        .collect()
}
