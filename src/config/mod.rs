//! Configuration: the YAML file format and its validation into [`Config`].
//!
//! The file is parsed into `File*` structs that mirror the YAML exactly (unknown keys
//! are rejected), then validated into the internal [`Config`], where durations are
//! parsed, the secret is loaded and every default is filled in. Every problem is
//! reported as a [`ConfigError`] naming the offending key, so an operator can fix the
//! file without reading code. Nothing listens before validation has succeeded.
//!
//! One module per section of the file holds its shape, its validated type, its
//! defaults and its validation; this one holds the top level and the shared helpers,
//! and [`summary`](Config::summary) and [`warnings`](Config::warnings) are what
//! `check` prints.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

mod admin;
mod claim_fields;
mod endpoint_format;
mod fields;
mod identity;
mod inject;
mod intercom;
mod jwt;
mod listen;
mod log;
mod logout;
mod messenger_mode;
mod redis_auth;
mod redis_session;
mod rollout;
mod secret_source;
mod server;
mod shared_cache;
mod site;
mod summary;
mod tagged;
pub use redis_session::redact_url;
pub(crate) mod upstream;

pub use admin::AdminConfig;
use admin::{validate_admin, FileAdmin};
use endpoint_format::{endpoint_field, endpoint_format};
pub use endpoint_format::{EndpointFormat, HtmlField, DEFAULT_ENDPOINT_FORMAT};
pub use fields::{CacheSettings, FieldPointers};
use identity::{validate_identity, FileIdentity};
pub use identity::{EndpointConfig, IdentityConfig, SourceConfig, TrustedHeaderConfig};
use inject::{validate_inject, FileInject};
pub use inject::{BadPattern, InjectConfig, OnIdentityFailure, PathPattern};
pub use intercom::IntercomConfig;
use intercom::{validate_intercom, FileIntercom};
pub(crate) use jwt::pem_key;
pub use jwt::{
    JwtCookieConfig, JwtVerifyConfig, KeySource, Preset, SignedHeaderConfig, TokenFormat,
    TokenLocation, GOOGLE_IAP_JWKS_URL,
};
use listen::{validate_listen, FileListen};
pub use listen::{Listener, TlsListener};
use log::{validate_log, FileLog};
pub use log::{AccessLog, LogConfig, LogFormat};
use logout::{validate_logout, FileLogout};
pub use logout::{LogoutConfig, LogoutMode};
use messenger_mode::{messenger_mode, refresh_margin};
pub use messenger_mode::{MessengerMode, DEFAULT_MESSENGER_MODE, DEFAULT_TOKEN_REFRESH_MARGIN};
pub use redis_auth::RedisAuth;
pub use redis_session::{
    CookieSignature, RedisCa, RedisSessionConfig, RedisTarget, SessionFormat,
    SESSION_ID_PLACEHOLDER, SESSION_ID_SHA256_PLACEHOLDER,
};
use rollout::{validate_rollout, FileRollout};
pub use rollout::{RolloutConfig, RolloutMode, DEFAULT_REPORT_PATH, DEFAULT_ROLLOUT_PERCENT};
pub use server::ServerSettings;
use server::{validate_server, FileServer};
pub(crate) use shared_cache::subkey;
pub use shared_cache::{SharedCacheConfig, DEFAULT_SHARED_CACHE_TIMEOUT};
pub(crate) use site::best_site;
use site::{site_sections, validate_site, FileSite, SiteSections};
pub use site::{BadHost, HostPattern, SiteConfig};
pub use upstream::UpstreamConfig;
use upstream::{validate_upstream, FileUpstream};

/// A configuration problem, naming the key at fault and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config error at `{key}`: {message}")]
pub struct ConfigError {
    /// Dotted path of the offending key, e.g. `intercom.token_lifetime`.
    pub key: String,
    /// What is wrong and what to do instead.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { key: key.into(), message: message.into() }
    }
}

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
///
/// ```
/// use intercom_secure_proxy::Config;
///
/// let yaml = r#"
/// listen: ["127.0.0.1:8080"]
/// upstream: {addresses: ["127.0.0.1:3000"]}
/// intercom: {app_id: abc12345, secret_env: INTERCOM_SECRET}
/// identity: {sources: [{type: current_user_endpoint, path: /api/me, cookies: [session_id]}]}
/// "#;
/// let env = |name: &str| (name == "INTERCOM_SECRET").then(|| "s3cret".to_string());
/// let config = Config::from_yaml(yaml, &env)?;
/// assert_eq!(config.site().intercom.app_id, "abc12345");
/// assert!(!config.summary().contains("s3cret"));
///
/// let err = Config::from_yaml(&yaml.replace("app_id: abc12345", "app_id: \"\""), &env).unwrap_err();
/// assert_eq!(err.key, "intercom.app_id");
/// # Ok::<(), intercom_secure_proxy::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses the proxy listens on.
    pub listen: Vec<Listener>,
    /// Pingora server settings.
    pub server: ServerSettings,
    /// The access log.
    pub log: LogConfig,
    /// The admin listener (metrics, health).
    pub admin: AdminConfig,
    /// The apps behind the proxy: one that answers every host, or those of `sites:`.
    pub sites: Vec<SiteConfig>,
}

