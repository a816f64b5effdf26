//! Identity: who is logged in, learned from the application's own session.
//!
//! The resolver holds one ordered list of sources; they are tried in that order and
//! the first one that knows the user wins:
//! `trusted_header` reads headers set by an authenticating proxy in front of us (and
//! strips them from everyone else), `endpoint` asks the application's "current user"
//! endpoint with the browser's cookies (a JSON answer, or an HTML account page read
//! with CSS selectors by `html_fields`) and caches the answer per session.
//! `redis_session` reads the app's session straight from the Redis it lives in.
//! `jwt_cookie` verifies a JWT the app signed into its cookie (or a bearer header),
//! `signed_header` one an identity-aware proxy in front signed (both verified by the `jwt` module).
//! The last two cache their answers per session (`session_cache`). With
//! `identity.shared_cache`, instances share the endpoint answers in Redis (`shared_cache`).
//! `login` says which exchanges may have logged a session in without a new cookie.

pub(crate) mod endpoint;
mod html_fields;
mod json_fields;
mod jwt;
pub(crate) mod jwt_cookie;
mod late;
pub(crate) mod login;
pub(crate) mod redis_probe;
pub mod redis_session;
pub(crate) mod redis_store;
mod session_cache;
mod shared_cache;
mod signed_header;
mod trusted_header;

use std::collections::BTreeMap;
use std::sync::Arc;

use pingora::http::RequestHeader;

use crate::config::{IdentityConfig, SourceConfig};
use crate::metrics::{LookupResult, SourceMetrics, METRICS};
use crate::upstream::Upstream;
use session_cache::Forget;

/// A logged-in user, as the application knows them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// The application's user id (always a string in tokens).
    pub user_id: String,
    /// Email address, when known.
    pub email: Option<String>,
    /// Display name, when known.
    pub name: Option<String>,
    /// Further attributes by name (only the ones configured as claims are signed).
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// The user's company, when a source maps one (signed as the token's `company`).
    pub company: Option<Company>,
}

/// A user's company, as Intercom reads it from the token's `company` claim.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Company {
    /// The app's company id (always a string in tokens).
    pub id: String,
    /// The company's name, when known.
    pub name: Option<String>,
}

impl Identity {
    /// A user known only by id.
    pub fn new(user_id: impl Into<String>) -> Self {
        Identity {
            user_id: user_id.into(),
            email: None,
            name: None,
            attributes: BTreeMap::new(),
            company: None,
        }
    }

    /// The value of a claim field by name, if the identity has it.
    pub fn field(&self, name: &str) -> Option<serde_json::Value> {
        self.field_ref(name).map(|f| match f {
            FieldRef::Text(s) => serde_json::Value::String(s.to_string()),
            FieldRef::Json(v) => v.clone(),
        })
    }

    /// [`field`](Self::field), borrowed.
    pub(crate) fn field_ref(&self, name: &str) -> Option<FieldRef<'_>> {
        match name {
            "email" => self.email.as_deref().map(FieldRef::Text),
            "name" => self.name.as_deref().map(FieldRef::Text),
            other => self.attributes.get(other).map(FieldRef::Json),
        }
    }
}

/// A claim field's value, borrowed from an [`Identity`]; serializes as the claim would.
#[derive(serde::Serialize)]
#[serde(untagged)]
pub(crate) enum FieldRef<'a> {
    /// `email` or `name`.
    Text(&'a str),
    /// An attribute.
    Json(&'a serde_json::Value),
}

/// The outcome of asking the sources about one request.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The request belongs to this user.
    Found(Arc<Identity>),
    /// Nobody is logged in on this request.
    Anonymous,
    /// A source could not answer; the page is served without a token.
    Failed(SourceError),
}

/// Why a source could not say who is logged in (never includes a cookie or token).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// The current-user endpoint failed.
    #[error("current-user endpoint {path} failed: {why}")]
    Endpoint {
        /// The endpoint's path.
        path: String,
        /// What went wrong.
        why: EndpointError,
    },
    /// The redis_session source failed.
    #[error("redis_session {key} failed: {why}")]
    RedisSession {
        /// The key template (never the key: it holds the session id).
        key: String,
        /// What went wrong.
        why: redis_session::RedisSessionError,
    },
    /// The keys of a JWT source could not be fetched.
    #[error("{source_type}: {why}")]
    Jwt {
        /// `jwt_cookie` or `signed_header`.
        source_type: &'static str,
        /// What went wrong.
        why: JwtError,
    },
}

