//! Configuration: the YAML file format and its validation into [`Config`].
//!
//! The file is parsed into `File*` structs that mirror the YAML exactly (unknown keys
//! are rejected), then validated into the internal [`Config`], where durations are
//! parsed, the secret is loaded and every default is filled in. Every problem is
//! reported as a [`ConfigError`] naming the offending key, so an operator can fix the
//! file without reading code. Nothing listens before validation has succeeded.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

/// A configuration problem, naming the key at fault and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the offending key, e.g. `intercom.token_lifetime`.
    pub key: String,
    /// What is wrong and what to do instead.
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config error at `{}`: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

type Result<T> = std::result::Result<T, ConfigError>;

/// The Messenger secret. Its bytes are never printed: `Debug` shows only the length.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps raw secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }
    /// The raw bytes, for the signer only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([redacted, {} bytes])", self.0.len())
    }
}

/// Where the secret was read from, for summaries (never the value).
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// An environment variable name.
    Env(String),
    /// A file path.
    File(PathBuf),
    /// Set in code (the demo, embedding applications).
    Inline,
}

/// The validated configuration the proxy runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses the proxy listens on.
    pub listen: Vec<SocketAddr>,
    /// The application behind the proxy.
    pub upstream: UpstreamConfig,
    /// Pingora server settings.
    pub server: ServerSettings,
    /// The Intercom workspace and token settings.
    pub intercom: IntercomConfig,
    /// How the logged-in user is found.
    pub identity: IdentityConfig,
    /// Which responses are rewritten and how.
    pub inject: InjectConfig,
    /// How logouts are detected and turned into Intercom shutdowns.
    pub logout: LogoutConfig,
}

/// The upstream application.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `host:port` addresses, balanced round robin with TCP health checks.
    pub addresses: Vec<String>,
    /// Connect over TLS.
    pub tls: bool,
    /// SNI and certificate name for TLS upstreams.
    pub sni: String,
    /// TCP (and TLS) connect timeout.
    pub connect_timeout: Duration,
    /// Timeout for each read from the upstream.
    pub read_timeout: Duration,
    /// How often unhealthy addresses are probed; `None` when there is one address.
    pub health_check_interval: Option<Duration>,
}

/// Pingora server settings.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// How long a gracefully stopping process keeps serving (SIGTERM / upgrade).
    pub grace_period: Duration,
    /// Hard limit for the final shutdown after the grace period.
    pub graceful_shutdown_timeout: Duration,
    /// PID file (daemon mode and upgrades).
    pub pid_file: PathBuf,
    /// Socket over which listeners are handed to a new process on `run -u`.
    pub upgrade_sock: PathBuf,
    /// Error log file for daemon mode; stderr when unset.
    pub error_log: Option<PathBuf>,
    /// Idle upstream connections kept for reuse.
    pub upstream_keepalive_pool_size: usize,
    /// Time a client has to send a whole request head (nginx `client_header_timeout`).
    pub client_header_timeout: Duration,
    /// Time an idle keep-alive client connection is kept between requests (nginx
    /// `keepalive_timeout`); zero turns client keep-alive off.
    pub client_keepalive_timeout: Duration,
    /// Client connections served at once; further ones wait in the kernel's backlog.
    pub max_client_connections: usize,
}

/// Intercom workspace settings.
#[derive(Debug, Clone)]
pub struct IntercomConfig {
    /// The workspace (app) id.
    pub app_id: String,
    /// The regional Messenger API base URL.
    pub api_base: String,
    /// The Messenger secret used to sign tokens.
    pub secret: Secret,
    /// Where the secret came from (for summaries).
    pub secret_source: SecretSource,
    /// `exp - iat` of every token.
    pub token_lifetime: Duration,
    /// Identity fields signed into the token besides `user_id`.
    pub claims: Vec<String>,
}

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

