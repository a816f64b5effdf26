//! Prometheus metrics, served by the admin listener (`GET /metrics`).
//!
//! Every label value comes from a fixed set (outcomes, skip reasons, source types,
//! logout modes, verdicts, the configured sites): never a user, a cookie, a path or a
//! request's host, so the number of series is bounded whatever the traffic.

use std::time::Duration;

use once_cell::sync::Lazy;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The proxy's metrics, in a registry of their own.
pub(crate) struct Metrics {
    registry: Registry,
    /// Responses by outcome: `rewritten`, `passthrough`, `anonymous`, `gave_up`,
    /// `observed` (report only: the observer script), `outside_rollout` (a user outside
    /// the rollout's percentage: the page untouched), `report` (a report-only page's
    /// report), or the reason of pages that did not qualify.
    pub(crate) requests: IntCounterVec,
    /// Identity lookups by source type and result: `hit` (the user, without asking a
    /// backing store: a cache entry or a trusted header), `miss` (the user, after asking
    /// the app, Redis or verifying a token), `anonymous`, `failed`.
    pub(crate) lookups: IntCounterVec,
    /// Requests a caching source made to its backing store (the misses).
    pub(crate) fetches: IntCounterVec,
    /// Shared identity cache answers: `hit` (possibly after waiting for another
    /// instance), `miss` (this instance asked the app), `error` (Redis failed; the app
    /// was asked), `gave_up_waiting` (no other instance answered in time; the app was asked).
    pub(crate) shared_cache: IntCounterVec,
    /// redis_session lookups whose key was not in Redis.
    pub(crate) redis_session_key_misses: IntCounter,
    /// redis_session sources whose last sessions (a window of distinct ones) were all
    /// missing in Redis: most likely a `key` pattern that names nothing the app writes.
    pub(crate) redis_session_keys_never_found: IntGauge,
    /// Time to ask one source, by source type.
    pub(crate) lookup_seconds: HistogramVec,
    /// Tokens signed (not served from the token cache).
    pub(crate) tokens_signed: IntCounter,
    /// Logouts handled, by mode (`marker`, `interstitial`).
    pub(crate) logouts: IntCounterVec,
    /// Failed exchanges with the app (connect, read, write, timeouts).
    pub(crate) upstream_errors: IntCounter,
    /// Time from the request head to the end of the response.
    pub(crate) response_seconds: Histogram,
    /// Page scripts that reported a page booting another workspace than the site's.
    pub(crate) app_id_mismatches: IntCounter,
    /// Pages whose session the rollout decided on, by `slice`: `in_rollout`,
    /// `outside_rollout` (resolved once: a page counts itself in one of them).
    pub(crate) in_rollout: IntCounter,
    pub(crate) outside_rollout: IntCounter,
    /// The mode in force per site: 1 for the mode it runs, 0 for the others.
    pub(crate) rollout_mode: IntGaugeVec,
    /// The percentage in force per site.
    pub(crate) rollout_percent: IntGaugeVec,
    /// Report-only pages' reports by the Messenger's boot `verdict`: `none`,
    /// `anonymous`, `insecure`, `user_hash`, `jwt`.
    pub(crate) page_reports: IntCounterVec,
}

/// The process's metrics.
pub(crate) static METRICS: Lazy<Metrics> = Lazy::new(Metrics::new);

const PREFIX: &str = "intercom_secure_proxy";

/// Latency buckets from 100 µs to 10 s.
const BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0];

