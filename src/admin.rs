//! The admin listener: Prometheus metrics and health checks, on an address of its own
//! (keep it off the public network).
//!
//! Each path answers `GET` and `HEAD`; any other method gets 405 with `Allow`, so
//! nothing that changes state can be mistaken for having been accepted. The one
//! exception is `PUT /rollout`, and only with a token configured.
//!
//! - `GET /metrics`: the metrics in Prometheus' text format;
//! - `GET /healthz`: 200 while the process serves;
//! - `GET /readyz`: 200 when every site has an app address that accepts a connection
//!   and every configured Redis (of `redis_session` sources and the shared identity
//!   cache) answers a `PING`, else 503
//!   with a one-line reason (for load balancers and Kubernetes);
//! - `GET /rollout`: the rollout in force, `{"mode": ..., "percent": ...}` (with
//!   `sites:`, `{"sites": {"<site>": {...}}}`), and `GET /rollout/<site name>`;
//! - `PUT /rollout` (every site) or `PUT /rollout/<site name>` with
//!   `{"mode": ..., "percent": ...}` (either or both) and `Authorization: Bearer
//!   <token>` (`admin.token_env` or `admin.token_file`): puts it in force for the next
//!   request on every thread until the next restart, and logs it. 401 without the
//!   right token, and 405 when no token is configured, so that an admin listener left
//!   open cannot turn Secure Mode off.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::config::{Config, RolloutMode, Secret};
use crate::identity::redis_probe::{self, ConfiguredRedis};
use crate::metrics::METRICS;
use crate::rollout::{Live, LiveRollout};

/// How long readiness waits for an app address to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The admin application.
pub(crate) struct Admin {
    /// Each site's name for messages (its first host) and its app addresses.
    sites: Vec<(String, Vec<String>)>,
    /// Every configured Redis.
    redis: Vec<ConfiguredRedis>,
    /// Each site's live rollout, with the name `/rollout/<name>` addresses it by.
    rollouts: Vec<SiteRollout>,
    /// The token `PUT /rollout` requires; none: `PUT` is refused.
    token: Option<Secret>,
}

/// One site's live rollout as the admin listener addresses it.
pub(crate) struct SiteRollout {
    /// The site's `name`, when it has one.
    pub(crate) name: Option<String>,
    pub(crate) live: Arc<LiveRollout>,
}

/// The largest `PUT /rollout` body read.
const MAX_ROLLOUT_BODY: usize = 1024;

/// Why a `PUT /rollout` changed nothing.
#[derive(Debug, thiserror::Error)]
enum PutRefused {
    #[error("no admin token is configured (admin.token_env or admin.token_file): the rollout cannot be changed here")]
    NoToken,
    #[error("a PUT needs Authorization: Bearer with the admin token")]
    Unauthorized,
    #[error("the body is not {{\"mode\": \"enforce|report_only|off\", \"percent\": 0-100}} (either or both): {0}")]
    BadBody(String),
}

impl PutRefused {
    fn answer(&self) -> Response<Vec<u8>> {
        let text = format!("{self}\n");
        match self {
            PutRefused::NoToken => method_not_allowed(),
            PutRefused::Unauthorized => {
                let mut response = answer(401, "text/plain; charset=utf-8", text);
                response.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer"),
                );
                response
            }
            PutRefused::BadBody(_) => answer(400, "text/plain; charset=utf-8", text),
        }
    }
}

/// What a `PUT /rollout` body asks for.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RolloutChange {
    mode: Option<String>,
    percent: Option<i64>,
}

impl RolloutChange {
    /// The rollout `now` becomes with this change.
    fn applied_to(&self, now: Live) -> Result<Live, PutRefused> {
        let mode = match self.mode.as_deref() {
            None => now.mode,
            Some(name) => RolloutMode::parse(name)
                .ok_or_else(|| PutRefused::BadBody(format!("unknown mode {name:?}")))?,
        };
        let percent = match self.percent {
            None => now.percent,
            Some(p) => u8::try_from(p)
                .ok()
                .filter(|p| *p <= 100)
                .ok_or_else(|| PutRefused::BadBody(format!("percent {p}")))?,
        };
        Ok(Live { mode, percent })
    }
}

