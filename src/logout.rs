//! Logout: turning the app's logout into a real Intercom logout.
//!
//! Deleting Intercom's cookies is not enough (its server-side session survives), and a
//! shutdown script on a redirect never runs. So on a logout response the proxy expires
//! Intercom's cookies and sets a short-lived marker cookie; the next HTML page that
//! browser loads, whatever it is, gets the page script with the shutdown flag, which
//! runs `Intercom('shutdown')` before anything can boot, and the marker is cleared.
//! In `interstitial` mode the redirect itself is answered with a tiny page that runs the
//! shutdown and then continues to the original `Location`.

use std::net::IpAddr;

use cookie::time::{Duration as CookieDuration, OffsetDateTime};
use cookie::{Cookie, SameSite};
use pingora::http::ResponseHeader;

use crate::config::LogoutConfig;

/// Name of the marker cookie that asks for a shutdown on the next page.
pub const MARKER_COOKIE: &str = "__isp_shutdown";

/// Name of the cookie remembering (as a keyed hash) whom the last token was for.
pub const USER_COOKIE: &str = "__isp_user";

/// Prefix of the proxy's own cookies, never part of the app's session.
pub const COOKIE_PREFIX: &str = "__isp_";

/// Marker lifetime: long enough to survive a redirect chain and a slow login page.
const MARKER_MAX_AGE: i64 = 600;

/// Intercom's first-party cookies, by prefix.
const INTERCOM_COOKIES: [&str; 3] = ["intercom-session-", "intercom-id-", "intercom-device-id-"];

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
    set_cookies(resp).any(|c| (names.is_empty() || names.iter().any(|n| n == c.name())) && !is_expiry(&c))
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

/// The `Set-Cookie` values that expire Intercom's cookies for `app_id`: host-only, and
/// on the cookie domain with a leading dot (the configured one, else the request host
/// as [`crate::hygiene::cookie_host`] validated it, without port;
/// none for localhost and IP addresses, where browsers reject a Domain attribute).
pub fn expire_intercom_cookies(app_id: &str, config: &LogoutConfig, host: Option<&str>) -> Vec<String> {
    let host = host.map(str::to_ascii_lowercase);
    let domain = config
        .cookie_domain
        .clone()
        .or(host)
        .filter(|d| !is_local_or_ip(d));
    let mut out = Vec::with_capacity(6);
    for prefix in INTERCOM_COOKIES {
        let name = format!("{prefix}{app_id}");
        out.push(expired(&name, None));
        if let Some(d) = &domain {
            out.push(expired(&name, Some(d)));
        }
    }
    out
}

fn expired(name: &str, domain: Option<&str>) -> String {
    let mut text = Cookie::build((name.to_string(), ""))
        .path("/")
        .max_age(CookieDuration::ZERO)
        .expires(OffsetDateTime::UNIX_EPOCH)
        .build()
        .to_string();
    if let Some(d) = domain {
        // Written by hand: the cookie crate drops the leading dot Intercom's cookies use.
        text.push_str("; Domain=.");
        text.push_str(d);
    }
    text
}

/// `Set-Cookie` asking the next page for a shutdown.
pub fn marker_set() -> String {
    Cookie::build((MARKER_COOKIE, "1"))
        .path("/")
        .max_age(CookieDuration::seconds(MARKER_MAX_AGE))
        .http_only(true)
        .same_site(SameSite::Lax)
        .build()
        .to_string()
}

/// `Set-Cookie` clearing the marker once a page has carried the shutdown.
pub fn marker_clear() -> String {
    Cookie::build((MARKER_COOKIE, ""))
        .path("/")
        .max_age(CookieDuration::ZERO)
        .expires(OffsetDateTime::UNIX_EPOCH)
        .http_only(true)
        .same_site(SameSite::Lax)
        .build()
        .to_string()
}

/// `Set-Cookie` remembering whom this browser's last token was for (a keyed hash).
pub fn user_set(tag: &str) -> String {
    Cookie::build((USER_COOKIE, tag.to_string()))
        .path("/")
        .max_age(CookieDuration::days(30))
        .http_only(true)
        .same_site(SameSite::Lax)
        .build()
        .to_string()
}

/// `Set-Cookie` forgetting the last user (on logout).
pub fn user_clear() -> String {
    Cookie::build((USER_COOKIE, ""))
        .path("/")
        .max_age(CookieDuration::ZERO)
        .expires(OffsetDateTime::UNIX_EPOCH)
        .http_only(true)
        .same_site(SameSite::Lax)
        .build()
        .to_string()
}

