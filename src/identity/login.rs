//! Logins the proxy sees without a new session cookie.
//!
//! Many apps keep the session id across a login (PHP without `session_regenerate_id`,
//! apps that start the session on the sign-in page), so a "nobody" the sources cached
//! for that session before the login would answer for the pages after it. Any exchange
//! that may have logged the session in therefore drops that "nobody", once the app has
//! answered and before the browser has the answer:
//! - a request with an unsafe method (anything but GET, HEAD, OPTIONS and TRACE): a
//!   sign-in form posts, and a login by XHR or fetch does too;
//! - a response that sets any cookie (some apps log in on a GET, e.g. a magic link or
//!   an SSO callback, and most re-set some cookie when they do).

use http::Method;
use pingora::http::ResponseHeader;

/// Whether this exchange may have logged its session in.
pub fn may_log_in(method: &Method, resp: &ResponseHeader) -> bool {
    !method.is_safe() || resp.headers.contains_key(http::header::SET_COOKIE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_methods_and_any_cookie_may_log_in() {
        let plain = ResponseHeader::build(200, None).unwrap();
        let mut cookie = ResponseHeader::build(200, None).unwrap();
        cookie.append_header("set-cookie", "theme=dark; Path=/").unwrap();
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(may_log_in(&method, &plain), "{method}");
        }
        for method in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(!may_log_in(&method, &plain), "{method}");
            assert!(may_log_in(&method, &cookie), "{method} setting a cookie");
        }
    }
}
