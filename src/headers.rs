//! Response headers: which responses may be rewritten, and what a rewritten response's
//! headers must say.

use pingora::http::ResponseHeader;

use crate::config::InjectConfig;

/// Why a response is left alone (for debug logs).
pub type Skip = &'static str;

/// Whether the body of this response may be rewritten. Only complete, successful HTML
/// documents in an encoding we can decode qualify; everything else passes through.
pub fn rewritable(resp: &ResponseHeader, inject: &InjectConfig) -> Result<(), Skip> {
    let status = resp.status.as_u16();
    if !(200..300).contains(&status) || matches!(status, 204..=206) {
        return Err("status");
    }
    let headers = &resp.headers;
    let ctype = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or("no content-type")?;
    let media = ctype.split(';').next().unwrap_or("").trim();
    if !inject.content_types.iter().any(|t| t.eq_ignore_ascii_case(media)) {
        return Err("content-type");
    }
    // lol_html handles ASCII-compatible charsets only.
    if charset(resp).is_some_and(|c| c.starts_with("utf-16") || c.starts_with("utf-32")) {
        return Err("charset");
    }
    if headers.get(http::header::CONTENT_RANGE).is_some() {
        return Err("content-range");
    }
    if headers
        .get(http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0")
    {
        return Err("empty body");
    }
    match content_encoding(resp).as_deref() {
        None | Some("identity") | Some("gzip") | Some("x-gzip") | Some("br") => {}
        Some(_) => return Err("content-encoding"),
    }
    if inject.honor_no_transform && has_directive(resp, "no-transform") {
        return Err("no-transform");
    }
    Ok(())
}

/// The `charset` parameter of the `Content-Type`, lowercase and unquoted.
pub fn charset(resp: &ResponseHeader) -> Option<String> {
    let ctype = resp.headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    ctype
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, v)| v.trim().trim_matches('"').to_ascii_lowercase())
}

/// The response's `Content-Encoding`, lowercase; `None` when absent or empty.
pub fn content_encoding(resp: &ResponseHeader) -> Option<String> {
    let all: Vec<String> = resp
        .headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect();
    match all.len() {
        0 => None,
        1 => all.into_iter().next(),
        // Stacked codings: we cannot undo them.
        _ => Some("multiple".into()),
    }
}

fn has_directive(resp: &ResponseHeader, name: &str) -> bool {
    directives(resp).any(|d| d.split('=').next().unwrap_or("").trim().eq_ignore_ascii_case(name))
}

fn directives(resp: &ResponseHeader) -> impl Iterator<Item = String> + '_ {
    resp.headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
}

/// Makes a response private and uncachable, keeping the app's other directives:
/// `public`, `s-maxage`, `max-age` and `immutable` go, `private` and `no-store` come.
pub fn make_private(resp: &mut ResponseHeader) {
    let mut out: Vec<String> = vec!["private".into(), "no-store".into()];
    for d in directives(resp) {
        let name = d.split('=').next().unwrap_or("").trim().to_ascii_lowercase();
        let dropped = ["public", "private", "no-store", "s-maxage", "max-age", "immutable"];
        if !dropped.contains(&name.as_str()) && !out.iter().any(|o| o.eq_ignore_ascii_case(&d)) {
            out.push(d);
        }
    }
    let _ = resp.insert_header(http::header::CACHE_CONTROL, out.join(", "));
    // CDN-targeted cache headers (RFC 9213) would override Cache-Control at the edge;
    // Expires would tell HTTP/1.0 caches the page may be kept.
    for h in ["cdn-cache-control", "surrogate-control", "cloudflare-cdn-cache-control", "expires"] {
        resp.remove_header(h);
    }
}

/// Headers of a response whose body we change: no stale length, validators or digests.
pub fn prepare_rewritten(resp: &mut ResponseHeader) {
    make_private(resp);
    for h in [
        "content-length",
        "etag",
        "last-modified",
        "accept-ranges",
        "content-md5",
        "digest",
        "content-digest",
        "repr-digest",
    ] {
        resp.remove_header(h);
    }
    // HTTP/1 needs explicit framing once the length is gone (Pingora drops it on h2).
    if resp.headers.get(http::header::TRANSFER_ENCODING).is_none() {
        let _ = resp.insert_header(http::header::TRANSFER_ENCODING, "chunked");
    }
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
        make_private(&mut r);
        assert_eq!(r.headers["cache-control"], "private, no-store, must-revalidate");
        assert!(r.headers.get("cdn-cache-control").is_none());
        assert!(r.headers.get("expires").is_none());
        let mut r = resp(&[]);
        make_private(&mut r);
        assert_eq!(r.headers["cache-control"], "private, no-store");
    }

    #[test]
    fn validators_and_length_go() {
        let mut r = resp(&[("content-length", "10"), ("etag", "\"x\""), ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"), ("vary", "Cookie")]);
        prepare_rewritten(&mut r);
        assert!(r.headers.get("content-length").is_none());
        assert!(r.headers.get("etag").is_none());
        assert!(r.headers.get("last-modified").is_none());
        assert_eq!(r.headers["vary"], "Cookie");
        assert_eq!(r.headers["transfer-encoding"], "chunked");
    }
}
