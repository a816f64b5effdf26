//! Identity from a JWT the app itself signed into its session cookie (or sends as a
//! bearer token): the token is taken from the request in the request phase and
//! verified in the response phase. The cookie is the app's and reaches it unchanged.
//!
//! Supabase's SSR helpers store the session as `base64-` + base64url JSON holding
//! `access_token`, split over `name.0`, `name.1`, ... when it is longer than a cookie
//! may be; those are joined and unwrapped here.

use std::sync::Arc;

use pingora::http::RequestHeader;

use super::jwt::{JwtVerifier, Token};
use crate::config::{JwtCookieConfig, TokenLocation};
use crate::headers::CookieValue;

/// Chunks beyond this are not a session (Supabase needs 2 or 3).
const MAX_CHUNKS: usize = 16;

/// The `jwt_cookie` source.
pub struct JwtCookieSource {
    location: TokenLocation,
    verifier: Arc<JwtVerifier>,
}

impl JwtCookieSource {
    /// Builds the source.
    pub fn new(config: JwtCookieConfig) -> Self {
        JwtCookieSource {
            location: config.location,
            verifier: JwtVerifier::new("jwt_cookie", config.verify, config.fields),
        }
    }

    /// The verifier (for the response phase).
    pub fn verifier(&self) -> &JwtVerifier {
        &self.verifier
    }

    /// The cookie carrying the session, when the token comes from a cookie.
    pub fn cookie_name(&self) -> Option<&String> {
        match &self.location {
            TokenLocation::Cookie(name) => Some(name),
            TokenLocation::Header(_) => None,
        }
    }

    /// The token this request carries, if any (no verification yet).
    pub fn token(&self, req: &RequestHeader) -> Option<Token> {
        match &self.location {
            TokenLocation::Cookie(name) => cookie_token(req, name),
            TokenLocation::Header(name) => {
                header_token(req, name).and_then(|raw| unwrap_supabase(&raw))
            }
        }
        .map(Token::new)
    }
}

/// The token cookie `name` carries in `req` (its chunks joined, a Supabase session
/// unwrapped), not verified: what the source verifies, and what `init` reads the
/// algorithm and claims of.
pub fn cookie_token(req: &RequestHeader, name: &str) -> Option<String> {
    unwrap_supabase(&cookie_value(req, name)?)
}

/// The value of cookie `name`, or its `name.0`, `name.1`, ... chunks joined. A cookie
/// sent with two different values is ambiguous (two paths or domains, see
/// [`crate::headers::cookie`]): no token.
pub(crate) fn cookie_value(req: &RequestHeader, name: &str) -> Option<String> {
    let ambiguous = || {
        crate::warn_limited!(
            "session cookie {name} sent with different values; no identity for this request"
        )
    };
    match crate::headers::cookie(req, name) {
        CookieValue::Ambiguous => {
            ambiguous();
            return None;
        }
        CookieValue::One(v) => return Some(v.to_string()),
        CookieValue::Absent => {}
    }
    let mut joined = String::new();
    for i in 0..MAX_CHUNKS {
        match crate::headers::cookie(req, &format!("{name}.{i}")) {
            CookieValue::Ambiguous => {
                ambiguous();
                return None;
            }
            CookieValue::One(v) => joined.push_str(v),
            CookieValue::Absent => break,
        }
    }
    (!joined.is_empty()).then_some(joined)
}

/// A bearer token from `name` (the `Bearer` scheme is required on `authorization`),
/// present exactly once.
fn header_token(req: &RequestHeader, name: &str) -> Option<String> {
    let mut values = req.headers.get_all(name).iter();
    let value = values.next()?.to_str().ok()?.trim();
    if values.next().is_some() {
        return None;
    }
    let token = if name == "authorization" { super::jwt::bearer(value)? } else { value };
    (!token.is_empty()).then(|| token.to_string())
}

