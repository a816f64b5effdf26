//! The token refresh path (`inject.token_refresh_path`, `GET /__isp/token`), answered
//! by the proxy itself: open pages fetch a fresh token shortly before theirs expires.
//!
//! The identity is resolved from the request exactly as for a page (same sources,
//! cache and fail-open). The answer is `{"intercom_user_jwt": ..., "exp": ...}`, or 204
//! when nobody is logged in. When the identity cannot be known right now (a source or
//! the signer failed, warned about) it is 204 with `Retry-After`: the page keeps its
//! Messenger and asks again, since a slow endpoint is not a logout. Never a 5xx, never
//! forwarded to the app, always `no-store`. It carries no CORS header, so only
//! same-origin page scripts can read it.

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;

use super::{RequestState, SecureMode};
use crate::headers;
use crate::identity::Lookup;

/// Seconds after which a page asks again when the identity could not be known.
const RETRY_AFTER_SECS: u64 = 30;

/// What the refresh path answers.
enum Refresh {
    /// A fresh token for the request's user: the JSON body.
    Token(String),
    /// Nobody is logged in.
    Nobody,
    /// The identity (or the token) could not be made now; ask again later.
    Unknown,
}

impl SecureMode {
    /// A GET (or HEAD) of the refresh path. Other methods go to the app as usual.
    pub(super) fn is_token_refresh(&self, req: &RequestHeader) -> bool {
        matches!(req.method, http::Method::GET | http::Method::HEAD) && req.uri.path() == self.inject.token_refresh_path
    }

    /// Answers the refresh path: a freshly signed token for the request's user, or 204.
    pub(super) async fn answer_token_refresh(&self, session: &mut Session, state: &mut RequestState) -> pingora::Result<()> {
        let answer = self.fresh_token_answer(session, state).await;
        let mut resp = ResponseHeader::build(if matches!(answer, Refresh::Token(_)) { 200 } else { 204 }, Some(4))?;
        resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        resp.insert_header(http::header::X_CONTENT_TYPE_OPTIONS, "nosniff")?;
        let body = match answer {
            Refresh::Token(body) => {
                resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
                resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
                Some(body)
            }
            Refresh::Unknown => {
                resp.insert_header(http::header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())?;
                None
            }
            Refresh::Nobody => None,
        };
        headers::fit_framing(session, &mut resp);
        let head_only = session.req_header().method == http::Method::HEAD;
        match body.filter(|_| !head_only) {
            Some(body) => {
                session.write_response_header(Box::new(resp), false).await?;
                session.write_response_body(Some(Bytes::from(body)), true).await
            }
            None => session.write_response_header(Box::new(resp), true).await,
        }
    }

    /// The answer for this request's user. The token is signed fresh, not taken from
    /// the page cache: a cached one could expire as soon as the one the page has.
    async fn fresh_token_answer(&self, session: &Session, state: &mut RequestState) -> Refresh {
        if !self.signs_jwt {
            return Refresh::Nobody;
        }
        let id = match self.identify(session, state).await {
            Lookup::Found(id) => id,
            Lookup::Anonymous => return Refresh::Nobody,
            Lookup::Failed(_) => return Refresh::Unknown,
        };
        match self.signer.fresh_token(&id) {
            Ok((token, exp)) => Refresh::Token(serde_json::json!({ "intercom_user_jwt": token, "exp": exp }).to_string()),
            Err(e) => {
                crate::warn_limited!("{e}; answering the token refresh path with 204 and Retry-After");
                Refresh::Unknown
            }
        }
    }
}
