//! Identity: who is logged in, learned from the application's own session.
//!
//! Sources are tried in configured order and the first one that knows the user wins:
//! [`trusted_header`] reads headers set by an authenticating proxy in front of us (and
//! strips them from everyone else), [`endpoint`] asks the application's "current user"
//! endpoint with the browser's cookies and caches the answer per session.

pub mod endpoint;
pub mod trusted_header;

use std::collections::BTreeMap;
use std::sync::Arc;

use pingora::http::RequestHeader;

use crate::config::{IdentityConfig, SourceConfig};
use crate::upstream::Upstream;

/// A logged-in user, as the application knows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The application's user id (always a string in tokens).
    pub user_id: String,
    /// Email address, when known.
    pub email: Option<String>,
    /// Display name, when known.
    pub name: Option<String>,
    /// Further attributes by name (only the ones configured as claims are signed).
    pub attributes: BTreeMap<String, serde_json::Value>,
}

impl Identity {
    /// A user known only by id.
    pub fn new(user_id: impl Into<String>) -> Self {
        Identity {
            user_id: user_id.into(),
            email: None,
            name: None,
            attributes: BTreeMap::new(),
        }
    }

    /// The value of a claim field by name, if the identity has it.
    pub fn field(&self, name: &str) -> Option<serde_json::Value> {
        match name {
            "email" => self.email.clone().map(serde_json::Value::String),
            "name" => self.name.clone().map(serde_json::Value::String),
            other => self.attributes.get(other).cloned(),
        }
    }
}

/// The outcome of asking the sources about one request.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The request belongs to this user.
    Found(Arc<Identity>),
    /// Nobody is logged in on this request.
    Anonymous,
    /// A source could not answer; the page is served without a token.
    Failed(String),
}

/// What the request phase learned, kept for the response phase.
#[derive(Debug, Default, Clone)]
pub struct RequestHints {
    /// Identity asserted by a trusted peer's headers.
    pub asserted: Option<Arc<Identity>>,
    /// The session cookies seen (key for the endpoint cache and its request).
    pub session: Option<endpoint::SessionKey>,
}

impl RequestHints {
    /// Whether this request may belong to a logged-in user (so caches must be bypassed).
    pub fn maybe_identified(&self) -> bool {
        self.asserted.is_some() || self.session.is_some()
    }
}

/// All configured sources, in order.
pub struct IdentityResolver {
    headers: Vec<trusted_header::TrustedHeaderSource>,
    endpoint: Option<endpoint::CurrentUserEndpoint>,
    order: Vec<SourceKind>,
}

#[derive(Clone, Copy)]
enum SourceKind {
    Header,
    Endpoint,
}

impl IdentityResolver {
    /// Builds the sources; the endpoint source asks `upstream`.
    pub fn new(config: &IdentityConfig, upstream: Arc<Upstream>) -> Self {
        let mut headers = Vec::new();
        let mut endpoint = None;
        let mut order = Vec::new();
        for source in &config.sources {
            match source {
                SourceConfig::TrustedHeader(c) => {
                    order.push(SourceKind::Header);
                    headers.push(trusted_header::TrustedHeaderSource::new(c.clone()));
                }
                // Config validation allows several endpoint sources, but one app has
                // one current-user endpoint: the first one is used.
                SourceConfig::CurrentUserEndpoint(c) if endpoint.is_none() => {
                    order.push(SourceKind::Endpoint);
                    endpoint = Some(endpoint::CurrentUserEndpoint::new(
                        c.clone(),
                        upstream.clone(),
                    ));
                }
                SourceConfig::CurrentUserEndpoint(_) => {}
            }
        }
        IdentityResolver {
            headers,
            endpoint,
            order,
        }
    }

    /// Request phase: removes identity headers the peer may not set, and records what
    /// the response phase needs. Cheap: no I/O.
    pub fn inspect_request(
        &self,
        req: &mut RequestHeader,
        peer: Option<std::net::IpAddr>,
    ) -> RequestHints {
        let mut hints = RequestHints::default();
        for source in &self.headers {
            let asserted = source.filter_request(req, peer);
            if hints.asserted.is_none() {
                hints.asserted = asserted.map(Arc::new);
            }
        }
        if let Some(e) = &self.endpoint {
            hints.session = e.session_key(req);
        }
        hints
    }

    /// Response phase: who is this? Consults the sources in order.
    pub async fn resolve(&self, hints: &RequestHints) -> Lookup {
        let mut failure = None;
        for kind in &self.order {
            match kind {
                SourceKind::Header => {
                    if let Some(id) = &hints.asserted {
                        return Lookup::Found(id.clone());
                    }
                }
                SourceKind::Endpoint => {
                    let (Some(e), Some(key)) = (&self.endpoint, &hints.session) else {
                        continue;
                    };
                    match e.lookup(key).await {
                        Lookup::Found(id) => return Lookup::Found(id),
                        Lookup::Anonymous => {}
                        Lookup::Failed(why) => failure = Some(why),
                    }
                }
            }
        }
        match failure {
            Some(why) => Lookup::Failed(why),
            None => Lookup::Anonymous,
        }
    }

    /// Forgets what is cached for this session (on login, logout or a user switch).
    pub async fn forget_session(&self, hints: &RequestHints) {
        if let (Some(e), Some(key)) = (&self.endpoint, &hints.session) {
            e.forget(key).await;
        }
    }

    /// The cookie names that carry the session, when the endpoint source names them.
    pub fn session_cookie_names(&self) -> &[String] {
        self.endpoint.as_ref().map(|e| e.cookie_names()).unwrap_or(&[])
    }
}
