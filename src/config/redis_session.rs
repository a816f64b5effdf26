//! `identity.sources[n]` with `type: redis_session`: the app keeps its session in Redis.

use super::fields::{attributes, CacheSettings, FieldPointers, FileCache, FileFieldPointers};
use super::redis_auth::{validate_redis_auth, FileRedisAuth};
use super::*;

/// Default of a redis_session source's `timeout`: a Redis `GET` on a healthy server
/// takes well under a millisecond, and this bounds how long a page waits when it is not.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// Default of a redis_session source's `key` (connect-redis' default prefix).
pub const DEFAULT_REDIS_KEY: &str = "sess:{id}";
/// The placeholder of `key` that the session id replaces.
pub const SESSION_ID_PLACEHOLDER: &str = "{id}";
/// The placeholder of `key` that the SHA-256 (lowercase hex) of the session id
/// replaces: Rack's private session ids are `2::` and that digest (redis-session-store
/// 0.11.6 and later write sessions under them).
pub const SESSION_ID_SHA256_PLACEHOLDER: &str = "{id_sha256}";

/// Where the sessions live. URLs may carry a password: `Debug` redacts it.
#[derive(Clone)]
pub enum RedisTarget {
    /// One server: a `redis://` or `rediss://` URL (user, password and `/db` included).
    Single(String),
    /// A Redis Cluster, by the URLs of its seed nodes.
    Cluster(Vec<String>),
}

impl RedisTarget {
    /// The URLs with any password replaced by `***`, for summaries and logs.
    pub fn redacted(&self) -> String {
        match self {
            RedisTarget::Single(url) => redact_url(url),
            RedisTarget::Cluster(urls) => {
                format!(
                    "cluster [{}]",
                    urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>().join(", ")
                )
            }
        }
    }
}

impl RedisTarget {
    /// The URL, or each node's.
    pub fn urls(&self) -> &[String] {
        match self {
            RedisTarget::Single(u) => std::slice::from_ref(u),
            RedisTarget::Cluster(u) => u.as_slice(),
        }
    }

    /// Whether a URL carries a password (which then lives in the config file).
    pub fn carries_password(&self) -> bool {
        self.settings().any(|s| s.password().is_some())
    }

    /// Whether a URL names an ACL user.
    pub fn names_user(&self) -> bool {
        self.settings().any(|s| s.username().is_some_and(|u| !u.is_empty()))
    }

    /// The URLs as the client reads them (they were checked at validation).
    fn settings(&self) -> impl Iterator<Item = redis::RedisConnectionInfo> + '_ {
        use redis::IntoConnectionInfo as _;
        self.urls()
            .iter()
            .filter_map(|u| u.as_str().into_connection_info().ok())
            .map(|i| i.redis_settings().clone())
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisTarget({})", self.redacted())
    }
}

/// A PEM file of CA certificates that Redis' TLS certificate must chain to (instead of
/// the system's roots). `Debug` shows the path only.
#[derive(Clone)]
pub struct RedisCa {
    /// Where it was read from.
    pub path: PathBuf,
    /// The PEM bytes.
    pub pem: Vec<u8>,
}

impl fmt::Debug for RedisCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisCa({})", self.path.display())
    }
}

/// How the session cookie's value carries the session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieSignature {
    /// The value is the id (PHP's `PHPSESSID`, most frameworks).
    None,
    /// express-session's `s:<id>.<base64 HMAC-SHA256>`, URL-encoded.
    Express,
}

/// How the session is serialized in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionFormat {
    /// A JSON document (connect-redis, Rails `serializer: :json`, django-redis JSON).
    Json,
    /// PHP's `session.serialize_handler=php` (`name|s:5:"value";…`), e.g. phpredis.
    Php,
    /// PHP's `session.serialize_handler=php_serialize` (`a:1:{s:4:"name";…}`).
    PhpSerialize,
}

impl SessionFormat {
    /// The name `format` takes in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionFormat::Json => "json",
            SessionFormat::Php => "php",
            SessionFormat::PhpSerialize => "php_serialize",
        }
    }
}

