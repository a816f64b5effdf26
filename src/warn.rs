//! What the proxy's own warnings may say, and how often. A failing identity source or
//! a hostile client must not turn every request into a log line: each call site logs
//! a short burst per interval, then holds lines back and says how many when it logs
//! again. Errors are described by kind only, never by their context.

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// Lines a call site may log in one interval (a few distinct problems at once all show).
const BURST: u32 = 5;
/// The interval, in milliseconds.
const INTERVAL_MS: u64 = 10_000;

/// One call site's state (created by [`warn_limited!`](crate::warn_limited)).
pub(crate) struct Limiter(Mutex<Window>);

struct Window {
    /// Start of the current interval, in ms since [`epoch`] (`None` before the first line).
    start: Option<u64>,
    logged: u32,
    held_back: u64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Limiter {
    /// A limiter that has not logged yet.
    pub(crate) const fn new() -> Self {
        Limiter(Mutex::new(Window { start: None, logged: 0, held_back: 0 }))
    }

    /// `Some(n)` when a line may be logged now, `n` being how many were held back
    /// before it; `None` when this one is held back.
    pub(crate) fn admit(&self) -> Option<u64> {
        self.admit_at(epoch().elapsed().as_millis() as u64)
    }

    fn admit_at(&self, now: u64) -> Option<u64> {
        let mut w = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if w.start.is_none_or(|s| now.saturating_sub(s) >= INTERVAL_MS) {
            w.start = Some(now);
            w.logged = 0;
        }
        if w.logged >= BURST {
            w.held_back += 1;
            return None;
        }
        w.logged += 1;
        Some(std::mem::take(&mut w.held_back))
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

/// `log::warn!`, at most a few lines per 10 s per call site, noting how many were held
/// back.
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static LIMITER: $crate::warn::Limiter = $crate::warn::Limiter::new();
        if let Some(held) = LIMITER.admit() {
            if held > 0 {
                log::warn!("{} ({held} more like this not logged)", format_args!($($arg)+));
            } else {
                log::warn!($($arg)+);
            }
        }
    }};
}
pub(crate) use warn_limited;

/// The part of a request path a log line may hold: up to its query (`?`) or its first
/// path parameter (`;`), where servlet containers and others put session ids
/// (`;jsessionid=`).
pub(crate) fn loggable_path(path: &str) -> &str {
    path.split(['?', ';', '#']).next().unwrap_or("")
}

/// A Pingora error's side and kind, for logs: never its context, which for a
/// malformed message can hold the raw header block (cookies included).
pub fn describe(e: &pingora::Error) -> String {
    format!("{} error: {}", e.esource().as_str(), e.etype().as_str())
}

/// Removes the raw message bytes Pingora puts into a parse error's context (`buf:
/// …`, which holds the whole header block, `Cookie`/`Set-Cookie` included), along its
/// chain of causes, before anything logs the error.
pub fn scrub(e: &mut pingora::Error) {
    if e.context.as_ref().is_some_and(|c| c.as_str().contains("buf: ")) {
        e.context = Some("raw message bytes not logged".to_string().into());
    }
    let Some(cause) = e.cause.as_mut() else { return };
    // A cause is stored as the error itself or as its box, depending on how it was made.
    if cause.is::<pingora::Error>() {
        if let Some(inner) = cause.downcast_mut::<pingora::Error>() {
            scrub(inner);
        }
    } else if let Some(inner) = cause.downcast_mut::<Box<pingora::Error>>() {
        scrub(inner);
    } else if cause.to_string().contains("buf: ") {
        e.cause = None;
    }
}

/// The last line of defence for what Pingora logs on our behalf: its debug and trace
/// records dump whole requests and responses (cookies, tokens) and are dropped; in
/// its warnings and errors, raw message bytes (`buf: …`) are cut to the end of the
/// line. Our own records pass as they are.
pub struct RedactingLogger<L>(pub L);

fn from_pingora(target: &str) -> bool {
    target.starts_with("pingora")
}

impl<L: log::Log> log::Log for RedactingLogger<L> {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        self.0.enabled(m) && !(from_pingora(m.target()) && m.level() > log::Level::Info)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if !from_pingora(record.target()) {
            return self.0.log(record);
        }
        let text = record.args().to_string();
        match text.find("buf: ") {
            Some(at) => self.0.log(
                &log::Record::builder()
                    .args(format_args!("{}buf: <raw message bytes not logged>", &text[..at]))
                    .metadata(record.metadata().clone())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            ),
            None => self.0.log(record),
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_bytes_are_scrubbed_along_the_cause_chain() {
        let inner = pingora::Error::explain(
            pingora::ErrorType::InvalidHTTPHeader,
            "buf: HTTP/1.1 200 OK\\r\\nSet-Cookie: sid=SECRET",
        );
        let mut outer = pingora::Error::because(pingora::ErrorType::ReadError, "reading", inner);
        scrub(&mut outer);
        let text = outer.to_string();
        assert!(
            !text.contains("SECRET") && text.contains("not logged") && text.contains("reading"),
            "{text}"
        );
    }

    #[test]
    fn a_burst_per_interval_then_the_count() {
        let l = Limiter::new();
        for t in 0..BURST as u64 {
            assert_eq!(l.admit_at(100 + t), Some(0));
        }
        assert_eq!(l.admit_at(200), None);
        assert_eq!(l.admit_at(100 + INTERVAL_MS - 1), None);
        assert_eq!(l.admit_at(100 + INTERVAL_MS), Some(2));
        assert_eq!(l.admit_at(100 + INTERVAL_MS + 1), Some(0));
    }
}
