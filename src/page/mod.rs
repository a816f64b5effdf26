//! One rewritten page: whether a response qualifies, what it gets (a [`Plan`]: the
//! token, the shutdown), the script, the CSP changes, and the streaming rewriter.
//!
//! [`Pages`] holds what is rendered once per workspace; [`Pages::start`] turns one
//! response into a rewritten one: it fixes the headers (private, the new length when
//! the old one was known, no validators, CSP amended for the script) and returns the
//! [`PageRewriter`] for its body. The proxy and the benchmarks use exactly this path.
//!
//! ```
//! use intercom_secure_proxy::page::{Limits, Outcome, Pages, Plan, ScriptSettings};
//! use pingora::http::ResponseHeader;
//!
//! let pages = Pages::new(
//!     &ScriptSettings {
//!         app_id: "abc12345",
//!         api_base: "https://api-iam.intercom.io",
//!         auto_include: true,
//!         cookie_domain: None,
//!         mode: Default::default(),
//!         refresh: None,
//!     },
//!     Limits { max_scan_bytes: 1 << 20, parser_memory: 256 << 10 },
//! );
//! let page = b"<html><head><title>Hi</title></head><body>x</body></html>";
//! let mut resp = ResponseHeader::build(200, None)?;
//! resp.insert_header("content-type", "text/html; charset=utf-8")?;
//! resp.insert_header("content-length", page.len())?;
//! resp.insert_header("etag", "\"v1\"")?;
//! let plan = Plan { token: Some("e30.e30.sig".into()), ..Plan::default() };
//! let mut rewriter = pages.start(&mut resp, &plan)?;
//! assert!(resp.headers.get("etag").is_none());
//! assert_eq!(resp.headers["cache-control"], "private, no-store");
//!
//! let mut body = Some(bytes::Bytes::from_static(page));
//! rewriter.process(&mut body, true);
//! let html = String::from_utf8(body.unwrap().to_vec()).unwrap();
//! assert!(html.starts_with("<html><head><script"));
//! assert!(html.contains("e30.e30.sig"));
//! assert_eq!(rewriter.outcome(), Outcome::Placed);
//! // The app announced its length, so the new one is announced, and kept.
//! assert_eq!(resp.headers["content-length"], html.len().to_string().as_str());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;

use pingora::http::ResponseHeader;

use crate::config::{InjectConfig, OnIdentityFailure};

pub(crate) mod csp;
mod head;
mod prefix;
pub(crate) mod rewriter;
pub(crate) mod script;

use csp::MetaCsp;
use rewriter::Render;
pub use rewriter::{GiveUpReason, Limits, Outcome, PageRewriter};
use script::{ObserverScript, ScriptTemplate};
pub use script::{PageScript, ScriptSettings, TokenRefresh, IDENTIFYING_FIELDS};

/// What one page gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The signed `intercom_user_jwt`, when someone is logged in.
    pub token: Option<Arc<str>>,
    /// Run `Intercom('shutdown')` before anything boots (after a logout or a switch
    /// of user).
    pub shutdown: bool,
    /// `user_id`, `email` and `user_hash` the Messenger gets in the clear
    /// (`intercom.mode: user_hash` or `both`), as script-safe JSON from
    /// [`UserHasher::plain_settings`](crate::UserHasher::plain_settings).
    pub plain: Option<Arc<str>>,
    /// Set when the proxy could not tell who the user is: the script then holds the
    /// Messenger and asks the refresh path (`Defer`), or boots it without identity
    /// (`Strip`). `Pass` means no script, so a plan never carries it.
    pub failure: Option<OnIdentityFailure>,
}

impl Plan {
    /// The plan of a logged-out visitor's page: no user data at all, so the page is the
    /// same for every visitor and keeps its caching headers (`inject.watch_logged_out`).
    pub fn is_shared(&self) -> bool {
        self.token.is_none() && self.plain.is_none() && !self.shutdown && self.failure.is_none()
    }
}

/// The pages of one Intercom workspace: the script rendered once, and the limits of
/// every rewrite.
pub struct Pages {
    template: Arc<ScriptTemplate>,
    /// The observer of report-only pages, when the site may run report only.
    observer: Option<Arc<ObserverScript>>,
    limits: Limits,
}

impl Pages {
    /// Renders the static part of the script for `settings`.
    pub fn new(settings: &ScriptSettings<'_>, limits: Limits) -> Self {
        Pages { template: Arc::new(ScriptTemplate::new(settings)), observer: None, limits }
    }

    /// These pages, able to [`observe`](Self::observe) too: report-only pages report to
    /// `report_path`.
    pub(crate) fn observing(mut self, report_path: &str) -> Self {
        self.observer = Some(Arc::new(ObserverScript::new(report_path)));
        self
    }

    /// The script element for `plan`, carrying `nonce` (a page's CSP nonce) if any.
    pub fn script(&self, plan: &Plan, nonce: Option<&str>) -> PageScript {
        self.template.render(plan, nonce)
    }

