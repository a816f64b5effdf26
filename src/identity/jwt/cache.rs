//! Tokens already verified, by SHA-256 (the token itself is never a key): a page of
//! the same session skips the signature check (tens to hundreds of µs for RS256 and
//! ES256) until the token's `exp` (with the leeway, as verification allows) or
//! [`VERIFIED_TTL`], whichever is first; so a key removed from the JWKS stops being
//! honoured within that time. Refused tokens are not cached: they cost a verification
//! each, like any request that carries garbage.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::super::Identity;

/// How long a verified token is trusted without verifying it again.
pub const VERIFIED_TTL: Duration = Duration::from_secs(60);
/// Verified tokens kept per source.
pub const VERIFIED_CAPACITY: u64 = 100_000;

/// Verified tokens of one source.
pub struct VerifiedCache {
    entries: moka::sync::Cache<[u8; 32], (Arc<Identity>, u64)>,
    leeway: u64,
}

impl VerifiedCache {
    /// An empty cache; `leeway` is the source's, in seconds.
    pub fn new(leeway: Duration) -> VerifiedCache {
        VerifiedCache {
            entries: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .time_to_live(VERIFIED_TTL)
                .build(),
            leeway: leeway.as_secs(),
        }
    }

    /// The identity of a token verified before and not expired since.
    pub fn get(&self, token: &str) -> Option<Arc<Identity>> {
        let key = digest(token);
        let (identity, exp) = self.entries.get(&key)?;
        if exp.saturating_add(self.leeway) < now() {
            self.entries.invalidate(&key);
            return None;
        }
        Some(identity)
    }

    /// Remembers a verified token whose claims say it expires at `exp` (a token without
    /// a numeric `exp` is not remembered).
    pub fn insert(&self, token: &str, identity: Arc<Identity>, exp: Option<u64>) {
        if let Some(exp) = exp {
            self.entries.insert(digest(token), (identity, exp));
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_token_ends_at_its_exp_and_one_without_exp_is_not_kept() {
        let cache = VerifiedCache::new(Duration::from_secs(30));
        let alice = Arc::new(Identity::new("alice"));
        cache.insert("live", alice.clone(), Some(now() + 60));
        cache.insert("expired", alice.clone(), Some(now() - 31));
        cache.insert("in-leeway", alice.clone(), Some(now() - 10));
        cache.insert("no-exp", alice, None);
        assert_eq!(cache.get("live").map(|i| i.user_id.clone()).as_deref(), Some("alice"));
        assert!(cache.get("expired").is_none());
        assert!(cache.get("in-leeway").is_some(), "the same leeway as verification");
        assert!(cache.get("no-exp").is_none());
        assert!(cache.get("other").is_none());
    }
}
