//! The application behind the proxy: address selection and connection settings.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::lb::{health_check::TcpHealthCheck, selection::RoundRobin, LoadBalancer};
use pingora::protocols::http::client::HttpSession;
use pingora::services::background::{background_service, GenBackgroundService};
use pingora::upstreams::peer::HttpPeer;

use crate::config::UpstreamConfig;

/// Connection-specific headers that never cross the proxy on the exchanges it makes
/// itself (Pingora drops them in the proxied flow).
pub(crate) const HOP_BY_HOP: [&str; 3] = ["connection", "keep-alive", "proxy-connection"];

/// Picks an upstream address and builds peers with the configured timeouts.
pub struct Upstream {
    balancer: Arc<LoadBalancer<RoundRobin>>,
    /// The peer of an app at one address, built once: every request goes there,
    /// healthy or not, so the balancer's pick (a hash set and a backend clone per
    /// request) would only say so again.
    only: Option<HttpPeer>,
    config: UpstreamConfig,
    /// For requests the proxy makes itself (see [`Upstream::exchange`]).
    connector: Connector,
}

/// The health-check task to register with the server, when there is more than one address.
pub type HealthService = GenBackgroundService<LoadBalancer<RoundRobin>>;

impl Upstream {
    /// Builds the upstream; the returned service must be added to the server when present.
    pub fn new(config: &UpstreamConfig) -> std::io::Result<(Arc<Upstream>, Option<HealthService>)> {
        let mut balancer = LoadBalancer::<RoundRobin>::try_from_iter(config.addresses.iter())?;
        let (balancer, service) = match config.health_check_interval {
            Some(every) => {
                balancer.set_health_check(TcpHealthCheck::new());
                balancer.health_check_frequency = Some(every);
                let service = background_service("upstream health check", balancer);
                (service.task(), Some(service))
            }
            None => (Arc::new(balancer), None),
        };
        let backends = balancer.backends().get_backend();
        let only = match backends.first() {
            Some(backend) if backends.len() == 1 => Some(peer_for(backend.addr.clone(), config)),
            _ => None,
        };
        let upstream =
            Upstream { balancer, only, config: config.clone(), connector: Connector::new(None) };
        Ok((Arc::new(upstream), service))
    }

    /// A peer for one request. When every address failed its health check the first
    /// candidate is still tried, so the client gets a 502 from a real attempt.
    pub fn peer(&self) -> Option<HttpPeer> {
        if let Some(only) = &self.only {
            return Some(only.clone());
        }
        let backend = self
            .balancer
            .select(b"", 256)
            .or_else(|| self.balancer.select_with(b"", 256, |_, _| true))?;
        Some(peer_for(backend.addr, &self.config))
    }

    /// Starts one request the proxy makes to the app itself, outside the proxied flow
    /// (the current-user lookup, a logout answered by the proxy): connects (or reuses a
    /// kept connection), sends the request header and reads the response header, with
    /// the configured timeouts on every read and write. `body` streams the request
    /// body, if any, after the header.
    pub(crate) async fn start(
        &self,
        req: RequestHeader,
        body: RequestBody<'_>,
    ) -> pingora::Result<Exchange> {
        use pingora::{Error, ErrorType};
        let peer = self.peer().ok_or_else(|| {
            Error::explain(ErrorType::ConnectNoRoute, "no upstream address available")
        })?;
        let (mut session, _reused) = self.connector.get_http_session(&peer).await?;
        session.set_read_timeout(Some(self.config.read_timeout));
        session.set_write_timeout(Some(self.config.read_timeout));
        session.write_request_header(Box::new(req)).await?;
        match body {
            RequestBody::Bytes(b) if b.is_empty() => {}
            RequestBody::Bytes(b) => session.write_request_body(b, true).await?,
            RequestBody::From(client) => {
                while let Some(chunk) = client.read_request_body().await? {
                    session.write_request_body(chunk, false).await?;
                }
            }
        }
        session.finish_request_body().await?;
        session.read_response_header().await?;
        if let Some(stream) = session.stream() {
            quick_ack(stream.id());
        }
        let header = session
            .response_header()
            .cloned()
            .ok_or_else(|| Error::explain(ErrorType::InvalidHTTPHeader, "no response header"))?;
        Ok(Exchange { session, peer, header })
    }

