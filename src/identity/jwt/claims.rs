//! Verified claims to an [`Identity`], with the source's JSON pointers.

use super::super::{json_fields, Identity};
use crate::config::ClaimFields;

/// The identity in `claims`, or `None` when the user id is missing, empty, or neither a
/// string nor an integer (a token for nobody, e.g. a Cloudflare Access service token).
pub fn identity(claims: &serde_json::Value, fields: &ClaimFields) -> Option<Identity> {
    let user_id = json_fields::id_at(claims, &fields.user_id).ok().flatten()?;
    let mut identity = Identity::new(user_id);
    json_fields::fill(&mut identity, claims, &fields.email, &fields.name, &fields.attributes);
    Some(identity)
}