/// Which responses are rewritten, and how.
#[derive(Debug, Clone)]
pub struct InjectConfig {
    /// Media types rewritten (lowercase, no parameters).
    pub content_types: Vec<String>,
    /// Path patterns never touched (`*` matches any run of characters).
    pub exclude_paths: Vec<PathPattern>,
    /// Add the official loader to pages that have no Intercom code.
    pub auto_include: bool,
    /// Leave `Cache-Control: no-transform` responses alone.
    pub honor_no_transform: bool,
    /// Give up looking for the insertion point after this many body bytes.
    pub max_scan_bytes: usize,
    /// Memory bound of the HTML parser per response.
    pub parser_memory_limit: usize,
    /// gzip/brotli level used to re-compress rewritten pages (0 = send uncompressed).
    pub compression_level: u32,
}

/// How logouts are handled.
#[derive(Debug, Clone)]
pub struct LogoutConfig {
    /// Requests that are logouts: (methods, path pattern).
    pub paths: Vec<(Vec<String>, PathPattern)>,
    /// Also treat a response that expires an identity cookie as a logout.
    pub detect_cookie_expiry: bool,
    /// How the browser is made to run `Intercom('shutdown')`.
    pub mode: LogoutMode,
    /// Domain of Intercom's cookies (`example.com`); host-only when unset.
    pub cookie_domain: Option<String>,
    /// Extra hosts an interstitial may continue to.
    pub allowed_redirect_hosts: Vec<String>,
}

/// How the shutdown reaches the browser after a logout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutMode {
    /// A marker cookie makes the next HTML page run the shutdown first.
    Marker,
    /// The logout redirect is answered by a tiny page that runs the shutdown, then moves on.
    Interstitial,
}

/// A path pattern where `*` matches any run of characters; otherwise exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern(String);

impl PathPattern {
    /// Parses a pattern; it must start with `/` or `*`.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        if !(s.starts_with('/') || s.starts_with('*')) {
            return Err(format!("path pattern {s:?} must start with `/` (e.g. \"/password/*\")"));
        }
        Ok(PathPattern(s.to_string()))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `path` (without query) matches.
    pub fn matches(&self, path: &str) -> bool {
        glob_match(self.0.as_bytes(), path.as_bytes())
    }
}

