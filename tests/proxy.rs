//! The proxy binary end to end over HTTP: what is rewritten, what passes through byte
//! for byte, compression, header hygiene and failure behaviour.

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use support::conn::Conn;
use support::{get, page_token, request, sections, verify, Proxy, Reply, Upstream, TRUSTED_HEADER};

const ALICE: [(&str, &str); 3] = [
    ("X-Forwarded-User", "alice-1"),
    ("X-Forwarded-Email", "alice@example.com"),
    ("X-Forwarded-Name", "Alice"),
];

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data).read_to_end(&mut out).unwrap();
    out
}

fn brotli_compress(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::BrotliCompress(&mut &data[..], &mut out, &Default::default()).unwrap();
    out
}

fn brotli_decompress(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::BrotliDecompress(&mut &data[..], &mut out).unwrap();
    out
}

/// An upstream serving app.html (with validators) and a few other routes.
fn app() -> Upstream {
    let page = support::corpus("app.html");
    Upstream::start(move |req| match req.path() {
        "/" | "/excluded/page" => Reply::with(
            200,
            &[
                ("Content-Type", "text/html; charset=utf-8"),
                ("ETag", "\"v1\""),
                ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
                ("Cache-Control", "public, max-age=600"),
                ("Vary", "Cookie"),
            ],
            page.clone(),
        ),
        "/gzip" => Reply::with(
            200,
            &[("Content-Type", "text/html"), ("Content-Encoding", "gzip")],
            gzip(&page),
        ),
        "/br" => Reply::with(
            200,
            &[("Content-Type", "text/html"), ("Content-Encoding", "br")],
            brotli_compress(&page),
        ),
        "/zstd" => Reply::with(
            200,
            &[("Content-Type", "text/html"), ("Content-Encoding", "zstd")],
            b"\x28\xb5\x2f\xfdnot really zstd".to_vec(),
        ),
        // Bytes outside visible ASCII in the coding: nothing says the body is plain HTML.
        "/odd-coding" => Reply::with(
            200,
            &[("Content-Type", "text/html"), ("Content-Encoding", "gzip\u{e9}")],
            page.clone(),
        ),
        "/json" => Reply::with(
            200,
            &[("Content-Type", "application/json"), ("ETag", "\"j\"")],
            br#"{"a":"</script>"}"#.to_vec(),
        ),
        "/not-modified" => Reply::with(304, &[("ETag", "\"v1\"")], Vec::new()),
        "/partial" => Reply::with(
            206,
            &[("Content-Type", "text/html"), ("Content-Range", "bytes 0-9/100")],
            b"<html><he".to_vec(),
        ),
        "/no-transform" => Reply::with(
            200,
            &[("Content-Type", "text/html"), ("Cache-Control", "no-transform")],
            page.clone(),
        ),
        "/utf16" => Reply::with(
            200,
            &[("Content-Type", "text/html; charset=utf-16")],
            b"<\0h\0t\0m\0l\0>\0".to_vec(),
        ),
        "/no-content" => Reply::with(204, &[], Vec::new()),
        "/error" => Reply::with(
            500,
            &[("Content-Type", "text/html")],
            b"<html><head></head><body>oops</body></html>".to_vec(),
        ),
        "/sse" => Reply::with(
            200,
            &[("Content-Type", "text/event-stream")],
            b"data: <script>\n\n".to_vec(),
        ),
        _ => Reply::with(404, &[("Content-Type", "text/plain")], b"nope".to_vec()),
    })
}

fn proxy_for(up: &Upstream, extra: &str) -> Proxy {
    Proxy::start(&sections(up.addr, TRUSTED_HEADER, extra))
}

