//! What the operator asked `init` for, checked before any browser starts. Errors
//! name the argument but never repeat a cookie's, header's or form field's value.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::audit::cdp::ChromiumError;
use crate::audit::input::{
    parse_cookie, parse_each, parse_header, parse_url, CookieArg, UsageError,
};

/// The arguments of `init`, parsed by clap straight from its command line (their
/// docs are its `--help`).
#[derive(Clone, clap::Args)]
pub struct InitOptions {
    /// The app's origin, e.g. http://127.0.0.1:3000.
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// A cookie of a logged-in session (repeatable); its value is never printed.
    #[arg(long = "cookie", value_name = "NAME=VALUE")]
    pub cookies: Vec<String>,
    /// Log in through the app's own form at this path (with --form), in Chromium:
    /// hidden inputs (CSRF tokens) and redirects are kept.
    #[arg(long, value_name = "PATH")]
    pub login: Option<String>,
    /// A field of the login form (repeatable); its value is never printed.
    #[arg(long = "form", value_name = "NAME=VALUE")]
    pub form: Vec<String>,
    /// A page to learn from and verify on (repeatable; default /).
    #[arg(long = "page", value_name = "PATH")]
    pub pages: Vec<String>,
    /// The Redis the app may keep its sessions in (only read: SCAN, GET, TYPE, STRLEN);
    /// a password in the URL is not written: the configuration reads it from REDIS_PASSWORD.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// An identity header an authenticating proxy in front would send (repeatable).
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// The environment variable the configuration reads the Messenger secret from.
    #[arg(long, value_name = "NAME", default_value = "INTERCOM_SECRET")]
    pub secret_env: String,
    /// The Messenger's app_id (default: the page's).
    #[arg(long, value_name = "ID")]
    pub app_id: Option<String>,
    /// The environment variable holding the app's HMAC key of JWT session cookies.
    #[arg(long, value_name = "NAME")]
    pub jwt_secret_env: Option<String>,
    /// The environment variable holding express-session's cookie secret.
    #[arg(long, value_name = "NAME")]
    pub cookie_secret_env: Option<String>,
    /// Verify the configuration through a temporary proxy (unless `--no-verify`).
    // The command's --out and --json are listed before it (display orders 11 and 12).
    #[arg(
        long = "no-verify",
        action = clap::ArgAction::SetFalse,
        help = "Do not verify the configuration through a temporary proxy",
        display_order = 13
    )]
    pub verify: bool,
    /// The Chromium executable (default: the first of chromium, chromium-browser,
    /// google-chrome on PATH).
    #[arg(long, value_name = "PATH", display_order = 14)]
    pub chromium: Option<PathBuf>,
    /// How long one page may take to load.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, display_order = 15)]
    pub timeout: Duration,
    /// How long a loaded page must stay quiet before it is read.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, display_order = 16)]
    pub settle: Duration,
}

impl std::fmt::Debug for InitOptions {
    /// Cookie, header and form values are secrets: only their names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |v: &[String]| {
            v.iter()
                .map(|c| c.split('=').next().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        };
        f.debug_struct("InitOptions")
            .field("upstream", &self.upstream)
            .field("cookie_names", &names(&self.cookies))
            .field("login", &self.login)
            .field("form_names", &names(&self.form))
            .field("pages", &self.pages)
            .field("redis", &self.redis.as_deref().map(intercom_secure_proxy::config::redact_url))
            .field("header_names", &names(&self.headers))
            .field("secret_env", &self.secret_env)
            .field("app_id", &self.app_id)
            .field("verify", &self.verify)
            .finish()
    }
}

/// Why `init` could not run (as opposed to what it found).
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A bad argument: exit code 2.
    #[error("{0}")]
    Usage(String),
    /// Chromium could not be started or stopped answering: exit code 3.
    #[error(transparent)]
    Chromium(#[from] ChromiumError),
    /// No page booted the Messenger with an identity to learn from: exit code 4.
    #[error("{0}")]
    NothingToLearn(String),
    /// The configuration `init` wrote does not load (a defect of `init`): exit code 1.
    #[error("the configuration init wrote does not load: {0}; please report this")]
    Generated(String),
}

