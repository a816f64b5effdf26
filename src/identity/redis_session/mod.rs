//! Identity from the app's session as it lies in Redis (`type: redis_session`).
//!
//! The request phase reads the session cookie (verifying express-session's signature
//! when configured) and turns it into the Redis key; the response phase `GET`s that key,
//! decodes the session (JSON or PHP's format) and maps it with JSON pointers. Answers are
//! cached per session under a SHA-256 of the key (the session id is never a cache key, a
//! log line or an error text); concurrent requests of one session share one read; "no
//! user" is cached for a shorter time; and a Redis that is down, slow or holding
//! something unreadable fails open: no token, page served, warning logged. A `key`
//! pattern under which no session is ever found is warned about and counted.

mod decode;
pub mod express;
mod key_misses;
mod php;

use std::fmt;
use std::sync::Arc;

use pingora::http::RequestHeader;
use sha2::{Digest, Sha256};

use super::session_cache::{Cached, Forget, Lifetimes, SessionCache};
use super::{Lookup, SourceError};
use crate::config::{
    CookieSignature, RedisSessionConfig, SESSION_ID_PLACEHOLDER, SESSION_ID_SHA256_PLACEHOLDER,
};
use crate::headers::CookieValue;

pub use decode::{document, DecodeError, MAX_SESSION_BYTES};

/// A PHP session (`php` serialize handler) as JSON, for the benchmarks.
#[cfg(feature = "bench-internals")]
pub(crate) fn parse_php_session(data: &[u8]) -> Result<serde_json::Value, String> {
    php::parse_session(data).map_err(|e| e.to_string())
}
use super::redis_store::Store;
pub use super::redis_store::StoreError;
use crate::metrics::METRICS;
use key_misses::{KeyMisses, Miss};

/// Longest session id looked up (PHP's and express' ids are 26 to 48 characters).
pub const MAX_SESSION_ID: usize = 256;

/// The session of one request: its Redis key and the key's digest for the cache.
#[derive(Clone)]
pub(crate) struct SessionRef {
    digest: [u8; 32],
    pub(crate) key: String,
}

impl fmt::Debug for SessionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key: it holds the session id.
        write!(
            f,
            "SessionRef({:02x}{:02x}{:02x}{:02x}…)",
            self.digest[0], self.digest[1], self.digest[2], self.digest[3]
        )
    }
}

/// Why the session in Redis gave no identity (never includes the id or the content).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisSessionError {
    /// Redis could not be asked.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What Redis holds could not be read.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// The redis_session source.
pub(crate) struct RedisSessionSource {
    config: RedisSessionConfig,
    store: Store,
    cache: SessionCache,
    cookie_names: Vec<String>,
    key_misses: KeyMisses,
}

impl RedisSessionSource {
    /// Builds the source; it connects to Redis on first use.
    pub fn new(config: RedisSessionConfig) -> Self {
        // The timeout bounds connecting and the read: two of them.
        let life = Lifetimes {
            found: config.cache.ttl,
            anonymous: config.cache.negative_ttl,
            lookup: config.timeout * 2,
        };
        let cache = SessionCache::new(config.cache.capacity, &life);
        RedisSessionSource {
            store: Store::new(
                config.redis.clone(),
                config.tls_ca.clone(),
                config.auth.clone(),
                config.timeout,
            ),
            cookie_names: vec![config.cookie.clone()],
            key_misses: KeyMisses::new(),
            cache,
            config,
        }
    }

    /// The session cookie's name, as a list (for login and logout detection).
    pub fn cookie_names(&self) -> &[String] {
        &self.cookie_names
    }

    /// The session of this request, or `None` when it has no usable session cookie:
    /// none, an unsigned or badly signed one, an implausible id, or two different
    /// values (one of them may have been planted; which one the app reads is unknown).
    pub fn session_ref(&self, req: &RequestHeader) -> Option<SessionRef> {
        let CookieValue::One(value) = crate::headers::cookie(req, &self.config.cookie) else {
            return None;
        };
        let id = session_id(value, self.config.cookie_signature, &self.config.cookie_secrets)?;
        let key = session_key(&self.config.key, &id);
        Some(SessionRef { digest: Sha256::digest(key.as_bytes()).into(), key })
    }

    /// Who the session belongs to, from the cache or Redis; `true` when this lookup
    /// read Redis (a cache miss).
    pub async fn lookup(&self, session: &SessionRef) -> (Lookup, bool) {
        let (answer, read) = self.cache.get_or_load(&session.digest, |_| self.fetch(session)).await;
        let lookup = match answer {
            Ok(Some(identity)) => Lookup::Found(identity),
            Ok(None) => Lookup::Anonymous,
            Err(why) => Lookup::Failed(SourceError::RedisSession {
                key: self.config.key.clone(),
                why: (*why).clone(),
            }),
        };
        (lookup, read)
    }

    /// Drops the cached answer for this session, or only a "nobody".
    pub async fn forget(&self, session: &SessionRef, what: Forget) {
        self.cache.forget(&session.digest, what).await;
    }

    async fn fetch(&self, session: &SessionRef) -> Result<Cached, RedisSessionError> {
        let Some(data) = self.store.get(&session.key).await? else {
            // No such session: expired, destroyed at logout, or never created; or a
            // `key` pattern that names nothing the app writes.
            self.note_missing(session);
            return Ok(None);
        };
        if self.key_misses.found() {
            METRICS.redis_session_keys_never_found.dec();
        }
        Ok(decode::identity(&self.config, &data)?.map(Arc::new))
    }