/// `*`-only glob matching, iterative with single backtrack point (linear time).
fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if p < pat.len() && pat[p] == s[i] {
            p += 1;
            i += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

impl Config {
    /// Settings that are valid but risky, one sentence each naming the key and the fix;
    /// `check` prints them and `run` logs them at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let SecretSource::File(path) = &self.intercom.secret_source {
            if let Some(mode) = group_or_other_readable(path) {
                out.push(format!(
                    "intercom.secret_file: the secret file is readable by group or others (mode {mode:o}); run chmod 600 on it"
                ));
            }
        }
        for (n, s) in self.identity.sources.iter().enumerate() {
            let SourceConfig::TrustedHeader(t) = s else { continue };
            for (i, net) in t.trusted_cidrs.iter().enumerate() {
                if net.prefix_len() == 0 {
                    out.push(format!(
                        "identity.sources[{n}].trusted_cidrs[{i}]: {net} trusts every address to assert who is logged in; list only the auth proxy's addresses"
                    ));
                }
            }
        }
        out
    }

    /// A human summary for `check`; never includes the secret.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let d = |d: Duration| humantime::format_duration(d).to_string();
        let list = |v: &[String]| if v.is_empty() { "-".to_string() } else { v.join(", ") };
        let listen: Vec<String> = self.listen.iter().map(|a| a.to_string()).collect();
        let _ = writeln!(out, "listen:    {}", list(&listen));
        let _ = writeln!(
            out,
            "upstream:  {} ({}, connect timeout {}, read timeout {})",
            list(&self.upstream.addresses),
            if self.upstream.tls { "TLS" } else { "plain HTTP" },
            d(self.upstream.connect_timeout),
            d(self.upstream.read_timeout)
        );
        let _ = writeln!(out, "server:    {} thread(s), grace period {}", self.server.threads, d(self.server.grace_period));
        let secret = match &self.intercom.secret_source {
            SecretSource::Env(name) => format!("from env {name}"),
            SecretSource::File(path) => format!("from file {}", path.display()),
            SecretSource::Inline => "set in code".into(),
        };
        let _ = writeln!(
            out,
            "intercom:  app_id {}, api_base {}, secret {secret} ({} bytes), tokens valid {}, signed: user_id{}",
            self.intercom.app_id,
            self.intercom.api_base,
            self.intercom.secret.expose().len(),
            d(self.intercom.token_lifetime),
            self.intercom.claims.iter().map(|c| format!(", {c}")).collect::<String>()
        );
        for (n, s) in self.identity.sources.iter().enumerate() {
            let _ = match s {
                SourceConfig::TrustedHeader(t) => writeln!(
                    out,
                    "identity:  {}. trusted_header {} from {}",
                    n + 1,
                    t.user_id,
                    t.trusted_cidrs.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ")
                ),
                SourceConfig::CurrentUserEndpoint(e) => writeln!(
                    out,
                    "identity:  {}. current_user_endpoint GET {} (cookies: {}, timeout {}, cache {}/{})",
                    n + 1,
                    e.path,
                    if e.cookies.is_empty() { "all".to_string() } else { e.cookies.join(", ") },
                    d(e.timeout),
                    d(e.cache_ttl),
                    d(e.negative_cache_ttl)
                ),
            };
        }
        let excluded: Vec<String> = self.inject.exclude_paths.iter().map(|p| p.as_str().to_string()).collect();
        let _ = writeln!(
            out,
            "inject:    {} (excluded: {}), auto_include {}, honor no-transform {}",
            self.inject.content_types.join(", "),
            list(&excluded),
            self.inject.auto_include,
            self.inject.honor_no_transform
        );
        let paths: Vec<String> = self
            .logout
            .paths
            .iter()
            .map(|(m, p)| format!("{} {}", m.join("|"), p.as_str()))
            .collect();
        let _ = writeln!(
            out,
            "logout:    {} (paths: {}, session cookie expiry {})",
            match self.logout.mode {
                LogoutMode::Marker => "marker",
                LogoutMode::Interstitial => "interstitial",
            },
            list(&paths),
            if self.logout.detect_cookie_expiry { "detected" } else { "ignored" }
        );
        out
    }
}

