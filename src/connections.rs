//! Client connections: how long a client may take to send a request head, how long an
//! idle keep-alive connection is kept, and how many connections are served at once.
//!
//! Pingora reads a request head with a timeout per read, so a client trickling a byte
//! every few seconds holds its connection forever, and an HTTP/1.1 connection without
//! a `Keep-Alive` header idles forever. [`ClientLimits`] wraps the proxy application:
//! it serves each HTTP/1 connection's requests itself, with a deadline for every head
//! (the proxy's [`HeadRead`] signal says when a head is in), the configured idle time
//! between requests, and a cap on concurrent connections, like nginx's
//! `client_header_timeout`, `keepalive_timeout` and `worker_connections`. It also
//! turns on Pingora's in-order answering of pipelined requests, and, with an access
//! log, logs the requests Pingora's parser refused (see [`crate::refusals`]).
//!
//! It also handshakes TLS itself (Pingora's listeners stay plain TCP): a handshake then
//! has the header timeout, as in nginx, and a connection in its handshake counts as
//! open, so a stopping server does not exit under it (see [`crate::in_flight`]).
//!
//! An idle connection costs a few KiB, not the ~100 it would inside Pingora: Pingora
//! reads a request head from within its request future, one allocation sized for the
//! whole of a request's processing (Pingora's and ours, tens of KiB), so a connection
//! waiting there for its next request would hold all of it. [`ClientLimits`] waits for
//! the next request's first bytes itself, in a small future that holds no buffer while
//! it waits, and hands them to a new session as its first read; the request future
//! exists only from then on. Each connection runs in a task of ours, sized for that:
//! Pingora's task for a connection is sized for a TLS handshake as well. (The listeners'
//! own read buffer is turned off for the same reason: see `crate::server`.)

use std::fmt::Write as _;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream, ServerApp};
use pingora::listeners::tls::Acceptor;
use pingora::prelude::fast_timeout::fast_timeout;
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use pingora::services::listening::Service;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::{oneshot, Notify, Semaphore};

use crate::access_log::AccessLogger;
use crate::in_flight::{Counted, InFlight};
use crate::refusals::{RecordedStream, Recorder};

/// The limits, from `server.client_*` and `server.max_client_connections`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a whole request head, from the start of the connection or the end of
    /// the idle time after the previous response.
    pub header_timeout: Duration,
    /// Idle time allowed between requests; zero turns keep-alive off.
    pub keepalive_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Limits {
    /// Pingora's keep-alive setting: whole seconds, at least one; `None` for off.
    fn keepalive_secs(&self) -> Option<u64> {
        (!self.keepalive_timeout.is_zero()).then(|| self.keepalive_timeout.as_secs().max(1))
    }
}

/// How long a stopping server keeps reading requests on idle keep-alive connections
/// (each answered with `Connection: close`) before closing those still idle.
const DRAIN: Duration = Duration::from_secs(2);

/// What the first read of a request head takes at most: Pingora's own first read for a
/// head (its `INIT_HEADER_BUF_SIZE`), so a head comes in with as many reads as before.
const HEAD_READ: usize = 4096;

/// A proxy application with client limits applied (see the module docs).
pub struct ClientLimits<A> {
    inner: Arc<A>,
    limits: Limits,
    slots: Arc<Semaphore>,
    counts: Arc<InFlight>,
    /// The TLS listeners' acceptors, by listen address; other connections are plain.
    tls: Vec<(SocketAddr, Arc<Acceptor>)>,
    /// Where requests the parser refused are logged; `None` leaves connections unwrapped.
    refusals: Option<Arc<AccessLogger>>,
    /// Closes the connections waiting for a request once a stopping server has drained.
    closing: Arc<Closing>,
}

impl<A> ClientLimits<A> {
    /// Wraps `inner`.
    pub fn new(inner: A, limits: Limits) -> Self {
        ClientLimits {
            inner: Arc::new(inner),
            limits,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            counts: Arc::new(InFlight::default()),
            tls: Vec::new(),
            refusals: None,
            closing: Arc::new(Closing::default()),
        }
    }

    /// Logs the HTTP/1 requests Pingora's parser refuses to `log`.
    pub(crate) fn log_refusals(mut self, log: Option<Arc<AccessLogger>>) -> Self {
        self.refusals = log;
        self
    }

