//! Several instances sharing one identity cache (`identity.shared_cache`): three real
//! proxies behind a real HAProxy (Debian's `haproxy`) on loopback, a real redis-server,
//! a load run, and one proxy killed with SIGKILL midway.
//!
//! Needs haproxy, redis-server and redis-cli (`make test` installs them). Without them
//! these tests fail, they never skip.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use support::redis::Redis;
use support::{free_port, page_token, sections, verify, Proxy, Reply, Upstream};

const PAGE: &str = "<!DOCTYPE html><html><head><title>t</title><script>window.intercomSettings={app_id:'abc12345'};</script></head><body>hi</body></html>";

/// The user a session cookie value belongs to: `s<n>-<nonce>` is `user-<n>`.
fn user_of(sid: &str) -> Option<String> {
    let n = sid.strip_prefix('s')?.split('-').next()?;
    Some(format!("user-{n}"))
}

/// The app: `/api/me` takes 50 ms (long enough for instances to race on a new session)
/// and knows every `s<n>-…` session; `/logout` expires the session cookie; every other
/// path is a page.
fn app() -> Upstream {
    app_answering_in(Duration::from_millis(50))
}

/// [`app`] with `/api/me` taking `delay`.
fn app_answering_in(delay: Duration) -> Upstream {
    Upstream::start(move |req| match req.path() {
        "/api/me" => match req.cookie("sid").as_deref().and_then(user_of) {
            Some(user) => Reply::After(
                delay,
                Box::new(Reply::with(
                    200,
                    &[("Content-Type", "application/json")],
                    format!(r#"{{"id":"{user}"}}"#),
                )),
            ),
            None => Reply::with(401, &[], "{}"),
        },
        "/logout" => {
            Reply::with(302, &[("Location", "/"), ("Set-Cookie", "sid=; Max-Age=0; Path=/")], "")
        }
        _ => Reply::html(PAGE),
    })
}

/// One proxy instance with its admin listener (HAProxy's health check asks `/healthz`).
fn instance(app: &Upstream, redis: &Redis) -> Proxy {
    instance_with(app, &format!("\"{}\"", redis.url()))
}

/// [`instance`] with `shared_cache` as the YAML value of `identity.shared_cache`.
fn instance_with(app: &Upstream, shared_cache: &str) -> Proxy {
    let identity = format!(
        "identity:\n  shared_cache: {shared_cache}\n  sources:\n    - type: current_user_endpoint\n      path: /api/me\n      cookies: [sid]\n      timeout: 2s\n      cache_ttl: 10m\n"
    );
    Proxy::start_with_admin(&sections(app.addr, &identity, ""))
}

/// A real HAProxy in front of the instances, logging one line per request (backend/server,
/// status, termination state, retries) and its health-check verdicts to a file.
struct HaProxy {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl HaProxy {
    /// Starts HAProxy on a free port; on another port when another process took that
    /// one first.
    fn start(servers: &[(u16, u16)]) -> HaProxy {
        support::on_a_free_port("HAProxy", || Self::try_start(servers))
    }

    /// Starts HAProxy; why not (with its log), when it does not listen.
    fn try_start(servers: &[(u16, u16)]) -> Result<HaProxy, String> {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "global\n  log stdout format raw local0\ndefaults\n  mode http\n  log global\n  log-format \"REQ %s %ST %tsc %rc\"\n  \
             timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n  retries 3\n  option redispatch 1\n  \
             retry-on all-retryable-errors\nfrontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\nbackend be\n  \
             balance roundrobin\n  option httpchk GET /healthz\n  default-server inter 100ms fall 2 rise 2\n"
        );
        for (i, (proxy, admin)) in servers.iter().enumerate() {
            config.push_str(&format!("  server p{i} 127.0.0.1:{proxy} check port {admin}\n"));
        }
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config).unwrap();
        let log = dir.path().join("haproxy.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut child = Command::new("/usr/sbin/haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run haproxy ({e}): install haproxy; `make test` does")
            });
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        support::listening_or_exited(
            addr,
            &mut child,
            Duration::from_secs(10),
            "haproxy",
            &|| std::fs::read_to_string(&log).unwrap_or_default(),
        )?;
        Ok(HaProxy { child, port, log, _dir: dir })
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The request lines: (server, status, termination state, retries). (`start` sees
    /// HAProxy listen in /proc, so no connection of its own is among them.)
    fn requests(&self) -> Vec<(String, String, String, String)> {
        self.log_text()
            .lines()
            .filter_map(|l| {
                let mut f = l.strip_prefix("REQ ")?.split(' ');
                Some((f.next()?.into(), f.next()?.into(), f.next()?.into(), f.next()?.into()))
            })
            .collect()
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One GET with a session cookie: the status and the body, or what went wrong.
fn fetch(agent: &ureq::Agent, url: &str, sid: &str) -> Result<(u16, String), String> {
    fetch_as(agent, url, None, sid)
}

/// [`fetch`] with the `Host` the browser would send, when it is not the URL's.
fn fetch_as(
    agent: &ureq::Agent,
    url: &str,
    host: Option<&str>,
    sid: &str,
) -> Result<(u16, String), String> {
    let mut req = ureq::http::Request::builder().uri(url).header("Cookie", format!("sid={sid}"));
    if let Some(host) = host {
        req = req.header("Host", host);
    }
    let req = req.body(()).unwrap();
    let mut resp = agent.run(req).map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// Whether a page carries a token that verifies and names the session's user.
fn carries_token_for(body: &str, sid: &str) -> bool {
    page_token(body).is_some_and(|t| verify(&t)["user_id"].as_str() == user_of(sid).as_deref())
}

fn redis_cli(redis: &Redis, args: &[&str]) -> Vec<u8> {
    support::output_within(
        Command::new("redis-cli").args(["-p", &redis.port.to_string(), "--raw"]).args(args),
        Duration::from_secs(10),
    )
    .stdout
}

#[test]
fn three_instances_behind_haproxy_share_identities_and_lose_nothing_when_one_is_killed() {
    let redis = Redis::start();
    let app = app();
    let mut proxies: Vec<Option<Proxy>> = (0..3).map(|_| Some(instance(&app, &redis))).collect();
    let ports =
        |p: &Option<Proxy>| p.as_ref().map(|p| (p.addr.port(), p.admin.unwrap().port())).unwrap();
    let haproxy = HaProxy::start(&proxies.iter().map(ports).collect::<Vec<_>>());
    let nonce = std::process::id();
    let session = |n: usize| format!("s{n}-{nonce}");

    // A cold start where it hurts most: each new session's first page reaches the three
    // instances at the same moment (with the site's host, as through the balancer).
    let direct: Vec<String> = proxies.iter().map(|p| p.as_ref().unwrap().url("/")).collect();
    let site = format!("127.0.0.1:{}", haproxy.port);
    for n in 0..10 {
        let barrier = Arc::new(Barrier::new(3));
        let handles: Vec<_> = direct
            .iter()
            .map(|url| {
                let (url, site, sid, barrier) =
                    (url.clone(), site.clone(), session(n), barrier.clone());
                thread::spawn(move || {
                    let agent = support::client();
                    barrier.wait();
                    fetch_as(&agent, &url, Some(&site), &sid)
                })
            })
            .collect();
        for h in handles {
            let (status, body) = h.join().unwrap().expect("direct request");
            assert_eq!(status, 200);
            assert!(
                carries_token_for(&body, &session(n)),
                "session {n}: no valid token on a cold start"
            );
        }
    }

    // Load through HAProxy: 8 clients cycling over 30 sessions (20 of them new), the
    // second instance killed with SIGKILL after 1.5 s.
    let stop = Arc::new(AtomicBool::new(false));
    // Pages with a valid token, counted as they come (each client also keeps its own).
    let served = Arc::new(AtomicUsize::new(0));
    let url = format!("http://127.0.0.1:{}/", haproxy.port);
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (url, stop, served) = (url.clone(), stop.clone(), served.clone());
            let sessions: Vec<String> = (0..30).filter(|n| n % 8 == c).map(session).collect();
            thread::spawn(move || {
                let agent = support::client();
                let (mut ok, mut failures, mut tokenless) = (0usize, Vec::new(), Vec::new());
                for sid in sessions.iter().cycle() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match fetch(&agent, &url, sid) {
                        Ok((200, body)) if carries_token_for(&body, sid) => {
                            ok += 1;
                            served.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok((200, _)) => tokenless.push(sid.clone()),
                        Ok((status, _)) => failures.push(format!("status {status}")),
                        Err(e) => failures.push(e),
                    }
                }
                (ok, failures, tokenless)
            })
        })
        .collect();
    // Under load (150 good pages, half of what the test asks for below), p1 dies.
    let load = |at_least: usize| {
        let served = served.clone();
        move || served.load(Ordering::SeqCst) >= at_least
    };
    support::wait_until("the load before the kill", Duration::from_secs(30), load(150));
    let killed = proxies[1].take().unwrap();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(killed.pid() as i32, libc::SIGKILL) };
    // Until HAProxy took p1 out and the other two served as many pages again after that.
    let down = || haproxy.log_text().contains("be/p1 is DOWN");
    support::wait_until("HAProxy to mark p1 down", Duration::from_secs(20), down);
    let after_down = served.load(Ordering::SeqCst);
    let more = load(after_down + 160);
    support::wait_until("pages after p1 went down", Duration::from_secs(30), more);
    stop.store(true, Ordering::SeqCst);
    let (mut ok, mut failures, mut tokenless) = (0, Vec::new(), Vec::new());
    for c in clients {
        let (o, f, t) = c.join().unwrap();
        ok += o;
        failures.extend(f);
        tokenless.extend(t);
    }
    let log = haproxy.log_text();
    let lines = haproxy.requests();

    // HAProxy's health check took the killed instance out, and nothing reached it after.
    assert!(log.contains("be/p1 is DOWN"), "HAProxy never marked p1 down:\n{log}");
    let after_down = log.split("be/p1 is DOWN").nth(1).unwrap_or_default();
    assert!(
        !after_down.lines().any(|l| l.starts_with("REQ p1 ")),
        "requests reached p1 after it was down"
    );
    // The only failures are the responses p1 had started to send when it died ("SD":
    // the server aborted during the data phase, which no proxy can retry). Everything
    // else (refused connections, requests p1 never answered) HAProxy retried elsewhere.
    let unretryable = lines.iter().filter(|(_, _, state, _)| state.starts_with("SD")).count();
    assert_eq!(
        failures.len(),
        unretryable,
        "client failures {failures:?} vs HAProxy's unretryable aborts; log:\n{log}"
    );
    assert!(failures.len() <= 8, "more failures than requests in flight: {failures:?}");
    let odd: Vec<_> = lines
        .iter()
        .filter(|(_, status, state, _)| status != "200" && !state.starts_with("SD"))
        .collect();
    assert!(odd.is_empty(), "requests neither served nor unretryable: {odd:?}");
    let retried = lines.iter().filter(|(_, _, _, retries)| retries != "0").count();
    assert!(ok > 300, "only {ok} good pages: the load did not run");
    // Every page served carries a valid token for its own user.
    assert!(tokenless.is_empty(), "{} pages without a valid token: {tokenless:?}", tokenless.len());

    // One current-user call per session, not one per instance.
    let mut calls: BTreeMap<String, usize> = BTreeMap::new();
    for req in app.requests().iter().filter(|r| r.path() == "/api/me") {
        *calls.entry(req.cookie("sid").unwrap_or_default()).or_default() += 1;
    }
    assert_eq!(calls.len(), 30, "{calls:?}");
    let warnings: String = proxies
        .iter()
        .flatten()
        .flat_map(|p| {
            p.log_text()
                .lines()
                .filter(|l| l.contains("WARN"))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        calls.values().all(|&n| n == 1),
        "sessions asked more than once: {calls:?}\n{warnings}"
    );

    // What Redis holds: hashed names, sealed values, no cookie, no user id, no claim left.
    let keys = String::from_utf8(redis_cli(&redis, &["KEYS", "*"])).unwrap();
    let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    assert_eq!(keys.len(), 30, "{keys:?}");
    for key in keys {
        let hex =
            key.strip_prefix("isp:identity:").unwrap_or_else(|| panic!("unexpected key {key}"));
        assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
        let value = redis_cli(&redis, &["GET", key]);
        let text = String::from_utf8_lossy(&value);
        assert!(
            !text.contains("user-") && !text.contains(&nonce.to_string()),
            "readable entry under {key}"
        );
    }
    eprintln!(
        "{ok} good pages, {} failed (unretryable), {retried} retried by HAProxy",
        failures.len()
    );
    drop(killed);
}

/// A relay to Redis that holds each chunk a client sends for `delay`: it widens the
/// moment between one instance's commands to a size a test can aim at.
fn slow_relay_to(redis: &Redis, delay: Duration) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let upstream = format!("127.0.0.1:{}", redis.port);
    thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let server = std::net::TcpStream::connect(&upstream).unwrap();
            let (mut client_in, mut server_out) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while let Ok(n @ 1..) = std::io::Read::read(&mut client_in, &mut buf) {
                    thread::sleep(delay);
                    if std::io::Write::write_all(&mut server_out, &buf[..n]).is_err() {
                        break;
                    }
                }
            });
            let (mut server_in, mut client_out) = (server, client);
            thread::spawn(move || std::io::copy(&mut server_in, &mut client_out));
        }
    });
    port
}

