//! `current_user_endpoint` with JSON: the same-origin JSON requests the page made
//! while loading, then the paths apps commonly answer "who am I" on; the JSON
//! pointers to the page's user id, email and name in the answer.

use serde_json::Value;

use super::{Candidate, Evidence};
use crate::init::pointer::Fields;
use crate::init::yaml::quote;
use crate::init::report::Attempt;

/// Paths apps commonly answer the current user on, tried after the page's own requests.
const COMMON_PATHS: [&str; 11] =
    ["/api/me", "/api/user", "/api/v1/me", "/me", "/user", "/users/me", "/api/current_user", "/api/session", "/session", "/account.json", "/profile.json"];

/// The source `type`.
const SOURCE: &str = "current_user_endpoint";

/// Tries each path in turn; the first whose answer the acceptance check accepts.
pub(super) fn find(ev: &Evidence<'_>, attempts: &mut Vec<Attempt>) -> Option<Candidate> {
    let learned = ev.learned;
    if learned.session.is_empty() {
        attempts.push(Attempt::rejected(SOURCE, "(json)", "no session cookie to ask the app with".into()));
        return None;
    }
    let mut paths: Vec<&str> = learned.json_paths.iter().map(String::as_str).collect();
    for path in COMMON_PATHS {
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    for path in paths {
        let tried = format!("GET {path}");
        match candidate(ev, path) {
            Ok(candidate) => {
                if let Some(accepted) = ev.try_candidate(candidate, attempts) {
                    return Some(accepted);
                }
            }
            Err(why) => attempts.push(Attempt::rejected(SOURCE, &tried, why)),
        }
    }
    None
}

/// The candidate for `path`, or why the path cannot be one.
fn candidate(ev: &Evidence<'_>, path: &str) -> Result<Candidate, String> {
    let learned = ev.learned;
    let answer = &learned.answer;
    let response = ev.app.get(path, &learned.session, "application/json")?;
    if response.status != 200 {
        return Err(format!("answered {}", response.status));
    }
    let doc: Value = serde_json::from_slice(&response.body).map_err(|_| format!("answered {} , not JSON", display_type(&response.content_type)))?;
    let fields = Fields::find(&doc, answer, "the answer")?;
    let cookies: Vec<String> = learned.session.iter().map(|c| quote(&c.name)).collect();
    let (fields_yaml, claims) = fields.yaml();
    let yaml = format!(
        "    - type: current_user_endpoint\n      path: {}\n      # the cookies whose removal lost the user: the session\n      cookies: [{}]\n      format: json\n{fields_yaml}",
        quote(path),
        cookies.join(", "),
    );
    Ok(Candidate {
        source: SOURCE,
        tried: format!("GET {path}"),
        why: format!("user id at GET {path} → {}, matched the page's user_id", fields.user_id()),
        yaml,
        claims,
    })
}

fn display_type(content_type: &str) -> &str {
    if content_type.is_empty() {
        "with no Content-Type"
    } else {
        content_type
    }
}
