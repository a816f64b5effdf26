//! The per-session answer cache of the `current_user_endpoint` and `redis_session`
//! sources: who a session belongs to, or "nobody", with single-flight.
//!
//! Found users and "nobody" live for different times. Forgetting a session (a login or
//! logout the proxy saw) moves it to a new *generation*, and answers are kept per
//! session and generation: a lookup still in flight from before lands under the old
//! generation, where no one reads it, and no request after the move joins it. So once
//! a forget has returned, the session's next lookup asks afresh.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;

use super::Identity;

/// A cached answer: the user, or `None` for "not logged in".
pub(super) type Cached = Option<Arc<Identity>>;

/// A session's cache key (a digest of its cookies or Redis key) and its generation.
type Key = ([u8; 32], u64);

/// How long answers live, and how long one lookup may take.
pub(super) struct Lifetimes {
    /// A found user.
    pub(super) found: Duration,
    /// "Not logged in".
    pub(super) anonymous: Duration,
    /// The longest a lookup can run (its timeouts, waits included).
    pub(super) lookup: Duration,
}

/// Found identities and "logged out" answers live for different times.
struct TtlPolicy {
    found: Duration,
    anonymous: Duration,
}

impl Expiry<Key, Cached> for TtlPolicy {
    fn expire_after_create(&self, _: &Key, value: &Cached, _: Instant) -> Option<Duration> {
        Some(if value.is_some() { self.found } else { self.anonymous })
    }
}

/// What forgetting a session drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forget {
    /// Whatever the session's answer is (a logout, a new session cookie).
    Everything,
    /// Only a "nobody" (a login that may have kept the session id). A user stays who
    /// they are until a logout or a new session cookie: dropping them on every unsafe
    /// request would cost a lookup per form post.
    Nobody,
}

/// One source's answers, per session.
pub(super) struct SessionCache {
    answers: Cache<Key, Cached>,
    /// Each forgotten session's generation; absent means 0.
    generations: Cache<[u8; 32], u64>,
    /// Where new generations come from: one counter, so a generation is never reused,
    /// even for a session whose number expired.
    clock: AtomicU64,
}

impl SessionCache {
    /// A cache of at most `capacity` sessions.
    pub(super) fn new(capacity: u64, life: &Lifetimes) -> Self {
        // A generation outlives every answer and lookup of the generation before it, so a
        // session whose number expired (back to 0) finds nothing from before its forget.
        let generation_life = life.found.max(life.anonymous) + life.lookup;
        SessionCache {
            answers: Cache::builder()
                .max_capacity(capacity)
                .expire_after(TtlPolicy { found: life.found, anonymous: life.anonymous })
                .build(),
            generations: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(generation_life)
                .build(),
            clock: AtomicU64::new(0),
        }
    }

    /// The session's current generation.
    pub(super) async fn generation(&self, digest: &[u8; 32]) -> u64 {
        self.generations.get(digest).await.unwrap_or(0)
    }

    /// The session's answer, or `load`'s (given the generation it answers for), and
    /// whether this call ran `load` (a miss; a call that waited for another's load counts
    /// as a hit). The load's future is boxed, and made only on a miss: it holds the whole
    /// exchange with the app or Redis, too large to nest in every request's future (debug
    /// builds overflowed Pingora's stack).
    pub(super) async fn get_or_load<E, F>(
        &self,
        digest: &[u8; 32],
        load: impl FnOnce(u64) -> F,
    ) -> (Result<Cached, Arc<E>>, bool)
    where
        E: Send + Sync + 'static,
        F: Future<Output = Result<Cached, E>> + Send,
    {
        let generation = self.generation(digest).await;
        let loaded = AtomicBool::new(false);
        let answer = self
            .answers
            .try_get_with((*digest, generation), async {
                loaded.store(true, Ordering::Relaxed);
                Box::pin(load(generation)).await
            })
            .await;
        (answer, loaded.load(Ordering::Relaxed))
    }