#[test]
fn an_instance_that_wins_the_claim_after_another_answered_uses_that_answer() {
    // B answers a new session while A's first look and its claim are 200 ms apart: A
    // looks (no answer yet), B stores its answer and releases its claim, A claims.
    let redis = Redis::start();
    let app = app_answering_in(Duration::from_millis(300));
    let relay = slow_relay_to(&redis, Duration::from_millis(200));
    let a = instance_with(
        &app,
        &format!("\n    redis: \"redis://127.0.0.1:{relay}/0\"\n    timeout: 5s"),
    );
    let b = instance(&app, &redis);
    let nonce = std::process::id();
    // A's connection to Redis is made first, outside the moment that matters.
    let warm = format!("s98-{nonce}");
    // Both as one site behind a balancer: the same Host, so the same shared entry.
    let site = Some("app.example");
    assert_eq!(fetch_as(&support::client(), &a.url("/"), site, &warm).unwrap().0, 200);

    let sid = format!("s7-{nonce}");
    let to_b = {
        let (url, sid) = (b.url("/"), sid.clone());
        thread::spawn(move || fetch_as(&support::client(), &url, site, &sid))
    };
    // B has claimed the session and asked the app (which answers in 300 ms).
    support::wait_until("B to ask the app", Duration::from_secs(10), || {
        let own = |r: &support::Request| r.cookie("sid").as_deref() == Some(sid.as_str());
        app.requests().iter().any(|r| r.path() == "/api/me" && own(r))
    });
    let (status, body) = fetch_as(&support::client(), &a.url("/"), site, &sid).unwrap();
    assert_eq!(status, 200);
    assert!(carries_token_for(&body, &sid), "A: no valid token");
    let (status, body) = to_b.join().unwrap().unwrap();
    assert_eq!(status, 200);
    assert!(carries_token_for(&body, &sid), "B: no valid token");
    let calls = app
        .requests()
        .iter()
        .filter(|r| r.path() == "/api/me" && r.cookie("sid").as_deref() == Some(sid.as_str()))
        .count();
    assert_eq!(
        calls,
        1,
        "the app was asked {calls} times for one session\nA:\n{}\nB:\n{}",
        a.log_text(),
        b.log_text()
    );
}

