//! What fails an audit: a stable code for CI and a message for people. Both the pages'
//! records and the logout check give findings, so they live below both.

use serde::Serialize;

/// One thing that fails the audit, with a stable code for CI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `insecure_identity`, `jwt_check_failed`, `user_not_identified`,
    /// `shared_cacheable`, `page_error`, `logout_no_shutdown` or `logout_identified_boot`.
    pub code: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

impl Finding {
    /// A finding with this code.
    pub fn new(code: &'static str, message: impl Into<String>) -> Finding {
        Finding { code, message: message.into() }
    }
}
