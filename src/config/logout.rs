//! `logout`: how logouts are detected and answered.

use super::*;

/// How logouts are handled.
#[derive(Debug, Clone)]
pub struct LogoutConfig {
    /// Requests that are logouts: (methods, path pattern).
    pub paths: Vec<(Vec<String>, PathPattern)>,
    /// Also treat a response that expires an identity cookie as a logout.
    pub detect_cookie_expiry: bool,
    /// How the browser is made to run `Intercom('shutdown')`.
    pub mode: LogoutMode,
    /// Domain of Intercom's cookies (`example.com`); host-only when unset.
    pub cookie_domain: Option<String>,
    /// Extra hosts an interstitial may continue to.
    pub allowed_redirect_hosts: Vec<String>,
}

/// How the shutdown reaches the browser after a logout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutMode {
    /// A marker cookie makes the next HTML page run the shutdown first.
    Marker,
    /// The logout redirect is answered by a tiny page that runs the shutdown, then moves on.
    Interstitial,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLogout {
    #[serde(default)]
    paths: Vec<String>,
    detect_cookie_expiry: Option<bool>,
    mode: Option<String>,
    cookie_domain: Option<String>,
    #[serde(default)]
    allowed_redirect_hosts: Vec<String>,
}

pub(super) fn validate_logout(l: FileLogout) -> Result<LogoutConfig> {
    let mut paths = Vec::new();
    for (n, entry) in l.paths.iter().enumerate() {
        let key = format!("logout.paths[{n}]");
        let (methods, path) = match entry.trim().split_once(' ') {
            Some((m, p)) => (m, p.trim()),
            None => ("GET|POST", entry.trim()),
        };
        let methods: Vec<String> = methods.split('|').map(|m| m.trim().to_ascii_uppercase()).collect();
        if methods.iter().any(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(ConfigError::new(
                key,
                format!("{entry:?} should look like \"GET|POST /logout\""),
            ));
        }
        let pattern = PathPattern::parse(path).map_err(|m| ConfigError::new(key.clone(), m))?;
        paths.push((methods, pattern));
    }
    let mode = match l.mode.as_deref() {
        None | Some("marker") => LogoutMode::Marker,
        Some("interstitial") => LogoutMode::Interstitial,
        Some(other) => {
            return Err(ConfigError::new(
                "logout.mode",
                format!("{other:?} is not a logout mode; use marker or interstitial"),
            ))
        }
    };
    let cookie_domain = match l.cookie_domain.as_deref().map(|d| d.trim().trim_start_matches('.')) {
        None | Some("") => None,
        Some(d) if d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') => {
            Some(d.to_ascii_lowercase())
        }
        Some(d) => {
            return Err(ConfigError::new(
                "logout.cookie_domain",
                format!("{d:?} is not a domain name, e.g. example.com"),
            ))
        }
    };
    Ok(LogoutConfig {
        paths,
        detect_cookie_expiry: l.detect_cookie_expiry.unwrap_or(true),
        mode,
        cookie_domain,
        allowed_redirect_hosts: l
            .allowed_redirect_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
    })
}
