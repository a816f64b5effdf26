//! `init`'s browser: the pages loaded in headless Chromium with the stand-in widget,
//! inside the same scope as `audit` (nothing leaves for any host but the app's
//! origin), to log in through the app's own form, read the Messenger's boot, and find
//! which cookies are the session.

use serde::Serialize;
use serde_json::Value;
use url::Url;

use super::answer::Answer;
use super::options::{InitError, Plan};
use crate::audit::cdp::{Chromium, ChromiumError};
use crate::audit::classify::{messengers, worst, Classification};
use crate::audit::input::CookieArg;
use crate::audit::scope::Scope;
use crate::audit::tab::{Tab, Visit};

/// A same-origin link or form of a page (its path only: a query may carry tokens).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Link {
    /// The path it goes to.
    pub path: String,
    /// Its text (a form's: its buttons' and text's), trimmed and cut.
    pub text: String,
    /// A form's method (`GET`, `POST`); `None` for a link.
    pub method: Option<String>,
}

/// What the browser learned.
pub(crate) struct Learned {
    /// The page's answer.
    pub answer: Answer,
    /// The cookies of the logged-in browser (from `--cookie`, or what the login set).
    pub cookies: Vec<CookieArg>,
    /// The ones whose removal loses the user (all of them when no single one's does).
    pub session: Vec<CookieArg>,
    /// Whether removing one of the session cookies lost the user (false: the fallback).
    pub session_tested: bool,
    /// Same-origin JSON requests the pages made while loading.
    pub json_paths: Vec<String>,
    /// Same-origin links and forms of the pages.
    pub links: Vec<Link>,
    /// The first page's Content-Security-Policy.
    pub csp: Option<String>,
    /// Per page: its URL and how its Messenger booted.
    pub pages: Vec<(String, Classification)>,
}

/// Lists the page's same-origin links and forms (paths only).
const LINKS_JS: &str = r#"(() => {
  const path = (u) => { try { const x = new URL(u, location.href); return x.origin === location.origin ? x.pathname : null; } catch (e) { return null; } };
  const cut = (s) => (s || '').replace(/\s+/g, ' ').trim().slice(0, 80);
  const out = [];
  for (const a of document.querySelectorAll('a[href]')) {
    const p = path(a.getAttribute('href'));
    if (p) out.push({path: p, text: cut(a.textContent), method: null});
  }
  for (const f of document.querySelectorAll('form')) {
    const p = path(f.getAttribute('action') || location.href);
    const buttons = [...f.querySelectorAll('button, input[type=submit]')].map((b) => b.value || b.textContent).join(' ');
    if (p) out.push({path: p, text: cut(buttons + ' ' + f.textContent), method: (f.getAttribute('method') || 'GET').toUpperCase()});
  }
  return out.slice(0, 500);
})()"#;

/// Fills the login form's fields by name and submits it as a click would (the
/// form's own submit handlers run; hidden inputs such as CSRF tokens go with it).
const LOGIN_JS: &str = r#"((fields) => {
  let form = null;
  for (const [name, value] of fields) {
    const el = [...document.querySelectorAll('input, select, textarea')].find((e) => e.name === name);
    if (!el) return 'the login page has no field named ' + name;
    if (el.type === 'checkbox' || el.type === 'radio') el.checked = value !== '' && value !== '0' && value !== 'false';
    else el.value = value;
    el.dispatchEvent(new Event('input', {bubbles: true}));
    el.dispatchEvent(new Event('change', {bubbles: true}));
    form = form || el.form;
  }
  if (!form) return 'the fields given with --form are not inside a <form>';
  if (form.requestSubmit) form.requestSubmit(); else form.submit();
  return '';
})"#;

/// Chromium, and the scope every tab of it is kept in.
pub(crate) struct Browser {
    chromium: Chromium,
    scope: Scope,
}

impl Browser {
    /// Starts Chromium, scoped to the app's origin.
    pub fn launch(plan: &Plan) -> Result<Browser, InitError> {
        let scope = Scope::new([&plan.origin]);
        let path = Chromium::find(plan.options.chromium.as_deref())?;
        let chromium = Chromium::launch(&path, &scope.chromium_args())?;
        Ok(Browser { chromium, scope })
    }

