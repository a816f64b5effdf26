//! `identity.sources`: who is logged in, in order. Each type of source has its own
//! validator: trusted_header and current_user_endpoint here, the others in their
//! modules.

use super::fields::{attributes, CacheSettings, FieldPointers, FileCache};
use super::fields::{DEFAULT_EMAIL_POINTER, DEFAULT_NAME_POINTER, DEFAULT_USER_ID_POINTER};
use super::jwt::{
    validate_jwt_cookie, validate_signed_header, FileJwtSource, JwtCookieConfig, SignedHeaderConfig,
};
use super::redis_session::{validate_redis_session, FileRedisSession};
use super::shared_cache::{validate_shared_cache, FileSharedCache};
use super::*;

/// Identity sources, tried in order; the first that knows the user wins.
#[derive(Debug, Clone, Default)]
pub struct IdentityConfig {
    /// The sources in order.
    pub sources: Vec<SourceConfig>,
    /// Where instances share what current-user endpoints answered, if anywhere.
    pub shared_cache: Option<super::SharedCacheConfig>,
}

/// One identity source.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// Headers set by an authenticating proxy in front of us.
    TrustedHeader(TrustedHeaderConfig),
    /// The application's own "who am I" endpoint.
    CurrentUserEndpoint(EndpointConfig),
    /// The app's session, read from Redis.
    RedisSession(super::RedisSessionConfig),
    /// A JWT the app signed, in a cookie or a header.
    JwtCookie(JwtCookieConfig),
    /// A JWT an identity-aware proxy in front signed into a header.
    SignedHeader(SignedHeaderConfig),
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
    /// Header carrying the company id (lowercase): the token's `company.id`.
    pub company_id: Option<String>,
    /// Header carrying the company name (lowercase): the token's `company.name`.
    pub company_name: Option<String>,
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
    /// How long, and how many, answers are cached per session.
    pub cache: CacheSettings,
    /// Where the user's fields are in the answer.
    pub fields: FieldPointers,
    /// What the endpoint answers: JSON (fields are JSON pointers) or an HTML page
    /// (fields are CSS selectors, `selector@attribute` for an attribute).
    pub format: EndpointFormat,
    /// Where the company id is (the token's `company.id`).
    pub company_id: Option<String>,
    /// Where the company name is (the token's `company.name`, with a company id only).
    pub company_name: Option<String>,
}

/// Default of a trusted_header source's `headers.user_id`.
pub const DEFAULT_USER_ID_HEADER: &str = "X-Forwarded-User";
/// Default of a trusted_header source's `headers.email`.
pub const DEFAULT_EMAIL_HEADER: &str = "X-Forwarded-Email";
/// Default of a current_user_endpoint source's `timeout` (it delays the page it serves).
pub const DEFAULT_ENDPOINT_TIMEOUT: Duration = Duration::from_millis(500);

impl TrustedHeaderConfig {
    /// Trusts `trusted_cidrs` to send the user id in `user_id_header` (stored lowercase),
    /// and reads no email or name header: unlike the file, which defaults the email
    /// header, only the named header is trusted. The header name is not checked.
    pub fn new(trusted_cidrs: Vec<IpNet>, user_id_header: &str) -> TrustedHeaderConfig {
        TrustedHeaderConfig {
            trusted_cidrs,
            user_id: user_id_header.to_ascii_lowercase(),
            email: None,
            name: None,
            company_id: None,
            company_name: None,
        }
    }
}

impl EndpointConfig {
    /// Asks the upstream `path` (e.g. `/api/me`) with the whole `Cookie` header and reads
    /// the user id at the JSON pointer `user_id_pointer`; the email and name at their
    /// default pointers, the default timeout, cache TTLs and capacity, and no extra
    /// attributes, as a file naming only `path` and `fields.user_id` would give. Neither
    /// argument is checked.
    pub fn new(path: impl Into<String>, user_id_pointer: impl Into<String>) -> EndpointConfig {
        EndpointConfig {
            path: path.into(),
            cookies: Vec::new(),
            timeout: DEFAULT_ENDPOINT_TIMEOUT,
            cache: CacheSettings::ENDPOINT,
            fields: FieldPointers::new(user_id_pointer),
            format: DEFAULT_ENDPOINT_FORMAT,
            company_id: None,
            company_name: None,
        }
    }
}

