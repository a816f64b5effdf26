//! The shared identity cache (`identity.shared_cache`): what current-user endpoints
//! answered, in one Redis for every instance of the proxy.
//!
//! - Entries are named by an HMAC of the session digest under a key derived from the
//!   Intercom secret: a name reveals nothing, and cannot be computed from a cookie
//!   without the secret.
//! - Values are sealed (XChaCha20-Poly1305, the entry's name as associated data): Redis
//!   never holds a cookie, and whoever can write to Redis can neither read an identity
//!   nor plant one, nor move one entry to another session. An entry that does not open
//!   is a miss.
//! - Each value seals its own expiry (an absolute time, `cache_ttl` or
//!   `negative_cache_ttl` after it was stored) and is a miss past it, whatever TTL Redis
//!   gives it: a writer who replays a saved value, or `PERSIST`s a live one, cannot keep
//!   a session signed in past a logout. Values sealed without an expiry (an older
//!   version's) do not open.
//! - On a miss, one instance claims the session (`SET NX PX`), looks once more (an
//!   answer may have landed since its first look), and asks the app; the others poll
//!   for its answer, and take over when the claim expires (its holder died)
//!   or is released without an answer (the app failed). So the app sees one call per
//!   session, not one per instance.
//! - Redis failing never costs an identity: the instance asks the app itself.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::redis_store::{Store, StoreError};
use super::session_cache::Cached;
use super::Identity;
use crate::config::{subkey, SharedCacheConfig};
use crate::metrics::METRICS;

/// How often a waiting instance looks for another instance's answer.
const POLL: Duration = Duration::from_millis(10);
/// Nonce length of XChaCha20-Poly1305.
const NONCE: usize = 24;
/// Bound into every value with its entry's name, so values of the format before the
/// sealed expiry do not open.
const FORMAT: &[u8] = b"isp-identity v2\0";
/// How far apart the instances' clocks may be before an entry sealed by one looks to
/// another as if it outlived its lifetime.
const CLOCK_SKEW: Duration = Duration::from_secs(1);

/// The shared cache of one site.
pub(super) struct SharedCache {
    store: Store,
    names: Hmac<Sha256>,
    seal: XChaCha20Poly1305,
}

/// The Redis keys of one session's entry.
pub(super) struct Entry {
    value: String,
    claim: String,
}

/// How long entries live, and how long one instance may take to ask the app.
pub(super) struct Lifetimes {
    /// A found user.
    pub(super) found: Duration,
    /// "Not logged in".
    pub(super) anonymous: Duration,
    /// The endpoint's timeout: how long a claim holds.
    pub(super) fetch: Duration,
}

impl Lifetimes {
    /// How long an answer lives: a found user's or "not logged in"'s.
    fn of(&self, cached: &Cached) -> Duration {
        if cached.is_some() {
            self.found
        } else {
            self.anonymous
        }
    }
}

/// What a value in Redis turned out to be.
#[derive(Debug, PartialEq)]
enum Opened {
    Fresh(Cached),
    /// Past its sealed expiry, or sealed to live longer than this instance allows.
    Expired,
    /// Tampered with, another session's, another secret's, or an older format.
    Unreadable,
}

impl SharedCache {
    pub(super) fn new(config: &SharedCacheConfig) -> Self {
        let key = config.key.expose();
        SharedCache {
            store: Store::new(
                config.redis.clone(),
                config.tls_ca.clone(),
                config.auth.clone(),
                config.timeout,
            ),
            names: <Hmac<Sha256> as Mac>::new_from_slice(&subkey(key, b"names"))
                .expect("HMAC takes keys of any length"),
            seal: XChaCha20Poly1305::new(&subkey(key, b"seal").into()),
        }
    }

    /// The entry of a session of the source named `scope` (its endpoint path).
    pub(super) fn entry(&self, scope: &str, digest: &[u8; 32]) -> Entry {
        let mut mac = self.names.clone();
        mac.update(scope.as_bytes());
        mac.update(b"\0");
        mac.update(digest);
        let name = format!("isp:identity:{}", hex::encode(mac.finalize().into_bytes()));
        Entry { claim: format!("{name}:claim"), value: name }
    }