pub use endpoint::EndpointError;
pub use html_fields::{decode_entities, HtmlFields};
pub use jwt::{key_url_warnings, FetchError, JwtError, KeyError};
pub use jwt_cookie::cookie_token;
pub use redis_probe::reachability_warnings;

/// What the request phase learned, kept for the response phase: one entry per
/// source, in the resolver's order.
#[derive(Debug, Default, Clone)]
pub struct RequestHints(Vec<Hint>);

#[derive(Debug, Clone)]
enum Hint {
    /// This source has nothing to say about the request.
    Nothing,
    /// A trusted peer asserted this identity.
    Asserted(Arc<Identity>),
    /// The session cookies to look up (key for the endpoint cache and its request).
    Session(endpoint::SessionKey),
    /// The session to read from Redis.
    RedisSession(redis_session::SessionRef),
    /// A JWT to verify (from a cookie, a bearer header or a signed assertion header).
    Token(jwt::Token),
}

impl RequestHints {
    /// The identity a trusted peer asserted, if any.
    #[cfg(test)]
    pub(crate) fn asserted(&self) -> Option<&Arc<Identity>> {
        self.0.iter().find_map(|h| match h {
            Hint::Asserted(id) => Some(id),
            _ => None,
        })
    }

    /// Whether this request may belong to a logged-in user (so caches must be bypassed).
    pub fn maybe_identified(&self) -> bool {
        self.0.iter().any(|h| !matches!(h, Hint::Nothing))
    }
}

/// One identity source.
enum Source {
    TrustedHeader(trusted_header::TrustedHeaderSource),
    CurrentUserEndpoint(endpoint::CurrentUserEndpoint),
    // Boxed: its cache and connection make it several times larger than the others.
    RedisSession(Box<redis_session::RedisSessionSource>),
    JwtCookie(jwt_cookie::JwtCookieSource),
    SignedHeader(signed_header::SignedHeaderSource),
}

impl Source {
    /// Request phase, no I/O: what this source can tell from the request.
    fn inspect(&self, req: &mut RequestHeader, peer: Option<std::net::IpAddr>) -> Hint {
        let hint = match self {
            Source::TrustedHeader(s) => {
                s.filter_request(req, peer).map(|id| Hint::Asserted(Arc::new(id)))
            }
            Source::CurrentUserEndpoint(s) => s.session_key(req).map(Hint::Session),
            Source::RedisSession(s) => s.session_ref(req).map(Hint::RedisSession),
            Source::JwtCookie(s) => s.token(req).map(Hint::Token),
            Source::SignedHeader(s) => s.take_assertion(req).map(Hint::Token),
        };
        hint.unwrap_or(Hint::Nothing)
    }

    /// The source's `type` in the config file (for logs, never the user).
    fn kind(&self) -> &'static str {
        match self {
            Source::TrustedHeader(_) => "trusted_header",
            Source::CurrentUserEndpoint(_) => "current_user_endpoint",
            Source::RedisSession(_) => "redis_session",
            Source::JwtCookie(_) => "jwt_cookie",
            Source::SignedHeader(_) => "signed_header",
        }
    }

    /// Response phase: who this is, according to this source, and whether the source
    /// had to ask its backing store (the app, Redis, a verification) for it.
    async fn resolve(&self, hint: &Hint) -> (Lookup, bool) {
        match (self, hint) {
            (_, Hint::Asserted(id)) => (Lookup::Found(id.clone()), false),
            (Source::CurrentUserEndpoint(s), Hint::Session(key)) => s.lookup(key).await,
            (Source::RedisSession(s), Hint::RedisSession(session)) => s.lookup(session).await,
            (Source::JwtCookie(s), Hint::Token(t)) => s.verifier().lookup(t).await,
            (Source::SignedHeader(s), Hint::Token(t)) => s.verifier().lookup(t).await,
            _ => (Lookup::Anonymous, false),
        }
    }
}

/// All configured sources, in order.
pub struct IdentityResolver {
    sources: Vec<Source>,
    /// Each source's lookup metrics, in the order of `sources`.
    metrics: Vec<SourceMetrics>,
    /// The session cookie names the endpoint sources name (for login/logout detection).
    session_cookies: Vec<String>,
}

