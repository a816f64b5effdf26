//! The property ("fuzz") suite: invariants checked on generated inputs.
//!
//! Each property runs `PROPTEST_CASES` cases (proptest's own variable, 256 by default),
//! which is what `make test` does. With `FUZZ_SECONDS=N`, every property keeps running
//! batches of `PROPTEST_CASES` fresh random cases until N seconds after the first
//! property started, then prints how many cases it ran (visible with `--nocapture`):
//!
//! ```text
//! FUZZ_SECONDS=600 nice -n 19 cargo test --release --lib properties -- --nocapture --test-threads=16
//! ```
//!
//! A failure is shrunk to a minimal input and its seed is saved next to the module as
//! `<module>.proptest-regressions`; commit that file, and the case runs first from then on.
//!
//! Adding a property: a module under `src/properties/` (declared below) with a strategy for
//! the input and a `#[test]` that calls [`check`].

// Inside the crate, so the properties can reach the internals they check.
mod cookies;
mod hygiene;
mod identity;
mod rewrite;
mod rollout;

use std::panic::Location;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

/// The end of a timed run: `FUZZ_SECONDS` after the first property started. One
/// deadline for all properties, so the whole run takes that long however many of them
/// run at a time.
fn deadline() -> Option<Instant> {
    static DEADLINE: OnceLock<Option<Instant>> = OnceLock::new();
    *DEADLINE.get_or_init(|| {
        let secs = std::env::var("FUZZ_SECONDS").ok()?;
        let secs: u64 = secs
            .parse()
            .unwrap_or_else(|_| panic!("FUZZ_SECONDS={secs:?} is not a whole number of seconds"));
        Some(Instant::now() + Duration::from_secs(secs))
    })
}

/// Checks `property` on values of `strategy`: one batch, or batches until the timed
/// run's deadline. Panics (failing the test) with the shrunk failing input.
#[track_caller]
fn check<S: Strategy>(
    name: &str,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let config = Config {
        // The calling module's file: its failures are saved beside it.
        source_file: Some(Location::caller().file()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    };
    let deadline = deadline();
    let started = Instant::now();
    let mut batches = 0u64;
    loop {
        // A new runner draws a new random seed (unless PROPTEST_RNG_SEED fixes it).
        let mut runner = TestRunner::new(config.clone());
        if let Err(e) = runner.run(&strategy, &property) {
            panic!("{name}: after {}+ passing cases: {e}", batches * u64::from(config.cases));
        }
        batches += 1;
        if deadline.is_none_or(|d| Instant::now() >= d) {
            break;
        }
    }
    eprintln!(
        "fuzz {name}: {} cases in {batches} batch(es), {:.0} s, no failure",
        batches * u64::from(config.cases),
        started.elapsed().as_secs_f64()
    );
}
