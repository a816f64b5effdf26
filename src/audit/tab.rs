//! One browser tab of the audit: every request it makes is paused and routed (see
//! [`Scope`]), the stand-in widget reports each Intercom call through a binding, and a
//! visit records what one navigation (with its redirects and any navigations the page
//! makes by itself) showed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use url::Url;

use super::cache::CacheHeaders;
use super::cdp::{Chromium, ChromiumError, Message};
use super::classify::Call;
use super::input::CookieArg;
use super::scope::{Route, Scope};

/// The stand-in for Intercom's widget: it records the Messenger calls instead of
/// talking to Intercom (shared with the browser tests' driver).
const STANDIN_WIDGET: &str = include_str!("standin-widget.js");

/// The binding the stand-in widget reports each call through; bindings survive
/// navigations, so calls are collected across redirects and interstitial pages.
const BINDING: &str = "__ispAuditReport";

/// How long the set-up commands may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// The name prefix of the cookie that holds the Messenger's session.
const INTERCOM_SESSION_COOKIE: &str = "intercom-session-";

/// What one visit saw.
#[derive(Debug, Default)]
pub struct Visit {
    /// The Intercom calls, in order.
    pub calls: Vec<Call>,
    /// Every document the tab showed, in order.
    pub pages: Vec<String>,
    /// The last document's URL.
    pub final_url: Option<String>,
    /// The last document's status and caching headers.
    pub document: Option<CacheHeaders>,
    /// Refused requests by origin.
    pub blocked: BTreeMap<String, u32>,
    /// Why the page could not be loaded.
    pub error: Option<String>,
    /// The last document's `Content-Security-Policy` header (several joined by `, `).
    pub csp: Option<String>,
    /// The paths (no query: it may carry tokens) of the same-origin requests the page
    /// made itself (fetch, XHR) that were answered with JSON, in order, once each.
    pub json_paths: Vec<String>,
    /// The origin of a refused document request (a redirect out of the scope).
    blocked_document: Option<String>,
}

/// The audit's tab.
pub struct Tab<'a> {
    chromium: &'a mut Chromium,
    scope: &'a Scope,
    session: String,
    target: Value,
    main_frame: String,
    visit: Visit,
    loaded: bool,
    last_activity: Instant,
}

