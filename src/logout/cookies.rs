//! The cookies of a logout: Intercom's own (expired), the marker that asks the next
//! page for a shutdown, and the last-user tag that notices a switch of user.

use std::net::IpAddr;
use std::sync::Arc;

use cookie::time::{Duration as CookieDuration, OffsetDateTime};
use cookie::{Cookie, SameSite};
use pingora::http::ResponseHeader;
use pingora::OrErr as _;
use sha2::{Digest, Sha256};

use crate::config::LogoutConfig;
use crate::intercom_cookies::{INTERCOM_COOKIES, MARKER_COOKIE, USER_COOKIE};

/// Marker lifetime: long enough to survive a redirect chain and a slow login page.
const MARKER_MAX_AGE: i64 = 600;

/// Names users by a keyed hash in the last-user cookie, so the cookie says whether the
/// user changed without saying who they are.
pub(crate) struct UserTags {
    /// Derived from the Messenger secret, never equal to it.
    key: [u8; 32],
    /// Recent users' tags with their `Set-Cookie`: a page of a known user costs one
    /// lookup, not a hash, an encoding and a header value.
    recent: quick_cache::sync::Cache<String, UserTag>,
    /// Puts users in the rollout's buckets, by their tag.
    slicer: crate::rollout::Slicer,
}

/// Bound on [`UserTags`]' memory of recent users (a few hundred bytes each).
const RECENT_USERS: usize = 10_000;

/// A user's tag and the `Set-Cookie` that remembers it ([`user_set`]).
#[derive(Clone)]
pub(crate) struct UserTag {
    tag: Arc<str>,
    set_cookie: http::HeaderValue,
    /// The user's rollout bucket, 0 to 99 (worked out with the tag, once per user).
    bucket: u8,
}

impl UserTag {
    /// The tag, as the last-user cookie carries it.
    pub(crate) fn as_str(&self) -> &str {
        &self.tag
    }

    /// The `Set-Cookie` value remembering this user.
    pub(crate) fn set_cookie(&self) -> http::HeaderValue {
        self.set_cookie.clone()
    }

    /// The user's rollout bucket, 0 to 99.
    pub(crate) fn bucket(&self) -> u8 {
        self.bucket
    }
}

impl UserTags {
    /// The tagger for one workspace's secret.
    pub(crate) fn new(secret: &[u8]) -> Self {
        let mut key = Sha256::new();
        key.update(b"intercom-secure-proxy last-user tag\0");
        key.update(secret);
        UserTags {
            key: key.finalize().into(),
            recent: quick_cache::sync::Cache::new(RECENT_USERS),
            slicer: crate::rollout::Slicer::new(secret),
        }
    }

    /// The rollout bucket of the user whose tag a last-user cookie carries.
    pub(crate) fn bucket_of(&self, tag: &str) -> u8 {
        self.slicer.bucket(tag)
    }

    /// The tag of `user_id` with its cookie, remembered for the user's next pages.
    pub(crate) fn user(&self, user_id: &str) -> UserTag {
        if let Some(known) = self.recent.get(user_id) {
            return known;
        }
        let tag = self.tag(user_id);
        // base64url and fixed attributes: always a valid header value.
        let set_cookie =
            http::HeaderValue::try_from(user_set(&tag)).expect("cookie text is a header value");
        let bucket = self.slicer.bucket(&tag);
        let user = UserTag { tag: tag.into(), set_cookie, bucket };
        self.recent.insert(user_id.to_string(), user.clone());
        user
    }

    /// The tag of `user_id`.
    pub(crate) fn tag(&self, user_id: &str) -> String {
        use base64::Engine as _;
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(user_id.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&h.finalize()[..16])
    }
}

/// The `Set-Cookie` values that expire Intercom's cookies for `app_id`: host-only, and
/// on the cookie domain with a leading dot (the configured one, else the request host
/// as [`crate::headers::cookie_host`] validated it, without port;
/// none for localhost and IP addresses, where browsers reject a Domain attribute).
pub fn expire_intercom_cookies(
    app_id: &str,
    config: &LogoutConfig,
    host: Option<&str>,
) -> Vec<String> {
    let host = host.map(str::to_ascii_lowercase);
    let domain = config.cookie_domain.clone().or(host).filter(|d| !is_local_or_ip(d));
    let mut out = Vec::with_capacity(6);
    for prefix in INTERCOM_COOKIES {
        let name = format!("{prefix}{app_id}");
        out.push(expired(&name, None));
        if let Some(d) = &domain {
            out.push(expired(&name, Some(d)));
        }
    }
    out
}