impl EndpointConfig {
    /// Reads the user id from the HTML page at `path` (an "account" page) with the CSS
    /// selector `user_id_selector` (`"meta[name=user-id]@content"` or `"#user-id"`), and
    /// nothing else until more fields are set, as a file with `format: html` naming
    /// only `path` and `fields.user_id` would give. The selector is not checked here; a
    /// bad one makes every lookup fail (with a warning).
    pub fn html_page(
        path: impl Into<String>,
        user_id_selector: impl Into<String>,
    ) -> EndpointConfig {
        let fields =
            FieldPointers { email: None, name: None, ..FieldPointers::new(user_id_selector) };
        EndpointConfig { format: EndpointFormat::Html, fields, ..EndpointConfig::new(path, "") }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileIdentity {
    #[serde(default)]
    sources: Vec<FileSource>,
    shared_cache: Option<FileSharedCache>,
}

/// One `identity.sources[n]`, chosen by its `type` (read by [`super::tagged`]).
pub(super) enum FileSource {
    TrustedHeader(FileTrustedHeader),
    CurrentUserEndpoint(FileEndpoint),
    RedisSession(FileRedisSession),
    JwtCookie(FileJwtSource),
    SignedHeader(FileJwtSource),
}

/// The values of a source's `type`, in the order errors list them.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum SourceType {
    TrustedHeader,
    CurrentUserEndpoint,
    RedisSession,
    JwtCookie,
    SignedHeader,
}

impl super::tagged::Tagged for FileSource {
    type Type = SourceType;
    const EXPECTING: &'static str = "an identity source: a mapping with a `type`";

    fn read<'de, D: serde::Deserializer<'de>>(
        kind: SourceType,
        rest: D,
    ) -> std::result::Result<Self, D::Error> {
        Ok(match kind {
            SourceType::TrustedHeader => FileSource::TrustedHeader(Deserialize::deserialize(rest)?),
            SourceType::CurrentUserEndpoint => {
                FileSource::CurrentUserEndpoint(Deserialize::deserialize(rest)?)
            }
            SourceType::RedisSession => FileSource::RedisSession(Deserialize::deserialize(rest)?),
            SourceType::JwtCookie => FileSource::JwtCookie(Deserialize::deserialize(rest)?),
            SourceType::SignedHeader => FileSource::SignedHeader(Deserialize::deserialize(rest)?),
        })
    }
}

impl<'de> Deserialize<'de> for FileSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        super::tagged::deserialize(d)
    }
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
    company_id: Option<String>,
    company_name: Option<String>,
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
    format: Option<String>,
    #[serde(default)]
    fields: FileFields,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileFields {
    user_id: Option<String>,
    email: Option<String>,
    name: Option<String>,
    company_id: Option<String>,
    company_name: Option<String>,
    #[serde(default)]
    attributes: std::collections::BTreeMap<String, String>,
}

