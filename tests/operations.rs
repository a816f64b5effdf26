//! Operating the proxy: a graceful binary upgrade (`run -u`, then SIGQUIT to the old
//! process) refuses no connection and fails no request, and SIGTERM stops cleanly: at
//! once when nothing is in flight, after the last response otherwise.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{binary, free_port, Reply, Upstream, APP_ID, SECRET, TRUSTED_HEADER};

fn config(dir: &std::path::Path, port: u16, upstream: std::net::SocketAddr) -> std::path::PathBuf {
    config_with_grace(dir, port, upstream, "2s")
}

fn config_with_grace(
    dir: &std::path::Path,
    port: u16,
    upstream: std::net::SocketAddr,
    grace: &str,
) -> std::path::PathBuf {
    let d = dir.display();
    let yaml = format!(
        "listen: [\"127.0.0.1:{port}\"]\nserver:\n  threads: 1\n  grace_period: {grace}\n  graceful_shutdown_timeout: 1s\n  pid_file: {d}/p.pid\n  upgrade_sock: {d}/upgrade.sock\nupstream:\n  addresses: [\"{upstream}\"]\nintercom:\n  app_id: {APP_ID}\n  secret_env: TEST_INTERCOM_SECRET\n{TRUSTED_HEADER}"
    );
    let path = dir.join("p.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn spawn(conf: &std::path::Path, extra: &[&str], log: &std::path::Path) -> Child {
    Command::new(binary())
        .args(["run", "-c"])
        .arg(conf)
        .args(extra)
        .env("TEST_INTERCOM_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success());
}

/// One request on a fresh connection; true when a full 200 page with a token came back.
fn one_request(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if s.write_all(
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-User: alice\r\nConnection: close\r\n\r\n",
    )
    .is_err()
    {
        return false;
    }
    let mut out = Vec::new();
    if s.read_to_end(&mut out).is_err() {
        return false;
    }
    out.starts_with(b"HTTP/1.1 200")
        && support::find(&out, b"</html>").is_some()
        && support::find(&out, b",\"j\":\"").is_some()
}

/// Whether a Unix socket listens at `path` (/proc/net/unix: flag __SO_ACCEPTCON).
fn unix_listening(path: &std::path::Path) -> bool {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let path = path.to_string_lossy();
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 7 && f[7] == path && f[3] == "00010000"
    })
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "not listening on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the new process of an upgrade and, once it waits on the upgrade socket, sends
/// SIGQUIT to the old one, which hands over its listeners, finishes what it has in
/// flight, and exits.
fn upgrade(conf: &std::path::Path, dir: &std::path::Path, old: &Child) -> Child {
    let new = spawn(conf, &["-u"], &dir.join("new.log"));
    let deadline = Instant::now() + Duration::from_secs(20);
    // Listening on it, not only bound (the file exists from the bind on).
    while !unix_listening(&dir.join("upgrade.sock")) {
        assert!(Instant::now() < deadline, "the new process never listened on the upgrade socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(old.id(), "-QUIT");
    new
}

#[test]
fn a_graceful_upgrade_drops_nothing() {
    let up = Upstream::start(|_| {
        Reply::html(&b"<html><head><script>1</script></head><body>page</body></html>"[..])
    });
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = config(dir.path(), port, up.addr);
    let mut old = spawn(&conf, &[], &dir.path().join("old.log"));
    wait_listening(port);

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if one_request(port) {
                        ok.fetch_add(1, Ordering::SeqCst);
                    } else {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    let served = || ok.load(Ordering::SeqCst) >= 20;
    support::wait_until("the load to be served", Duration::from_secs(10), served);

    let mut new = upgrade(&conf, dir.path(), &old);
    let deadline = Instant::now() + Duration::from_secs(15);
    while old.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the old process did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    let served_before_switch = ok.load(Ordering::SeqCst);
    // Bounded: a new process that serves nothing fails the test here.
    support::wait_until("the new process to serve", Duration::from_secs(10), || {
        ok.load(Ordering::SeqCst) >= served_before_switch + 20 || failed.load(Ordering::SeqCst) > 0
    });
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.join().unwrap();
    }
    let new_log = std::fs::read_to_string(dir.path().join("new.log")).unwrap();
    assert!(new.try_wait().unwrap().is_none(), "the new process runs: {new_log}");
    assert!(ok.load(Ordering::SeqCst) > served_before_switch, "the new process serves");
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests failed during the upgrade (ok: {})",
        ok.load(Ordering::SeqCst)
    );

    // SIGTERM: a graceful stop within the grace period.
    signal(new.id(), "-TERM");
    let (status, _) =
        exit_within(&mut new, Duration::from_secs(15)).expect("SIGTERM did not stop the proxy");
    assert!(status.success(), "a graceful stop exits 0, not {status:?}");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// Waits for `child` to exit, up to `limit`; its status and how long it took.
fn exit_within(child: &mut Child, limit: Duration) -> Option<(std::process::ExitStatus, Duration)> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some((status, started.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn sigterm_with_nothing_in_flight_stops_well_before_the_grace_period() {
    let up = Upstream::start(|_| {
        Reply::html(&b"<html><head><script>1</script></head><body>page</body></html>"[..])
    });
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut proxy =
        spawn(&config_with_grace(dir.path(), port, up.addr, "30s"), &[], &dir.path().join("p.log"));
    wait_listening(port);
    // A kept-alive connection that stays open and idle must not hold the stop back.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-User: alice\r\n\r\n").unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");

    signal(proxy.id(), "-TERM");
    // Pingora alone sleeps the whole 30 s grace period.
    let (status, took) = exit_within(&mut proxy, Duration::from_secs(15))
        .expect("still running 15 s after SIGTERM, with nothing in flight");
    assert!(status.success(), "a graceful stop exits 0, not {status:?}");
    eprintln!("stopped {took:?} after SIGTERM");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "still listening");
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_then_stops() {
    let up = Upstream::start(|r| match r.path() {
        "/slow" => Reply::After(
            Duration::from_secs(2),
            Box::new(Reply::html(&b"<html><body>slow page</body></html>"[..])),
        ),
        _ => Reply::html(&b"<html><body>page</body></html>"[..]),
    });
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut proxy =
        spawn(&config_with_grace(dir.path(), port, up.addr, "30s"), &[], &dir.path().join("p.log"));
    wait_listening(port);
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).map(|_| out)
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while up.count("/slow") == 0 {
        assert!(Instant::now() < deadline, "the slow request never reached the app");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(proxy.id(), "-TERM");
    let out = slow.join().unwrap().expect("the request in flight was cut off");
    assert!(
        out.starts_with(b"HTTP/1.1 200") && support::find(&out, b"slow page").is_some(),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let (status, _) = exit_within(&mut proxy, Duration::from_secs(15))
        .expect("still running after its last response");
    assert!(status.success(), "a graceful stop exits 0, not {status:?}");
}

#[test]
fn a_graceful_upgrade_under_keep_alive_load_fails_no_request() {
    let up = Upstream::start(|_| {
        Reply::html(&b"<html><head><script>1</script></head><body>page</body></html>"[..])
    });
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = config_with_grace(dir.path(), port, up.addr, "10s");
    let mut old = spawn(&conf, &[], &dir.path().join("old.log"));
    wait_listening(port);

    let mut new = support::under_keep_alive_load(port, || {
        let new = upgrade(&conf, dir.path(), &old);
        let (status, _) =
            exit_within(&mut old, Duration::from_secs(20)).expect("the old process did not exit");
        let log = || std::fs::read_to_string(dir.path().join("old.log")).unwrap_or_default();
        assert!(status.success(), "the old process exits 0, not {status:?}:\n{}", log());
        new
    });
    assert!(new.try_wait().unwrap().is_none(), "the new process runs");
    assert!(one_request(port), "the new process serves");
    signal(new.id(), "-TERM");
    exit_within(&mut new, Duration::from_secs(15)).expect("the new process did not stop");
}

/// The token of a page served now, or `None`.
fn token_now(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-User: alice\r\nConnection: close\r\n\r\n",
    )
    .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    support::page_token(&String::from_utf8_lossy(&out))
}

fn verifies_with(secret: &str, token: &str) -> bool {
    let v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &v,
    )
    .is_ok()
}

#[test]
fn a_secret_rotated_with_an_upgrade_signs_new_tokens_and_fails_no_request() {
    const NEXT: &str = "the-next-messenger-secret-0123456789abcdef";
    let up = Upstream::start(|_| {
        Reply::html(&b"<html><head><script>1</script></head><body>page</body></html>"[..])
    });
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let conf = config_with_grace(dir.path(), port, up.addr, "10s");
    let yaml = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("secret_env: TEST_INTERCOM_SECRET", &format!("secret_file: {}", secret.display()));
    std::fs::write(&conf, yaml).unwrap();
    let mut old = spawn(&conf, &[], &dir.path().join("old.log"));
    wait_listening(port);
    let before = token_now(port).expect("a token before the rotation");
    assert!(verifies_with(SECRET, &before));

    // The documented rotation: write the new secret, then upgrade in place.
    let mut new = support::under_keep_alive_load(port, || {
        std::fs::write(&secret, NEXT).unwrap();
        let new = upgrade(&conf, dir.path(), &old);
        exit_within(&mut old, Duration::from_secs(20)).expect("the old process did not exit");
        new
    });
    let after = token_now(port).expect("a token after the rotation");
    assert!(verifies_with(NEXT, &after), "the new process signs with the new secret");
    assert!(!verifies_with(SECRET, &after), "the old secret still signs");
    signal(new.id(), "-TERM");
    exit_within(&mut new, Duration::from_secs(15)).expect("the new process did not stop");
}
