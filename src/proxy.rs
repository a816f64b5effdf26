//! Proxy wiring: the Pingora [`ProxyHttp`] implementation that ties the phases together.
//!
//! - request: classify the request, strip identity headers the peer may not send,
//!   note the session cookies and the proxy's own cookies (no I/O);
//! - upstream request: ask only for encodings we can decode; on navigations of
//!   possibly logged-in users, drop conditional headers so a full page comes back;
//! - upstream response header: if the response is a rewritable page, find out who the
//!   user is (the only I/O the proxy adds), sign the token, and turn on decompression;
//! - response header: logout handling, header hygiene, CSP, and the rewriter;
//! - response body: the rewriter, which stops parsing once the script is placed.
//!
//! None of these hooks returns an error of its own making: identity, signing or
//! rewriting problems are logged and the page is served without a token.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::compression::ResponseCompression;
use pingora::protocols::http::compression::Algorithm;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use sha2::{Digest, Sha256};

use crate::config::{Config, LogoutMode};
use crate::connections::HeadRead;
use crate::csp::{self, MetaCsp};
use crate::headers;
use crate::hygiene;
use crate::identity::{IdentityResolver, Lookup, RequestHints};
use crate::logout;
use crate::rewrite::{Limits, Outcome, PageRewriter, Render};
use crate::script::{ScriptSettings, ScriptTemplate};
use crate::token::TokenSigner;
use crate::upstream::{self, RequestBody, Upstream};

/// The Secure Mode proxy: a Pingora [`ProxyHttp`] service others can embed.
pub struct SecureModeProxy {
    config: Arc<Config>,
    upstream: Arc<Upstream>,
    identity: IdentityResolver,
    signer: TokenSigner,
    script: Arc<ScriptTemplate>,
    /// Keys the last-user cookie; derived from the secret, never equal to it.
    user_tag_key: [u8; 32],
    /// When false the proxy only forwards (the benchmark's passthrough baseline).
    rewrite: bool,
}

/// Connection-specific headers that never cross the proxy on the exchanges it makes
/// itself (Pingora drops them in the proxied flow).
const HOP_BY_HOP: [&str; 3] = ["connection", "keep-alive", "proxy-connection"];

/// Per-request state.
#[derive(Default)]
pub struct RequestCtx {
    /// A GET that may come back as a page to rewrite.
    candidate: bool,
    hints: RequestHints,
    navigation: bool,
    logout_request: bool,
    /// The browser carries the shutdown marker.
    marker: bool,
    /// Tag of the user this browser last got a token for.
    last_user: Option<String>,
    page: Option<PagePlan>,
    rewriter: Option<PageRewriter>,
    /// A whole replacement body (the logout interstitial).
    replacement: Option<Bytes>,
    /// The upstream response header ended the response (no body filter will run).
    bodiless: bool,
    /// The upstream socket while this request holds it (for quick ACKs).
    upstream_fd: Option<std::os::unix::io::RawFd>,
}

struct PagePlan {
    token: Option<Arc<str>>,
    shutdown: bool,
    user_tag: Option<String>,
}

impl SecureModeProxy {
    /// Builds the proxy for a validated configuration.
    pub fn new(config: Arc<Config>, upstream: Arc<Upstream>) -> Self {
        let signer = TokenSigner::new(&config.intercom);
        let script = ScriptTemplate::new(&ScriptSettings {
            app_id: &config.intercom.app_id,
            api_base: &config.intercom.api_base,
            signed_fields: signer.signed_fields().collect(),
            auto_include: config.inject.auto_include,
            cookie_domain: config.logout.cookie_domain.as_deref(),
        });
        let mut key = Sha256::new();
        key.update(b"intercom-secure-proxy last-user tag\0");
        key.update(config.intercom.secret.expose());
        SecureModeProxy {
            identity: IdentityResolver::new(&config.identity, upstream.clone()),
            upstream,
            signer,
            script: Arc::new(script),
            user_tag_key: key.finalize().into(),
            config,
            rewrite: true,
        }
    }