#[test]
fn without_redis_each_instance_asks_the_app_itself_and_pages_keep_their_tokens() {
    let mut redis = Redis::start();
    let app = app();
    let proxy = instance(&app, &redis);
    let readyz = proxy.admin_url("/readyz");
    assert_eq!(support::get(&readyz, &[]).status, 200);
    redis.stop();
    let not_ready = support::get(&readyz, &[]);
    assert_eq!(not_ready.status, 503);
    assert!(
        not_ready.text().contains("shared cache Redis redis://127.0.0.1:"),
        "{}",
        not_ready.text()
    );
    let agent = support::client();
    let sid = format!("s1-{}", std::process::id());
    for _ in 0..3 {
        let (status, body) = fetch(&agent, &proxy.url("/"), &sid).unwrap();
        assert_eq!(status, 200);
        assert!(carries_token_for(&body, &sid), "no token while the shared cache is down");
    }
    assert!(proxy.log_text().contains("asking the app directly"), "{}", proxy.log_text());
    // One lookup asked the app; the two after it were answered by the instance's cache.
    let metrics = support::get(&proxy.admin_url("/metrics"), &[]).text();
    let p = "intercom_secure_proxy_identity";
    for line in [
        format!("{p}_lookups_total{{result=\"miss\",source=\"current_user_endpoint\"}} 1"),
        format!("{p}_lookups_total{{result=\"hit\",source=\"current_user_endpoint\"}} 2"),
        format!("{p}_shared_cache_total{{result=\"error\"}} 1"),
    ] {
        assert!(metrics.lines().any(|l| l == line), "no {line} in\n{metrics}");
    }
    assert!(!proxy.log_text().contains(&sid), "the session id reached the log");
}

