//! Per-request cost of the JWT identity sources (`IdentityResolver::inspect_request`
//! then `resolve`, as a page pays them):
//!
//! - `*_cached`: a token this source verified before (a later page of the session):
//!   the cookie or header read, a SHA-256 and a cache hit;
//! - `*_verify`: a token seen for the first time: RS256, ES256, EdDSA (keys from a JWKS
//!   file) and HS256, signature and claims checked, then cached;
//! - `*_verify_and_fetch_*`: a fresh source whose first token also fetches the JWKS or
//!   the AWS ALB key from a loopback server (once per `key_refresh` or new `kid`);
//! - `supabase_chunks`: the chunked `base64-` cookie joined and unwrapped (ES256).
//!
//! Tokens and keys come from tests/jwt/sign.py (PyJWT; `make test` installs it).
//! Run: `cargo bench --bench jwt_sources`.

mod harness;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{black_box, Criterion};
use intercom_secure_proxy::config::{Config, UpstreamConfig};
use intercom_secure_proxy::identity::{IdentityResolver, Lookup};
use intercom_secure_proxy::upstream::Upstream;
use pingora::http::RequestHeader;
use serde_json::json;

#[path = "../tests/jwt/sign.rs"]
mod sign;
use sign::sign;

const ARN: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/bench/1";
const KID: &str = "0b1c2d3e-alb-bench";

/// A loopback server answering every request with `body` (a JWKS or a PEM key).
fn key_server(body: String) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    addr
}

fn resolver(rt: &tokio::runtime::Runtime, source: &str, env: &[(&str, &str)]) -> IdentityResolver {
    let yaml = format!(
        "listen: [\"127.0.0.1:1\"]\nupstream: {{addresses: [\"127.0.0.1:9\"]}}\nintercom: {{app_id: abc12345, secret_env: S}}\nidentity:\n  sources:\n    - {source}\n"
    );
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("S".into(), "s".into())])
        .collect();
    let config = Config::from_yaml(&yaml, &|name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
    .expect("bench config");
    let upstream = UpstreamConfig {
        addresses: vec!["127.0.0.1:9".into()],
        tls: false,
        sni: String::new(),
        connect_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        health_check_interval: None,
    };
    rt.block_on(async {
        let (upstream, _) = Upstream::new(&upstream).expect("upstream");
        IdentityResolver::new(&config.site().identity, upstream)
    })
}

fn request(header: (&str, &str)) -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/dashboard", None).unwrap();
    req.append_header("host", "app.example.com").unwrap();
    req.append_header(header.0.to_string(), header.1).unwrap();
    req
}

/// inspect + resolve, expecting `user`.
async fn lookup(resolver: &IdentityResolver, req: &RequestHeader, user: &str) {
    let hints = resolver.inspect_request(&mut req.clone(), None);
    match resolver.resolve(&hints).await {
        Lookup::Found(id) => assert_eq!(id.user_id, user),
        other => panic!("expected {user}, got {other:?}"),
    }
}