    /// Forgets the session's answer, or with [`Forget::Nobody`] only a "nobody";
    /// returns whether it did.
    pub(super) async fn forget(&self, digest: &[u8; 32], what: Forget) -> bool {
        let generation = self.generation(digest).await;
        if what == Forget::Nobody
            && matches!(self.answers.get(&(*digest, generation)).await, Some(Some(_)))
        {
            return false;
        }
        self.move_on(digest, generation).await;
        true
    }

    /// Puts an answer that came after its request stopped waiting (see `late`), for the
    /// generation it was asked for.
    pub(super) async fn put(&self, digest: &[u8; 32], generation: u64, answer: Cached) {
        self.answers.insert((*digest, generation), answer).await;
    }

    /// Whether the session was forgotten since `generation` was current.
    pub(super) async fn forgotten_since(&self, digest: &[u8; 32], generation: u64) -> bool {
        self.generation(digest).await != generation
    }

    /// Moves the session to a new generation, and drops the answer of the one it had.
    async fn move_on(&self, digest: &[u8; 32], from: u64) {
        let next = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        self.generations.insert(*digest, next).await;
        self.answers.invalidate(&(*digest, from)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    const SESSION: [u8; 32] = [7; 32];

    fn cache() -> SessionCache {
        let life = Lifetimes {
            found: Duration::from_secs(60),
            anonymous: Duration::from_secs(60),
            lookup: Duration::from_secs(1),
        };
        SessionCache::new(100, &life)
    }

    async fn answer(cache: &SessionCache, value: Cached) -> (Cached, bool) {
        let (answer, loaded) = cache.get_or_load(&SESSION, |_| async { Ok::<_, ()>(value) }).await;
        (answer.unwrap(), loaded)
    }

    fn alice() -> Cached {
        Some(Arc::new(Identity::new("alice")))
    }

    #[tokio::test]
    async fn forgetting_nobody_keeps_a_user() {
        let cache = cache();
        assert_eq!(answer(&cache, None).await, (None, true));
        assert_eq!(answer(&cache, alice()).await, (None, false), "cached");
        assert!(cache.forget(&SESSION, Forget::Nobody).await);
        assert_eq!(answer(&cache, alice()).await, (alice(), true), "asked afresh");
        assert!(!cache.forget(&SESSION, Forget::Nobody).await);
        assert_eq!(answer(&cache, None).await, (alice(), false), "the user is kept");
        assert!(cache.forget(&SESSION, Forget::Everything).await);
        assert_eq!(answer(&cache, None).await, (None, true), "forget drops a user too");
    }

    #[tokio::test]
    async fn a_lookup_in_flight_when_the_session_is_forgotten_answers_no_one_after() {
        let cache = Arc::new(cache());
        let (started, has_started) = oneshot::channel::<()>();
        let (release, released) = oneshot::channel::<()>();
        let before = {
            let cache = cache.clone();
            tokio::spawn(async move {
                let load = move |_| async move {
                    started.send(()).unwrap();
                    released.await.unwrap();
                    Ok::<_, ()>(None)
                };
                cache.get_or_load(&SESSION, load).await.0.unwrap()
            })
        };
        has_started.await.unwrap();
        assert!(cache.forget(&SESSION, Forget::Nobody).await);
        assert!(cache.forgotten_since(&SESSION, 0).await);
        let after = {
            let cache = cache.clone();
            tokio::spawn(async move { answer(&cache, alice()).await })
        };
        release.send(()).unwrap();
        assert_eq!(before.await.unwrap(), None, "the old lookup answers its own request");
        assert_eq!(
            after.await.unwrap(),
            (alice(), true),
            "a lookup after the forget does not join it"
        );
        assert_eq!(
            answer(&cache, None).await,
            (alice(), false),
            "nor does its answer replace the new one"
        );
    }
}
