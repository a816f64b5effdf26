//! Requests Pingora's parser refuses (garbage, several `Host`s, conflicting
//! `Content-Length`s): Pingora answers them 400 itself and closes, before any proxy hook
//! runs, so without this they would leave no access log line.
//!
//! [`RecordedStream`] wraps a client connection and keeps, for the request being read,
//! the start of what came in (its request line) and of what went out (the status line),
//! until the proxy reports the head in. A connection that ends with an answer written
//! but no head reported was refused by the parser: [`Recorder::refusal`] says what it is
//! safe to log of it — the status, the method and the path when the request line parses
//! — and never a header value.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::access_log::Entry;

/// How much of a request line is kept: enough for a method and a path.
const LINE: usize = 2048;
/// How much of the answer is kept: `HTTP/1.1 400`.
const STATUS_LINE: usize = 12;

/// What one request left on its connection so far.
#[derive(Default)]
struct Record {
    /// When the record started: the request's start when its bytes came in with the
    /// previous request's (pipelined), before any read of its own.
    started: Option<Instant>,
    first_read: Option<Instant>,
    line: Vec<u8>,
    answer: Vec<u8>,
}

/// The record of a connection's current request, shared by its stream and the
/// connection loop.
#[derive(Default)]
pub(crate) struct Recorder {
    /// Off once the head is in: the rest of the request costs one atomic load per I/O.
    recording: AtomicBool,
    record: Mutex<Record>,
}

/// A request the parser refused, as far as it is safe to log.
pub(crate) struct Refusal {
    status: u16,
    method: Option<String>,
    path: Option<String>,
    version: Option<http::Version>,
    duration: Duration,
}

impl Recorder {
    fn with_record<T>(&self, f: impl FnOnce(&mut Record) -> T) -> T {
        f(&mut self.record.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Starts the record of the next request.
    pub(crate) fn reset(&self) {
        self.with_record(|r| *r = Record { started: Some(Instant::now()), ..Record::default() });
        self.recording.store(true, Ordering::Release);
    }

    /// The head is in: the proxy's own hooks log this request.
    pub(crate) fn head_arrived(&self) {
        self.recording.store(false, Ordering::Release);
    }

    fn read(&self, bytes: &[u8]) {
        if bytes.is_empty() || !self.recording.load(Ordering::Acquire) {
            return;
        }
        self.with_record(|r| {
            r.first_read.get_or_insert_with(Instant::now);
            if !r.line.contains(&b'\n') {
                let room = LINE.saturating_sub(r.line.len());
                r.line.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
        });
    }

    fn wrote(&self, bytes: &[u8]) {
        if !self.recording.load(Ordering::Acquire) {
            return;
        }
        self.with_record(|r| {
            let room = STATUS_LINE.saturating_sub(r.answer.len());
            r.answer.extend_from_slice(&bytes[..bytes.len().min(room)]);
        });
    }

    /// The request the parser refused, if the connection's last request was one: an
    /// answer went out and no head was reported.
    pub(crate) fn refusal(&self) -> Option<Refusal> {
        if !self.recording.load(Ordering::Acquire) {
            return None;
        }
        self.with_record(|r| {
            let status = status_of(&r.answer)?;
            let (method, path, version) = request_line(&r.line);
            let duration = r.first_read.or(r.started).map_or(Duration::ZERO, |t| t.elapsed());
            Some(Refusal { status, method, path, version, duration })
        })
    }
}

/// The status of a status line (`HTTP/1.1 400`).
fn status_of(answer: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(answer).ok()?;
    text.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
}

/// The method, path and version of a request line, all or nothing: only a whole line
/// of the shape `METHOD /path HTTP/1.x` is believed to be one. What was recorded may
/// start in the middle of a request whose first bytes came in with the previous one
/// (pipelined), and a piece of a header (`Bearer <token>`) must never pass for a method.
/// The path is `None` in other forms (`http://user:pass@host/`).
fn request_line(recorded: &[u8]) -> (Option<String>, Option<String>, Option<http::Version>) {
    let Some(end) = recorded.iter().position(|&b| b == b'\n') else { return (None, None, None) };
    let line = recorded[..end].strip_suffix(b"\r").unwrap_or(&recorded[..end]);
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let [method, target, version] = parts[..] else { return (None, None, None) };
    let version = match version {
        b"HTTP/1.1" => http::Version::HTTP_11,
        b"HTTP/1.0" => http::Version::HTTP_10,
        _ => return (None, None, None),
    };
    if method.is_empty()
        || !method.iter().all(|b| b.is_ascii_uppercase() || *b == b'-')
        || !target.iter().all(u8::is_ascii_graphic)
    {
        return (None, None, None);
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (Some(text(method)), target.starts_with(b"/").then(|| text(target)), Some(version))
}

impl Refusal {
    /// Its access log entry: no header value, since the parser trusted none.
    pub(crate) fn entry(&self, client: Option<std::net::SocketAddr>) -> Entry<'_> {
        Entry {
            client,
            method: self.method.as_deref(),
            path: self.path.as_deref(),
            version: self.version,
            status: self.status,
            // Pingora's refusal has no body.
            bytes: 0,
            duration: self.duration,
            upstream: None,
            rewritten: false,
            identity: None,
            referer: None,
            user_agent: None,
        }
    }
}

/// A client connection that feeds its [`Recorder`]; everything else goes to the
/// connection it wraps.
pub(crate) struct RecordedStream {
    inner: Stream,
    recorder: Arc<Recorder>,
}

impl RecordedStream {
    /// Wraps `inner`; the recorder is for the connection loop.
    pub(crate) fn wrap(inner: Stream) -> (Stream, Arc<Recorder>) {
        let recorder = Arc::new(Recorder::default());
        (Box::new(RecordedStream { inner, recorder: recorder.clone() }), recorder)
    }
}

impl std::fmt::Debug for RecordedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RecordedStream").field(&self.inner).finish()
    }
}

impl AsyncRead for RecordedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.recorder.read(&buf.filled()[before..]);
        }
        polled
    }
}

