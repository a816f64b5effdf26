//! `examples/embed.rs`, built and run: a Pingora proxy of someone else's that routes by
//! `Host` to two apps and adds Secure Mode to one. That app's pages get a token for
//! the user; the other app's pages come back byte for byte, Intercom code and all.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{Reply, Upstream};

/// The example's binary, next to this test's (`cargo test --all-targets` builds it);
/// built on demand when this test is run alone.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target dir");
    let path = dir.join("examples").join("embed");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", "embed"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo build --example embed");
        assert!(status.success(), "the example does not build");
    }
    path
}

struct Embed {
    child: Child,
    addr: SocketAddr,
    log: tempfile::NamedTempFile,
}

impl Drop for Embed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(secure: SocketAddr, plain: SocketAddr) -> Embed {
    let port = support::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(example_binary())
        .arg(addr.to_string())
        .arg(format!("support.example.test={secure}"))
        .arg(format!("shop.example.test={plain}"))
        .env("INTERCOM_SECRET", support::SECRET)
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .expect("run the example");
    support::wait_listening(addr, &mut child, Duration::from_secs(20), "the example", &|| {
        std::fs::read_to_string(log.path()).unwrap_or_default()
    });
    Embed { child, addr, log }
}

#[test]
fn the_embedding_proxy_adds_secure_mode_to_one_app_and_leaves_the_other_byte_identical() {
    let page = support::corpus("app.html");
    assert!(
        String::from_utf8_lossy(&page).contains("intercomSettings"),
        "the page must carry Intercom code"
    );
    let served = page.clone();
    let secure_app = Upstream::start(move |_| Reply::html(served.clone()));
    let served = page.clone();
    let plain_app = Upstream::start(move |_| Reply::html(served.clone()));
    let embed = start(secure_app.addr, plain_app.addr);
    let url = format!("http://{}/dashboard", embed.addr);
    let user = [("x-forwarded-user", "u-42")];

    let secure = support::get(&url, &[("host", "support.example.test"), user[0]]);
    assert_eq!(secure.status, 200);
    let token = support::page_token(&secure.text()).unwrap_or_else(|| {
        panic!(
            "no token on the secure app's page; example log:\n{}",
            std::fs::read_to_string(embed.log.path()).unwrap_or_default()
        )
    });
    assert_eq!(support::verify(&token)["user_id"], "u-42");
    assert_eq!(support::without_our_script(&secure.body), page, "bytes outside the script changed");
    assert_eq!(secure.header("cache-control"), Some("private, no-store"));
    assert_eq!(secure_app.requests()[0].header("host"), Some("support.example.test"));

    let plain = support::get(&url, &[("host", "shop.example.test"), user[0]]);
    assert_eq!(plain.status, 200);
    assert_eq!(plain.body, page, "the other app's page changed");
    assert_eq!(plain.header("cache-control"), None);
    assert_eq!(plain_app.requests().len(), 1, "the other app was asked once");
    assert_eq!(plain_app.requests()[0].header("host"), Some("shop.example.test"));
    assert_eq!(secure_app.requests().len(), 1, "the secure app saw only its own request");
}

/// The log lines of this test process (only the forgetful embedder below logs here).
static LOGGED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let line = format!("{} {}", record.level(), record.args());
        LOGGED.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }
    fn flush(&self) {}
}

/// An embedder that calls every Secure Mode phase but `response_body_filter`.
struct Forgetful {
    secure_mode: intercom_secure_proxy::SecureMode,
}

#[async_trait::async_trait]
impl pingora::proxy::ProxyHttp for Forgetful {
    type CTX = intercom_secure_proxy::RequestState;

    fn new_ctx(&self) -> Self::CTX {
        Default::default()
    }

    async fn early_request_filter(
        &self,
        session: &mut pingora::proxy::Session,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        self.secure_mode.early_request_filter(session, ctx);
        Ok(())
    }

    async fn request_filter(
        &self,
        session: &mut pingora::proxy::Session,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<bool> {
        self.secure_mode.request_filter(session, ctx).await
    }

    async fn upstream_peer(
        &self,
        _session: &mut pingora::proxy::Session,
        _ctx: &mut Self::CTX,
    ) -> pingora::Result<Box<pingora::upstreams::peer::HttpPeer>> {
        Ok(Box::new(self.secure_mode.app_peer().expect("the app's address")))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut pingora::proxy::Session,
        req: &mut pingora::http::RequestHeader,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        self.secure_mode.upstream_request_filter(req, ctx)
    }

    async fn adjust_upstream_modules(
        &self,
        session: &mut pingora::proxy::Session,
        resp: &pingora::http::ResponseHeader,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        self.secure_mode.adjust_upstream_modules(session, resp, end_of_stream, ctx).await;
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut pingora::proxy::Session,
        resp: &mut pingora::http::ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        self.secure_mode.response_filter(session, resp, ctx).await
    }

    async fn logging(
        &self,
        session: &mut pingora::proxy::Session,
        _e: Option<&pingora::Error>,
        ctx: &mut Self::CTX,
    ) {
        self.secure_mode.logging(session, ctx);
    }
}

#[test]
fn an_embedder_that_skips_response_body_filter_gets_a_logged_error() {
    log::set_logger(&Capture).expect("the only logger of this test process");
    log::set_max_level(log::LevelFilter::Info);
    let app = Upstream::start(|_| Reply::html(support::corpus("app.html")));
    let secure_mode = intercom_secure_proxy::SecureMode::builder(
        intercom_secure_proxy::config::IntercomConfig::new(
            support::APP_ID,
            intercom_secure_proxy::config::Secret::new(support::SECRET.as_bytes().to_vec()),
        ),
        intercom_secure_proxy::config::UpstreamConfig::new([app.addr.to_string()]),
    )
    .identity_source(intercom_secure_proxy::config::SourceConfig::TrustedHeader(
        intercom_secure_proxy::config::TrustedHeaderConfig::new(
            vec!["127.0.0.1/32".parse().unwrap()],
            "X-Forwarded-User",
        ),
    ))
    .build()
    .expect("a valid Secure Mode");
    let addr = format!("127.0.0.1:{}", support::free_port());
    let mut server = pingora::server::Server::new(None).unwrap();
    server.bootstrap();
    let mut service =
        pingora::proxy::http_proxy_service(&server.configuration, Forgetful { secure_mode });
    service.add_tcp(&addr);
    server.add_service(service);
    std::thread::spawn(move || server.run_forever());

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(std::time::Instant::now() < deadline, "the embedding proxy does not listen");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The page goes out short of its announced length, so the client's read may fail:
    // only the proxy's log matters here.
    let url = format!("http://{addr}/dashboard");
    let _ = std::panic::catch_unwind(|| support::get(&url, &[("x-forwarded-user", "u-42")]));
    let wanted = "ERROR /dashboard: the body was sent without SecureMode::response_body_filter";
    loop {
        let logged = LOGGED.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if logged.iter().any(|line| line.starts_with(wanted)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no error logged; the log:\n{}",
            logged.join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
