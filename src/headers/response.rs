//! Response headers the proxy reads (charset, encoding, cache directives) and the ones
//! it changes when a response becomes per-user or gets a new body.

use http::HeaderName;
use pingora::http::ResponseHeader;

/// The `charset` parameter of the `Content-Type`, lowercase and unquoted.
pub fn charset(resp: &ResponseHeader) -> Option<String> {
    charset_param(resp).map(str::to_ascii_lowercase)
}

/// Whether the `Content-Type` names a charset (without copying it, for every page).
pub fn names_charset(resp: &ResponseHeader) -> bool {
    charset_param(resp).is_some()
}

fn charset_param(resp: &ResponseHeader) -> Option<&str> {
    let ctype = resp.headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    ctype
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, v)| v.trim().trim_matches('"'))
}

/// The response's `Content-Encoding`, lowercase; `None` when absent or empty. A value
/// with bytes outside visible ASCII comes back as `"unreadable"`: nothing then says the
/// body is plain, so it is neither decoded nor rewritten.
pub fn content_encoding(resp: &ResponseHeader) -> Option<String> {
    let mut all: Vec<String> = Vec::new();
    for value in resp.headers.get_all(http::header::CONTENT_ENCODING) {
        let Ok(value) = value.to_str() else { return Some("unreadable".into()) };
        all.extend(
            value.split(',').map(|v| v.trim().to_ascii_lowercase()).filter(|v| !v.is_empty()),
        );
    }
    match all.len() {
        0 => None,
        1 => all.into_iter().next(),
        // Stacked codings: we cannot undo them.
        _ => Some("multiple".into()),
    }
}

pub fn has_directive(resp: &ResponseHeader, name: &str) -> bool {
    directives(resp).any(|d| directive_name(d).eq_ignore_ascii_case(name))
}

/// A directive's name: `max-age` of `max-age=600`.
fn directive_name(directive: &str) -> &str {
    directive.split('=').next().unwrap_or("").trim()
}

/// The `Cache-Control` directives, trimmed, borrowed from the header (read for every
/// page: copying each one cost an allocation apiece).
fn directives(resp: &ResponseHeader) -> impl Iterator<Item = &str> + '_ {
    resp.headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|d| !d.is_empty())
}

/// Makes a response private and uncachable, keeping the app's other directives:
/// `public`, `s-maxage`, `max-age` and `immutable` go, `private` and `no-store` come.
pub fn make_private(resp: &mut ResponseHeader) -> pingora::Result<()> {
    set_private(resp)?;
    remove_present(resp, &[&CACHE_OVERRIDES]);
    Ok(())
}

/// The `Cache-Control` part of [`make_private`].
fn set_private(resp: &mut ResponseHeader) -> pingora::Result<()> {
    if !resp.headers.contains_key(http::header::CACHE_CONTROL) {
        // Most pages: nothing of the app's to keep, and nothing to format.
        resp.insert_header(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("private, no-store"),
        )
    } else {
        merge_private(resp)
    }
}

/// Removes the headers of `lists` the response has, finding them in one pass over its
/// names: most are absent, and removing an absent name still hashes it (in both of
/// Pingora's maps when it is there). The names found are held on the stack, a batch at
/// a time (a name, once removed, is not found again).
fn remove_present(resp: &mut ResponseHeader, lists: &[&[HeaderName]]) {
    loop {
        let mut found: [Option<&HeaderName>; 8] = [None; 8];
        let known = lists.iter().flat_map(|list| list.iter());
        let present = resp.headers.keys().filter_map(|name| known.clone().find(|k| *k == name));
        for (slot, name) in found.iter_mut().zip(present) {
            *slot = Some(name);
        }
        if found[0].is_none() {
            return;
        }
        for name in found.into_iter().flatten() {
            resp.remove_header(name);
        }
    }
}

/// The app's `Cache-Control` with `private, no-store` first and what contradicts them gone.
fn merge_private(resp: &mut ResponseHeader) -> pingora::Result<()> {
    const DROPPED: [&str; 6] =
        ["public", "private", "no-store", "s-maxage", "max-age", "immutable"];
    let mut out: Vec<&str> = vec!["private", "no-store"];
    for d in directives(resp) {
        let name = directive_name(d);
        if !DROPPED.iter().any(|x| x.eq_ignore_ascii_case(name))
            && !out.iter().any(|o| o.eq_ignore_ascii_case(d))
        {
            out.push(d);
        }
    }
    let value = out.join(", ");
    resp.insert_header(http::header::CACHE_CONTROL, value)
}