fn bench_jwt_sources(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({"sub": "u1", "email": "u1@example.com", "exp": now + 86400, "aud": "app"});
    let s = sign(json!({
        "keys": {"rsa": "RSA", "ec": "EC", "ed": "Ed25519", KID: "EC"},
        "tokens": {
            "rs": {"key": "rsa", "alg": "RS256", "claims": claims},
            "es": {"key": "ec", "alg": "ES256", "claims": claims},
            "ed": {"key": "ed", "alg": "EdDSA", "claims": claims},
            "hs": {"secret": "bench-jwt-secret", "alg": "HS256", "kid": null, "claims": claims},
            "alb": {"mode": "alb", "key": KID, "signer": ARN, "exp": now + 86400, "claims": claims},
        }
    }));
    let token = |n: &str| s["tokens"][n].as_str().unwrap().to_string();
    let jwks = key_server(s["jwks"].to_string());
    let alb_keys = key_server(s["pem"][KID].as_str().unwrap().to_string());
    let jwt_cookie = |algs: &str, keys: &str| {
        format!(
            "{{type: jwt_cookie, cookie: session, algorithms: [{algs}], {keys}, audience: app}}"
        )
    };
    let jwks_url = format!("jwks_url: \"http://{jwks}/jwks.json\"");

    let cases: Vec<(&str, IdentityResolver, RequestHeader)> = vec![
        ("jwt_cookie/rs256_cached", resolver(&rt, &jwt_cookie("RS256", &jwks_url), &[]), request(("cookie", &format!("session={}", token("rs"))))),
        ("jwt_cookie/es256_cached", resolver(&rt, &jwt_cookie("ES256", &jwks_url), &[]), request(("cookie", &format!("session={}", token("es"))))),
        ("jwt_cookie/eddsa_cached", resolver(&rt, &jwt_cookie("EdDSA", &jwks_url), &[]), request(("cookie", &format!("session={}", token("ed"))))),
        ("jwt_cookie/hs256_cached", resolver(&rt, &jwt_cookie("HS256", "secret_env: J"), &[("J", "bench-jwt-secret")]), request(("cookie", &format!("session={}", token("hs"))))),
        ("jwt_cookie/supabase_chunks_cached", resolver(&rt, &jwt_cookie("ES256", &jwks_url), &[]), {
            use base64::Engine as _;
            let v = format!("base64-{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!({"access_token": token("es"), "refresh_token": "r"}).to_string()));
            let (a, b) = v.split_at(v.len() / 2);
            request(("cookie", &format!("theme=dark; session.0={a}; session.1={b}")))
        }),
        (
            "signed_header/cloudflare_access_cached",
            resolver(&rt, &format!("{{type: signed_header, preset: cloudflare_access, {jwks_url}, audience: app}}"), &[]),
            request(("cf-access-jwt-assertion", &token("rs"))),
        ),
        (
            "signed_header/aws_alb_cached",
            resolver(&rt, &format!("{{type: signed_header, preset: aws_alb, signer: \"{ARN}\", key_url: \"http://{alb_keys}/k\"}}"), &[]),
            request(("x-amzn-oidc-data", &token("alb"))),
        ),
    ];
    for (_, resolver, req) in &cases {
        rt.block_on(lookup(resolver, req, "u1")); // warm: keys fetched, token verified and cached
    }
    let mut group = c.benchmark_group("jwt");
    for (name, resolver, req) in &cases {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        lookup(black_box(resolver), black_box(req), "u1").await;
                    }
                    start.elapsed()
                })
            })
        });
    }
    // Cache misses: a fresh source per iteration (not timed), so its first token pays
    // the whole verification (keys from a JWKS file), or the JWKS/ALB key fetch too.
    let dir = tempfile::tempdir().unwrap();
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, s["jwks"].to_string()).unwrap();
    let file = format!("jwks_file: {}", jwks_file.display());
    let misses = [
        ("jwt_cookie/rs256_verify", jwt_cookie("RS256", &file), ("cookie", format!("session={}", token("rs"))), vec![]),
        ("jwt_cookie/es256_verify", jwt_cookie("ES256", &file), ("cookie", format!("session={}", token("es"))), vec![]),
        ("jwt_cookie/eddsa_verify", jwt_cookie("EdDSA", &file), ("cookie", format!("session={}", token("ed"))), vec![]),
        ("jwt_cookie/hs256_verify", jwt_cookie("HS256", "secret_env: J"), ("cookie", format!("session={}", token("hs"))), vec![("J", "bench-jwt-secret")]),
        ("jwt_cookie/rs256_verify_and_fetch_jwks", jwt_cookie("RS256", &jwks_url), ("cookie", format!("session={}", token("rs"))), vec![]),
        (
            "signed_header/aws_alb_verify_and_fetch_key",
            format!("{{type: signed_header, preset: aws_alb, signer: \"{ARN}\", key_url: \"http://{alb_keys}/k\"}}"),
            ("x-amzn-oidc-data", token("alb")),
            vec![],
        ),
    ];
    for (name, source, header, env) in &misses {
        let req = request((header.0, &header.1));
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let resolver = resolver(&rt, source, env);
                    let start = Instant::now();
                    rt.block_on(lookup(&resolver, &req, "u1"));
                    total += start.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

/// Set-up checks under `cargo test`: every source identifies its token.
fn main() {
    let targets: &[fn(&mut Criterion)] = &[bench_jwt_sources];
    harness::main(harness::config(Duration::from_millis(500), 30), targets, || {
        harness::set_up_only("jwt_sources", targets)
    });
}
