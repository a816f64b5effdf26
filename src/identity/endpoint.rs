//! Identity from the application's own "current user" endpoint (e.g. `GET /api/me`).
//!
//! The proxy replays the browser's session cookies to the endpoint and maps the JSON
//! answer to an [`Identity`] with JSON pointers. Answers are cached per session under a
//! SHA-256 of the host and session cookies (the raw cookie is never a key, a log line or
//! a metric label); concurrent requests of one session share one upstream call; "not
//! logged in" is cached for a shorter time; and any failure (slow, down, 5xx, garbage)
//! fails open: no token, page served, warning logged. With `identity.shared_cache`,
//! instances share answers through Redis ([`super::shared_cache`]) and each keeps its
//! own copy at most [`LOCAL_TTL_WHEN_SHARED`], so a logout one instance sees reaches
//! the others within that.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pingora::http::RequestHeader;
use sha2::{Digest, Sha256};

use super::html_fields::HtmlFields;
use super::json_fields;
use super::late::LateLookups;
use super::session_cache::{self, Cached, Forget, SessionCache};
use super::shared_cache::{Lifetimes, SharedCache};
use super::{Company, Identity, Lookup, SourceError};
use crate::config::{EndpointConfig, EndpointFormat};
use crate::upstream::Upstream;

/// Answers larger than this are not a "current user" document.
const MAX_BODY: usize = 64 * 1024;

/// How long an instance keeps a shared answer to itself: short, because a logout or
/// login another instance saw is only in Redis.
pub const LOCAL_TTL_WHEN_SHARED: Duration = Duration::from_secs(1);

/// The session part of a request: what is forwarded to the endpoint and what keys the cache.
#[derive(Clone)]
pub struct SessionKey {
    digest: [u8; 32],
    cookie: String,
    host: Option<String>,
}

#[cfg(test)]
impl CurrentUserEndpoint {
    /// The source without a shared cache (for the property suite).
    pub(crate) fn unshared(config: EndpointConfig, upstream: Arc<Upstream>) -> Self {
        Self::new(config, upstream, None)
    }
}

#[cfg(test)]
impl SessionKey {
    /// The cookie pairs forwarded to the endpoint (for the property suite).
    pub(crate) fn cookie(&self) -> &str {
        &self.cookie
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the cookie.
        write!(
            f,
            "SessionKey({:02x}{:02x}{:02x}{:02x}…)",
            self.digest[0], self.digest[1], self.digest[2], self.digest[3]
        )
    }
}

/// The current-user endpoint source.
pub struct CurrentUserEndpoint {
    config: EndpointConfig,
    /// What asks the app, shared with the lookups that outlive their timeout.
    asker: Arc<Asker>,
    cache: Arc<SessionCache>,
    late: Arc<LateLookups<EndpointError>>,
    shared: Option<Arc<SharedCache>>,
}

/// Asks the app's endpoint and maps its answer.
struct Asker {
    config: EndpointConfig,
    /// The selectors, for `format: html` (boxed: most sources are JSON).
    html: Option<Box<HtmlFields>>,
    upstream: Arc<Upstream>,
}

impl CurrentUserEndpoint {
    /// Builds the source; lookups go to `upstream`, through `shared` when instances
    /// share a cache.
    pub(super) fn new(
        config: EndpointConfig,
        upstream: Arc<Upstream>,
        shared: Option<Arc<SharedCache>>,
    ) -> Self {
        let local =
            |ttl: Duration| if shared.is_some() { ttl.min(LOCAL_TTL_WHEN_SHARED) } else { ttl };
        let life = session_cache::Lifetimes {
            found: local(config.cache.ttl),
            anonymous: local(config.cache.negative_ttl),
            // With a shared cache: two claims' worth of waiting, then our own call.
            lookup: config.timeout * 3,
        };
        let cache = Arc::new(SessionCache::new(config.cache.capacity, &life));
        let html =
            (config.format == EndpointFormat::Html).then(|| Box::new(HtmlFields::new(&config)));
        CurrentUserEndpoint {
            asker: Arc::new(Asker { config: config.clone(), html, upstream }),
            config,
            late: LateLookups::new(),
            cache,
            shared,
        }
    }

    /// The configured session cookie names (empty: the whole Cookie header is used).
    pub fn cookie_names(&self) -> &[String] {
        &self.config.cookies
    }