impl<'a> Tab<'a> {
    /// Opens a tab with every request paused and the binding installed.
    pub fn open(chromium: &'a mut Chromium, scope: &'a Scope) -> Result<Tab<'a>, ChromiumError> {
        let target = chromium.call(
            None,
            "Target.createTarget",
            json!({"url": "about:blank"}),
            COMMAND_TIMEOUT,
        )?;
        let target_id = target["targetId"].clone();
        let attached = chromium.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
            COMMAND_TIMEOUT,
        )?;
        let session = attached["sessionId"].as_str().unwrap_or_default().to_string();
        let mut tab = Tab {
            chromium,
            scope,
            session,
            target: target_id,
            main_frame: String::new(),
            visit: Visit::default(),
            loaded: true,
            last_activity: Instant::now(),
        };
        for (method, params) in [
            ("Page.enable", json!({})),
            ("Network.enable", json!({})),
            ("Runtime.enable", json!({})),
            ("Fetch.enable", json!({"patterns": [{"urlPattern": "*", "requestStage": "Request"}]})),
            ("Runtime.addBinding", json!({"name": BINDING})),
        ] {
            tab.call(method, params, Instant::now() + COMMAND_TIMEOUT)?;
        }
        let tree = tab.call("Page.getFrameTree", json!({}), Instant::now() + COMMAND_TIMEOUT)?;
        tab.main_frame = tree["frameTree"]["frame"]["id"].as_str().unwrap_or_default().to_string();
        Ok(tab)
    }

    /// Sets the cookies, host-only with path `/`, for each URL's host.
    pub fn set_cookies(
        &mut self,
        cookies: &[CookieArg],
        urls: &[&Url],
    ) -> Result<(), ChromiumError> {
        for url in urls {
            for cookie in cookies {
                let params = json!({"name": cookie.name, "value": cookie.value, "url": url.as_str(), "path": "/"});
                self.call("Network.setCookie", params, Instant::now() + COMMAND_TIMEOUT)?;
            }
        }
        Ok(())
    }

    /// Sends these extra headers with every request of the tab (`NAME: VALUE`, as an
    /// authenticating proxy in front of the app would).
    pub fn set_headers(&mut self, headers: &[(String, String)]) -> Result<(), ChromiumError> {
        let map: serde_json::Map<String, Value> =
            headers.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        self.call(
            "Network.setExtraHTTPHeaders",
            json!({"headers": map}),
            Instant::now() + COMMAND_TIMEOUT,
        )?;
        Ok(())
    }

    /// Closes the tab.
    pub fn close(self) -> Result<(), ChromiumError> {
        self.chromium.call(
            None,
            "Target.closeTarget",
            json!({"targetId": self.target}),
            COMMAND_TIMEOUT,
        )?;
        Ok(())
    }

    /// Runs the pages' scripts whatever their Content-Security-Policy says (to learn
    /// what a page would do once the policy allows it; the policy itself is still read).
    pub fn bypass_csp(&mut self) -> Result<(), ChromiumError> {
        self.call("Page.setBypassCSP", json!({"enabled": true}), Instant::now() + COMMAND_TIMEOUT)?;
        Ok(())
    }

    /// Forgets every cookie of the browser.
    pub fn clear_cookies(&mut self) -> Result<(), ChromiumError> {
        self.call("Network.clearBrowserCookies", json!({}), Instant::now() + COMMAND_TIMEOUT)?;
        Ok(())
    }

    /// The cookies the browser holds for `urls` (names and values: callers must never
    /// print the values).
    pub fn cookies(&mut self, urls: &[&Url]) -> Result<Vec<CookieArg>, ChromiumError> {
        let urls: Vec<&str> = urls.iter().map(|u| u.as_str()).collect();
        let got = self.call(
            "Network.getCookies",
            json!({"urls": urls}),
            Instant::now() + COMMAND_TIMEOUT,
        )?;
        Ok(got["cookies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                Some(CookieArg {
                    name: c["name"].as_str()?.to_string(),
                    value: c["value"].as_str()?.to_string(),
                })
            })
            .collect())
    }

    /// Runs `expression` in the page and returns its value (JSON-serializable results
    /// only); `None` when it threw or the page is gone.
    pub fn evaluate(&mut self, expression: &str) -> Result<Option<Value>, ChromiumError> {
        let params = json!({"expression": expression, "returnByValue": true, "awaitPromise": true});
        match self.call("Runtime.evaluate", params, Instant::now() + COMMAND_TIMEOUT) {
            Ok(answer) if answer.get("exceptionDetails").is_none() => {
                Ok(answer["result"].get("value").cloned())
            }
            Ok(_) | Err(ChromiumError::Refused { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits until the page has loaded and been quiet for `settle` (after a navigation
    /// the page started itself, such as a form submission), at most `timeout`; returns
    /// what was recorded since the last visit.
    pub fn settle(&mut self, timeout: Duration, settle: Duration) -> Result<Visit, ChromiumError> {
        // Quiet from now on: the navigation the page was just told to make may not have
        // started yet.
        self.last_activity = Instant::now();
        self.wait(Instant::now() + timeout, settle)?;
        Ok(std::mem::take(&mut self.visit))
    }

    /// The names of the Messenger session cookies the browser holds for `urls`.
    pub fn intercom_cookies(&mut self, urls: &[&Url]) -> Result<Vec<String>, ChromiumError> {
        let urls: Vec<&str> = urls.iter().map(|u| u.as_str()).collect();
        let got = self.call(
            "Network.getCookies",
            json!({"urls": urls}),
            Instant::now() + COMMAND_TIMEOUT,
        )?;
        let mut names: Vec<String> = got["cookies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .filter(|n| n.starts_with(INTERCOM_SESSION_COOKIE))
            .map(str::to_string)
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Loads `url` and records until the page has loaded and been quiet (no Intercom
    /// call, no new document) for `settle`, or `timeout` has passed.
    pub fn visit(
        &mut self,
        url: &Url,
        timeout: Duration,
        settle: Duration,
    ) -> Result<Visit, ChromiumError> {
        self.visit = Visit::default();
        self.loaded = false;
        self.last_activity = Instant::now();
        let deadline = Instant::now() + timeout;
        match self.call("Page.navigate", json!({"url": url.as_str()}), deadline) {
            Ok(answer) => {
                if let Some(error) = answer["errorText"].as_str().filter(|e| !e.is_empty()) {
                    self.visit.error = Some(self.navigation_error(error));
                    return Ok(std::mem::take(&mut self.visit));
                }
            }
            Err(ChromiumError::Timeout { .. }) => return Ok(self.timed_out(timeout)),
            Err(ChromiumError::Refused { message, .. }) => {
                self.visit.error = Some(message);
                return Ok(std::mem::take(&mut self.visit));
            }
            Err(e) => return Err(e),
        }
        self.wait(deadline, settle)?;
        if !self.loaded {
            return Ok(self.timed_out(timeout));
        }
        Ok(std::mem::take(&mut self.visit))
    }

    /// Handles events until the page has loaded and been quiet for `settle`, or `deadline`.
    fn wait(&mut self, deadline: Instant, settle: Duration) -> Result<(), ChromiumError> {
        loop {
            let now = Instant::now();
            let quiet_at = self.last_activity + settle;
            if (self.loaded && now >= quiet_at) || now >= deadline {
                return Ok(());
            }
            let until = if self.loaded { quiet_at.min(deadline) } else { deadline };
            if let Some(message) = self.chromium.next(until)? {
                self.dispatch(message);
            }
        }
    }

    /// A visit that ran out of time: what it saw, the error, and the load stopped.
    fn timed_out(&mut self, timeout: Duration) -> Visit {
        self.visit.error = Some(format!(
            "the page did not finish loading within {} s (--timeout)",
            timeout.as_secs_f32()
        ));
        let _ = self.chromium.send(Some(&self.session), "Page.stopLoading", json!({}));
        std::mem::take(&mut self.visit)
    }

    fn navigation_error(&self, error: &str) -> String {
        match &self.visit.blocked_document {
            Some(origin) => format!("{error}: the page went to {origin}, which is outside the audit; add a URL on that origin to audit it too"),
            None => error.to_string(),
        }
    }

    /// Sends a command for this tab and handles the events that come before its answer.
    fn call(
        &mut self,
        method: &str,
        params: Value,
        deadline: Instant,
    ) -> Result<Value, ChromiumError> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let id = self.chromium.send(Some(&self.session), method, params)?;
        loop {
            match self.chromium.next(deadline)? {
                Some(Message::Response { id: got, result }) if got == id => {
                    return result.map_err(|message| ChromiumError::Refused {
                        method: method.to_string(),
                        message,
                    })
                }
                Some(message) => self.dispatch(message),
                None => return Err(ChromiumError::Timeout { method: method.to_string(), timeout }),
            }
        }
    }

    fn dispatch(&mut self, message: Message) {
        let Message::Event { session, method, params } = message else { return };
        if session.as_deref() != Some(self.session.as_str()) {
            return;
        }
        let main_frame = params["frameId"].as_str() == Some(self.main_frame.as_str());
        match method.as_str() {
            "Fetch.requestPaused" => self.route(&params),
            "Runtime.bindingCalled" if params["name"] == BINDING => {
                if let Some(call) = params["payload"].as_str().and_then(Call::from_report) {
                    self.visit.calls.push(call);
                    self.last_activity = Instant::now();
                }
            }
            "Network.responseReceived" if main_frame && params["type"] == "Document" => {
                let response = &params["response"];
                let header = |name: &str| header(&response["headers"], name);
                let headers = CacheHeaders {
                    status: response["status"]
                        .as_u64()
                        .and_then(|s| u16::try_from(s).ok())
                        .unwrap_or(0),
                    cache_control: header("cache-control"),
                    expires: header("expires").is_some(),
                    last_modified: header("last-modified").is_some(),
                };
                self.visit.document = Some(headers);
                self.visit.csp = header("content-security-policy");
            }
            "Network.responseReceived"
                if matches!(params["type"].as_str(), Some("XHR" | "Fetch")) =>
            {
                let response = &params["response"];
                let json = response["mimeType"]
                    .as_str()
                    .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
                let path = response["url"]
                    .as_str()
                    .and_then(|u| Url::parse(u).ok())
                    .filter(|u| self.scope.route(u.as_str()) == Route::Continue);
                if let (true, Some(url)) = (json, path) {
                    let path = url.path().to_string();
                    if !self.visit.json_paths.contains(&path) {
                        self.visit.json_paths.push(path);
                    }
                }
            }
            "Network.webSocketCreated" => {
                // WebSockets are not paused; the proxy flags refuse those outside the
                // scope, and they are reported like the paused requests.
                if let Some(Route::Block(origin)) =
                    params["url"].as_str().map(|u| self.scope.route(u))
                {
                    *self.visit.blocked.entry(origin).or_default() += 1;
                }
            }
            "Page.frameStartedLoading" if main_frame => {
                self.loaded = false;
                self.last_activity = Instant::now();
            }
            "Page.frameNavigated" if params["frame"]["parentId"].is_null() => {
                let url = params["frame"]["url"].as_str().unwrap_or_default().to_string();
                self.visit.final_url = Some(url.clone());
                self.visit.pages.push(url);
                self.last_activity = Instant::now();
            }
            "Page.loadEventFired" => {
                self.loaded = true;
                self.last_activity = Instant::now();
            }
            "Page.javascriptDialogOpening" => {
                // An open dialog blocks the page; leaving is allowed, anything else dismissed.
                let accept = params["type"] == "beforeunload";
                let _ = self.chromium.send(
                    Some(&self.session),
                    "Page.handleJavaScriptDialog",
                    json!({"accept": accept}),
                );
            }
            _ => {}
        }
    }

    /// Answers a paused request: through, the stand-in widget, an empty Intercom
    /// answer, or refused.
    fn route(&mut self, params: &Value) {
        let id = params["requestId"].clone();
        let url = params["request"]["url"].as_str().unwrap_or_default();
        let (method, answer) = match self.scope.route(url) {
            Route::Continue => ("Fetch.continueRequest", json!({"requestId": id})),
            Route::Widget => (
                "Fetch.fulfillRequest",
                fulfill(id, "application/javascript; charset=utf-8", STANDIN_WIDGET),
            ),
            Route::IntercomApi => ("Fetch.fulfillRequest", fulfill(id, "application/json", "{}")),
            Route::Block(origin) => {
                if params["resourceType"] == "Document"
                    && params["frameId"].as_str() == Some(self.main_frame.as_str())
                {
                    self.visit.blocked_document = Some(origin.clone());
                }
                *self.visit.blocked.entry(origin).or_default() += 1;
                ("Fetch.failRequest", json!({"requestId": id, "errorReason": "BlockedByClient"}))
            }
        };
        // Not waited for: a request the page has meanwhile dropped is refused, harmlessly.
        let _ = self.chromium.send(Some(&self.session), method, answer);
    }
}

fn fulfill(id: Value, content_type: &str, body: &str) -> Value {
    json!({
        "requestId": id,
        "responseCode": 200,
        "responseHeaders": [
            {"name": "Content-Type", "value": content_type},
            {"name": "Cache-Control", "value": "no-store"},
            {"name": "Access-Control-Allow-Origin", "value": "*"},
        ],
        "body": base64::engine::general_purpose::STANDARD.encode(body),
    })
}

/// A response header from DevTools' headers object, whatever its case.
fn header(headers: &Value, name: &str) -> Option<String> {
    headers
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
        .map(|v| v.replace('\n', ", "))
}
