//! What the proxy reads from a request: whether it may be forwarded, what it is for
//! (a document, a navigation), its host and its cookies. The one place each of these
//! is parsed.
//!
//! Pingora forwards HTTP/1.1 requests without a `Host`; they are refused here, as
//! nginx does.

use http::header::{ACCEPT, CONTENT_LENGTH, HOST};
use http::{HeaderName, Version};
use pingora::http::RequestHeader;

use super::framing::{content_length_fix, LengthFix};

/// Why a request is answered with 400 before the app sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    /// HTTP/1.1 requires a `Host` header.
    #[error("HTTP/1.1 request without Host")]
    MissingHost,
    /// More than one `Host` header: which one the app uses is anyone's guess.
    #[error("more than one Host header")]
    DuplicateHost,
    /// A `Host` value that is no host name, IP literal and port.
    #[error("invalid Host header")]
    InvalidHost,
    /// `Content-Length` values that are not one number.
    #[error("conflicting or invalid Content-Length")]
    ContentLength,
}

/// Checks a client request and normalises what can be: identical duplicate
/// `Content-Length` values become one header line.
pub fn check_request(req: &mut RequestHeader) -> Result<(), BadRequest> {
    let mut hosts = req.headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if req.version == Version::HTTP_11 => return Err(BadRequest::MissingHost),
        (Some(_), Some(_)) => return Err(BadRequest::DuplicateHost),
        (Some(v), None) if !valid_host(v.as_bytes()) => return Err(BadRequest::InvalidHost),
        _ => {}
    }
    match content_length_fix(&req.headers)? {
        Some(LengthFix::Remove) => {
            req.remove_header(&CONTENT_LENGTH);
        }
        Some(LengthFix::Single(n)) => {
            req.insert_header(CONTENT_LENGTH, n).map_err(|_| BadRequest::ContentLength)?;
        }
        None => {}
    }
    Ok(())
}

// Names, not strings: a lookup by string parses the name again, on every request.
const SEC_FETCH_DEST: HeaderName = HeaderName::from_static("sec-fetch-dest");
const SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");

/// Whether the response may be shown as a document, the only thing the page script
/// belongs in. Browsers say what a request is for in `Sec-Fetch-Dest`: HTML that
/// `fetch`/XHR loads (`empty`: a legacy app's partials, inserted with `innerHTML` or
/// into a `<textarea>`) is the app's data and passes through untouched. Clients that
/// do not send the header are judged by the response alone.
pub fn may_be_document(req: &RequestHeader) -> bool {
    match req.headers.get(SEC_FETCH_DEST).map(|v| v.as_bytes()) {
        None => true,
        Some(dest) => [&b"document"[..], b"iframe", b"frame", b"embed", b"object"]
            .iter()
            .any(|d| dest.eq_ignore_ascii_case(d)),
    }
}

/// Whether the request is a top-level navigation (interstitials are for those only).
pub fn is_navigation(req: &RequestHeader) -> bool {
    let header = |n: &HeaderName| req.headers.get(n).and_then(|v| v.to_str().ok());
    match (header(&SEC_FETCH_MODE), header(&SEC_FETCH_DEST)) {
        (Some(mode), dest) => mode == "navigate" && dest.is_none_or(|d| d == "document"),
        // Older clients: judge by what they accept.
        (None, _) => header(&ACCEPT).is_some_and(|a| a.contains("text/html")),
    }
}

/// Request headers of the libraries that fetch the next page and render it in the same
/// window (Turbo, Turbolinks, jquery-pjax, htmx).
static SOFT_NAVIGATION: [HeaderName; 5] = [
    HeaderName::from_static("x-turbo-request-id"),
    HeaderName::from_static("turbo-frame"),
    HeaderName::from_static("turbolinks-referrer"),
    HeaderName::from_static("x-pjax"),
    HeaderName::from_static("hx-request"),
];

/// Whether the request is a library's fetch of the next page (a soft navigation): its
/// scripts will run in the window of an earlier page, whose token may be another user's.
pub fn is_soft_navigation(req: &RequestHeader) -> bool {
    SOFT_NAVIGATION.iter().any(|n| req.headers.contains_key(n))
}

/// The request's cookies as trimmed `name=value` pairs, across every `Cookie` line:
/// the one cookie-header splitter. [`cookie`] reads one cookie by name from them; the
/// `current_user_endpoint` source forwards whole pairs to the app.
pub fn cookie_pairs(req: &RequestHeader) -> impl Iterator<Item = &str> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

