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
//!
//! Only pages in the rollout get a token: in `report_only` and `off`, and for a user
//! outside the rollout's percentage, the answer is 204 (nobody), without a lookup in the
//! first two.

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;

use super::{RequestState, SecureMode};
use crate::config::RolloutMode;
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
    /// A request from another site (`Sec-Fetch-Site`): 403.
    Refused,
}

/// The header a page script sets, once, when the page boots a workspace other than the
/// site's (its value is that app id, which is not secret).
const APP_ID_REPORT: &str = "x-intercom-secure-proxy-app-id";

/// A request another site made (`Sec-Fetch-Site` other than `same-origin` or `none`):
/// the answer is not readable cross-origin anyway, but it is not worked out either.
fn is_cross_site(req: &RequestHeader) -> bool {
    req.headers
        .get("sec-fetch-site")
        .is_some_and(|v| !matches!(v.as_bytes(), b"same-origin" | b"none"))
}

/// An app id as Intercom writes them, safe to log.
fn is_app_id(id: &[u8]) -> bool {
    (1..=64).contains(&id.len())
        && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

impl SecureMode {
    /// A GET (or HEAD) of the refresh path. Other methods go to the app as usual.
    pub(super) fn is_token_refresh(&self, req: &RequestHeader) -> bool {
        matches!(req.method, http::Method::GET | http::Method::HEAD)
            && req.uri.path() == self.inject.token_refresh_path
    }

    /// Answers the refresh path: a freshly signed token for the request's user, or 204
    /// (403 to another site's request).
    pub(super) async fn answer_token_refresh(
        &self,
        session: &mut Session,
        state: &mut RequestState,
    ) -> pingora::Result<()> {
        let answer = match is_cross_site(session.req_header()) {
            true => Refresh::Refused,
            false if state.live.mode != RolloutMode::Enforce => Refresh::Nobody,
            false => {
                self.note_app_id_report(session.req_header());
                self.fresh_token_answer(session, state).await
            }
        };
        let status = match answer {
            Refresh::Token(_) => 200,
            Refresh::Refused => 403,
            Refresh::Nobody | Refresh::Unknown => 204,
        };
        let mut resp = ResponseHeader::build(status, Some(4))?;
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
            Refresh::Refused => {
                resp.insert_header(http::header::CONTENT_LENGTH, "0")?;
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

    /// A page script reported that its page boots another workspace: the token it got
    /// is for this site's, and that Messenger rejects it without a word.
    fn note_app_id_report(&self, req: &RequestHeader) {
        let Some(theirs) = req.headers.get(APP_ID_REPORT).map(|v| v.as_bytes()) else { return };
        if theirs == self.app_id.as_bytes() {
            return;
        }
        crate::metrics::METRICS.app_id_mismatches.inc();
        match is_app_id(theirs) {
            true => crate::warn_limited!(
                "a page boots the Messenger of app_id {} while this site's intercom.app_id is {}: its token cannot verify there; set the site's app_id to the page's, or fix the page",
                String::from_utf8_lossy(theirs),
                self.app_id
            ),
            false => crate::warn_limited!(
                "a page boots the Messenger of another app_id than this site's {}: its token cannot verify there",
                self.app_id
            ),
        }
    }

    /// The answer for this request's user. The token is signed fresh, not taken from
    /// the page cache: a cached one could expire as soon as the one the page has. In the
    /// user_hash modes the answer carries the plain settings too (`user`).
    async fn fresh_token_answer(&self, session: &Session, state: &mut RequestState) -> Refresh {
        let id = match self.identify(session, state).await {
            Lookup::Found(id) => id,
            Lookup::Anonymous => return Refresh::Nobody,
            Lookup::Failed(_) => return Refresh::Unknown,
        };
        if !state.live.everyone() && !state.live.admits(self.user_tags.user(&id.user_id).bucket()) {
            return Refresh::Nobody;
        }
        let mut answer = serde_json::Map::new();
        if self.signs_jwt {
            match self.signer.fresh_token(&id) {
                Ok((token, exp)) => {
                    answer.insert("intercom_user_jwt".into(), token.into());
                    answer.insert("exp".into(), exp.into());
                }
                Err(e) => {
                    crate::warn_limited!(
                        "{e}; answering the token refresh path with 204 and Retry-After"
                    );
                    return Refresh::Unknown;
                }
            }
        }
        if let Some(hasher) = &self.hasher {
            // Script-safe JSON already; parsed back to sit inside the answer.
            if let Ok(plain) =
                serde_json::from_str::<serde_json::Value>(&hasher.plain_settings(&id))
            {
                answer.insert("user".into(), plain);
            }
        }
        Refresh::Token(serde_json::Value::Object(answer).to_string())
    }
}