    /// Handshakes TLS on connections to `addr` (a listen address) with `acceptor`.
    pub(crate) fn tls(mut self, addr: SocketAddr, acceptor: Acceptor) -> Self {
        self.tls.push((addr, Arc::new(acceptor)));
        self
    }

    /// The service `name` serving these connections, with the connection filter that
    /// counts each connection from its accept, and what a stopping server waits for.
    pub(crate) fn into_service(self, name: &str) -> (Service<Self>, Arc<InFlight>)
    where
        A: HttpServerApp + ServerApp + Send + Sync + 'static,
    {
        let counts = self.counts.clone();
        let mut service = Service::new(name.to_string(), self);
        service.set_connection_filter(counts.filter());
        (service, counts)
    }

    /// The acceptor for a connection accepted on `local`: the listener bound to that
    /// address, or to the unspecified address on its port (listen addresses never
    /// overlap, the config validation refuses that).
    fn acceptor(&self, local: SocketAddr) -> Option<&Acceptor> {
        let exact = self.tls.iter().find(|(addr, _)| *addr == local);
        let any = || {
            let wildcard = |addr: &SocketAddr| addr.ip().is_unspecified();
            self.tls.iter().find(|(addr, _)| wildcard(addr) && addr.port() == local.port())
        };
        exact.or_else(any).map(|(_, acceptor)| &**acceptor)
    }
}

/// Set once a stopping server has drained. Pingora's own cleanup closes the connections
/// waiting inside Pingora for a request head; those waiting for a first byte wait here.
#[derive(Default)]
struct Closing {
    closed: AtomicBool,
    notify: Notify,
}

impl Closing {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Returns once [`Closing::close`] has been called, before or during the wait.
    async fn closed(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registered before the flag is read, so a close in between is not missed.
        notified.as_mut().enable();
        if !self.closed.load(Ordering::SeqCst) {
            notified.await;
        }
    }
}

/// Handed to the proxy with each session; the proxy reports through it, from
/// `ProxyHttp::on_connection_reuse` (which Pingora calls right after the head is
/// read), that the head is in, and takes the keep-alive time to apply.
pub struct HeadRead {
    done: oneshot::Sender<()>,
    keepalive_secs: Option<u64>,
    shutdown: ShutdownWatch,
    recorder: Option<Arc<Recorder>>,
}

impl HeadRead {
    /// Reports the head read and sets the idle time before the next request (kept off
    /// where the client or its HTTP version turned keep-alive off). Once the server is
    /// stopping, the answer closes the connection (`Connection: close`), so a client
    /// moves to the new process of an upgrade instead of meeting a closed socket.
    pub fn arrived(self, session: &mut ServerSession) {
        if *self.shutdown.borrow() {
            session.set_keepalive(None);
        } else if session.get_keepalive().is_some() {
            session.set_keepalive(self.keepalive_secs);
        }
        if let Some(recorder) = &self.recorder {
            recorder.head_arrived();
        }
        let _ = self.done.send(());
    }
}

#[async_trait]
impl<A> ServerApp for ClientLimits<A>
where
    A: HttpServerApp + ServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let (open, first) = self.counts.hand_over();
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            crate::warn_limited!(
                "client connection limit reached (server.max_client_connections = {}); closing new connections until some finish",
                self.limits.max_connections
            );
            return None;
        };
        // The task Pingora runs a connection in is sized for its TLS handshake as well
        // (several KiB, kept for the connection's whole life, plain ones included). A
        // task of our own holds what the connection needs and no more; Pingora's ends.
        let stream = self.handshake(stream).await?;
        let app = self.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _open = open;
            app.connection(stream, &shutdown, first).await;
        });
        None
    }

    async fn cleanup(&self) {
        // Pingora calls this once the listeners are closed, and the inner cleanup
        // closes every connection waiting for its next request at once, cutting off a
        // request the client may be sending on it right then (what an upgrade under
        // keep-alive load loses). Drain first: for a moment, such a request is still
        // read and answered with `Connection: close`, so the client reconnects (to the
        // new process of an upgrade); only then is what is still idle closed.
        self.counts.stop_accepting();
        tokio::time::sleep(DRAIN.min(self.limits.keepalive_timeout)).await;
        self.closing.close();
        self.inner.cleanup().await;
    }
}

