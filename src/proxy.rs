//! The proxy of the `intercom-secure-proxy` binary: a Pingora [`ProxyHttp`] that picks
//! the site by `Host`, forwards to its app, and adds [`SecureMode`] in each phase.
//! Everything else here is the proxy's own job: request hygiene, the upstream socket's
//! quick ACKs, framing for the client's HTTP version, and logs without secrets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};

use crate::access_log::{AccessLogger, Entry};
use crate::config::{best_site, Config, HostPattern};
use crate::connections::HeadRead;
use crate::headers::{self, LengthFix};
use crate::metrics::METRICS;
use crate::secure_mode::{BuildError, RequestState, SecureMode};
use crate::upstream::{self, HealthService};

/// The Secure Mode proxy: one [`SecureMode`] per site, chosen by `Host`.
pub struct SecureModeProxy {
    sites: Vec<Site>,
    access_log: Option<Arc<AccessLogger>>,
}

struct Site {
    hosts: Vec<HostPattern>,
    /// The site's `name` (the admin listener's `/rollout/<name>`).
    name: Option<String>,
    secure_mode: SecureMode,
}

/// Per-request state of the proxy.
#[derive(Default)]
pub struct ProxyCtx {
    /// The site serving this request (an index into `sites`).
    site: Option<usize>,
    secure: RequestState,
    /// The upstream socket of this request (for the quick ACK after its response head).
    upstream_fd: Option<std::os::unix::io::RawFd>,
    /// The app's address, once connected (for the access log).
    upstream: Option<String>,
    /// When the request head was in (for the access log).
    started: Option<Instant>,
}

impl SecureModeProxy {
    /// Builds the proxy for a validated configuration. The health checks of the
    /// sites' apps come back with it, to be added to the server.
    pub fn new(config: &Config) -> Result<(Self, Vec<HealthService>), BuildError> {
        let mut sites = Vec::with_capacity(config.sites.len());
        let mut health = Vec::new();
        for site in &config.sites {
            let mut secure_mode = SecureMode::new(site)?;
            health.extend(secure_mode.take_health_service());
            sites.push(Site { hosts: site.hosts.clone(), name: site.name.clone(), secure_mode });
        }
        Ok((
            SecureModeProxy { sites, access_log: AccessLogger::new(&config.log).map(Arc::new) },
            health,
        ))
    }

    /// The access log, for the requests that never reach the proxy (see
    /// [`crate::refusals`]).
    pub(crate) fn access_log(&self) -> Option<Arc<AccessLogger>> {
        self.access_log.clone()
    }

    /// Each site's live rollout, for the admin listener.
    pub(crate) fn rollouts(&self) -> Vec<crate::admin::SiteRollout> {
        let site = |s: &Site| crate::admin::SiteRollout {
            name: s.name.clone(),
            live: s.secure_mode.live_rollout(),
        };
        self.sites.iter().map(site).collect()
    }

    /// The site whose hosts match the request best: an exact name, then the longest
    /// `*.domain`, then `*`.
    fn site_for(&self, req: &RequestHeader) -> Option<usize> {
        if let [only] = &self.sites[..] {
            // One site (a file without `sites:`): no host to parse.
            if only.hosts.contains(&HostPattern::Any) {
                return Some(0);
            }
        }
        let host = headers::cookie_host(req).unwrap_or_default();
        best_site(self.sites.iter().map(|s| s.hosts.as_slice()), &host)
    }

    fn secure_mode(&self, ctx: &ProxyCtx) -> Option<&SecureMode> {
        ctx.site.map(|i| &self.sites[i].secure_mode)
    }
}

/// What the access log records of a finished request.
fn access_entry<'a>(session: &'a Session, ctx: &ProxyCtx) -> Entry<'a> {
    let req = session.req_header();
    let header = |name| req.headers.get(name).and_then(|v: &http::HeaderValue| v.to_str().ok());
    Entry {
        client: session.client_addr().and_then(|a| a.as_inet()).copied(),
        method: Some(req.method.as_str()),
        path: Some(req.uri.path()),
        version: Some(req.version),
        status: session.response_written().map_or(0, |r| r.status.as_u16()),
        bytes: session.body_bytes_sent(),
        duration: ctx.started.map_or(Duration::ZERO, |t| t.elapsed()),
        upstream: ctx.upstream.clone(),
        rewritten: ctx.secure.rewriting(),
        identity: ctx.secure.identity_source(),
        referer: header(http::header::REFERER),
        user_agent: header(http::header::USER_AGENT),
    }
}

#[async_trait]
impl ProxyHttp for SecureModeProxy {
    type CTX = ProxyCtx;

    fn new_ctx(&self) -> ProxyCtx {
        ProxyCtx { started: Some(Instant::now()), ..ProxyCtx::default() }
    }

