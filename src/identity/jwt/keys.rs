//! Verification keys of one JWT source: fixed ones read at start (a JWKS file, a PEM
//! file, a shared secret), a JWKS fetched from a URL, or AWS ALB's PEM key per `kid`.
//!
//! Fetched keys are cached and fetched again on a schedule (`key_refresh`) and when a
//! token names a `kid` we do not know, at most once per `key_refetch_interval`: anyone
//! can send a token with a made-up `kid`, and each must not become a request to the
//! identity provider. A failed refresh keeps the keys we have; a rotation needs no
//! restart.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use super::fetch::{FetchError, KeyFetcher};
use crate::config::{pem_key, JwtVerifyConfig, KeySource};

/// One usable key.
pub struct KeyEntry {
    /// The JWK's `kid`; `None` for a lone key from a file or secret (it serves any `kid`).
    kid: Option<String>,
    /// The JWK's `alg`, when it names one: then only that algorithm may use the key.
    alg: Option<Algorithm>,
    key: Arc<DecodingKey>,
}

/// Why no key could be found for a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyError {
    /// No key has the token's `kid` (or, without a `kid`, no single key fits).
    #[error("no key for this token's kid")]
    UnknownKid,
    /// The keys could not be fetched and none are cached.
    #[error("keys unavailable: {0}")]
    Fetch(FetchError),
    /// No keys yet: the last fetch failed, the next waits for `key_refetch_interval`.
    #[error("keys unavailable: the last fetch failed; trying again after key_refetch_interval")]
    Unavailable,
    /// The fetched document holds no usable key.
    #[error("the key document holds no usable key")]
    Empty,
}

/// The keys of one source.
pub struct KeyStore {
    kind: Kind,
    fetcher: KeyFetcher,
    timeout: std::time::Duration,
    refresh: std::time::Duration,
    refetch_interval: std::time::Duration,
}

enum Kind {
    Fixed(Vec<KeyEntry>),
    Jwks {
        url: String,
        state: RwLock<Remote>,
        refreshing: tokio::sync::Mutex<()>,
    },
    Alb {
        base: String,
        keys: moka::future::Cache<String, Arc<DecodingKey>>,
        last_new_kid: Mutex<Option<Instant>>,
    },
}

#[derive(Default)]
struct Remote {
    keys: Arc<Vec<KeyEntry>>,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
}

impl KeyStore {
    /// The store for `config`'s key source.
    pub fn new(config: &JwtVerifyConfig) -> KeyStore {
        let family = config.algorithms.first().map(|a| a.family()).unwrap_or(AlgorithmFamily::Rsa);
        let kind = match &config.keys {
            KeySource::Secret(s) => Kind::Fixed(vec![KeyEntry {
                kid: None,
                alg: None,
                key: Arc::new(DecodingKey::from_secret(s.expose())),
            }]),
            KeySource::PublicKeyPem(pem) => Kind::Fixed(
                pem_key(pem, family)
                    .ok()
                    .map(|k| KeyEntry { kid: None, alg: None, key: Arc::new(k) })
                    .into_iter()
                    .collect(),
            ),
            KeySource::Jwks(set) => Kind::Fixed(jwks_entries(set)),
            KeySource::JwksUrl(url) => Kind::Jwks {
                url: url.clone(),
                state: RwLock::default(),
                refreshing: tokio::sync::Mutex::new(()),
            },
            KeySource::AlbKeyUrl(base) => Kind::Alb {
                base: base.clone(),
                keys: moka::future::Cache::builder()
                    .max_capacity(64)
                    .time_to_live(config.key_refresh)
                    .build(),
                last_new_kid: Mutex::new(None),
            },
        };
        KeyStore {
            kind,
            fetcher: KeyFetcher::default(),
            timeout: config.key_timeout,
            refresh: config.key_refresh,
            refetch_interval: config.key_refetch_interval,
        }
    }

