//! What a stopping server waits for before it exits early: client connections that
//! Pingora accepted but has not handed to [`crate::connections::ClientLimits`] yet,
//! open connections, and requests in flight.
//!
//! Pingora accepts a connection in its accept loop and hands it over from a task of its
//! own, a moment later (and, over TLS, only after the handshake, which is why TLS is
//! handshaken by [`crate::connections`] instead). A count that starts at the handover
//! reads zero in between, and a server exiting then cuts a connection it had accepted:
//! so the count starts in the accept loop itself, through Pingora's connection filter,
//! and moves to the open and busy counts before it leaves the arriving one. Once the
//! accept loops have stopped, no count can rise from zero again.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use pingora::listeners::ConnectionFilter;

/// The counts of one proxy service (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    /// Accepted by Pingora, not yet handed over.
    arriving: AtomicUsize,
    /// Client connections open, idle or not.
    open: AtomicUsize,
    /// Requests in flight (HTTP/1), or HTTP/2 connections; a new connection counts from
    /// its accept, its first request may be on the way.
    busy: AtomicUsize,
    /// Set once the service's accept loops have ended.
    stopped_accepting: AtomicBool,
}

/// What a graceful stop waits for before exiting.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WaitFor {
    /// Every request in flight (`SIGTERM`): idle keep-alive connections are closed.
    Requests,
    /// Every client connection (an upgrade): clients on kept-alive connections get
    /// `Connection: close` with their next answer and reconnect to the new process.
    Connections,
}

impl InFlight {
    /// Counts one connection open and its first request busy, then stops counting it as
    /// arriving: in that order, so that the sum never reads zero in between.
    pub(crate) fn hand_over(self: &Arc<Self>) -> (Counted, Counted) {
        let open = self.count(Kind::Open);
        let busy = self.count(Kind::Busy);
        // Counted by `filter` in the accept loop, before Pingora handed the connection on.
        self.arriving.fetch_sub(1, Ordering::SeqCst);
        (open, busy)
    }

    /// Counts one request in flight while the guard lives.
    pub(crate) fn request(self: &Arc<Self>) -> Counted {
        self.count(Kind::Busy)
    }

    /// Records that the accept loops have ended: nothing new can arrive.
    pub(crate) fn stop_accepting(&self) {
        self.stopped_accepting.store(true, Ordering::SeqCst);
    }

    /// Whether exiting now loses nothing that `wait` waits for.
    pub(crate) fn settled(&self, wait: WaitFor) -> bool {
        // Read in the order counts move (stopped, arriving, then open and busy), so a
        // connection moving between two of them is seen in one or the other.
        if !self.stopped_accepting.load(Ordering::SeqCst)
            || self.arriving.load(Ordering::SeqCst) > 0
        {
            return false;
        }
        let left = match wait {
            WaitFor::Requests => &self.busy,
            WaitFor::Connections => &self.open,
        };
        left.load(Ordering::SeqCst) == 0
    }

    /// The connection filter that counts arrivals, for the service's listeners.
    pub(crate) fn filter(self: &Arc<Self>) -> Arc<dyn ConnectionFilter> {
        Arc::new(Arrivals(self.clone()))
    }

    fn count(self: &Arc<Self>, kind: Kind) -> Counted {
        self.counter(kind).fetch_add(1, Ordering::SeqCst);
        Counted { of: self.clone(), kind }
    }

    fn counter(&self, kind: Kind) -> &AtomicUsize {
        match kind {
            Kind::Open => &self.open,
            Kind::Busy => &self.busy,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Open,
    Busy,
}

/// One open connection or one request in flight, counted while it lives.
pub(crate) struct Counted {
    of: Arc<InFlight>,
    kind: Kind,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.of.counter(self.kind).fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts each connection as Pingora's accept loop accepts it, and accepts them all.
#[derive(Debug)]
struct Arrivals(Arc<InFlight>);

#[async_trait]
impl ConnectionFilter for Arrivals {
    async fn should_accept(&self, _addr: Option<&std::net::SocketAddr>) -> bool {
        self.0.arriving.fetch_add(1, Ordering::SeqCst);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_arrival_is_counted_from_its_accept_to_the_end_of_its_connection() {
        let counts = Arc::new(InFlight::default());
        counts.stop_accepting();
        assert!(counts.settled(WaitFor::Connections));
        assert!(counts.filter().should_accept(None).await);
        assert!(!counts.settled(WaitFor::Requests), "accepted, not handed over");
        let (open, busy) = counts.hand_over();
        assert!(!counts.settled(WaitFor::Requests) && !counts.settled(WaitFor::Connections));
        drop(busy);
        assert!(counts.settled(WaitFor::Requests), "an idle connection holds no stop");
        assert!(!counts.settled(WaitFor::Connections), "but an upgrade waits for it");
        drop(open);
        assert!(counts.settled(WaitFor::Connections));
    }

    #[test]
    fn nothing_is_settled_while_the_listeners_still_accept() {
        let counts = InFlight::default();
        assert!(!counts.settled(WaitFor::Requests));
        counts.stop_accepting();
        assert!(counts.settled(WaitFor::Requests));
    }
}
