//! TLS and HTTP/2 towards clients: real curl over `--http2` and real Chromium against a
//! TLS listener with a certificate made by openssl. Rewriting, logouts and compression
//! behave as over HTTP/1.1, without HTTP/1-only headers.

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::tls::certificate;
use support::{Proxy, Reply, Upstream};

const PAGE: &str = "<!doctype html><html><head><title>t</title><script>window.intercomSettings={app_id:'abc12345'};</script></head><body><script>(function(){var w=window;var ic=w.Intercom;if(typeof ic===\"function\"){ic('update',w.intercomSettings);}else{var d=document;var i=function(){i.c(arguments);};i.q=[];i.c=function(args){i.q.push(args);};w.Intercom=i;var s=d.createElement('script');s.async=true;s.src='https://widget.intercom.io/widget/abc12345';d.head.appendChild(s);}})();</script>page</body></html>";

/// The app: a page with Intercom code, a login that sets the session, the current-user
/// endpoint, and a logout.
fn app() -> Upstream {
    Upstream::start(|r| match (r.path(), r.cookie("sid").as_deref()) {
        ("/login", _) => Reply::with(
            302,
            &[("location", "/"), ("set-cookie", "sid=alice; Path=/; HttpOnly")],
            "",
        ),
        ("/logout", _) => {
            Reply::with(302, &[("location", "/"), ("set-cookie", "sid=; Path=/; Max-Age=0")], "")
        }
        ("/api/me", Some("alice")) => Reply::with(
            200,
            &[("content-type", "application/json")],
            r#"{"id":"alice-1","email":"alice@example.com"}"#,
        ),
        ("/api/me", _) => Reply::with(401, &[], ""),
        ("/blob", _) => Reply::with(200, &[("content-type", "application/octet-stream")], blob()),
        _ => Reply::html(PAGE),
    })
}

/// 1 MiB and 7 pseudo-random bytes (xorshift): no two stretches alike, so a DATA frame
/// out of place, lost or doubled shows.
fn blob() -> Vec<u8> {
    let mut x: u32 = 0x9E37_79B9;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    };
    (0..(1 << 20) + 7).map(|_| next()).collect()
}