fn expired(name: &str, domain: Option<&str>) -> String {
    let mut text = Cookie::build((name.to_string(), ""))
        .path("/")
        .max_age(CookieDuration::ZERO)
        .expires(OffsetDateTime::UNIX_EPOCH)
        .build()
        .to_string();
    if let Some(d) = domain {
        // Written by hand: the cookie crate drops the leading dot Intercom's cookies use.
        text.push_str("; Domain=.");
        text.push_str(d);
    }
    text
}

/// `Set-Cookie` asking the next page for a shutdown.
pub fn marker_set() -> String {
    own_cookie(MARKER_COOKIE, "1", CookieDuration::seconds(MARKER_MAX_AGE))
}

/// `Set-Cookie` clearing the marker once a page has carried the shutdown.
pub fn marker_clear() -> String {
    own_cookie(MARKER_COOKIE, "", CookieDuration::ZERO)
}

/// `Set-Cookie` remembering whom this browser's last token was for (a keyed hash,
/// base64url). Written directly: it goes on every rewritten page a client without
/// cookies asks for, and the cookie crate's formatting was most of that page's cookie
/// work. A test holds it to the cookie crate's rendering.
pub fn user_set(tag: &str) -> String {
    const ATTRIBUTES: &str = "; HttpOnly; SameSite=Lax; Path=/; Max-Age=2592000";
    let mut text = String::with_capacity(USER_COOKIE.len() + 1 + tag.len() + ATTRIBUTES.len());
    text.push_str(USER_COOKIE);
    text.push('=');
    text.push_str(tag);
    text.push_str(ATTRIBUTES);
    text
}

/// `Set-Cookie` forgetting the last user (on logout).
pub fn user_clear() -> String {
    own_cookie(USER_COOKIE, "", CookieDuration::ZERO)
}

/// One of the proxy's own cookies: site-wide, out of scripts' reach, sent on
/// top-level navigations. A zero `max_age` deletes it (with an expiry in the past
/// for clients that ignore Max-Age).
fn own_cookie(name: &'static str, value: &str, max_age: CookieDuration) -> String {
    let mut cookie = Cookie::build((name, value.to_string()))
        .path("/")
        .max_age(max_age)
        .http_only(true)
        .same_site(SameSite::Lax);
    if max_age.is_zero() {
        cookie = cookie.expires(OffsetDateTime::UNIX_EPOCH);
    }
    cookie.build().to_string()
}

/// The name a `Set-Cookie` value sets, without parsing the rest.
fn cookie_name(value: &str) -> &str {
    value.split_once('=').map_or(value, |(n, _)| n).trim()
}

/// Which cookie a `Set-Cookie` value sets: its name, domain (without the leading dot
/// browsers ignore, lowercase) and path. Two values with the same are the same cookie.
fn cookie_identity(value: &str) -> Option<(String, Option<String>, Option<String>)> {
    let c = Cookie::parse(value).ok()?;
    let domain = c.domain().map(|d| d.trim_start_matches('.').to_ascii_lowercase());
    Some((c.name().to_string(), domain, c.path().map(str::to_string)))
}

/// Whether `resp` already sets the cookie that `value` sets. Values are parsed only
/// when a name matches: the last-user cookie goes on every page of a client without
/// cookies, and most responses set no cookie of ours.
fn sets_same_cookie(resp: &ResponseHeader, value: &str) -> bool {
    let mut same_name = resp
        .headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| cookie_name(v) == cookie_name(value))
        .peekable();
    if same_name.peek().is_none() {
        return false;
    }
    let Some(wanted) = cookie_identity(value) else { return false };
    same_name.any(|v| cookie_identity(v).as_ref() == Some(&wanted))
}

/// Sets a cookie, replacing whatever `Set-Cookie` of the response set the same one
/// before: one `Set-Cookie` per cookie, since which of two a browser keeps depends on
/// their order. For a logout's effects, which must hold whatever the app sent.
pub(crate) fn set_cookie_replacing(
    resp: &mut ResponseHeader,
    value: String,
) -> pingora::Result<()> {
    if sets_same_cookie(resp, &value) {
        let wanted = cookie_identity(&value);
        let kept: Vec<http::HeaderValue> = resp
            .headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .filter(|v| v.to_str().ok().and_then(cookie_identity) != wanted)
            .cloned()
            .collect();
        resp.remove_header(&http::header::SET_COOKIE);
        for v in kept {
            resp.append_header(http::header::SET_COOKIE, v)?;
        }
    }
    resp.append_header(http::header::SET_COOKIE, value).map(drop)
}

