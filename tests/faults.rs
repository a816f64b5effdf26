//! Hostile clients and odd upstreams through the real proxy, over raw sockets where an
//! HTTP library would hide the bytes: request hygiene, framing per HTTP version,
//! pipelining, and logouts whose upstream misbehaves.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::{get, page_token, sections, Proxy, Reply, Upstream, TRUSTED_HEADER};

const PAGE: &str =
    "<!DOCTYPE html><html><head><meta charset=utf-8><title>t</title></head><body>hi</body></html>";

/// Writes `request` on a fresh connection and reads until the proxy closes it (or 10 s).
fn raw(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// The status line and header lines of the first response in `bytes`.
fn head_of(bytes: &[u8]) -> (String, Vec<(String, String)>) {
    let end = support::find(bytes, b"\r\n\r\n").expect("a complete response head");
    let text = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

fn all<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
}

fn app() -> Upstream {
    Upstream::start(|req| {
        match req.path() {
        "/dup-length" => Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        "/cached" => Reply::with(
            200,
            &[("Content-Type", "text/html; charset=utf-8"), ("Expires", "Thu, 01 Dec 2099 16:00:00 GMT"), ("Cache-Control", "max-age=600")],
            PAGE,
        ),
        "/logout" => Reply::with(302, &[("Location", "/login")], ""),
        _ => Reply::html(PAGE),
    }
    })
}

fn proxy_for(up: &Upstream) -> Proxy {
    Proxy::start(&sections(up.addr, TRUSTED_HEADER, "logout:\n  paths: [\"GET /logout\"]\n"))
}

#[test]
fn http_1_1_requests_need_exactly_one_valid_host() {
    let up = app();
    let proxy = proxy_for(&up);
    for request in [
        &b"GET /a HTTP/1.1\r\n\r\n"[..],
        b"GET /b HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        b"GET /c HTTP/1.1\r\nHost: x.example.com; Max-Age=99999; Domain=victim.example\r\n\r\n",
    ] {
        let (status, _) = head_of(&raw(proxy.addr, request));
        assert!(
            status.starts_with("HTTP/1.1 400"),
            "{status} for {:?}",
            String::from_utf8_lossy(request)
        );
    }
    assert!(up.requests().is_empty(), "refused requests never reach the app");
    // HTTP/1.0 has no Host requirement.
    let (status, _) = head_of(&raw(proxy.addr, b"GET /d HTTP/1.0\r\n\r\n"));
    assert!(status.ends_with("200 OK") || status.contains(" 200"), "{status}");
}

#[test]
fn duplicate_content_lengths_are_sent_on_as_one() {
    let up = app();
    let proxy = proxy_for(&up);
    let out = raw(proxy.addr, b"POST /form HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    assert!(head_of(&out).0.contains(" 200"), "{}", String::from_utf8_lossy(&out));
    let out = raw(
        proxy.addr,
        b"POST /list HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\nConnection: close\r\n\r\nhello",
    );
    assert!(head_of(&out).0.contains(" 200"), "{}", String::from_utf8_lossy(&out));
    for r in up.requests() {
        let lines: Vec<_> = r
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(lines, ["5"], "{} reached the app with {lines:?}", r.target);
        assert_eq!(r.body, b"hello");
    }
    // Conflicting lengths are refused.
    let (status, _) = head_of(&raw(
        proxy.addr,
        b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    ));
    assert!(status.contains(" 400"), "{status}");
    // And from the app: one line to the client.
    let out = raw(proxy.addr, b"GET /dup-length HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let (status, headers) = head_of(&out);
    assert!(status.contains(" 200"), "{status}");
    assert_eq!(all(&headers, "content-length"), ["2"]);
    assert!(out.ends_with(b"\r\n\r\nok"));
}

#[test]
fn a_host_header_never_becomes_cookie_attributes() {
    let up = app();
    let proxy = proxy_for(&up);
    // A reg-name the app may accept, but no DNS name: host-only expiries only.
    let out = raw(proxy.addr, b"GET /logout HTTP/1.1\r\nHost: x.example.com;Domain=victim.example\r\nConnection: close\r\n\r\n");
    let (status, headers) = head_of(&out);
    assert!(status.contains(" 302"), "{status}");
    let cookies = all(&headers, "set-cookie");
    assert!(cookies.iter().any(|c| c.starts_with("intercom-session-")), "{cookies:?}");
    assert!(cookies.iter().all(|c| !c.contains("victim") && !c.contains("Domain")), "{cookies:?}");
    // A real host name still gets the domain-wide expiry.
    let out = raw(
        proxy.addr,
        b"GET /logout HTTP/1.1\r\nHost: App.Example.com:8443\r\nConnection: close\r\n\r\n",
    );
    let cookies: Vec<String> =
        all(&head_of(&out).1, "set-cookie").into_iter().map(str::to_string).collect();
    assert!(cookies.iter().any(|c| c.ends_with("; Domain=.app.example.com")), "{cookies:?}");
}

#[test]
fn rewritten_pages_lose_expires() {
    let up = app();
    let proxy = proxy_for(&up);
    let r = get(&proxy.url("/cached"), &[("X-Forwarded-User", "alice")]);
    assert!(page_token(&r.text()).is_some());
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    assert_eq!(r.header("expires"), None, "an HTTP/1.0 cache would keep the page");
}

/// The logout effects every answer to a logout must carry: Intercom's cookies expired
/// and the shutdown marker set.
fn assert_logout_effects(headers: &[(String, String)], what: &str) {
    let cookies = all(headers, "set-cookie");
    for prefix in ["intercom-session-", "intercom-id-", "intercom-device-id-"] {
        assert!(
            cookies.iter().any(|c| c.starts_with(prefix) && c.contains("Max-Age=0")),
            "{what}: {prefix} not expired in {cookies:?}"
        );
    }
    assert!(
        cookies.iter().any(|c| c.starts_with("__isp_shutdown=1")),
        "{what}: no marker in {cookies:?}"
    );
}

const NAVIGATE: &str =
    "Sec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: document\r\nConnection: close\r\n";

fn interstitial_proxy(upstream: SocketAddr) -> Proxy {
    let logout = "logout:\n  mode: interstitial\n  paths: [\"GET|POST /logout*\"]\n";
    let yaml = sections(upstream, TRUSTED_HEADER, logout).replacen(
        "\nintercom:",
        "\n  read_timeout: 1s\nintercom:",
        1,
    );
    Proxy::start(&yaml)
}

fn logout_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n{NAVIGATE}\r\n").into_bytes()
}

#[test]
fn interstitial_logouts_answer_like_any_request_and_always_log_out() {
    let big = vec![b'x'; 3 << 20];
    let big_body = big.clone();
    let up = Upstream::start(move |req| {
        match req.path() {
        "/logout-garbage" => Reply::Raw(b"this is not HTTP\r\n\r\n".to_vec()),
        "/logout-crlf" => Reply::Raw(b"HTTP/1.1 302 Found\r\nLocation: /login\rSet-Cookie: evil=1\r\nContent-Length: 0\r\n\r\n".to_vec()),
        "/logout-nul" => Reply::Raw(b"HTTP/1.1 302 Found\r\nLocation: /lo\0gin\r\nContent-Length: 0\r\n\r\n".to_vec()),
        "/logout-hang" => Reply::After(Duration::from_secs(30), Box::new(Reply::with(302, &[("Location", "/login")], ""))),
        "/logout-big" => Reply::with(200, &[("Content-Type", "text/plain")], big_body.clone()),
        "/logout-big-redirect" => Reply::with(302, &[("Location", "/login"), ("Content-Type", "text/html")], big_body.clone()),
        _ => Reply::with(302, &[("Location", "/login")], ""),
    }
    });
    let proxy = interstitial_proxy(up.addr);
    for (path, status) in [
        ("/logout-garbage", " 502"),
        ("/logout-crlf", " 502"),
        ("/logout-nul", " 502"),
        ("/logout-hang", " 502"),
    ] {
        // The client's read timeout (10 s) is far below the hanging app's 30 s: an answer
        // at all means read_timeout (1 s) was applied.
        let out = raw(proxy.addr, &logout_request(path));
        let (line, headers) = head_of(&out);
        assert!(line.contains(status), "{path}: {line}");
        assert_logout_effects(&headers, path);
        assert!(all(&headers, "set-cookie").iter().all(|c| !c.starts_with("evil")), "{path}");
    }
    // A large body streams through (no 1 MB limit), still with the logout.
    let out = raw(proxy.addr, &logout_request("/logout-big"));
    let (line, headers) = head_of(&out);
    assert!(line.contains(" 200"), "{line}");
    assert_logout_effects(&headers, "big");
    let body_at = support::find(&out, b"\r\n\r\n").unwrap() + 4;
    let body = &out[body_at..];
    let decoded = if all(&headers, "transfer-encoding") == ["chunked"] {
        dechunk(body)
    } else {
        body.to_vec()
    };
    assert_eq!(decoded.len(), big.len());
    assert!(decoded == big);
    // A large redirect body is replaced by the interstitial.
    let out = raw(proxy.addr, &logout_request("/logout-big-redirect"));
    let (line, headers) = head_of(&out);
    assert!(line.contains(" 200"), "{line}");
    assert_logout_effects(&headers, "big redirect");
    assert!(support::find(&out, b"location.replace").is_some());
}

#[test]
fn an_interstitial_logout_with_the_app_down_is_a_502_that_still_logs_out() {
    let dead: SocketAddr = format!("127.0.0.1:{}", support::free_port()).parse().unwrap();
    let proxy = interstitial_proxy(dead);
    let (line, headers) = head_of(&raw(proxy.addr, &logout_request("/logout")));
    assert!(line.contains(" 502"), "{line}");
    assert_logout_effects(&headers, "app down");
}

/// Decodes a chunked body.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = support::find(body, b"\r\n").expect("chunk size line");
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap().trim(), 16)
                .unwrap();
        body = &body[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[test]
fn pipelined_requests_are_all_answered_in_order() {
    let up = Upstream::start(|req| {
        Reply::with(200, &[("Content-Type", "text/plain")], format!("answer for {}", req.path()))
    });
    let proxy = proxy_for(&up);
    let out = raw(
        proxy.addr,
        b"GET /first HTTP/1.1\r\nHost: t\r\n\r\nGET /second HTTP/1.1\r\nHost: t\r\n\r\nGET /third HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&out);
    let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s} missing from {text}"));
    assert!(
        at("answer for /first") < at("answer for /second")
            && at("answer for /second") < at("answer for /third"),
        "{text}"
    );
    assert_eq!(text.matches("HTTP/1.1 200").count(), 3, "{text}");
    let paths: Vec<String> = up.requests().iter().map(|r| r.path().to_string()).collect();
    assert_eq!(paths, ["/first", "/second", "/third"]);
}

fn limited_proxy(up: &Upstream, server: &str) -> Proxy {
    // The support config already has a server section: add to it.
    let yaml = sections(up.addr, TRUSTED_HEADER, "");
    Proxy::start_with_server(&yaml, server)
}

/// Reads until the proxy closes the connection; false if it is still open after 10 s.
fn closed_by_proxy(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn a_client_trickling_its_request_head_is_cut_off() {
    let up = app();
    let proxy = limited_proxy(&up, "  client_header_timeout: 1s\n");
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    // A byte every 200 ms: each read is quick, the head never completes in time.
    let trickler = {
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || {
            for b in b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n" {
                if w.write_all(&[*b]).is_err() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            false
        })
    };
    assert!(closed_by_proxy(&mut s), "the connection outlived client_header_timeout");
    assert!(up.requests().is_empty());
    drop(s);
    let _ = trickler.join();
}

#[test]
fn idle_keep_alive_connections_are_closed_after_the_keepalive_timeout() {
    let up = app();
    let proxy = limited_proxy(&up, "  client_keepalive_timeout: 1s\n");
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut first = [0u8; 64];
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = s.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&first[..n]));
    // Now idle: the proxy must close it (Pingora alone keeps it forever).
    assert!(closed_by_proxy(&mut s), "the idle connection was kept past client_keepalive_timeout");
}

