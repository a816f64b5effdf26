//! Logout: turning the app's logout into a real Intercom logout.
//!
//! Deleting Intercom's cookies is not enough (its server-side session survives), and a
//! shutdown script on a redirect never runs. So on a logout response the proxy expires
//! Intercom's cookies and sets a short-lived marker cookie; the next HTML page that
//! browser loads, whatever it is, gets the page script with the shutdown flag, which
//! runs `Intercom('shutdown')` before anything can boot, and the marker is cleared.
//! In `interstitial` mode the redirect itself is answered with a tiny page that runs the
//! shutdown and then continues to the original `Location`.
//!
//! - here: detecting a logout (configured paths, the session cookie expiring);
//! - [`cookies`]: the cookies a logout sets and the ones the proxy reads back;
//! - [`interstitial`]: the page and its redirect check.

use cookie::time::{Duration as CookieDuration, OffsetDateTime};
use cookie::Cookie;
use pingora::http::ResponseHeader;

use crate::config::LogoutConfig;

pub(crate) mod cookies;
pub(crate) mod interstitial;

/// Whether the request is a configured logout.
pub fn is_logout_request(config: &LogoutConfig, method: &str, path: &str) -> bool {
    config
        .paths
        .iter()
        .any(|(methods, pattern)| methods.iter().any(|m| m == method) && pattern.matches(path))
}

/// Whether the response expires one of the named session cookies.
pub fn expires_session_cookie(resp: &ResponseHeader, names: &[String]) -> bool {
    set_cookies(resp).any(|c| names.iter().any(|n| n == c.name()) && is_expiry(&c))
}

/// Whether the response sets (not expires) one of the named session cookies: a login.
pub fn sets_session_cookie(resp: &ResponseHeader, names: &[String]) -> bool {
    set_cookies(resp)
        .any(|c| (names.is_empty() || names.iter().any(|n| n == c.name())) && !is_expiry(&c))
}

fn set_cookies(resp: &ResponseHeader) -> impl Iterator<Item = Cookie<'static>> + '_ {
    resp.headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| Cookie::parse(v.to_string()).ok())
}

fn is_expiry(c: &Cookie<'_>) -> bool {
    if let Some(age) = c.max_age() {
        return age <= CookieDuration::ZERO;
    }
    match c.expires_datetime() {
        Some(when) => when <= OffsetDateTime::now_utc(),
        None => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{LogoutMode, PathPattern};

    /// The logout settings the unit tests share: `/logout`, an optional cookie
    /// domain, one extra redirect host.
    pub(crate) fn config(domain: Option<&str>) -> LogoutConfig {
        LogoutConfig {
            paths: vec![(
                vec!["GET".into(), "POST".into()],
                PathPattern::parse("/logout").unwrap(),
            )],
            detect_cookie_expiry: true,
            mode: LogoutMode::Marker,
            cookie_domain: domain.map(str::to_string),
            allowed_redirect_hosts: vec!["sso.partner.test".into()],
        }
    }

    #[test]
    fn session_cookie_expiry_is_detected() {
        let mut r = ResponseHeader::build(302, None).unwrap();
        r.append_header("set-cookie", "flash=hi; Path=/").unwrap();
        r.append_header("set-cookie", "sid=; Max-Age=0; Path=/").unwrap();
        assert!(expires_session_cookie(&r, &["sid".into()]));
        assert!(!expires_session_cookie(&r, &["other".into()]));
        let mut r = ResponseHeader::build(302, None).unwrap();
        r.append_header("set-cookie", "sid=gone; Expires=Thu, 01 Jan 1970 00:00:00 GMT").unwrap();
        assert!(expires_session_cookie(&r, &["sid".into()]));
        let mut r = ResponseHeader::build(302, None).unwrap();
        r.append_header("set-cookie", "sid=new; Path=/; HttpOnly").unwrap();
        assert!(!expires_session_cookie(&r, &["sid".into()]));
        assert!(sets_session_cookie(&r, &["sid".into()]));
    }
}