/// Headers that describe one exact body: they go whenever the proxy changes the body.
/// (Names, not strings: each removal would otherwise parse its name again; a static,
/// not a const, so that they are not built and dropped at every use.)
/// `Content-Length` comes first (see [`remove_body_dependent`]).
/// Where [`BODY_DEPENDENT`] goes on past the length and the validators (`Accept-Ranges`
/// and the digests: a range of the app's body would not fit the rewritten one).
const DIGESTS: usize = 3;
static BODY_DEPENDENT: [HeaderName; 8] = [
    http::header::CONTENT_LENGTH,
    http::header::ETAG,
    http::header::LAST_MODIFIED,
    http::header::ACCEPT_RANGES,
    HeaderName::from_static("content-md5"),
    HeaderName::from_static("digest"),
    HeaderName::from_static("content-digest"),
    HeaderName::from_static("repr-digest"),
];

/// Cache headers that would outlive `private, no-store`: the CDN-targeted ones (RFC
/// 9213) override Cache-Control at the edge; Expires tells HTTP/1.0 caches the page
/// may be kept.
static CACHE_OVERRIDES: [HeaderName; 4] = [
    HeaderName::from_static("cdn-cache-control"),
    HeaderName::from_static("surrogate-control"),
    HeaderName::from_static("cloudflare-cdn-cache-control"),
    http::header::EXPIRES,
];

/// Headers of a response whose body we rewrite as it streams: private with no stale
/// validators (unless the new body is the same for every visitor), no digests, and framed by `length` when the new length is known (no
/// chunked framing, and no separate write of the header), by chunks otherwise.
pub fn remove_body_dependent(
    resp: &mut ResponseHeader,
    length: Option<u64>,
    private: bool,
) -> pingora::Result<()> {
    // Removals first: the headers added next take their slots instead of growing the map.
    // A known length replaces the app's in place (`insert_header` drops every other line).
    let body_dependent = if length.is_some() { &BODY_DEPENDENT[1..] } else { &BODY_DEPENDENT[..] };
    if private {
        remove_present(resp, &[body_dependent, &CACHE_OVERRIDES]);
        set_private(resp)?;
    } else {
        // The same bytes for every visitor: the app's caching and validators still hold
        // (the script is a function of the configuration, not of the visitor).
        let digests = &BODY_DEPENDENT[DIGESTS..];
        match length {
            Some(_) => remove_present(resp, &[digests]),
            None => remove_present(resp, &[&BODY_DEPENDENT[..1], digests]),
        }
    }
    match length {
        Some(n) => resp.insert_header(http::header::CONTENT_LENGTH, n)?,
        // HTTP/1 needs explicit framing once the length is gone (Pingora drops it on h2).
        None if resp.headers.get(http::header::TRANSFER_ENCODING).is_none() => {
            resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?
        }
        None => {}
    }
    Ok(())
}