/// Validates `identity`: each source by its own validator, then what the sources
/// together must provide.
pub(super) fn validate_identity(
    id: FileIdentity,
    intercom: &IntercomConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<IdentityConfig> {
    let sources = id
        .sources
        .into_iter()
        .enumerate()
        .map(|(n, s)| validate_source(&format!("identity.sources[{n}]"), s, env))
        .collect::<Result<Vec<_>>>()?;
    if sources.is_empty() {
        return Err(ConfigError::new(
            "identity.sources",
            "at least one identity source is required (type: trusted_header, current_user_endpoint or redis_session)",
        ));
    }
    claims_are_provided(&sources, intercom)?;
    let shared_cache =
        id.shared_cache.map(|f| validate_shared_cache(f, &intercom.secret, env)).transpose()?;
    if shared_cache.is_some()
        && !sources.iter().any(|s| matches!(s, SourceConfig::CurrentUserEndpoint(_)))
    {
        return Err(ConfigError::new(
            "identity.shared_cache",
            "only current_user_endpoint sources use the shared cache; add one, or remove shared_cache",
        ));
    }
    Ok(IdentityConfig { sources, shared_cache })
}

/// One source at `base` (`identity.sources[n]`), by the validator of its type.
fn validate_source(
    base: &str,
    source: FileSource,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SourceConfig> {
    Ok(match source {
        FileSource::TrustedHeader(t) => {
            SourceConfig::TrustedHeader(validate_trusted_header(base, t)?)
        }
        FileSource::CurrentUserEndpoint(e) => {
            SourceConfig::CurrentUserEndpoint(validate_endpoint(base, e)?)
        }
        FileSource::RedisSession(r) => {
            SourceConfig::RedisSession(validate_redis_session(base, r, env)?)
        }
        FileSource::JwtCookie(f) => SourceConfig::JwtCookie(validate_jwt_cookie(base, f, env)?),
        FileSource::SignedHeader(f) => {
            SourceConfig::SignedHeader(validate_signed_header(base, f, env)?)
        }
    })
}

/// Every claim of `intercom.claims` is a standard one or an attribute some source maps.
fn claims_are_provided(sources: &[SourceConfig], intercom: &IntercomConfig) -> Result<()> {
    let mut known: BTreeSet<&str> = STANDARD_CLAIMS.into_iter().collect();
    for source in sources {
        let attributes = match source {
            SourceConfig::TrustedHeader(_) => &[][..],
            SourceConfig::CurrentUserEndpoint(e) => &e.fields.attributes,
            SourceConfig::RedisSession(r) => &r.fields.attributes,
            SourceConfig::JwtCookie(c) => &c.fields.attributes,
            SourceConfig::SignedHeader(c) => &c.fields.attributes,
        };
        known.extend(attributes.iter().map(|(name, _)| name.as_str()));
    }
    match intercom.claims.iter().enumerate().find(|(_, c)| !known.contains(c.as_str())) {
        Some((n, c)) => Err(ConfigError::new(
            format!("intercom.claims[{n}]"),
            format!("{c:?} is not provided by any identity source; map it under fields.attributes of a current_user_endpoint source"),
        )),
        None => Ok(()),
    }
}

/// A trusted_header source: the peers allowed to assert identity, and the header names.
fn validate_trusted_header(base: &str, t: FileTrustedHeader) -> Result<TrustedHeaderConfig> {
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
        .map(|(i, c)| trusted_cidr(&format!("{base}.trusted_cidrs[{i}]"), c));
    let trusted_cidrs = trusted_cidrs.collect::<Result<Vec<_>>>()?;
    let h = t.headers;
    let header = |name: &str, value: Option<&str>| {
        value.map(|v| header_name(&format!("{base}.headers.{name}"), v)).transpose()
    };
    let user_id = header_name(
        &format!("{base}.headers.user_id"),
        h.user_id.as_deref().unwrap_or(DEFAULT_USER_ID_HEADER),
    )?;
    let email = header("email", Some(h.email.as_deref().unwrap_or(DEFAULT_EMAIL_HEADER)))?;
    let name = header("name", h.name.as_deref())?;
    let company_id = header("company_id", h.company_id.as_deref())?;
    let company_name = header("company_name", h.company_name.as_deref())?;
    let company_name =
        company_name_needs_id(&format!("{base}.headers"), company_id.is_some(), company_name)?;
    Ok(TrustedHeaderConfig { trusted_cidrs, user_id, email, name, company_id, company_name })
}

/// An IP network, or one address.
fn trusted_cidr(key: &str, c: &str) -> Result<IpNet> {
    c.parse::<IpNet>().or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from)).map_err(|_| {
        ConfigError::new(key, format!("{c:?} is not an IP network; write it like \"10.0.0.0/8\""))
    })
}

