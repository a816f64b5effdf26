//! What every criterion suite here shares: its settings and its `main`.
//!
//! `cargo bench` passes `--bench` and the suite measures. `cargo test --all-targets`
//! runs bench targets too, with libtest flags criterion rejects: then the suite only
//! runs its set-up checks once, so a broken benchmark fails the test run.
// Each suite compiles its own copy and may leave `set_up_only` unused.
#![allow(dead_code)]

use std::time::Duration;

use criterion::{BenchmarkFilter, Criterion};

/// Short runs, sized for a shared 2-core machine.
pub fn config(warm_up: Duration, sample_size: usize) -> Criterion {
    Criterion::default()
        .warm_up_time(warm_up)
        .measurement_time(Duration::from_secs(3))
        .sample_size(sample_size)
}

/// Measures `targets` with `config` under `cargo bench`; otherwise runs `checks`.
pub fn main(config: Criterion, targets: &[fn(&mut Criterion)], checks: impl FnOnce()) {
    if std::env::args().any(|a| a == "--bench") {
        let mut c = config.configure_from_args();
        for target in targets {
            target(&mut c);
        }
        c.final_summary();
    } else {
        checks();
    }
}

/// The usual checks: every target's set-up once, measuring nothing.
pub fn set_up_only(suite: &str, targets: &[fn(&mut Criterion)]) {
    let mut c = Criterion::default().with_benchmark_filter(BenchmarkFilter::RejectAll);
    for target in targets {
        target(&mut c);
    }
    println!("{suite} bench: set-up checks passed (run `cargo bench --bench {suite}` to measure)");
}
