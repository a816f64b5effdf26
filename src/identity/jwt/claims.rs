//! Verified claims to an [`Identity`], with the source's JSON pointers.

use super::super::Identity;
use crate::config::ClaimFields;

/// The identity in `claims`, or `None` when the user id is missing, empty, or neither a
/// string nor an integer (a token for nobody, e.g. a Cloudflare Access service token).
pub fn identity(claims: &serde_json::Value, fields: &ClaimFields) -> Option<Identity> {
    let user_id = match claims.pointer(&fields.user_id)? {
        serde_json::Value::String(s) if !s.is_empty() => s.clone(),
        // With arbitrary_precision these are the digits as signed: never rounded.
        serde_json::Value::Number(n) if super::super::endpoint::is_integer_literal(&n.to_string()) => n.to_string(),
        _ => return None,
    };
    let text = |ptr: &Option<String>| {
        ptr.as_deref()
            .and_then(|p| claims.pointer(p))
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mut identity = Identity::new(user_id);
    identity.email = text(&fields.email);
    identity.name = text(&fields.name);
    for (name, ptr) in &fields.attributes {
        if let Some(v) = claims.pointer(ptr).filter(|v| !v.is_null()) {
            identity.attributes.insert(name.clone(), v.clone());
        }
    }
    Some(identity)
}
