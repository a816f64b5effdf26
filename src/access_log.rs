//! The access log: one line per request, JSON or nginx's "combined" format.
//!
//! Lines are handed to a thread of their own through a bounded queue, so a slow disk
//! never holds a request up: when the queue is full, lines are dropped and a warning
//! says so. A log file moved away (logrotate's default) is noticed within a second
//! and a new one is opened at the configured path.
//!
//! What a line holds is chosen for safety: the path cut at its query string and at its
//! path parameters (`;jsessionid=` carries a session), the referer likewise and
//! without its userinfo (`user:password@`), and of the identity only the kind of source
//! that answered, never the user.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use cookie::time::OffsetDateTime;
use serde_json::json;

use crate::config::{AccessLog, LogConfig, LogFormat};
use crate::warn::loggable_path as logged_path;

/// Lines waiting for the writer before new ones are dropped.
const QUEUE: usize = 16 * 1024;
/// How often an idle writer flushes and checks whether its file was moved away.
const TICK: Duration = Duration::from_secs(1);

/// The sending side of the access log. The writer thread starts with the first line,
/// so that it is started after Pingora has daemonized (a fork keeps no threads).
pub(crate) struct AccessLogger {
    config: LogConfig,
    lines: OnceLock<Option<SyncSender<String>>>,
}

/// One finished request, as the access log sees it. A request the parser refused may
/// have no method, path or version it is safe to name.
pub(crate) struct Entry<'a> {
    pub(crate) client: Option<std::net::SocketAddr>,
    pub(crate) method: Option<&'a str>,
    /// The path as sent; lines hold it cut by [`crate::warn::loggable_path`].
    pub(crate) path: Option<&'a str>,
    pub(crate) version: Option<http::Version>,
    pub(crate) status: u16,
    pub(crate) bytes: usize,
    pub(crate) duration: Duration,
    pub(crate) upstream: Option<String>,
    pub(crate) rewritten: bool,
    /// The kind of identity source that answered (`trusted_header`, ...), never the user.
    pub(crate) identity: Option<&'static str>,
    /// The referer as sent; lines hold it cut by [`logged_referer`].
    pub(crate) referer: Option<&'a str>,
    pub(crate) user_agent: Option<&'a str>,
}

impl AccessLogger {
    /// The access log of `config`; `None` when it is off.
    pub(crate) fn new(config: &LogConfig) -> Option<AccessLogger> {
        (config.access != AccessLog::Off)
            .then(|| AccessLogger { config: config.clone(), lines: OnceLock::new() })
    }

    /// Opens the destination and starts the writer thread.
    fn start(&self) -> io::Result<SyncSender<String>> {
        let dest = match &self.config.access {
            AccessLog::Off | AccessLog::Stdout => Destination::Stdout(BufWriter::new(io::stdout())),
            AccessLog::File(path) => Destination::file(path.clone())?,
        };
        let (lines, queue) = sync_channel::<String>(QUEUE);
        std::thread::Builder::new().name("access-log".into()).spawn(move || {
            let mut dest = dest;
            loop {
                match queue.recv_timeout(TICK) {
                    Ok(line) => dest.write_line(&line),
                    Err(RecvTimeoutError::Timeout) => dest.tick(),
                    Err(RecvTimeoutError::Disconnected) => return dest.tick(),
                }
            }
        })?;
        Ok(lines)
    }

    /// Queues the line for one request; drops it (with a rate-limited warning) when the
    /// writer is behind.
    pub(crate) fn log(&self, entry: &Entry<'_>) {
        let lines = self.lines.get_or_init(|| {
            self.start()
                .map_err(|e| {
                    log::error!("cannot start the access log: {e}; requests are not logged")
                })
                .ok()
        });
        let Some(lines) = lines else { return };
        let line = match self.config.format {
            LogFormat::Json => json_line(entry),
            LogFormat::Combined => combined_line(entry),
        };
        if let Err(TrySendError::Full(_)) = lines.try_send(line) {
            crate::warn_limited!("access log writer is behind; dropping lines");
        }
    }
}

/// Where the writer thread writes.
enum Destination {
    Stdout(BufWriter<io::Stdout>),
    File { path: PathBuf, out: BufWriter<File>, inode: (u64, u64) },
}

impl Destination {
    fn file(path: PathBuf) -> io::Result<Destination> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let meta = file.metadata()?;
        Ok(Destination::File { path, out: BufWriter::new(file), inode: (meta.dev(), meta.ino()) })
    }

    fn write_line(&mut self, line: &str) {
        let out: &mut dyn Write = match self {
            Destination::Stdout(out) => out,
            Destination::File { out, .. } => out,
        };
        if let Err(e) = out.write_all(line.as_bytes()).and_then(|()| out.write_all(b"\n")) {
            crate::warn_limited!("cannot write the access log: {e}");
        }
    }

    /// Flushes, and reopens a file that was moved away or deleted.
    fn tick(&mut self) {
        let flushed = match self {
            Destination::Stdout(out) => out.flush(),
            Destination::File { out, .. } => out.flush(),
        };
        if let Err(e) = flushed {
            crate::warn_limited!("cannot write the access log: {e}");
        }
        if let Destination::File { path, inode, .. } = self {
            let same = std::fs::metadata(&*path).is_ok_and(|m| (m.dev(), m.ino()) == *inode);
            if !same {
                match Destination::file(path.clone()) {
                    Ok(fresh) => *self = fresh,
                    Err(e) => {
                        crate::warn_limited!("cannot reopen the access log {}: {e}", path.display())
                    }
                }
            }
        }
    }
}

