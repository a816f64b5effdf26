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

/// Methods of a `logout.paths` entry written without any (`/logout` means `GET|POST /logout`).
pub const DEFAULT_PATH_METHODS: &[&str] = &["GET", "POST"];
/// Default of `logout.detect_cookie_expiry`.
pub const DEFAULT_DETECT_COOKIE_EXPIRY: bool = true;
/// Default of `logout.mode` (the next HTML page runs the shutdown, whatever page it is).
pub const DEFAULT_MODE: LogoutMode = LogoutMode::Marker;

impl Default for LogoutConfig {
    /// What an empty `logout:` section validates to: no logout paths, cookie-expiry
    /// detection on, the default mode, a host-only cookie domain and no extra hosts.
    fn default() -> Self {
        LogoutConfig {
            paths: Vec::new(),
            detect_cookie_expiry: DEFAULT_DETECT_COOKIE_EXPIRY,
            mode: DEFAULT_MODE,
            cookie_domain: None,
            allowed_redirect_hosts: Vec::new(),
        }
    }
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
        let (methods, path): (Vec<String>, _) = match entry.trim().split_once(' ') {
            Some((m, p)) => {
                (m.split('|').map(|m| m.trim().to_ascii_uppercase()).collect(), p.trim())
            }
            None => (DEFAULT_PATH_METHODS.iter().map(|m| m.to_string()).collect(), entry.trim()),
        };
        if methods.iter().any(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(ConfigError::new(
                key,
                format!("{entry:?} should look like \"GET|POST /logout\""),
            ));
        }
        let pattern =
            PathPattern::parse(path).map_err(|e| ConfigError::new(key.clone(), e.to_string()))?;
        if path.starts_with('/') && !super::inject::is_as_browsers_send(path) {
            return Err(ConfigError::new(
                key,
                format!("{path:?} is not a path as browsers send it (no query, %-encoding, `//` or dot segments); write it as the browser's address bar shows it, e.g. \"/logout\""),
            ));
        }
        paths.push((methods, pattern));
    }
    let mode = match l.mode.as_deref() {
        None => DEFAULT_MODE,
        Some("marker") => LogoutMode::Marker,
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
        detect_cookie_expiry: l.detect_cookie_expiry.unwrap_or(DEFAULT_DETECT_COOKIE_EXPIRY),
        mode,
        cookie_domain,
        allowed_redirect_hosts: l
            .allowed_redirect_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_matches_an_empty_section() {
        let validated = validate_logout(FileLogout::default()).unwrap();
        assert_eq!(format!("{:?}", LogoutConfig::default()), format!("{validated:?}"));
    }

    #[test]
    fn a_path_without_methods_gets_the_default_ones() {
        let l = FileLogout { paths: vec!["/logout".into()], ..FileLogout::default() };
        let validated = validate_logout(l).unwrap();
        assert_eq!(validated.paths[0].0, DEFAULT_PATH_METHODS);
    }
}
