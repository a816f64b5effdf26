//! `identity.sources`: who is logged in, in order.

use super::*;

/// Identity sources, tried in order; the first that knows the user wins.
#[derive(Debug, Clone, Default)]
pub struct IdentityConfig {
    /// The sources in order.
    pub sources: Vec<SourceConfig>,
}

/// One identity source.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// Headers set by an authenticating proxy in front of us.
    TrustedHeader(TrustedHeaderConfig),
    /// The application's own "who am I" endpoint.
    CurrentUserEndpoint(EndpointConfig),
}

/// Settings of the trusted-header source.
#[derive(Debug, Clone)]
pub struct TrustedHeaderConfig {
    /// Peers allowed to assert identity.
    pub trusted_cidrs: Vec<IpNet>,
    /// Header carrying the user id (lowercase).
    pub user_id: String,
    /// Header carrying the email (lowercase).
    pub email: Option<String>,
    /// Header carrying the display name (lowercase).
    pub name: Option<String>,
}

/// Settings of the current-user endpoint source.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Upstream path asked, e.g. `/api/me`.
    pub path: String,
    /// Cookies forwarded (and hashed into the cache key); empty means the whole header.
    pub cookies: Vec<String>,
    /// Give up on the endpoint after this long (the page is served without a token).
    pub timeout: Duration,
    /// How long a found identity is cached per session.
    pub cache_ttl: Duration,
    /// How long "not logged in" is cached per session.
    pub negative_cache_ttl: Duration,
    /// Maximum cached sessions.
    pub cache_capacity: u64,
    /// JSON pointer to the user id.
    pub user_id: String,
    /// JSON pointer to the email.
    pub email: Option<String>,
    /// JSON pointer to the name.
    pub name: Option<String>,
    /// Extra attributes: (name, JSON pointer).
    pub attributes: Vec<(String, String)>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileIdentity {
    #[serde(default)]
    sources: Vec<FileSource>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum FileSource {
    TrustedHeader(FileTrustedHeader),
    CurrentUserEndpoint(FileEndpoint),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTrustedHeader {
    #[serde(default)]
    trusted_cidrs: Vec<String>,
    #[serde(default)]
    headers: FileHeaderNames,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileHeaderNames {
    user_id: Option<String>,
    email: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileEndpoint {
    path: Option<String>,
    #[serde(default)]
    cookies: Vec<String>,
    timeout: Option<String>,
    cache_ttl: Option<String>,
    negative_cache_ttl: Option<String>,
    cache_capacity: Option<u64>,
    #[serde(default)]
    fields: FileFields,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileFields {
    user_id: Option<String>,
    email: Option<String>,
    name: Option<String>,
    #[serde(default)]
    attributes: std::collections::BTreeMap<String, String>,
}

pub(super) fn validate_identity(id: FileIdentity, intercom: &IntercomConfig) -> Result<IdentityConfig> {
    let mut sources = Vec::new();
    let mut known_fields: BTreeSet<String> =
        STANDARD_CLAIMS.iter().map(|s| s.to_string()).collect();
    for (n, s) in id.sources.into_iter().enumerate() {
        let base = format!("identity.sources[{n}]");
        sources.push(match s {
            FileSource::TrustedHeader(t) => {
                if t.trusted_cidrs.is_empty() {
                    return Err(ConfigError::new(
                        format!("{base}.trusted_cidrs"),
                        "list the addresses of the auth proxy allowed to set identity headers, e.g. [\"10.0.0.5/32\"]; there is no default",
                    ));
                }
                let trusted_cidrs = t
                    .trusted_cidrs
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        c.parse::<IpNet>()
                            .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
                            .map_err(|_| {
                                ConfigError::new(
                                    format!("{base}.trusted_cidrs[{i}]"),
                                    format!("{c:?} is not an IP network; write it like \"10.0.0.0/8\""),
                                )
                            })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let h = t.headers;
                SourceConfig::TrustedHeader(TrustedHeaderConfig {
                    trusted_cidrs,
                    user_id: header_name(
                        &format!("{base}.headers.user_id"),
                        h.user_id.as_deref().unwrap_or("X-Forwarded-User"),
                    )?,
                    email: Some(header_name(
                        &format!("{base}.headers.email"),
                        h.email.as_deref().unwrap_or("X-Forwarded-Email"),
                    )?),
                    name: h
                        .name
                        .as_deref()
                        .map(|v| header_name(&format!("{base}.headers.name"), v))
                        .transpose()?,
                })
            }
            FileSource::CurrentUserEndpoint(e) => {
                let path = e.path.unwrap_or_default();
                if !path.starts_with('/') {
                    return Err(ConfigError::new(
                        format!("{base}.path"),
                        "the app's current-user endpoint path is required and starts with /, e.g. /api/me",
                    ));
                }
                let timeout = duration(
                    &format!("{base}.timeout"),
                    e.timeout.as_deref(),
                    Duration::from_millis(500),
                )?;
                if timeout.is_zero() {
                    return Err(ConfigError::new(
                        format!("{base}.timeout"),
                        "must be above zero, e.g. 500ms",
                    ));
                }
                for (i, c) in e.cookies.iter().enumerate() {
                    if c.is_empty() || c.contains([';', '=', ' ', ',']) {
                        return Err(ConfigError::new(
                            format!("{base}.cookies[{i}]"),
                            format!("{c:?} is not a cookie name"),
                        ));
                    }
                }
                let f = e.fields;
                let mut attributes = Vec::new();
                for (name, ptr) in f.attributes {
                    let key = format!("{base}.fields.attributes.{name}");
                    if ["user_id", "email", "name", "iat", "exp", "intercom_user_jwt"]
                        .contains(&name.as_str())
                    {
                        return Err(ConfigError::new(
                            key,
                            "this name is reserved; map it under fields instead",
                        ));
                    }
                    known_fields.insert(name.clone());
                    attributes.push((name, json_pointer(&key, &ptr)?));
                }
                SourceConfig::CurrentUserEndpoint(EndpointConfig {
                    path,
                    cookies: e.cookies,
                    timeout,
                    cache_ttl: duration(
                        &format!("{base}.cache_ttl"),
                        e.cache_ttl.as_deref(),
                        Duration::from_secs(60),
                    )?,
                    negative_cache_ttl: duration(
                        &format!("{base}.negative_cache_ttl"),
                        e.negative_cache_ttl.as_deref(),
                        Duration::from_secs(10),
                    )?,
                    cache_capacity: e.cache_capacity.unwrap_or(100_000),
                    user_id: json_pointer(
                        &format!("{base}.fields.user_id"),
                        f.user_id.as_deref().unwrap_or("/id"),
                    )?,
                    email: Some(json_pointer(
                        &format!("{base}.fields.email"),
                        f.email.as_deref().unwrap_or("/email"),
                    )?),
                    name: Some(json_pointer(
                        &format!("{base}.fields.name"),
                        f.name.as_deref().unwrap_or("/name"),
                    )?),
                    attributes,
                })
            }
        });
    }
    if sources.is_empty() {
        return Err(ConfigError::new(
            "identity.sources",
            "at least one identity source is required (type: trusted_header or current_user_endpoint)",
        ));
    }
    for (n, c) in intercom.claims.iter().enumerate() {
        if !known_fields.contains(c) {
            return Err(ConfigError::new(
                format!("intercom.claims[{n}]"),
                format!("{c:?} is not provided by any identity source; map it under fields.attributes of a current_user_endpoint source"),
            ));
        }
    }
    Ok(IdentityConfig { sources })
}
