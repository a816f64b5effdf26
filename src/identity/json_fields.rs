//! Reading an identity out of a JSON document with the configured JSON pointers: the
//! current-user endpoint's answer, a session decoded from Redis, verified JWT claims.

use serde_json::Value;

use super::Identity;
use crate::config::FieldPointers;

/// The id at `pointer`: `Ok(None)` when it is missing, null or empty; `Err` names what
/// was found instead of a string or an integer. Numbers keep the digits as written
/// (serde_json's arbitrary_precision): ids beyond 2^53 must not be rounded into
/// someone else's.
pub(super) fn id_at(doc: &Value, pointer: &str) -> Result<Option<String>, &'static str> {
    match doc.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if is_integer_literal(&n.to_string()) => Ok(Some(n.to_string())),
        Some(Value::Number(_)) => Err("a number but not an integer"),
        Some(other) => Err(json_kind(other)),
    }
}

/// The non-empty string at `pointer`, if one is configured and found.
pub(super) fn text_at(doc: &Value, pointer: &Option<String>) -> Option<String> {
    pointer
        .as_deref()
        .and_then(|p| doc.pointer(p))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The identity `fields` point at in `doc`, the one place an endpoint's answer, a
/// decoded session and verified claims become an identity: `Ok(None)` when the user id
/// is missing, null or empty, `Err` naming what was found instead (see [`id_at`]).
pub(super) fn identity(
    doc: &Value,
    fields: &FieldPointers,
) -> Result<Option<Identity>, &'static str> {
    let Some(user_id) = id_at(doc, &fields.user_id)? else { return Ok(None) };
    let mut identity = Identity::new(user_id);
    identity.email = text_at(doc, &fields.email);
    identity.name = text_at(doc, &fields.name);
    for (attribute, pointer) in &fields.attributes {
        if let Some(v) = doc.pointer(pointer).filter(|v| !v.is_null()) {
            identity.attributes.insert(attribute.clone(), v.clone());
        }
    }
    Ok(Some(identity))
}

/// `-?[0-9]+`: a JSON integer exactly as written.
fn is_integer_literal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
