//! The Secure Mode middleware: one method per Pingora phase, for any [`ProxyHttp`]
//! to call from its own hooks.
//!
//! - [`early_request_filter`](SecureMode::early_request_filter): reads the rollout in
//!   force (one atomic load); is this a page request? (turns response compression on
//!   for it);
//! - [`request_filter`](SecureMode::request_filter): strips identity headers the peer
//!   may not send, notes the session and the proxy's cookies (no I/O); answers an
//!   interstitial logout, the token refresh path and the report path itself;
//! - [`upstream_request_filter`](SecureMode::upstream_request_filter): asks only for
//!   encodings we decode and, for possibly logged-in navigations, a full page;
//! - [`adjust_upstream_modules`](SecureMode::adjust_upstream_modules): if the
//!   response is a page to rewrite, finds out who the user is (the only I/O Secure
//!   Mode adds) and signs the token;
//! - [`response_filter`](SecureMode::response_filter): logout effects, header
//!   hygiene, CSP, and the rewriter;
//! - [`response_body_filter`](SecureMode::response_body_filter): the rewriter, which
//!   stops parsing once the script is placed;
//! - [`logging`](SecureMode::logging): notes a page that passed through unchanged.
//!
//! None of them returns an error of its own making: identity, signing or rewriting
//! problems are logged and the page is served without a token.
//!
//! The rollout ([`crate::rollout`]) decides how much of this a request gets: with
//! `off` nothing (not even an identity lookup); with `report_only` the identity and the
//! plan as usual, but the page gets the observer instead of the page script, and no
//! cookie, logout effect or token; with a percentage below 100 the pages of users
//! outside it are left untouched.
//!
//! [`ProxyHttp`]: pingora::proxy::ProxyHttp

use std::sync::Arc;

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::compression::ResponseCompression;
use pingora::protocols::http::compression::Algorithm;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;

use crate::config::{
    InjectConfig, LogoutConfig, LogoutMode, OnIdentityFailure, RolloutMode, SiteConfig,
};
use crate::headers;
use crate::identity::{IdentityResolver, Lookup};
use crate::logout::{self, cookies, cookies::UserTag, cookies::UserTags};
use crate::messenger_token::TokenSigner;
use crate::metrics::METRICS;
use crate::page::{self, Limits, Outcome, Pages, Plan, ScriptSettings};
use crate::rollout::LiveRollout;
use crate::upstream::{HealthService, Upstream};
use crate::user_hash::UserHasher;

mod builder;
mod logout_answer;
mod report;
mod state;
mod token_refresh;

pub use builder::SecureModeBuilder;
pub use state::RequestState;
use state::{Outcome as Handled, PagePlan};

/// Intercom Secure Mode for one app: its workspace, identity sources, page rewriting
/// and logouts.
///
/// ```
/// use intercom_secure_proxy::{Config, RequestState, SecureMode};
///
/// let yaml = r#"
/// listen: ["127.0.0.1:8080"]
/// upstream: {addresses: ["127.0.0.1:3000"]}
/// intercom: {app_id: abc12345, secret_env: INTERCOM_SECRET}
/// identity: {sources: [{type: current_user_endpoint, path: /api/me, cookies: [session_id]}]}
/// "#;
/// let config = Config::from_yaml(yaml, &|_| Some("messenger-secret".into()))?;
/// let secure_mode = SecureMode::new(config.site())?;
/// assert!(secure_mode.app_peer().is_some());
///
/// // A host proxy keeps one state per request in its CTX and passes it to each phase,
/// // e.g. `secure_mode.request_filter(session, &mut ctx.secure).await` in its
/// // `request_filter` (see examples/embed.rs).
/// let state = RequestState::default();
/// assert!(!state.rewriting());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SecureMode {
    app_id: String,
    inject: InjectConfig,
    logout: LogoutConfig,
    upstream: Arc<Upstream>,
    health: Option<HealthService>,
    identity: IdentityResolver,
    signer: TokenSigner,
    /// Set when pages give the deprecated `user_hash` (`intercom.mode` user_hash, both).
    hasher: Option<UserHasher>,
    /// Whether pages get a signed JWT (`intercom.mode` jwt, both).
    signs_jwt: bool,
    pages: Pages,
    user_tags: UserTags,
    /// The site's rollout, live (the admin listener may change it).
    rollout: Arc<LiveRollout>,
    /// Where report-only pages send their reports (`rollout.report_path`).
    report_path: String,
}

