//! The app, as the proxy would reach it: requests to its origin (through the
//! library's own upstream client), and the acceptance check of a candidate identity
//! source, which runs the proxy's own identity resolver on the configuration the
//! candidate would be written as.

use std::sync::Arc;

use bytes::Bytes;
use pingora::http::RequestHeader;

use super::browser::Learned;
use super::options::{InitError, Plan};
use super::yaml;
use crate::audit::input::CookieArg;
use intercom_secure_proxy::config::Config;
use intercom_secure_proxy::identity::{IdentityResolver, Lookup};
use intercom_secure_proxy::upstream::Upstream;

/// The largest answer `init` reads from the app (an account page, a JSON document).
const MAX_BODY: usize = 1 << 20;

/// The secret the acceptance check's configuration loads: it signs nothing.
const CHECK_SECRET: &str = "init-acceptance-check-signs-nothing";

/// An answer of the app.
pub(crate) struct Response {
    /// The status code.
    pub status: u16,
    /// The media type, lowercase, without parameters.
    pub content_type: String,
    /// The body (at most 1 MiB).
    pub body: Bytes,
}

/// The app's origin and a runtime to ask it from.
pub(crate) struct App {
    runtime: tokio::runtime::Runtime,
    upstream: Arc<Upstream>,
    host: String,
    origin: url::Url,
}

impl App {
    /// The app of `--upstream`.
    pub fn new(plan: &Plan) -> Result<App, InitError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| InitError::Usage(format!("cannot start a runtime: {e}")))?;
        let config = Config::from_yaml(&yaml::probe_config(&plan.origin, ""), &|_| {
            Some(CHECK_SECRET.into())
        })
        .map_err(|e| InitError::Usage(format!("--upstream {}: {e}", plan.origin)))?;
        let (upstream, _) = Upstream::new(&config.site().upstream)
            .map_err(|e| InitError::Usage(format!("--upstream {}: {e}", plan.origin)))?;
        let host = plan.origin.host_str().unwrap_or_default().to_string();
        let host = match plan.origin.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        Ok(App { runtime, upstream, host, origin: plan.origin.clone() })
    }

    /// Runs a future of the library on the app's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// `GET path` with these cookies, as a browser's `fetch` would send it.
    pub fn get(&self, path: &str, cookies: &[CookieArg], accept: &str) -> Result<Response, String> {
        let mut req =
            RequestHeader::build("GET", path.as_bytes(), None).map_err(|e| e.to_string())?;
        let headers = [
            ("Host", self.host.clone()),
            ("Accept", accept.to_string()),
            ("User-Agent", "intercom-secure-proxy-init".into()),
        ];
        for (name, value) in
            headers.into_iter().chain(cookie_header(cookies).map(|c| ("Cookie", c)))
        {
            req.insert_header(name, value).map_err(|e| e.to_string())?;
        }
        let (header, body) = self
            .block_on(self.upstream.exchange(req, Bytes::new(), MAX_BODY))
            .map_err(|e| format!("GET {path}: {}", e.etype().as_str()))?;
        let content_type = header
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        Ok(Response { status: header.status.as_u16(), content_type, body })
    }

    /// Accepts a candidate source (its list item of `identity.sources`): the proxy's
    /// resolver, configured with it alone, must find the page's user with the session
    /// (and the identity headers), and nobody without them. `Ok` says whom it found.
    pub fn accept(&self, source: &str, plan: &Plan, learned: &Learned) -> Result<String, String> {
        let text = yaml::probe_config(&self.origin, source);
        let config = Config::from_yaml(&text, &|name| match name {
            yaml::PROBE_SECRET_ENV => Some(CHECK_SECRET.into()),
            other => std::env::var(other).ok(),
        })
        .map_err(|e| format!("its configuration does not load: {e}"))?;
        let resolver = IdentityResolver::new(&config.site().identity, self.upstream.clone());
        let with = self.resolve(&resolver, &learned.session, &plan.headers)?;
        let answer = &learned.answer;
        let found = match with {
            Some(found) => found,
            None => return Err("it found nobody with the session".into()),
        };
        if found.user_id != answer.user_id {
            return Err(format!(
                "it found user_id {:?}, the page booted {:?}",
                found.user_id, answer.user_id
            ));
        }
        if let (Some(page), Some(got)) = (&answer.email, &found.email) {
            if page != got {
                return Err(format!("it found email {got:?}, the page booted {page:?}"));
            }
        }
        if answer.email.is_some() && found.email.is_none() {
            return Err("it found the user id but not the email the page shows".into());
        }
        if let Some(nobody) = self.resolve(&resolver, &[], &[])? {
            return Err(format!("it found user_id {:?} without the session too", nobody.user_id));
        }
        Ok(format!(
            "user_id {}{}",
            found.user_id,
            found.email.map(|e| format!(", email {e}")).unwrap_or_default()
        ))
    }

    /// Who the resolver says a request with these cookies and headers is.
    fn resolve(
        &self,
        resolver: &IdentityResolver,
        cookies: &[CookieArg],
        headers: &[(String, String)],
    ) -> Result<Option<intercom_secure_proxy::Identity>, String> {
        let mut req = RequestHeader::build("GET", b"/", None).map_err(|e| e.to_string())?;
        req.insert_header("Host", &self.host).map_err(|e| e.to_string())?;
        if let Some(cookie) = cookie_header(cookies) {
            req.insert_header("Cookie", cookie).map_err(|e| e.to_string())?;
        }
        for (name, value) in headers {
            req.append_header(name.clone(), value).map_err(|e| e.to_string())?;
        }
        let hints = resolver.inspect_request(&mut req, Some(std::net::Ipv4Addr::LOCALHOST.into()));
        match self.block_on(resolver.resolve(&hints)) {
            Lookup::Found(identity) => Ok(Some((*identity).clone())),
            Lookup::Anonymous => Ok(None),
            Lookup::Failed(why) => Err(format!("the lookup failed: {why}")),
        }
    }

    /// Checks the configuration `init` writes loads as `check` would load it (the
    /// secret's variable stands in, whether set here or not).
    pub fn check_config(&self, text: &str, secret_env: &str) -> Result<(), InitError> {
        Config::from_yaml(text, &|name| {
            if name == secret_env {
                Some(CHECK_SECRET.into())
            } else {
                std::env::var(name).ok()
            }
        })
        .map(|_| ())
        .map_err(|e| InitError::Generated(e.to_string()))
    }
}

/// The `Cookie` header a browser would send with these cookies; `None` for none.
fn cookie_header(cookies: &[CookieArg]) -> Option<String> {
    let pairs: Vec<String> = cookies.iter().map(|c| format!("{}={}", c.name, c.value)).collect();
    (!pairs.is_empty()).then(|| pairs.join("; "))
}
