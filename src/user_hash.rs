//! The deprecated Identity Verification (`intercom.mode: user_hash` or `both`): the
//! Messenger's `user_hash`, a lowercase hex HMAC-SHA256 of the user id (else the
//! email) with the Messenger secret, for workspaces that still enforce it while they
//! move to JWTs.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::identity::Identity;

/// Computes `user_hash` values with the workspace's Messenger secret.
pub struct UserHasher {
    mac: Hmac<Sha256>,
}

impl UserHasher {
    /// A hasher keyed with the Messenger secret (the one that signs JWTs).
    pub fn new(secret: &[u8]) -> Self {
        UserHasher {
            // HMAC accepts keys of any length; this cannot fail.
            mac: Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length"),
        }
    }

    /// The value Intercom hashes: the user id, else the email (Intercom's rule; the
    /// proxy's identities always have a user id).
    fn subject(identity: &Identity) -> &str {
        match identity.email.as_deref() {
            Some(email) if identity.user_id.is_empty() => email,
            _ => &identity.user_id,
        }
    }

    /// The lowercase hex HMAC-SHA256 of the identity's subject.
    pub fn user_hash(&self, identity: &Identity) -> String {
        let mut mac = self.mac.clone();
        mac.update(Self::subject(identity).as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// What the page script gives the Messenger in the clear in `user_hash` mode:
    /// `user_id`, `email` (when known) and `user_hash`, as script-safe JSON.
    pub fn plain_settings(&self, identity: &Identity) -> Arc<str> {
        let mut plain = Map::new();
        plain.insert("user_id".into(), Value::String(identity.user_id.clone()));
        if let Some(email) = &identity.email {
            plain.insert("email".into(), Value::String(email.clone()));
        }
        plain.insert("user_hash".into(), Value::String(self.user_hash(identity)));
        Arc::from(crate::script_json::to_script_json(&Value::Object(plain)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_4231_vector_and_is_lowercase_hex() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let hasher = UserHasher::new(b"Jefe");
        let id = Identity::new("what do ya want for nothing?");
        assert_eq!(
            hasher.user_hash(&id),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn plain_settings_are_script_safe() {
        let mut id = Identity::new("</script>");
        id.email = Some("a@example.com".into());
        let plain = UserHasher::new(b"k").plain_settings(&id);
        assert!(!plain.contains('<'));
        let v: Value = serde_json::from_str(&plain).unwrap();
        assert_eq!(v["user_id"], "</script>");
        assert_eq!(v["user_hash"].as_str().unwrap().len(), 64);
    }
}