    /// Turns rewriting off: the proxy forwards everything untouched (for baselines).
    pub fn passthrough(mut self) -> Self {
        self.rewrite = false;
        self
    }

    fn user_tag(&self, user_id: &str) -> String {
        use base64::Engine as _;
        let mut h = Sha256::new();
        h.update(self.user_tag_key);
        h.update(user_id.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&h.finalize()[..16])
    }

    fn is_logout_response(&self, ctx: &RequestCtx, resp: &ResponseHeader) -> bool {
        ctx.logout_request
            || (self.config.logout.detect_cookie_expiry
                && logout::expires_session_cookie(resp, self.identity.session_cookie_names()))
    }

    /// Who is this, as a token (or nothing, with a warning when a source failed).
    async fn token_for(&self, session: &Session, ctx: &RequestCtx) -> (Option<Arc<str>>, Option<String>) {
        if !ctx.hints.maybe_identified() {
            return (None, None);
        }
        let path = session.req_header().uri.path();
        match self.identity.resolve(&ctx.hints).await {
            Lookup::Found(id) => match self.signer.token_for(&id) {
                Ok(token) => (Some(token), Some(self.user_tag(&id.user_id))),
                Err(e) => {
                    crate::warn_limited!("{e}; serving {path} without a Messenger token");
                    (None, None)
                }
            },
            Lookup::Anonymous => (None, None),
            Lookup::Failed(why) => {
                crate::warn_limited!("{why}; serving {path} without a Messenger token");
                (None, None)
            }
        }
    }

    /// Sets up the rewriter and the headers of a page we rewrite.
    fn start_rewrite(&self, resp: &mut ResponseHeader, ctx: &mut RequestCtx, plan: PagePlan) {
        let charset_in_header = headers::charset(resp).is_some();
        headers::prepare_rewritten(resp);
        let policies = csp::policies(resp);
        let csp_plan = csp::plan(&policies);
        let token = plan.token.clone();
        let prerendered = self
            .script
            .render(token.as_deref(), plan.shutdown, csp_plan.nonce.as_deref());
        if csp_plan.needs_hash {
            resp.remove_header("content-security-policy");
            for value in csp::amend(&policies, csp_plan.nonce.as_deref(), &prerendered.csp_hash()) {
                let _ = resp.append_header("content-security-policy", value);
            }
        }
        let meta = MetaCsp {
            nonce: csp_plan.nonce.clone(),
            script: prerendered.clone(),
        };
        let template = self.script.clone();
        let header_nonce = csp_plan.nonce;
        let shutdown = plan.shutdown;
        let render: Render = Box::new(move |page_nonce| {
            Some(match (header_nonce, page_nonce) {
                (None, Some(n)) => template.render(token.as_deref(), shutdown, Some(n)).html().to_string(),
                _ => prerendered.html().to_string(),
            })
        });
        let inject = &self.config.inject;
        ctx.rewriter = Some(PageRewriter::new(
            render,
            meta,
            Limits {
                max_scan_bytes: inject.max_scan_bytes,
                parser_memory: inject.parser_memory_limit,
            },
            charset_in_header,
        ));
        if plan.shutdown && ctx.marker {
            let _ = resp.append_header("set-cookie", logout::marker_clear());
        }
        if let Some(tag) = plan.user_tag.filter(|t| ctx.last_user.as_ref() != Some(t)) {
            let _ = resp.append_header("set-cookie", logout::user_set(&tag));
        }
    }