/// Settings of the redis_session source.
#[derive(Debug, Clone)]
pub struct RedisSessionConfig {
    /// The server or cluster.
    pub redis: RedisTarget,
    /// With `rediss://`: the CA to trust instead of the system's roots.
    pub tls_ca: Option<RedisCa>,
    /// The user and password to authenticate with, besides the URL's.
    pub auth: RedisAuth,
    /// The app's session cookie name.
    pub cookie: String,
    /// How the cookie carries the id.
    pub cookie_signature: CookieSignature,
    /// The app's cookie secrets (express), newest first; several during a rotation.
    pub cookie_secrets: Vec<Secret>,
    /// The environment variables they came from (for summaries).
    pub cookie_secrets_env: Vec<String>,
    /// The Redis key template, with one `{id}` or `{id_sha256}`.
    pub key: String,
    /// The session's serialization.
    pub format: SessionFormat,
    /// Give up on Redis after this long (the page is served without a token).
    pub timeout: Duration,
    /// How long, and how many, sessions are cached.
    pub cache: CacheSettings,
    /// Where the user's fields are in the decoded session (JSON pointers).
    pub fields: FieldPointers,
}

impl RedisSessionConfig {
    /// Reads the JSON session under `sess:{id}` on the Redis at `url`, named by the
    /// unsigned cookie `cookie`, with the user id at `user_id_pointer`, no email or
    /// name, and the default timeout and cache settings. Nothing is checked.
    pub fn new(
        url: impl Into<String>,
        cookie: impl Into<String>,
        user_id_pointer: impl Into<String>,
    ) -> Self {
        RedisSessionConfig {
            redis: RedisTarget::Single(url.into()),
            tls_ca: None,
            auth: RedisAuth::default(),
            cookie: cookie.into(),
            cookie_signature: CookieSignature::None,
            cookie_secrets: Vec::new(),
            cookie_secrets_env: Vec::new(),
            key: DEFAULT_REDIS_KEY.to_string(),
            format: SessionFormat::Json,
            timeout: DEFAULT_REDIS_TIMEOUT,
            cache: CacheSettings::REDIS_SESSION,
            fields: FieldPointers {
                email: None,
                name: None,
                ..FieldPointers::new(user_id_pointer)
            },
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRedisSession {
    redis: Option<FileRedisTarget>,
    username: Option<String>,
    // Values of any type, so that a password pasted here is not quoted back by serde.
    password_env: Option<yaml_serde::Value>,
    password_file: Option<yaml_serde::Value>,
    tls_ca_file: Option<String>,
    cookie: Option<String>,
    cookie_signature: Option<String>,
    #[serde(default)]
    cookie_secrets_env: Vec<String>,
    key: Option<String>,
    format: Option<String>,
    timeout: Option<String>,
    cache_ttl: Option<String>,
    negative_cache_ttl: Option<String>,
    cache_capacity: Option<u64>,
    #[serde(default)]
    fields: FileFieldPointers,
}

/// `redis:` in the file: one URL, or a Cluster's seed nodes.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum FileRedisTarget {
    One(String),
    Cluster(Vec<String>),
}

/// Validates one redis_session source; `base` is its dotted key, secrets are read
/// through `env`.
pub(super) fn validate_redis_session(
    base: &str,
    f: FileRedisSession,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RedisSessionConfig> {
    let redis =
        redis_target(&format!("{base}.redis"), f.redis, "the Redis that holds the sessions")?;
    let tls_ca = f.tls_ca_file.map(|path| tls_ca(base, &redis, path)).transpose()?;
    let auth = FileRedisAuth {
        username: f.username,
        password_env: f.password_env,
        password_file: f.password_file,
    };
    let auth = validate_redis_auth(base, &redis, auth, env)?;
    let cookie = f.cookie.unwrap_or_default();
    if cookie.is_empty() || cookie.contains([';', '=', ' ', ',']) {
        return Err(ConfigError::new(
            format!("{base}.cookie"),
            format!("{cookie:?} is not a cookie name; name the app's session cookie, e.g. connect.sid or PHPSESSID"),
        ));
    }
    let cookie_signature = match f.cookie_signature.as_deref().unwrap_or("none") {
        "none" => CookieSignature::None,
        "express" => CookieSignature::Express,
        other => {
            return Err(ConfigError::new(
                format!("{base}.cookie_signature"),
                format!("{other:?} is not one of none, express"),
            ))
        }
    };
    let cookie_secrets = cookie_secrets(base, cookie_signature, &f.cookie_secrets_env, env)?;
    let key = f.key.unwrap_or_else(|| DEFAULT_REDIS_KEY.to_string());
    if key.matches(SESSION_ID_PLACEHOLDER).count()
        + key.matches(SESSION_ID_SHA256_PLACEHOLDER).count()
        != 1
    {
        return Err(ConfigError::new(
            format!("{base}.key"),
            format!("{key:?} must contain one placeholder, {SESSION_ID_PLACEHOLDER} or {SESSION_ID_SHA256_PLACEHOLDER}, once, e.g. \"sess:{{id}}\" or \"PHPREDIS_SESSION:{{id}}\""),
        ));
    }
    let format = session_format(base, f.format.as_deref())?;
    let fields = f.fields;
    let Some(user_id) = fields.user_id else {
        return Err(ConfigError::new(
            format!("{base}.fields.user_id"),
            "the JSON pointer to the user id in the session is required, e.g. /passport/user",
        ));
    };
    let pointer = |name: &str, value: Option<String>| {
        value.map(|p| json_pointer(&format!("{base}.fields.{name}"), &p)).transpose()
    };
    let attributes = attributes(base, fields.attributes, json_pointer)?;
    let timeout =
        positive_duration(&format!("{base}.timeout"), f.timeout.as_deref(), DEFAULT_REDIS_TIMEOUT)?;
    let cache = FileCache {
        cache_ttl: f.cache_ttl.as_deref(),
        negative_cache_ttl: f.negative_cache_ttl.as_deref(),
        cache_capacity: f.cache_capacity,
    };
    let cache = cache.validate(base, CacheSettings::REDIS_SESSION)?;
    let fields = FieldPointers {
        user_id: json_pointer(&format!("{base}.fields.user_id"), &user_id)?,
        email: pointer("email", fields.email)?,
        name: pointer("name", fields.name)?,
        attributes,
    };
    Ok(RedisSessionConfig {
        redis,
        tls_ca,
        auth,
        cookie,
        cookie_signature,
        cookie_secrets,
        cookie_secrets_env: f.cookie_secrets_env,
        key,
        format,
        timeout,
        cache,
        fields,
    })
}

/// The validated `format`; the serializations that are never read get their fix.
fn session_format(base: &str, format: Option<&str>) -> Result<SessionFormat> {
    let key = format!("{base}.format");
    match format.unwrap_or("json") {
        "json" => Ok(SessionFormat::Json),
        "php" => Ok(SessionFormat::Php),
        "php_serialize" => Ok(SessionFormat::PhpSerialize),
        "php_binary" => Err(ConfigError::new(
            key,
            "php_binary sessions are not read; set session.serialize_handler=php_serialize in the app's php.ini and format: php_serialize",
        )),
        other => Err(ConfigError::new(
            key,
            format!("{other:?} is not one of json, php, php_serialize (Ruby Marshal and Python pickle sessions cannot be read safely: switch the app to a JSON serializer)"),
        )),
    }
}

/// The express secrets, read from the named environment variables; none for unsigned
/// cookies (naming some there is a mistake worth reporting).
fn cookie_secrets(
    base: &str,
    signature: CookieSignature,
    names: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Secret>> {
    let key = format!("{base}.cookie_secrets_env");
    match signature {
        CookieSignature::None if !names.is_empty() => Err(ConfigError::new(
            key,
            "secrets are only used with cookie_signature: express; remove them or set the signature",
        )),
        CookieSignature::None => Ok(Vec::new()),
        CookieSignature::Express if names.is_empty() => Err(ConfigError::new(
            key,
            "express cookies are verified with the app's session secret(s): name the environment variables that hold them, e.g. [SESSION_SECRET]",
        )),
        CookieSignature::Express => names
            .iter()
            .enumerate()
            .map(|(i, name)| match env(name) {
                Some(v) if !v.is_empty() => Ok(Secret::new(v.into_bytes())),
                _ => Err(ConfigError::new(
                    format!("{key}[{i}]"),
                    format!("the environment variable {name} is unset or empty; export the app's session secret in it"),
                )),
            })
            .collect(),
    }
}

/// The CA file of `tls_ca_file`: readable, PEM, and only with `rediss://` URLs.
pub(super) fn tls_ca(base: &str, redis: &RedisTarget, path: String) -> Result<RedisCa> {
    let key = format!("{base}.tls_ca_file");
    if !redis.urls().iter().all(|u| u.starts_with("rediss://")) {
        return Err(ConfigError::new(
            key,
            "a CA file is only used for TLS: write the Redis URL(s) with rediss://",
        ));
    }
    let pem = std::fs::read(&path)
        .map_err(|e| ConfigError::new(&key, format!("cannot read {path} ({e}); name a PEM file of the CA that signed Redis' certificate")))?;
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(ConfigError::new(
            key,
            format!("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
        ));
    }
    Ok(RedisCa { path: PathBuf::from(path), pem })
}

/// The validated `redis:` at `key`; `what` says what that Redis is for (when missing).
pub(super) fn redis_target(
    key: &str,
    target: Option<FileRedisTarget>,
    what: &str,
) -> Result<RedisTarget> {
    match target {
        None => Err(ConfigError::new(
            key,
            format!("{what} is required, e.g. redis://127.0.0.1:6379/0 (or a list of addresses for a Cluster)"),
        )),
        Some(FileRedisTarget::One(url)) => Ok(RedisTarget::Single(redis_url(key, &url, false)?)),
        Some(FileRedisTarget::Cluster(urls)) if urls.is_empty() => Err(ConfigError::new(
            key,
            "an empty list: name the Cluster's nodes, e.g. [\"10.0.0.1:6379\", \"10.0.0.2:6379\"]",
        )),
        Some(FileRedisTarget::Cluster(urls)) => Ok(RedisTarget::Cluster(
            urls.iter().enumerate().map(|(i, u)| redis_url(&format!("{key}[{i}]"), u, true)).collect::<Result<_>>()?,
        )),
    }
}

/// A Redis URL checked by the client's own parser; a Cluster's `host:port` entries get
/// `redis://` in front.
fn redis_url(key: &str, url: &str, cluster: bool) -> Result<String> {
    use redis::IntoConnectionInfo as _;
    let url =
        if cluster && !url.contains("://") { format!("redis://{url}") } else { url.to_string() };
    let info = url.as_str().into_connection_info().map_err(|_| {
        ConfigError::new(
            key,
            format!(
                "{} is not a Redis URL; write it like redis://127.0.0.1:6379/0, rediss://user:password@host:6380/0{}",
                redact_url(&url),
                if cluster { " or host:port" } else { "" }
            ),
        )
    })?;
    if cluster && info.redis_settings().db() != 0 {
        return Err(ConfigError::new(
            key,
            "a Redis Cluster has only database 0; remove the /db from the URL",
        ));
    }
    Ok(url)
}

/// `scheme://user:***@host…`: the address without its password, with or without a
/// scheme. Everything before the last `@` is userinfo, so a password holding `/` or `@`
/// (not percent-encoded, as operators paste them) is hidden whole too.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}{user}:***@{host}"),
            // `redis://word@host`: the word may be a password written without its colon.
            None => format!("{scheme}***@{host}"),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "listen: [\"127.0.0.1:8080\"]\nupstream: {addresses: [\"127.0.0.1:3000\"]}\nintercom: {app_id: abc12345, secret_env: IS, claims: [email, plan]}\n";

    fn load(source: &str) -> std::result::Result<RedisSessionConfig, ConfigError> {
        let yaml =
            format!("{BASE}identity:\n  sources:\n    - {{type: redis_session, {source}}}\n");
        let env = |name: &str| match name {
            "IS" => Some("s".to_string()),
            "SESSION_SECRET" => Some("new".to_string()),
            "OLD_SECRET" => Some("old".to_string()),
            _ => None,
        };
        let config = Config::from_yaml(&yaml, &env)?;
        match &config.site().identity.sources[0] {
            SourceConfig::RedisSession(r) => Ok(r.clone()),
            other => panic!("not a redis_session source: {other:?}"),
        }
    }

    const GOOD: &str = "redis: redis://127.0.0.1:6379/0, cookie: connect.sid, fields: {user_id: /passport/user, email: /e, attributes: {plan: /plan}}";

    #[test]
    fn the_issue_example_is_accepted_with_its_values() {
        let r = load(
            "redis: redis://127.0.0.1:6379/0, cookie: connect.sid, cookie_signature: express, cookie_secrets_env: [SESSION_SECRET, OLD_SECRET], key: \"sess:{id}\", format: json, fields: {user_id: /passport/user, email: /user/email, name: /user/name, attributes: {plan: /plan}}, timeout: 100ms",
        )
        .unwrap();
        assert_eq!(r.cookie_signature, CookieSignature::Express);
        assert_eq!(
            r.cookie_secrets.iter().map(|s| s.expose().to_vec()).collect::<Vec<_>>(),
            [b"new".to_vec(), b"old".to_vec()]
        );
        assert_eq!(
            (r.key.as_str(), r.format, r.timeout),
            ("sess:{id}", SessionFormat::Json, Duration::from_millis(100))
        );
        let f = &r.fields;
        assert_eq!(
            (f.user_id.as_str(), f.email.as_deref(), f.name.as_deref()),
            ("/passport/user", Some("/user/email"), Some("/user/name"))
        );
    }

    #[test]
    fn defaults_are_the_named_constants() {
        let r = load(GOOD).unwrap();
        assert_eq!(r.cookie_signature, CookieSignature::None);
        assert_eq!((r.key.as_str(), r.format), (DEFAULT_REDIS_KEY, SessionFormat::Json));
        assert_eq!((r.timeout, r.cache), (DEFAULT_REDIS_TIMEOUT, CacheSettings::REDIS_SESSION));
        assert_eq!(r.cache.capacity, 100_000);
    }

    #[test]
    fn a_list_of_addresses_is_a_cluster() {
        let r = load("redis: [\"10.0.0.1:7000\", \"rediss://u:p@10.0.0.2:7000\"], cookie: sid, fields: {user_id: /u, attributes: {plan: /p}}").unwrap();
        let RedisTarget::Cluster(urls) = r.redis else { panic!("not a cluster") };
        assert_eq!(urls, ["redis://10.0.0.1:7000", "rediss://u:p@10.0.0.2:7000"]);
    }

    #[test]
    fn every_mistake_names_its_key() {
        let at = |n: &str| format!("identity.sources[0].{n}");
        let cases = [
            ("cookie: sid, fields: {user_id: /u}", at("redis")),
            ("redis: \"http://h/\", cookie: sid, fields: {user_id: /u}", at("redis")),
            ("redis: [], cookie: sid, fields: {user_id: /u}", at("redis")),
            ("redis: [\"h:1\", \"redis://h:2/3\"], cookie: sid, fields: {user_id: /u}", at("redis[1]")),
            ("redis: redis://h/, fields: {user_id: /u}", at("cookie")),
            ("redis: redis://h/, cookie: \"a b\", fields: {user_id: /u}", at("cookie")),
            ("redis: redis://h/, cookie: sid, cookie_signature: rails, fields: {user_id: /u}", at("cookie_signature")),
            ("redis: redis://h/, cookie: sid, cookie_signature: express, fields: {user_id: /u}", at("cookie_secrets_env")),
            ("redis: redis://h/, cookie: sid, cookie_signature: express, cookie_secrets_env: [SESSION_SECRET, NOPE], fields: {user_id: /u}", at("cookie_secrets_env[1]")),
            ("redis: redis://h/, cookie: sid, cookie_secrets_env: [SESSION_SECRET], fields: {user_id: /u}", at("cookie_secrets_env")),
            ("redis: redis://h/, cookie: sid, key: \"sess:\", fields: {user_id: /u}", at("key")),
            ("redis: redis://h/, cookie: sid, key: \"{id}:{id}\", fields: {user_id: /u}", at("key")),
            ("redis: redis://h/, cookie: sid, key: \"{id}:{id_sha256}\", fields: {user_id: /u, attributes: {plan: /p}}", at("key")),
            ("redis: redis://h/, cookie: sid, format: marshal, fields: {user_id: /u}", at("format")),
            ("redis: redis://h/, cookie: sid, format: php_binary, fields: {user_id: /u}", at("format")),
            ("redis: redis://h/, cookie: sid", at("fields.user_id")),
            ("redis: redis://h/, cookie: sid, fields: {user_id: u}", at("fields.user_id")),
            ("redis: redis://h/, cookie: sid, fields: {user_id: /u, email: e}", at("fields.email")),
            ("redis: redis://h/, cookie: sid, fields: {user_id: /u, attributes: {email: /e}}", at("fields.attributes.email")),
            ("redis: redis://h/, cookie: sid, fields: {user_id: /u}, timeout: 0s", at("timeout")),
            ("redis: redis://h/, cookie: sid, fields: {user_id: /u}, cache_ttl: soon", at("cache_ttl")),
            ("redis: redis://h/, cookie: sid, fields: {user_id: /u}, negative_cache_ttl: x", at("negative_cache_ttl")),
            ("redis: redis://h/, tls_ca_file: /etc/hostname, cookie: sid, fields: {user_id: /u}", at("tls_ca_file")),
            ("redis: rediss://h/, tls_ca_file: /nonexistent.pem, cookie: sid, fields: {user_id: /u}", at("tls_ca_file")),
            ("redis: rediss://h/, tls_ca_file: /etc/hostname, cookie: sid, fields: {user_id: /u}", at("tls_ca_file")),
        ];
        for (source, key) in cases {
            let e = load(source).expect_err(source);
            assert_eq!(e.key, key, "{source}: {e}");
        }
        // A claim no source provides is still refused.
        let e = load("redis: redis://h/, cookie: sid, fields: {user_id: /u}").unwrap_err();
        assert_eq!(e.key, "intercom.claims[1]", "{e}");
    }

    #[test]
    fn errors_and_debug_never_show_passwords_or_secrets() {
        let e =
            load("redis: \"redis://u:hunter2@h:notaport/\", cookie: sid, fields: {user_id: /u}")
                .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let r = load("redis: \"redis://u:hunter2@h/\", cookie: sid, cookie_signature: express, cookie_secrets_env: [SESSION_SECRET], fields: {user_id: /u, attributes: {plan: /p}}").unwrap();
        let debug = format!("{r:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("\"new\""), "{debug}");
    }

    #[test]
    fn an_address_without_a_scheme_never_echoes_its_password() {
        let addresses = [
            "\"u:redisPw@127.0.0.1:6379\"",
            "\":redisPw@127.0.0.1:6379/0\"",
            "\"u:redisPw@h/0\"",
            "[\"h:1\", \"u:redisPw@h:notaport\"]",
        ];
        for redis in addresses {
            let e = load(&format!(
                "redis: {redis}, cookie: sid, fields: {{user_id: /u, attributes: {{plan: /p}}}}"
            ))
            .unwrap_err();
            assert!(e.key.starts_with("identity.sources[0].redis"), "{redis}: {e}");
            assert!(!e.to_string().contains("redisPw"), "{e}");
        }
    }

    #[test]
    fn redacted_urls_keep_the_user_and_drop_the_password() {
        assert_eq!(
            redact_url("rediss://app:s3cret@r.example:6380/2"),
            "rediss://app:***@r.example:6380/2"
        );
        assert_eq!(redact_url("redis://:s3cret@127.0.0.1"), "redis://:***@127.0.0.1");
        assert_eq!(redact_url("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
        assert_eq!(redact_url("u:redisPw@127.0.0.1:6379"), "u:***@127.0.0.1:6379");
        assert_eq!(redact_url("redis://u:pa/ss@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact_url("redis://secretword@h"), "redis://***@h");
        let target = RedisTarget::Cluster(vec!["redis://u:pw@a:1".into(), "redis://b:2".into()]);
        assert!(!format!("{target:?}").contains("pw"));
    }

    #[test]
    fn urls_are_checked_by_the_client_parser() {
        assert!(redis_url("k", "redis://127.0.0.1:6379/0", false).is_ok());
        assert!(redis_url("k", "rediss://user:pw@host:6380/3", false).is_ok());
        assert_eq!(redis_url("k", "10.0.0.1:7000", true).unwrap(), "redis://10.0.0.1:7000");
        let e = redis_url("k", "http://user:pw@host/", false).unwrap_err();
        assert!(!e.message.contains("pw"), "{e}");
        assert!(redis_url("k", "redis://10.0.0.1:7000/3", true).is_err());
    }
}