    /// One request the proxy makes to the app itself, outside the proxied flow (as
    /// `init` checks an identity source): connects (or reuses a kept connection),
    /// sends `req` and `body`, and reads the whole response, of at most `max_body`
    /// bytes, with the configured timeouts on every read and write.
    pub async fn exchange(
        &self,
        req: RequestHeader,
        body: Bytes,
        max_body: usize,
    ) -> pingora::Result<(ResponseHeader, Bytes)> {
        let mut ex = self.start(req, RequestBody::Bytes(body)).await?;
        let mut out = BytesMut::new();
        while let Some(chunk) = ex.next_chunk().await? {
            if out.len() + chunk.len() > max_body {
                return pingora::Error::e_explain(
                    pingora::ErrorType::HTTPStatus(502),
                    format!("response body larger than {max_body} bytes"),
                );
            }
            out.extend_from_slice(&chunk);
        }
        let header = ex.header.clone();
        self.release(ex).await;
        Ok((header, out.freeze()))
    }

    /// Returns a finished exchange's connection to the pool (or drops an unfinished one).
    pub(crate) async fn release(&self, mut ex: Exchange) {
        if ex.session.response_done() {
            self.connector
                .release_http_session(ex.session, &ex.peer, Some(Duration::from_secs(60)))
                .await;
        }
    }
}

/// A peer for `addr` with the configured TLS, SNI and timeouts.
fn peer_for(addr: pingora::protocols::l4::socket::SocketAddr, config: &UpstreamConfig) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, config.tls, config.sni.clone());
    peer.options.connection_timeout = Some(config.connect_timeout);
    peer.options.total_connection_timeout = Some(config.connect_timeout);
    peer.options.read_timeout = Some(config.read_timeout);
    peer.options.write_timeout = Some(config.read_timeout);
    peer.options.idle_timeout = Some(std::time::Duration::from_secs(60));
    peer
}

/// Acknowledges what the app sent right away instead of after the delayed-ACK timer.
///
/// An app that writes a response's head and body in two writes with Nagle's algorithm
/// on holds the body until the head is acknowledged, and on a kept-alive connection
/// Linux delays that ACK by 40 ms or more. Setting `TCP_QUICKACK` once the head is read
/// sends the pending ACK at once and takes the socket out of delayed-ACK mode for the
/// rest of the response, so later small writes are acknowledged as they are read.
/// Sending the next request puts the socket back in that mode, hence once per
/// response (not per read: each call is a syscall and often one more ACK segment).
/// Failures are ignored: the worst case is the delay this avoids.
pub(crate) fn quick_ack(fd: std::os::unix::io::RawFd) {
    #[cfg(target_os = "linux")]
    if fd >= 0 {
        let one: libc::c_int = 1;
        // SAFETY: a plain setsockopt on a descriptor the caller holds open for the
        // duration of the call; the option value outlives the call.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
}

/// The body of a request the proxy makes itself.
pub(crate) enum RequestBody<'a> {
    /// A body in hand (empty for none).
    Bytes(Bytes),
    /// The client's request body, streamed through as it arrives.
    From(&'a mut pingora::proxy::Session),
}

/// A request to the app in progress: its response header, and the body to read.
pub(crate) struct Exchange {
    session: HttpSession,
    peer: HttpPeer,
    /// The app's response header.
    pub(crate) header: ResponseHeader,
}

impl Exchange {
    /// The next piece of the response body; `None` at its end.
    pub(crate) async fn next_chunk(&mut self) -> pingora::Result<Option<Bytes>> {
        self.session.read_response_body().await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use pingora::upstreams::peer::Peer;

    use super::*;
    use crate::config::upstream::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT};

    fn timeouts(peer: &HttpPeer) -> [Option<Duration>; 5] {
        let o = &peer.options;
        [
            o.connection_timeout,
            o.total_connection_timeout,
            o.read_timeout,
            o.write_timeout,
            o.idle_timeout,
        ]
    }

    #[test]
    fn one_address_is_every_peer_and_several_are_taken_in_turn() {
        let configured = [
            Some(DEFAULT_CONNECT_TIMEOUT),
            Some(DEFAULT_CONNECT_TIMEOUT),
            Some(DEFAULT_READ_TIMEOUT),
            Some(DEFAULT_READ_TIMEOUT),
            Some(Duration::from_secs(60)),
        ];
        let (one, _) = Upstream::new(&UpstreamConfig::new(["127.0.0.1:3000"])).unwrap();
        for _ in 0..3 {
            let peer = one.peer().unwrap();
            assert_eq!(peer.address().to_string(), "127.0.0.1:3000");
            assert_eq!(timeouts(&peer), configured);
        }
        let (two, health) =
            Upstream::new(&UpstreamConfig::new(["127.0.0.1:3000", "127.0.0.1:3001"])).unwrap();
        assert!(health.is_some());
        let peers: Vec<HttpPeer> = (0..4).map(|_| two.peer().unwrap()).collect();
        let addresses: BTreeSet<String> = peers.iter().map(|p| p.address().to_string()).collect();
        assert_eq!(addresses, BTreeSet::from(["127.0.0.1:3000".into(), "127.0.0.1:3001".into()]));
        assert!(peers.iter().all(|p| timeouts(p) == configured));
    }
}
