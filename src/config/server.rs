//! `server`: Pingora settings and client limits, with their defaults.

use super::*;

/// Pingora server settings.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// Whether those threads share one task scheduler that moves work between them
    /// (Pingora's `work_stealing`), or each runs its own connections, as nginx's workers
    /// do. Defaults to sharing with more than one thread; with one there is nothing to
    /// move, and a single-threaded scheduler saves its bookkeeping on every wake-up.
    pub work_stealing: bool,
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
    /// Time a client has to send a whole request head, and before it, to finish its TLS
    /// handshake (nginx `client_header_timeout`).
    pub client_header_timeout: Duration,
    /// Time an idle keep-alive client connection is kept between requests (nginx
    /// `keepalive_timeout`); zero turns client keep-alive off.
    pub client_keepalive_timeout: Duration,
    /// Client connections served at once; further ones wait in the kernel's backlog.
    pub max_client_connections: usize,
}

/// Default of `server.threads`.
pub const DEFAULT_THREADS: usize = 1;
/// Smallest `server.threads` accepted.
pub const MIN_THREADS: usize = 1;
/// Largest `server.threads` accepted.
pub const MAX_THREADS: usize = 1024;
/// Default of `server.grace_period`.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);
/// Default of `server.graceful_shutdown_timeout`.
pub const DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default of `server.pid_file`.
pub const DEFAULT_PID_FILE: &str = "/tmp/intercom-secure-proxy.pid";
/// Default of `server.upgrade_sock`.
pub const DEFAULT_UPGRADE_SOCK: &str = "/tmp/intercom-secure-proxy-upgrade.sock";
/// Default of `server.upstream_keepalive_pool_size`.
pub const DEFAULT_UPSTREAM_KEEPALIVE_POOL_SIZE: usize = 128;
/// Default of `server.client_header_timeout` (nginx's `client_header_timeout` is 60s;
/// a legacy app's clients send their heads in well under a second).
pub const DEFAULT_CLIENT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of `server.client_keepalive_timeout`.
pub const DEFAULT_CLIENT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of `server.max_client_connections`.
pub const DEFAULT_MAX_CLIENT_CONNECTIONS: usize = 10_000;
/// Smallest `server.max_client_connections` accepted.
pub const MIN_MAX_CLIENT_CONNECTIONS: usize = 1;

/// Default of `server.work_stealing`: on when there is another thread to move work to.
pub fn default_work_stealing(threads: usize) -> bool {
    threads > 1
}

impl Default for ServerSettings {
    /// What an empty `server:` section validates to: every default, and the error log
    /// on stderr.
    fn default() -> Self {
        ServerSettings {
            threads: DEFAULT_THREADS,
            work_stealing: default_work_stealing(DEFAULT_THREADS),
            grace_period: DEFAULT_GRACE_PERIOD,
            graceful_shutdown_timeout: DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT,
            pid_file: PathBuf::from(DEFAULT_PID_FILE),
            upgrade_sock: PathBuf::from(DEFAULT_UPGRADE_SOCK),
            error_log: None,
            upstream_keepalive_pool_size: DEFAULT_UPSTREAM_KEEPALIVE_POOL_SIZE,
            client_header_timeout: DEFAULT_CLIENT_HEADER_TIMEOUT,
            client_keepalive_timeout: DEFAULT_CLIENT_KEEPALIVE_TIMEOUT,
            max_client_connections: DEFAULT_MAX_CLIENT_CONNECTIONS,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileServer {
    threads: Option<usize>,
    work_stealing: Option<bool>,
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
    let threads = s.threads.unwrap_or(DEFAULT_THREADS);
    if !(MIN_THREADS..=MAX_THREADS).contains(&threads) {
        return Err(ConfigError::new(
            "server.threads",
            format!(
                "must be between {MIN_THREADS} and {MAX_THREADS} (one per core is a good start)"
            ),
        ));
    }
    let absolute = |key: &str, p: Option<PathBuf>, default: &str| -> Result<PathBuf> {
        let p = p.unwrap_or_else(|| PathBuf::from(default));
        if !p.is_absolute() {
            return Err(ConfigError::new(key, format!("{} must be an absolute path", p.display())));
        }
        Ok(p)
    };
    Ok(ServerSettings {
        threads,
        work_stealing: s.work_stealing.unwrap_or(default_work_stealing(threads)),
        grace_period: duration(
            "server.grace_period",
            s.grace_period.as_deref(),
            DEFAULT_GRACE_PERIOD,
        )?,
        graceful_shutdown_timeout: duration(
            "server.graceful_shutdown_timeout",
            s.graceful_shutdown_timeout.as_deref(),
            DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT,
        )?,
        pid_file: absolute("server.pid_file", s.pid_file, DEFAULT_PID_FILE)?,
        upgrade_sock: absolute("server.upgrade_sock", s.upgrade_sock, DEFAULT_UPGRADE_SOCK)?,
        error_log: s.error_log,
        upstream_keepalive_pool_size: s.upstream_keepalive_pool_size.unwrap_or(DEFAULT_UPSTREAM_KEEPALIVE_POOL_SIZE),
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
            n if n < MIN_MAX_CLIENT_CONNECTIONS => {
                return Err(ConfigError::new(
                    "server.max_client_connections",
                    format!("must be at least {MIN_MAX_CLIENT_CONNECTIONS}, e.g. {DEFAULT_MAX_CLIENT_CONNECTIONS}"),
                ))
            }
            n => n,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_matches_an_empty_section() {
        let validated = validate_server(FileServer::default()).unwrap();
        assert_eq!(format!("{:?}", ServerSettings::default()), format!("{validated:?}"));
    }

    #[test]
    fn work_stealing_follows_the_thread_count_unless_set() {
        let with = |threads, work_stealing| {
            validate_server(FileServer {
                threads: Some(threads),
                work_stealing,
                ..FileServer::default()
            })
            .unwrap()
            .work_stealing
        };
        assert!(!with(1, None), "one thread: nothing to steal");
        assert!(with(2, None));
        assert!(with(1, Some(true)));
        assert!(!with(4, Some(false)));
    }
}
