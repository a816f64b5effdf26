//! `server`: Pingora settings and client limits, with their defaults.

use super::*;

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

/// `server.client_header_timeout` when unset (nginx's `client_header_timeout` is 60s;
/// a legacy app's clients send their heads in well under a second).
const DEFAULT_CLIENT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `server.client_keepalive_timeout` when unset.
const DEFAULT_CLIENT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// `server.max_client_connections` when unset.
const DEFAULT_MAX_CLIENT_CONNECTIONS: usize = 10_000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileServer {
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

pub(super) fn validate_server(s: FileServer) -> Result<ServerSettings> {
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