    fn on_connection_reuse(
        &self,
        session: &mut Session,
        _ctx: &mut ProxyCtx,
        prev: Box<dyn std::any::Any + Send + Sync>,
    ) {
        // Pingora calls this right after reading the head (see connections::ClientLimits).
        if let Ok(head) = prev.downcast::<HeadRead>() {
            head.arrived(session);
        }
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut ProxyCtx) -> Result<()> {
        ctx.site = self.site_for(session.req_header());
        if let Some(sm) = self.secure_mode(ctx) {
            sm.early_request_filter(session, &mut ctx.secure);
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut ProxyCtx) -> Result<bool> {
        if let Err(why) = headers::check_request(session.req_header_mut()) {
            log::debug!("400 for a malformed request: {why}");
            session.set_keepalive(None);
            session.respond_error(400).await?;
            return Ok(true);
        }
        let Some(sm) = self.secure_mode(ctx) else {
            // No site answers this host (nginx would use its default server; we have none).
            session.respond_error(421).await?;
            return Ok(true);
        };
        sm.request_filter(session, &mut ctx.secure).await
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut ProxyCtx,
    ) -> Result<Box<HttpPeer>> {
        self.secure_mode(ctx).and_then(SecureMode::app_peer).map(Box::new).ok_or_else(|| {
            Error::explain(ErrorType::ConnectNoRoute, "no upstream address available")
        })
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        peer: &HttpPeer,
        fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut ProxyCtx,
    ) -> Result<()> {
        ctx.upstream_fd = Some(fd);
        if self.access_log.is_some() {
            ctx.upstream = Some(pingora::upstreams::peer::Peer::address(peer).to_string());
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut ProxyCtx,
    ) -> Result<()> {
        match self.secure_mode(ctx) {
            Some(sm) => sm.upstream_request_filter(req, &ctx.secure),
            None => Ok(()),
        }
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut ProxyCtx,
    ) -> Result<()> {
        if let Some(fd) = ctx.upstream_fd {
            upstream::quick_ack(fd);
        }
        // Pingora frames by the reconciled length but would forward every line as sent.
        match headers::content_length_fix(&resp.headers) {
            Ok(Some(LengthFix::Single(n))) => {
                resp.insert_header(http::header::CONTENT_LENGTH, n)?
            }
            Ok(Some(LengthFix::Remove)) => {
                resp.remove_header(&http::header::CONTENT_LENGTH);
            }
            Ok(None) => {}
            Err(_) => {
                return Error::e_explain(
                    ErrorType::InvalidHTTPHeader,
                    "upstream sent conflicting Content-Length",
                )
            }
        }
        Ok(())
    }

    async fn adjust_upstream_modules(
        &self,
        session: &mut Session,
        resp: &ResponseHeader,
        end_of_stream: bool,
        ctx: &mut ProxyCtx,
    ) -> Result<()> {
        if let Some(sm) = self.secure_mode(ctx) {
            sm.adjust_upstream_modules(session, resp, end_of_stream, &mut ctx.secure).await;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut ProxyCtx,
    ) -> Result<()> {
        if let Some(sm) = self.secure_mode(ctx) {
            sm.response_filter(session, resp, &mut ctx.secure).await?;
        }
        headers::fit_framing(session, resp);
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut ProxyCtx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(sm) = self.secure_mode(ctx) {
            sm.response_body_filter(body, end_of_stream, &mut ctx.secure);
        }
        Ok(None)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        _ctx: &mut ProxyCtx,
        e: Box<pingora::Error>,
    ) -> Box<pingora::Error> {
        METRICS.upstream_errors.inc();
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        mut e: Box<pingora::Error>,
        _ctx: &mut ProxyCtx,
        client_reused: bool,
    ) -> Box<pingora::Error> {
        crate::warn::scrub(&mut e);
        METRICS.upstream_errors.inc();
        // Pingora's default retry policy, unchanged.
        let mut e = e.more_context(format!("Peer: {peer}"));
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    fn request_summary(&self, session: &Session, _ctx: &ProxyCtx) -> String {
        // Pingora's summary, without the query string or path parameters (they can carry
        // tokens and session ids).
        let req = session.req_header();
        let host = req
            .headers
            .get(http::header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
        format!(
            "{} {}, Host: {}",
            req.method,
            crate::warn::loggable_path(req.uri.path()),
            host.as_deref().unwrap_or("-")
        )
    }

    fn suppress_error_log(
        &self,
        _session: &Session,
        _ctx: &ProxyCtx,
        error: &pingora::Error,
    ) -> bool {
        // A client that goes away mid-response is routine traffic, not an error to page on.
        matches!(error.esource(), pingora::ErrorSource::Downstream)
            && matches!(
                error.etype(),
                ErrorType::ConnectionClosed | ErrorType::WriteError | ErrorType::ReadError
            )
    }

    async fn logging(
        &self,
        session: &mut Session,
        _e: Option<&pingora::Error>,
        ctx: &mut ProxyCtx,
    ) {
        if let Some(sm) = self.secure_mode(ctx) {
            sm.logging(session, &ctx.secure);
        }
        if let Some(started) = ctx.started {
            METRICS.response_seconds.observe(started.elapsed().as_secs_f64());
        }
        if let Some(log) = &self.access_log {
            log.log(&access_entry(session, ctx));
        }
    }
}
