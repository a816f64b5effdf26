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

/// Default of `upstream.connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default of `upstream.read_timeout`.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of `upstream.health_check_interval` (used only with several addresses).
pub const DEFAULT_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Whether addresses are health-checked: only when there are several to choose from.
fn health_checked(addresses: &[String]) -> bool {
    addresses.len() > 1
}

impl UpstreamConfig {
    /// A plain-TCP upstream at `addresses` (`host:port`) with the default timeouts, and
    /// health checks at the default interval when there are several addresses, as
    /// `upstream:` with only `addresses` would give. The addresses are not resolved
    /// here, and there should be at least one (the file requires it).
    pub fn new(addresses: impl IntoIterator<Item = impl Into<String>>) -> UpstreamConfig {
        let addresses: Vec<String> = addresses.into_iter().map(Into::into).collect();
        UpstreamConfig {
            health_check_interval: health_checked(&addresses)
                .then_some(DEFAULT_HEALTH_CHECK_INTERVAL),
            addresses,
            tls: false,
            sni: String::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }
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
    let health_check_interval = if health_checked(&u.addresses) {
        Some(positive_duration(
            "upstream.health_check_interval",
            u.health_check_interval.as_deref(),
            DEFAULT_HEALTH_CHECK_INTERVAL,
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
            DEFAULT_CONNECT_TIMEOUT,
        )?,
        read_timeout: positive_duration(
            "upstream.read_timeout",
            u.read_timeout.as_deref(),
            DEFAULT_READ_TIMEOUT,
        )?,
        health_check_interval,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validated(addresses: &[&str]) -> UpstreamConfig {
        validate_upstream(Some(FileUpstream {
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            tls: false,
            sni: None,
            connect_timeout: None,
            read_timeout: None,
            health_check_interval: None,
        }))
        .unwrap()
    }

    #[test]
    fn new_matches_a_section_with_only_addresses() {
        for addresses in [&["127.0.0.1:3000"][..], &["127.0.0.1:3000", "127.0.0.1:3001"]] {
            assert_eq!(
                format!("{:?}", UpstreamConfig::new(addresses.iter().copied())),
                format!("{:?}", validated(addresses)),
            );
        }
        assert_eq!(UpstreamConfig::new(["127.0.0.1:3000"]).health_check_interval, None);
    }
}
