//! The logout check: after the logout, the next pages must run `Intercom('shutdown')`
//! and boot anonymously or not at all; otherwise the next person on that browser gets
//! the previous user's Messenger session.

use serde::Serialize;

use super::classify::{messengers, Call, Classification};
use super::finding::Finding;

/// A Messenger that still said who the user was after the logout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentifiedAfter {
    /// The page it booted on.
    pub url: String,
    /// How it identified the user.
    pub classification: Classification,
    /// Its plain `user_id`, when given.
    pub user_id: Option<String>,
}

/// What the logout check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogoutReport {
    /// The logout URL.
    pub url: String,
    /// Every page the browser showed from the logout on (redirects, interstitials, and
    /// the first audited URL loaded again).
    pub pages: Vec<String>,
    /// Whether `Intercom('shutdown')` ran after the logout started.
    pub shutdown_seen: bool,
    /// Messengers identified after the logout started.
    pub identified_after: Vec<IdentifiedAfter>,
    /// Intercom session cookies still set at the end (names only).
    pub intercom_cookies_left: Vec<String>,
    /// Why a page of the check could not be loaded, if one could not.
    pub error: Option<String>,
    /// Shutdown seen, nothing identified after it, and every page loaded.
    pub passed: bool,
    /// What failed.
    pub findings: Vec<Finding>,
}

/// Judges the calls recorded from the start of the logout on. `user` is who the audited
/// pages identified before it, for the message.
pub fn evaluate(
    url: &str,
    pages: Vec<String>,
    calls: &[Call],
    cookies_left: Vec<String>,
    error: Option<String>,
    user: Option<&str>,
) -> LogoutReport {
    let shutdown_seen = calls.iter().any(|c| c.method == "shutdown");
    let identified_after: Vec<IdentifiedAfter> = messengers(calls)
        .into_iter()
        .filter(|m| m.identified())
        .map(|m| IdentifiedAfter {
            url: m.url,
            classification: m.classification,
            user_id: m.user_id,
        })
        .collect();
    let mut findings = Vec::new();
    if let Some(error) = &error {
        findings.push(Finding::new(
            "page_error",
            format!("the logout check could not load a page: {error}"),
        ));
    }
    if !shutdown_seen {
        let whose = user.map(|u| format!(" of user_id={u}")).unwrap_or_default();
        let cookies = match cookies_left.as_slice() {
            [] => String::new(),
            names => format!(" ({} still set)", names.join(", ")),
        };
        findings.push(Finding::new(
            "logout_no_shutdown",
            format!("session survives logout: no Intercom('shutdown') ran after the logout, so the Messenger session{whose} stays in this browser{cookies}"),
        ));
    }
    for m in &identified_after {
        let who = m
            .user_id
            .as_deref()
            .map(|u| format!("user_id={u}"))
            .unwrap_or_else(|| "an identified user".into());
        findings.push(Finding::new(
            "logout_identified_boot",
            format!(
                "session survives logout: {} booted as {who} ({}) after the logout",
                m.url,
                m.classification.as_str()
            ),
        ));
    }
    LogoutReport {
        url: url.to_string(),
        pages,
        shutdown_seen,
        passed: findings.is_empty(),
        identified_after,
        intercom_cookies_left: cookies_left,
        error,
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(method: &str, settings: serde_json::Value, url: &str) -> Call {
        Call { method: method.into(), settings: settings.as_object().cloned(), url: url.into() }
    }

    #[test]
    fn a_shutdown_then_nothing_or_an_anonymous_boot_passes() {
        for calls in [
            vec![call("shutdown", json!(null), "http://a/login")],
            vec![
                call("shutdown", json!(null), "http://a/login"),
                call("boot", json!({"app_id": "x"}), "http://a/"),
            ],
        ] {
            let r = evaluate("http://a/logout", vec![], &calls, vec![], None, Some("alice"));
            assert!(r.passed && r.shutdown_seen && r.findings.is_empty(), "{r:?}");
        }
    }

    #[test]
    fn no_shutdown_is_a_surviving_session() {
        let r = evaluate(
            "http://a/logout",
            vec![],
            &[],
            vec!["intercom-session-x".into()],
            None,
            Some("alice"),
        );
        assert!(!r.passed);
        assert_eq!(r.findings[0].code, "logout_no_shutdown");
        assert_eq!(
            r.findings[0].message,
            "session survives logout: no Intercom('shutdown') ran after the logout, so the Messenger session of user_id=alice stays in this browser (intercom-session-x still set)"
        );
    }

    #[test]
    fn an_identified_boot_after_the_shutdown_fails() {
        let calls = [
            call("shutdown", json!(null), "http://a/login"),
            call("boot", json!({"app_id": "x", "user_id": "alice"}), "http://a/"),
        ];
        let r = evaluate("http://a/logout", vec![], &calls, vec![], None, None);
        assert!(!r.passed && r.shutdown_seen);
        assert_eq!(
            r.identified_after,
            [IdentifiedAfter {
                url: "http://a/".into(),
                classification: Classification::Insecure,
                user_id: Some("alice".into())
            }]
        );
        assert_eq!(r.findings[0].message, "session survives logout: http://a/ booted as user_id=alice (insecure) after the logout");
    }

    #[test]
    fn a_page_that_did_not_load_fails_the_check() {
        let calls = [call("shutdown", json!(null), "http://a/login")];
        let r = evaluate(
            "http://a/logout",
            vec![],
            &calls,
            vec![],
            Some("net::ERR_CONNECTION_REFUSED".into()),
            None,
        );
        assert!(!r.passed);
        assert_eq!(r.findings[0].code, "page_error");
    }
}