// ---------------------------------------------------------------------------
// The top level of the file; each section's shape, defaults and validation live in
// its own module.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    listen: Vec<FileListen>,
    upstream: Option<FileUpstream>,
    #[serde(default)]
    server: FileServer,
    #[serde(default)]
    log: FileLog,
    #[serde(default)]
    admin: FileAdmin,
    intercom: Option<FileIntercom>,
    identity: Option<FileIdentity>,
    #[serde(default)]
    inject: FileInject,
    #[serde(default)]
    logout: FileLogout,
    rollout: Option<FileRollout>,
    sites: Option<Vec<FileSite>>,
}

/// Claims a token may carry besides `user_id`, when the identity has them.
const STANDARD_CLAIMS: [&str; 2] = ["email", "name"];

impl Config {
    /// The first site: the only one of a file without `sites:`.
    pub fn site(&self) -> &SiteConfig {
        &self.sites[0]
    }

    /// The site that answers `host` (lowercase, no port, IPv6 without brackets), as the
    /// proxy chooses it.
    pub fn site_for_host(&self, host: &str) -> Option<&SiteConfig> {
        best_site(self.sites.iter().map(|s| s.hosts.as_slice()), host).map(|i| &self.sites[i])
    }

    /// Reads and validates a config file.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("-c", format!("cannot read config file {}: {e}", path.display()))
        })?;
        Self::from_yaml(&text, &|name| std::env::var(name).ok())
    }

    /// Parses and validates YAML; `env` looks up environment variables (for tests).
    pub fn from_yaml(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        let file: FileConfig =
            serde_path_to_error::deserialize(yaml_serde::Deserializer::from_str(text))
                .map_err(yaml_error)?;
        validate(file, env)
    }
}

/// Turns a parse error into a key-naming error. The key is the typed path serde walked
/// to the offending node (`intercom.colour`, `identity.sources[0].type`), so no error
/// text is parsed for it; the parser's line and column stay in the message.
fn yaml_error(e: serde_path_to_error::Error<yaml_serde::Error>) -> ConfigError {
    let key = match e.path().iter().next() {
        None => "(file)".to_string(),
        Some(_) => e.path().to_string(),
    };
    let last = match e.path().iter().next_back() {
        Some(serde_path_to_error::Segment::Map { key }) => key.as_str(),
        _ => "",
    };
    if matches!(last, "secret_env" | "secret_file") {
        // serde quotes the offending value, which may be the secret pasted by mistake.
        let what =
            if key.contains("identity.") { "the app's JWT secret" } else { "the Messenger secret" };
        return ConfigError::new(key, format!("must be a single string: the name of an environment variable, or the path of a file, holding {what}"));
    }
    if matches!(last, "token_env" | "token_file") {
        return ConfigError::new(key, "must be a single string: the name of an environment variable, or the path of a file, holding the admin token");
    }
    let message = parser_message(e.inner());
    let hint = if message.starts_with("unknown field") || message.starts_with("unknown variant") {
        " (check the spelling against conf/intercom-secure-proxy.yaml)"
    } else if message.starts_with("repetition limit exceeded") {
        // An alias bomb ("billion laughs"): refused before it is expanded.
        " (the file's aliases (*name) expand to too many values; write the values out instead)"
    } else {
        ""
    };
    ConfigError::new(key, format!("{message}{hint}"))
}

/// The parser's message without the dotted path it puts in front of it (`a.b[0]: `):
/// the key already names the node, from the typed path.
fn parser_message(e: &yaml_serde::Error) -> String {
    let text = e.to_string();
    match text.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => rest.to_string(),
        _ => text,
    }
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
            format!(
                "must be above zero (a zero timeout fails every request); the default is {}",
                humantime::format_duration(default)
            ),
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
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b));
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
    let listen = validate_listen(f.listen)?;

    let server = validate_server(f.server)?;
    let log = validate_log(f.log)?;
    let admin = validate_admin(f.admin, &listen, env)?;
    let inject = validate_inject(f.inject)?;
    let logout = validate_logout(f.logout)?;
    let rollout = validate_rollout(f.rollout.unwrap_or_default(), &inject.token_refresh_path)?;
    let sites = match f.sites {
        None => vec![validate_site(
            SiteSections {
                hosts: vec![HostPattern::Any],
                name: None,
                upstream: f.upstream,
                intercom: f.intercom,
                identity: f.identity.unwrap_or_default(),
                inject: None,
                logout: None,
                rollout: None,
            },
            "",
            (&inject, &logout, &rollout),
            env,
        )?],
        Some(sites) => {
            let single = [
                ("upstream", f.upstream.is_some()),
                ("intercom", f.intercom.is_some()),
                ("identity", f.identity.is_some()),
            ];
            if let Some((key, _)) = single.iter().find(|(_, present)| *present) {
                return Err(ConfigError::new(
                    *key,
                    format!("with sites:, each site has its own {key}; move this section into the sites that use it"),
                ));
            }
            site_sections(sites)?
                .into_iter()
                .enumerate()
                .map(|(n, s)| {
                    validate_site(s, &format!("sites[{n}]."), (&inject, &logout, &rollout), env)
                })
                .collect::<Result<Vec<_>>>()?
        }
    };
    Ok(Config { listen, server, log, admin, sites })
}

/// Whether two listen addresses cannot both be bound: the same port on the same address,
/// or on a wildcard address of the same family that covers the other.
fn binds_overlap(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.port() == b.port()
        && (a.ip() == b.ip()
            || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified())))
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
