//! No log line at any level holds a cookie value, a session id, a token, a query string
//! or the secret: the real proxy runs at `RUST_LOG=trace` through every fault path with
//! marker values, and its whole log is searched for them.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::{get, page_token, sections, Proxy, Reply, Upstream, SECRET};

const PAGE: &str =
    "<!DOCTYPE html><html><head><meta charset=utf-8><title>t</title></head><body>hi</body></html>";

/// Sends raw bytes and reads whatever comes back until close (or 5 s).
fn raw(proxy: &Proxy, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn no_log_line_at_any_level_holds_a_secret_a_session_or_a_token() {
    let up = Upstream::start(|req| {
        match req.path() {
        "/api/me" => match req.cookie("sid").as_deref() {
            Some("SESSIONMARKER-ok") => Reply::with(200, &[], r#"{"id":"user-1"}"#),
            Some("SESSIONMARKER-boom") => Reply::with(500, &[("Set-Cookie", "sid=SETCOOKIEMARKER-me")], "oops"),
            Some("SESSIONMARKER-junk") => Reply::Raw(b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=SETCOOKIEMARKER-raw-me\r\nBroken header line\r\n\r\n{}".to_vec()),
            _ => Reply::with(401, &[], "{}"),
        },
        "/malformed" => Reply::Raw(b"HTTP/1.1 200 OK\r\nSet-Cookie: session_id=SETCOOKIEMARKER-page\r\nBroken header line\r\n\r\nbody".to_vec()),
        "/logout" => Reply::Raw(b"HTTP/1.1 302 Found\r\nSet-Cookie: sid=SETCOOKIEMARKER-logout\r\nLocation: /lo\0gin\r\n\r\n".to_vec()),
        _ => Reply::with(200, &[("Content-Type", "text/html"), ("Set-Cookie", "other=SETCOOKIEMARKER-ok")], PAGE),
    }
    });
    let identity = "identity:\n  sources:\n    - type: current_user_endpoint\n      path: /api/me\n      cookies: [sid]\n      timeout: 1s\n";
    let extra = "logout:\n  mode: interstitial\n  paths: [\"GET /logout\"]\n";
    let proxy =
        Proxy::start_with_env(&sections(up.addr, identity, extra), &[("RUST_LOG", "trace")]);

    // A logged-in page: its token must not show up either.
    let r = get(&proxy.url("/?token=QUERYMARKER"), &[("Cookie", "sid=SESSIONMARKER-ok")]);
    let token = page_token(&r.text()).expect("a token for the logged-in page");
    for sid in ["SESSIONMARKER-boom", "SESSIONMARKER-junk"] {
        let r = get(&proxy.url("/?token=QUERYMARKER"), &[("Cookie", &format!("sid={sid}"))]);
        assert_eq!(r.status, 200);
        // A session id in a path parameter, on a page whose lookup fails (warned about).
        let r =
            get(&proxy.url("/p;jsessionid=QUERYMARKER-path"), &[("Cookie", &format!("sid={sid}"))]);
        assert_eq!(r.status, 200);
    }
    // A malformed upstream response, a malformed logout answer, a malformed request.
    let r = get(&proxy.url("/malformed?token=QUERYMARKER"), &[("Cookie", "sid=SESSIONMARKER-ok")]);
    assert_eq!(r.status, 502);
    let out = raw(&proxy, b"GET /logout?token=QUERYMARKER HTTP/1.1\r\nHost: t\r\nCookie: sid=SESSIONMARKER-ok\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: document\r\n\r\n");
    assert!(out.starts_with(b"HTTP/1.1 502"), "{}", String::from_utf8_lossy(&out));
    let out = raw(&proxy, b"GET /x?token=QUERYMARKER HTTP/1.1\r\nHost: t\r\nCookie: sid=SESSIONMARKER-bad\r\nBad\x01Header: 1\r\n\r\n");
    assert!(out.starts_with(b"HTTP/1.1 400"), "{}", String::from_utf8_lossy(&out));
    let out = raw(
        &proxy,
        b"GET /y?token=QUERYMARKER HTTP/1.1\r\nCookie: sid=SESSIONMARKER-nohost\r\n\r\n",
    );
    assert!(out.starts_with(b"HTTP/1.1 400"), "{}", String::from_utf8_lossy(&out));

    // The last request's line (at DEBUG): the lines of every request before it are in.
    let log = proxy.wait_for_log("400 for a malformed request: HTTP/1.1 request without Host");
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "the run did log at the low levels");
    assert!(log.contains("current-user endpoint /api/me failed"), "the faults were logged: {log}");
    for (what, marker) in [
        ("a session cookie", "SESSIONMARKER"),
        ("a Set-Cookie value", "SETCOOKIEMARKER"),
        ("a query string", "QUERYMARKER"),
        ("the secret", SECRET),
        ("a token", token.as_str()),
    ] {
        let leaks: Vec<&str> = log.lines().filter(|l| l.contains(marker)).collect();
        assert!(leaks.is_empty(), "{what} leaked into the log:\n{}", leaks.join("\n"));
    }
}