/// What a page gets for its user: the JWT and/or the plain `user_hash` settings, per
/// `intercom.mode`, and the user's tag for the last-user cookie.
#[derive(Default)]
struct Credentials {
    token: Option<Arc<str>>,
    plain: Option<Arc<str>>,
    user_tag: Option<UserTag>,
    /// A source or the signer failed: who the user is, is not known.
    failed: bool,
}

/// The response header that marks the answer to a soft navigation's fetch.
const SOFT_NAVIGATION_MARK: &str = "x-intercom-secure-proxy-navigation";

/// Why Secure Mode could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A setting is missing or invalid (builder in code).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The app's addresses cannot be resolved.
    #[error("upstream addresses: {0}")]
    Upstream(#[from] std::io::Error),
    /// A TLS listener's certificate or key does not load.
    #[error("TLS listener: {0}")]
    Tls(String),
}

impl SecureMode {
    /// Secure Mode for a validated site (see [`Config::site`](crate::Config::site)).
    pub fn new(site: &SiteConfig) -> Result<Self, BuildError> {
        let (upstream, health) = Upstream::new(&site.upstream)?;
        let signer = TokenSigner::new(&site.intercom);
        let pages = Pages::new(
            &ScriptSettings {
                app_id: &site.intercom.app_id,
                api_base: &site.intercom.api_base,
                auto_include: site.inject.auto_include,
                cookie_domain: site.logout.cookie_domain.as_deref(),
                mode: site.intercom.mode,
                refresh: Some(page::TokenRefresh {
                    path: &site.inject.token_refresh_path,
                    margin: site.intercom.token_refresh_margin,
                }),
            },
            Limits {
                max_scan_bytes: site.inject.max_scan_bytes,
                parser_memory: site.inject.parser_memory_limit,
            },
        )
        .observing(&site.rollout.report_path);
        Ok(SecureMode {
            app_id: site.intercom.app_id.clone(),
            inject: site.inject.clone(),
            logout: site.logout.clone(),
            identity: IdentityResolver::new(&site.identity, upstream.clone()),
            upstream,
            health,
            signer,
            hasher: site
                .intercom
                .mode
                .sends_user_hash()
                .then(|| UserHasher::new(site.intercom.secret.expose())),
            signs_jwt: site.intercom.mode.signs_jwt(),
            pages,
            user_tags: UserTags::new(site.intercom.secret.expose()),
            rollout: Arc::new(LiveRollout::new(&site.rollout, site_label(site))),
            report_path: site.rollout.report_path.clone(),
        })
    }

    /// The site's live rollout, for the admin listener.
    pub(crate) fn live_rollout(&self) -> Arc<LiveRollout> {
        self.rollout.clone()
    }

    /// A builder for configuring Secure Mode in code rather than YAML.
    pub fn builder(
        intercom: crate::config::IntercomConfig,
        upstream: crate::config::UpstreamConfig,
    ) -> SecureModeBuilder {
        SecureModeBuilder::new(intercom, upstream)
    }

    /// A connection to the app Secure Mode asks for identities and logouts, for a host
    /// that routes this app's requests the same way (`None` when no address is up).
    pub fn app_peer(&self) -> Option<HttpPeer> {
        self.upstream.peer()
    }

    /// The health check of the app's addresses (when there are several), to add to
    /// the Pingora server once; `None` after the first call.
    pub fn take_health_service(&mut self) -> Option<HealthService> {
        self.health.take()
    }

    /// `early_request_filter`: decides whether the request may come back as a page to
    /// rewrite, and turns response compression on for it (the compression module
    /// reads `Accept-Encoding` only if enabled by now).
    pub fn early_request_filter(&self, session: &mut Session, state: &mut RequestState) {
        state.live = self.rollout.now();
        state.candidate =
            state.live.mode != RolloutMode::Off && self.is_candidate(session.req_header());
        let level = self.inject.compression_level;
        // A client that accepts no encoding gets none: the module would only look.
        let accepts = session.req_header().headers.contains_key(http::header::ACCEPT_ENCODING);
        if state.candidate && level > 0 && accepts {
            if let Some(c) = session.downstream_modules_ctx.get_mut::<ResponseCompression>() {
                c.adjust_level(level);
                // Pingora 0.9.1's brotli encoder only flushes at the end and never writes
                // the final block, so its streams fail to decode: use gzip or zstd.
                c.adjust_algorithm_level(Algorithm::Brotli, 0);
            }
        }
    }