/// The JWT in a cookie value: the value itself, or the `access_token` of a Supabase
/// session (`base64-` + base64url JSON, or URL-encoded JSON).
fn unwrap_supabase(value: &str) -> Option<String> {
    let json: Option<Vec<u8>> = if let Some(b64) = value.strip_prefix("base64-") {
        Some(super::jwt::base64url(b64)?)
    } else if value.starts_with('{') || value.starts_with("%7B") {
        Some(percent_decode(value))
    } else {
        None
    };
    match json {
        None => Some(value.to_string()),
        Some(bytes) => {
            let doc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
            doc.get("access_token")?.as_str().map(str::to_string)
        }
    }
}

/// `%XX` escapes decoded; a `%` without two hex digits after it stays as it is.
fn percent_decode(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn request(cookie: &str) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("cookie", cookie).unwrap();
        req
    }

    #[test]
    fn supabase_chunks_are_joined_and_unwrapped() {
        let json = r#"{"access_token":"aaa.bbb.ccc","refresh_token":"r"}"#;
        let enc =
            format!("base64-{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json));
        let (a, b) = enc.split_at(20);
        let req = request(&format!("sb-x-auth-token.1={b}; other=1; sb-x-auth-token.0={a}"));
        let raw = cookie_value(&req, "sb-x-auth-token").unwrap();
        assert_eq!(unwrap_supabase(&raw).as_deref(), Some("aaa.bbb.ccc"));
    }

    #[test]
    fn a_cookie_sent_twice_is_no_token() {
        assert!(cookie_value(&request("s=a.b.c; s=d.e.f"), "s").is_none());
        assert_eq!(cookie_value(&request("s=a.b.c"), "s").as_deref(), Some("a.b.c"));
        assert!(cookie_value(&request("s.0=a.b; s.1=c; s.0=d.e"), "s").is_none(), "a chunk too");
    }

    /// The one cookie rule (`headers::cookie`) where it differs from what this source did
    /// before: the same token sent twice is no doubt about the user (whichever copy the
    /// app reads, it is that token), and a token in DQUOTEs is the token (RFC 6265's
    /// quotes are syntax; Go's and npm's cookie parsers drop them). Before, both were
    /// "no token". Neither can name another user: the token is still verified.
    #[test]
    fn the_same_token_twice_or_quoted_is_the_token() {
        assert_eq!(cookie_value(&request("s=a.b.c; s=a.b.c"), "s").as_deref(), Some("a.b.c"));
        assert_eq!(cookie_value(&request("s=\"a.b.c\""), "s").as_deref(), Some("a.b.c"));
        assert_eq!(cookie_value(&request("s.0=\"a.b\"; s.1=.c"), "s").as_deref(), Some("a.b.c"));
    }

    /// Lenient like a browser's `decodeURIComponent` is not: an escape that is no escape
    /// (`%` without two hex digits) stays as it is, and decoding gives bytes, not text.
    #[test]
    fn percent_decoding_keeps_what_is_no_escape() {
        let cases: [(&str, &[u8]); 9] = [
            ("%7B%22a%22%7d", b"{\"a\"}"),
            ("100%", b"100%"),
            ("%4", b"%4"),
            ("%4g%41", b"%4gA"),
            ("%%41", b"%A"),
            ("%ff%FE", b"\xff\xfe"),
            ("a+b", b"a+b"),
            ("%2541", b"%41"),
            ("", b""),
        ];
        for (encoded, decoded) in cases {
            assert_eq!(percent_decode(encoded), decoded, "{encoded}");
        }
    }

    #[test]
    fn url_encoded_json_session_is_unwrapped() {
        assert_eq!(
            unwrap_supabase("%7B%22access_token%22%3A%22x.y.z%22%7D").as_deref(),
            Some("x.y.z")
        );
    }

    #[test]
    fn bearer_scheme_is_required_on_authorization() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("authorization", "Basic abc").unwrap();
        assert!(header_token(&req, "authorization").is_none());
        req.insert_header("authorization", "Bearer a.b.c").unwrap();
        assert_eq!(header_token(&req, "authorization").as_deref(), Some("a.b.c"));
    }
}