    /// Adds the logout effects to a logout response; may turn it into an interstitial.
    fn finish_logout(&self, session: &Session, resp: &mut ResponseHeader, ctx: &mut RequestCtx) {
        // Only a validated host name ever reaches a cookie attribute or a redirect check.
        let host = hygiene::cookie_host(session.req_header());
        let host = host.as_deref();
        for value in logout::expire_intercom_cookies(&self.config.intercom.app_id, &self.config.logout, host) {
            let _ = resp.append_header("set-cookie", value);
        }
        let _ = resp.append_header("set-cookie", logout::marker_set());
        let _ = resp.append_header("set-cookie", logout::user_clear());
        headers::make_private(resp);
        let location = resp
            .headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let wants_interstitial = self.config.logout.mode == LogoutMode::Interstitial
            && resp.status.is_redirection()
            && ctx.navigation
            && ctx.page.is_none()
            && !ctx.bodiless;
        if let (true, Some(location)) = (wants_interstitial, location) {
            if !logout::safe_redirect(&location, host, &self.config.logout) {
                log::warn!("logout redirect target not allowed for an interstitial; relying on the marker cookie");
                return;
            }
            let script = self.script.render(None, true, None);
            let page = logout::interstitial_page(script.html(), &location);
            let _ = resp.set_status(200);
            for h in ["location", "content-length", "content-encoding", "content-type", "transfer-encoding", "etag", "last-modified", "content-security-policy"] {
                resp.remove_header(h);
            }
            let _ = resp.insert_header("content-type", "text/html; charset=utf-8");
            let _ = resp.insert_header("content-length", page.len().to_string());
            ctx.replacement = Some(Bytes::from(page));
        }
    }

    /// Interstitial mode, configured logout path, top-level navigation: forwards the
    /// logout request itself and answers the client directly, because a bodiless
    /// redirect from the app would leave no body phase to put the interstitial in.
    /// Bodies stream both ways, with the same timeouts and statuses as any proxied
    /// request; whatever the app does, the client's answer carries the Intercom logout.
    async fn answer_logout(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        let mut req = session.req_header().clone();
        for h in HOP_BY_HOP {
            req.remove_header(h);
        }
        let started = self.upstream.start(req, RequestBody::From(session)).await;
        self.identity.forget_session(&ctx.hints).await;
        let mut ex = match started {
            Ok(ex) => ex,
            Err(e) => {
                crate::warn_limited!(
                    "logout {}: no usable answer from the app ({}); answering 502 with the Intercom logout",
                    session.req_header().uri.path(),
                    crate::warn::describe(&e)
                );
                let mut resp = ResponseHeader::build(502, Some(4))?;
                resp.insert_header(http::header::CONTENT_LENGTH, "0")?;
                self.finish_logout(session, &mut resp, ctx);
                hygiene::fit_framing(session, &mut resp);
                return session.write_response_header(Box::new(resp), true).await;
            }
        };
        let mut resp = ex.header.clone();
        self.finish_logout(session, &mut resp, ctx);
        for h in HOP_BY_HOP {
            resp.remove_header(h);
        }
        if let Some(page) = ctx.replacement.take() {
            hygiene::fit_framing(session, &mut resp);
            session.write_response_header(Box::new(resp), false).await?;
            session.write_response_body(Some(page), true).await?;
            // The app's own body is not needed: its connection is kept only if done.
            self.upstream.release(ex).await;
            return Ok(());
        }
        let unframed = resp.headers.get(http::header::CONTENT_LENGTH).is_none()
            && resp.headers.get(http::header::TRANSFER_ENCODING).is_none();
        if unframed && !matches!(resp.status.as_u16(), 204 | 304) {
            resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        }
        hygiene::fit_framing(session, &mut resp);
        session.write_response_header(Box::new(resp), false).await?;
        while let Some(chunk) = ex.next_chunk().await? {
            session.write_response_body(Some(chunk), false).await?;
        }
        session.write_response_body(None, true).await?;
        self.upstream.release(ex).await;
        Ok(())
    }