/// Whether `given` is `token`, comparing every byte whatever the first difference.
fn same_token(given: &[u8], token: &[u8]) -> bool {
    given.len() == token.len()
        && given.iter().zip(token).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

impl Admin {
    pub(crate) fn new(config: &Config, rollouts: Vec<SiteRollout>) -> Admin {
        let sites = config
            .sites
            .iter()
            .map(|s| {
                (
                    s.hosts.first().map(|h| h.to_string()).unwrap_or_default(),
                    s.upstream.addresses.clone(),
                )
            })
            .collect();
        let redis = redis_probe::configured(config);
        Admin { sites, redis, rollouts, token: config.admin.token.clone() }
    }

    /// The sites `/rollout` (all) or `/rollout/<name>` addresses; `None` for another path.
    fn addressed(&self, path: &str) -> Option<Vec<&SiteRollout>> {
        match path.strip_prefix("/rollout") {
            Some("") => Some(self.rollouts.iter().collect()),
            Some(rest) => {
                let name = rest.strip_prefix('/')?;
                let site = self.rollouts.iter().find(|s| s.name.as_deref() == Some(name))?;
                Some(vec![site])
            }
            None => None,
        }
    }

    /// `GET /rollout`: the rollout in force, of one site or of each.
    fn show(&self, sites: &[&SiteRollout]) -> Response<Vec<u8>> {
        let body = match sites {
            [one] => one.live.now().to_json(),
            many => {
                let each = many.iter().map(|s| (s.live.site().to_string(), s.live.now().to_json()));
                serde_json::json!({"sites": serde_json::Map::from_iter(each)})
            }
        };
        answer(200, "application/json", body.to_string() + "\n")
    }

    /// `PUT /rollout`: checks the token, reads the change and puts it in force.
    async fn put(
        &self,
        session: &mut ServerSession,
        sites: &[&SiteRollout],
    ) -> Result<Response<Vec<u8>>, PutRefused> {
        let token = self.token.as_ref().ok_or(PutRefused::NoToken)?;
        let given =
            session.req_header().headers.get(http::header::AUTHORIZATION).map(|v| v.as_bytes());
        let bearer = given.and_then(|v| v.strip_prefix(b"Bearer ")).unwrap_or_default();
        if !same_token(bearer, token.expose()) {
            crate::warn_limited!(
                "PUT {}: refused without the admin token (401); the rollout is unchanged",
                session.req_header().uri.path()
            );
            return Err(PutRefused::Unauthorized);
        }
        let change = read_change(session).await?;
        let by = format!("PUT {} on the admin listener", session.req_header().uri.path());
        for site in sites {
            site.live.set(change.applied_to(site.live.now())?, &by);
        }
        Ok(self.show(sites))
    }

    /// `None` when ready, else why not.
    async fn not_ready(&self) -> Option<String> {
        for (site, addresses) in &self.sites {
            let mut up = false;
            for addr in addresses {
                let connect = tokio::net::TcpStream::connect(addr.as_str());
                if matches!(tokio::time::timeout(CONNECT_TIMEOUT, connect).await, Ok(Ok(_))) {
                    up = true;
                    break;
                }
            }
            if !up {
                return Some(format!(
                    "site {site}: no app address accepts connections ({})",
                    addresses.join(", ")
                ));
            }
        }
        for r in &self.redis {
            if let Err(why) = r.store.ping().await {
                let (site, _) = &self.sites[r.site];
                let what = if r.shared_cache { "shared cache Redis" } else { "Redis" };
                return Some(format!("site {site}: {what} {} does not answer ({why})", r.url));
            }
        }
        None
    }
}

/// The body of a `PUT /rollout`, read up to [`MAX_ROLLOUT_BODY`].
async fn read_change(session: &mut ServerSession) -> Result<RolloutChange, PutRefused> {
    let mut body = Vec::new();
    while let Some(chunk) =
        session.read_request_body().await.map_err(|_| PutRefused::BadBody("unreadable".into()))?
    {
        if body.len() + chunk.len() > MAX_ROLLOUT_BODY {
            return Err(PutRefused::BadBody("too long".into()));
        }
        body.extend_from_slice(&chunk);
    }
    let change: RolloutChange =
        serde_json::from_slice(&body).map_err(|e| PutRefused::BadBody(e.to_string()))?;
    if change.mode.is_none() && change.percent.is_none() {
        return Err(PutRefused::BadBody("nothing to change".into()));
    }
    Ok(change)
}

fn answer(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response<Vec<u8>> {
    let body = body.into();
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .unwrap_or_default()
}

/// The admin paths, the only ones it answers.
const PATHS: [&str; 3] = ["/metrics", "/healthz", "/readyz"];

/// Whether a method may read an admin path: `GET`, and `HEAD` (Pingora leaves the body out).
fn is_read(method: &http::Method) -> bool {
    method == http::Method::GET || method == http::Method::HEAD
}

/// 405 for a method other than `GET`/`HEAD`, saying which are allowed.
fn method_not_allowed() -> Response<Vec<u8>> {
    let mut response =
        answer(405, "text/plain; charset=utf-8", "method not allowed: GET or HEAD\n");
    response.headers_mut().insert(http::header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
    response
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let text = "text/plain; charset=utf-8";
        let req = session.req_header();
        let path = req.uri.path().to_string();
        if let Some(sites) = self.addressed(&path) {
            return match req.method {
                ref m if is_read(m) => self.show(&sites),
                http::Method::PUT => {
                    self.put(session, &sites).await.unwrap_or_else(|refused| refused.answer())
                }
                _ => method_not_allowed(),
            };
        }
        let path = path.as_str();
        if PATHS.contains(&path) && !is_read(&req.method) {
            return method_not_allowed();
        }
        match path {
            "/metrics" => answer(200, "text/plain; version=0.0.4; charset=utf-8", METRICS.text()),
            "/healthz" => answer(200, text, "ok\n"),
            "/readyz" => match self.not_ready().await {
                None => answer(200, text, "ready\n"),
                Some(why) => answer(503, text, format!("{why}\n")),
            },
            _ => answer(404, text, "not found: /metrics, /healthz, /readyz or /rollout\n"),
        }
    }
}