    /// The cached answer, or `fetch`'s (stored for the other instances).
    pub(super) async fn get_or_fetch<F, Fut, E>(
        &self,
        entry: &Entry,
        life: &Lifetimes,
        fetch: F,
    ) -> Result<Cached, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Cached, E>>,
    {
        let deadline = Instant::now() + life.fetch * 2;
        loop {
            match self.read(entry, life).await {
                Ok(Some(cached)) => {
                    METRICS.shared_cache.with_label_values(&["hit"]).inc();
                    return Ok(cached);
                }
                Ok(None) => {}
                Err(why) => return self.unshared("error", why, fetch).await,
            }
            match self.store.claim(&entry.claim, life.fetch).await {
                Ok(true) => {
                    // Another instance may have answered and released its claim between
                    // our read and our claim: look once more before asking the app.
                    if let Ok(Some(cached)) = self.read(entry, life).await {
                        let _ = self.store.delete(&[&entry.claim]).await;
                        METRICS.shared_cache.with_label_values(&["hit"]).inc();
                        return Ok(cached);
                    }
                    METRICS.shared_cache.with_label_values(&["miss"]).inc();
                    return self.fetch_and_share(entry, life, fetch).await;
                }
                Ok(false) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
                // Waited for two claims' worth: something is wrong with the others.
                Ok(false) => {
                    return self
                        .unshared("gave_up_waiting", "no other instance answered in time", fetch)
                        .await
                }
                Err(why) => return self.unshared("error", why, fetch).await,
            }
        }
    }

    /// Forgets the session everywhere (on login, logout or a user switch).
    pub(super) async fn forget(&self, entry: &Entry) {
        if let Err(why) = self.store.delete(&[&entry.value, &entry.claim]).await {
            crate::warn_limited!("shared identity cache: could not forget a session ({why}); other instances keep it until it expires");
        }
    }

    async fn fetch_and_share<F, Fut, E>(
        &self,
        entry: &Entry,
        life: &Lifetimes,
        fetch: F,
    ) -> Result<Cached, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Cached, E>>,
    {
        let fetched = fetch().await;
        if let Ok(cached) = &fetched {
            let ttl = life.of(cached);
            let value = self.sealed(entry, cached, unix_ms(SystemTime::now() + ttl));
            if let Err(why) = self.store.set(&entry.value, &value, ttl).await {
                crate::warn_limited!("shared identity cache: could not store an answer ({why})");
            }
        }
        // Released either way: after an answer the others find it; after a failure one
        // of them tries the app itself.
        let _ = self.store.delete(&[&entry.claim]).await;
        fetched
    }

    /// Asks the app without the other instances, counting why under `result`.
    async fn unshared<F, Fut, E>(
        &self,
        result: &'static str,
        why: impl std::fmt::Display,
        fetch: F,
    ) -> Result<Cached, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Cached, E>>,
    {
        METRICS.shared_cache.with_label_values(&[result]).inc();
        crate::warn_limited!("shared identity cache: {why}; asking the app directly");
        fetch().await
    }

    /// The entry's answer: `None` when there is none, or none that opens and is fresh.
    async fn read(&self, entry: &Entry, life: &Lifetimes) -> Result<Option<Cached>, StoreError> {
        let Some(bytes) = self.store.get(&entry.value).await? else { return Ok(None) };
        match self.open(entry, &bytes, life, unix_ms(SystemTime::now())) {
            Opened::Fresh(cached) => return Ok(Some(cached)),
            Opened::Expired => crate::warn_limited!(
                "shared identity cache: an entry outlived its sealed expiry (kept by PERSIST or replayed, or the instances' clocks differ); asking the app"
            ),
            Opened::Unreadable => crate::warn_limited!(
                "shared identity cache: an entry does not open (tampered with, not ours, or sealed by an older version); asking the app"
            ),
        }
        Ok(None)
    }

    /// `cached` sealed for `entry`, with its expiry (Unix milliseconds) inside.
    fn sealed(&self, entry: &Entry, cached: &Cached, expires: u64) -> Vec<u8> {
        let plain = [
            &expires.to_be_bytes()[..],
            &serde_json::to_vec(&cached.as_deref()).expect("identities serialize"),
        ]
        .concat();
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .seal
            .encrypt(&nonce, Payload { msg: &plain, aad: &associated_data(entry) })
            .expect("sealing in memory does not fail");
        [&nonce[..], &sealed].concat()
    }

    /// Opens a value of `entry` at `now` (Unix milliseconds).
    fn open(&self, entry: &Entry, bytes: &[u8], life: &Lifetimes, now: u64) -> Opened {
        let Some((expires, cached)) = self.unseal(entry, bytes) else { return Opened::Unreadable };
        if fresh(expires, life.of(&cached), now) {
            Opened::Fresh(cached)
        } else {
            Opened::Expired
        }
    }

    /// The expiry and answer sealed in a value of `entry`.
    fn unseal(&self, entry: &Entry, bytes: &[u8]) -> Option<(u64, Cached)> {
        if bytes.len() < NONCE {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE);
        let nonce: [u8; NONCE] = nonce.try_into().ok()?;
        let plain = self
            .seal
            .decrypt(&XNonce::from(nonce), Payload { msg: sealed, aad: &associated_data(entry) })
            .ok()?;
        let (expires, identity) = plain.split_first_chunk::<8>()?;
        let identity: Option<Identity> = serde_json::from_slice(identity).ok()?;
        Some((u64::from_be_bytes(*expires), identity.map(Arc::new)))
    }
}

