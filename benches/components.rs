//! Per-request costs of the proxy's other hot-path pieces:
//!
//! - `token`: `TokenSigner::sign_fresh` (one HMAC-SHA256 JWT) vs `token_for` (cache hit);
//! - `identity`: `IdentityResolver::resolve` with a current-user endpoint on a warm
//!   cache, and `inspect_request` (what every request pays);
//! - `headers`: `page::rewritable`, and `Pages::start` (header changes, CSP plan and
//!   hash, script render, rewriter set-up) on a realistic response with a strict CSP.
//!
//! Run: `cargo bench --bench components`.

mod harness;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{black_box, BatchSize, Criterion};
use intercom_secure_proxy::config::{
    CacheSettings, EndpointConfig, FieldPointers, IdentityConfig, InjectConfig, IntercomConfig,
    PathPattern, Secret, SecretSource, SourceConfig, TrustedHeaderConfig, UpstreamConfig,
};
use intercom_secure_proxy::identity::{Identity, IdentityResolver, Lookup};
use intercom_secure_proxy::page::{self, Limits, Pages, Plan, ScriptSettings};
use intercom_secure_proxy::upstream::Upstream;
use intercom_secure_proxy::TokenSigner;
use pingora::http::{RequestHeader, ResponseHeader};

// ---------------------------------------------------------------------------
// Tokens

fn signer() -> TokenSigner {
    TokenSigner::new(&IntercomConfig {
        app_id: "abc12345".into(),
        api_base: "https://api-iam.intercom.io".into(),
        secret: Secret::new(b"bench-secret-0123456789abcdef0123456789abcdef".to_vec()),
        secret_source: SecretSource::Inline,
        token_lifetime: Duration::from_secs(3600),
        claims: vec!["email".into(), "name".into()],
        mode: intercom_secure_proxy::config::MessengerMode::Jwt,
        token_refresh_margin: Duration::from_secs(300),
    })
}

fn bench_token(c: &mut Criterion) {
    let signer = signer();
    let mut id = Identity::new("bench-user");
    id.email = Some("bench@example.com".into());
    id.name = Some("Bench User".into());
    let fresh = signer.sign_fresh(&id).expect("sign");
    assert!(fresh.starts_with("eyJ"), "not a JWT: {fresh}");
    let cached = signer.token_for(&id).expect("sign");
    assert!(Arc::ptr_eq(&cached, &signer.token_for(&id).expect("sign")), "cache miss on repeat");

    let mut group = c.benchmark_group("token");
    group.bench_function("sign_fresh", |b| b.iter(|| signer.sign_fresh(black_box(&id)).unwrap()));
    group.bench_function("token_for_cached", |b| {
        b.iter(|| signer.token_for(black_box(&id)).unwrap())
    });
    group.finish();
}

// ---------------------------------------------------------------------------
// Identity: current-user endpoint, warm cache

/// Answers the first request on 127.0.0.1 with a current-user document, then exits.
fn one_shot_me_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        assert!(req.starts_with(b"GET /api/me "), "unexpected request");
        let body = br#"{"id":42,"email":"bench@example.com","name":"Bench User","plan":"pro"}"#;
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(body);
    });
    addr
}

fn endpoint_config() -> EndpointConfig {
    EndpointConfig {
        path: "/api/me".into(),
        cookies: vec!["session".into()],
        timeout: Duration::from_secs(2),
        cache: CacheSettings { ttl: Duration::from_secs(3600), ..CacheSettings::ENDPOINT },
        fields: FieldPointers {
            attributes: vec![("plan".into(), "/plan".into())],
            ..FieldPointers::new("/id")
        },
        format: Default::default(),
        company_id: None,
        company_name: None,
    }
}

fn page_request() -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/dashboard", None).unwrap();
    for (k, v) in [
        ("host", "app.example.com"),
        ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("accept-language", "en-US,en;q=0.5"),
        ("cookie", "_ga=GA1.2.123456789.1700000000; session=s%3Aabcdef0123456789abcdef0123456789.sig; intercom-session-abc12345=xyz; theme=dark"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ] {
        req.append_header(k, v).unwrap();
    }
    req
}

