//! The rollout's slice (`rollout::Slicer` with the last-user tags, as Secure Mode uses
//! them) on arbitrary user ids and secrets: a bucket is 0 to 99, the same when worked
//! out again (another process, a restart), the same from a logged-out browser's cookie
//! as from the user, and a user in at one percentage is in at every higher one.

use proptest::prelude::*;

use super::check;
use crate::config::RolloutMode;
use crate::logout::cookies::UserTags;
use crate::rollout::{Live, Slicer};

#[test]
fn a_users_bucket_is_stable_the_same_from_the_cookie_and_only_widens() {
    let input =
        (any::<String>(), proptest::collection::vec(any::<u8>(), 1..64), 0u8..=100, 0u8..=100);
    check("rollout slice", input, |(user, secret, a, b)| {
        let tags = UserTags::new(&secret);
        let user_tag = tags.user(&user);
        let bucket = user_tag.bucket();
        prop_assert!(bucket < 100);
        // Built again from the same secret: the same bucket.
        prop_assert_eq!(Slicer::new(&secret).bucket(&UserTags::new(&secret).tag(&user)), bucket);
        // A browser with only the last-user cookie is in its user's bucket.
        prop_assert_eq!(tags.bucket_of(user_tag.as_str()), bucket);
        let (low, high) = (a.min(b), a.max(b));
        let admits = |percent| Live { mode: RolloutMode::Enforce, percent }.admits(bucket);
        prop_assert!(!admits(low) || admits(high), "in at {}% but out at {}%", low, high);
        prop_assert!(admits(100) && !admits(0));
        Ok(())
    });
}
