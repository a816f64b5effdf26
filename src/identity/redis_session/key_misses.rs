//! Notices a `key` pattern that never matches. A session that is not in Redis is
//! normal now and then (expired, destroyed elsewhere); when the last [`WINDOW`]
//! sessions that sent the cookie were all missing, the pattern most likely does not
//! name what the app writes (a prefix or a version left out, the wrong `/db`), and
//! every page is going out without a token while looking healthy.

use std::collections::HashSet;
use std::sync::Mutex;

/// Distinct sessions that must all be missing before the pattern is suspect: enough
/// that expired sessions alone do not get there, few enough to warn within minutes.
pub const WINDOW: usize = 20;

/// What one missing session means for the pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// Counted; the window is not full yet.
    Counted,
    /// This miss completed a window of [`WINDOW`] distinct sessions, all missing;
    /// `newly` when the pattern was not suspect before.
    AllMissing {
        /// Whether this is the first full window since a key was last found.
        newly: bool,
    },
}

/// The missing sessions since a key was last found, by their digest (never the id).
pub struct KeyMisses(Mutex<Streak>);

struct Streak {
    sessions: HashSet<[u8; 32]>,
    suspect: bool,
}

impl KeyMisses {
    /// No misses yet.
    pub fn new() -> Self {
        KeyMisses(Mutex::new(Streak { sessions: HashSet::new(), suspect: false }))
    }

    /// A session's key was missing. The same session missing again does not count
    /// twice: one visitor reloading a page with a stale cookie is not a wrong pattern.
    pub fn missing(&self, session: [u8; 32]) -> Miss {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.sessions.insert(session);
        if s.sessions.len() < WINDOW {
            return Miss::Counted;
        }
        // A new window starts, so a pattern that stays wrong is reported again.
        s.sessions.clear();
        let newly = !std::mem::replace(&mut s.suspect, true);
        Miss::AllMissing { newly }
    }

    /// A session's key was found: the pattern matches. `true` when it was suspect.
    pub fn found(&self) -> bool {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.sessions.clear();
        std::mem::replace(&mut s.suspect, false)
    }
}

impl Default for KeyMisses {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(n: usize) -> [u8; 32] {
        let mut d = [0u8; 32];
        d[..8].copy_from_slice(&(n as u64).to_le_bytes());
        d
    }

    #[test]
    fn a_window_of_distinct_missing_sessions_makes_the_pattern_suspect() {
        let misses = KeyMisses::new();
        for n in 0..WINDOW - 1 {
            assert_eq!(misses.missing(session(n)), Miss::Counted);
        }
        assert_eq!(misses.missing(session(WINDOW - 1)), Miss::AllMissing { newly: true });
        for n in 0..WINDOW - 1 {
            assert_eq!(misses.missing(session(100 + n)), Miss::Counted);
        }
        assert_eq!(misses.missing(session(200)), Miss::AllMissing { newly: false });
        assert!(misses.found(), "it was suspect");
        assert!(!misses.found());
    }

    #[test]
    fn the_same_session_missing_again_counts_once() {
        let misses = KeyMisses::new();
        for _ in 0..WINDOW * 3 {
            assert_eq!(misses.missing(session(7)), Miss::Counted);
        }
    }

    #[test]
    fn one_found_key_starts_the_window_over() {
        let misses = KeyMisses::new();
        for n in 0..WINDOW - 1 {
            misses.missing(session(n));
        }
        assert!(!misses.found());
        for n in 0..WINDOW - 1 {
            assert_eq!(misses.missing(session(n)), Miss::Counted);
        }
    }
}