    /// The session of this request, or `None` when it carries no session cookie.
    pub fn session_key(&self, req: &RequestHeader) -> Option<SessionKey> {
        let mut cookie = String::new();
        let pairs = crate::headers::cookie_pairs(req);
        if self.config.cookies.is_empty() {
            // Intercom's own cookies change without the app session changing.
            for pair in pairs.filter(|p| !crate::intercom_cookies::is_foreign_to_app(p)) {
                push_pair(&mut cookie, pair);
            }
        } else {
            let pairs: Vec<&str> = pairs.collect();
            for name in &self.config.cookies {
                for pair in &pairs {
                    let pair_name = crate::headers::cookie_name_value(pair).map(|(n, _)| n);
                    if pair_name == Some(name.as_str()) {
                        push_pair(&mut cookie, pair);
                    }
                }
            }
        }
        if cookie.is_empty() {
            return None;
        }
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| req.uri.authority().map(|a| a.to_string()));
        let mut hasher = Sha256::new();
        hasher.update(host.as_deref().unwrap_or("").as_bytes());
        hasher.update(b"\n");
        hasher.update(cookie.as_bytes());
        Some(SessionKey { digest: hasher.finalize().into(), cookie, host })
    }

    /// Who the session belongs to, from the cache or the endpoint; `true` when this
    /// lookup had to load the answer (a cache miss).
    pub async fn lookup(&self, key: &SessionKey) -> (Lookup, bool) {
        let (answer, loaded) =
            self.cache.get_or_load(&key.digest, |generation| self.load(key, generation)).await;
        let lookup = match answer {
            Ok(Some(identity)) => Lookup::Found(identity),
            Ok(None) => Lookup::Anonymous,
            Err(why) if matches!(*why, EndpointError::Superseded) => Lookup::Anonymous,
            Err(why) => Lookup::Failed(SourceError::Endpoint {
                path: self.config.path.clone(),
                why: (*why).clone(),
            }),
        };
        (lookup, loaded)
    }

    /// Drops the cached answer for this session (or only a "nobody"), here and in the
    /// shared cache. The shared entry goes unless this instance still knows the user:
    /// reading it to tell would cost as much as the lookup it may save.
    pub async fn forget(&self, key: &SessionKey, what: Forget) {
        if !self.cache.forget(&key.digest, what).await {
            return;
        }
        if let Some(shared) = &self.shared {
            shared.forget(&shared.entry(&self.config.path, &key.digest)).await;
        }
    }

    /// The answer of the shared cache or, without one, of the endpoint, for the
    /// session's `generation`.
    async fn load(&self, key: &SessionKey, generation: u64) -> Result<Cached, EndpointError> {
        let ask_app = || async {
            let (asker, owned) = (self.asker.clone(), key.clone());
            let fetch = async move { asker.fetch(&owned).await };
            let timed_out = EndpointError::Timeout(self.config.timeout);
            let answer = self
                .late
                .ask(&self.cache, key.digest, generation, self.config.timeout, timed_out, fetch)
                .await;
            // A "nobody" asked before a login this instance has seen since must not be
            // shared: a lookup after the login (ours too) would wait for it and take it.
            match answer {
                Ok(None) if self.cache.forgotten_since(&key.digest, generation).await => {
                    Err(EndpointError::Superseded)
                }
                answer => answer,
            }
        };
        let Some(shared) = &self.shared else { return ask_app().await };
        let life = Lifetimes {
            found: self.config.cache.ttl,
            anonymous: self.config.cache.negative_ttl,
            fetch: self.config.timeout,
        };
        let answer = shared
            .get_or_fetch(&shared.entry(&self.config.path, &key.digest), &life, ask_app)
            .await?;
        Ok(only_mapped(&self.config, answer))
    }
}

impl Asker {
    async fn fetch(&self, key: &SessionKey) -> Result<Cached, EndpointError> {
        crate::metrics::METRICS.fetches.with_label_values(&["current_user_endpoint"]).inc();
        let exchange = |e: Box<pingora::Error>| match is_over_bound(&e) {
            true => EndpointError::TooLarge(MAX_BODY),
            false => EndpointError::Exchange(crate::warn::describe(&e)),
        };
        let mut req =
            RequestHeader::build("GET", self.config.path.as_bytes(), None).map_err(exchange)?;
        let headers = [
            ("host", key.host.as_deref().unwrap_or("localhost")),
            ("cookie", key.cookie.as_str()),
            (
                "accept",
                match self.config.format {
                    EndpointFormat::Json => "application/json",
                    EndpointFormat::Html => "text/html",
                },
            ),
            ("user-agent", "intercom-secure-proxy"),
        ];
        for (name, value) in headers {
            req.insert_header(name, value).map_err(exchange)?;
        }
        let (header, body) =
            self.upstream.exchange(req, Bytes::new(), MAX_BODY).await.map_err(exchange)?;
        let status = header.status.as_u16();
        match status {
            200..=299 => match &self.html {
                Some(fields) => fields
                    .identity(&body, crate::headers::charset(&header).as_deref())
                    .map(|id| id.map(Arc::new)),
                None => self.map_document(&body).map(|id| id.map(Arc::new)),
            },
            // Not logged in: the usual answers of an app for a missing session.
            300..=399 | 401 | 403 => Ok(None),
            other => Err(EndpointError::Status(other)),
        }
    }