/// The proxy's own cookies in the request: (marker present, last-user tag).
pub fn own_cookies(req: &pingora::http::RequestHeader) -> (bool, Option<String>) {
    let mut marker = false;
    let mut user = None;
    for pair in crate::hygiene::cookie_pairs(req) {
        match pair.split_once('=') {
            Some((MARKER_COOKIE, v)) if !v.is_empty() => marker = true,
            Some((USER_COOKIE, v)) if !v.is_empty() => user = Some(v.to_string()),
            _ => {}
        }
    }
    (marker, user)
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn is_local_or_ip(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok()
        || !host.contains('.')
}

/// Whether an interstitial may continue to `location`: a same-origin path, or an
/// absolute http(s) URL on the request's host, the cookie domain or an allowed host.
/// Anything ambiguous (`//host`, backslashes, userinfo, control characters, other
/// schemes) is refused, so `Location` cannot be turned into an open redirect.
pub fn safe_redirect(location: &str, request_host: Option<&str>, config: &LogoutConfig) -> bool {
    if location.is_empty()
        || location.bytes().any(|b| b <= 0x20 || b == 0x7f || b == b'\\' || b >= 0x80)
    {
        return false;
    }
    if let Some(rest) = location.strip_prefix('/') {
        return !rest.starts_with('/');
    }
    let lower = location.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return false;
    }
    let host = strip_port(authority);
    let same_host = request_host.is_some_and(|h| h.eq_ignore_ascii_case(host));
    let in_domain = config
        .cookie_domain
        .as_deref()
        .is_some_and(|d| host == d || host.ends_with(&format!(".{d}")));
    same_host || in_domain || config.allowed_redirect_hosts.iter().any(|h| h == host)
}

/// Whether the request is a top-level navigation (interstitials are for those only).
pub fn is_navigation(req: &pingora::http::RequestHeader) -> bool {
    let header = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok());
    match (header("sec-fetch-mode"), header("sec-fetch-dest")) {
        (Some(mode), dest) => mode == "navigate" && dest.is_none_or(|d| d == "document"),
        // Older clients: judge by what they accept.
        (None, _) => header("accept").is_some_and(|a| a.contains("text/html")),
    }
}

/// The interstitial page: runs `script` (the page script with the shutdown flag), waits
/// briefly for the Messenger to take the shutdown, then continues to `location`.
pub fn interstitial_page(script: &str, location: &str) -> String {
    let js_target = crate::script::to_script_json(&serde_json::Value::String(location.into()));
    let attr_target = location.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;");
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta name=\"robots\" content=\"noindex\">\
<meta http-equiv=\"refresh\" content=\"3;url={attr_target}\"><title>Signing out…</title>{script}</head>\
<body><script>(function(){{var t={js_target},s=Date.now(),go=function(){{location.replace(t);}};\
var w=function(){{var i=window.Intercom;if((i&&!(i.q&&i.q.length))||Date.now()-s>1500){{go();}}else{{setTimeout(w,50);}}}};w();}})();</script>\
<noscript><a href=\"{attr_target}\">Continue</a></noscript></body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LogoutMode, PathPattern};

    fn config(domain: Option<&str>) -> LogoutConfig {
        LogoutConfig {
            paths: vec![(vec!["GET".into(), "POST".into()], PathPattern::parse("/logout").unwrap())],
            detect_cookie_expiry: true,
            mode: LogoutMode::Marker,
            cookie_domain: domain.map(str::to_string),
            allowed_redirect_hosts: vec!["sso.partner.test".into()],
        }
    }

    #[test]
    fn cookie_expiry_domains() {
        let c = expire_intercom_cookies("abc", &config(Some("example.com")), Some("app.example.com"));
        assert_eq!(c.len(), 6);
        assert!(c[0].starts_with("intercom-session-abc=;"));
        assert!(!c[0].contains("Domain"));
        assert!(c[1].ends_with("; Domain=.example.com"), "{}", c[1]);
        assert!(c.iter().all(|v| v.contains("Max-Age=0") && v.contains("Path=/")));
        let c = expire_intercom_cookies("abc", &config(None), Some("app.example.com"));
        assert!(c[1].ends_with("; Domain=.app.example.com"));
        for host in ["localhost", "127.0.0.1", "::1"] {
            let c = expire_intercom_cookies("abc", &config(None), Some(host));
            assert_eq!(c.len(), 3, "{host}: {c:?}");
            assert!(c.iter().all(|v| !v.contains("Domain")));
        }
    }

    #[test]
    fn open_redirects_are_refused() {
        let c = config(Some("example.com"));
        let host = Some("app.example.com");
        for ok in ["/login", "/login?next=%2F", "https://app.example.com/login", "http://www.example.com/", "https://sso.partner.test/x"] {
            assert!(safe_redirect(ok, host, &c), "{ok}");
        }
        for bad in [
            "//evil.com",
            "/\\evil.com",
            "https://evil.com",
            "https://app.example.com@evil.com/",
            "https://evil.com\\@app.example.com",
            "https://evil.com#@app.example.com",
            "javascript:alert(1)",
            "/\tevil",
            " /login",
            "https://example.com.evil.com/",
            "",
        ] {
            assert!(!safe_redirect(bad, host, &c), "{bad}");
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

    #[test]
    fn marker_cookie_attributes() {
        let m = marker_set();
        assert!(m.contains("HttpOnly") && m.contains("SameSite=Lax") && m.contains("Max-Age=600"));
        assert!(marker_clear().contains("Max-Age=0"));
    }
}
