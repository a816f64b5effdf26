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
    assert!(String::from_utf8_lossy(&page).contains("intercomSettings"), "the page must carry Intercom code");
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
        panic!("no token on the secure app's page; example log:\n{}", std::fs::read_to_string(embed.log.path()).unwrap_or_default())
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