impl<A> ClientLimits<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    /// The TLS handshake of a connection to a TLS listener, within the header timeout
    /// (and cut once a stopping server has drained); a plain connection as it is.
    async fn handshake(&self, stream: Stream) -> Option<Stream> {
        let Some(local) =
            stream.get_socket_digest().and_then(|d| d.local_addr()?.as_inet().copied())
        else {
            // Pingora's TCP streams always know their address: never guess plain.
            return self.tls.is_empty().then_some(stream);
        };
        let Some(acceptor) = self.acceptor(local) else { return Some(stream) };
        // Pingora's listeners hand over their own TCP stream type, boxed.
        let Ok(tcp) = stream.into_any().downcast::<L4Stream>() else {
            log::error!(
                "closing a client connection to the TLS listener {local}: not a TCP stream"
            );
            return None;
        };
        let timeout = self.limits.header_timeout;
        tokio::select! {
            biased;
            done = fast_timeout(timeout, acceptor.tls_handshake(*tcp)) => match done {
                Ok(Ok(tls)) => Some(Box::new(tls)),
                Ok(Err(e)) => {
                    log::debug!("client TLS handshake failed: {e}");
                    None
                }
                Err(_) => {
                    log::debug!("closing a client connection: no TLS handshake within {timeout:?}");
                    None
                }
            },
            () = self.closing.closed() => None,
        }
    }

    /// Serves one client connection: HTTP/2 by Pingora, HTTP/1 request by request.
    /// `first` counts its first request (or, for HTTP/2, the connection) in flight.
    async fn connection(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
        first: Counted,
    ) {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            // HTTP/2 has its own framing and idle handling; what Pingora's application
            // hands back of a connection it served is never reused. Its requests are
            // not visible from here, so the whole connection counts as busy: once the
            // server stops, Pingora sends GOAWAY and ends it after its last response.
            self.inner.process_new(stream, shutdown).await;
            drop(first);
            return;
        }
        let client = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).copied());
        let (stream, recorder) = if self.refusals.is_some() {
            let (stream, recorder) = RecordedStream::wrap(stream);
            (stream, Some(recorder))
        } else {
            (stream, None)
        };
        let mut connection = ReusedHttpStream::new(stream, None);
        let mut idle = Duration::ZERO;
        let mut first = Some(first);
        loop {
            if let Some(recorder) = &recorder {
                recorder.reset();
            }
            let busy = first.take();
            let Some(reused) = self.serve(connection, idle, busy, shutdown, recorder.clone()).await
            else {
                self.log_refusal(recorder.as_deref(), client);
                return;
            };
            connection = reused;
            idle = self.limits.keepalive_timeout;
        }
    }

    /// The access log line of the connection's last request, when the parser refused it.
    fn log_refusal(&self, recorder: Option<&Recorder>, client: Option<std::net::SocketAddr>) {
        if let (Some(log), Some(refusal)) = (&self.refusals, recorder.and_then(Recorder::refusal)) {
            log.log(&refusal.entry(client));
        }
    }

    /// One request: its head must be in within `idle` plus the header timeout, or the
    /// connection is closed (as nginx does, without a response). Until its first bytes
    /// are in, the connection holds no more than its stream (see the module docs).
    /// `busy` counts the request in flight from the start (a new connection's first
    /// request); otherwise it counts from the head's arrival.
    async fn serve(
        &self,
        connection: ReusedHttpStream,
        idle: Duration,
        mut busy: Option<Counted>,
        shutdown: &ShutdownWatch,
        recorder: Option<Arc<Recorder>>,
    ) -> Option<ReusedHttpStream> {
        let (mut stream, persistent) = connection.consume();
        let started = Instant::now();
        let deadline = idle + self.limits.header_timeout;
        let first = if persistent.as_ref().is_some_and(holds_next_request) {
            None
        } else {
            // A new connection's first bytes are part of its head; a kept-alive one may
            // idle, then its head has the header timeout.
            let wait = if idle.is_zero() { deadline } else { idle };
            // Pingora's coarse timer (10 ms ticks, shared): a tokio timer here wakes the
            // runtime's I/O driver (one eventfd write) for every request on a connection.
            tokio::select! {
                biased;
                first = fast_timeout(wait, first_bytes(&mut stream)) => match first {
                    Ok(first) => Some(first?),
                    Err(_) => {
                        log::debug!("closing a client connection: no request within {wait:?}");
                        return None;
                    }
                },
                () = self.closing.closed() => return None,
            }
        };
        let mut session = ServerSession::new_http1(stream);
        if let Some(persistent) = persistent {
            persistent.apply_to_session(&mut session);
        }
        session.set_keepalive(if *shutdown.borrow() { None } else { self.limits.keepalive_secs() });
        if let Some(first) = first {
            session.set_pipelined_prefix(first);
        }
        let (done, head_in) = oneshot::channel();
        let keepalive_secs = self.limits.keepalive_secs();
        let stopping = shutdown.clone();
        session.set_connection_user_context(Some(Box::new(HeadRead {
            done,
            keepalive_secs,
            shutdown: stopping,
            recorder,
        })));
        // Pipelined requests are answered in order (RFC 9112 §9.3.2); without this Pingora
        // answers the first and silently drops the rest.
        session.set_pipelining_enabled(true);
        let mut request = self.inner.process_new_http(session, shutdown);
        tokio::select! {
            biased;
            reused = &mut request => return reused,
            in_time = fast_timeout(deadline.saturating_sub(started.elapsed()), head_in) => {
                if in_time.is_err() {
                    log::debug!("closing a client connection: no complete request head within {deadline:?}");
                    return None;
                }
                busy.get_or_insert_with(|| self.counts.request());
            }
        }
        let reused = request.await;
        drop(busy);
        reused
    }
}