impl From<UsageError> for InitError {
    fn from(e: UsageError) -> Self {
        InitError::Usage(e.to_string())
    }
}

impl InitError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            InitError::Usage(_) => 2,
            InitError::Chromium(_) => 3,
            InitError::NothingToLearn(_) => 4,
            InitError::Generated(_) => 1,
        }
    }
}

/// The checked arguments.
pub(crate) struct Plan {
    /// The app's origin.
    pub origin: Url,
    /// The pages, as absolute URLs on the origin.
    pub pages: Vec<Url>,
    /// The cookies given with `--cookie`.
    pub cookies: Vec<CookieArg>,
    /// The login form's URL and the fields to fill.
    pub login: Option<(Url, Vec<(String, String)>)>,
    /// The identity headers.
    pub headers: Vec<(String, String)>,
    /// The options as given.
    pub options: InitOptions,
    /// Whether to verify.
    pub verify: bool,
}

impl InitOptions {
    /// Checks the arguments.
    pub(crate) fn plan(&self) -> Result<Plan, InitError> {
        let base = parse_url("--upstream", &self.upstream)?;
        if base.path() != "/" || base.query().is_some() {
            return Err(InitError::Usage(format!(
                "--upstream {:?} must be the app's origin only (scheme, host, port), e.g. http://127.0.0.1:3000; give pages with --page",
                self.upstream
            )));
        }
        let on_origin = |what: &str, path: &str| -> Result<Url, InitError> {
            if !path.starts_with('/') || path.starts_with("//") {
                return Err(InitError::Usage(format!(
                    "{what} {path:?} must be a path on the app, starting with one /, e.g. /account"
                )));
            }
            base.join(path).map_err(|e| InitError::Usage(format!("{what} {path:?}: {e}")))
        };
        let pages = if self.pages.is_empty() {
            vec![base.clone()]
        } else {
            self.pages.iter().map(|p| on_origin("--page", p)).collect::<Result<_, _>>()?
        };
        let cookies = parse_each(&self.cookies, parse_cookie)?;
        let headers = parse_each(&self.headers, parse_header)?;
        let form = self
            .form
            .iter()
            .enumerate()
            .map(|(i, f)| {
                f.split_once('=')
                    .filter(|(name, _)| !name.is_empty())
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .ok_or_else(|| {
                        InitError::Usage(format!(
                            "--form #{}: write it as NAME=VALUE, e.g. --form user=alice",
                            i + 1
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let login = match (&self.login, form.is_empty()) {
            (Some(path), _) => Some((on_origin("--login", path)?, form)),
            (None, false) => {
                return Err(InitError::Usage(
                    "--form needs --login PATH (the page of the login form)".into(),
                ))
            }
            (None, true) => None,
        };
        if login.is_some() && !cookies.is_empty() {
            return Err(InitError::Usage(
                "give either --cookie (a session) or --login (to make one), not both".into(),
            ));
        }
        if cookies.is_empty() && login.is_none() && headers.is_empty() {
            return Err(InitError::Usage(
                "init learns from a logged-in page: give the session with --cookie NAME=VALUE, log in with --login PATH --form NAME=VALUE, or give the auth proxy's identity headers with --header NAME=VALUE".into(),
            ));
        }
        for (flag, name) in [
            ("--secret-env", Some(&self.secret_env)),
            ("--jwt-secret-env", self.jwt_secret_env.as_ref()),
            ("--cookie-secret-env", self.cookie_secret_env.as_ref()),
        ] {
            if let Some(name) = name.filter(|n| {
                n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            }) {
                return Err(InitError::Usage(format!(
                    "{flag} {name:?} is not an environment variable name (letters, digits, _)"
                )));
            }
        }
        if let Some(redis) = &self.redis {
            if !(redis.starts_with("redis://") || redis.starts_with("rediss://")) {
                return Err(InitError::Usage(format!(
                    "--redis {:?} must be a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379/0",
                    intercom_secure_proxy::config::redact_url(redis)
                )));
            }
        }
        Ok(Plan {
            origin: base,
            pages,
            cookies,
            login,
            headers,
            options: self.clone(),
            verify: self.verify,
        })
    }
}
