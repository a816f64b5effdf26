//! The cookies on the app's domain that are not the app's: the Intercom Messenger's own
//! and the proxy's (which exist for the Messenger). The identity sources leave them out
//! of a session, the page script and a logout expire Intercom's, and the proxy reads and
//! writes its own: a name list below all of them, so none imports another for it.

/// Intercom's first-party cookies, by prefix.
pub(crate) const INTERCOM_COOKIES: [&str; 3] =
    ["intercom-session-", "intercom-id-", "intercom-device-id-"];

/// Name of the marker cookie that asks for a shutdown on the next page.
pub const MARKER_COOKIE: &str = "__isp_shutdown";

/// Name of the cookie remembering (as a keyed hash) whom the last token was for.
pub const USER_COOKIE: &str = "__isp_user";

/// Prefix of the proxy's own cookies, never part of the app's session.
pub const COOKIE_PREFIX: &str = "__isp_";

/// Whether a `name=value` cookie pair is Intercom's or the proxy's own: never part
/// of the app's session.
pub(crate) fn is_foreign_to_app(pair: &str) -> bool {
    pair.starts_with("intercom-") || pair.starts_with(COOKIE_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxys_cookies_and_intercoms_are_foreign_to_the_app() {
        for name in [MARKER_COOKIE, USER_COOKIE].into_iter().chain(INTERCOM_COOKIES) {
            assert!(is_foreign_to_app(&format!("{name}abc=1")), "{name}");
        }
        assert!(!is_foreign_to_app("session=1"));
        assert!(!is_foreign_to_app("my-intercom-id=1"));
    }
}