fn bench_identity(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let addr = one_shot_me_server();
    let upstream_config = UpstreamConfig {
        addresses: vec![addr.to_string()],
        tls: false,
        sni: String::new(),
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
        health_check_interval: None,
    };
    let req = page_request();
    let (resolver, hints) = rt.block_on(async {
        let (upstream, health) = Upstream::new(&upstream_config).expect("upstream");
        assert!(health.is_none(), "one address has no health check");
        let config = IdentityConfig {
            sources: vec![SourceConfig::CurrentUserEndpoint(endpoint_config())],
            shared_cache: None,
        };
        let resolver = IdentityResolver::new(&config, upstream);
        let hints = resolver.inspect_request(&mut req.clone(), None);
        assert!(hints.maybe_identified(), "session cookie not seen");
        // The one real call: fills the cache.
        match resolver.resolve(&hints).await {
            Lookup::Found(id) => assert_eq!(id.user_id, "42"),
            other => panic!("warm-up lookup failed: {other:?}"),
        }
        (resolver, hints)
    });

    let mut group = c.benchmark_group("identity");
    group.bench_function("endpoint_lookup_cached", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    match resolver.resolve(black_box(&hints)).await {
                        Lookup::Found(id) => {
                            black_box(id);
                        }
                        other => panic!("cache lookup went wrong: {other:?}"),
                    }
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("inspect_request", |b| {
        b.iter_batched(
            || req.clone(),
            |mut r| resolver.inspect_request(black_box(&mut r), None),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

// ---------------------------------------------------------------------------
// Identity: trusted headers (no I/O, no cache: the whole cost is on every request)

fn bench_trusted_header(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let upstream = rt.block_on(async {
        Upstream::new(&UpstreamConfig::new(["127.0.0.1:9"])).expect("upstream").0
    });
    let mut source =
        TrustedHeaderConfig::new(vec!["10.0.0.0/8".parse().unwrap()], "X-Forwarded-User");
    source.email = Some("x-forwarded-email".into());
    let resolver = IdentityResolver::new(
        &IdentityConfig { sources: vec![SourceConfig::TrustedHeader(source)], shared_cache: None },
        upstream,
    );
    let mut req = page_request();
    req.append_header("x-forwarded-user", "bench-user").unwrap();
    req.append_header("x-forwarded-email", "bench@example.com").unwrap();
    let peer = Some("10.1.2.3".parse().unwrap());
    let hints = resolver.inspect_request(&mut req.clone(), peer);
    match rt.block_on(resolver.resolve(&hints)) {
        Lookup::Found(id) => assert_eq!(id.user_id, "bench-user"),
        other => panic!("trusted header not read: {other:?}"),
    }
    let mut group = c.benchmark_group("identity");
    group.bench_function("trusted_header_inspect_and_resolve", |b| {
        b.iter_batched(
            || req.clone(),
            |mut r| {
                let hints = resolver.inspect_request(black_box(&mut r), peer);
                rt.block_on(resolver.resolve(&hints))
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

// ---------------------------------------------------------------------------
// Upstream: the app's peer, asked for by every proxied request

fn bench_upstream(c: &mut Criterion) {
    // An app at one address, the usual set-up.
    let (upstream, _) = Upstream::new(&UpstreamConfig::new(["127.0.0.1:9"])).expect("upstream");
    assert!(upstream.peer().is_some());
    let mut group = c.benchmark_group("upstream");
    group.bench_function("peer", |b| b.iter(|| black_box(upstream.peer())));
    group.finish();
}

// ---------------------------------------------------------------------------
// Header filters

/// A realistic strict policy without nonces: the proxy must add its script hash.
const POLICY: &str = "default-src 'self'; script-src 'self' https://js.intercomcdn.com https://widget.intercom.io https://www.googletagmanager.com 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='; style-src 'self' 'unsafe-inline' https://fonts.googleapis.com; img-src 'self' data: blob: https://static.intercomassets.com https://js.intercomcdn.com; font-src 'self' https://fonts.gstatic.com https://js.intercomcdn.com; connect-src 'self' https://api-iam.intercom.io https://via.intercom.io wss://nexus-websocket-a.intercom.io; media-src https://js.intercomcdn.com; frame-src https://intercom-sheets.com; frame-ancestors 'none'; form-action 'self' https://intercom.help; object-src 'none'; base-uri 'self'; upgrade-insecure-requests; report-uri /csp-report";

fn html_response() -> ResponseHeader {
    let mut r = ResponseHeader::build(200, None).unwrap();
    for (k, v) in [
        ("server", "nginx/1.22.1"),
        ("date", "Mon, 24 Nov 2025 12:00:00 GMT"),
        ("content-type", "text/html; charset=utf-8"),
        ("content-length", "120044"),
        ("last-modified", "Mon, 24 Nov 2025 11:00:00 GMT"),
        ("etag", "\"6744a1b0-1d4ec\""),
        ("accept-ranges", "bytes"),
        ("cache-control", "public, max-age=600, must-revalidate"),
        ("vary", "Accept-Encoding, Cookie"),
        ("content-security-policy", POLICY),
        ("strict-transport-security", "max-age=63072000; includeSubDomains"),
        ("x-content-type-options", "nosniff"),
        ("set-cookie", "theme=dark; Path=/; SameSite=Lax"),
    ] {
        r.append_header(k, v).unwrap();
    }
    r
}

fn inject_config() -> InjectConfig {
    InjectConfig {
        exclude_paths: vec![PathPattern::parse("/password/*").unwrap()],
        ..InjectConfig::default()
    }
}

fn bench_headers(c: &mut Criterion) {
    let resp = html_response();
    let inject = inject_config();
    assert!(page::rewritable(&resp, &inject).is_ok());
    let pages = Pages::new(
        &ScriptSettings {
            app_id: "abc12345",
            api_base: "https://api-iam.intercom.io",
            auto_include: false,
            cookie_domain: None,
            mode: Default::default(),
            refresh: None,
        },
        Limits { max_scan_bytes: 1 << 20, parser_memory: 256 << 10 },
    );
    let plan =
        Plan { token: Some("eyJ0.eyJ1.c2ln".into()), shutdown: false, plain: None, failure: None };
    let hash = pages.script(&plan, None).csp_hash();
    let mut started = resp.clone();
    pages.start(&mut started, &plan).expect("start");
    let policy = started.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains(&hash), "hash not added: {policy}");
    assert!(started.headers.get("etag").is_none());
    // The app's length is known, so the page's new one is announced.
    let announced: usize = started.headers["content-length"].to_str().unwrap().parse().unwrap();
    assert!(announced > 120044, "length not announced: {announced}");

    let mut group = c.benchmark_group("headers");
    group.bench_function("rewritable", |b| {
        b.iter(|| page::rewritable(black_box(&resp), &inject).unwrap())
    });
    // The script alone, with a token as long as a signed one (about 300 bytes, every
    // byte of it checked before it goes into the page).
    let mut id = Identity::new("bench-user");
    id.email = Some("bench@example.com".into());
    let signed = Plan { token: Some(signer().token_for(&id).expect("sign")), ..plan.clone() };
    assert!(pages.script(&signed, None).html().contains(signed.token.as_deref().unwrap()));
    group.bench_function("render_script", |b| b.iter(|| pages.script(black_box(&signed), None)));
    // Most pages have no policy to amend, so no hash: what is left is the page's
    // headers, rendering the script and building the rewriter.
    let mut plain = resp.clone();
    plain.remove_header("content-security-policy");
    for (name, head) in [("page_start", &resp), ("page_start_without_csp", &plain)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || head.clone(),
                |mut r| {
                    let rewriter = pages.start(&mut r, black_box(&plan)).unwrap();
                    (r, rewriter)
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// Set-up checks under `cargo test`: every benchmark's set-up once.
fn main() {
    let targets: &[fn(&mut Criterion)] =
        &[bench_token, bench_identity, bench_trusted_header, bench_upstream, bench_headers];
    harness::main(harness::config(Duration::from_millis(800), 50), targets, || {
        harness::set_up_only("components", targets)
    });
}
