//! Lookups that outlive their timeout.
//!
//! A page cannot wait for a slow source: past the source's `timeout` it is served
//! without a token, and its script asks the refresh path again a moment later
//! (`inject.on_identity_failure: defer`). If the slow lookup were dropped at the
//! timeout, every retry would start one more and time out the same way. So each lookup
//! runs as a task of its own: the request waits for it at most `timeout`, the task goes
//! on (up to [`LATE_BOUND`]) and puts its answer in the session's cache, where the retry
//! finds it. While one runs for a session, later lookups of that session (and of the
//! same generation: not after a login or logout the proxy saw) wait for it rather than
//! ask again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::session_cache::{Cached, SessionCache};

/// The longest a lookup may go on after the request that started it stopped waiting.
pub(super) const LATE_BOUND: Duration = Duration::from_secs(10);

/// One session's running lookup: its answer, once it has one.
type Answer<E> = watch::Receiver<Option<Result<Cached, E>>>;

/// The digest that keys a session's cache, and the generation a lookup answers for.
type LookupKey = ([u8; 32], u64);

/// The lookups running per session and generation (the digest that keys the session's
/// cache, and the generation a lookup answers for: one started before a login the proxy
/// saw is no answer after it).
pub(super) struct LateLookups<E> {
    running: Mutex<HashMap<LookupKey, Answer<E>>>,
}

impl<E: Clone + Send + Sync + 'static> LateLookups<E> {
    /// No lookup running.
    pub(super) fn new() -> Arc<Self> {
        Arc::new(LateLookups { running: Mutex::new(HashMap::new()) })
    }

    /// The answer of the session's running lookup, or of `fetch` started as a task, if
    /// it comes `within`; `timed_out` otherwise. A task's answer, whenever it comes, is
    /// put in `cache` for the session's `generation` (where no one reads it once the
    /// session was forgotten since).
    pub(super) async fn ask<F>(
        self: &Arc<Self>,
        cache: &Arc<SessionCache>,
        digest: [u8; 32],
        generation: u64,
        within: Duration,
        timed_out: E,
        fetch: F,
    ) -> Result<Cached, E>
    where
        F: Future<Output = Result<Cached, E>> + Send + 'static,
    {
        let mut answer = self.running_or_start(cache, digest, generation, timed_out.clone(), fetch);
        let waited = tokio::time::timeout(within, answer.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(done)) => done.clone().unwrap_or(Err(timed_out)),
            _ => Err(timed_out),
        }
    }

    fn running_or_start<F>(
        self: &Arc<Self>,
        cache: &Arc<SessionCache>,
        digest: [u8; 32],
        generation: u64,
        bounded: E,
        fetch: F,
    ) -> Answer<E>
    where
        F: Future<Output = Result<Cached, E>> + Send + 'static,
    {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(answer) = running.get(&(digest, generation)) {
            return answer.clone();
        }
        let (tx, rx) = watch::channel(None);
        running.insert((digest, generation), rx.clone());
        let (me, cache) = (self.clone(), cache.clone());
        tokio::spawn(async move {
            let answer = tokio::time::timeout(LATE_BOUND, fetch).await.unwrap_or(Err(bounded));
            if let Ok(found) = &answer {
                cache.put(&digest, generation, found.clone()).await;
            }
            me.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&(digest, generation));
            let _ = tx.send(Some(answer));
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::session_cache::Lifetimes;
    use crate::identity::Identity;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const SESSION: [u8; 32] = [9; 32];

    #[tokio::test]
    async fn a_lookup_past_its_timeout_goes_on_once_and_fills_the_cache() {
        let life = Lifetimes {
            found: Duration::from_secs(60),
            anonymous: Duration::from_secs(60),
            lookup: Duration::from_secs(1),
        };
        let cache = Arc::new(SessionCache::new(100, &life));
        let late = LateLookups::<&'static str>::new();
        let fetches = Arc::new(AtomicUsize::new(0));
        let slow = |n: Arc<AtomicUsize>| async move {
            n.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(150)).await;
            Ok(Some(Arc::new(Identity::new("alice"))))
        };
        let within = Duration::from_millis(20);
        let first = late.ask(&cache, SESSION, 0, within, "timed out", slow(fetches.clone())).await;
        let second = late.ask(&cache, SESSION, 0, within, "timed out", slow(fetches.clone())).await;
        assert_eq!((first.is_err(), second.is_err()), (true, true));
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "the second lookup waited for the first");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (answer, loaded) =
            cache.get_or_load(&SESSION, |_| async { Err::<Cached, _>("not asked") }).await;
        assert_eq!(answer.unwrap().unwrap().user_id, "alice");
        assert!(!loaded, "the late answer was in the cache");
        // Another generation (after a login the proxy saw) does not join an old lookup.
        let third = late
            .ask(&cache, SESSION, 1, Duration::from_secs(1), "timed out", slow(fetches.clone()))
            .await;
        assert!(third.is_ok());
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }
}
