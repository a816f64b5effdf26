//! How the Messenger booted, from the Intercom calls the stand-in widget recorded.
//!
//! A `boot` starts a Messenger; the `update`s that follow merge into its settings (an
//! anonymous boot later updated with a `user_id` is identified); `update`s before a
//! boot wait for it, as the real widget replays its queue after booting; `shutdown`
//! ends it. Each Messenger is classified by what identifies its user, and a page by
//! its worst Messenger.

use serde::Serialize;
use serde_json::{Map, Value};

/// One `Intercom(method, settings)` call, as the stand-in widget reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// `boot`, `update`, `shutdown`, ...
    pub method: String,
    /// A JSON copy of the settings object, when one was passed.
    pub settings: Option<Map<String, Value>>,
    /// The page's URL when the call was made.
    pub url: String,
}

impl Call {
    /// Reads the payload the stand-in widget sends through the audit's binding.
    pub fn from_report(payload: &str) -> Option<Call> {
        let mut value: Value = serde_json::from_str(payload).ok()?;
        Some(Call {
            method: value.get("method")?.as_str()?.to_string(),
            settings: match value.get_mut("settings").map(Value::take) {
                Some(Value::Object(map)) => Some(map),
                _ => None,
            },
            url: value.get("url").and_then(Value::as_str).unwrap_or_default().to_string(),
        })
    }
}

/// How the Messenger identifies the user, from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    /// The Messenger did not boot.
    None,
    /// It booted without identifying anyone.
    Anonymous,
    /// It booted with a signed `intercom_user_jwt`.
    Jwt,
    /// It booted with the deprecated `user_hash` (Identity Verification).
    UserHash,
    /// It booted with a plain `user_id` or `email` and nothing signed.
    Insecure,
}

impl Classification {
    /// The name used in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::None => "none",
            Classification::Anonymous => "anonymous",
            Classification::Jwt => "jwt",
            Classification::UserHash => "user_hash",
            Classification::Insecure => "insecure",
        }
    }
}

/// The fields that identify a user to the Messenger when given in clear (the proxy's
/// rollout report judges pages by the same list).
pub use intercom_secure_proxy::page::IDENTIFYING_FIELDS;

/// One Messenger as it ended up: its boot settings with the updates merged in.
#[derive(Debug, Clone, PartialEq)]
pub struct Messenger {
    /// What identifies its user.
    pub classification: Classification,
    /// The identifying fields given in clear (any classification).
    pub clear_fields: Vec<&'static str>,
    /// The plain `user_id`, when given.
    pub user_id: Option<String>,
    /// The signed token, when given (checked, never reported).
    pub jwt: Option<String>,
    /// The `app_id` it booted for.
    pub app_id: Option<String>,
    /// The plain `email`, when given.
    pub email: Option<String>,
    /// The plain `name`, when given.
    pub name: Option<String>,
    /// The `api_base` it booted with, when given.
    pub api_base: Option<String>,
    /// The page URL of its boot.
    pub url: String,
}

impl Messenger {
    fn new(settings: &Map<String, Value>, url: &str) -> Messenger {
        let text = |name: &str| text(settings.get(name));
        let clear_fields: Vec<&'static str> =
            IDENTIFYING_FIELDS.into_iter().filter(|f| text(f).is_some()).collect();
        let jwt = text("intercom_user_jwt");
        let classification = if jwt.is_some() {
            Classification::Jwt
        } else if text("user_hash").is_some() && !clear_fields.is_empty() {
            Classification::UserHash
        } else if !clear_fields.is_empty() {
            Classification::Insecure
        } else {
            Classification::Anonymous
        };
        Messenger {
            classification,
            clear_fields,
            user_id: text("user_id"),
            jwt,
            app_id: text("app_id"),
            email: text("email"),
            name: text("name"),
            api_base: text("api_base"),
            url: url.to_string(),
        }
    }

    /// Whether it says who the user is, in any form.
    pub fn identified(&self) -> bool {
        self.classification > Classification::Anonymous
    }
}

/// A setting's value as the Messenger reads an identity: a non-empty string or a
/// number, as text; anything else is no value.
pub fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The Messengers that `calls` booted, in order.
pub fn messengers(calls: &[Call]) -> Vec<Messenger> {
    let mut out = Vec::new();
    // The settings of the Messenger running now, and of updates waiting for a boot.
    let mut running: Option<(Map<String, Value>, String)> = None;
    let mut waiting = Map::new();
    let mut finish = |running: &mut Option<(Map<String, Value>, String)>| {
        if let Some((settings, url)) = running.take() {
            out.push(Messenger::new(&settings, &url));
        }
    };
    for call in calls {
        let settings = call.settings.clone().unwrap_or_default();
        match call.method.as_str() {
            "boot" => {
                finish(&mut running);
                let mut merged = settings;
                merged.extend(std::mem::take(&mut waiting));
                running = Some((merged, call.url.clone()));
            }
            "update" => match &mut running {
                Some((current, _)) => current.extend(settings),
                None => waiting.extend(settings),
            },
            "shutdown" => {
                finish(&mut running);
                waiting.clear();
            }
            _ => {}
        }
    }
    finish(&mut running);
    out
}