/// The first bytes of a connection's next request, as Pingora's first read of a head
/// would have read them; `None` once the client has closed the connection (or it
/// failed), which, with nothing of a request read, is not worth a response.
///
/// The read buffer lives on the stack of each poll, not in the future: a connection
/// waiting for its next request holds no buffer.
async fn first_bytes(stream: &mut Stream) -> Option<BytesMut> {
    std::future::poll_fn(|cx| {
        let mut chunk = [MaybeUninit::<u8>::uninit(); HEAD_READ];
        let mut read = ReadBuf::uninit(&mut chunk);
        match Pin::new(&mut *stream).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(())) => {
                let mut head = BytesMut::with_capacity(HEAD_READ);
                head.extend_from_slice(read.filled());
                Poll::Ready(Some(head))
            }
            Poll::Ready(Err(e)) => {
                log::debug!("client connection failed while idle: {e}");
                Poll::Ready(None)
            }
        }
    })
    .await
}

/// Whether Pingora already read (some of) the connection's next request with the
/// previous one (pipelined): it hands those bytes to the next session itself, and
/// waiting for more could wait for ever. Pingora 0.9.1 has no getter for them
/// (upstream would need `HttpPersistentSettings::has_pipelined_prefix`), but its
/// `Debug` shows the field; only the start of that output is written, on the stack.
fn holds_next_request(settings: &HttpPersistentSettings) -> bool {
    const FIELD: &[u8] = b"pipelined_prefix: Some";
    let mut start = DebugStart { bytes: [0; 256], len: 0 };
    // Stops with an error once the start is full, which is all that is read of it.
    let _ = write!(start, "{settings:?}");
    start.bytes[..start.len].windows(FIELD.len()).any(|w| w == FIELD)
}

/// The first bytes of a `Debug` output.
struct DebugStart {
    bytes: [u8; 256],
    len: usize,
}

impl std::fmt::Write for DebugStart {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() {
            Err(std::fmt::Error)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session of Pingora's over a real socket (its fields need one).
    async fn session() -> ServerSession {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let socket = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        ServerSession::new_http1(Box::new(pingora::protocols::l4::stream::Stream::from(socket)))
    }

    #[tokio::test]
    async fn bytes_of_a_pipelined_request_are_seen_in_pingoras_settings() {
        let mut settings = HttpPersistentSettings::for_session(&session().await);
        settings.set_user_context(Box::new(7u8));
        assert!(!holds_next_request(&settings));
        // Longer than what is written of the Debug output: the field comes first.
        settings.set_pipelined_prefix(BytesMut::from(
            &b"GET /next HTTP/1.1\r\nHost: a\r\n".repeat(200)[..],
        ));
        assert!(holds_next_request(&settings));
    }
}