    /// Counts a missing session; warns when the last [`key_misses::WINDOW`] distinct
    /// sessions were all missing (naming the pattern, never an id).
    fn note_missing(&self, session: &SessionRef) {
        METRICS.redis_session_key_misses.inc();
        let Miss::AllMissing { newly } = self.key_misses.missing(session.digest) else { return };
        if newly {
            METRICS.redis_session_keys_never_found.inc();
        }
        crate::warn_limited!(
            "redis_session (cookie {}, key {:?}, {}): the sessions of the last {} requests that sent the cookie were all missing in Redis; check `key` and the /db against the keys the app writes (redis-cli --scan | head)",
            self.config.cookie,
            self.config.key,
            self.config.redis.redacted(),
            key_misses::WINDOW
        );
    }
}

/// The session id a cookie value names, per the configured signature; `None` when the
/// signature does not verify or the id is implausible.
fn session_id(
    value: &str,
    signature: CookieSignature,
    secrets: &[crate::config::Secret],
) -> Option<String> {
    let id = match signature {
        CookieSignature::Express => express::unsign(value, secrets)?,
        CookieSignature::None => express::percent_decode(value)?,
    };
    plausible_session_id(&id).then_some(id)
}

/// The Redis key of session `id`: the template with its one placeholder filled in.
pub fn session_key(template: &str, id: &str) -> String {
    if template.contains(SESSION_ID_SHA256_PLACEHOLDER) {
        let digest = hex::encode(Sha256::digest(id.as_bytes()));
        template.replacen(SESSION_ID_SHA256_PLACEHOLDER, &digest, 1)
    } else {
        template.replacen(SESSION_ID_PLACEHOLDER, id, 1)
    }
}

/// Visible ASCII and bounded: what session ids are. Anything else is not looked up.
pub fn plausible_session_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_SESSION_ID && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn source(signature: CookieSignature) -> RedisSessionSource {
        let mut config =
            RedisSessionConfig::new("redis://127.0.0.1:1/", "connect.sid", "/passport/user");
        config.cookie_signature = signature;
        config.cookie_secrets = vec![Secret::new(b"new".to_vec()), Secret::new(b"old".to_vec())];
        RedisSessionSource::new(config)
    }

    fn request(cookie: &str) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("cookie", cookie).unwrap();
        req
    }

    #[test]
    fn the_key_is_built_from_a_verified_id() {
        let s = source(CookieSignature::Express);
        let cookie = format!("a=1; connect.sid={}", express::sign("abc123", b"old"));
        assert_eq!(s.session_ref(&request(&cookie)).unwrap().key, "sess:abc123");
        assert!(s.session_ref(&request("connect.sid=abc123")).is_none(), "unsigned");
        let forged = format!("connect.sid={}", express::sign("abc123", b"guess"));
        assert!(s.session_ref(&request(&forged)).is_none(), "bad signature");
    }

    #[test]
    fn a_hashed_placeholder_gives_rack_private_session_ids() {
        // redis-session-store 0.11.6 writes under Rack's private id, "2::" and the
        // SHA-256 hex of the cookie's id; the digest of "abc" is the standard vector.
        let mut config =
            RedisSessionConfig::new("redis://127.0.0.1:1/", "_app_session", "/user_id");
        config.key = "myapp:session:2::{id_sha256}".into();
        let s = RedisSessionSource::new(config);
        assert_eq!(
            s.session_ref(&request("_app_session=abc")).unwrap().key,
            "myapp:session:2::ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn two_different_session_cookies_are_no_session() {
        let s = source(CookieSignature::None);
        assert!(s.session_ref(&request("connect.sid=aaa; connect.sid=bbb")).is_none());
        assert_eq!(
            s.session_ref(&request("connect.sid=aaa; connect.sid=aaa")).unwrap().key,
            "sess:aaa"
        );
        let quoted_too = request("connect.sid=aaa; connect.sid=\"aaa\"");
        assert_eq!(s.session_ref(&quoted_too).unwrap().key, "sess:aaa");
    }

    /// RFC 6265's DQUOTEs around a value are one balanced pair (npm `cookie` 1.x, Go and
    /// Python drop exactly that). This source used to strip every quote at either end,
    /// reading `"aaa` as session `aaa`, which the app never does.
    #[test]
    fn quotes_are_one_balanced_pair() {
        let s = source(CookieSignature::None);
        assert_eq!(s.session_ref(&request("connect.sid=\"aaa\"")).unwrap().key, "sess:aaa");
        assert_eq!(s.session_ref(&request("connect.sid=\"aaa")).unwrap().key, "sess:\"aaa");
        assert_eq!(s.session_ref(&request("connect.sid=\"\"aaa\"\"")).unwrap().key, "sess:\"aaa\"");
    }

    #[test]
    fn implausible_ids_are_not_looked_up() {
        let s = source(CookieSignature::None);
        assert!(s.session_ref(&request("connect.sid=a%20b")).is_none());
        assert!(s
            .session_ref(&request(&format!("connect.sid={}", "x".repeat(MAX_SESSION_ID + 1))))
            .is_none());
        assert!(s.session_ref(&request("connect.sid=")).is_none());
        assert!(s.session_ref(&request("other=abc")).is_none());
    }

    #[test]
    fn debug_never_shows_the_session_id() {
        let s = source(CookieSignature::None);
        let r = s.session_ref(&request("connect.sid=topsecretid")).unwrap();
        assert!(!format!("{r:?}").contains("topsecretid"));
    }
}
