//! Whether a shared cache (a CDN, a corporate proxy) may store a page and serve it to
//! someone else: for a page that carries a user's identity, that hands one user's
//! Messenger identity to the next visitor.
//!
//! Per RFC 9111, from the document's response headers:
//! - `no-store`, or `private` without field names, forbids it;
//! - `no-cache` without field names makes every reuse ask the app first: not flagged;
//! - `public`, `s-maxage` or `max-age` allows it;
//! - otherwise `Expires`, or a `Last-Modified` on a status cacheable by default, lets
//!   a cache store it and reuse it heuristically.
//!
//! `Vary: Cookie` is not taken as a guard: several CDNs ignore `Vary`.

/// The response headers of a page that bear on shared caching (names lowercase).
#[derive(Debug, Clone, Default)]
pub struct CacheHeaders {
    /// The HTTP status.
    pub status: u16,
    /// `Cache-Control`, all of them joined.
    pub cache_control: Option<String>,
    /// Whether `Expires` is present.
    pub expires: bool,
    /// Whether `Last-Modified` is present.
    pub last_modified: bool,
}

/// Statuses a cache may store without explicit freshness (RFC 9110 section 15.1).
const HEURISTIC_STATUSES: [u16; 12] = [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// Why a shared cache may store this response, or `None` when it may not.
pub fn shared_cacheable(headers: &CacheHeaders) -> Option<String> {
    let directives: Vec<(String, bool)> = headers
        .cache_control
        .iter()
        .flat_map(|v| v.split(','))
        .map(|d| {
            let (name, value) = d.split_once('=').map_or((d, None), |(n, v)| (n, Some(v)));
            (
                name.trim().to_ascii_lowercase(),
                value.is_some_and(|v| !v.trim().trim_matches('"').is_empty()),
            )
        })
        .filter(|(name, _)| !name.is_empty())
        .collect();
    // `private="Set-Cookie"` keeps only those fields out of a shared cache.
    let unqualified = |name: &str| directives.iter().any(|(n, qualified)| n == name && !qualified);
    let has = |name: &str| directives.iter().any(|(n, _)| n == name);
    if has("no-store") || unqualified("private") || unqualified("no-cache") {
        return None;
    }
    if let Some(name) = ["public", "s-maxage", "max-age"].into_iter().find(|n| has(n)) {
        return Some(format!("Cache-Control has {name} and neither private nor no-store"));
    }
    if headers.expires {
        return Some("Expires without Cache-Control private or no-store".into());
    }
    if headers.last_modified && HEURISTIC_STATUSES.contains(&headers.status) {
        return Some(
            "Last-Modified without Cache-Control private or no-store allows heuristic caching"
                .into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(value: &str) -> Option<String> {
        shared_cacheable(&CacheHeaders {
            status: 200,
            cache_control: Some(value.into()),
            ..Default::default()
        })
    }

    #[test]
    fn private_and_no_store_keep_pages_out_of_shared_caches() {
        assert_eq!(cc("private"), None);
        assert_eq!(cc("private, max-age=60"), None);
        assert_eq!(cc("no-store"), None);
        assert_eq!(cc("Public, No-Store"), None);
        assert_eq!(cc("no-cache"), None);
        assert_eq!(shared_cacheable(&CacheHeaders { status: 200, ..Default::default() }), None);
    }

    #[test]
    fn explicit_freshness_without_private_is_flagged() {
        assert_eq!(
            cc("public, max-age=60").as_deref(),
            Some("Cache-Control has public and neither private nor no-store")
        );
        assert!(cc("max-age=0").is_some());
        assert!(cc("s-maxage=300").is_some());
        assert_eq!(cc("no-cache, max-age=60"), None);
        // Qualified forms only keep the named fields out.
        assert!(cc("private=\"Set-Cookie\", max-age=60").is_some());
    }

    #[test]
    fn expires_and_heuristics() {
        let h = |cc: Option<&str>, expires, last_modified, status| {
            shared_cacheable(&CacheHeaders {
                status,
                cache_control: cc.map(str::to_string),
                expires,
                last_modified,
            })
        };
        assert!(h(None, true, false, 200).is_some());
        assert!(h(None, false, true, 200).is_some());
        assert!(h(Some("must-revalidate"), false, true, 200).is_some());
        assert_eq!(h(None, false, true, 302), None);
        assert_eq!(h(Some("no-cache"), true, true, 200), None);
        assert_eq!(h(Some("private"), true, true, 200), None);
    }
}