#[test]
fn a_logout_seen_by_one_instance_forgets_the_session_in_the_shared_cache() {
    let redis = Redis::start();
    let app = app();
    let a = instance(&app, &redis);
    let agent = support::client();
    let sid = format!("s2-{}", std::process::id());
    let (_, body) = fetch(&agent, &a.url("/"), &sid).unwrap();
    assert!(carries_token_for(&body, &sid));
    assert_eq!(redis_cli(&redis, &["DBSIZE"]), b"1\n");
    // The app expires its session cookie: the proxy takes that for a logout.
    fetch(&agent, &a.url("/logout"), &sid).unwrap();
    assert_eq!(redis_cli(&redis, &["DBSIZE"]), b"0\n", "the entry outlived the logout");
}

#[test]
fn check_warns_when_the_shared_cache_does_not_answer() {
    let app = app();
    let port = free_port();
    let identity = format!(
        "identity:\n  shared_cache: \"redis://127.0.0.1:{port}/0\"\n  sources:\n    - type: current_user_endpoint\n      path: /api/me\n"
    );
    let (code, out) = support::check_config(&format!(
        "listen: [\"127.0.0.1:{}\"]\n{}",
        free_port(),
        sections(app.addr, &identity, "")
    ));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("identity.shared_cache: redis://127.0.0.1:{port}/0 does not answer")),
        "{out}"
    );
    assert!(out.contains("each instance asks the app itself until it does"), "{out}");
    assert!(
        out.contains(&format!("shared cache redis://127.0.0.1:{port}/0")),
        "the summary names it: {out}"
    );
}

