//! `jwt_cookie`: a session cookie whose value is a JWT the app signs (or a Supabase
//! session holding one, whole or in `NAME.0`, `NAME.1` chunks): the claim holding the
//! page's user id, the algorithm its header names, and its key: the variable named
//! with `--jwt-secret-env` for HMAC, else a JWKS the app's origin publishes.

use pingora::http::RequestHeader;

use super::jwt::{verify_yaml, OriginJwks, Unverified};
use super::{Candidate, Evidence};
use crate::audit::input::CookieArg;
use crate::init::candidate::Attempt;
use crate::init::pointer::Fields;
use crate::init::yaml::quote;

/// The source `type`.
const SOURCE: &str = "jwt_cookie";

/// Tries each session cookie in turn; the first whose JWT the acceptance check accepts.
pub(super) fn find(ev: &Evidence<'_>, attempts: &mut Vec<Attempt>) -> Option<Candidate> {
    let session = &ev.learned.session;
    if session.is_empty() {
        attempts.push(Attempt::rejected(
            SOURCE,
            "(cookie)",
            "no session cookie to read a JWT from".into(),
        ));
        return None;
    }
    for name in cookie_names(session) {
        match candidate(ev, &name) {
            Ok(candidate) => {
                if let Some(accepted) = ev.try_candidate(candidate, attempts) {
                    return Some(accepted);
                }
            }
            Err(why) => attempts.push(Attempt::rejected(SOURCE, &format!("cookie {name}"), why)),
        }
    }
    None
}

/// The names the source reads the session's cookies by: chunks `NAME.0`, `NAME.1`, ...
/// by their `NAME` (the source joins them), in the session's order.
fn cookie_names(session: &[CookieArg]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for cookie in session {
        let name = match cookie.name.rsplit_once('.') {
            Some((base, n))
                if !base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
            {
                base
            }
            _ => cookie.name.as_str(),
        };
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

/// The token the source would read from cookie `name` of the session (the source's
/// own reading: chunks joined, a Supabase session unwrapped).
fn session_token(session: &[CookieArg], name: &str) -> Option<String> {
    let mut req = RequestHeader::build("GET", b"/", None).ok()?;
    let cookie: Vec<String> = session.iter().map(|c| format!("{}={}", c.name, c.value)).collect();
    req.insert_header("cookie", cookie.join("; ")).ok()?;
    intercom_secure_proxy::identity::cookie_token(&req, name)
}

/// The candidate for cookie `name`, or why it cannot be one.
fn candidate(ev: &Evidence<'_>, name: &str) -> Result<Candidate, String> {
    let learned = ev.learned;
    let token = session_token(&learned.session, name)
        .and_then(|t| Unverified::read(&t))
        .ok_or("its value is not a JWT (nor a Supabase session holding one)")?;
    token.algorithm()?;
    if token.expired() {
        return Err(format!(
            "its {} JWT has expired: log in again and give the new session",
            token.alg
        ));
    }
    let places = Fields::find(
        &serde_json::Value::Object(token.claims.clone()),
        &learned.answer,
        "its claims",
    )
    .map_err(|why| format!("a {} JWT, but {why}", token.alg))?;
    let key = if token.is_hmac() {
        let Some(var) = ev.plan.options.jwt_secret_env.as_deref() else {
            return Err(format!("the cookie {name} is an {} JWT: give its key's variable with --jwt-secret-env NAME", token.alg));
        };
        if std::env::var_os(var).is_none() {
            return Err(format!("the cookie {name} is an {} JWT, but --jwt-secret-env {var} names a variable that is not set: export the app's JWT key in it", token.alg));
        }
        format!("      # the app's HMAC key is read from this variable (given with --jwt-secret-env), never from this file\n      secret_env: {var}\n")
    } else {
        OriginJwks::find(ev, &token)
            .map_err(|looked| {
                format!(
                    "the cookie {name} is an {} JWT, but no JWKS with its key ({}) was found on the app's origin ({looked}): set jwks_url to its issuer's JWKS, or public_key_file",
                    token.alg,
                    token.key_needed()
                )
            })?
            .yaml()
    };
    Ok(Candidate {
        source: SOURCE,
        tried: format!("cookie {name}"),
        why: format!("the session cookie {name} is a {} JWT whose claim {} is the page's user_id", token.alg, places.user_id),
        yaml: format!(
            "    - type: jwt_cookie\n      # the session cookie: the app signs the user into it\n      cookie: {}\n{}",
            quote(name),
            verify_yaml(&token, &key, &places)
        ),
        claims: places.claims(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn cookie(name: &str, value: &str) -> CookieArg {
        CookieArg { name: name.into(), value: value.into() }
    }

    #[test]
    fn chunks_are_read_by_their_name() {
        let session = [
            cookie("sb-x-auth-token.0", "a"),
            cookie("sb-x-auth-token.1", "b"),
            cookie("sid", "c"),
            cookie("v.2a", "d"),
            cookie(".1", "e"),
        ];
        assert_eq!(cookie_names(&session), ["sb-x-auth-token", "sid", "v.2a", ".1"]);
    }

    #[test]
    fn the_token_is_read_as_the_source_reads_it() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = format!("{}.{}.sig", b64(r#"{"alg":"HS256"}"#), b64(r#"{"sub":"u-1"}"#));
        let session = format!("base64-{}", b64(&format!(r#"{{"access_token":"{jwt}"}}"#)));
        let (a, b) = session.split_at(30);
        let cookies =
            [cookie("sb-x-auth-token.1", b), cookie("sid", "x"), cookie("sb-x-auth-token.0", a)];
        assert_eq!(session_token(&cookies, "sb-x-auth-token").as_deref(), Some(jwt.as_str()));
        let token =
            Unverified::read(&session_token(&[cookie("session", &jwt)], "session").unwrap())
                .unwrap();
        assert_eq!((token.alg.as_str(), token.claims["sub"].as_str()), ("HS256", Some("u-1")));
        assert!(session_token(&cookies, "other").is_none());
    }
}