    /// The key for a token with this header's `kid` and `alg`.
    pub async fn key(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<DecodingKey>, KeyError> {
        match &self.kind {
            Kind::Fixed(keys) => select(keys, kid, alg).ok_or(KeyError::UnknownKid),
            Kind::Jwks { url, state, refreshing } => {
                self.jwks_key(url, state, refreshing, kid, alg).await
            }
            Kind::Alb { base, keys, last_new_kid } => {
                self.alb_key(base, keys, last_new_kid, kid).await
            }
        }
    }

    async fn jwks_key(
        &self,
        url: &str,
        state: &RwLock<Remote>,
        refreshing: &tokio::sync::Mutex<()>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<DecodingKey>, KeyError> {
        let (keys, due, may_refetch) = {
            let s = state.read().unwrap_or_else(|p| p.into_inner());
            let since = |t: Option<Instant>| t.map(|t| t.elapsed());
            let may_refetch = since(s.attempted).is_none_or(|d| d >= self.refetch_interval);
            let stale = since(s.fetched).is_none_or(|d| d >= self.refresh);
            (s.keys.clone(), stale && may_refetch, may_refetch)
        };
        let mut failure = None;
        let keys = if due {
            match self.refresh_jwks(url, state, refreshing).await {
                Ok(k) => k,
                Err(e) => {
                    failure = Some(e);
                    keys
                }
            }
        } else {
            keys
        };
        if let Some(key) = select(&keys, kid, alg) {
            return Ok(key);
        }
        // A kid we do not know may be a rotation: look again, unless we just did.
        if kid.is_some() && may_refetch && !due {
            let keys = self.refresh_jwks(url, state, refreshing).await?;
            return select(&keys, kid, alg).ok_or(KeyError::UnknownKid);
        }
        match failure {
            Some(e) if keys.is_empty() => Err(e),
            None if keys.is_empty() => Err(KeyError::Unavailable),
            _ => Err(KeyError::UnknownKid),
        }
    }

    /// Fetches the JWKS once for everyone waiting (single flight): whoever waited for a
    /// fetch that just finished uses its result.
    async fn refresh_jwks(
        &self,
        url: &str,
        state: &RwLock<Remote>,
        refreshing: &tokio::sync::Mutex<()>,
    ) -> Result<Arc<Vec<KeyEntry>>, KeyError> {
        let started = Instant::now();
        let _guard = refreshing.lock().await;
        {
            let s = state.read().unwrap_or_else(|p| p.into_inner());
            if s.attempted.is_some_and(|t| t >= started) {
                return if s.keys.is_empty() { Err(KeyError::Empty) } else { Ok(s.keys.clone()) };
            }
        }
        let fetched = self.fetcher.get(url, self.timeout).await;
        let mut s = state.write().unwrap_or_else(|p| p.into_inner());
        s.attempted = Some(Instant::now());
        let body = fetched.map_err(|e| {
            crate::warn_limited!(
                "fetching the JWKS {url} failed ({e}); keeping the {} keys we have",
                s.keys.len()
            );
            KeyError::Fetch(e)
        })?;
        let entries = serde_json::from_slice::<JwkSet>(&body)
            .map(|set| jwks_entries(&set))
            .unwrap_or_default();
        if entries.is_empty() {
            crate::warn_limited!(
                "the JWKS at {url} holds no usable key; keeping the {} keys we have",
                s.keys.len()
            );
            return Err(KeyError::Empty);
        }
        s.keys = Arc::new(entries);
        s.fetched = Some(Instant::now());
        Ok(s.keys.clone())
    }

    async fn alb_key(
        &self,
        base: &str,
        keys: &moka::future::Cache<String, Arc<DecodingKey>>,
        last_new_kid: &Mutex<Option<Instant>>,
        kid: Option<&str>,
    ) -> Result<Arc<DecodingKey>, KeyError> {
        let kid = kid.filter(|k| is_safe_kid(k)).ok_or(KeyError::UnknownKid)?;
        if let Some(key) = keys.get(kid).await {
            return Ok(key);
        }
        {
            let mut last = last_new_kid.lock().unwrap_or_else(|p| p.into_inner());
            // Made-up kids (or an unreachable key server) cost at most one fetch per interval.
            if last.is_some_and(|t| t.elapsed() < self.refetch_interval) {
                // Nothing cached at all: the key server is what failed, not the token.
                return Err(if keys.entry_count() == 0 {
                    KeyError::Unavailable
                } else {
                    KeyError::UnknownKid
                });
            }
            *last = Some(Instant::now());
        }
        let url = format!("{base}/{kid}");
        keys.try_get_with(kid.to_string(), async {
            let pem = self.fetcher.get(&url, self.timeout).await.map_err(KeyError::Fetch)?;
            DecodingKey::from_ec_pem(&pem).map(Arc::new).map_err(|_| KeyError::Empty)
        })
        .await
        .map_err(|e| match &*e {
            KeyError::Fetch(FetchError::Status(404 | 403)) => KeyError::UnknownKid,
            other => other.clone(),
        })
    }
}

/// A `kid` that is safe to put in a URL path (ALB's are UUIDs).
fn is_safe_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= 128
        && kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The usable signing keys of a JWKS (unsupported types and `use: enc` keys are skipped).
fn jwks_entries(set: &JwkSet) -> Vec<KeyEntry> {
    set.keys
        .iter()
        // A key published for encryption is not a signing key.
        .filter(|jwk| {
            !matches!(jwk.common.public_key_use, Some(jsonwebtoken::jwk::PublicKeyUse::Encryption))
        })
        .filter_map(|jwk| {
            let key = DecodingKey::from_jwk(jwk).ok()?;
            let alg =
                jwk.common.key_algorithm.and_then(|a| a.to_string().parse::<Algorithm>().ok());
            Some(KeyEntry { kid: jwk.common.key_id.clone(), alg, key: Arc::new(key) })
        })
        .collect()
}

/// The key for `kid` and `alg`: with a `kid`, the key of that `kid` (or a lone key
/// without one); without, the only key that fits. Keys whose family or declared `alg`
/// does not fit the token's algorithm are never candidates.
fn select(keys: &[KeyEntry], kid: Option<&str>, alg: Algorithm) -> Option<Arc<DecodingKey>> {
    let fits = |e: &&KeyEntry| e.key.family() == alg.family() && e.alg.is_none_or(|a| a == alg);
    let mut candidates = keys.iter().filter(fits).filter(|e| match (kid, e.kid.as_deref()) {
        (Some(want), Some(have)) => want == have,
        (_, None) => true,
        (None, Some(_)) => true,
    });
    let first = candidates.next()?;
    // Without a kid, two fitting keys are a guess.
    if kid.is_none() && candidates.next().is_some() {
        return None;
    }
    Some(first.key.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_kids_go_into_a_key_url() {
        assert!(is_safe_kid("5d6e1b2a-4c7f-4a4e-9a61-0b9c1d2e3f40"));
        for bad in ["", "../../etc/passwd", "a/b", "a?b", "a#b", "%2e%2e", "a b", &"k".repeat(129)]
        {
            assert!(!is_safe_kid(bad), "{bad}");
        }
    }

    #[test]
    fn without_a_kid_two_fitting_keys_are_no_key() {
        let hmac = |s: &[u8]| KeyEntry {
            kid: None,
            alg: None,
            key: Arc::new(DecodingKey::from_secret(s)),
        };
        assert!(select(&[hmac(b"a")], None, Algorithm::HS256).is_some());
        assert!(select(&[hmac(b"a"), hmac(b"b")], None, Algorithm::HS256).is_none());
        assert!(
            select(&[hmac(b"a")], None, Algorithm::RS256).is_none(),
            "an HMAC key never verifies RS256"
        );
        let pinned = KeyEntry {
            kid: Some("k".into()),
            alg: Some(Algorithm::HS512),
            key: Arc::new(DecodingKey::from_secret(b"c")),
        };
        assert!(
            select(&[pinned], Some("k"), Algorithm::HS256).is_none(),
            "a JWK's alg binds its key"
        );
    }
}