/// The exact length of the body as it will reach the rewriter: one clean
/// `Content-Length`, no `Transfer-Encoding`, and no content coding to undo.
pub fn body_length(resp: &ResponseHeader) -> Option<u64> {
    if content_encoding(resp).is_some_and(|ce| ce != "identity") {
        return None;
    }
    // "Clean" as the forwarding checks define it: one line, all digits, no
    // Transfer-Encoding beside it.
    if super::content_length_fix(&resp.headers) != Ok(None) {
        return None;
    }
    resp.headers.get(http::header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Headers of a response whose body is replaced by a page of the proxy's own
/// (`text/html`, `len` bytes): nothing of the app's body, its encoding, its redirect
/// or its policy is left.
pub fn replace_body(resp: &mut ResponseHeader, len: usize) -> pingora::Result<()> {
    use http::header::{
        CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, TRANSFER_ENCODING,
    };
    for h in BODY_DEPENDENT.iter().chain(&[
        LOCATION,
        CONTENT_ENCODING,
        CONTENT_TYPE,
        TRANSFER_ENCODING,
        CONTENT_SECURITY_POLICY,
    ]) {
        resp.remove_header(h);
    }
    resp.insert_header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")?;
    resp.insert_header(http::header::CONTENT_LENGTH, len.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(pairs: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).unwrap();
        for (k, v) in pairs {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn cache_control_is_merged_never_public() {
        let mut r = resp(&[
            ("cache-control", "public, max-age=600, must-revalidate"),
            ("cdn-cache-control", "max-age=60"),
            ("expires", "Thu, 01 Dec 2099 16:00:00 GMT"),
        ]);
        make_private(&mut r).unwrap();
        assert_eq!(r.headers["cache-control"], "private, no-store, must-revalidate");
        assert!(r.headers.get("cdn-cache-control").is_none());
        assert!(r.headers.get("expires").is_none());
        let mut r = resp(&[]);
        make_private(&mut r).unwrap();
        assert_eq!(r.headers["cache-control"], "private, no-store");
        // Names in any case, over several lines, repeated: each kept directive once, as
        // the app spelled it.
        let mut r = resp(&[
            ("cache-control", "PUBLIC, S-MaxAge=60, No-Cache"),
            ("cache-control", " no-cache ,Private, stale-if-error=60,,"),
        ]);
        make_private(&mut r).unwrap();
        assert_eq!(r.headers["cache-control"], "private, no-store, No-Cache, stale-if-error=60");
    }

    #[test]
    fn validators_and_length_go() {
        let mut r = resp(&[
            ("content-length", "10"),
            ("etag", "\"x\""),
            ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ("vary", "Cookie"),
        ]);
        remove_body_dependent(&mut r, None, true).unwrap();
        assert!(r.headers.get("content-length").is_none());
        assert!(r.headers.get("etag").is_none());
        assert!(r.headers.get("last-modified").is_none());
        assert_eq!(r.headers["vary"], "Cookie");
        assert_eq!(r.headers["transfer-encoding"], "chunked");
        let mut r = resp(&[("content-length", "10"), ("etag", "\"x\"")]);
        remove_body_dependent(&mut r, Some(7010), true).unwrap();
        assert_eq!(r.headers["content-length"], "7010");
        assert!(r.headers.get("transfer-encoding").is_none() && r.headers.get("etag").is_none());
    }

    #[test]
    fn every_body_dependent_and_cache_override_goes_however_many_are_present() {
        // More than one batch of names (see `remove_present`), each spelled oddly, one
        // of them twice, among headers that stay.
        let mut pairs: Vec<(String, &str)> = vec![("X-Before".into(), "1")];
        for name in BODY_DEPENDENT.iter().chain(&CACHE_OVERRIDES) {
            pairs.push((name.as_str().to_ascii_uppercase(), "v"));
        }
        pairs.push(("ETag".into(), "\"again\""));
        pairs.push(("Vary".into(), "Cookie"));
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let mut r = resp(&pairs);
        remove_body_dependent(&mut r, None, true).unwrap();
        for name in BODY_DEPENDENT.iter().chain(&CACHE_OVERRIDES) {
            assert!(r.headers.get(name).is_none(), "{name}");
        }
        let mut wire = Vec::new();
        r.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).unwrap();
        assert_eq!(wire, "X-Before: 1\r\nVary: Cookie\r\nCache-Control: private, no-store\r\nTransfer-Encoding: chunked\r\n");
    }

    #[test]
    fn every_line_of_a_replaced_header_goes_on_the_wire_too() {
        // Pingora keeps each name's spelling in a second map and writes the head from it:
        // a removal or replacement that missed that map would still send the old line.
        let mut r = resp(&[
            ("Content-Length", "10"),
            ("ETag", "\"a\""),
            ("ETag", "\"b\""),
            ("X-Kept", "1"),
            ("Expires", "0"),
            ("Cache-Control", "public"),
        ]);
        remove_body_dependent(&mut r, Some(7010), true).unwrap();
        let mut wire = Vec::new();
        r.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).unwrap();
        let lines: Vec<&str> = wire.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(
            lines.iter().filter(|l| l.to_ascii_lowercase().starts_with("content-length:")).count(),
            1,
            "{wire}"
        );
        assert!(lines.contains(&"Content-Length: 7010"), "{wire}");
        assert!(lines.contains(&"X-Kept: 1"), "{wire}");
        assert!(lines.contains(&"Cache-Control: private, no-store"), "{wire}");
        for gone in ["etag:", "expires:"] {
            assert!(
                !lines.iter().any(|l| l.to_ascii_lowercase().starts_with(gone)),
                "{gone} left in {wire}"
            );
        }
    }

    #[test]
    fn body_length_only_when_the_bytes_are_exactly_what_was_announced() {
        assert_eq!(body_length(&resp(&[("content-length", "120")])), Some(120));
        assert_eq!(
            body_length(&resp(&[("content-length", "120"), ("content-encoding", "identity")])),
            Some(120)
        );
        for unknown in [
            vec![],
            vec![("content-length", "120"), ("content-encoding", "gzip")],
            vec![("content-length", "120"), ("transfer-encoding", "chunked")],
            vec![("content-length", "120"), ("content-length", "120")],
            vec![("content-length", "12 0")],
            vec![("content-length", "+120")],
            vec![("content-length", "99999999999999999999999")],
        ] {
            assert_eq!(body_length(&resp(&unknown)), None, "{unknown:?}");
        }
    }
}