#[test]
fn connections_beyond_the_cap_are_closed_with_a_log_line() {
    let up = app();
    let proxy = limited_proxy(&up, "  max_client_connections: 2\n");
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(proxy.addr).unwrap();
            // A complete request makes sure the proxy has taken the connection.
            s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            let mut buf = [0u8; 16];
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            assert!(s.read(&mut buf).unwrap() > 0);
            s
        })
        .collect();
    let mut third = TcpStream::connect(proxy.addr).unwrap();
    let _ = third.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(closed_by_proxy(&mut third), "a third connection was served");
    assert!(proxy.log_text().contains("max_client_connections = 2"), "{}", proxy.log_text());
    drop(held);
    // Slots come back when connections end.
    let mut ok = false;
    for _ in 0..50 {
        let out = raw(proxy.addr, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        if out.starts_with(b"HTTP/1.1 200") {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ok, "no connection was served after the held ones closed");
}

#[test]
fn http_1_0_clients_never_get_chunked_framing() {
    // A chunked app page, logged in (rewritten) and logged out (passed through).
    let up = Upstream::start(|_| Reply::Chunked {
        status: 200,
        headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
        pieces: vec![PAGE.as_bytes()[..40].to_vec(), PAGE.as_bytes()[40..].to_vec()],
        pause: Duration::from_millis(10),
    });
    let proxy = proxy_for(&up);
    for (who, extra) in [("logged in", "X-Forwarded-User: alice\r\n"), ("logged out", "")] {
        let out = raw(proxy.addr, format!("GET / HTTP/1.0\r\n{extra}\r\n").as_bytes());
        let (status, headers) = head_of(&out);
        assert!(status.starts_with("HTTP/1.1 200"), "{who}: {status}");
        assert!(all(&headers, "transfer-encoding").is_empty(), "{who}: {headers:?}");
        assert_eq!(
            all(&headers, "connection"),
            ["close"],
            "{who}: the body ends with the connection"
        );
        let body = &out[support::find(&out, b"\r\n\r\n").unwrap() + 4..];
        assert!(
            body.starts_with(b"<!DOCTYPE html>") && body.ends_with(b"</html>"),
            "{who}: {}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(page_token(&String::from_utf8_lossy(body)).is_some(), who == "logged in");
    }
}

/// The body of [`split_write_upstream`]'s responses.
const SPLIT_BODY: &[u8] = b"head, then the body in pieces";

/// A keep-alive HTTP/1.1 app that writes each response's head, then its body in `pieces`
/// writes, with Nagle's algorithm on (no TCP_NODELAY), as hand-rolled and embedded
/// servers do.
fn split_write_upstream(pieces: usize) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while support::find(&buf, b"\r\n\r\n").is_none() {
                        match conn.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = support::find(&buf, b"\r\n\r\n").unwrap() + 4;
                    let close = String::from_utf8_lossy(&buf[..end])
                        .to_ascii_lowercase()
                        .contains("connection: close");
                    buf.drain(..end);
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                        SPLIT_BODY.len()
                    );
                    let written = conn.write_all(head.as_bytes()).is_ok()
                        && SPLIT_BODY
                            .chunks(SPLIT_BODY.len().div_ceil(pieces))
                            .all(|piece| conn.write_all(piece).is_ok());
                    if !written || close {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Milliseconds for one request on a new client connection.
fn one_request_ms(addr: SocketAddr) -> f64 {
    let started = std::time::Instant::now();
    let out = raw(addr, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert!(out.ends_with(SPLIT_BODY), "{}", String::from_utf8_lossy(&out));
    started.elapsed().as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[test]
fn an_app_writing_head_and_body_separately_is_not_stalled_by_delayed_acks() {
    // Nagle on the app's side holds each write until the one before is acknowledged; a
    // delayed ACK on our reused upstream connection holds that for Linux's 40 ms
    // minimum. The one clock reading in this suite, with a margin of 2x to that fixed
    // kernel timer: without quick ACKs every request takes >= 40 ms. One body write is
    // the usual shape; with four, each later write of the body also waits for an
    // acknowledgement, which the one quick ACK per response must still bring at once.
    for pieces in [1, 4] {
        let app = split_write_upstream(pieces);
        let proxy = Proxy::start(&sections(app, TRUSTED_HEADER, ""));
        for _ in 0..3 {
            one_request_ms(proxy.addr); // warm the upstream connection pool
        }
        let through = median((0..15).map(|_| one_request_ms(proxy.addr)).collect());
        let direct = median((0..15).map(|_| one_request_ms(app)).collect());
        assert!(
            through < 20.0,
            "{pieces} body write(s): median {through:.1} ms through the proxy vs {direct:.1} ms direct: the delayed-ACK stall is back"
        );
    }
}