impl AsyncWrite for RecordedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.recorder.wrote(&buf[..n]);
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(mut n)) = polled {
            for buf in bufs {
                let taken = n.min(buf.len());
                this.recorder.wrote(&buf[..taken]);
                n -= taken;
            }
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for RecordedStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for RecordedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for RecordedStream {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for RecordedStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for RecordedStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for RecordedStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for RecordedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_line_gives_only_what_is_well_formed() {
        let v11 = Some(http::Version::HTTP_11);
        assert_eq!(
            request_line(b"GET /a;s=1?q HTTP/1.1\r\nHost: x"),
            (Some("GET".into()), Some("/a;s=1?q".into()), v11)
        );
        assert_eq!(request_line(b"\x01\x02GARBAGE x\r\n"), (None, None, None));
        assert_eq!(request_line(b"GET http://x/ HTTP/1.1\r\n"), (Some("GET".into()), None, v11));
        assert_eq!(request_line(b"POST /long-line-cut-before-its-vers"), (None, None, None));
        assert_eq!(
            request_line(b"eyJhbGciOi.e30.c2ln\r\nHost: x\r\n"),
            (None, None, None),
            "the tail of an Authorization header"
        );
        assert_eq!(
            request_line(b"T /a/b HTTP/1.1\r\n"),
            (Some("T".into()), Some("/a/b".into()), v11),
            "at worst a piece of a method"
        );
    }

    #[test]
    fn a_refusal_needs_an_answer_out_and_no_head() {
        let r = Recorder::default();
        r.reset();
        assert!(r.refusal().is_none(), "nothing came in: an idle connection closed");
        r.read(b"GET / HTTP/1.1\r\n");
        assert!(r.refusal().is_none(), "nothing went out: the client went away");
        r.wrote(b"HTTP/1.1 400 Bad Request\r\n");
        assert_eq!(r.refusal().map(|f| f.status), Some(400));
        r.head_arrived();
        assert!(r.refusal().is_none(), "a head the proxy saw is logged by the proxy");
    }
}
