//! `upstream`: the application behind the proxy.

use super::*;

/// The upstream application.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `host:port` addresses, balanced round robin with TCP health checks.
    pub addresses: Vec<String>,
    /// Connect over TLS.
    pub tls: bool,
    /// SNI and certificate name for TLS upstreams.
    pub sni: String,
    /// TCP (and TLS) connect timeout.
    pub connect_timeout: Duration,
    /// Timeout for each read from the upstream.
    pub read_timeout: Duration,
    /// How often unhealthy addresses are probed; `None` when there is one address.
    pub health_check_interval: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileUpstream {
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    tls: bool,
    sni: Option<String>,
    connect_timeout: Option<String>,
    read_timeout: Option<String>,
    health_check_interval: Option<String>,
}

pub(super) fn validate_upstream(u: Option<FileUpstream>) -> Result<UpstreamConfig> {
    let u = u.ok_or_else(|| {
        ConfigError::new(
            "upstream",
            "the upstream section is required, e.g. upstream: {addresses: [\"127.0.0.1:3000\"]}",
        )
    })?;
    if u.addresses.is_empty() {
        return Err(ConfigError::new(
            "upstream.addresses",
            "at least one upstream address is required, e.g. [\"127.0.0.1:3000\"]",
        ));
    }
    for (i, a) in u.addresses.iter().enumerate() {
        let resolves = a.to_socket_addrs().map(|mut it| it.next().is_some());
        if !matches!(resolves, Ok(true)) {
            return Err(ConfigError::new(
                format!("upstream.addresses[{i}]"),
                format!("{a:?} is not a resolvable host:port; write it like \"127.0.0.1:3000\""),
            ));
        }
    }
    let sni = u.sni.unwrap_or_default();
    if u.tls && sni.is_empty() {
        return Err(ConfigError::new(
            "upstream.sni",
            "a TLS upstream needs the server name to verify, e.g. sni: app.internal",
        ));
    }
    let health_check_interval = if u.addresses.len() > 1 {
        Some(positive_duration(
            "upstream.health_check_interval",
            u.health_check_interval.as_deref(),
            Duration::from_secs(5),
        )?)
    } else {
        None
    };
    Ok(UpstreamConfig {
        addresses: u.addresses,
        tls: u.tls,
        sni,
        connect_timeout: positive_duration(
            "upstream.connect_timeout",
            u.connect_timeout.as_deref(),
            Duration::from_secs(5),
        )?,
        read_timeout: positive_duration(
            "upstream.read_timeout",
            u.read_timeout.as_deref(),
            Duration::from_secs(60),
        )?,
        health_check_interval,
    })
}
