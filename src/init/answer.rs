//! The answer key: who the page's own Messenger boot says is logged in.

use serde::Serialize;

use crate::audit::classify::{messengers, text, Call, Classification};

/// What the page booted the Messenger with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    /// The user id (plain, or the claim of a JWT already there).
    pub user_id: String,
    /// The email, when the boot gives one.
    pub email: Option<String>,
    /// The name, when the boot gives one.
    pub name: Option<String>,
    /// The `app_id` of the boot.
    pub app_id: Option<String>,
    /// The `api_base` of the boot, when given.
    pub api_base: Option<String>,
    /// How the page identifies the user today: `insecure`, `user_hash` or `jwt`.
    pub today: Classification,
    /// The page it was learned on.
    pub page: String,
}

impl Answer {
    /// The identified Messenger boot among `calls`, if any (the last identified one:
    /// a page that boots anonymously first and identifies later ends with the user).
    pub fn from_calls(calls: &[Call], page: &str) -> Option<Answer> {
        let booted = messengers(calls);
        let m = booted.iter().rev().find(|m| m.identified())?;
        // A JWT already there is read without verification: only to learn whom it names.
        let claims = m.jwt.as_deref().and_then(crate::audit::jwt::payload);
        let claim = |name: &str| claims.as_ref().and_then(|c| text(c.get(name)));
        let user_id = m.user_id.clone().or_else(|| claim("user_id"))?;
        Some(Answer {
            user_id,
            email: m.email.clone().or_else(|| claim("email")),
            name: m.name.clone().or_else(|| claim("name")),
            app_id: m.app_id.clone(),
            api_base: m.api_base.clone(),
            today: m.classification,
            page: page.to_string(),
        })
    }

    /// Whether `other` is the same user (by id, and by email when both have one).
    pub fn same_user(&self, other: &Answer) -> bool {
        self.user_id == other.user_id
            && (self.email.is_none() || other.email.is_none() || self.email == other.email)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::{json, Value};

    fn call(method: &str, settings: Value) -> Call {
        Call {
            method: method.into(),
            settings: settings.as_object().cloned(),
            url: "http://app/".into(),
        }
    }

    #[test]
    fn the_identified_boot_is_the_answer() {
        let calls = [call(
            "boot",
            json!({"app_id": "a", "api_base": "https://api-iam.eu.intercom.io", "user_id": 42, "email": "a@x", "name": "A"}),
        )];
        let a = Answer::from_calls(&calls, "/").unwrap();
        assert_eq!(
            (a.user_id.as_str(), a.email.as_deref(), a.name.as_deref()),
            ("42", Some("a@x"), Some("A"))
        );
        assert_eq!(
            (a.app_id.as_deref(), a.api_base.as_deref(), a.today),
            (Some("a"), Some("https://api-iam.eu.intercom.io"), Classification::Insecure)
        );
        assert!(Answer::from_calls(&[call("boot", json!({"app_id": "a"}))], "/").is_none());
        assert!(Answer::from_calls(&[], "/").is_none());
    }

    #[test]
    fn a_jwt_already_there_names_its_user() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"user_id":"u7","email":"u7@x"}"#);
        let calls =
            [call("boot", json!({"app_id": "a", "intercom_user_jwt": format!("h.{payload}.s")}))];
        let a = Answer::from_calls(&calls, "/").unwrap();
        assert_eq!(
            (a.user_id.as_str(), a.email.as_deref(), a.today),
            ("u7", Some("u7@x"), Classification::Jwt)
        );
    }
}