/// Sets a cookie unless the response sets it already. For a page's housekeeping
/// (clearing the marker, remembering the user), which yields to a logout's effects on
/// the same response: a logout landing page keeps the marker set, not cleared.
pub(crate) fn set_cookie_unless_set<V>(resp: &mut ResponseHeader, value: V) -> pingora::Result<()>
where
    V: TryInto<http::HeaderValue>,
    V::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let value =
        value.try_into().or_err(pingora::ErrorType::InvalidHTTPHeader, "a Set-Cookie value")?;
    if value.to_str().is_ok_and(|v| sets_same_cookie(resp, v)) {
        return Ok(());
    }
    resp.append_header(http::header::SET_COOKIE, value).map(drop)
}

/// The proxy's own cookies in the request: (marker present, last-user tag). Read by
/// the one cookie rule ([`crate::headers::cookie_values`]); an empty value is a cleared
/// cookie. Unlike an app's session cookie, a second value is no doubt about who the user
/// is: any marker is a marker, and of two last-user tags the last one sent is kept (both
/// are the proxy's, and either only decides whether the Messenger is shut down).
pub fn own_cookies(req: &pingora::http::RequestHeader) -> (bool, Option<String>) {
    let marker = crate::headers::cookie_values(req, MARKER_COOKIE).any(|v| !v.is_empty());
    let user = crate::headers::cookie_values(req, USER_COOKIE).filter(|v| !v.is_empty()).last();
    (marker, user.map(str::to_string))
}

fn is_local_or_ip(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok()
        || !host.contains('.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logout::tests::config;

    #[test]
    fn the_last_user_cookie_is_what_the_cookie_crate_writes() {
        let tag = UserTags::new(b"secret").tag("alice");
        assert_eq!(user_set(&tag), own_cookie(USER_COOKIE, &tag, CookieDuration::days(30)));
    }

    #[test]
    fn cookie_expiry_domains() {
        let c =
            expire_intercom_cookies("abc", &config(Some("example.com")), Some("app.example.com"));
        assert_eq!(c.len(), 6);
        assert!(c[0].starts_with("intercom-session-abc=;"));
        assert!(!c[0].contains("Domain"));
        assert!(c[1].ends_with("; Domain=.example.com"), "{}", c[1]);
        assert!(c.iter().all(|v| v.contains("Max-Age=0") && v.contains("Path=/")));
        let c = expire_intercom_cookies("abc", &config(None), Some("app.example.com"));
        assert!(c[1].ends_with("; Domain=.app.example.com"));
        for host in ["localhost", "127.0.0.1", "::1"] {
            let c = expire_intercom_cookies("abc", &config(None), Some(host));
            assert_eq!(c.len(), 3, "{host}: {c:?}");
            assert!(c.iter().all(|v| !v.contains("Domain")));
        }
    }

    #[test]
    fn a_cookie_is_its_name_domain_and_path() {
        let same = cookie_identity("a=1; Domain=.Example.com; Path=/");
        assert_eq!(same, cookie_identity("a=; domain=example.com; path=/; max-age=0"));
        assert_ne!(same, cookie_identity("a=1; Path=/"), "host-only is another cookie");
        assert_ne!(same, cookie_identity("a=1; Domain=example.com; Path=/x"));
    }

    #[test]
    fn marker_cookie_attributes() {
        let m = marker_set();
        assert!(m.contains("HttpOnly") && m.contains("SameSite=Lax") && m.contains("Max-Age=600"));
        assert!(marker_clear().contains("Max-Age=0"));
    }

    #[test]
    fn a_remembered_user_gets_what_a_new_one_would() {
        let tags = UserTags::new(b"secret");
        for _ in 0..2 {
            let alice = tags.user("alice");
            assert_eq!(alice.as_str(), tags.tag("alice"));
            assert_eq!(alice.set_cookie(), user_set(&tags.tag("alice")).as_str());
        }
        assert_ne!(tags.user("bob").as_str(), tags.user("alice").as_str());
    }

    #[test]
    fn user_tags_are_keyed() {
        let a = UserTags::new(b"secret-a");
        assert_eq!(a.tag("42"), a.tag("42"));
        assert_ne!(a.tag("42"), a.tag("43"));
        assert_ne!(a.tag("42"), UserTags::new(b"secret-b").tag("42"));
        assert!(!a.tag("42").contains("42"));
    }
}