// ---------------------------------------------------------------------------
// The file format.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    listen: Vec<String>,
    upstream: Option<FileUpstream>,
    #[serde(default)]
    server: FileServer,
    intercom: Option<FileIntercom>,
    #[serde(default)]
    identity: FileIdentity,
    #[serde(default)]
    inject: FileInject,
    #[serde(default)]
    logout: FileLogout,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUpstream {
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    tls: bool,
    sni: Option<String>,
    connect_timeout: Option<String>,
    read_timeout: Option<String>,
    health_check_interval: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileServer {
    threads: Option<usize>,
    grace_period: Option<String>,
    graceful_shutdown_timeout: Option<String>,
    pid_file: Option<PathBuf>,
    upgrade_sock: Option<PathBuf>,
    error_log: Option<PathBuf>,
    upstream_keepalive_pool_size: Option<usize>,
    client_header_timeout: Option<String>,
    client_keepalive_timeout: Option<String>,
    max_client_connections: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIntercom {
    app_id: Option<String>,
    api_base: Option<String>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    /// Accepted only to reject it with a helpful message.
    secret: Option<serde_yaml::Value>,
    token_lifetime: Option<String>,
    claims: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileIdentity {
    #[serde(default)]
    sources: Vec<FileSource>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum FileSource {
    TrustedHeader(FileTrustedHeader),
    CurrentUserEndpoint(FileEndpoint),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTrustedHeader {
    #[serde(default)]
    trusted_cidrs: Vec<String>,
    #[serde(default)]
    headers: FileHeaderNames,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileHeaderNames {
    user_id: Option<String>,
    email: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEndpoint {
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
struct FileFields {
    user_id: Option<String>,
    email: Option<String>,
    name: Option<String>,
    #[serde(default)]
    attributes: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileInject {
    content_types: Option<Vec<String>>,
    #[serde(default)]
    exclude_paths: Vec<String>,
    #[serde(default)]
    auto_include: bool,
    honor_no_transform: Option<bool>,
    max_scan_bytes: Option<usize>,
    parser_memory_limit: Option<usize>,
    compression_level: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileLogout {
    #[serde(default)]
    paths: Vec<String>,
    detect_cookie_expiry: Option<bool>,
    mode: Option<String>,
    cookie_domain: Option<String>,
    #[serde(default)]
    allowed_redirect_hosts: Vec<String>,
}

// ---------------------------------------------------------------------------
// Validation.

/// Known regional API bases.
const API_BASES: [(&str, &str); 3] = [
    ("us", "https://api-iam.intercom.io"),
    ("eu", "https://api-iam.eu.intercom.io"),
    ("au", "https://api-iam.au.intercom.io"),
];

/// `server.client_header_timeout` when unset (nginx's `client_header_timeout` is 60s;
/// a legacy app's clients send their heads in well under a second).
const DEFAULT_CLIENT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `server.client_keepalive_timeout` when unset.
const DEFAULT_CLIENT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// `server.max_client_connections` when unset.
const DEFAULT_MAX_CLIENT_CONNECTIONS: usize = 10_000;

/// Claims a token may carry besides `user_id`, when the identity has them.
const STANDARD_CLAIMS: [&str; 2] = ["email", "name"];

impl Config {
    /// Reads and validates a config file.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                "-c",
                format!("cannot read config file {}: {e}", path.display()),
            )
        })?;
        Self::from_yaml(&text, &|name| std::env::var(name).ok())
    }

    /// Parses and validates YAML; `env` looks up environment variables (for tests).
    pub fn from_yaml(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        let file: FileConfig = serde_yaml::from_str(text).map_err(yaml_error)?;
        validate(file, env)
    }
}

/// Turns a serde_yaml error into a key-naming error.
fn yaml_error(e: serde_yaml::Error) -> ConfigError {
    let msg = e.to_string();
    // serde_yaml prefixes errors with the dotted path of the offending node: "a.b[0]: ...".
    let (path, rest) = match msg.split_once(": ") {
        Some((p, r)) if !p.contains(' ') => (p.to_string(), r.to_string()),
        _ => ("(file)".to_string(), msg.clone()),
    };
    let key = match rest.split('`').nth(1) {
        Some(field) if rest.starts_with("unknown field") => {
            if path == "(file)" {
                field.to_string()
            } else {
                format!("{path}.{field}")
            }
        }
        _ => path,
    };
    if key.ends_with("secret_env") || key.ends_with("secret_file") {
        // serde quotes the offending value, which may be the secret pasted by mistake.
        return ConfigError::new(key, "must be a single string: the name of an environment variable, or the path of a file, holding the Messenger secret");
    }
    let hint = if rest.starts_with("unknown field") || rest.starts_with("unknown variant") {
        " (check the spelling against conf/intercom-secure-proxy.yaml)"
    } else {
        ""
    };
    ConfigError::new(key, format!("{rest}{hint}"))
}

fn duration(key: &str, value: Option<&str>, default: Duration) -> Result<Duration> {
    match value {
        None => Ok(default),
        Some(v) => humantime::parse_duration(v.trim()).map_err(|e| {
            ConfigError::new(
                key,
                format!("invalid duration {v:?} ({e}); write it like \"500ms\", \"30s\" or \"1h\""),
            )
        }),
    }
}

/// A duration that must not be zero (a zero timeout fails every request).
fn positive_duration(key: &str, value: Option<&str>, default: Duration) -> Result<Duration> {
    let d = duration(key, value, default)?;
    if d.is_zero() {
        return Err(ConfigError::new(
            key,
            format!("must be above zero (a zero timeout fails every request); the default is {}", humantime::format_duration(default)),
        ));
    }
    Ok(d)
}

fn socket_addr(key: &str, s: &str) -> Result<SocketAddr> {
    s.parse::<SocketAddr>().map_err(|_| {
        ConfigError::new(
            key,
            format!("{s:?} is not an IP:port address; write it like \"127.0.0.1:8080\""),
        )
    })
}

fn header_name(key: &str, s: &str) -> Result<String> {
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b));
    if !ok {
        return Err(ConfigError::new(
            key,
            format!("{s:?} is not a valid header name; write it like \"X-Forwarded-User\""),
        ));
    }
    Ok(s.to_ascii_lowercase())
}

fn json_pointer(key: &str, s: &str) -> Result<String> {
    if !(s.is_empty() || s.starts_with('/')) {
        return Err(ConfigError::new(
            key,
            format!("{s:?} is not a JSON pointer; write it like \"/id\" or \"/user/email\""),
        ));
    }
    Ok(s.to_string())
}

fn validate(f: FileConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
    if f.listen.is_empty() {
        return Err(ConfigError::new(
            "listen",
            "at least one listen address is required, e.g. listen: [\"127.0.0.1:8080\"]",
        ));
    }
    let listen = f
        .listen
        .iter()
        .enumerate()
        .map(|(i, s)| socket_addr(&format!("listen[{i}]"), s))
        .collect::<Result<Vec<_>>>()?;
    for (i, a) in listen.iter().enumerate() {
        if let Some(earlier) = listen[..i].iter().find(|b| binds_overlap(a, b)) {
            return Err(ConfigError::new(
                format!("listen[{i}]"),
                format!("{a} overlaps {earlier}, listed earlier: the second bind would fail; list each address once"),
            ));
        }
    }

    let upstream = validate_upstream(f.upstream)?;
    let server = validate_server(f.server)?;
    let intercom = validate_intercom(f.intercom, env)?;
    let identity = validate_identity(f.identity, &intercom)?;
    let inject = validate_inject(f.inject)?;
    let logout = validate_logout(f.logout)?;
    Ok(Config {
        listen,
        upstream,
        server,
        intercom,
        identity,
        inject,
        logout,
    })
}

/// The permission bits of `path` when group or others may read it.
fn group_or_other_readable(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then_some(mode)
}

/// Whether two listen addresses cannot both be bound: the same port on the same address,
/// or on a wildcard address of the same family that covers the other.
fn binds_overlap(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.port() == b.port()
        && (a.ip() == b.ip()
            || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified())))
}

fn validate_upstream(u: Option<FileUpstream>) -> Result<UpstreamConfig> {
    let u = u.ok_or_else(|| {
        ConfigError::new(
            "upstream",
            "the upstream section is required, e.g. upstream: {addresses: [\"127.0.0.1:3000\"]}",
        )
    })?;
    if u.addresses.is_empty() {
        return Err(ConfigError::new(
            "upstream.addresses",
            "at least one upstream address is required, e.g. [\"127.0.0.1:3000\"]",
        ));
    }
    for (i, a) in u.addresses.iter().enumerate() {
        let resolves = a.to_socket_addrs().map(|mut it| it.next().is_some());
        if !matches!(resolves, Ok(true)) {
            return Err(ConfigError::new(
                format!("upstream.addresses[{i}]"),
                format!("{a:?} is not a resolvable host:port; write it like \"127.0.0.1:3000\""),
            ));
        }
    }
    let sni = u.sni.unwrap_or_default();
    if u.tls && sni.is_empty() {
        return Err(ConfigError::new(
            "upstream.sni",
            "a TLS upstream needs the server name to verify, e.g. sni: app.internal",
        ));
    }
    let health_check_interval = if u.addresses.len() > 1 {
        Some(positive_duration(
            "upstream.health_check_interval",
            u.health_check_interval.as_deref(),
            Duration::from_secs(5),
        )?)
    } else {
        None
    };
    Ok(UpstreamConfig {
        addresses: u.addresses,
        tls: u.tls,
        sni,
        connect_timeout: positive_duration(
            "upstream.connect_timeout",
            u.connect_timeout.as_deref(),
            Duration::from_secs(5),
        )?,
        read_timeout: positive_duration(
            "upstream.read_timeout",
            u.read_timeout.as_deref(),
            Duration::from_secs(60),
        )?,
        health_check_interval,
    })
}

fn validate_server(s: FileServer) -> Result<ServerSettings> {
    let threads = s.threads.unwrap_or(1);
    if threads == 0 || threads > 1024 {
        return Err(ConfigError::new(
            "server.threads",
            "must be between 1 and 1024 (one per core is a good start)",
        ));
    }
    let absolute = |key: &str, p: Option<PathBuf>, default: &str| -> Result<PathBuf> {
        let p = p.unwrap_or_else(|| PathBuf::from(default));
        if !p.is_absolute() {
            return Err(ConfigError::new(
                key,
                format!("{} must be an absolute path", p.display()),
            ));
        }
        Ok(p)
    };
    Ok(ServerSettings {
        threads,
        grace_period: duration(
            "server.grace_period",
            s.grace_period.as_deref(),
            Duration::from_secs(30),
        )?,
        graceful_shutdown_timeout: duration(
            "server.graceful_shutdown_timeout",
            s.graceful_shutdown_timeout.as_deref(),
            Duration::from_secs(5),
        )?,
        pid_file: absolute(
            "server.pid_file",
            s.pid_file,
            "/tmp/intercom-secure-proxy.pid",
        )?,
        upgrade_sock: absolute(
            "server.upgrade_sock",
            s.upgrade_sock,
            "/tmp/intercom-secure-proxy-upgrade.sock",
        )?,
        error_log: s.error_log,
        upstream_keepalive_pool_size: s.upstream_keepalive_pool_size.unwrap_or(128),
        client_header_timeout: positive_duration(
            "server.client_header_timeout",
            s.client_header_timeout.as_deref(),
            DEFAULT_CLIENT_HEADER_TIMEOUT,
        )?,
        client_keepalive_timeout: duration(
            "server.client_keepalive_timeout",
            s.client_keepalive_timeout.as_deref(),
            DEFAULT_CLIENT_KEEPALIVE_TIMEOUT,
        )?,
        max_client_connections: match s.max_client_connections.unwrap_or(DEFAULT_MAX_CLIENT_CONNECTIONS) {
            0 => {
                return Err(ConfigError::new(
                    "server.max_client_connections",
                    "must be at least 1, e.g. 10000",
                ))
            }
            n => n,
        },
    })
}

fn validate_intercom(
    i: Option<FileIntercom>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<IntercomConfig> {
    let i = i.ok_or_else(|| {
        ConfigError::new(
            "intercom",
            "the intercom section is required (app_id and secret_env or secret_file)",
        )
    })?;
    if i.secret.is_some() {
        return Err(ConfigError::new(
            "intercom.secret",
            "secrets are never written in the config file; use secret_env (an environment variable name) or secret_file (a path)",
        ));
    }
    let app_id = i.app_id.unwrap_or_default().trim().to_string();
    if app_id.is_empty() {
        return Err(ConfigError::new(
            "intercom.app_id",
            "the Intercom workspace id is required (Settings > Installation), e.g. app_id: abc12345",
        ));
    }
    if !app_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(ConfigError::new(
            "intercom.app_id",
            format!("{app_id:?} is not an Intercom app id (letters and digits only)"),
        ));
    }
    let api_base = match i.api_base.as_deref().map(str::trim) {
        None | Some("") => API_BASES[0].1.to_string(),
        Some(v) => match API_BASES.iter().find(|(k, _)| k.eq_ignore_ascii_case(v)) {
            Some((_, url)) => url.to_string(),
            None if v.starts_with("https://")
                && v.len() > "https://".len()
                && !v["https://".len()..].contains(['/', '"', '\'', '<', '>', '\\', ' ']) =>
            {
                v.to_string()
            }
            None => {
                return Err(ConfigError::new(
                    "intercom.api_base",
                    format!("{v:?} is neither us, eu, au nor an https://host URL without a path"),
                ))
            }
        },
    };
    let (secret, secret_source) = match (i.secret_env, i.secret_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "intercom.secret_env",
                "set only one of secret_env and secret_file",
            ))
        }
        (None, None) => {
            return Err(ConfigError::new(
                "intercom.secret_env",
                "the Messenger secret is required: set secret_env to the name of an environment variable holding it, or secret_file to a file path",
            ))
        }
        (Some(name), None) => match env(&name) {
            Some(v) if !v.trim().is_empty() => {
                (Secret::new(v.trim().as_bytes()), SecretSource::Env(name))
            }
            _ => {
                // The name is not repeated: it may be the secret itself, pasted by mistake.
                return Err(ConfigError::new(
                    "intercom.secret_env",
                    "the environment variable it names is not set or is empty; set secret_env to the variable's name (not the secret) and export the Messenger secret in it",
                ))
            }
        },
        (None, Some(path)) => match std::fs::read(&path) {
            Ok(bytes) if !bytes.trim_ascii().is_empty() => (
                Secret::new(bytes.trim_ascii().to_vec()),
                SecretSource::File(path),
            ),
            Ok(_) => {
                return Err(ConfigError::new(
                    "intercom.secret_file",
                    "the file it names is empty; put the Messenger secret in it",
                ))
            }
            Err(e) => {
                // The path is not repeated: it may be the secret itself, pasted by mistake.
                return Err(ConfigError::new(
                    "intercom.secret_file",
                    format!("the file it names cannot be read ({}); set secret_file to the path of a file holding the Messenger secret", e.kind()),
                ))
            }
        },
    };
    let token_lifetime = duration(
        "intercom.token_lifetime",
        i.token_lifetime.as_deref(),
        Duration::from_secs(3600),
    )?;
    if token_lifetime < Duration::from_secs(60) || token_lifetime > Duration::from_secs(7 * 86400)
    {
        return Err(ConfigError::new(
            "intercom.token_lifetime",
            "must be between 1m and 7d (Intercom suggests 1h to 2h)",
        ));
    }
    let claims = i
        .claims
        .unwrap_or_else(|| STANDARD_CLAIMS.iter().map(|s| s.to_string()).collect());
    for (n, c) in claims.iter().enumerate() {
        if c == "user_id" || c == "exp" || c == "iat" || c.is_empty() {
            return Err(ConfigError::new(
                format!("intercom.claims[{n}]"),
                format!("{c:?} cannot be listed: user_id, iat and exp are always set by the proxy"),
            ));
        }
    }
    Ok(IntercomConfig {
        app_id,
        api_base,
        secret,
        secret_source,
        token_lifetime,
        claims,
    })
}

