//! `audit`: how would the Messenger boot on these pages, and is that secure?
//!
//! Each URL is loaded in headless Chromium with the operator's session cookies. The
//! Intercom widget is replaced by a stand-in that records every Messenger call, and
//! nothing leaves the browser but requests to the audited origins (see [`scope`]). Each
//! page is then classified ([`classify`]): no Intercom, anonymous, identified
//! insecurely (plain `user_id`/`email`), the legacy `user_hash`, or a JWT, which with
//! the proxy's configuration is verified ([`jwt`]). Pages that carry identity are also
//! checked for shared caching ([`cache`]), and `--logout` checks that a logout really
//! shuts the Messenger down ([`logout`]). The result is a [`Report`].

pub mod cache;
pub mod cdp;
pub mod classify;
pub mod finding;
pub mod input;
pub mod jwt;
pub mod logout;
pub mod report;
pub mod scope;
pub(crate) mod tab;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use url::Url;

use cdp::{Chromium, ChromiumError};
use classify::{messengers, worst, Classification};
pub use finding::Finding;
use input::{parse_cookie, parse_each, parse_header, parse_url, CookieArg, UsageError};
use intercom_secure_proxy::config::{Config, SiteConfig};
pub use report::{PageReport, Report};
use scope::Scope;
use tab::{Tab, Visit};

/// What to audit and how.
#[derive(Clone)]
pub struct AuditOptions {
    /// The pages, as given.
    pub urls: Vec<String>,
    /// `NAME=VALUE` cookies sent to every audited host.
    pub cookies: Vec<String>,
    /// `NAME=VALUE` headers sent with every request (what an authenticating proxy in
    /// front of the app would send).
    pub headers: Vec<String>,
    /// The logout URL to check, if any.
    pub logout: Option<String>,
    /// The proxy's configuration file, to verify tokens with.
    pub config: Option<PathBuf>,
    /// The user every page must identify.
    pub expect_user: Option<String>,
    /// The Chromium executable; by default the first on `PATH`.
    pub chromium: Option<PathBuf>,
    /// How long one page may take to load.
    pub timeout: Duration,
    /// How long a loaded page must stay quiet (no Intercom call, no navigation).
    pub settle: Duration,
}

impl std::fmt::Debug for AuditOptions {
    /// Cookie values are live sessions: only their names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cookies: Vec<&str> =
            self.cookies.iter().map(|c| c.split('=').next().unwrap_or_default()).collect();
        f.debug_struct("AuditOptions")
            .field("urls", &self.urls)
            .field("cookie_names", &cookies)
            .field(
                "header_names",
                &self
                    .headers
                    .iter()
                    .map(|h| h.split('=').next().unwrap_or_default())
                    .collect::<Vec<_>>(),
            )
            .field("logout", &self.logout)
            .field("config", &self.config)
            .field("expect_user", &self.expect_user)
            .field("chromium", &self.chromium)
            .field("timeout", &self.timeout)
            .field("settle", &self.settle)
            .finish()
    }
}

/// Why the audit could not run (as opposed to what it found).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A bad argument or configuration file.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// Chromium could not be started or stopped answering.
    #[error(transparent)]
    Chromium(#[from] ChromiumError),
}

/// The checked arguments.
struct Plan {
    pages: Vec<Url>,
    logout: Option<Url>,
    cookies: Vec<CookieArg>,
    headers: Vec<(String, String)>,
    config: Option<Config>,
}

impl Plan {
    fn new(options: &AuditOptions) -> Result<Plan, UsageError> {
        let pages = options
            .urls
            .iter()
            .enumerate()
            .map(|(i, u)| parse_url(&format!("URL #{}", i + 1), u))
            .collect::<Result<Vec<_>, _>>()?;
        let logout = options.logout.as_deref().map(|u| parse_url("--logout", u)).transpose()?;
        let cookies = parse_each(&options.cookies, parse_cookie)?;
        let headers = parse_each(&options.headers, parse_header)?;
        let config = options.config.as_deref().map(Config::from_file).transpose()?;
        let plan = Plan { pages, logout, cookies, headers, config };
        for url in &plan.pages {
            plan.site(url)?;
        }
        Ok(plan)
    }

    /// The pages and the logout URL.
    fn all_urls(&self) -> Vec<&Url> {
        self.pages.iter().chain(&self.logout).collect()
    }

    /// The configuration's site for `url`, when `-c` was given.
    fn site(&self, url: &Url) -> Result<Option<&SiteConfig>, UsageError> {
        let Some(config) = &self.config else { return Ok(None) };
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => url.host_str().unwrap_or_default().to_string(),
        };
        config
            .site_for_host(&host)
            .map(Some)
            .ok_or_else(|| UsageError::NoSite { host, url: url.to_string() })
    }
}