/// The part of a referer it is safe to log: its path cut as [`crate::warn::loggable_path`] does, and
/// its authority without userinfo (`user:password@`).
fn logged_referer(referer: &str) -> String {
    let cut = logged_path(referer);
    let Some((scheme, rest)) = cut.split_once("://") else { return cut.to_string() };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

fn json_line(e: &Entry<'_>) -> String {
    let time = OffsetDateTime::from(SystemTime::now())
        .format(&cookie::time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({
        "time": time,
        "client": e.client.map(|a| a.ip().to_string()),
        "method": e.method,
        "path": e.path.map(logged_path),
        "protocol": e.version.map(|v| format!("{v:?}")),
        "status": e.status,
        "bytes": e.bytes,
        "duration_ms": (e.duration.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        "upstream": e.upstream,
        "rewritten": e.rewritten,
        "identity": e.identity,
    })
    .to_string()
}

/// `client - - [day/Mon/year:h:m:s +0000] "METHOD path PROTO" status bytes "referer" "agent"`,
/// with the path and referer cut (see [`crate::warn::loggable_path`]); `"-"` for a request line the
/// parser refused.
fn combined_line(e: &Entry<'_>) -> String {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let t = OffsetDateTime::from(SystemTime::now());
    let month = MONTHS[usize::from(u8::from(t.month())) - 1];
    let quoted = |v: Option<&str>| {
        v.map_or_else(
            || "-".to_string(),
            |v| v.replace(['"', '\\'], "_").replace(|c: char| c.is_control(), "_"),
        )
    };
    let request = match (e.method, e.path, e.version) {
        (Some(method), Some(path), Some(version)) => {
            format!("{method} {} {version:?}", quoted(Some(logged_path(path))))
        }
        _ => "-".to_string(),
    };
    format!(
        "{} - - [{:02}/{month}/{}:{:02}:{:02}:{:02} +0000] \"{request}\" {} {} \"{}\" \"{}\"",
        e.client.map_or_else(|| "-".to_string(), |a| a.ip().to_string()),
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second(),
        e.status,
        e.bytes,
        quoted(e.referer.map(logged_referer).as_deref()),
        quoted(e.user_agent),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry<'static> {
        Entry {
            client: Some("10.1.2.3:5555".parse().unwrap()),
            method: Some("GET"),
            path: Some("/a\"b"),
            version: Some(http::Version::HTTP_11),
            status: 200,
            bytes: 1234,
            duration: Duration::from_micros(2500),
            upstream: Some("127.0.0.1:3000".into()),
            rewritten: true,
            identity: Some("trusted_header"),
            referer: Some("https://app.example.com/x?token=secret#frag"),
            user_agent: Some("curl/8"),
        }
    }

    #[test]
    fn json_lines_parse_and_hold_no_query() {
        let v: serde_json::Value = serde_json::from_str(&json_line(&entry())).unwrap();
        assert_eq!(v["client"], "10.1.2.3");
        assert_eq!(v["path"], "/a\"b");
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_ms"], 2.5);
        assert_eq!(v["identity"], "trusted_header");
        assert_eq!(v["protocol"], "HTTP/1.1");
    }

    #[test]
    fn combined_lines_cut_queries_and_quotes() {
        let line = combined_line(&entry());
        assert!(line.starts_with("10.1.2.3 - - ["), "{line}");
        assert!(
            line.contains(
                "\"GET /a_b HTTP/1.1\" 200 1234 \"https://app.example.com/x\" \"curl/8\""
            ),
            "{line}"
        );
        assert!(!line.contains("secret"), "{line}");
    }

    #[test]
    fn paths_and_referers_are_cut_at_parameters_and_lose_their_userinfo() {
        assert_eq!(logged_path("/a;jsessionid=S?q=1"), "/a");
        assert_eq!(logged_path("/a/b"), "/a/b");
        assert_eq!(logged_referer("https://u:p@x.test/a;jsessionid=S"), "https://x.test/a");
        assert_eq!(logged_referer("https://u@p@x.test:8443/"), "https://x.test:8443/");
        assert_eq!(logged_referer("https://x.test?q"), "https://x.test");
        assert_eq!(logged_referer("/relative;s=1"), "/relative");
    }

    #[test]
    fn a_refused_request_line_is_a_dash() {
        let e = Entry {
            method: None,
            path: None,
            version: None,
            referer: None,
            user_agent: None,
            ..entry()
        };
        let line = combined_line(&e);
        assert!(line.contains("] \"-\" 200 1234 \"-\" \"-\""), "{line}");
        let v: serde_json::Value = serde_json::from_str(&json_line(&e)).unwrap();
        assert_eq!(
            (&v["method"], &v["path"], &v["protocol"]),
            (&serde_json::Value::Null, &serde_json::Value::Null, &serde_json::Value::Null)
        );
    }
}
