//! The least a Pingora proxy can do: forward every request to one address, with
//! nothing but `upstream_peer`. `make bench-load` runs it beside our proxy as the
//! floor of any proxy built on Pingora, so a target our passthrough misses can be
//! told apart from what Pingora itself costs.
//!
//! ```text
//! cargo run --release --example pingora_bare -- 127.0.0.1:18094 127.0.0.1:18080
//! ```
//!
//! One worker thread on the single-threaded scheduler, like the bench's other targets
//! (Pingora's default work-stealing scheduler only costs more with one thread), and
//! the same allocator as our binary, so the two differ only by our code. Everything
//! else is Pingora's default: no quick ACKs, no request hygiene, no limits.

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;

// glibc's heap grows and trims with Pingora's per-response buffers, and how often
// depends on the process's history: with it, this proxy's cost at 32 connections
// swung between runs by a factor of two.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Forwards everything to one address.
struct Bare(HttpPeer);

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.0.clone()))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: pingora_bare LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(2);
    };
    let conf = ServerConf { threads: 1, work_stealing: false, ..ServerConf::default() };
    let mut server = pingora::server::Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(
        &server.configuration,
        Bare(HttpPeer::new(upstream, false, String::new())),
    );
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