    /// Logs in (with `--login`), reads each page's boot, and finds the session cookies.
    pub fn learn(&mut self, plan: &Plan) -> Result<Learned, InitError> {
        let cookies = match &plan.login {
            Some((url, fields)) => self.log_in(plan, url, fields)?,
            None => plan.cookies.clone(),
        };
        let mut answer: Option<Answer> = None;
        let (mut json_paths, mut links, mut csp, mut pages) =
            (Vec::new(), Vec::new(), None, Vec::new());
        for page in &plan.pages {
            let (visit, page_links) = self.load(plan, page, &cookies, true)?;
            let verdict =
                worst(&messengers(&visit.calls)).map_or(Classification::None, |m| m.classification);
            pages.push((visit.final_url.clone().unwrap_or_else(|| page.to_string()), verdict));
            if csp.is_none() {
                csp = visit.csp.clone();
            }
            for path in visit
                .json_paths
                .iter()
                .filter(|p| !json_paths.contains(*p))
                .cloned()
                .collect::<Vec<_>>()
            {
                json_paths.push(path);
            }
            links.extend(page_links.into_iter().filter(|l| !links.contains(l)).collect::<Vec<_>>());
            if answer.is_none() {
                answer = Answer::from_calls(&visit.calls, page.path());
            }
        }
        let Some(answer) = answer else {
            let seen: Vec<String> =
                pages.iter().map(|(url, verdict)| format!("{url}: {}", verdict.as_str())).collect();
            return Err(InitError::NothingToLearn(format!(
                "no page booted the Messenger with a user, so there is nothing to learn from ({}); is the session right, and does the page boot Intercom with user_id or email?",
                seen.join("; ")
            )));
        };
        let first = plan.origin.join(&answer.page).unwrap_or_else(|_| plan.pages[0].clone());
        let mut session = Vec::new();
        for cookie in &cookies {
            let others: Vec<CookieArg> =
                cookies.iter().filter(|c| c.name != cookie.name).cloned().collect();
            let (visit, _) = self.load(plan, &first, &others, false)?;
            let still = Answer::from_calls(&visit.calls, first.path())
                .is_some_and(|a| a.same_user(&answer));
            if !still {
                session.push(cookie.clone());
            }
        }
        let session_tested = !session.is_empty();
        if session.is_empty() {
            // One cookie, or several that each stand in for another (a remember-me
            // cookie that logs the session in again): all of them are the session.
            session = cookies.clone();
        }
        Ok(Learned { answer, cookies, session, session_tested, json_paths, links, csp, pages })
    }

    /// Loads `page` with exactly these cookies (and the identity headers); with
    /// `read_links`, also lists its links and forms.
    fn load(
        &mut self,
        plan: &Plan,
        page: &Url,
        cookies: &[CookieArg],
        read_links: bool,
    ) -> Result<(Visit, Vec<Link>), ChromiumError> {
        let mut tab = Tab::open(&mut self.chromium, &self.scope)?;
        // A policy that blocks Intercom would hide the boot to learn from; init reports
        // the policy's missing sources instead.
        tab.bypass_csp()?;
        tab.clear_cookies()?;
        tab.set_cookies(cookies, &[&plan.origin])?;
        if !plan.headers.is_empty() {
            tab.set_headers(&plan.headers)?;
        }
        let visit = tab.visit(page, plan.options.timeout, plan.options.settle)?;
        let links = match read_links {
            true => tab
                .evaluate(LINKS_JS)?
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
            false => Vec::new(),
        };
        tab.close()?;
        Ok((visit, links))
    }

    /// Logs in through the app's form as a browser would; the cookies it set.
    fn log_in(
        &mut self,
        plan: &Plan,
        url: &Url,
        fields: &[(String, String)],
    ) -> Result<Vec<CookieArg>, InitError> {
        let mut tab = Tab::open(&mut self.chromium, &self.scope)?;
        tab.clear_cookies()?;
        let visit = tab.visit(url, plan.options.timeout, plan.options.settle)?;
        if let Some(error) = visit.error {
            return Err(InitError::Usage(format!(
                "--login {}: the login page could not be loaded: {error}",
                url.path()
            )));
        }
        let fields = Value::from(
            fields.iter().map(|(n, v)| Value::from(vec![n.clone(), v.clone()])).collect::<Vec<_>>(),
        );
        let outcome = tab.evaluate(&format!("{LOGIN_JS}({fields})"))?;
        match outcome.as_ref().and_then(Value::as_str) {
            Some("") => {}
            Some(why) => return Err(InitError::Usage(format!("--login {}: {why}", url.path()))),
            None => {
                return Err(InitError::Usage(format!(
                    "--login {}: the form could not be filled in (the page threw)",
                    url.path()
                )))
            }
        }
        let after = tab.settle(plan.options.timeout, plan.options.settle)?;
        if let Some(error) = after.error {
            return Err(InitError::Usage(format!(
                "--login {}: submitting the form failed: {error}",
                url.path()
            )));
        }
        let cookies = tab.cookies(&[&plan.origin])?;
        tab.close()?;
        if cookies.is_empty() {
            return Err(InitError::Usage(format!("--login {}: the app set no cookie after the form was submitted; are the --form fields right?", url.path())));
        }
        Ok(cookies)
    }
}
