//! Verified claims to an [`Identity`], with the source's JSON pointers.

use super::super::{json_fields, Identity};
use crate::config::FieldPointers;

/// The identity in `claims`, or `None` when the user id is missing, empty, or neither a
/// string nor an integer (a token for nobody, e.g. a Cloudflare Access service token).
pub fn identity(claims: &serde_json::Value, fields: &FieldPointers) -> Option<Identity> {
    json_fields::identity(claims, fields).ok().flatten()
}
