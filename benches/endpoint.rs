//! The current-user endpoint source per request: a cache hit, and a miss (a real
//! request to a loopback app over a kept-alive connection, then the answer parsed) for
//! the JSON form and the HTML account-page form (`format: html`).
//!
//! Run: `cargo bench --bench endpoint`.

mod harness;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{black_box, Criterion};
use intercom_secure_proxy::config::{EndpointConfig, IdentityConfig, SourceConfig, UpstreamConfig};
use intercom_secure_proxy::identity::{IdentityResolver, Lookup};
use intercom_secure_proxy::upstream::Upstream;
use pingora::http::RequestHeader;

const JSON: &str = r#"{"id":42,"email":"bench@example.com","name":"Bench User","plan":"pro"}"#;

/// An account page the size of a real one (about 20 KB), the user in a meta tag and
/// the email in the page text.
fn account_page() -> String {
    let filler: String = (0..200)
        .map(|i| format!("<li class=\"nav-item\"><a href=\"/section/{i}\">Section {i}</a></li>\n"))
        .collect();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"user-id\" content=\"42\"><title>Account</title></head>\
         <body><nav><ul>{filler}</ul></nav><main><h1>Your account</h1><p id=\"account-email\">bench@example.com</p></main></body></html>"
    )
}

/// A loopback app answering every request on every connection with `body`, kept alive.
fn app(body: String, content_type: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let body = body.clone();
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n", body.len());
                    if conn
                        .write_all(head.as_bytes())
                        .and_then(|()| conn.write_all(body.as_bytes()))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn resolver(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    endpoint: EndpointConfig,
) -> IdentityResolver {
    let upstream = rt.block_on(async {
        Upstream::new(&UpstreamConfig::new([addr.to_string()])).expect("upstream").0
    });
    IdentityResolver::new(
        &IdentityConfig {
            sources: vec![SourceConfig::CurrentUserEndpoint(endpoint)],
            shared_cache: None,
        },
        upstream,
    )
}

fn request(session: u64) -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/dashboard", None).unwrap();
    req.append_header("host", "app.example.com").unwrap();
    req.append_header("cookie", format!("theme=dark; session=s{session}")).unwrap();
    req
}

/// One lookup; panics unless it finds user 42.
async fn lookup(resolver: &IdentityResolver, session: u64) {
    let hints = resolver.inspect_request(&mut request(session), None);
    match resolver.resolve(&hints).await {
        Lookup::Found(id) => assert_eq!(id.user_id, "42"),
        other => panic!("lookup went wrong: {other:?}"),
    }
}

fn bench_endpoint(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let with_cookie = |mut e: EndpointConfig| {
        e.cookies = vec!["session".into()];
        e
    };
    let json = resolver(
        &rt,
        app(JSON.to_string(), "application/json"),
        with_cookie(EndpointConfig::new("/api/me", "/id")),
    );
    let mut html_config =
        with_cookie(EndpointConfig::html_page("/account", "meta[name=user-id]@content"));
    html_config.fields.email = Some("#account-email".into());
    let html = resolver(&rt, app(account_page(), "text/html; charset=utf-8"), html_config);
    // Every session is new to the cache: each iteration is a miss.
    let next = AtomicU64::new(1);
    rt.block_on(async {
        lookup(&json, 0).await;
        lookup(&html, 0).await;
    });

    let mut group = c.benchmark_group("endpoint");
    for (name, resolver) in [("json", &json), ("html", &html)] {
        group.bench_function(format!("{name}_miss"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        lookup(resolver, next.fetch_add(1, Ordering::Relaxed)).await;
                    }
                    start.elapsed()
                })
            })
        });
        group.bench_function(format!("{name}_hit"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        lookup(resolver, black_box(0)).await;
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

/// Set-up checks under `cargo test`: both forms find the user.
fn main() {
    let targets: &[fn(&mut Criterion)] = &[bench_endpoint];
    harness::main(harness::config(Duration::from_millis(800), 50), targets, || {
        harness::set_up_only("endpoint", targets)
    });
}