/// A cookie pair's name and value, by the rule every lookup in the proxy uses: the name
/// is the text before the first `=`, the value the text after it, both trimmed (a pair
/// without `=` names no cookie and is skipped, as RFC 6265 5.2 does), and a value in
/// double quotes is the text between them. RFC 6265 4.1.1 makes the quotes syntax
/// (`cookie-value = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE )`), and the app
/// stacks whose sessions the proxy reads drop one balanced pair (npm `cookie`, Go's
/// `net/http`, Python's `http.cookies`); an unbalanced quote is part of the value.
pub fn cookie_name_value(pair: &str) -> Option<(&str, &str)> {
    let (name, value) = pair.split_once('=')?;
    let value = value.trim();
    let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(unquoted) => unquoted,
        None => value,
    };
    Some((name.trim(), value))
}

/// The values the request's cookie `name` has, in the order the browser sent them
/// (every `Cookie` line, each pair read by [`cookie_name_value`]).
pub fn cookie_values<'r>(
    req: &'r RequestHeader,
    name: &'r str,
) -> impl Iterator<Item = &'r str> + 'r {
    cookie_pairs(req).filter_map(cookie_name_value).filter(move |(n, _)| *n == name).map(|(_, v)| v)
}

/// What a request says about one cookie ([`cookie`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieValue<'r> {
    /// The request does not carry it.
    Absent,
    /// Its value (sent once, or several times with this same value).
    One(&'r str),
    /// Sent with two different values: no value.
    Ambiguous,
}

/// The request's cookie `name`, read by the one rule of [`cookie_name_value`] across
/// every `Cookie` line (HTTP/2 clients may send one line per cookie, RFC 9113 8.2.3).
///
/// A name sent with different values is [`CookieValue::Ambiguous`]: browsers send both
/// when the same name was set for two paths or domains (one may have been planted from
/// a sibling subdomain, RFC 6265 8.6), and apps disagree on which one they read (PHP,
/// Express and Go take the first, Django and Python's `http.cookies` the last), so
/// picking either could name someone the app does not. The same value sent twice is
/// no doubt.
pub fn cookie<'r>(req: &'r RequestHeader, name: &str) -> CookieValue<'r> {
    let mut found = CookieValue::Absent;
    for pair in cookie_pairs(req) {
        match cookie_name_value(pair) {
            Some((n, v)) if n == name => match found {
                CookieValue::Absent => found = CookieValue::One(v),
                CookieValue::One(first) if first != v => return CookieValue::Ambiguous,
                _ => {}
            },
            _ => {}
        }
    }
    found
}

/// Whether a `Host` value is `host[:port]` with host a name, an IPv4 address or a
/// bracketed IPv6 literal (RFC 3986 characters only: no spaces, `;`-attribute tricks
/// are still possible in a reg-name, so see [`cookie_host`] for where it matters).
pub fn valid_host(value: &[u8]) -> bool {
    let (host, port) = split_port(value);
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    let host_ok = if let Some(inner) = host.strip_prefix(b"[").and_then(|h| h.strip_suffix(b"]")) {
        !inner.is_empty() && inner.iter().all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        !host.is_empty()
            && host.iter().all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b))
    };
    host_ok && port_ok
}

fn split_port(value: &[u8]) -> (&[u8], Option<&[u8]>) {
    let bracket_end = value.iter().rposition(|&b| b == b']');
    match value.iter().rposition(|&b| b == b':') {
        Some(i)
            if bracket_end.is_none_or(|e| i > e)
                && (bracket_end.is_some() || value[..i].iter().all(|&b| b != b':')) =>
        {
            (&value[..i], Some(&value[i + 1..]))
        }
        _ => (value, None),
    }
}

