//! Server: turns a validated [`Config`] into a running Pingora server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{ExecutionPhase, Server};
use pingora::services::listening::Service;
use tokio::sync::broadcast::error::RecvError;

use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};

use crate::admin::Admin;
use crate::config::{Config, TlsListener};
use crate::connections::{ClientLimits, Limits};
use crate::in_flight::{InFlight, WaitFor};
use crate::proxy::SecureModeProxy;
use crate::secure_mode::BuildError;

/// Binds every listen address and lets go again, so a port in use is reported before
/// the server starts: Pingora binds inside a service task, retries for 30 s and then
/// panics there while the process lingers with no listener. The sockets are bound but
/// never listen: a client connecting in that instant is refused, not accepted into a
/// backlog that is then reset. Skipped on `run -u`, where the sockets come from the
/// old process. (Overlapping addresses are refused by the config validation.)
pub fn probe_listeners(config: &Config) -> Result<(), ListenError> {
    config.listen.iter().map(|l| l.addr).chain(config.admin.listen).try_for_each(probe)
}

/// [`probe_listeners`] for one address of a service of the embedder's own.
pub fn probe(addr: std::net::SocketAddr) -> Result<(), ListenError> {
    bind_only(addr).map_err(|source| ListenError { addr, source })
}

/// Binds a TCP socket to `addr` (with SO_REUSEADDR, as Pingora binds, so a port in
/// TIME_WAIT passes) without listening on it.
fn bind_only(addr: std::net::SocketAddr) -> std::io::Result<()> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)
}

/// A listen address that cannot be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct ListenError {
    /// The address from `listen`.
    pub addr: std::net::SocketAddr,
    /// Why the bind failed (in use, not an address of this host, no permission).
    #[source]
    pub source: std::io::Error,
}

/// Pingora's own settings, from ours.
pub fn server_conf(config: &Config) -> ServerConf {
    let s = &config.server;
    ServerConf {
        threads: s.threads,
        work_stealing: s.work_stealing,
        grace_period_seconds: Some(s.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(s.graceful_shutdown_timeout.as_secs()),
        pid_file: s.pid_file.display().to_string(),
        upgrade_sock: s.upgrade_sock.display().to_string(),
        error_log: s.error_log.as_ref().map(|p| p.display().to_string()),
        upstream_keepalive_pool_size: s.upstream_keepalive_pool_size,
        ..ServerConf::default()
    }
}

/// Builds a bootstrapped server with the proxy (and health checks) added. `opt` carries
/// the Pingora flags (`-d`, `-u`); the configuration file is ours, not Pingora's.
///
/// Unlike a bare Pingora server, it stops as soon as no request is in flight once a
/// graceful stop (`SIGTERM`, or the end of an upgrade) has begun, instead of always
/// sleeping the whole `grace_period`.
pub fn build(config: Config, opt: Opt) -> Result<Server, BuildError> {
    let mut server = Server::new_with_opt_and_conf(opt, server_conf(&config));
    server.bootstrap();
    let counts = add_proxy_service(&mut server, &config)?;
    exit_when_idle(&server, counts, config.server.grace_period);
    Ok(server)
}

/// Adds the proxy service for `config` (with its client limits and the apps' health
/// checks) to an existing server.
pub fn add_proxy(server: &mut Server, config: &Config) -> Result<(), BuildError> {
    add_proxy_service(server, config).map(drop)
}

/// During Pingora's grace period, exits the process (status 0) as soon as nothing is
/// lost by it: once the listeners have stopped accepting and no connection they
/// accepted is still on its way to the proxy (see [`crate::in_flight`]). Every answer
/// from then on says `Connection: close`.
///
/// - After `SIGTERM`, once no request is in flight: an idle keep-alive connection is
///   closed by the exit, as nginx closes them on a graceful stop.
/// - After an upgrade (`SIGQUIT`), once every client connection has closed: clients
///   on kept-alive connections get their next answer with `Connection: close` and
///   reconnect to the new process, instead of meeting a closed socket mid-request.
///   Connections that stay idle are cut at the end of the grace period.
fn exit_when_idle(server: &Server, counts: Arc<InFlight>, grace: Duration) {
    let mut phases = server.watch_execution_phase();
    std::thread::spawn(move || {
        let mut upgrade = false;
        loop {
            match phases.blocking_recv() {
                Ok(ExecutionPhase::ShutdownGracePeriod) => break,
                Ok(ExecutionPhase::GracefulUpgradeTransferringFds) => upgrade = true,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
        let (wait, what) = if upgrade {
            (WaitFor::Connections, "client connection")
        } else {
            (WaitFor::Requests, "request in flight")
        };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if counts.settled(wait) {
                log::info!("graceful stop: no {what} left, exiting before the grace period ends");
                std::process::exit(0);
            }
            std::thread::sleep(IDLE_POLL);
        }
    });
}

/// How often the graceful stop checks for requests still in flight.
const IDLE_POLL: Duration = Duration::from_millis(20);

/// The buffers of a client connection's socket: no read buffer (Pingora's default is
/// 64 KiB, allocated with the connection and kept for its whole life, idle or not).
/// Pingora reads a request head into a buffer of its own and a body in chunks of its
/// own, and rustls reads records into its own, so the socket buffer only added a copy;
/// without it an idle connection costs a few KiB (see `crate::connections`). Writes
/// keep Pingora's small buffer, which joins a response head with its first body bytes.
const CLIENT_BUFFERS: L4BufferSettings = L4BufferSettings { read: Some(0), write: None };

/// rustls settings of a TLS listener (its files were checked by the config).
fn tls_settings(tls: &TlsListener) -> Result<TlsSettings, BuildError> {
    let mut settings = TlsSettings::intermediate(
        &tls.cert_file.display().to_string(),
        &tls.key_file.display().to_string(),
    )
    .map_err(|e| BuildError::Tls(crate::warn::describe(&e)))?;
    if tls.h2 {
        settings.enable_h2();
    }
    Ok(settings)
}

/// [`add_proxy`], returning the counts a graceful stop waits for.
fn add_proxy_service(server: &mut Server, config: &Config) -> Result<Arc<InFlight>, BuildError> {
    let limits = Limits {
        header_timeout: config.server.client_header_timeout,
        keepalive_timeout: config.server.client_keepalive_timeout,
        max_connections: config.server.max_client_connections,
    };
    let (proxy, health) = SecureModeProxy::new(config)?;
    let refusals = proxy.access_log();
    let rollouts = proxy.rollouts();
    let mut app =
        ClientLimits::new(pingora::proxy::http_proxy(&server.configuration, proxy), limits)
            .log_refusals(refusals);
    for listener in &config.listen {
        if let Some(tls) = &listener.tls {
            app = app.tls(listener.addr, tls_settings(tls)?.build());
        }
    }
    let (mut service, counts) = app.into_service("intercom-secure-proxy");
    // TLS too is accepted as TCP: the proxy's client connections handshake it.
    for listener in &config.listen {
        service
            .add_listener(ListenerConfig::tcp(listener.addr.to_string()).l4_buffer(CLIENT_BUFFERS));
    }
    server.add_service(service);
    for h in health {
        server.add_service(h);
    }
    if let Some(addr) = config.admin.listen {
        let mut admin = Service::new("admin".to_string(), Admin::new(config, rollouts));
        admin.add_tcp(&addr.to_string());
        server.add_service(admin);
    }
    Ok(counts)
}