/// An app whose `/api/me` knows every `s<n>-…` session except those in `logged_out`
/// (a logout the proxy did not see, or one it did and an attacker wants undone).
fn app_with_logouts(logged_out: Arc<std::sync::Mutex<Vec<String>>>) -> Upstream {
    Upstream::start(move |req| match req.path() {
        "/api/me" => match req
            .cookie("sid")
            .filter(|sid| !logged_out.lock().unwrap().contains(sid))
            .as_deref()
            .and_then(user_of)
        {
            Some(user) => Reply::with(
                200,
                &[("Content-Type", "application/json")],
                format!(r#"{{"id":"{user}"}}"#),
            ),
            None => Reply::with(401, &[], "{}"),
        },
        _ => Reply::html(PAGE),
    })
}

/// One instance sharing `redis`, whose entries live `cache_ttl` (with a Redis timeout
/// that a loaded test machine does not reach).
fn instance_living(app: &Upstream, redis: &Redis, cache_ttl: &str) -> Proxy {
    let identity = format!(
        "identity:\n  shared_cache: {{redis: \"{}\", timeout: 2s}}\n  sources:\n    - type: current_user_endpoint\n      path: /api/me\n      cookies: [sid]\n      cache_ttl: {cache_ttl}\n",
        redis.url()
    );
    Proxy::start(&sections(app.addr, &identity, ""))
}

/// The name of the only identity entry in `redis`.
fn only_entry(redis: &Redis) -> String {
    let keys = String::from_utf8(redis_cli(redis, &["KEYS", "isp:identity:*"])).unwrap();
    let keys: Vec<&str> = keys.lines().filter(|k| !k.ends_with(":claim")).collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    keys[0].to_string()
}

#[test]
fn a_replayed_or_persisted_entry_is_refused_past_its_sealed_expiry() {
    let redis = Redis::start();
    let logged_out = Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = app_with_logouts(logged_out.clone());
    let proxy = instance_living(&app, &redis, "2s");
    let agent = support::client();
    let nonce = std::process::id();
    let past_the_ttl = Duration::from_millis(2500);

    // A Redis writer saves a live entry, and puts it back once the app logged the user out.
    let replayed = format!("s4-{nonce}");
    assert!(carries_token_for(&fetch(&agent, &proxy.url("/"), &replayed).unwrap().1, &replayed));
    let entry = only_entry(&redis);
    assert_eq!(redis_cli(&redis, &["COPY", &entry, "saved"]), b"1\n");
    assert_eq!(redis_cli(&redis, &["PERSIST", "saved"]), b"1\n");
    logged_out.lock().unwrap().push(replayed.clone());
    // Redis expired the live entry: its TTL, and so its sealed expiry, has passed.
    let expired = || redis_cli(&redis, &["EXISTS", &entry]) == b"0\n";
    support::wait_until("Redis to expire the entry", past_the_ttl * 4, expired);
    assert_eq!(redis_cli(&redis, &["COPY", "saved", &entry, "REPLACE"]), b"1\n");
    let (_, page) = fetch(&agent, &proxy.url("/"), &replayed).unwrap();
    assert!(page_token(&page).is_none(), "a replayed entry kept a logged-out user signed in");
    redis_cli(&redis, &["FLUSHALL"]);

    // PERSIST on a live entry: it stays in Redis, but not in the proxy's eyes.
    let persisted = format!("s5-{nonce}");
    assert!(carries_token_for(&fetch(&agent, &proxy.url("/"), &persisted).unwrap().1, &persisted));
    assert_eq!(redis_cli(&redis, &["PERSIST", &only_entry(&redis)]), b"1\n");
    logged_out.lock().unwrap().push(persisted.clone());
    // Persisted, the entry never leaves Redis: what passes is the time sealed in it, and
    // the clock is all there is to wait on.
    thread::sleep(past_the_ttl);
    let (_, page) = fetch(&agent, &proxy.url("/"), &persisted).unwrap();
    assert!(page_token(&page).is_none(), "a persisted entry kept a logged-out user signed in");
}