/// What a value is bound to besides its key: the format and the entry's name.
fn associated_data(entry: &Entry) -> Vec<u8> {
    [FORMAT, entry.value.as_bytes()].concat()
}

/// Whether a value sealed to expire at `expires` may answer at `now` (Unix
/// milliseconds): before that time, and not sealed to live longer than `ttl` from now
/// (an instance with a longer `cache_ttl` than this one, or the clocks apart by more
/// than [`CLOCK_SKEW`]).
fn fresh(expires: u64, ttl: Duration, now: u64) -> bool {
    let longest =
        now.saturating_add(u64::try_from((ttl + CLOCK_SKEW).as_millis()).unwrap_or(u64::MAX));
    now < expires && expires <= longest
}

/// `time` in milliseconds since the Unix epoch.
fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn cache(secret: &[u8]) -> SharedCache {
        SharedCache::new(&SharedCacheConfig::new(
            "redis://127.0.0.1:1/",
            &Secret::new(secret.to_vec()),
        ))
    }

    fn alice() -> Cached {
        let mut id = Identity::new("alice");
        id.email = Some("alice@example.com".into());
        id.attributes.insert("plan".into(), serde_json::json!("pro"));
        Some(Arc::new(id))
    }

    const NOW: u64 = 1_800_000_000_000;

    fn lifetimes() -> Lifetimes {
        Lifetimes {
            found: Duration::from_secs(60),
            anonymous: Duration::from_secs(5),
            fetch: Duration::from_secs(1),
        }
    }

    #[test]
    fn entries_open_only_under_their_own_name_and_key() {
        let c = cache(b"secret-one");
        let a = c.entry("/api/me", &[1; 32]);
        let b = c.entry("/api/me", &[2; 32]);
        let sealed = c.sealed(&a, &alice(), NOW + 1000);
        let life = lifetimes();
        assert_eq!(c.open(&a, &sealed, &life, NOW), Opened::Fresh(alice()));
        assert_eq!(c.open(&a, &c.sealed(&a, &None, NOW + 1000), &life, NOW), Opened::Fresh(None));
        assert_eq!(c.open(&b, &sealed, &life, NOW), Opened::Unreadable, "moved to another session");
        assert_eq!(
            cache(b"secret-two").open(&a, &sealed, &life, NOW),
            Opened::Unreadable,
            "another secret"
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(c.open(&a, &tampered, &life, NOW), Opened::Unreadable);
        assert_eq!(c.open(&a, b"short", &life, NOW), Opened::Unreadable);
    }

    #[test]
    fn entries_are_refused_past_their_sealed_expiry_or_beyond_their_lifetime() {
        let c = cache(b"secret-one");
        let a = c.entry("/api/me", &[1; 32]);
        let life = lifetimes();
        let found = |expires| c.open(&a, &c.sealed(&a, &alice(), expires), &life, NOW);
        assert_eq!(found(NOW + 60_000), Opened::Fresh(alice()));
        assert_eq!(found(NOW), Opened::Expired, "past its expiry");
        assert_eq!(
            found(NOW + 61_001),
            Opened::Expired,
            "sealed to live longer than cache_ttl (and the clock skew)"
        );
        let anonymous = |expires| c.open(&a, &c.sealed(&a, &None, expires), &life, NOW);
        assert_eq!(anonymous(NOW + 5_000), Opened::Fresh(None));
        assert_eq!(
            anonymous(NOW + 60_000),
            Opened::Expired,
            "\"not logged in\" lives negative_cache_ttl"
        );
    }

    #[test]
    fn values_of_the_format_without_a_sealed_expiry_do_not_open() {
        let c = cache(b"secret-one");
        let a = c.entry("/api/me", &[1; 32]);
        // The previous format: the JSON alone, bound to the entry's name alone.
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let plain = serde_json::to_vec(&alice().as_deref()).unwrap();
        let old = c.seal.encrypt(&nonce, Payload { msg: &plain, aad: a.value.as_bytes() }).unwrap();
        assert_eq!(c.open(&a, &[&nonce[..], &old].concat(), &lifetimes(), NOW), Opened::Unreadable);
    }

    #[test]
    fn names_depend_on_the_secret_the_scope_and_the_session_and_hold_no_plaintext() {
        let c = cache(b"secret-one");
        let name = c.entry("/api/me", &[1; 32]).value;
        assert!(
            name.starts_with("isp:identity:") && name.len() == "isp:identity:".len() + 64,
            "{name}"
        );
        assert_ne!(name, c.entry("/api/other", &[1; 32]).value);
        assert_ne!(name, c.entry("/api/me", &[2; 32]).value);
        assert_ne!(name, cache(b"secret-two").entry("/api/me", &[1; 32]).value);
        let sealed = c.sealed(&c.entry("/api/me", &[1; 32]), &alice(), NOW);
        assert!(!sealed.windows(5).any(|w| w == b"alice"), "the value is not readable");
    }
}