/// A `host[:port]` text without its port (and without brackets around an IPv6 literal).
pub fn host_without_port(value: &str) -> &str {
    let host = std::str::from_utf8(split_port(value.as_bytes()).0).unwrap_or(value);
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

/// The request's host name without port, lowercase, when it is a plain DNS name or IP
/// address: the only form the proxy ever writes into a cookie `Domain` or compares
/// a redirect target with. Anything else (even if the app accepts it) gives `None`.
pub fn cookie_host(req: &RequestHeader) -> Option<String> {
    let value = match req.headers.get(HOST) {
        Some(v) => v.as_bytes(),
        None => req.uri.host()?.as_bytes(),
    };
    if !valid_host(value) {
        return None;
    }
    let host = split_port(value).0;
    let host = host.strip_prefix(b"[").and_then(|h| h.strip_suffix(b"]")).unwrap_or(host);
    let dns_or_ip =
        host.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':');
    (dns_or_ip && !host.is_empty()).then(|| String::from_utf8_lossy(host).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/", None).unwrap();
        r.set_version(version);
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn hosts() {
        for ok in [
            "example.com",
            "app.example.com:8443",
            "127.0.0.1:80",
            "[::1]:8080",
            "[2001:db8::1]",
            "localhost",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "x.example.com; Max-Age=99999; Domain=victim.example",
            "a/b",
            "a\\b",
            "a:99999x",
            "[::1",
            "a@b",
            "a\tb",
            ":80",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
        assert_eq!(check_request(&mut req(Version::HTTP_11, &[])), Err(BadRequest::MissingHost));
        assert_eq!(check_request(&mut req(Version::HTTP_10, &[])), Ok(()));
        assert_eq!(
            check_request(&mut req(Version::HTTP_11, &[("host", "a"), ("host", "a")])),
            Err(BadRequest::DuplicateHost)
        );
        assert_eq!(
            check_request(&mut req(Version::HTTP_11, &[("host", "a b")])),
            Err(BadRequest::InvalidHost)
        );
    }

    #[test]
    fn cookie_hosts_are_plain_names() {
        let host = |h: &str| cookie_host(&req(Version::HTTP_11, &[("host", h)]));
        assert_eq!(host("App.Example.com:8443").as_deref(), Some("app.example.com"));
        assert_eq!(host("[::1]:8080").as_deref(), Some("::1"));
        assert_eq!(host("x.example.com;Domain=victim.example"), None);
        assert_eq!(host("x.example.com; Max-Age=99999; Domain=victim.example"), None);
    }

    #[test]
    fn one_cookie_is_read_by_one_rule() {
        let jar = |lines: &[&str]| {
            req(Version::HTTP_2, &lines.iter().map(|l| ("cookie", *l)).collect::<Vec<_>>())
        };
        // What the lookup says, owned: a value, nothing, or "ambiguous".
        let sid = |lines: &[&str]| match cookie(&jar(lines), "sid") {
            CookieValue::One(v) => Ok(Some(v.to_string())),
            CookieValue::Absent => Ok(None),
            CookieValue::Ambiguous => Err("ambiguous"),
        };
        let one = |v: &str| Ok(Some(v.to_string()));
        assert_eq!(sid(&["a=1; sid=abc; b=2"]), one("abc"));
        assert_eq!(sid(&["a=1", " sid = abc "]), one("abc"), "every line, trimmed");
        assert_eq!(sid(&["sid=\"abc\""]), one("abc"), "DQUOTEs are syntax");
        assert_eq!(sid(&["sid=\"abc"]), one("\"abc"), "an unbalanced quote is kept");
        assert_eq!(sid(&["sid=\"\"abc\"\""]), one("\"abc\""), "one pair only");
        assert_eq!(sid(&["sid=a=b"]), one("a=b"), "the first = splits");
        assert_eq!(sid(&["sid=abc; sid=\"abc\""]), one("abc"), "the same value");
        assert_eq!(sid(&["sid=abc", "sid=def"]), Err("ambiguous"));
        assert_eq!(sid(&["sid=; sid=abc"]), Err("ambiguous"), "empty is a value");
        assert_eq!(sid(&["sid; Sid=abc; sidx=1; x=sid=abc"]), Ok(None));
        assert_eq!(sid(&[]), Ok(None));
        let two_lines = jar(&["sid=a; x=1", "sid=\"b\"; sid="]);
        let values: Vec<&str> = cookie_values(&two_lines, "sid").collect();
        assert_eq!(values, ["a", "b", ""]);
    }

    #[test]
    fn content_lengths() {
        let cl = |values: &[&str]| {
            let mut r = req(
                Version::HTTP_11,
                &values.iter().map(|v| ("content-length", *v)).collect::<Vec<_>>(),
            );
            r.append_header("host", "a").unwrap();
            check_request(&mut r).map(|()| {
                r.headers
                    .get_all(CONTENT_LENGTH)
                    .iter()
                    .map(|v| v.to_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(cl(&["5"]), Ok(vec!["5".to_string()]));
        assert_eq!(cl(&["5", "5"]), Ok(vec!["5".to_string()]));
        assert_eq!(cl(&["5, 5"]), Ok(vec!["5".to_string()]));
        assert_eq!(cl(&["5", "6"]), Err(BadRequest::ContentLength));
        assert_eq!(cl(&["5, 6"]), Err(BadRequest::ContentLength));
        assert_eq!(cl(&["5,"]), Err(BadRequest::ContentLength));
        assert_eq!(cl(&["-5", "-5"]), Err(BadRequest::ContentLength));
        assert_eq!(cl(&["abc"]), Err(BadRequest::ContentLength));
        let mut r = req(
            Version::HTTP_11,
            &[("host", "a"), ("content-length", "5"), ("transfer-encoding", "chunked")],
        );
        assert_eq!(check_request(&mut r), Ok(()));
        assert!(r.headers.get(CONTENT_LENGTH).is_none(), "the encoding wins; the length goes");
    }
}