#[test]
fn logged_out_pages_get_only_the_watcher_and_keep_their_caching() {
    let up = app();
    let proxy = proxy_for(&up, "");
    let direct = get(&format!("http://{}/", up.addr), &[]);
    let via = get(&proxy.url("/"), &[]);
    assert_eq!(via.status, 200);
    assert_eq!(support::without_our_script(&via.body), direct.body);
    assert!(page_token(&via.text()).is_none(), "no token for nobody");
    // The same bytes for every visitor: the app's caching headers and validators hold.
    assert_eq!(via.body, get(&proxy.url("/"), &[("Cookie", "theme=dark")]).body);
    assert_eq!(via.header("etag"), Some("\"v1\""));
    assert_eq!(via.header("cache-control"), Some("public, max-age=600"));
    assert_eq!(via.header("content-length").map(str::to_string), Some(via.body.len().to_string()));
    assert!(via.all("set-cookie").is_empty());

    let off = proxy_for(&up, "inject:\n  watch_logged_out: false\n");
    let via = get(&off.url("/"), &[]);
    assert_eq!(via.body, direct.body);
    assert_eq!(via.body, support::corpus("app.html"));
    assert_eq!(via.header("etag"), Some("\"v1\""));
    assert_eq!(
        via.header("content-length").map(str::to_string),
        Some(direct.body.len().to_string())
    );
}

#[test]
fn logged_in_pages_get_a_signed_token_and_private_headers() {
    let up = app();
    let proxy = proxy_for(&up, "");
    let r = get(&proxy.url("/"), &ALICE);
    assert_eq!(r.status, 200);
    let token = page_token(&r.text()).expect("page carries a token");
    let claims = verify(&token);
    assert_eq!(claims["user_id"], "alice-1");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["name"], "Alice");
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 3600);
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    assert!(r.header("etag").is_none() && r.header("last-modified").is_none());
    // The app announced its length: the page announces its new one, and it is exact.
    assert_eq!(r.header("content-length"), Some(r.body.len().to_string().as_str()));
    assert!(r.header("transfer-encoding").is_none());
    assert_eq!(r.header("vary").map(|v| v.to_ascii_lowercase().contains("cookie")), Some(true));
    assert_eq!(support::without_our_script(&r.body), support::corpus("app.html"));
    // The trusted peer's identity header reaches the app unchanged.
    let last = up.requests().pop().unwrap();
    assert_eq!(last.header("x-forwarded-user"), Some("alice-1"));
}

