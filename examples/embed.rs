//! Secure Mode as middleware in a Pingora proxy of your own.
//!
//! This proxy routes by `Host` to two apps with its own `upstream_peer`, and adds
//! Intercom Secure Mode to one of them: requests for the secure host go through the
//! [`SecureMode`] phases, everything else is proxied untouched. The host proxy keeps
//! Secure Mode's [`RequestState`] in its own context, only for the requests it routes
//! to the secure app.
//!
//! ```text
//! INTERCOM_SECRET=... cargo run --example embed -- 127.0.0.1:8080 \
//!     support.example.test=127.0.0.1:3000 shop.example.test=127.0.0.1:3001
//! ```
//!
//! The first app (`support.example.test`) gets Secure Mode with workspace `abc12345`;
//! the user comes from `X-Forwarded-User`, trusted from loopback (an auth proxy in
//! front). `tests/embed.rs` runs this example.

use std::net::SocketAddr;

use async_trait::async_trait;
use bytes::Bytes;
use intercom_secure_proxy::config::{
    IntercomConfig, Secret, SourceConfig, TrustedHeaderConfig, UpstreamConfig,
};
use intercom_secure_proxy::{RedactingLogger, RequestState, SecureMode};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};

/// Routes by host; Secure Mode for one of the two apps.
struct Router {
    secure_host: String,
    secure_mode: SecureMode,
    plain_host: String,
    plain_app: SocketAddr,
}

/// The host proxy's context: Secure Mode's state exists only for the secure app.
#[derive(Default)]
struct Ctx {
    secure: Option<RequestState>,
}

impl Router {
    fn is_secure(&self, req: &RequestHeader) -> bool {
        let host = req.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("");
        let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
        name.eq_ignore_ascii_case(&self.secure_host)
    }
}

#[async_trait]
impl ProxyHttp for Router {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        if self.is_secure(session.req_header()) {
            let state = ctx.secure.insert(RequestState::default());
            self.secure_mode.early_request_filter(session, state);
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        match ctx.secure.as_mut() {
            Some(state) => self.secure_mode.request_filter(session, state).await,
            None => Ok(false),
        }
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        if ctx.secure.is_some() {
            let peer = self.secure_mode.app_peer();
            return peer.map(Box::new).ok_or_else(|| Error::new(ErrorType::ConnectNoRoute));
        }
        log::debug!("{} for {}", session.req_header().uri.path(), self.plain_host);
        Ok(Box::new(HttpPeer::new(self.plain_app, false, String::new())))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        match ctx.secure.as_ref() {
            Some(state) => self.secure_mode.upstream_request_filter(req, state),
            None => Ok(()),
        }
    }

    async fn adjust_upstream_modules(
        &self,
        session: &mut Session,
        resp: &ResponseHeader,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(state) = ctx.secure.as_mut() {
            self.secure_mode.adjust_upstream_modules(session, resp, end_of_stream, state).await;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        match ctx.secure.as_mut() {
            Some(state) => self.secure_mode.response_filter(session, resp, state).await,
            None => Ok(()),
        }
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(state) = ctx.secure.as_mut() {
            self.secure_mode.response_body_filter(body, end_of_stream, state);
        }
        Ok(None)
    }

    async fn logging(&self, session: &mut Session, _e: Option<&pingora::Error>, ctx: &mut Ctx) {
        if let Some(state) = ctx.secure.as_ref() {
            self.secure_mode.logging(session, state);
        }
    }
}

/// `host=ip:port`.
fn route(arg: &str) -> Result<(String, SocketAddr), String> {
    let (host, addr) = arg.split_once('=').ok_or_else(|| format!("{arg:?}: write host=ip:port"))?;
    let addr = addr.parse().map_err(|e| format!("{arg:?}: {e}"))?;
    Ok((host.to_ascii_lowercase(), addr))
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    // Nothing Pingora logs on our behalf may carry a cookie or a token.
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    log::set_max_level(logger.filter());
    log::set_boxed_logger(Box::new(RedactingLogger(logger)))?;

    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, secure, plain] = args.as_slice() else {
        return Err(
            "usage: embed LISTEN SECURE_HOST=ADDR PLAIN_HOST=ADDR (secret in INTERCOM_SECRET)"
                .into(),
        );
    };
    let (secure_host, secure_app) = route(secure)?;
    let (plain_host, plain_app) = route(plain)?;
    let secret = std::env::var("INTERCOM_SECRET")
        .map_err(|_| "set INTERCOM_SECRET to the Messenger secret")?;

    let loopback = vec!["127.0.0.1/32".parse()?];
    let secure_mode = SecureMode::builder(
        IntercomConfig::new("abc12345", Secret::new(secret.into_bytes())),
        UpstreamConfig::new([secure_app.to_string()]),
    )
    .identity_source(SourceConfig::TrustedHeader(TrustedHeaderConfig::new(
        loopback,
        "X-Forwarded-User",
    )))
    .build()?;

    let mut server = Server::new(None)?;
    server.bootstrap();
    let router = Router { secure_host, secure_mode, plain_host, plain_app };
    let mut service = http_proxy_service(&server.configuration, router);
    service.add_tcp(listen);
    server.add_service(service);
    server.run_forever()
}
