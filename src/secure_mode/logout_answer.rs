//! Secure Mode's side of a logout: the effects added to the app's logout response,
//! and the interstitial logout the proxy answers itself.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use super::{RequestState, SecureMode};
use crate::config::LogoutMode;
use crate::headers;
use crate::logout::{cookies, interstitial};
use crate::metrics::METRICS;
use crate::page::Plan;
use crate::upstream::{RequestBody, HOP_BY_HOP};

impl SecureMode {
    /// Adds the logout effects to a logout response: Intercom's cookies expired, the
    /// marker set, the last-user tag cleared, the response private. May turn a
    /// redirect into an interstitial page.
    pub(super) fn finish_logout(
        &self,
        session: &Session,
        resp: &mut ResponseHeader,
        state: &mut RequestState,
    ) -> pingora::Result<()> {
        // Only a validated host name ever reaches a cookie attribute or a redirect check.
        let host = headers::cookie_host(session.req_header());
        let host = host.as_deref();
        for value in cookies::expire_intercom_cookies(&self.app_id, &self.logout, host) {
            cookies::set_cookie_replacing(resp, value)?;
        }
        cookies::set_cookie_replacing(resp, cookies::marker_set())?;
        cookies::set_cookie_replacing(resp, cookies::user_clear())?;
        headers::make_private(resp)?;
        if !self.wants_interstitial(resp, state) {
            METRICS.logouts.with_label_values(&["marker"]).inc();
            return Ok(());
        }
        let Some(location) = resp.headers.get(http::header::LOCATION).and_then(|v| v.to_str().ok())
        else {
            return Ok(());
        };
        if !interstitial::safe_redirect(location, host, &self.logout) {
            log::warn!("logout redirect target not allowed for an interstitial; relying on the marker cookie");
            METRICS.logouts.with_label_values(&["marker"]).inc();
            return Ok(());
        }
        METRICS.logouts.with_label_values(&["interstitial"]).inc();
        state.outcome = super::state::Outcome::Interstitial;
        let script = self
            .pages
            .script(&Plan { token: None, shutdown: true, plain: None, failure: None }, None);
        let page = interstitial::interstitial_page(script.html(), location);
        resp.set_status(200)?;
        headers::replace_body(resp, page.len())?;
        state.replacement = Some(Bytes::from(page));
        Ok(())
    }

    /// A redirecting logout navigation, in interstitial mode, with a body phase to
    /// put the page in.
    fn wants_interstitial(&self, resp: &ResponseHeader, state: &RequestState) -> bool {
        self.logout.mode == LogoutMode::Interstitial
            && resp.status.is_redirection()
            && state.navigation
            && state.page.is_none()
            && !state.bodiless
    }

    /// Interstitial mode, configured logout path, top-level navigation: forwards the
    /// logout request itself and answers the client directly, because a bodiless
    /// redirect from the app would leave no body phase to put the interstitial in.
    /// Bodies stream both ways, with the same timeouts and statuses as any proxied
    /// request; whatever the app does, the client's answer carries the Intercom logout.
    pub(super) async fn answer_logout(
        &self,
        session: &mut Session,
        state: &mut RequestState,
    ) -> pingora::Result<()> {
        let mut req = session.req_header().clone();
        for h in HOP_BY_HOP {
            req.remove_header(h);
        }
        let started = self.upstream.start(req, RequestBody::From(session)).await;
        self.identity.forget_session(&state.hints).await;
        let mut ex = match started {
            Ok(ex) => ex,
            Err(e) => {
                crate::warn_limited!(
                    "logout {}: no usable answer from the app ({}); answering 502 with the Intercom logout",
                    crate::warn::loggable_path(session.req_header().uri.path()),
                    crate::warn::describe(&e)
                );
                let mut resp = ResponseHeader::build(502, Some(4))?;
                resp.insert_header(http::header::CONTENT_LENGTH, "0")?;
                self.finish_logout(session, &mut resp, state)?;
                headers::fit_framing(session, &mut resp);
                return session.write_response_header(Box::new(resp), true).await;
            }
        };
        let mut resp = ex.header.clone();
        self.finish_logout(session, &mut resp, state)?;
        for h in HOP_BY_HOP {
            resp.remove_header(h);
        }
        if let Some(page) = state.replacement.take() {
            headers::fit_framing(session, &mut resp);
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
        headers::fit_framing(session, &mut resp);
        session.write_response_header(Box::new(resp), false).await?;
        while let Some(chunk) = ex.next_chunk().await? {
            session.write_response_body(Some(chunk), false).await?;
        }
        session.write_response_body(None, true).await?;
        self.upstream.release(ex).await;
        Ok(())
    }
}