    /// The response phase of Secure Mode: logout effects, cache invalidation on login,
    /// and the rewriter for a planned page.
    async fn finish_response(&self, session: &mut Session, resp: &mut ResponseHeader, ctx: &mut RequestCtx) {
        if !self.rewrite {
            return;
        }
        if self.is_logout_response(ctx, resp) {
            self.identity.forget_session(&ctx.hints).await;
            self.finish_logout(session, resp, ctx);
        } else if logout::sets_session_cookie(resp, self.identity.session_cookie_names()) {
            // A login: whatever was cached for the old cookie value is stale.
            self.identity.forget_session(&ctx.hints).await;
        }
        // Decompression may have failed to apply; never rewrite encoded bytes.
        let still_encoded = headers::content_encoding(resp).is_some_and(|ce| ce != "identity");
        match ctx.page.take() {
            Some(plan) if !still_encoded => self.start_rewrite(resp, ctx, plan),
            _ if ctx.candidate && ctx.replacement.is_none() => {
                if let Some(c) = session.downstream_modules_ctx.get_mut::<ResponseCompression>() {
                    c.adjust_level(0);
                }
            }
            _ => {}
        }
    }
}

/// The client's Accept-Encoding narrowed to what we can decode (gzip, br); `None` when
/// nothing needs to change.
fn decodable_accept_encoding(req: &RequestHeader) -> Option<String> {
    let value = req.headers.get(http::header::ACCEPT_ENCODING)?.to_str().ok()?;
    let mut changed = false;
    let kept: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|t| {
            let coding = t.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            let keep = matches!(coding.as_str(), "gzip" | "x-gzip" | "br" | "identity");
            changed |= !keep;
            keep
        })
        .collect();
    changed.then(|| kept.join(", "))
}

