//! Message framing: `Content-Length` lines as they are forwarded, and a response's
//! framing for the client's HTTP version.
//!
//! Pingora reconciles duplicate `Content-Length` values for its own framing but
//! forwards the header lines as they came; they are normalised or refused here, the
//! way nginx does.

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Version};
use pingora::http::ResponseHeader;
use pingora::modules::http::compression::ResponseCompression;
use pingora::proxy::Session;

use super::BadRequest;

/// What a message's `Content-Length` lines need before they are forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LengthFix {
    /// `Transfer-Encoding` is present too: the encoding wins and the length must go
    /// (RFC 9112 §6.3: together they are a smuggling attempt or a broken sender).
    Remove,
    /// Several lines or a list that all agree: one line with this value.
    Single(HeaderValue),
}

/// Checks `Content-Length` (of a request or a response): `Ok(None)` when it is absent
/// or one clean number, `Ok(Some(fix))` when it must be rewritten, `Err` when its values
/// disagree or one is not a number.
pub fn content_length_fix(headers: &HeaderMap) -> Result<Option<LengthFix>, BadRequest> {
    if !headers.contains_key(CONTENT_LENGTH) {
        return Ok(None);
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        return Ok(Some(LengthFix::Remove));
    }
    let mut agreed: Option<&[u8]> = None;
    let mut tokens = 0;
    for value in headers.get_all(CONTENT_LENGTH) {
        for n in value.as_bytes().split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            if n.is_empty() || !n.iter().all(u8::is_ascii_digit) || agreed.is_some_and(|a| a != n) {
                return Err(BadRequest::ContentLength);
            }
            agreed = Some(n);
            tokens += 1;
        }
    }
    let as_sent = headers.get(CONTENT_LENGTH).map(HeaderValue::as_bytes);
    match agreed {
        // Several values, or one with padding around it: one clean line.
        Some(n) if tokens > 1 || as_sent != Some(n) => Ok(Some(LengthFix::Single(
            HeaderValue::from_bytes(n).map_err(|_| BadRequest::ContentLength)?,
        ))),
        _ => Ok(None),
    }
}

/// Fits a response's framing to what the client's HTTP version allows, in every mode
/// and after every other header change: the status line says HTTP/1.1 (our version,
/// as nginx does, whatever the app spoke), and an HTTP/1.0 client, which has no
/// chunked encoding, gets a `Content-Length` or a close-delimited body (with
/// `Connection: close`, and response compression off: its encoder always chunks).
pub fn fit_framing(session: &mut Session, resp: &mut ResponseHeader) {
    let client = session.req_header().version;
    if !matches!(client, Version::HTTP_10 | Version::HTTP_09 | Version::HTTP_11) {
        return; // HTTP/2 frames bodies itself.
    }
    resp.set_version(Version::HTTP_11);
    if client == Version::HTTP_11 {
        return;
    }
    // Pingora has already decoded the app's chunks.
    resp.remove_header(&TRANSFER_ENCODING);
    if let Some(c) = session.downstream_modules_ctx.get_mut::<ResponseCompression>() {
        c.adjust_level(0);
    }
    let bodiless = session.req_header().method == http::Method::HEAD
        || matches!(resp.status.as_u16(), 204 | 304);
    if !bodiless && !resp.headers.contains_key(CONTENT_LENGTH) {
        session.set_keepalive(None);
    }
}
