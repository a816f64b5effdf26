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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ReusedHttpStream, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use tokio::sync::{oneshot, Semaphore};

use crate::access_log::AccessLogger;
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

/// A proxy application with client limits applied (see the module docs).
pub struct ClientLimits<A> {
    inner: Arc<A>,
    limits: Limits,
    slots: Arc<Semaphore>,
    busy: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    /// Where requests the parser refused are logged; `None` leaves connections unwrapped.
    refusals: Option<Arc<AccessLogger>>,
}

impl<A> ClientLimits<A> {
    /// Wraps `inner`.
    pub fn new(inner: A, limits: Limits) -> Self {
        ClientLimits {
            inner: Arc::new(inner),
            limits,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            busy: Arc::new(AtomicUsize::new(0)),
            open: Arc::new(AtomicUsize::new(0)),
            refusals: None,
        }
    }

    /// Logs the HTTP/1 requests Pingora's parser refuses to `log`.
    pub(crate) fn log_refusals(mut self, log: Option<Arc<AccessLogger>>) -> Self {
        self.refusals = log;
        self
    }

    /// How many client connections are open, idle or not.
    pub fn open(&self) -> Arc<AtomicUsize> {
        self.open.clone()
    }

    /// How many HTTP/1 requests are in flight: from the head's arrival to the end of
    /// the response, and for a new connection from its start (its first request may
    /// be on the way). Idle keep-alive connections do not count: closing them loses
    /// nothing.
    pub fn busy(&self) -> Arc<AtomicUsize> {
        self.busy.clone()
    }
}

/// Counts one request in flight, or one open connection, while it lives.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn start(count: &Arc<AtomicUsize>) -> Busy {
        count.fetch_add(1, Ordering::SeqCst);
        Busy(count.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
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
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let Ok(_slot) = self.slots.clone().try_acquire_owned() else {
            crate::warn_limited!(
                "client connection limit reached (server.max_client_connections = {}); closing new connections until some finish",
                self.limits.max_connections
            );
            return None;
        };
        let _open = Busy::start(&self.open);
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            // HTTP/2 has its own framing and idle handling.
            return self.inner.process_new(stream, shutdown).await;
        }
        let client = stream.get_socket_digest().and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).copied());
        let (stream, recorder) = if self.refusals.is_some() {
            let (stream, recorder) = RecordedStream::wrap(stream);
            (stream, Some(recorder))
        } else {
            (stream, None)
        };
        let mut session = ServerSession::new_http1(stream);
        let mut idle = Duration::ZERO;
        loop {
            session.set_keepalive(if *shutdown.borrow() { None } else { self.limits.keepalive_secs() });
            if let Some(recorder) = &recorder {
                recorder.reset();
            }
            let Some(reused) = self.serve(session, idle, shutdown, recorder.clone()).await else {
                self.log_refusal(recorder.as_deref(), client);
                return None;
            };
            let (stream, persistent) = reused.consume();
            session = ServerSession::new_http1(stream);
            if let Some(persistent) = persistent {
                persistent.apply_to_session(&mut session);
            }
            idle = self.limits.keepalive_timeout;
        }
    }

    async fn cleanup(&self) {
        // Pingora calls this once the listeners are closed, and the inner cleanup
        // closes every connection waiting for its next request at once, cutting off a
        // request the client may be sending on it right then (what an upgrade under
        // keep-alive load loses). Drain first: for a moment, such a request is still
        // read and answered with `Connection: close`, so the client reconnects (to the
        // new process of an upgrade); only then is what is still idle closed.
        tokio::time::sleep(DRAIN.min(self.limits.keepalive_timeout)).await;
        self.inner.cleanup().await;
    }
}

impl<A> ClientLimits<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    /// The access log line of the connection's last request, when the parser refused it.
    fn log_refusal(&self, recorder: Option<&Recorder>, client: Option<std::net::SocketAddr>) {
        if let (Some(log), Some(refusal)) = (&self.refusals, recorder.and_then(Recorder::refusal)) {
            log.log(&refusal.entry(client));
        }
    }

    /// One request: its head must be in within `idle` plus the header timeout, or the
    /// connection is closed (as nginx does, without a response).
    async fn serve(
        &self,
        mut session: ServerSession,
        idle: Duration,
        shutdown: &ShutdownWatch,
        recorder: Option<Arc<Recorder>>,
    ) -> Option<ReusedHttpStream> {
        let (done, head_in) = oneshot::channel();
        let keepalive_secs = self.limits.keepalive_secs();
        let stopping = shutdown.clone();
        session.set_connection_user_context(Some(Box::new(HeadRead { done, keepalive_secs, shutdown: stopping, recorder })));
        // Pipelined requests are answered in order (RFC 9112 §9.3.2); without this Pingora
        // answers the first and silently drops the rest.
        session.set_pipelining_enabled(true);
        let mut busy = idle.is_zero().then(|| Busy::start(&self.busy));
        let request = self.inner.process_new_http(session, shutdown);
        tokio::pin!(request);
        let deadline = idle + self.limits.header_timeout;
        tokio::select! {
            biased;
            reused = &mut request => return reused,
            // Pingora's coarse timer (10 ms ticks, shared): a tokio timer here wakes the
            // runtime's I/O driver (one eventfd write) for every request on a connection.
            in_time = pingora::prelude::fast_timeout::fast_timeout(deadline, head_in) => {
                if in_time.is_err() {
                    log::debug!("closing a client connection: no complete request head within {deadline:?}");
                    return None;
                }
                busy.get_or_insert_with(|| Busy::start(&self.busy));
            }
        }
        let reused = request.await;
        drop(busy);
        reused
    }
}
