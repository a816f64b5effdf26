//! `current_user_endpoint` with JSON: the same-origin JSON requests the page made
//! while loading, then the paths apps commonly answer "who am I" on; the JSON
//! pointers to the page's user id, email and name in the answer.

use serde_json::Value;

use super::{Candidate, Evidence};
use crate::audit::input::CookieArg;
use crate::init::app::Response;
use crate::init::candidate::Attempt;
use crate::init::pointer::Fields;
use crate::init::yaml::quote;

/// Paths apps commonly answer the current user on, tried after the page's own requests.
const COMMON_PATHS: [&str; 11] = [
    "/api/me",
    "/api/user",
    "/api/v1/me",
    "/me",
    "/user",
    "/users/me",
    "/api/current_user",
    "/api/session",
    "/session",
    "/account.json",
    "/profile.json",
];

/// The source `type`.
const SOURCE: &str = "current_user_endpoint";

/// Tries each path in turn; the first whose answer the acceptance check accepts.
pub(super) fn find(ev: &Evidence<'_>, attempts: &mut Vec<Attempt>) -> Option<Candidate> {
    let learned = ev.learned;
    if learned.session.is_empty() {
        attempts.push(Attempt::rejected(
            SOURCE,
            "(json)",
            "no session cookie to ask the app with".into(),
        ));
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
    let response = ok_answer(ev, path, "application/json")?;
    let doc: Value = serde_json::from_slice(&response.body)
        .map_err(|_| format!("answered {} , not JSON", display_type(&response.content_type)))?;
    let fields = Fields::find(&doc, &learned.answer, "the answer")?;
    Ok(Candidate {
        source: SOURCE,
        tried: format!("GET {path}"),
        why: format!("user id at GET {path} → {}, matched the page's user_id", fields.user_id),
        yaml: item(path, &learned.session, "json", &fields),
        claims: fields.claims(),
    })
}

/// The list item of a current_user_endpoint source asking `path` with the session's
/// cookies, answered in `format` (`json`, `html`), the page's user_id at `user_id`
/// and the other fields (`email`, `name`) at their places.
pub(super) fn item(path: &str, session: &[CookieArg], format: &str, fields: &Fields) -> String {
    let cookies: Vec<String> = session.iter().map(|c| quote(&c.name)).collect();
    format!(
        "    - type: current_user_endpoint\n      path: {}\n      # the cookies whose removal lost the user: the session\n      cookies: [{}]\n      format: {format}\n{}",
        quote(path),
        cookies.join(", "),
        fields.yaml("matched")
    )
}

/// The app's answer at `path`, asked with the session, when it is a 200; else why not.
pub(super) fn ok_answer(ev: &Evidence<'_>, path: &str, accept: &str) -> Result<Response, String> {
    let response = ev.app.get(path, &ev.learned.session, accept)?;
    if response.status != 200 {
        return Err(format!("answered {}", response.status));
    }
    Ok(response)
}

/// A media type for a message (`with no Content-Type` when the answer had none).
pub(super) fn display_type(content_type: &str) -> &str {
    if content_type.is_empty() {
        "with no Content-Type"
    } else {
        content_type
    }
}