fn validate_identity(id: FileIdentity, intercom: &IntercomConfig) -> Result<IdentityConfig> {
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

fn validate_inject(i: FileInject) -> Result<InjectConfig> {
    let content_types = i
        .content_types
        .unwrap_or_else(|| vec!["text/html".into(), "application/xhtml+xml".into()]);
    for (n, t) in content_types.iter().enumerate() {
        if !t.contains('/') || t.contains(';') {
            return Err(ConfigError::new(
                format!("inject.content_types[{n}]"),
                format!("{t:?} is not a media type without parameters, e.g. text/html"),
            ));
        }
    }
    let exclude_paths = i
        .exclude_paths
        .iter()
        .enumerate()
        .map(|(n, p)| {
            PathPattern::parse(p).map_err(|m| ConfigError::new(format!("inject.exclude_paths[{n}]"), m))
        })
        .collect::<Result<Vec<_>>>()?;
    let compression_level = i.compression_level.unwrap_or(5);
    if compression_level > 11 {
        return Err(ConfigError::new(
            "inject.compression_level",
            "must be 0 (off) to 11; 5 is a good balance",
        ));
    }
    let max_scan_bytes = i.max_scan_bytes.unwrap_or(1 << 20);
    if max_scan_bytes < 1024 {
        return Err(ConfigError::new(
            "inject.max_scan_bytes",
            "must be at least 1024 bytes",
        ));
    }
    let parser_memory_limit = i.parser_memory_limit.unwrap_or(256 << 10);
    if parser_memory_limit < 16 << 10 {
        return Err(ConfigError::new(
            "inject.parser_memory_limit",
            "must be at least 16384 bytes",
        ));
    }
    Ok(InjectConfig {
        content_types: content_types
            .into_iter()
            .map(|t| t.trim().to_ascii_lowercase())
            .collect(),
        exclude_paths,
        auto_include: i.auto_include,
        honor_no_transform: i.honor_no_transform.unwrap_or(true),
        max_scan_bytes,
        parser_memory_limit,
        compression_level,
    })
}

fn validate_logout(l: FileLogout) -> Result<LogoutConfig> {
    let mut paths = Vec::new();
    for (n, entry) in l.paths.iter().enumerate() {
        let key = format!("logout.paths[{n}]");
        let (methods, path) = match entry.trim().split_once(' ') {
            Some((m, p)) => (m, p.trim()),
            None => ("GET|POST", entry.trim()),
        };
        let methods: Vec<String> = methods.split('|').map(|m| m.trim().to_ascii_uppercase()).collect();
        if methods.iter().any(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(ConfigError::new(
                key,
                format!("{entry:?} should look like \"GET|POST /logout\""),
            ));
        }
        let pattern = PathPattern::parse(path).map_err(|m| ConfigError::new(key.clone(), m))?;
        paths.push((methods, pattern));
    }
    let mode = match l.mode.as_deref() {
        None | Some("marker") => LogoutMode::Marker,
        Some("interstitial") => LogoutMode::Interstitial,
        Some(other) => {
            return Err(ConfigError::new(
                "logout.mode",
                format!("{other:?} is not a logout mode; use marker or interstitial"),
            ))
        }
    };
    let cookie_domain = match l.cookie_domain.as_deref().map(|d| d.trim().trim_start_matches('.')) {
        None | Some("") => None,
        Some(d) if d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') => {
            Some(d.to_ascii_lowercase())
        }
        Some(d) => {
            return Err(ConfigError::new(
                "logout.cookie_domain",
                format!("{d:?} is not a domain name, e.g. example.com"),
            ))
        }
    };
    Ok(LogoutConfig {
        paths,
        detect_cookie_expiry: l.detect_cookie_expiry.unwrap_or(true),
        mode,
        cookie_domain,
        allowed_redirect_hosts: l
            .allowed_redirect_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_patterns() {
        let p = PathPattern::parse("/password/*").unwrap();
        assert!(p.matches("/password/reset"));
        assert!(!p.matches("/passwords"));
        let p = PathPattern::parse("/users/*/edit").unwrap();
        assert!(p.matches("/users/42/edit"));
        assert!(!p.matches("/users/42/show"));
        assert!(PathPattern::parse("/exact").unwrap().matches("/exact"));
        assert!(!PathPattern::parse("/exact").unwrap().matches("/exact/more"));
        assert!(PathPattern::parse("relative").is_err());
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new(b"super-secret-value".to_vec());
        let shown = format!("{s:?}");
        assert!(!shown.contains("super"), "{shown}");
    }
}
