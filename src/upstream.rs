//! The application behind the proxy: address selection and connection settings.

use std::sync::Arc;

use pingora::lb::{health_check::TcpHealthCheck, selection::RoundRobin, LoadBalancer};
use pingora::services::background::{background_service, GenBackgroundService};
use pingora::upstreams::peer::HttpPeer;

use crate::config::UpstreamConfig;

/// Picks an upstream address and builds peers with the configured timeouts.
pub struct Upstream {
    balancer: Arc<LoadBalancer<RoundRobin>>,
    config: UpstreamConfig,
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
}