    /// Makes `resp` the header of a rewritten page and returns the rewriter of its
    /// body: the response loses its digests and, unless the plan
    /// [is shared](Plan::is_shared) by every visitor, becomes private and loses its
    /// validators; an
    /// enforced `Content-Security-Policy` that would block the script gets its nonce or
    /// its hash. When the app announced the body's length (and no coding is undone) the
    /// new length is announced in turn and the rewriter adds exactly those bytes;
    /// otherwise the length goes and the body is chunked. Call only for a response
    /// [`rewritable`] accepted.
    pub fn start(&self, resp: &mut ResponseHeader, plan: &Plan) -> pingora::Result<PageRewriter> {
        let template = self.template.clone();
        let plan = plan.clone();
        let private = !plan.is_shared();
        self.start_with(resp, private, move |nonce, pad| template.render_padded(&plan, nonce, pad))
    }

    /// [`start`](Self::start) for a report-only page: it gets the observer instead of
    /// the page script, placed and allowed by its CSP the same way, and its headers keep
    /// their caching (the observer is the same for everyone). `None` when these pages
    /// were not made [`observing`](Self::observing).
    pub(crate) fn observe(
        &self,
        resp: &mut ResponseHeader,
    ) -> Option<pingora::Result<PageRewriter>> {
        let observer = self.observer.clone()?;
        Some(self.start_with(resp, false, move |nonce, pad| observer.render_padded(nonce, pad)))
    }

    /// Makes `resp` the header of a page that gets what `render(nonce, pad)` renders
    /// (private when `private`) and returns the rewriter of its body.
    fn start_with<R>(
        &self,
        resp: &mut ResponseHeader,
        private: bool,
        render: R,
    ) -> pingora::Result<PageRewriter>
    where
        R: Fn(Option<&str>, usize) -> PageScript + Send + 'static,
    {
        let charset_in_header = crate::headers::names_charset(resp);
        let policies = csp::policies(resp);
        let csp_plan = csp::plan(&policies);
        let known = crate::headers::body_length(resp);
        // With a length to keep, the script is rendered with its room in the start tag,
        // so that most pages place it as it is, without another copy.
        let room = if known.is_some() { nonce_room(csp_plan.nonce.is_some()) } else { 0 };
        let prerendered = Arc::new(render(csp_plan.nonce.as_deref(), room));
        let extra = prerendered.html().len();
        let length = known.and_then(|n| n.checked_add(extra as u64));
        crate::headers::remove_body_dependent(resp, length, private)?;
        if csp_plan.needs_hash {
            resp.remove_header(&http::header::CONTENT_SECURITY_POLICY);
            for value in csp::amend(&policies, csp_plan.nonce.as_deref(), &prerendered.csp_hash()) {
                resp.append_header(http::header::CONTENT_SECURITY_POLICY, value)?;
            }
        }
        let meta = MetaCsp { nonce: csp_plan.nonce.clone(), script: prerendered.clone() };
        let header_nonce = csp_plan.nonce;
        // The script is rendered again only when the page itself names a nonce the
        // header did not.
        let render: Render = Box::new(move |page_nonce| match (header_nonce, page_nonce) {
            (None, Some(n)) => Arc::new(render(Some(n), 0)),
            _ => prerendered,
        });
        Ok(PageRewriter::new(render, meta, self.limits, charset_in_header, length.map(|_| extra)))
    }
}

/// Room kept in the script's start tag, when the header names no nonce, for a nonce
/// the page names itself or a `<meta>` policy amended with our hash (a base64 nonce of
/// 44 characters takes 54 bytes, a hash source 54).
const NONCE_ROOM: usize = 64;

/// The spaces a page with a known length gets in its script's start tag: room for
/// what the page may add to the script, unless the header's nonce already decides it.
pub(crate) fn nonce_room(header_nonce: bool) -> usize {
    if header_nonce {
        0
    } else {
        NONCE_ROOM
    }
}

/// Why a response is left alone (for debug logs).
pub type Skip = &'static str;

/// Whether the body of this response may be rewritten. Only complete, successful HTML
/// documents in an encoding we can decode qualify; everything else passes through.
pub fn rewritable(resp: &ResponseHeader, inject: &InjectConfig) -> Result<(), Skip> {
    let status = resp.status.as_u16();
    if !(200..300).contains(&status) || matches!(status, 204..=206) {
        return Err("status");
    }
    let headers = &resp.headers;
    let ctype = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or("no content-type")?;
    let media = ctype.split(';').next().unwrap_or("").trim();
    if !inject.content_types.iter().any(|t| t.eq_ignore_ascii_case(media)) {
        return Err("content-type");
    }
    // lol_html handles ASCII-compatible charsets only.
    if crate::headers::charset(resp)
        .is_some_and(|c| c.starts_with("utf-16") || c.starts_with("utf-32"))
    {
        return Err("charset");
    }
    if headers.get(http::header::CONTENT_RANGE).is_some() {
        return Err("content-range");
    }
    if headers.get(http::header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() == b"0") {
        return Err("empty body");
    }
    match crate::headers::content_encoding(resp).as_deref() {
        None | Some("identity") | Some("gzip") | Some("x-gzip") | Some("br") => {}
        Some(_) => return Err("content-encoding"),
    }
    if inject.honor_no_transform && crate::headers::has_directive(resp, "no-transform") {
        return Err("no-transform");
    }
    Ok(())
}