    /// `request_filter`: strips identity headers the peer may not send and notes what
    /// the response phase needs. Returns `true` when it has answered the request itself
    /// (an interstitial logout, the token refresh path `inject.token_refresh_path` or
    /// the report path `rollout.report_path`), as Pingora's `request_filter` does.
    pub async fn request_filter(
        &self,
        session: &mut Session,
        state: &mut RequestState,
    ) -> pingora::Result<bool> {
        let peer = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        state.hints = self.identity.inspect_request(session.req_header_mut(), peer);
        let req = session.req_header();
        (state.marker, state.last_user) = cookies::own_cookies(req);
        state.navigation = headers::is_navigation(req);
        state.soft_navigation = !state.navigation && headers::is_soft_navigation(req);
        state.logout_request =
            logout::is_logout_request(&self.logout, req.method.as_str(), req.uri.path());
        if self.is_report(req) {
            state.outcome = Handled::Report;
            self.answer_report(session).await?;
            return Ok(true);
        }
        if state.logout_request
            && state.navigation
            && self.logout.mode == LogoutMode::Interstitial
            && self.enforces_logout(state)
        {
            self.answer_logout(session, state).await?;
            return Ok(true);
        }
        if self.is_token_refresh(req) {
            state.outcome = Handled::TokenRefresh;
            self.answer_token_refresh(session, state).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// `upstream_request_filter`: asks the app only for encodings we can decode, and
    /// for a full page (no conditional headers) on navigations of possibly logged-in
    /// users: a 304 would let the browser reuse a page without this user's token.
    pub fn upstream_request_filter(
        &self,
        upstream_request: &mut RequestHeader,
        state: &RequestState,
    ) -> pingora::Result<()> {
        if !state.candidate {
            return Ok(());
        }
        if let Some(ae) = decodable_accept_encoding(upstream_request) {
            upstream_request.insert_header(http::header::ACCEPT_ENCODING, ae)?;
        }
        // Report only: the page is the app's for everyone (the observer is the same bytes
        // for all), so the browser's copy may be reused.
        let per_user = state.live.mode == RolloutMode::Enforce
            && (state.hints.maybe_identified() || state.marker);
        if state.navigation && per_user {
            upstream_request.remove_header(&http::header::IF_NONE_MATCH);
            upstream_request.remove_header(&http::header::IF_MODIFIED_SINCE);
        }
        Ok(())
    }

    /// `adjust_upstream_modules`: if the app's response is a page to rewrite, finds out
    /// who the user is and signs the token, and turns decompression on when needed.
    pub async fn adjust_upstream_modules(
        &self,
        session: &mut Session,
        resp: &ResponseHeader,
        end_of_stream: bool,
        state: &mut RequestState,
    ) {
        if resp.status.is_informational() {
            return;
        }
        state.bodiless = end_of_stream;
        if !state.candidate || end_of_stream {
            return;
        }
        if let Err(why) = page::rewritable(resp, &self.inject) {
            log::debug!(
                "not rewriting {}: {why}",
                crate::warn::loggable_path(session.req_header().uri.path())
            );
            state.outcome = Handled::Skipped(why);
            return;
        }
        state.outcome = Handled::Anonymous;
        let logout = self.is_logout_response(state, resp);
        let creds = if logout {
            Credentials::default()
        } else {
            self.credentials_for(session, state).await
        };
        if !self.decide_slice(state, creds.user_tag.as_ref()) {
            state.outcome = Handled::OutsideRollout;
            return;
        }
        let switched = match (&creds.user_tag, &state.last_user) {
            (Some(now), Some(last)) => now.as_str() != last,
            _ => false,
        };
        let plan = Plan {
            shutdown: state.marker || logout || switched,
            failure: creds
                .failed
                .then_some(self.inject.on_identity_failure)
                .filter(|f| *f != OnIdentityFailure::Pass),
            token: creds.token,
            plain: creds.plain,
        };
        if !self.wants_script(&plan, creds.failed) {
            return;
        }
        if headers::content_encoding(resp).is_some_and(|ce| ce != "identity") {
            session.upstream_compression.adjust_decompression(true);
        }
        let observe = state.live.mode == RolloutMode::ReportOnly;
        state.page = Some(PagePlan { plan, user_tag: creds.user_tag, observe });
    }

    /// Whether this page's session is in the rollout (counted in
    /// `rollout_pages_total{slice}`): everyone at 100%, else a user by their bucket,
    /// and a visitor without a user by [`was_in_rollout`](Self::was_in_rollout).
    fn decide_slice(&self, state: &RequestState, user: Option<&UserTag>) -> bool {
        let inside = state.live.everyone()
            || match user {
                Some(tag) => state.live.admits(tag.bucket()),
                None => self.was_in_rollout(state),
            };
        if inside { &METRICS.in_rollout } else { &METRICS.outside_rollout }.inc();
        inside
    }

    /// Whether a browser without a known user was in the rollout: its last-user cookie
    /// names a user in it, or it carries the marker that only a logout in the rollout
    /// sets. Such a browser keeps getting its shutdown; others are left alone.
    fn was_in_rollout(&self, state: &RequestState) -> bool {
        state.marker
            || state
                .last_user
                .as_deref()
                .is_some_and(|tag| state.live.admits(self.user_tags.bucket_of(tag)))
    }

    /// Whether a logout gets its effects (the marker, the interstitial): only in
    /// `enforce`, and for a browser in the rollout.
    fn enforces_logout(&self, state: &RequestState) -> bool {
        state.live.mode == RolloutMode::Enforce
            && (state.live.everyone() || self.was_in_rollout(state))
    }

    /// Whether a page gets the script: for its user, a shutdown, a lookup that failed
    /// (`inject.on_identity_failure` other than `pass`), or as the logged-out
    /// visitors' watcher (`inject.watch_logged_out`).
    fn wants_script(&self, plan: &Plan, failed: bool) -> bool {
        match plan.is_shared() {
            true => !failed && self.inject.watch_logged_out,
            false => true,
        }
    }

    /// `response_filter`: logout effects, cache invalidation on login, and the
    /// rewriter with its header changes for a planned page.
    pub async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        state: &mut RequestState,
    ) -> pingora::Result<()> {
        if self.is_logout_response(state, resp) {
            self.identity.forget_session(&state.hints).await;
            if self.enforces_logout(state) {
                self.finish_logout(session, resp, state)?;
            }
        } else if logout::sets_session_cookie(resp, self.identity.session_cookie_names()) {
            // A login: whatever was cached for the old cookie value is stale.
            self.identity.forget_session(&state.hints).await;
        } else if crate::identity::login::may_log_in(&session.req_header().method, resp) {
            // Maybe a login that kept the session id: a cached "nobody" is stale.
            self.identity.forget_anonymous(&state.hints).await;
        }
        if state.soft_navigation && state.live.mode == RolloutMode::Enforce {
            // Tells the page script of the window that will run this page's scripts to
            // confirm its token first (see page.js).
            resp.insert_header(SOFT_NAVIGATION_MARK, "1")?;
        }
        // Decompression may have failed to apply; never rewrite encoded bytes.
        let still_encoded = headers::content_encoding(resp).is_some_and(|ce| ce != "identity");
        match state.page.take() {
            Some(page) if !still_encoded => {
                state.outcome = page.outcome();
                self.start_page(resp, state, page)?
            }
            Some(_) => state.outcome = Handled::Skipped("content-encoding"),
            _ if state.candidate && state.replacement.is_none() => {
                // Not rewritten after all: the app's own encoding is passed on as it is.
                if let Some(c) = session.downstream_modules_ctx.get_mut::<ResponseCompression>() {
                    c.adjust_level(0);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// `response_body_filter`: the rewriter, or the replacement body.
    pub fn response_body_filter(
        &self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        state: &mut RequestState,
    ) {
        state.body_filtered = true;
        if let Some(page) = &state.replacement {
            *body = end_of_stream.then(|| page.clone());
        } else if let Some(rewriter) = state.rewriter.as_mut() {
            rewriter.process(body, end_of_stream);
        }
    }

    /// `logging`: counts the request by outcome, and notes a page that passed through
    /// without the script.
    ///
    /// A host proxy that calls [`response_filter`](Self::response_filter) but not
    /// [`response_body_filter`](Self::response_body_filter) sends the app's body under
    /// the rewritten headers (a new `Content-Length`, so the body comes out short): that
    /// is logged here as an error, and fails a debug assertion.
    pub fn logging(&self, session: &Session, state: &RequestState) {
        // Body bytes went out, yet the body phase never ran: it was not called (an
        // error before the body sends nothing, so it does not count).
        if state.rewriting() && !state.body_filtered && session.body_bytes_sent() > 0 {
            log::error!(
                "{}: the body was sent without SecureMode::response_body_filter after \
                 response_filter rewrote its headers; call it from your response_body_filter",
                crate::warn::loggable_path(session.req_header().uri.path())
            );
            debug_assert!(false, "SecureMode::response_body_filter was not called");
        }
        let gave_up =
            state.rewriter.as_ref().is_some_and(|rw| matches!(rw.outcome(), Outcome::GaveUp(_)));
        let outcome = if gave_up { "gave_up" } else { state.outcome.label() };
        METRICS.requests.with_label_values(&[outcome]).inc();
        if let Some(rw) = &state.rewriter {
            if let Outcome::GaveUp(reason) = rw.outcome() {
                log::info!(
                    "{} passed through without the Messenger script ({reason:?} after {} bytes)",
                    crate::warn::loggable_path(session.req_header().uri.path()),
                    rw.parsed_bytes()
                );
            }
        }
    }

    /// A GET that may come back as a document this site rewrites.
    fn is_candidate(&self, req: &RequestHeader) -> bool {
        req.method == http::Method::GET
            && req.headers.get(http::header::UPGRADE).is_none()
            && headers::may_be_document(req)
            && !self.inject.exclude_paths.iter().any(|p| p.matches(req.uri.path()))
    }

    fn is_logout_response(&self, state: &RequestState, resp: &ResponseHeader) -> bool {
        state.logout_request
            || (self.logout.detect_cookie_expiry
                && logout::expires_session_cookie(resp, self.identity.session_cookie_names()))
    }

    /// Who is this request's user; a source's failure is warned about here, and the
    /// source that knew the user is noted for the access log.
    async fn identify(&self, session: &Session, state: &mut RequestState) -> Lookup {
        if !state.hints.maybe_identified() {
            return Lookup::Anonymous;
        }
        let (lookup, answered_by) = self.identity.resolve_answered(&state.hints).await;
        state.answered_by = answered_by;
        if let Lookup::Failed(why) = &lookup {
            let path = crate::warn::loggable_path(session.req_header().uri.path());
            crate::warn_limited!(
                "{why}; serving {path} without a Messenger token, {}",
                self.inject.on_identity_failure.describe()
            );
        }
        lookup
    }

    /// What this request's page gets for its user, per `intercom.mode` (nothing, with
    /// a warning and `failed` set, when a source or the signer failed).
    async fn credentials_for(&self, session: &Session, state: &mut RequestState) -> Credentials {
        let failed = Credentials { failed: true, ..Credentials::default() };
        let id = match self.identify(session, state).await {
            Lookup::Found(id) => id,
            Lookup::Anonymous => return Credentials::default(),
            Lookup::Failed(_) => return failed,
        };
        let token = match self.signs_jwt.then(|| self.signer.token_for(&id)).transpose() {
            Ok(token) => token,
            Err(e) => {
                let path = crate::warn::loggable_path(session.req_header().uri.path());
                crate::warn_limited!(
                    "{e}; serving {path} without a Messenger token, {}",
                    self.inject.on_identity_failure.describe()
                );
                return failed;
            }
        };
        Credentials {
            token,
            plain: self.hasher.as_ref().map(|h| h.plain_settings(&id)),
            user_tag: Some(self.user_tags.user(&id.user_id)),
            failed: false,
        }
    }

    /// Sets up the rewriter and the cookies of a page we rewrite.
    fn start_page(
        &self,
        resp: &mut ResponseHeader,
        state: &mut RequestState,
        page: PagePlan,
    ) -> pingora::Result<()> {
        if page.observe {
            // Report only: the observer, and no cookie of ours.
            state.rewriter = self.pages.observe(resp).transpose()?;
            return Ok(());
        }
        state.rewriter = Some(self.pages.start(resp, &page.plan)?);
        // A logout's effects on the same response (a logout landing page) come first and win.
        if page.plan.shutdown && state.marker {
            cookies::set_cookie_unless_set(resp, cookies::marker_clear())?;
        }
        if let Some(tag) = page.user_tag.filter(|t| state.last_user.as_deref() != Some(t.as_str()))
        {
            cookies::set_cookie_unless_set(resp, tag.set_cookie())?;
        }
        Ok(())
    }
}

/// The site as metrics and logs name it: its `name`, else its first host.
fn site_label(site: &SiteConfig) -> String {
    site.name
        .clone()
        .unwrap_or_else(|| site.hosts.first().map_or_else(|| "*".to_string(), |h| h.to_string()))
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