impl IdentityResolver {
    /// Builds the sources; endpoint sources ask `upstream`.
    pub fn new(config: &IdentityConfig, upstream: Arc<Upstream>) -> Self {
        let shared =
            config.shared_cache.as_ref().map(|c| Arc::new(shared_cache::SharedCache::new(c)));
        let sources: Vec<Source> = config
            .sources
            .iter()
            .map(|source| match source {
                SourceConfig::TrustedHeader(c) => {
                    Source::TrustedHeader(trusted_header::TrustedHeaderSource::new(c.clone()))
                }
                SourceConfig::CurrentUserEndpoint(c) => Source::CurrentUserEndpoint(
                    endpoint::CurrentUserEndpoint::new(c.clone(), upstream.clone(), shared.clone()),
                ),
                SourceConfig::RedisSession(c) => Source::RedisSession(Box::new(
                    redis_session::RedisSessionSource::new(c.clone()),
                )),
                SourceConfig::JwtCookie(c) => {
                    Source::JwtCookie(jwt_cookie::JwtCookieSource::new(c.clone()))
                }
                SourceConfig::SignedHeader(c) => {
                    Source::SignedHeader(signed_header::SignedHeaderSource::new(c.clone()))
                }
            })
            .collect();
        let mut session_cookies = Vec::new();
        for source in &sources {
            let names = match source {
                Source::CurrentUserEndpoint(e) => e.cookie_names(),
                Source::RedisSession(r) => r.cookie_names(),
                Source::JwtCookie(j) => {
                    j.cookie_name().map(std::slice::from_ref).unwrap_or_default()
                }
                _ => continue,
            };
            for name in names {
                if !session_cookies.contains(name) {
                    session_cookies.push(name.clone());
                }
            }
        }
        let metrics = sources.iter().map(|s| METRICS.source(s.kind())).collect();
        IdentityResolver { sources, metrics, session_cookies }
    }

    /// Request phase: removes identity headers the peer may not set, and records what
    /// the response phase needs. Cheap: no I/O.
    pub fn inspect_request(
        &self,
        req: &mut RequestHeader,
        peer: Option<std::net::IpAddr>,
    ) -> RequestHints {
        RequestHints(self.sources.iter().map(|s| s.inspect(req, peer)).collect())
    }

    /// Response phase: who is this? Consults the sources in order; a failure is
    /// reported only when no later source knows the user.
    pub async fn resolve(&self, hints: &RequestHints) -> Lookup {
        self.resolve_answered(hints).await.0
    }

    /// [`resolve`](Self::resolve), with the `type` of the source that knew the user.
    pub(crate) async fn resolve_answered(
        &self,
        hints: &RequestHints,
    ) -> (Lookup, Option<&'static str>) {
        let mut failure = None;
        for ((source, hint), metrics) in self.sources.iter().zip(&hints.0).zip(&self.metrics) {
            if matches!(hint, Hint::Nothing) {
                continue;
            }
            let started = std::time::Instant::now();
            let (lookup, asked_store) = source.resolve(hint).await;
            let result = match &lookup {
                Lookup::Found(_) if asked_store => LookupResult::Miss,
                Lookup::Found(_) => LookupResult::Hit,
                Lookup::Anonymous => LookupResult::Anonymous,
                Lookup::Failed(_) => LookupResult::Failed,
            };
            metrics.record(result, started.elapsed());
            match lookup {
                Lookup::Found(id) => return (Lookup::Found(id), Some(source.kind())),
                Lookup::Anonymous => {}
                Lookup::Failed(why) => failure = failure.or(Some(why)),
            }
        }
        (failure.map_or(Lookup::Anonymous, Lookup::Failed), None)
    }

    /// Forgets what is cached for this session (on login, logout or a user switch).
    pub(crate) async fn forget_session(&self, hints: &RequestHints) {
        self.forget(hints, Forget::Everything).await
    }

    /// Forgets a cached "nobody" for this session (on a login that may have kept the
    /// session id); a known user stays cached.
    pub(crate) async fn forget_anonymous(&self, hints: &RequestHints) {
        self.forget(hints, Forget::Nobody).await
    }

    async fn forget(&self, hints: &RequestHints, what: Forget) {
        for (source, hint) in self.sources.iter().zip(&hints.0) {
            match (source, hint) {
                (Source::CurrentUserEndpoint(e), Hint::Session(key)) => e.forget(key, what).await,
                (Source::RedisSession(r), Hint::RedisSession(session)) => {
                    r.forget(session, what).await
                }
                _ => {}
            }
        }
    }

    /// The cookie names that carry the session, when endpoint sources name them.
    pub(crate) fn session_cookie_names(&self) -> &[String] {
        &self.session_cookies
    }
}