    /// Maps the endpoint's JSON to an identity; a null or missing user id means logged out.
    fn map_document(&self, body: &[u8]) -> Result<Option<Identity>, EndpointError> {
        let doc: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| EndpointError::NotJson(e.to_string()))?;
        let fields = &self.config.fields;
        let found = json_fields::identity(&doc, fields)
            .map_err(|kind| EndpointError::UserId { pointer: fields.user_id.clone(), kind })?;
        let Some(mut identity) = found else { return Ok(None) };
        if let Some(ptr) = &self.config.company_id {
            identity.company = self.id_at(&doc, ptr)?.map(|id| Company {
                id,
                name: json_fields::text_at(&doc, &self.config.company_name),
            });
        }
        Ok(Some(identity))
    }

    /// [`json_fields::id_at`], its refusal naming the pointer.
    fn id_at(
        &self,
        doc: &serde_json::Value,
        pointer: &str,
    ) -> Result<Option<String>, EndpointError> {
        json_fields::id_at(doc, pointer)
            .map_err(|kind| EndpointError::UserId { pointer: pointer.to_string(), kind })
    }
}

/// Why the current-user endpoint gave no usable answer. The texts name statuses,
/// pointers and JSON kinds, never the answer's values or the session's cookies.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EndpointError {
    /// No answer within the configured timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The request could not be made or the answer not read (a scrubbed description).
    #[error("{0}")]
    Exchange(String),
    /// The answer is longer than a current-user document (or account page) can be.
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
    /// A status that says neither "logged in" nor "logged out".
    #[error("status {0}")]
    Status(u16),
    /// The answer is not JSON (serde's message: a position and a category).
    #[error("answer is not JSON ({0})")]
    NotJson(String),
    /// The user id (or company id) is not a string or an integer.
    #[error("id at {pointer} is {kind}, not a string or integer")]
    UserId {
        /// The configured JSON pointer.
        pointer: String,
        /// What was found there.
        kind: &'static str,
    },
    /// The account page could not be parsed (a category, never page content).
    #[error("account page not parsed: {0}")]
    NotHtml(&'static str),
    /// A selector cannot be used (only possible for sources built in code).
    #[error("unusable selector: {0}")]
    Selector(String),
    /// The app said "nobody" for a session that may have logged in since it was asked
    /// (the request that asked is served as nobody's; the answer is not kept).
    #[error("answer superseded by a login")]
    Superseded,
    /// The account page gives a doubtful value for a field that names the user.
    #[error("account page field {field} is doubtful ({why}); no identity")]
    Doubtful {
        /// The field's name in `fields`.
        field: String,
        /// Why it is doubtful.
        why: &'static str,
    },
}

/// Whether the exchange gave up at the body bound. `describe` leaves contexts out (they
/// may hold raw bytes); this one is the proxy's own words, and worth telling operators.
fn is_over_bound(e: &pingora::Error) -> bool {
    e.context.as_ref().is_some_and(|c| c.as_str().starts_with("response body larger than"))
}

fn push_pair(out: &mut String, pair: &str) {
    if !out.is_empty() {
        out.push_str("; ");
    }
    out.push_str(pair);
}

/// An answer with only the fields `config` maps. Another instance sharing the cache may
/// run a configuration that maps more, and a token must carry what `check` says this
/// source signs.
fn only_mapped(config: &EndpointConfig, answer: Cached) -> Cached {
    let id = answer?;
    let unmapped = (id.email.is_some() && !config.fills("email"))
        || (id.name.is_some() && !config.fills("name"))
        || id.attributes.keys().any(|a| !config.fills(a))
        || (id.company.is_some() && config.company_id.is_none());
    if !unmapped {
        return Some(id);
    }
    let mut id = Identity::clone(&id);
    if !config.fills("email") {
        id.email = None;
    }
    if !config.fills("name") {
        id.name = None;
    }
    id.attributes.retain(|a, _| config.fills(a));
    if config.company_id.is_none() {
        id.company = None;
    }
    Some(Arc::new(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_answer_keeps_only_what_this_source_maps() {
        let mut config = EndpointConfig::new("/api/me", "/id");
        config.fields.name = None;
        let mut id = Identity::new("alice");
        id.email = Some("alice@example.com".into());
        id.name = Some("Alice".into());
        id.attributes.insert("plan".into(), serde_json::json!("pro"));
        id.company = Some(Company { id: "c1".into(), name: None });
        let kept = only_mapped(&config, Some(Arc::new(id))).unwrap();
        assert_eq!(
            (kept.email.as_deref(), kept.name.as_deref()),
            (Some("alice@example.com"), None)
        );
        assert!(kept.attributes.is_empty() && kept.company.is_none(), "{kept:?}");
        let mapped = Arc::new(Identity::new("bob"));
        assert!(
            Arc::ptr_eq(&only_mapped(&config, Some(mapped.clone())).unwrap(), &mapped),
            "nothing to drop: no copy"
        );
        assert_eq!(only_mapped(&config, None), None);
    }
}
