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
    config_listening(dir, &format!("\"127.0.0.1:{port}\""), upstream, grace)
}

/// A TLS listener on `port` with HTTP/2, its certificate made in `dir`: (the listen item,
/// the certificate).
fn tls_listener(dir: &std::path::Path, port: u16) -> (String, std::path::PathBuf) {
    let (cert, key) = support::tls::certificate(dir);
    let item = format!(
        "{{address: \"127.0.0.1:{port}\", tls: {{cert_file: {}, key_file: {}}}, h2: true}}",
        cert.display(),
        key.display()
    );
    (item, cert)
}

fn config_listening(
    dir: &std::path::Path,
    listen: &str,
    upstream: std::net::SocketAddr,
    grace: &str,
) -> std::path::PathBuf {
    let d = dir.display();
    let yaml = format!(
        "listen: [{listen}]\nserver:\n  threads: 1\n  grace_period: {grace}\n  graceful_shutdown_timeout: 1s\n  pid_file: {d}/p.pid\n  upgrade_sock: {d}/upgrade.sock\nupstream:\n  addresses: [\"{upstream}\"]\nintercom:\n  app_id: {APP_ID}\n  secret_env: TEST_INTERCOM_SECRET\n{TRUSTED_HEADER}"
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

/// One request on a fresh connection: a full 200 page with a token, or why not.
fn one_request(port: u16) -> Result<(), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-User: alice\r\nConnection: close\r\n\r\n",
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| format!("read after {} bytes: {e}", out.len()))?;
    whole_page(&out)
}

/// Ok for a full 200 page with a token; otherwise what came back.
fn whole_page(out: &[u8]) -> Result<(), String> {
    let whole = out.starts_with(b"HTTP/1.1 200")
        && support::find(out, b"</html>").is_some()
        && support::find(out, b",\"j\":\"").is_some();
    if whole {
        Ok(())
    } else {
        let start = String::from_utf8_lossy(&out[..out.len().min(200)]).into_owned();
        Err(format!("{} bytes: {start:?}", out.len()))
    }
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
    let why = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed, why) = (stop.clone(), ok.clone(), failed.clone(), why.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match one_request(port) {
                        Ok(()) => ok.fetch_add(1, Ordering::SeqCst),
                        Err(e) => {
                            why.lock().unwrap().push(e);
                            failed.fetch_add(1, Ordering::SeqCst)
                        }
                    };
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
        "requests failed during the upgrade (ok: {}): {:?}",
        ok.load(Ordering::SeqCst),
        why.lock().unwrap()
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

/// An app whose `/slow` answers after 2 s.
fn slow_app() -> Upstream {
    Upstream::start(|r| match r.path() {
        "/slow" => Reply::After(
            Duration::from_secs(2),
            Box::new(Reply::html(&b"<html><body>slow page</body></html>"[..])),
        ),
        _ => Reply::html(&b"<html><body>page</body></html>"[..]),
    })
}

/// Sends SIGTERM to `proxy` once the slow request has reached the app.
fn terminate_once_in_flight(up: &Upstream, proxy: &Child) {
    support::wait_until("the slow request to reach the app", Duration::from_secs(10), || {
        up.count("/slow") > 0
    });
    signal(proxy.id(), "-TERM");
}

fn stops_after_its_last_response(proxy: &mut Child) {
    let (status, _) =
        exit_within(proxy, Duration::from_secs(15)).expect("still running after its last response");
    assert!(status.success(), "a graceful stop exits 0, not {status:?}");
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_then_stops() {
    let up = slow_app();
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
    terminate_once_in_flight(&up, &proxy);
    let out = slow.join().unwrap().expect("the request in flight was cut off");
    assert!(
        out.starts_with(b"HTTP/1.1 200") && support::find(&out, b"slow page").is_some(),
        "{}",
        String::from_utf8_lossy(&out)
    );
    stops_after_its_last_response(&mut proxy);
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
    one_request(port).expect("the new process serves");
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

/// The socket inodes of the connections to `port` from `client` (/proc/net/tcp).
fn server_side_inodes(port: u16, client: std::net::SocketAddr) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!("0100007F:{port:04X}");
    let remote = format!("0100007F:{:04X}", client.port());
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 9 && f[1] == local && f[2] == remote).then(|| f[9].to_string())
        })
        .collect()
}

/// Whether process `pid` holds the server side of `client`'s connection to `port`.
fn holds_connection(pid: u32, port: u16, client: std::net::SocketAddr) -> bool {
    let inodes = server_side_inodes(port, client);
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let target = target.to_string_lossy().into_owned();
            inodes.iter().any(|inode| target == format!("socket:[{inode}]"))
        })
    })
}

#[test]
fn an_upgrade_serves_a_connection_it_accepted_before_the_tls_handshake() {
    let up = Upstream::start(|_| {
        Reply::html(&b"<html><head><script>1</script></head><body>page</body></html>"[..])
    });
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (listen, cert) = tls_listener(dir.path(), port);
    let conf = config_listening(dir.path(), &listen, up.addr, "10s");
    let mut old = spawn(&conf, &[], &dir.path().join("old.log"));
    wait_listening(port);
    // A client that connected before the upgrade and is slow to start its handshake.
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let client = tcp.local_addr().unwrap();
    support::wait_until(
        "the old process to accept the connection",
        Duration::from_secs(10),
        || holds_connection(old.id(), port, client),
    );
    let mut new = upgrade(&conf, dir.path(), &old);
    let old_log = || std::fs::read_to_string(dir.path().join("old.log")).unwrap_or_default();
    support::wait_until("the old process to stop accepting", Duration::from_secs(20), || {
        old_log().contains(&format!("Shutting down 127.0.0.1:{port}"))
    });
    // An old process that exits once its own count of connections is zero does so
    // within a few of its 20 ms polls; give it that long to do it.
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline && old.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = rustls::ClientConnection::new(support::tls::client_config(&cert, b"http/1.1"), name)
        .unwrap();
    let mut tls = rustls::StreamOwned::new(tls, tcp);
    tls.sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request =
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-User: alice\r\nConnection: close\r\n\r\n";
    let mut out = Vec::new();
    let answered = tls.write_all(request).and_then(|()| tls.read_to_end(&mut out));
    assert!(
        answered.is_ok() && whole_page(&out).is_ok(),
        "the connection accepted before the upgrade was cut ({answered:?}, {:?}):\n{}",
        whole_page(&out),
        old_log()
    );
    let (status, _) =
        exit_within(&mut old, Duration::from_secs(20)).expect("the old process did not exit");
    assert!(status.success(), "the old process exits 0, not {status:?}");
    signal(new.id(), "-TERM");
    exit_within(&mut new, Duration::from_secs(15)).expect("the new process did not stop");
}

#[test]
fn sigterm_lets_an_http2_request_in_flight_finish_then_stops() {
    let up = slow_app();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (listen, cert) = tls_listener(dir.path(), port);
    let conf = config_listening(dir.path(), &listen, up.addr, "30s");
    let mut proxy = spawn(&conf, &[], &dir.path().join("p.log"));
    wait_listening(port);
    let slow = std::process::Command::new("curl")
        .args(["-s", "--http2", "-D", "-", "--max-time", "20", "--cacert"])
        .arg(&cert)
        .arg(format!("https://localhost:{port}/slow"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl");
    terminate_once_in_flight(&up, &proxy);
    let out = slow.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.starts_with("HTTP/2 200") && text.contains("slow page"),
        "the HTTP/2 request in flight was cut off ({:?}): {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stops_after_its_last_response(&mut proxy);
}