/// A current_user_endpoint source: the path, the cookies it is asked with, its timeout
/// and cache, and where the fields are in its answer.
fn validate_endpoint(base: &str, e: FileEndpoint) -> Result<EndpointConfig> {
    let path = e.path.unwrap_or_default();
    if !path.starts_with('/') {
        return Err(ConfigError::new(
            format!("{base}.path"),
            "the app's current-user endpoint path is required and starts with /, e.g. /api/me",
        ));
    }
    let timeout =
        duration(&format!("{base}.timeout"), e.timeout.as_deref(), DEFAULT_ENDPOINT_TIMEOUT)?;
    if timeout.is_zero() {
        return Err(ConfigError::new(
            format!("{base}.timeout"),
            format!(
                "must be above zero, e.g. {}",
                humantime::format_duration(DEFAULT_ENDPOINT_TIMEOUT)
            ),
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
    let format = endpoint_format(&format!("{base}.format"), e.format.as_deref())?;
    let (fields, company_id, company_name) = endpoint_fields(base, format, e.fields)?;
    let cache = FileCache {
        cache_ttl: e.cache_ttl.as_deref(),
        negative_cache_ttl: e.negative_cache_ttl.as_deref(),
        cache_capacity: e.cache_capacity,
    };
    let cache = cache.validate(base, CacheSettings::ENDPOINT)?;
    Ok(EndpointConfig {
        path,
        cookies: e.cookies,
        timeout,
        cache,
        fields,
        format,
        company_id,
        company_name,
    })
}

/// An endpoint's `fields`: JSON answers have conventional places for the standard
/// fields; HTML pages have none, so there only what is named is read.
fn endpoint_fields(
    base: &str,
    format: EndpointFormat,
    f: FileFields,
) -> Result<(FieldPointers, Option<String>, Option<String>)> {
    let field =
        |name: &str, spec: &str| endpoint_field(format, &format!("{base}.fields.{name}"), spec);
    let defaulted = |name: &str, given: Option<String>, default: &str| match (format, given) {
        (_, Some(spec)) => field(name, &spec).map(Some),
        (EndpointFormat::Json, None) => field(name, default).map(Some),
        (EndpointFormat::Html, None) => Ok(None),
    };
    let user_id = defaulted("user_id", f.user_id, DEFAULT_USER_ID_POINTER)?.ok_or_else(|| {
        ConfigError::new(
            format!("{base}.fields.user_id"),
            "with format: html the user id's place is required, e.g. \"meta[name=user-id]@content\"",
        )
    })?;
    let email = defaulted("email", f.email, DEFAULT_EMAIL_POINTER)?;
    let name = defaulted("name", f.name, DEFAULT_NAME_POINTER)?;
    let company_id = f.company_id.as_deref().map(|s| field("company_id", s)).transpose()?;
    let company_name = f.company_name.as_deref().map(|s| field("company_name", s)).transpose()?;
    let company_name =
        company_name_needs_id(&format!("{base}.fields"), company_id.is_some(), company_name)?;
    let attributes = attributes(base, f.attributes, |key, spec| endpoint_field(format, key, spec))?;
    Ok((FieldPointers { user_id, email, name, attributes }, company_id, company_name))
}

/// A company name is signed only inside a `company` with an id: alone it names no
/// company Intercom could sync.
fn company_name_needs_id(base: &str, has_id: bool, name: Option<String>) -> Result<Option<String>> {
    if name.is_some() && !has_id {
        return Err(ConfigError::new(
            format!("{base}.company_name"),
            "a company name needs a company id: set company_id too, or remove company_name",
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validated(source: FileSource) -> SourceConfig {
        let intercom = IntercomConfig::new("abc12345", Secret::new(b"s".to_vec()));
        let mut config = validate_identity(
            FileIdentity { sources: vec![source], shared_cache: None },
            &intercom,
            &|_| None,
        )
        .unwrap();
        config.sources.remove(0)
    }

    #[test]
    fn endpoint_new_matches_a_source_with_only_path_and_user_id() {
        assert_eq!(
            format!("{:?}", EndpointConfig::new("/api/me", "/user/id")),
            endpoint_file(None, "/user/id")
        );
        let html = EndpointConfig::html_page("/api/me", "meta[name=uid]@content");
        assert_eq!(format!("{html:?}"), endpoint_file(Some("html"), "meta[name=uid]@content"));
    }

    /// The validated endpoint source of a file naming only `path`, `format` and `fields.user_id`.
    fn endpoint_file(format: Option<&str>, user_id: &str) -> String {
        let file = FileEndpoint {
            path: Some("/api/me".into()),
            cookies: Vec::new(),
            timeout: None,
            cache_ttl: None,
            negative_cache_ttl: None,
            cache_capacity: None,
            format: format.map(str::to_string),
            fields: FileFields { user_id: Some(user_id.into()), ..FileFields::default() },
        };
        let SourceConfig::CurrentUserEndpoint(v) = validated(FileSource::CurrentUserEndpoint(file))
        else {
            panic!("not an endpoint source")
        };
        format!("{v:?}")
    }

    #[test]
    fn trusted_header_new_lowercases_and_reads_no_other_header() {
        let cidrs: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let file = FileTrustedHeader {
            trusted_cidrs: vec!["10.0.0.0/8".into()],
            headers: FileHeaderNames {
                user_id: Some("X-Auth-User".into()),
                ..FileHeaderNames::default()
            },
        };
        let SourceConfig::TrustedHeader(v) = validated(FileSource::TrustedHeader(file)) else {
            panic!("not a trusted_header source")
        };
        let built = TrustedHeaderConfig::new(cidrs, "X-Auth-User");
        assert_eq!(built.trusted_cidrs, v.trusted_cidrs);
        assert_eq!(built.user_id, v.user_id);
        assert_eq!((built.email, built.name), (None, None));
    }
}
