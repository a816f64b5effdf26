//! The rollout of one site: its mode (enforce, report only, off) and the share of users
//! in it, live, and which users are in that share.
//!
//! The live value is one atomic word, read once per request: the admin listener's
//! `PUT /rollout` stores a new one, and the next request on every thread sees it, with
//! no restart and no lock. It lasts until the process ends; a restart or an upgrade
//! reads the file again.
//!
//! A user is in the rollout when the bucket of their tag (see [`Slicer`]) is under the
//! percentage: the same user is in or out on every page, every instance and after a
//! restart, and widening the percentage only adds users.

use std::sync::atomic::{AtomicU32, Ordering};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::config::{RolloutConfig, RolloutMode};
use crate::metrics::METRICS;

/// The mode and percentage in force, as one request sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Live {
    /// What pages of users in the rollout get.
    pub(crate) mode: RolloutMode,
    /// Share of users in the rollout, 0 to 100.
    pub(crate) percent: u8,
}

impl Default for Live {
    /// Secure Mode for everyone, what a site without `rollout` runs.
    fn default() -> Self {
        Live { mode: RolloutMode::Enforce, percent: 100 }
    }
}

impl Live {
    /// Whether a user in `bucket` (0 to 99) is in the rollout.
    pub(crate) fn admits(self, bucket: u8) -> bool {
        bucket < self.percent
    }

    /// Whether every user is in, so no bucket needs to be known.
    pub(crate) fn everyone(self) -> bool {
        self.percent >= 100
    }

    /// The JSON the admin listener shows.
    pub(crate) fn to_json(self) -> serde_json::Value {
        serde_json::json!({"mode": self.mode.as_str(), "percent": self.percent})
    }

    fn pack(self) -> u32 {
        let mode = RolloutMode::ALL.iter().position(|m| *m == self.mode).unwrap_or(0) as u32;
        mode << 8 | u32::from(self.percent)
    }

    fn unpack(word: u32) -> Live {
        let mode = RolloutMode::ALL.get((word >> 8) as usize).copied().unwrap_or_default();
        Live { mode, percent: (word & 0xff) as u8 }
    }
}

/// One site's live rollout, shared by its Secure Mode and the admin listener.
pub(crate) struct LiveRollout {
    word: AtomicU32,
    /// The site as metrics and logs name it (its `name`, else its first host).
    site: String,
}

impl LiveRollout {
    /// The rollout the file configures for the site called `site`.
    pub(crate) fn new(config: &RolloutConfig, site: String) -> LiveRollout {
        let live = Live { mode: config.mode, percent: config.percent };
        let rollout = LiveRollout { word: AtomicU32::new(live.pack()), site };
        rollout.show(live);
        rollout
    }

    /// What is in force now: one atomic load.
    pub(crate) fn now(&self) -> Live {
        Live::unpack(self.word.load(Ordering::Acquire))
    }

    /// Puts `live` in force for the next request on every thread, logs the change and
    /// shows it in the metrics.
    pub(crate) fn set(&self, live: Live, by: &str) {
        let before = Live::unpack(self.word.swap(live.pack(), Ordering::AcqRel));
        log::warn!(
            "rollout of site {}: mode {} -> {}, percent {} -> {} ({by}; until the next restart)",
            self.site,
            before.mode.as_str(),
            live.mode.as_str(),
            before.percent,
            live.percent
        );
        self.show(live);
    }

    /// The site's name in metrics and logs.
    pub(crate) fn site(&self) -> &str {
        &self.site
    }

    fn show(&self, live: Live) {
        for mode in RolloutMode::ALL {
            METRICS
                .rollout_mode
                .with_label_values(&[&self.site, mode.as_str()])
                .set(i64::from(mode == live.mode));
        }
        METRICS.rollout_percent.with_label_values(&[&self.site]).set(i64::from(live.percent));
    }
}

/// Puts users in buckets 0 to 99 by an HMAC-SHA256 of their last-user tag (itself a
/// keyed hash of the user id, see [`crate::logout::cookies::UserTags`]), keyed by a key
/// derived from the Messenger secret: the bucket cannot be guessed from a user id
/// without the secret, and a browser that only has the last-user cookie (a visitor who
/// logged out) is in the bucket its user was in.
pub(crate) struct Slicer {
    key: [u8; 32],
}

impl Slicer {
    /// The slicer of one workspace's secret.
    pub(crate) fn new(secret: &[u8]) -> Slicer {
        let mut key = Sha256::new();
        key.update(b"intercom-secure-proxy rollout bucket\0");
        key.update(secret);
        Slicer { key: key.finalize().into() }
    }

    /// The bucket, 0 to 99, of the user whose last-user tag is `tag`.
    pub(crate) fn bucket(&self, tag: &str) -> u8 {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(tag.as_bytes());
        let digest = mac.finalize().into_bytes();
        let word =
            u64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 digest has 8 bytes"));
        // The high bits scaled to 0..100: no modulo bias worth the name.
        ((u128::from(word) * 100) >> 64) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logout::cookies::UserTags;

    #[test]
    fn the_live_word_round_trips_every_mode_and_percent() {
        for mode in RolloutMode::ALL {
            for percent in 0..=100 {
                let live = Live { mode, percent };
                assert_eq!(Live::unpack(live.pack()), live);
            }
        }
    }

    #[test]
    fn a_set_is_what_the_next_read_sees() {
        let config = RolloutConfig::default();
        let rollout = LiveRollout::new(&config, "unit-test-site".into());
        assert_eq!(rollout.now(), Live::default());
        rollout.set(Live { mode: RolloutMode::Off, percent: 30 }, "a test");
        assert_eq!(rollout.now(), Live { mode: RolloutMode::Off, percent: 30 });
    }

    #[test]
    fn thirty_percent_of_a_thousand_users_is_about_three_hundred_and_stable() {
        let secret = b"test-secret-0123456789abcdef-0123456789abcdef";
        let live = Live { mode: RolloutMode::Enforce, percent: 30 };
        let decide = |tags: &UserTags, slicer: &Slicer| -> Vec<bool> {
            (0..1000).map(|n| live.admits(slicer.bucket(&tags.tag(&format!("user-{n}"))))).collect()
        };
        let first = decide(&UserTags::new(secret), &Slicer::new(secret));
        let share = first.iter().filter(|in_| **in_).count();
        assert!((250..=350).contains(&share), "{share} of 1000 in a 30% rollout");
        // Built again (another process, a restart): the same decisions.
        assert_eq!(decide(&UserTags::new(secret), &Slicer::new(secret)), first);
        // Another workspace's secret slices otherwise.
        let other = b"another-secret-0123456789abcdef-0123456789abcdef";
        assert_ne!(decide(&UserTags::new(other), &Slicer::new(other)), first);
    }

    #[test]
    fn widening_only_adds_users_and_the_ends_are_everyone_and_no_one() {
        let slicer = Slicer::new(b"secret");
        let tags = UserTags::new(b"secret");
        for n in 0..500 {
            let bucket = slicer.bucket(&tags.tag(&format!("u{n}")));
            assert!(bucket < 100);
            let admitted: Vec<bool> = (0..=100)
                .map(|percent| Live { mode: RolloutMode::Enforce, percent }.admits(bucket))
                .collect();
            assert!(!admitted[0] && admitted[100]);
            assert!(admitted.windows(2).all(|w| w[0] <= w[1]), "in at p, in at every p above");
        }
    }
}
