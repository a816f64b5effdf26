//! Per-request costs of the `redis_session` identity source, against a real
//! `redis-server` started on a free loopback port:
//!
//! - `lookup_cached`: `IdentityResolver::resolve` on a warm per-session cache;
//! - `lookup_redis_json` / `lookup_redis_php`: every lookup a Redis `GET` plus decoding
//!   (cache TTLs of zero), for an express-session JSON and a phpredis PHP session;
//! - `inspect_request_express`: what every request pays (cookie, HMAC verification);
//! - `parse_php_session`: the PHP parser alone.
//!
//! Run: `cargo bench --bench redis_session` (needs redis-server; `make test` installs it).

mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{black_box, BatchSize, Criterion};
use intercom_secure_proxy::bench_internals::parse_php_session;
use intercom_secure_proxy::config::{
    CookieSignature, IdentityConfig, RedisSessionConfig, Secret, SessionFormat, SourceConfig,
    UpstreamConfig,
};
use intercom_secure_proxy::identity::redis_session::express;
use intercom_secure_proxy::identity::{IdentityResolver, Lookup, RequestHints};
use intercom_secure_proxy::upstream::Upstream;
use pingora::http::RequestHeader;

const SECRET: &[u8] = b"bench-session-secret";
const SESSION_ID: &str = "Ql6Ih_5cz8HQrGbuGVSsdBZxnhG-2Rq1";
const JSON_SESSION: &str = r#"{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/","sameSite":"lax"},"user":"alice","passport":{"user":"u-alice-1001"},"profile":{"email":"alice@example.com","name":"Alice Liddell"}}"#;
const PHP_SESSION: &str = r#"csrf|s:32:"0123456789abcdef0123456789abcdef";user|s:5:"alice";account|a:3:{s:2:"id";s:12:"u-alice-1001";s:5:"email";s:17:"alice@example.com";s:4:"name";s:13:"Alice Liddell";}"#;

/// A redis-server on a free port, stopped on drop.
struct Redis(Child, u16);

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (install it; `make test` does)");
        let redis = Redis(child, port);
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.set("probe", "1").is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    fn set(&self, key: &str, value: &str) -> std::io::Result<()> {
        let mut c = TcpStream::connect(("127.0.0.1", self.1))?;
        let cmd = format!(
            "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
            key.len(),
            value.len()
        );
        c.write_all(cmd.as_bytes())?;
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf)?;
        Ok(())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(redis: &Redis, format: SessionFormat, ttl: Duration) -> RedisSessionConfig {
    let mut c = RedisSessionConfig::new(
        format!("redis://127.0.0.1:{}/0", redis.1),
        "sid",
        "/passport/user",
    );
    c.timeout = Duration::from_secs(2);
    c.cache.ttl = ttl;
    c.cache.negative_ttl = ttl;
    match format {
        SessionFormat::Json => {
            c.cookie_signature = CookieSignature::Express;
            c.cookie_secrets = vec![Secret::new(SECRET.to_vec())];
            c.fields.email = Some("/profile/email".into());
            c.fields.name = Some("/profile/name".into());
        }
        SessionFormat::Php | SessionFormat::PhpSerialize => {
            c.format = format;
            c.key = "PHPREDIS_SESSION:{id}".into();
            c.fields.user_id = "/account/id".into();
            c.fields.email = Some("/account/email".into());
            c.fields.name = Some("/account/name".into());
        }
    }
    c
}

fn request(format: SessionFormat) -> RequestHeader {
    let cookie = match format {
        SessionFormat::Json => express::sign(SESSION_ID, SECRET),
        SessionFormat::Php | SessionFormat::PhpSerialize => SESSION_ID.to_string(),
    };
    let mut req = RequestHeader::build("GET", b"/dashboard", None).unwrap();
    req.append_header("host", "app.example.com").unwrap();
    req.append_header(
        "cookie",
        format!("_ga=GA1.2.123456789.1700000000; sid={cookie}; theme=dark"),
    )
    .unwrap();
    req
}

fn resolver(
    rt: &tokio::runtime::Runtime,
    source: RedisSessionConfig,
    req: &RequestHeader,
) -> (IdentityResolver, RequestHints) {
    let upstream_config = UpstreamConfig::new(["127.0.0.1:9"]);
    rt.block_on(async {
        let (upstream, _) = Upstream::new(&upstream_config).expect("upstream");
        let resolver = IdentityResolver::new(
            &IdentityConfig {
                sources: vec![SourceConfig::RedisSession(source)],
                shared_cache: None,
            },
            upstream,
        );
        let hints = resolver.inspect_request(&mut req.clone(), None);
        assert!(hints.maybe_identified(), "session cookie not seen");
        match resolver.resolve(&hints).await {
            Lookup::Found(id) => assert_eq!(id.user_id, "u-alice-1001"),
            other => panic!("warm-up lookup failed: {other:?}"),
        }
        (resolver, hints)
    })
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn bench_lookup(
    group: &mut Group<'_>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    resolver: &IdentityResolver,
    hints: &RequestHints,
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    match resolver.resolve(black_box(hints)).await {
                        Lookup::Found(id) => {
                            black_box(id);
                        }
                        other => panic!("lookup went wrong: {other:?}"),
                    }
                }
                start.elapsed()
            })
        })
    });
}

fn bench_redis_session(c: &mut Criterion) {
    let redis = Redis::start();
    redis.set(&format!("sess:{SESSION_ID}"), JSON_SESSION).unwrap();
    redis.set(&format!("PHPREDIS_SESSION:{SESSION_ID}"), PHP_SESSION).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let json_req = request(SessionFormat::Json);
    let php_req = request(SessionFormat::Php);

    let (cached, cached_hints) =
        resolver(&rt, config(&redis, SessionFormat::Json, Duration::from_secs(3600)), &json_req);
    let (json, json_hints) =
        resolver(&rt, config(&redis, SessionFormat::Json, Duration::ZERO), &json_req);
    let (php_source, php_hints) =
        resolver(&rt, config(&redis, SessionFormat::Php, Duration::ZERO), &php_req);
    assert!(parse_php_session(PHP_SESSION.as_bytes()).is_ok());

    let mut group = c.benchmark_group("redis_session");
    bench_lookup(&mut group, &rt, "lookup_cached", &cached, &cached_hints);
    bench_lookup(&mut group, &rt, "lookup_redis_json", &json, &json_hints);
    bench_lookup(&mut group, &rt, "lookup_redis_php", &php_source, &php_hints);
    group.bench_function("inspect_request_express", |b| {
        b.iter_batched(
            || json_req.clone(),
            |mut r| cached.inspect_request(black_box(&mut r), None),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("parse_php_session", |b| {
        b.iter(|| parse_php_session(black_box(PHP_SESSION.as_bytes())).unwrap())
    });
    group.finish();
}

/// Set-up checks under `cargo test`: a real Redis lookup of each kind.
fn main() {
    let targets: &[fn(&mut Criterion)] = &[bench_redis_session];
    harness::main(harness::config(Duration::from_millis(800), 50), targets, || {
        harness::set_up_only("redis_session", targets)
    });
}
