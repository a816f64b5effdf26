//! express-session's signed cookies: `s:<id>.<signature>`, URL-encoded, where the
//! signature is the unpadded standard base64 of HMAC-SHA256(secret, id) (the
//! `cookie-signature` package). A cookie is accepted when any configured secret
//! verifies it, so a secret rotation (`secret: [new, old]` in the app) keeps sessions.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

/// The session id of a signed cookie value, or `None` when it is unsigned, malformed or
/// no secret verifies it. The comparison is constant-time (`Mac::verify_slice`).
pub fn unsign(cookie_value: &str, secrets: &[Secret]) -> Option<String> {
    let value = percent_decode(cookie_value)?;
    let signed = value.strip_prefix("s:")?;
    let (id, signature) = signed.rsplit_once('.')?;
    if id.is_empty() {
        return None;
    }
    // cookie-signature strips the `=` padding; accept it either way.
    let signature = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(signature.trim_end_matches('='))
        .ok()?;
    secrets.iter().any(|secret| verifies(secret, id, &signature)).then(|| id.to_string())
}

fn verifies(secret: &Secret, id: &str, signature: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose()) else { return false };
    mac.update(id.as_bytes());
    mac.verify_slice(signature).is_ok()
}

/// `%XX` decoding as `decodeURIComponent` does it; `None` for a bad escape or non-UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The cookie value express-session sets for session `id` signed with `secret`
/// (`s:<id>.<signature>`, percent-encoded), which [`unsign`] accepts: for tests of an
/// app's sessions (the proxy itself only verifies).
pub fn sign(id: &str, secret: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD_NO_PAD.encode(mac.finalize().into_bytes());
    format!("s%3A{id}.{}", sig.replace('+', "%2B").replace('/', "%2F"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(list: &[&str]) -> Vec<Secret> {
        list.iter().map(|s| Secret::new(s.as_bytes().to_vec())).collect()
    }

    const REAL_ID: &str = "Ql6Ih_5cz8HQrGbuGVSsdBZxnhG-2Rq1";
    // Made by the cookie-signature package that express-session uses, independently of
    // our code: `"s:" + sign(REAL_ID, "keyboard cat")`, URL-encoded as the cookie holds it.
    const REAL_COOKIE: &str =
        "s%3AQl6Ih_5cz8HQrGbuGVSsdBZxnhG-2Rq1.B7xKqySJYx%2F8cjIbchj0gap2%2BpAvZ%2F9GbFNexIknC6Y";

    #[test]
    fn a_good_signature_gives_the_id() {
        assert_eq!(unsign(REAL_COOKIE, &secrets(&["keyboard cat"])).as_deref(), Some(REAL_ID));
        assert_eq!(sign(REAL_ID, b"keyboard cat"), REAL_COOKIE);
    }

    #[test]
    fn a_bad_signature_gives_nothing() {
        let cookie = sign(REAL_ID, b"keyboard cat");
        assert_eq!(unsign(&cookie, &secrets(&["another secret"])), None);
        // The id changed, the signature kept: a forged session id.
        let forged = cookie.replace("Ql6Ih", "Xl6Ih");
        assert_eq!(unsign(&forged, &secrets(&["keyboard cat"])), None);
        // A truncated signature.
        assert_eq!(unsign(&cookie[..cookie.len() - 2], &secrets(&["keyboard cat"])), None);
    }

    #[test]
    fn an_unsigned_cookie_gives_nothing() {
        assert_eq!(unsign(REAL_ID, &secrets(&["keyboard cat"])), None);
        assert_eq!(unsign(&format!("s%3A{REAL_ID}"), &secrets(&["keyboard cat"])), None);
        assert_eq!(unsign("s%3A.abc", &secrets(&["keyboard cat"])), None);
        assert_eq!(unsign("s%3Aid.%ZZ", &secrets(&["keyboard cat"])), None);
    }

    #[test]
    fn every_secret_of_a_rotation_is_tried() {
        let old = sign(REAL_ID, b"old secret");
        let new = sign(REAL_ID, b"new secret");
        let rotation = secrets(&["new secret", "old secret"]);
        assert_eq!(unsign(&old, &rotation).as_deref(), Some(REAL_ID));
        assert_eq!(unsign(&new, &rotation).as_deref(), Some(REAL_ID));
        assert_eq!(unsign(&old, &secrets(&["new secret"])), None);
    }

    #[test]
    fn padded_and_unescaped_signatures_are_read_too() {
        let cookie = percent_decode(&sign(REAL_ID, b"k")).unwrap() + "=";
        assert_eq!(unsign(&cookie, &secrets(&["k"])).as_deref(), Some(REAL_ID));
    }
}