/// Runs the audit.
pub fn run(options: &AuditOptions) -> Result<Report, AuditError> {
    let plan = Plan::new(options)?;
    let scope = Scope::new(plan.all_urls());
    let path = Chromium::find(options.chromium.as_deref())?;
    let mut chromium = Chromium::launch(&path, &scope.chromium_args())?;
    let mut tab = Tab::open(&mut chromium, &scope)?;
    tab.set_cookies(&plan.cookies, &plan.all_urls())?;
    if !plan.headers.is_empty() {
        tab.set_headers(&plan.headers)?;
    }
    let mut pages = Vec::with_capacity(plan.pages.len());
    for url in &plan.pages {
        let visit = tab.visit(url, options.timeout, options.settle)?;
        let site = plan.site(url)?;
        pages.push(assess(url, visit, site, options.expect_user.as_deref(), now()));
    }
    let logout = match &plan.logout {
        Some(logout_url) => {
            let user = pages.iter().find_map(|p| p.user_id.clone());
            let out = tab.visit(logout_url, options.timeout, options.settle)?;
            let next = tab.visit(&plan.pages[0], options.timeout, options.settle)?;
            let cookies = tab.intercom_cookies(&plan.all_urls())?;
            let calls: Vec<_> = out.calls.into_iter().chain(next.calls).collect();
            let shown = out.pages.into_iter().chain(next.pages).collect();
            Some(logout::evaluate(
                logout_url.as_str(),
                shown,
                &calls,
                cookies,
                out.error.or(next.error),
                user.as_deref(),
            ))
        }
        None => None,
    };
    Ok(Report::new(pages, logout))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The report of one page from what its visit recorded.
fn assess(
    url: &Url,
    visit: Visit,
    site: Option<&SiteConfig>,
    expect_user: Option<&str>,
    now: u64,
) -> PageReport {
    let all = messengers(&visit.calls);
    let messenger = worst(&all);
    let classification = messenger.map_or(Classification::None, |m| m.classification);
    let jwt = messenger.and_then(|m| {
        let token = m.jwt.as_deref()?;
        let user = expect_user.or(m.user_id.as_deref());
        Some(jwt::check(token, m.app_id.as_deref(), &jwt::Expectations { site, user, now }))
    });
    let user_id = messenger
        .and_then(|m| m.user_id.clone())
        .or_else(|| jwt.as_ref().and_then(|j| j.user_id.clone()));
    let fields = messenger.map(|m| m.clear_fields.clone()).unwrap_or_default();
    let mut findings = Vec::new();
    if let Some(error) = &visit.error {
        findings
            .push(Finding::new("page_error", format!("the page could not be audited: {error}")));
    }
    if classification == Classification::Insecure {
        findings.push(Finding::new(
            "insecure_identity",
            format!("{} given to the Messenger in clear with nothing signed: anyone who knows them can open this user's conversations", fields.join(", ")),
        ));
    }
    for problem in jwt.iter().flat_map(|j| &j.problems) {
        findings.push(Finding::new("jwt_check_failed", problem.clone()));
    }
    if let Some(expected) = expect_user {
        let ended = visit.final_url.as_deref().unwrap_or(url.as_str());
        match classification {
            Classification::None | Classification::Anonymous => findings.push(Finding::new(
                "user_not_identified",
                format!("--expect-user {expected}: the Messenger identified nobody (the page ended on {ended}; is the session cookie right?)"),
            )),
            Classification::Insecure | Classification::UserHash => {
                if let Some(got) = user_id.as_deref().filter(|u| *u != expected) {
                    findings.push(Finding::new("wrong_user", format!("--expect-user {expected}: the Messenger was booted as user_id {got}")));
                }
            }
            // The token's own check names a wrong user.
            Classification::Jwt => {}
        }
    }
    let headers = visit.document.unwrap_or_default();
    let cacheable =
        messenger.filter(|m| m.identified()).and_then(|_| cache::shared_cacheable(&headers));
    if let Some(reason) = &cacheable {
        findings.push(Finding::new(
            "shared_cacheable",
            format!(
                "this user's page may be stored by shared caches and served to others: {reason}"
            ),
        ));
    }
    PageReport {
        url: url.to_string(),
        final_url: visit.final_url,
        status: (headers.status != 0).then_some(headers.status),
        classification,
        fields,
        user_id,
        app_id: messenger.and_then(|m| m.app_id.clone()),
        jwt,
        cache_control: headers.cache_control,
        shared_cacheable: cacheable.is_some(),
        blocked_origins: visit.blocked,
        error: visit.error,
        passed: findings.is_empty(),
        findings,
    }
}
