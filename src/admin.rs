//! The admin listener: Prometheus metrics and health checks, on an address of its own
//! (keep it off the public network).
//!
//! Each path answers `GET` and `HEAD` only; any other method gets 405 with `Allow`, so
//! nothing that changes state can be mistaken for having been accepted.
//!
//! - `GET /metrics`: the metrics in Prometheus' text format;
//! - `GET /healthz`: 200 while the process serves;
//! - `GET /readyz`: 200 when every site has an app address that accepts a connection
//!   and every configured Redis (of `redis_session` sources and the shared identity
//!   cache) answers a `PING`, else 503
//!   with a one-line reason (for load balancers and Kubernetes).

use std::time::Duration;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::config::Config;
use crate::identity::redis_probe::{self, ConfiguredRedis};
use crate::metrics::METRICS;

/// How long readiness waits for an app address to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The admin application.
pub(crate) struct Admin {
    /// Each site's name for messages (its first host) and its app addresses.
    sites: Vec<(String, Vec<String>)>,
    /// Every configured Redis.
    redis: Vec<ConfiguredRedis>,
}

impl Admin {
    pub(crate) fn new(config: &Config) -> Admin {
        let sites = config
            .sites
            .iter()
            .map(|s| (s.hosts.first().map(|h| h.to_string()).unwrap_or_default(), s.upstream.addresses.clone()))
            .collect();
        let redis = redis_probe::configured(config);
        Admin { sites, redis }
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
                return Some(format!("site {site}: no app address accepts connections ({})", addresses.join(", ")));
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
    let mut response = answer(405, "text/plain; charset=utf-8", "method not allowed: GET or HEAD\n");
    response.headers_mut().insert(http::header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
    response
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let text = "text/plain; charset=utf-8";
        let req = session.req_header();
        let path = req.uri.path();
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
            _ => answer(404, text, "not found: /metrics, /healthz or /readyz\n"),
        }
    }
}