struct Tls {
    proxy: Proxy,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

fn start(app: &Upstream) -> Tls {
    start_with_server(app, "")
}

/// [`start`] with more `server` keys (indented lines).
fn start_with_server(app: &Upstream, server_keys: &str) -> Tls {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let addr: SocketAddr = format!("127.0.0.1:{}", support::free_port()).parse().unwrap();
    let identity = "identity:\n  sources:\n    - type: current_user_endpoint\n      path: /api/me\n      cookies: [sid]\n";
    let listener = format!(
        "{{address: \"{addr}\", tls: {{cert_file: {}, key_file: {}}}, h2: true}}",
        cert.display(),
        key.display()
    );
    let proxy = Proxy::start_with_listener_and_server(
        &support::sections(app.addr, identity, "logout:\n  paths: [\"/logout\"]\n"),
        &listener,
        server_keys,
    );
    Tls { proxy, addr, _dir: dir }
}

/// curl over HTTP/2 (`-k`: the certificate is self-signed): status line, headers, body.
fn curl_h2(url: &str, args: &[&str]) -> (String, Vec<(String, String)>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let out = Command::new("curl")
        .args(["-sk", "--http2", "-D", "-", "-o"])
        .arg(&body)
        .args(args)
        .arg(url)
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap_or("").trim().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut bytes = Vec::new();
    std::fs::File::open(&body).unwrap().read_to_end(&mut bytes).unwrap();
    (status, headers, bytes)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn http2_over_tls_rewrites_compresses_and_logs_out_like_http1() {
    let app = app();
    let tls = start(&app);
    let url = |path: &str| format!("https://localhost:{}{path}", tls.addr.port());

    // Logged in: the page gets the token, with no HTTP/1-only header.
    let (status, headers, body) = curl_h2(&url("/"), &["-H", "Cookie: sid=alice"]);
    assert_eq!(status, "HTTP/2 200", "{headers:?}\n{}", tls.proxy.log_text());
    for h1_only in ["transfer-encoding", "connection", "keep-alive"] {
        assert_eq!(header(&headers, h1_only), None, "{h1_only} over HTTP/2: {headers:?}");
    }
    assert_eq!(header(&headers, "cache-control"), Some("private, no-store"));
    let text = String::from_utf8(body).unwrap();
    let token = support::page_token(&text).expect("a token over HTTP/2");
    assert_eq!(support::verify(&token)["user_id"], "alice-1");
    assert_eq!(support::without_our_script(text.as_bytes()), PAGE.as_bytes());

    // Compressed for a client that accepts gzip, and still the same page.
    let (status, headers, body) =
        curl_h2(&url("/"), &["-H", "Cookie: sid=alice", "-H", "Accept-Encoding: gzip"]);
    assert_eq!(status, "HTTP/2 200");
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"), "{headers:?}");
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut plain).expect("gzip decodes");
    assert!(support::page_token(&plain).is_some(), "no token in the compressed page");

    // Logged out: the watcher only.
    let (_, _, body) = curl_h2(&url("/"), &[]);
    assert_eq!(support::without_our_script(&body), PAGE.as_bytes());
    assert!(support::page_token(&String::from_utf8_lossy(&body)).is_none());

    // A logout: Intercom's cookies expire and the marker is set.
    let (status, headers, _) = curl_h2(&url("/logout"), &["-H", "Cookie: sid=alice"]);
    assert_eq!(status, "HTTP/2 302");
    let cookies: Vec<&str> =
        headers.iter().filter(|(k, _)| k == "set-cookie").map(|(_, v)| v.as_str()).collect();
    assert!(cookies.iter().any(|c| c.starts_with("intercom-session-abc12345=;")), "{cookies:?}");
    assert!(cookies.iter().any(|c| c.starts_with("__isp_shutdown=1")), "{cookies:?}");

    // The plain listener still answers HTTP/1.1.
    let got = support::get(&tls.proxy.url("/"), &[("cookie", "sid=alice")]);
    assert!(support::page_token(&got.text()).is_some());
}

#[test]
fn chromium_boots_the_messenger_with_a_token_over_tls() {
    let app = app();
    let tls = start(&app);
    let url = |path: &str| format!("https://localhost:{}{path}", tls.addr.port());
    let steps = support::run_browser(
        vec![
            json!({"goto": url("/login"), "wait": "boot", "timeoutMs": 8000}),
            json!({"goto": url("/logout"), "wait": "shutdown", "timeoutMs": 8000}),
        ],
        &|| format!("proxy log:\n{}", tls.proxy.log_text()),
    );
    let boot = &steps[0];
    assert_eq!(boot["status"], 200, "{boot}");
    let calls = boot["calls"].as_array().unwrap_or_else(|| panic!("no Messenger calls: {boot}"));
    let booted =
        calls.iter().find(|c| c["method"] == "boot").unwrap_or_else(|| panic!("no boot: {boot}"));
    let token = booted["settings"]["intercom_user_jwt"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {booted}"));
    assert_eq!(support::verify(token)["user_id"], "alice-1");
    assert!(
        booted["settings"].get("user_id").is_none(),
        "a plain user_id reached the Messenger: {booted}"
    );
    let after = &steps[1];
    let calls = after["calls"]
        .as_array()
        .unwrap_or_else(|| panic!("no Messenger calls after the logout: {after}"));
    assert!(
        calls.iter().any(|c| c["method"] == "shutdown"),
        "no shutdown after the logout: {after}"
    );
}

#[test]
fn tls_listener_mistakes_are_refused_with_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let port = support::free_port();
    let cases = [
        (format!("{{address: \"127.0.0.1:{port}\", h2: true}}"), "`listen[0].h2`"),
        (format!("{{address: \"127.0.0.1:{port}\", tls: {{cert_file: /nonexistent.pem, key_file: {}}}}}", key.display()), "`listen[0].tls.cert_file`"),
        (format!("{{address: \"127.0.0.1:{port}\", tls: {{cert_file: {}, key_file: {}}}}}", garbage.display(), key.display()), "`listen[0].tls`"),
        (format!("{{address: \"127.0.0.1:{port}\", tls: {{cert_file: {}, key_file: {}}}}}", key.display(), cert.display()), "`listen[0].tls`"),
        (format!("{{adress: \"127.0.0.1:{port}\"}}"), "listen[0]"),
    ];
    for (listener, key_name) in cases {
        let conf = dir.path().join("c.yaml");
        let yaml = format!(
            "listen: [{listener}]\n{}",
            support::sections("127.0.0.1:3000".parse().unwrap(), support::TRUSTED_HEADER, "")
        );
        std::fs::write(&conf, yaml).unwrap();
        let (code, text) =
            support::check_config_file(&conf, &[("TEST_INTERCOM_SECRET", support::SECRET)]);
        assert_eq!(code, Some(2), "{listener}: {text}");
        assert!(text.contains(key_name), "{listener}: expected {key_name} in {text}");
    }
}

#[test]
fn a_tls_handshake_that_never_finishes_is_cut_off_after_the_header_timeout() {
    let app = app();
    let tls = start_with_server(&app, "  client_header_timeout: 1s\n");
    let mut s = TcpStream::connect(tls.addr).unwrap();
    // The start of a ClientHello record that announces 512 bytes and sends one.
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    // Far beyond the 1 s configured, far below the 60 s Pingora gives a handshake.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 64];
    let read = s.read(&mut buf);
    let closed = match &read {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    };
    assert!(closed, "the half handshake outlived client_header_timeout: {read:?}");
    let (status, _, body) = curl_h2(&format!("https://localhost:{}/", tls.addr.port()), &[]);
    assert!(status.starts_with("HTTP/2 200"), "{status}");
    assert!(support::find(&body, b"</html>").is_some());
    drop(tls.proxy);
}

#[test]
fn a_large_body_over_http2_arrives_byte_for_byte() {
    // h2 joins DATA frames into writes of up to 64 KiB (vendor/h2/PATCH.md): every
    // frame of a long body must still come out whole and in order.
    let app = app();
    let tls = start(&app);
    let (status, _, body) = curl_h2(&format!("https://localhost:{}/blob", tls.addr.port()), &[]);
    assert!(status.starts_with("HTTP/2 200"), "{status}");
    let want = blob();
    assert_eq!(body.len(), want.len());
    assert!(
        body == want,
        "the body differs from byte {:?}",
        body.iter().zip(&want).position(|(a, b)| a != b)
    );
}
