//! The application behind the proxy: address selection and connection settings.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::lb::{health_check::TcpHealthCheck, selection::RoundRobin, LoadBalancer};
use pingora::services::background::{background_service, GenBackgroundService};
use pingora::upstreams::peer::HttpPeer;

use crate::config::UpstreamConfig;

/// Picks an upstream address and builds peers with the configured timeouts.
pub struct Upstream {
    balancer: Arc<LoadBalancer<RoundRobin>>,
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
        let upstream = Upstream {
            balancer,
            config: config.clone(),
            connector: Connector::new(None),
        };
        Ok((Arc::new(upstream), service))
    }

    /// A peer for one request. When every address failed its health check the first
    /// candidate is still tried, so the client gets a 502 from a real attempt.
    pub fn peer(&self) -> Option<HttpPeer> {
        let backend = self
            .balancer
            .select(b"", 256)
            .or_else(|| self.balancer.select_with(b"", 256, |_, _| true))?;
        let mut peer = HttpPeer::new(backend.addr, self.config.tls, self.config.sni.clone());
        peer.options.connection_timeout = Some(self.config.connect_timeout);
        peer.options.total_connection_timeout = Some(self.config.connect_timeout);
        peer.options.read_timeout = Some(self.config.read_timeout);
        peer.options.write_timeout = Some(self.config.read_timeout);
        peer.options.idle_timeout = Some(std::time::Duration::from_secs(60));
        Some(peer)
    }

    /// One request the proxy makes to the app itself, outside the proxied flow (the
    /// current-user lookup, a logout answered by the proxy): the response header and a
    /// body of at most `max_body` bytes. The connection is kept for reuse when complete.
    pub async fn exchange(
        &self,
        req: RequestHeader,
        body: Bytes,
        max_body: usize,
    ) -> pingora::Result<(ResponseHeader, Bytes)> {
        use pingora::{Error, ErrorType};
        let peer = self
            .peer()
            .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no upstream address available"))?;
        let (mut session, _reused) = self
            .connector
            .get_http_session(&peer)
            .await
            .map_err(|e| e.more_context("connect"))?;
        session
            .write_request_header(Box::new(req))
            .await
            .map_err(|e| e.more_context("write"))?;
        if !body.is_empty() {
            session
                .write_request_body(body, true)
                .await
                .map_err(|e| e.more_context("write body"))?;
        }
        session.finish_request_body().await.map_err(|e| e.more_context("write"))?;
        session.read_response_header().await.map_err(|e| e.more_context("read"))?;
        let header = session
            .response_header()
            .cloned()
            .ok_or_else(|| Error::explain(ErrorType::InvalidHTTPHeader, "no response header"))?;
        let mut out = BytesMut::new();
        while let Some(chunk) = session
            .read_response_body()
            .await
            .map_err(|e| e.more_context("read body"))?
        {
            if out.len() + chunk.len() > max_body {
                return Error::e_explain(
                    ErrorType::HTTPStatus(502),
                    format!("response body larger than {max_body} bytes"),
                );
            }
            out.extend_from_slice(&chunk);
        }
        if session.response_done() {
            self.connector
                .release_http_session(session, &peer, Some(Duration::from_secs(60)))
                .await;
        }
        Ok((header, out.freeze()))
    }
}
