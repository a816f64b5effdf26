//! What Secure Mode remembers about one request between Pingora's phases.

use bytes::Bytes;

use crate::identity::RequestHints;
use crate::logout::cookies::UserTag;
use crate::page::{PageRewriter, Plan};
use crate::rollout::Live;

/// Secure Mode's per-request state. A host proxy keeps one in its `CTX` (made with
/// `Default`) and passes it to each [`SecureMode`](super::SecureMode) phase; its
/// contents are Secure Mode's own.
#[derive(Default)]
pub struct RequestState {
    /// The rollout in force when the request came in (one read of the live value).
    pub(super) live: Live,
    /// A GET that may come back as a page to rewrite.
    pub(super) candidate: bool,
    pub(super) hints: RequestHints,
    pub(super) navigation: bool,
    /// A library's fetch of the next page (Turbo, pjax, htmx, Turbolinks).
    pub(super) soft_navigation: bool,
    pub(super) logout_request: bool,
    /// The browser carries the shutdown marker.
    pub(super) marker: bool,
    /// Tag of the user this browser last got a token for.
    pub(super) last_user: Option<String>,
    /// Decided when the upstream header arrives, carried out in the response phase.
    pub(super) page: Option<PagePlan>,
    pub(super) rewriter: Option<PageRewriter>,
    /// A whole replacement body (the logout interstitial).
    pub(super) replacement: Option<Bytes>,
    /// The upstream response header ended the response (no body phase will run).
    pub(super) bodiless: bool,
    /// `response_body_filter` ran at least once (see [`SecureMode::logging`]).
    ///
    /// [`SecureMode::logging`]: super::SecureMode::logging
    pub(super) body_filtered: bool,
    /// The `type` of the identity source that knew the user.
    pub(super) answered_by: Option<&'static str>,
    /// What Secure Mode did with the response (the `outcome` label of the metrics).
    pub(super) outcome: Outcome,
}

/// What Secure Mode did with a response, for metrics: a fixed set of values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Not a page request (not a GET for a document, or an excluded path).
    #[default]
    Passthrough,
    /// A page that did not qualify, with the reason (`status`, `content-type`, ...).
    Skipped(&'static str),
    /// A page for nobody known, with no shutdown due (passed through, or with the
    /// logged-out watcher).
    Anonymous,
    /// A page that got the script.
    Rewritten,
    /// A logout answered with the interstitial page.
    Interstitial,
    /// The token refresh path, answered by the proxy.
    TokenRefresh,
    /// A report-only page that got the observer.
    Observed,
    /// A page of a user outside the rollout's percentage, untouched.
    OutsideRollout,
    /// The report path, answered by the proxy.
    Report,
}

impl Outcome {
    /// The label value.
    pub(super) fn label(self) -> &'static str {
        match self {
            Outcome::Passthrough => "passthrough",
            Outcome::Skipped(why) => why,
            Outcome::Anonymous => "anonymous",
            Outcome::Rewritten => "rewritten",
            Outcome::Interstitial => "interstitial",
            Outcome::TokenRefresh => "token_refresh",
            Outcome::Observed => "observed",
            Outcome::OutsideRollout => "outside_rollout",
            Outcome::Report => "report",
        }
    }
}

/// What a rewritten page gets, and the user it is for.
pub(super) struct PagePlan {
    pub(super) plan: Plan,
    /// Tag of the user the token is for (for the last-user cookie).
    pub(super) user_tag: Option<UserTag>,
    /// Report only: the page gets the observer, not the plan.
    pub(super) observe: bool,
}

impl PagePlan {
    /// What the page's response counts as.
    pub(super) fn outcome(&self) -> Outcome {
        match (self.observe, self.plan.is_shared()) {
            (true, _) => Outcome::Observed,
            // A logged-out visitor's watcher is still a page for nobody.
            (false, true) => Outcome::Anonymous,
            (false, false) => Outcome::Rewritten,
        }
    }
}

impl RequestState {
    /// The `type` of the identity source that knew the user (for access logs; never
    /// the user).
    pub fn identity_source(&self) -> Option<&'static str> {
        self.answered_by
    }

    /// Whether Secure Mode is rewriting this response's body.
    pub fn rewriting(&self) -> bool {
        self.rewriter.is_some() || self.replacement.is_some()
    }
}