impl Metrics {
    fn new() -> Metrics {
        let registry =
            Registry::new_custom(Some(PREFIX.to_string()), None).expect("a valid prefix");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let h =
                HistogramVec::new(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()), labels)
                    .expect("valid metric");
            registry.register(Box::new(h.clone())).expect("unique metric");
            h
        };
        let requests =
            counter("requests_total", "Responses by outcome of Secure Mode.", &["outcome"]);
        let lookups = counter(
            "identity_lookups_total",
            "Identity lookups by source type and result.",
            &["source", "result"],
        );
        let fetches = counter(
            "identity_fetches_total",
            "Requests caching identity sources made on a cache miss.",
            &["source"],
        );
        let shared_cache = counter(
            "identity_shared_cache_total",
            "Shared identity cache answers by result.",
            &["result"],
        );
        let redis_session_key_misses = IntCounter::new(
            "redis_session_key_misses_total",
            "redis_session lookups whose key was not in Redis.",
        )
        .expect("valid metric");
        registry.register(Box::new(redis_session_key_misses.clone())).expect("unique metric");
        let redis_session_keys_never_found = IntGauge::new(
            "redis_session_keys_never_found",
            "redis_session sources whose recent distinct sessions were all missing in Redis (check their key pattern).",
        )
        .expect("valid metric");
        registry.register(Box::new(redis_session_keys_never_found.clone())).expect("unique metric");
        let lookup_seconds =
            histogram("identity_lookup_seconds", "Time to ask one identity source.", &["source"]);
        let tokens_signed = IntCounter::new("tokens_signed_total", "Messenger tokens signed.")
            .expect("valid metric");
        registry.register(Box::new(tokens_signed.clone())).expect("unique metric");
        let logouts =
            counter("logouts_total", "Logouts turned into Intercom logouts, by mode.", &["mode"]);
        let upstream_errors =
            IntCounter::new("upstream_errors_total", "Failed exchanges with the app.")
                .expect("valid metric");
        registry.register(Box::new(upstream_errors.clone())).expect("unique metric");
        let response_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "response_seconds",
                "Time from the request head to the end of the response.",
            )
            .buckets(BUCKETS.to_vec()),
        )
        .expect("valid metric");
        registry.register(Box::new(response_seconds.clone())).expect("unique metric");
        let app_id_mismatches = IntCounter::new(
            "page_app_id_mismatches_total",
            "Pages that boot another workspace than the site's app_id.",
        )
        .expect("valid metric");
        registry.register(Box::new(app_id_mismatches.clone())).expect("unique metric");
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let rollout_pages = counter(
            "rollout_pages_total",
            "Pages whose session the rollout put in or outside its percentage.",
            &["slice"],
        );
        let rollout_mode = gauge(
            "rollout_mode",
            "The rollout mode in force per site (1 for the mode it runs).",
            &["site", "mode"],
        );
        let rollout_percent =
            gauge("rollout_percent", "The share of users in the rollout per site.", &["site"]);
        let page_reports = counter(
            "page_reports_total",
            "Report-only pages' reports by how the Messenger booted.",
            &["verdict"],
        );
        Metrics {
            registry,
            requests,
            lookups,
            fetches,
            shared_cache,
            redis_session_key_misses,
            redis_session_keys_never_found,
            lookup_seconds,
            tokens_signed,
            logouts,
            upstream_errors,
            response_seconds,
            app_id_mismatches,
            in_rollout: rollout_pages.with_label_values(&["in_rollout"]),
            outside_rollout: rollout_pages.with_label_values(&["outside_rollout"]),
            rollout_mode,
            rollout_percent,
            page_reports,
        }
    }

    /// The metrics in Prometheus' text format.
    pub(crate) fn text(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for metrics this registry accepted.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }

    /// The lookup metrics of one identity source, by its `type`.
    pub(crate) fn source(&self, source: &'static str) -> SourceMetrics {
        let result = |r: &str| self.lookups.with_label_values(&[source, r]);
        SourceMetrics {
            hit: result("hit"),
            miss: result("miss"),
            anonymous: result("anonymous"),
            failed: result("failed"),
            seconds: self.lookup_seconds.with_label_values(&[source]),
        }
    }
}

/// One identity source's lookup metrics, resolved once: `with_label_values` hashes its
/// labels and takes a lock each time, and a page asks a source once.
pub(crate) struct SourceMetrics {
    hit: IntCounter,
    miss: IntCounter,
    anonymous: IntCounter,
    failed: IntCounter,
    seconds: Histogram,
}

/// How an identity lookup ended (the `result` label of `identity_lookups_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LookupResult {
    /// The user, without asking a backing store.
    Hit,
    /// The user, after asking a backing store.
    Miss,
    /// No user.
    Anonymous,
    /// The source could not tell.
    Failed,
}

impl SourceMetrics {
    /// Records one lookup.
    pub(crate) fn record(&self, result: LookupResult, took: Duration) {
        match result {
            LookupResult::Hit => &self.hit,
            LookupResult::Miss => &self.miss,
            LookupResult::Anonymous => &self.anonymous,
            LookupResult::Failed => &self.failed,
        }
        .inc();
        self.seconds.observe(took.as_secs_f64());
    }
}
