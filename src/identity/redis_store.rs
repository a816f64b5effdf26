//! A connection to one Redis (a redis_session source's, or the shared identity cache):
//! one server through the `redis` crate's `ConnectionManager` (multiplexed, reconnects
//! by itself after Redis was down),
//! or a Cluster through its `ClusterConnection` (follows slots and reconnects). TLS
//! (`rediss://`) goes through rustls. The connection is made on first use, inside the
//! proxy's runtime, so a Redis that is down at start does not stop the proxy.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use tokio::sync::OnceCell;

use crate::config::{RedisAuth, RedisCa, RedisTarget};

/// Reconnect attempts the manager makes per failure before it reports the error; the
/// next request starts a new round, so a Redis that comes back is found again.
const RECONNECT_RETRIES: usize = 2;
/// After Redis failed to answer, reads fail at once for this long instead of each page
/// waiting the whole timeout; the first read after it tries Redis again, so tokens come
/// back within this of Redis returning.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why Redis gave no answer: the error's kind only. The redis crate's texts may
/// include the server's reply or the URL, and neither belongs in a log line.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// No answer within the source's timeout.
    #[error("Redis did not answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// Could not connect, or the connection broke.
    #[error("cannot reach Redis ({0})")]
    Unreachable(&'static str),
    /// Redis failed moments ago; not asked again yet.
    #[error(
        "Redis failed less than {} ago; not asked again yet",
        humantime::format_duration(RETRY_AFTER)
    )]
    Resting,
    /// Redis answered with an error.
    #[error("Redis refused the command ({0:?})")]
    Refused(redis::ErrorKind),
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        if e.is_timeout() {
            StoreError::Unreachable("timed out")
        } else if e.is_connection_refusal() {
            StoreError::Unreachable("connection refused")
        } else if e.is_connection_dropped() || e.is_io_error() {
            StoreError::Unreachable("connection lost")
        } else {
            StoreError::Refused(e.kind())
        }
    }
}

enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Commands to the configured server or cluster.
pub struct Store {
    target: RedisTarget,
    tls_ca: Option<RedisCa>,
    auth: RedisAuth,
    timeout: Duration,
    connection: OnceCell<Connection>,
    /// Until when reads fail at once, after Redis failed to answer.
    resting_until: Mutex<Option<Instant>>,
}

impl Store {
    /// A store that connects on first use; `timeout` bounds connecting and each read;
    /// `tls_ca` replaces the system's roots for `rediss://`; `auth` adds a user and
    /// password to what the URLs carry.
    pub fn new(
        target: RedisTarget,
        tls_ca: Option<RedisCa>,
        auth: RedisAuth,
        timeout: Duration,
    ) -> Self {
        Store {
            target,
            tls_ca,
            auth,
            timeout,
            connection: OnceCell::new(),
            resting_until: Mutex::new(None),
        }
    }

    /// The configured password, as the client takes it (validation made sure it is UTF-8).
    fn password(&self) -> Option<&str> {
        self.auth
            .password
            .as_ref()
            .and_then(|(secret, _)| std::str::from_utf8(secret.expose()).ok())
    }

    /// `url` with the configured user and password added.
    fn connection_info(&self, url: &str) -> Result<redis::ConnectionInfo, StoreError> {
        use redis::IntoConnectionInfo as _;
        let info = url.into_connection_info()?;
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &self.auth.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = self.password() {
            settings = settings.set_password(password);
        }
        Ok(info.set_redis_settings(settings))
    }

    fn certificates(&self) -> Option<redis::TlsCertificates> {
        self.tls_ca
            .as_ref()
            .map(|ca| redis::TlsCertificates { client_tls: None, root_cert: Some(ca.pem.clone()) })
    }

    /// The value at `key`, `None` when there is none. Bounded by the timeout.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        self.run(cmd).await
    }

    /// Sets `key` to `value` for `ttl` (millisecond precision).
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("PX").arg(millis(ttl));
        self.run(cmd).await
    }

    /// Sets `key` for `ttl` only when it does not exist: `true` when this call set it.
    pub async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(1).arg("NX").arg("PX").arg(millis(ttl));
        let set: Option<String> = self.run(cmd).await?;
        Ok(set.is_some())
    }

    /// Deletes `keys`.
    pub async fn delete(&self, keys: &[&str]) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(keys);
        self.run::<u64>(cmd).await.map(drop)
    }

    /// A `PING`: whether Redis answers within the timeout (for `check` and `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(redis::cmd("PING")).await
    }

    /// Runs one command, bounded by the timeout; while resting after a failure, fails at once.
    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, StoreError> {
        if self.resting() {
            return Err(StoreError::Resting);
        }
        let query = async {
            let connection = self.connection.get_or_try_init(|| self.connect()).await?;
            let value = match connection {
                Connection::Single(c) => cmd.query_async(&mut c.clone()).await?,
                Connection::Cluster(c) => cmd.query_async(&mut c.clone()).await?,
            };
            Ok(value)
        };
        let result = match tokio::time::timeout(self.timeout, query).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        };
        self.note(&result);
        result
    }

    /// Whether Redis failed less than [`RETRY_AFTER`] ago.
    fn resting(&self) -> bool {
        let until = *self.resting_until.lock().unwrap_or_else(|p| p.into_inner());
        until.is_some_and(|t| Instant::now() < t)
    }

    /// A command that could not reach Redis starts a rest; any answer ends it.
    fn note<T>(&self, result: &Result<T, StoreError>) {
        let down = matches!(result, Err(StoreError::Timeout(_) | StoreError::Unreachable(_)));
        *self.resting_until.lock().unwrap_or_else(|p| p.into_inner()) =
            down.then(|| Instant::now() + RETRY_AFTER);
    }

    async fn connect(&self) -> Result<Connection, StoreError> {
        match &self.target {
            RedisTarget::Single(url) => {
                let info = self.connection_info(url)?;
                let client = match self.certificates() {
                    Some(certs) => redis::Client::build_with_tls(info, certs)?,
                    None => redis::Client::open(info)?,
                };
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(RECONNECT_RETRIES)
                    .set_max_delay(self.timeout);
                // Lazy: the first GET connects, and a Redis that is down now is retried
                // by the manager on later requests instead of failing this once-cell.
                Ok(Connection::Single(ConnectionManager::new_lazy_with_config(client, config)?))
            }
            RedisTarget::Cluster(urls) => {
                let mut builder =
                    redis::cluster::ClusterClientBuilder::new(urls.iter().map(String::as_str))
                        .connection_timeout(self.timeout)
                        .response_timeout(self.timeout)
                        .retries(RECONNECT_RETRIES as u32);
                if let Some(certs) = self.certificates() {
                    builder = builder.certs(certs);
                }
                if let Some(user) = &self.auth.username {
                    builder = builder.username(user);
                }
                if let Some(password) = self.password() {
                    builder = builder.password(password);
                }
                let client = builder.build()?;
                Ok(Connection::Cluster(client.get_async_connection().await?))
            }
        }
    }
}

/// A TTL in whole milliseconds, at least one (`PX 0` is an error in Redis).
fn millis(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}
