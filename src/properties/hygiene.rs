//! Request hygiene (`headers::check_request` and `headers::cookie_host`, as the proxy
//! calls them) on arbitrary `Host` and `Content-Length` values: it never panics, what
//! it lets through is one well-formed value, and nothing but a plain host name ever
//! comes out as a cookie domain.

use crate::headers::{check_request, cookie_host, BadRequest};
use http::header::{CONTENT_LENGTH, HOST};
use http::Version;
use pingora::http::RequestHeader;
use proptest::collection::vec;
use proptest::prelude::*;

use super::check;

/// Bytes a header value can hold (no CR, LF or NUL, which the parser refuses first),
/// leaning on the characters that matter here.
fn value() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => proptest::sample::select(&b"ab.-:[]0123456789;= ,\t/\\@%Domain"[..]),
        1 => (1u8..=255).prop_filter("header value byte", |b| !matches!(b, b'\r' | b'\n')),
    ];
    vec(byte, 0..40)
}

fn request(version: Version, hosts: &[Vec<u8>], lengths: &[Vec<u8>]) -> RequestHeader {
    let mut req = RequestHeader::build("POST", b"/", None).unwrap();
    req.set_version(version);
    for h in hosts {
        if let Ok(v) = http::HeaderValue::from_bytes(h) {
            req.append_header(HOST, v).unwrap();
        }
    }
    for l in lengths {
        if let Ok(v) = http::HeaderValue::from_bytes(l) {
            req.append_header(CONTENT_LENGTH, v).unwrap();
        }
    }
    req
}

#[test]
fn hosts_and_lengths_are_one_well_formed_value_or_refused() {
    let version = prop_oneof![Just(Version::HTTP_10), Just(Version::HTTP_11)];
    let strategy = (version, vec(value(), 0..3), vec(value(), 0..3));
    check("hygiene: host and length", strategy, |(version, hosts, lengths)| {
        let mut req = request(version, &hosts, &lengths);
        let hosts_sent = req.headers.get_all(HOST).iter().count();
        match check_request(&mut req) {
            Ok(()) => {
                prop_assert!(hosts_sent <= 1);
                prop_assert!(
                    version == Version::HTTP_10 || hosts_sent == 1,
                    "HTTP/1.1 without Host passed"
                );
                let lengths: Vec<_> = req.headers.get_all(CONTENT_LENGTH).iter().collect();
                prop_assert!(lengths.len() <= 1, "{} Content-Length lines passed", lengths.len());
                if let Some(l) = lengths.first() {
                    prop_assert!(
                        !l.is_empty() && l.as_bytes().iter().all(u8::is_ascii_digit),
                        "Content-Length {l:?} passed"
                    );
                }
            }
            Err(BadRequest::MissingHost) => {
                prop_assert!(hosts_sent == 0 && version == Version::HTTP_11)
            }
            Err(BadRequest::DuplicateHost) => prop_assert!(hosts_sent > 1),
            Err(BadRequest::InvalidHost | BadRequest::ContentLength) => {}
        }
        if let Some(domain) = cookie_host(&req) {
            prop_assert!(!domain.is_empty());
            prop_assert!(
                domain
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:".contains(&b)),
                "cookie domain {domain:?} is not a plain host name"
            );
        }
        Ok(())
    });
}