#[async_trait]
impl ProxyHttp for SecureModeProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    fn on_connection_reuse(&self, session: &mut Session, _ctx: &mut RequestCtx, prev: Box<dyn std::any::Any + Send + Sync>) {
        // Pingora calls this right after reading the head (see connections::ClientLimits).
        if let Ok(head) = prev.downcast::<HeadRead>() {
            head.arrived(session);
        }
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        if !self.rewrite {
            return Ok(());
        }
        let req = session.req_header();
        let path = req.uri.path();
        ctx.candidate = req.method == http::Method::GET
            && req.headers.get(http::header::UPGRADE).is_none()
            && hygiene::may_be_document(req)
            && !self.config.inject.exclude_paths.iter().any(|p| p.matches(path));
        let level = self.config.inject.compression_level;
        if ctx.candidate && level > 0 {
            // The compression module reads Accept-Encoding only if enabled by now; it is
            // turned off again in response_filter for everything we do not rewrite.
            if let Some(c) = session.downstream_modules_ctx.get_mut::<ResponseCompression>() {
                c.adjust_level(level);
                // Pingora 0.9.1's brotli encoder only flushes at the end and never writes
                // the final block, so its streams fail to decode: use gzip or zstd.
                c.adjust_algorithm_level(Algorithm::Brotli, 0);
            }
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if let Err(why) = hygiene::check_request(session.req_header_mut()) {
            log::debug!("400 for a malformed request: {why}");
            session.set_keepalive(None);
            session.respond_error(400).await?;
            return Ok(true);
        }
        if !self.rewrite {
            return Ok(false);
        }
        let peer = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        ctx.hints = self.identity.inspect_request(session.req_header_mut(), peer);
        let req = session.req_header();
        let (marker, last_user) = logout::own_cookies(req);
        ctx.marker = marker;
        ctx.last_user = last_user;
        ctx.navigation = logout::is_navigation(req);
        ctx.logout_request =
            logout::is_logout_request(&self.config.logout, req.method.as_str(), req.uri.path());
        if ctx.logout_request && ctx.navigation && self.config.logout.mode == LogoutMode::Interstitial {
            self.answer_logout(session, ctx).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        self.upstream
            .peer()
            .map(Box::new)
            .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no upstream address available"))
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_fd = Some(fd);
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if !ctx.candidate {
            return Ok(());
        }
        if let Some(ae) = decodable_accept_encoding(upstream_request) {
            upstream_request.insert_header(http::header::ACCEPT_ENCODING, ae)?;
        }
        if ctx.navigation && (ctx.hints.maybe_identified() || ctx.marker) {
            // A 304 would let the browser reuse a page without this user's token.
            upstream_request.remove_header(&http::header::IF_NONE_MATCH);
            upstream_request.remove_header(&http::header::IF_MODIFIED_SINCE);
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(fd) = ctx.upstream_fd {
            upstream::quick_ack(fd);
        }
        // Pingora frames by the reconciled length but would forward every line as sent.
        match hygiene::content_length_fix(&resp.headers) {
            Ok(Some(hygiene::LengthFix::Single(n))) => resp.insert_header(http::header::CONTENT_LENGTH, n)?,
            Ok(Some(hygiene::LengthFix::Remove)) => {
                resp.remove_header(&http::header::CONTENT_LENGTH);
            }
            Ok(None) => {}
            Err(_) => return Error::e_explain(ErrorType::InvalidHTTPHeader, "upstream sent conflicting Content-Length"),
        }
        Ok(())
    }

    async fn adjust_upstream_modules(
        &self,
        session: &mut Session,
        resp: &ResponseHeader,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if resp.status.is_informational() {
            return Ok(());
        }
        ctx.bodiless = end_of_stream;
        if !ctx.candidate || end_of_stream {
            return Ok(());
        }
        if let Err(why) = headers::rewritable(resp, &self.config.inject) {
            log::debug!("not rewriting {}: {why}", session.req_header().uri.path());
            return Ok(());
        }
        let logout = self.is_logout_response(ctx, resp);
        let (token, user_tag) = if logout {
            (None, None)
        } else {
            self.token_for(session, ctx).await
        };
        let switched = user_tag.is_some() && ctx.last_user.is_some() && ctx.last_user != user_tag;
        let shutdown = ctx.marker || logout || switched;
        if token.is_none() && !shutdown {
            return Ok(());
        }
        if headers::content_encoding(resp).is_some_and(|ce| ce != "identity") {
            session.upstream_compression.adjust_decompression(true);
        }
        ctx.page = Some(PagePlan { token, shutdown, user_tag });
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.finish_response(session, resp, ctx).await;
        hygiene::fit_framing(session, resp);
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        match ctx.upstream_fd {
            // The connection goes back to the pool after the last chunk.
            Some(_) if end_of_stream => ctx.upstream_fd = None,
            Some(fd) => upstream::quick_ack(fd),
            None => {}
        }
        Ok(None)
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(page) = &ctx.replacement {
            *body = end_of_stream.then(|| page.clone());
        } else if let Some(rewriter) = ctx.rewriter.as_mut() {
            rewriter.process(body, end_of_stream);
        }
        Ok(None)
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        mut e: Box<pingora::Error>,
        _ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<pingora::Error> {
        crate::warn::scrub(&mut e);
        // Pingora's default retry policy, unchanged.
        let mut e = e.more_context(format!("Peer: {peer}"));
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated() {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    fn request_summary(&self, session: &Session, _ctx: &RequestCtx) -> String {
        // Pingora's summary, without the query string (it can carry tokens).
        let req = session.req_header();
        let host = req.headers.get(http::header::HOST).map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
        format!("{} {}, Host: {}", req.method, req.uri.path(), host.as_deref().unwrap_or("-"))
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &pingora::Error) -> bool {
        // A client that goes away mid-response is routine traffic, not an error to page on.
        matches!(error.esource(), pingora::ErrorSource::Downstream)
            && matches!(
                error.etype(),
                ErrorType::ConnectionClosed | ErrorType::WriteError | ErrorType::ReadError
            )
    }

    async fn logging(&self, session: &mut Session, _e: Option<&pingora::Error>, ctx: &mut RequestCtx) {
        if let Some(rw) = &ctx.rewriter {
            if let Outcome::GaveUp(reason) = rw.outcome() {
                log::info!(
                    "{} passed through without the Messenger script ({reason:?} after {} bytes)",
                    session.req_header().uri.path(),
                    rw.parsed_bytes()
                );
            }
        }
    }
}