#[test]
fn gzip_and_brotli_upstreams_are_decoded_rewritten_and_compressed_again() {
    let up = app();
    let proxy = proxy_for(&up, "");
    let page = support::corpus("app.html");

    let r = get(&proxy.url("/gzip"), &[ALICE[0], ("Accept-Encoding", "gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let plain = gunzip(&r.body);
    assert!(page_token(&String::from_utf8_lossy(&plain)).is_some());
    assert_eq!(support::without_our_script(&plain), page);

    // A browser's list: re-compressed with the first encoding whose encoder finishes its
    // streams (Pingora's brotli encoder does not, so gzip here).
    let r = get(&proxy.url("/br"), &[ALICE[0], ("Accept-Encoding", "gzip, deflate, br, zstd")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let plain = gunzip(&r.body);
    assert_eq!(support::without_our_script(&plain), page);

    // A brotli-only client gets plain bytes rather than a broken brotli stream.
    let r = get(&proxy.url("/gzip"), &[ALICE[0], ("Accept-Encoding", "br")]);
    assert!(r.header("content-encoding").is_none());
    assert_eq!(support::without_our_script(&r.body), page);

    // Pages we do not rewrite (HTML a page script fetches) keep the upstream's brotli
    // bytes exactly.
    let direct = get(&format!("http://{}/br", up.addr), &[]);
    let r = get(&proxy.url("/br"), &[("Accept-Encoding", "br"), ("Sec-Fetch-Dest", "empty")]);
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(r.body, direct.body);
    assert_eq!(brotli_decompress(&r.body), page);

    // A client that accepts no encoding gets plain bytes.
    let r = get(&proxy.url("/br"), &[ALICE[0]]);
    assert!(r.header("content-encoding").is_none());
    assert_eq!(support::without_our_script(&r.body), page);
}

#[test]
fn unknown_encodings_pass_through_untouched() {
    let up = app();
    let proxy = proxy_for(&up, "");
    let direct = get(&format!("http://{}/zstd", up.addr), &[]);
    let r = get(&proxy.url("/zstd"), &[ALICE[0], ("Accept-Encoding", "zstd")]);
    assert_eq!(r.header("content-encoding"), Some("zstd"));
    assert_eq!(r.body, direct.body);
    // And the client's zstd was narrowed to what we can decode on the way up.
    assert!(up
        .requests()
        .iter()
        .all(|q| !q.header("accept-encoding").unwrap_or("").contains("zstd")));
}

#[test]
fn a_content_coding_that_cannot_be_read_passes_through_untouched() {
    let up = app();
    let proxy = proxy_for(&up, "");
    let direct = support::conn::fetch(up.addr, "GET", "/odd-coding", &[], b"");
    let through = support::conn::fetch(proxy.addr, "GET", "/odd-coding", &[ALICE[0]], b"");
    assert_eq!(through.status, 200, "{}", through.describe());
    assert_eq!(through.header("content-encoding"), direct.header("content-encoding"));
    assert!(through.body == direct.body, "the body was changed:\n{}", through.describe());
}

#[test]
fn bodiless_partial_and_non_html_responses_pass_through() {
    let up = app();
    let proxy = proxy_for(&up, "");
    for path in ["/json", "/partial", "/no-transform", "/utf16", "/error", "/sse", "/missing"] {
        let direct = get(&format!("http://{}{path}", up.addr), &[]);
        let via = get(&proxy.url(path), &ALICE);
        assert_eq!(via.status, direct.status, "{path}");
        assert_eq!(via.body, direct.body, "{path}");
        assert_eq!(via.header("content-type"), direct.header("content-type"), "{path}");
        assert_eq!(via.header("content-length"), direct.header("content-length"), "{path}");
        assert_eq!(via.header("etag"), direct.header("etag"), "{path}");
        assert_eq!(via.header("cache-control"), direct.header("cache-control"), "{path}");
    }
    let head = request("HEAD", &proxy.url("/"), &ALICE);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("etag"), Some("\"v1\""));
    assert_eq!(
        head.header("content-length").map(str::to_string),
        Some(support::corpus("app.html").len().to_string())
    );
    let nm = get(&proxy.url("/not-modified"), &ALICE);
    assert_eq!(nm.status, 304);
    assert_eq!(nm.header("etag"), Some("\"v1\""));
    assert_eq!(get(&proxy.url("/no-content"), &ALICE).status, 204);
}

#[test]
fn excluded_paths_are_never_touched() {
    let up = app();
    let proxy = proxy_for(&up, "inject:\n  exclude_paths: [\"/excluded/*\"]\n");
    let r = get(&proxy.url("/excluded/page"), &ALICE);
    assert_eq!(r.body, support::corpus("app.html"));
    assert_eq!(r.header("etag"), Some("\"v1\""));
}

#[test]
fn navigations_of_identified_users_are_not_answered_from_the_browser_cache() {
    let up = app();
    let proxy = proxy_for(&up, "");
    let r = get(
        &proxy.url("/"),
        &[
            ALICE[0],
            ("Accept", "text/html"),
            ("If-None-Match", "\"v1\""),
            ("If-Modified-Since", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ],
    );
    assert_eq!(r.status, 200);
    let sent = up.requests().pop().unwrap();
    assert!(sent.header("if-none-match").is_none() && sent.header("if-modified-since").is_none());
    // Anonymous navigations keep their conditionals.
    get(&proxy.url("/"), &[("Accept", "text/html"), ("If-None-Match", "\"v1\"")]);
    assert_eq!(up.requests().pop().unwrap().header("if-none-match"), Some("\"v1\""));
}

#[test]
fn spoofed_identity_headers_from_untrusted_peers_are_stripped() {
    let up = app();
    let identity = "identity:\n  sources:\n    - type: trusted_header\n      trusted_cidrs: [\"10.0.0.0/8\"]\n      headers: {user_id: X-Forwarded-User, email: X-Forwarded-Email}\n";
    let proxy = Proxy::start(&sections(up.addr, identity, ""));
    let r = get(
        &proxy.url("/"),
        &[
            ("X-Forwarded-User", "mallory"),
            ("x_forwarded_user", "mallory"),
            ("X-FORWARDED-EMAIL", "victim@example.com"),
            ("X_Forwarded_Email", "victim@example.com"),
            ("X-Unrelated", "kept"),
        ],
    );
    assert!(page_token(&r.text()).is_none(), "no token for a spoofed identity");
    assert_eq!(
        support::without_our_script(&r.body),
        support::corpus("app.html"),
        "only the logged-out watcher"
    );
    let sent = up.requests().pop().unwrap();
    let names: Vec<String> = sent.headers.iter().map(|(k, _)| k.to_ascii_lowercase()).collect();
    assert!(names.iter().all(|n| !n.replace('_', "-").starts_with("x-forwarded-")), "{names:?}");
    assert_eq!(sent.header("x-unrelated"), Some("kept"));
}

#[test]
fn hostile_user_attributes_stay_inside_the_token() {
    let up = app();
    let proxy = proxy_for(&up, "");
    let name = "</script><script>alert(1)</script>\u{2028}\u{2029}";
    // Header values are bytes; send the name UTF-8 encoded.
    let r = get(&proxy.url("/"), &[ALICE[0], ("X-Forwarded-Name", name)]);
    let html = r.text();
    assert!(!html.contains("alert(1)"), "the attribute leaked into the page");
    let original = String::from_utf8(support::corpus("app.html")).unwrap();
    assert_eq!(html.matches("</script>").count(), original.matches("</script>").count() + 1);
    assert_eq!(verify(&page_token(&html).unwrap())["name"], name);
}

/// An upstream that sends `first` of a page without a charset in its `Content-Type`,
/// then holds the rest until `gate` opens (or 30 s pass).
fn held_upstream(first: &'static [u8], gate: &'static Gate) -> Upstream {
    Upstream::start(move |_| {
        let mut sent_first = false;
        Reply::Stream {
            status: 200,
            headers: vec![("Content-Type".into(), "text/html".into())],
            next: Box::new(move || {
                if !sent_first {
                    sent_first = true;
                    return Some(first.to_vec());
                }
                gate.wait(Duration::from_secs(30));
                None
            }),
        }
    })
}

/// Asks a logged-in page and reads until `until` shows up; the read times out (and the
/// test fails) long before the upstream would give up waiting for the gate.
fn read_until_while_held(proxy: &Proxy, until: &[u8]) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-User: alice-1\r\n\r\n").unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 65536];
    while support::find(&seen, until).is_none() {
        let n = s
            .read(&mut buf)
            .expect("the first bytes arrive while the upstream still holds the rest");
        assert!(n > 0, "connection closed early");
        seen.extend_from_slice(&buf[..n]);
    }
    seen
}

#[test]
fn the_body_is_streamed_not_buffered() {
    // The upstream sends the head of a page, then waits until the client has seen it.
    // A buffering proxy would never forward it and the client read would time out.
    static HEAD_SEEN: Gate = Gate(std::sync::atomic::AtomicBool::new(false));
    let up = held_upstream(b"<html><head><script>1</script></head><body>", &HEAD_SEEN);
    let proxy = proxy_for(&up, "");
    let seen = read_until_while_held(&proxy, b"<script>1</script>");
    HEAD_SEEN.open();
    assert!(support::find(&seen, support::our_script_marker().as_bytes()).is_some());
}

#[test]
fn the_first_bytes_go_out_before_the_insertion_point_is_found() {
    // 300 bytes with no charset and no insertion point yet, then a pause: the client
    // must get them during the pause, not when the rest of the page arrives.
    static REST_HELD: Gate = Gate(std::sync::atomic::AtomicBool::new(false));
    const FIRST: &[u8] = b"<!DOCTYPE html><html><head><title>A legacy page that pauses</title>\
<link rel=stylesheet href=/a.css><link rel=stylesheet href=/b.css><link rel=stylesheet href=/c.css>\
<link rel=icon href=/favicon.ico><meta name=viewport content=\"width=device-width\"><!-- 300 bytes, then a pause -->";
    let up = held_upstream(FIRST, &REST_HELD);
    let proxy = proxy_for(&up, "");
    let seen = read_until_while_held(&proxy, b"then a pause -->");
    REST_HELD.open();
    assert!(support::find(&seen, b"<!DOCTYPE html><html><head><title>").is_some());
}

/// A one-shot gate a streaming upstream waits on (opened by the client side).
struct Gate(std::sync::atomic::AtomicBool);
impl Gate {
    fn wait(&self, limit: Duration) {
        let start = std::time::Instant::now();
        while !self.0.load(std::sync::atomic::Ordering::SeqCst) && start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    fn open(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn upstream_down_is_a_clean_502() {
    // Nothing listens on the upstream's port: the connection is refused at once, so the
    // answer must come long before the connect timeout (no waiting, no retry loop).
    let port = support::free_port();
    let yaml = sections(format!("127.0.0.1:{port}").parse().unwrap(), TRUSTED_HEADER, "")
        .replace("\nintercom:", "\n  connect_timeout: 20s\nintercom:");
    let proxy = Proxy::start(&yaml);
    let started = std::time::Instant::now();
    let r = get(&proxy.url("/account?session=s3cr3t-sid"), &ALICE);
    let took = started.elapsed();
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(took < Duration::from_secs(5), "a refused connection took {took:?} to answer");
    // Pingora's bare error page: no app page, no script, no detail of the upstream.
    assert_eq!(r.body, b"", "the 502 has a body: {}", r.text());
    assert_eq!(r.header("content-length"), Some("0"));
    assert!(page_token(&r.text()).is_none());
    // One error line names the request (without its query) and the refused connection.
    let log = proxy.wait_for_log("GET /account");
    let line = log.lines().find(|l| l.contains("GET /account")).unwrap();
    assert!(line.contains("ERROR") && line.contains("Connect"), "{line}");
    assert!(!log.contains("s3cr3t-sid") && !log.contains("alice@example.com"), "{log}");
}

#[test]
fn html_fetched_by_scripts_is_the_apps_data_and_passes_through() {
    // A legacy app's partial loaded with XHR/fetch (Sec-Fetch-Dest: empty) is inserted
    // by the page's code: a script in it would run again or show up as text.
    let up = app();
    let proxy = proxy_for(&up, "");
    let original = support::corpus("app.html");
    let r =
        get(&proxy.url("/"), &[ALICE[0], ("Sec-Fetch-Dest", "empty"), ("Sec-Fetch-Mode", "cors")]);
    assert_eq!(r.body, original, "a fetched page was rewritten");
    for dest in ["document", "iframe"] {
        let r = get(
            &proxy.url("/"),
            &[ALICE[0], ("Sec-Fetch-Dest", dest), ("Sec-Fetch-Mode", "navigate")],
        );
        assert!(page_token(&r.text()).is_some(), "{dest}: no token");
    }
}

#[test]
fn announced_lengths_are_exact_on_the_wire() {
    // Every corpus page, a page whose <meta> policy is amended, and one whose policy
    // stops the injection, each with its length, asked for twice in a row on one
    // keep-alive connection: a byte too many would corrupt the next response, a byte
    // too few would leave the read waiting for it.
    const PAGES: [&str; 4] =
        ["app.html", "cloudflare.com.html", "ecma402-spec.html", "html-parsing-spec.html"];
    let meta = |policy: &str| {
        format!("<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"{policy}\"><meta charset=utf-8><title>t</title><script src=/a.js></script></head><body>x</body></html>")
    };
    let (amended, refused) = (meta("script-src 'self'"), meta("script-src 'self', img-src *"));
    let up = Upstream::start(move |req| {
        let body = match req.path().trim_start_matches('/') {
            "amended" => amended.clone().into_bytes(),
            "refused" => refused.clone().into_bytes(),
            name => support::corpus(name),
        };
        Reply::with(200, &[("Content-Type", "text/html")], body)
    });
    let proxy = proxy_for(&up, "");
    let mut conn = Conn::open(proxy.addr);
    for path in PAGES.iter().map(|p| format!("/{p}")).chain(["/amended".into(), "/refused".into()])
    {
        for _ in 0..2 {
            let r = conn.send("GET", &path, &ALICE, b"");
            assert_eq!(r.status, 200, "{path}: {}", r.describe());
            // Read by its Content-Length: no chunks, and the length is there.
            assert!(!r.chunked && r.header("content-length").is_some(), "{path}: {}", r.describe());
            let body = r.body;
            let text = String::from_utf8_lossy(&body);
            if path == "/refused" {
                assert!(page_token(&text).is_none(), "{path}");
                let page = text.trim_end_matches(' ');
                assert!(
                    page.ends_with("</html>") && page.len() < text.len(),
                    "{path}: the owed bytes end the page as spaces"
                );
            } else {
                assert_eq!(
                    verify(&page_token(&text).expect("a token"))["user_id"],
                    "alice-1",
                    "{path}"
                );
            }
            // Pingora cuts a body off at its announced length: the page must be whole.
            if let Some(name) = PAGES.iter().find(|p| path.ends_with(*p)) {
                assert!(
                    support::without_our_script(&body) == support::corpus(name),
                    "{path}: the page was changed"
                );
            }
        }
    }
}