/// The page's worst Messenger, or `None` when nothing booted.
pub fn worst(messengers: &[Messenger]) -> Option<&Messenger> {
    // max_by_key keeps the last of equals; the first is the one a reader expects.
    messengers.iter().rev().max_by_key(|m| m.classification)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(method: &str, settings: Value) -> Call {
        Call {
            method: method.into(),
            settings: settings.as_object().cloned(),
            url: "http://app/".into(),
        }
    }

    fn classes(calls: &[Call]) -> Vec<Classification> {
        messengers(calls).iter().map(|m| m.classification).collect()
    }

    #[test]
    fn each_kind_of_boot() {
        let boot = |s: Value| classes(&[call("boot", s)]);
        assert_eq!(boot(json!({"app_id": "a"})), [Classification::Anonymous]);
        assert_eq!(
            boot(json!({"app_id": "a", "user_id": "", "email": null})),
            [Classification::Anonymous]
        );
        assert_eq!(
            boot(json!({"app_id": "a", "user_id": "u1", "email": "u@x"})),
            [Classification::Insecure]
        );
        assert_eq!(boot(json!({"app_id": "a", "user_id": 42})), [Classification::Insecure]);
        assert_eq!(
            boot(json!({"app_id": "a", "email": "u@x", "user_hash": "ab12"})),
            [Classification::UserHash]
        );
        assert_eq!(
            boot(json!({"app_id": "a", "intercom_user_jwt": "h.p.s"})),
            [Classification::Jwt]
        );
        // During a migration (mode: both) the page carries both: the JWT decides.
        assert_eq!(
            boot(
                json!({"app_id": "a", "user_id": "u1", "user_hash": "ab", "intercom_user_jwt": "h.p.s"})
            ),
            [Classification::Jwt]
        );
        assert!(
            classes(&[call("update", json!({"user_id": "u1"}))]).is_empty(),
            "no boot, no Messenger"
        );
        assert!(worst(&[]).is_none());
    }

    #[test]
    fn the_fields_in_clear_and_the_user_are_named() {
        let m = &messengers(&[call(
            "boot",
            json!({"app_id": "a", "user_id": "alice", "email": "a@x", "name": "Alice"}),
        )])[0];
        assert_eq!(m.clear_fields, ["user_id", "email"]);
        assert_eq!(m.user_id.as_deref(), Some("alice"));
        assert_eq!(m.app_id.as_deref(), Some("a"));
        assert!(m.identified());
    }

    #[test]
    fn updates_merge_into_their_boot() {
        // An anonymous boot identified by a later update is identified.
        let calls =
            [call("boot", json!({"app_id": "a"})), call("update", json!({"user_id": "u1"}))];
        assert_eq!(classes(&calls), [Classification::Insecure]);
        // Queued updates replayed before the settings' boot still apply to it.
        let calls = [call("update", json!({"email": "u@x"})), call("boot", json!({"app_id": "a"}))];
        assert_eq!(classes(&calls), [Classification::Insecure]);
        // A shutdown ends the Messenger; what came before it does not carry over.
        let calls = [
            call("boot", json!({"app_id": "a", "user_id": "u1"})),
            call("update", json!({"email": "u@x"})),
            call("shutdown", Value::Null),
            call("boot", json!({"app_id": "a"})),
        ];
        assert_eq!(classes(&calls), [Classification::Insecure, Classification::Anonymous]);
    }

    #[test]
    fn the_page_is_as_bad_as_its_worst_messenger() {
        let calls = [
            call("boot", json!({"app_id": "a", "intercom_user_jwt": "h.p.s"})),
            call("shutdown", Value::Null),
            call("boot", json!({"app_id": "a", "user_id": "u1"})),
            call("shutdown", Value::Null),
            call("boot", json!({"app_id": "a", "user_id": "u2"})),
        ];
        let all = messengers(&calls);
        let page = worst(&all).unwrap();
        assert_eq!(
            (page.classification, page.user_id.as_deref()),
            (Classification::Insecure, Some("u1"))
        );
    }

    #[test]
    fn reports_from_the_stand_in_widget() {
        let c = Call::from_report(
            r#"{"method":"boot","settings":{"app_id":"a"},"auto":true,"url":"http://x/"}"#,
        )
        .unwrap();
        assert_eq!((c.method.as_str(), c.url.as_str()), ("boot", "http://x/"));
        assert_eq!(c.settings.unwrap()["app_id"], "a");
        assert_eq!(
            Call::from_report(r#"{"method":"shutdown","settings":null,"url":"u"}"#)
                .unwrap()
                .settings,
            None
        );
        assert!(Call::from_report("not json").is_none());
    }
}
