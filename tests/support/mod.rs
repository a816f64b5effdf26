//! Shared test support: a scriptable upstream app on loopback, the real proxy binary
//! started with a config, and a real HTTP client.
#![allow(dead_code)]

pub mod conn;
pub mod init;
pub mod legacy;
pub mod python_app;
pub mod redis;
pub mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const SECRET: &str = "test-secret-0123456789abcdef-0123456789abcdef";
/// The admin token of [`Proxy::start_with_admin_token`].
pub const ADMIN_TOKEN: &str = "test-admin-token-9f8e7d6c5b4a39281706f5e4d3c2b1a0";
pub const APP_ID: &str = "abc12345";

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// Header names exactly as sent on the wire.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.header("cookie")?
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

/// What the upstream answers.
pub enum Reply {
    /// A normal response with Content-Length (unless a transfer-encoding header is given).
    Full { status: u16, headers: Vec<(String, String)>, body: Vec<u8> },
    /// A chunked response written piece by piece, with a pause between pieces.
    Chunked { status: u16, headers: Vec<(String, String)>, pieces: Vec<Vec<u8>>, pause: Duration },
    /// A chunked body produced by a generator until it returns None (for huge pages).
    Stream {
        status: u16,
        headers: Vec<(String, String)>,
        next: Box<dyn FnMut() -> Option<Vec<u8>> + Send>,
    },
    /// Exact bytes, then the connection is closed.
    Raw(Vec<u8>),
    /// Wait, then answer.
    After(Duration, Box<Reply>),
}

impl Reply {
    pub fn html(body: impl Into<Vec<u8>>) -> Reply {
        Reply::Full {
            status: 200,
            headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
            body: body.into(),
        }
    }
    pub fn with(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Reply {
        Reply::Full {
            status,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.into(),
        }
    }
}

pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// A real HTTP/1.1 server on loopback that answers with a handler and records requests.
pub struct Upstream {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl Upstream {
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let log = requests.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let handler = handler.clone();
                let log = log.clone();
                thread::spawn(move || serve(stream, handler, log));
            }
        });
        Upstream { addr, requests }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r.path() == path).count()
    }
}

fn serve(stream: TcpStream, handler: Handler, log: Arc<Mutex<Vec<Request>>>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.trim_end().splitn(3, ' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.to_string(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let req = Request { method, target, headers, body };
        log.lock().unwrap().push(req.clone());
        let head_only = req.method == "HEAD";
        if !write_reply(&mut writer, handler(&req), head_only) {
            return;
        }
    }
}

fn head(status: u16, headers: &[(String, String)]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} X\r\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out
}

/// Writes the reply; false when the connection must close.
fn write_reply(w: &mut TcpStream, reply: Reply, head_only: bool) -> bool {
    match reply {
        Reply::After(d, r) => {
            thread::sleep(d);
            write_reply(w, *r, head_only)
        }
        Reply::Raw(bytes) => {
            let _ = w.write_all(&bytes);
            let _ = w.shutdown(std::net::Shutdown::Both);
            false
        }
        Reply::Full { status, headers, body } => {
            let mut out = head(status, &headers);
            let framed = headers.iter().any(|(k, _)| {
                k.eq_ignore_ascii_case("content-length")
                    || k.eq_ignore_ascii_case("transfer-encoding")
            });
            if !framed && !matches!(status, 204 | 304) {
                out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            if !head_only && !matches!(status, 204 | 304) {
                out.extend_from_slice(&body);
            }
            w.write_all(&out).is_ok()
        }
        Reply::Chunked { status, headers, pieces, pause } => {
            let mut out = head(status, &headers);
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            if w.write_all(&out).is_err() {
                return false;
            }
            for p in pieces {
                if !p.is_empty() && write_chunk(w, &p).is_err() {
                    return false;
                }
                thread::sleep(pause);
            }
            w.write_all(b"0\r\n\r\n").is_ok()
        }
        Reply::Stream { status, headers, mut next } => {
            let mut out = head(status, &headers);
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            if w.write_all(&out).is_err() {
                return false;
            }
            while let Some(p) = next() {
                if !p.is_empty() && write_chunk(w, &p).is_err() {
                    return false;
                }
            }
            w.write_all(b"0\r\n\r\n").is_ok()
        }
    }
}

fn write_chunk(w: &mut TcpStream, p: &[u8]) -> std::io::Result<()> {
    w.write_all(format!("{:x}\r\n", p.len()).as_bytes())?;
    w.write_all(p)?;
    w.write_all(b"\r\n")
}

/// A free loopback port (bound then released), never one this process handed out
/// before: the kernel may offer a released port again, and two servers of one test
/// binary would then be configured on the same port.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Runs a client command (redis-cli, say) to its end, as `Command::output` does, but
/// kills it and panics once `within` has passed: a server that accepts and never
/// answers must fail the test, not hang it.
pub fn output_within(command: &mut Command, within: Duration) -> std::process::Output {
    let what = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {within:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    std::process::Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// Reads a child's pipe to its end on a thread of its own: a full pipe would stop the
/// command before it exits.
fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// Waits until a server we started listens on `addr`. Panics, with `log()`, when the
/// server exits first, another process holds the port, or it does not listen `within`.
pub fn wait_listening(
    addr: SocketAddr,
    child: &mut Child,
    within: Duration,
    what: &str,
    log: &dyn Fn() -> String,
) {
    if let Err(why) = listening_or_exited(addr, child, within, what, log) {
        panic!("{why}");
    }
}

/// How long another process may hold a server's port before the server counts as
/// locked out (a server that waits for its port, as Pingora's bind does, never exits).
const HELD_ELSEWHERE: Duration = Duration::from_secs(5);

/// Waits until a server we started listens on `addr` with a socket of its own. `Err`
/// says why not, with `log()`: it exited first, or another process held the port.
/// Panics, with `log()`, when none of these happens `within`.
pub fn listening_or_exited(
    addr: SocketAddr,
    child: &mut Child,
    within: Duration,
    what: &str,
    log: &dyn Fn() -> String,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut elsewhere_since = None;
    loop {
        let holder = holder(child.id(), addr);
        if holder == Holder::Child {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited with {status}:\n{}", log()));
        }
        if holder == Holder::Other
            && elsewhere_since.get_or_insert_with(Instant::now).elapsed() > HELD_ELSEWHERE
        {
            return Err(format!(
                "{addr}, the port of {what}: Address already in use, by another process:\n{}",
                log()
            ));
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {addr} within {within:?}:\n{}",
            log()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `start` (a server on a free port: the server, or why it did not start) until a
/// server gets a port of its own: again, on another port, when the port was in use (as
/// redis-server, HAProxy, Python, PHP, Apache, Node and the proxy word it, or
/// [`listening_or_exited`]). Panics when it did not start for another reason.
pub fn on_a_free_port<T>(what: &str, mut start: impl FnMut() -> Result<T, String>) -> T {
    for _ in 0..5 {
        match start() {
            Ok(server) => return server,
            Err(why) if why.contains("Address already in use") || why.contains("EADDRINUSE") => {
                eprintln!("the port of {what} was taken; trying another")
            }
            Err(why) => panic!("{why}"),
        }
    }
    panic!("{what} never got a port of its own");
}

/// Polls `done` every 10 ms until it holds; panics, naming `what`, when it does not
/// within `within`. What a test waits for instead of sleeping a guessed time.
pub fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "waited {within:?} for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Who listens on a TCP port.
#[derive(Debug, PartialEq, Eq)]
enum Holder {
    Nobody,
    /// The process we started, on exactly that address.
    Child,
    /// Another process, on that address or on every address of the port.
    Other,
}

/// Who listens on the IPv4 `addr` (Linux: the listening sockets' inodes in
/// /proc/net/tcp, looked up among process `pid`'s descriptors).
fn holder(pid: u32, addr: SocketAddr) -> Holder {
    let SocketAddr::V4(v4) = addr else { return Holder::Nobody };
    let port = format!(":{:04X}", v4.port());
    let exact = format!("{:08X}{port}", u32::from_le_bytes(v4.ip().octets()));
    let any = format!("00000000{port}");
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let listening: Vec<(bool, String)> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 9 && (f[1] == exact || f[1] == any) && f[3] == "0A")
        .map(|f| (f[1] == exact, format!("socket:[{}]", f[9])))
        .collect();
    if listening.is_empty() {
        return Holder::Nobody;
    }
    let ours = std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| {
                listening.iter().any(|(on_addr, i)| *on_addr && target.as_os_str() == i.as_str())
            })
        })
    });
    if ours {
        Holder::Child
    } else {
        Holder::Other
    }
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_intercom-secure-proxy"))
}

/// `intercom-secure-proxy demo` on two free ports with `args` (`INTERCOM_SECRET` unset,
/// so the documented default secret), once both listen with sockets of its own: the
/// process, the sample app's port and the proxy's port. Started again on other ports
/// when one was taken (the demo then exits, naming it).
pub fn start_demo(args: &[&str], stdout: fn() -> Stdio) -> (Child, u16, u16) {
    on_a_free_port("the demo", || {
        let (app_port, proxy_port) = (free_port(), free_port());
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(binary())
            .args([
                "demo",
                "--app-port",
                &app_port.to_string(),
                "--proxy-port",
                &proxy_port.to_string(),
            ])
            .args(args)
            .env_remove("INTERCOM_SECRET")
            .stdout(stdout())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let log_text = || std::fs::read_to_string(log.path()).unwrap_or_default();
        for port in [proxy_port, app_port] {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if let Err(why) = listening_or_exited(
                addr,
                &mut child,
                Duration::from_secs(20),
                "the demo",
                &log_text,
            ) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(why);
            }
        }
        Ok((child, app_port, proxy_port))
    })
}

/// The real proxy binary, running with a config file.
pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    /// The admin listener's address, when started with [`Proxy::start_with_admin`].
    pub admin: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Proxy {
    /// Starts `run -c` with `sections` (everything but listen/server) appended to a
    /// config that listens on a free port; the secret comes from TEST_INTERCOM_SECRET.
    pub fn start(sections: &str) -> Proxy {
        Self::start_with(sections, &[])
    }

    pub fn start_with(sections: &str, args: &[&str]) -> Proxy {
        Self::launch(sections, "", args, &[], "", None)
    }

    /// Like [`Proxy::start`], with an admin listener on a free port of its own
    /// ([`Proxy::admin_url`]); `sections` must not have an `admin` section.
    pub fn start_with_admin(sections: &str) -> Proxy {
        Self::launch(sections, "", &[], &[], "", Some(""))
    }

    /// Like [`Proxy::start_with_admin`], with the admin token [`ADMIN_TOKEN`] in
    /// `TEST_ADMIN_TOKEN` (`admin.token_env`).
    pub fn start_with_admin_token(sections: &str) -> Proxy {
        Self::launch(
            sections,
            "",
            &[],
            &[("TEST_ADMIN_TOKEN", ADMIN_TOKEN)],
            "",
            Some("  token_env: TEST_ADMIN_TOKEN\n"),
        )
    }

    /// Like [`Proxy::start`], with `server_keys` (indented lines) added to the server section.
    pub fn start_with_server(sections: &str, server_keys: &str) -> Proxy {
        Self::launch(sections, server_keys, &[], &[], "", None)
    }

    /// Like [`Proxy::start`], with more environment variables (e.g. `RUST_LOG`).
    pub fn start_with_env(sections: &str, env: &[(&str, &str)]) -> Proxy {
        Self::launch(sections, "", &[], env, "", None)
    }

    /// Like [`Proxy::start`], with one more `listen` entry (YAML flow syntax).
    pub fn start_with_listener(sections: &str, listener: &str) -> Proxy {
        Self::launch(sections, "", &[], &[], listener, None)
    }

    /// [`Proxy::start_with_listener`] and [`Proxy::start_with_server`] at once.
    pub fn start_with_listener_and_server(
        sections: &str,
        listener: &str,
        server_keys: &str,
    ) -> Proxy {
        Self::launch(sections, server_keys, &[], &[], listener, None)
    }

    /// Starts the proxy on free ports, again on other ports until its own sockets
    /// listen on every port it was given. Another process may take a port between
    /// `free_port` and the proxy's bind: the proxy then refuses to start, or (taken
    /// after its start-up check) waits for the port while a client would reach the
    /// other process.
    /// `admin`: the admin section's keys besides `listen` (indented lines), when there
    /// is an admin listener.
    fn launch(
        sections: &str,
        server_keys: &str,
        args: &[&str],
        env: &[(&str, &str)],
        listener: &str,
        admin: Option<&str>,
    ) -> Proxy {
        on_a_free_port("the proxy", || {
            Self::spawn(sections, server_keys, args, env, listener, admin)
        })
    }

    /// Spawns the proxy on free ports and waits until it listens on them; why not, when
    /// it does not.
    fn spawn(
        sections: &str,
        server_keys: &str,
        args: &[&str],
        env: &[(&str, &str)],
        listener: &str,
        admin_keys: Option<&str>,
    ) -> Result<Proxy, String> {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let admin: Option<SocketAddr> =
            admin_keys.map(|_| format!("127.0.0.1:{}", free_port()).parse().unwrap());
        let d = dir.path().display();
        let more = if listener.is_empty() { String::new() } else { format!(", {listener}") };
        let admin_section = admin
            .map(|a| format!("admin:\n  listen: \"{a}\"\n{}", admin_keys.unwrap_or("")))
            .unwrap_or_default();
        let yaml = format!(
            "listen: [\"127.0.0.1:{port}\"{more}]\nserver:\n  threads: 1\n  grace_period: 0s\n  graceful_shutdown_timeout: 1s\n  pid_file: {d}/proxy.pid\n  upgrade_sock: {d}/upgrade.sock\n{server_keys}{admin_section}{sections}"
        );
        let conf = dir.path().join("proxy.yaml");
        std::fs::write(&conf, yaml).unwrap();
        let log = dir.path().join("proxy.log");
        let child = Command::new(binary())
            .arg("run")
            .arg("-c")
            .arg(&conf)
            .args(args)
            .env("TEST_INTERCOM_SECRET", SECRET)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // Killed on drop when it does not listen.
        let mut proxy = Proxy { child, addr, admin, dir, log: log.clone() };
        let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
        for addr in [Some(addr), admin].into_iter().flatten() {
            listening_or_exited(
                addr,
                &mut proxy.child,
                Duration::from_secs(20),
                "the proxy",
                &log_text,
            )?;
        }
        Ok(proxy)
    }

    /// A URL on the admin listener of a proxy started with [`Proxy::start_with_admin`].
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin.expect("started with an admin listener"), path)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log once it holds `marker`, a line the requests so far must have produced:
    /// what a test then asserts about the whole log (no secret in it, say) is about
    /// those requests' lines, never about a log that was not flushed yet. Panics, with
    /// the log, when `marker` is not there within 10 s.
    pub fn wait_for_log(&self, marker: &str) -> String {
        let mut log = String::new();
        wait_until(&format!("the proxy log to hold {marker:?}"), Duration::from_secs(10), || {
            log = self.log_text();
            log.contains(marker)
        });
        log
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The usual config sections: one upstream, the test workspace, the given identity.
pub fn sections(upstream: SocketAddr, identity: &str, extra: &str) -> String {
    format!(
        "upstream:\n  addresses: [\"{upstream}\"]\nintercom:\n  app_id: {APP_ID}\n  secret_env: TEST_INTERCOM_SECRET\n{identity}{extra}"
    )
}

/// Trusted-header identity from loopback.
pub const TRUSTED_HEADER: &str = "identity:\n  sources:\n    - type: trusted_header\n      trusted_cidrs: [\"127.0.0.1/32\"]\n      headers: {user_id: X-Forwarded-User, email: X-Forwarded-Email, name: X-Forwarded-Name}\n";

/// An HTTP client that reports every status and never follows redirects.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// A response, read whole.
pub struct Got {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn got(mut resp: ureq::http::Response<ureq::Body>) -> Got {
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = resp.body_mut().with_config().limit(u64::MAX).read_to_vec().expect("response body");
    Got { status, headers, body }
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Got {
    request("GET", url, headers)
}

pub fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Got {
    send(method, url, headers, b"")
}

/// A request with a body (none when empty).
pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Got {
    let agent = client();
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = match body {
        [] => agent.run(req.body(()).unwrap()),
        body => agent.run(req.body(body.to_vec()).unwrap()),
    };
    got(resp.expect("request failed"))
}

/// Decodes and verifies a Messenger token with the test secret.
pub fn verify(token: &str) -> serde_json::Value {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.required_spec_claims = ["exp".to_string()].into_iter().collect();
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
        &v,
    )
    .expect("token verifies with the secret")
    .claims
}

/// The token the page script carries, if any.
pub fn page_token(html: &str) -> Option<String> {
    let at = html.find(",\"j\":\"")? + 6;
    Some(html[at..].split('"').next()?.to_string())
}

/// Reads a corpus page from tests/corpus.
pub fn corpus(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// How our page script's code begins as pages get it (`src/page/min/`, up to the flag
/// its first statement checks, the same in every variant): what follows the `>` of its
/// start tag.
pub fn our_script_marker() -> &'static str {
    const SERVED: &str = include_str!("../../src/page/min/live.js");
    const FLAG: &str = "__intercomSecureProxy";
    &SERVED[..SERVED.find(FLAG).expect("the script checks its flag first") + FLAG.len()]
}

/// Whether `html` carries our script with its shutdown block (`src/page/min/shutdown*.js`),
/// which runs `Intercom('shutdown')` before anything can boot.
pub fn runs_a_shutdown(html: &str) -> bool {
    const SHUTDOWN: [&str; 2] = [
        include_str!("../../src/page/min/shutdown.js"),
        include_str!("../../src/page/min/shutdown-auto.js"),
    ];
    SHUTDOWN.iter().any(|js| html.contains(&format!(">{js}(window,{{")))
}

/// Whether `html` carries our script without a token, holding the Messenger until the
/// refresh path says who the user is (`inject.on_identity_failure: defer`).
pub fn defers_the_boot(html: &str) -> bool {
    html.contains(",\"j\":null,\"h\":null,\"d\":1});")
}

/// Whether `html` carries the observer of report-only pages (`src/page/min/observer.js`).
pub fn carries_the_observer(html: &str) -> bool {
    const OBSERVER: &str = include_str!("../../src/page/min/observer.js");
    html.contains(&format!(">{OBSERVER}(window,{{"))
}

/// Removes exactly one injected `<script>…</script>` (ours: the page script or the
/// observer, which begin alike) from `out` and returns the rest, so it can be compared
/// with the original bytes.
pub fn without_our_script(out: &[u8]) -> Vec<u8> {
    let text = out;
    let marker = our_script_marker().as_bytes();
    let pos = find(text, marker).expect("our script is present");
    let start = rfind(&text[..pos], b"<script").expect("script open tag");
    let end = pos + find(&text[pos..], b"</script>").expect("script close") + b"</script>".len();
    assert!(find(&text[end..], marker).is_none(), "injected more than once");
    let mut rest = text[..start].to_vec();
    rest.extend_from_slice(&text[end..]);
    rest
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// Runs the headless-Chromium driver (tests/browser/driver.mjs) on `steps` and returns
/// its per-step reports. Fails, never skips, when Node or the driver's dependencies are
/// missing; `context` (e.g. the proxy log) is shown when the driver itself fails.
pub fn run_browser(
    steps: Vec<serde_json::Value>,
    context: &dyn Fn() -> String,
) -> Vec<serde_json::Value> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let deps = root.join("tests/browser/node_modules/playwright-core");
    assert!(
        deps.is_dir(),
        "the browser tests need the driver's dependencies, missing at {}: run `make test`, or `npm ci` in tests/browser (Node 20+ and /usr/bin/chromium are required)",
        deps.display()
    );
    let expected = steps.len();
    let scenario = serde_json::json!({ "steps": steps }).to_string();
    let mut child = Command::new("node")
        .arg("tests/browser/driver.mjs")
        .arg("-")
        .current_dir(&root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run `node` ({e}): the browser tests need Node 20+; run `make test`")
        });
    child.stdin.take().unwrap().write_all(scenario.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "browser driver failed ({}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        context()
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("driver output is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
    });
    if std::env::var_os("BROWSER_TEST_DEBUG").is_some() {
        eprintln!("driver report: {}", serde_json::to_string_pretty(&report).unwrap());
    }
    let steps = report["steps"].as_array().expect("driver report has steps").clone();
    assert_eq!(steps.len(), expected, "driver reported a different number of steps");
    steps
}

/// The pages of the test workspace the rewriter tests use (plain settings).
pub fn pages(limits: intercom_secure_proxy::page::Limits) -> intercom_secure_proxy::page::Pages {
    intercom_secure_proxy::page::Pages::new(
        &intercom_secure_proxy::page::ScriptSettings {
            app_id: "abc12345",
            api_base: "https://api-iam.intercom.io",
            auto_include: true,
            cookie_domain: None,
            mode: Default::default(),
            refresh: None,
        },
        limits,
    )
}

/// Runs `check -c` on `yaml` (the secret in TEST_INTERCOM_SECRET) and returns the exit
/// code with stdout and stderr together.
pub fn check_config(yaml: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, yaml).unwrap();
    check_config_file(&path, &[("TEST_INTERCOM_SECRET", SECRET)])
}

/// Runs `check -c` on the config file at `path` with only `env` added to this process's
/// environment (no TEST_INTERCOM_SECRET unless given) and returns the exit code with
/// stdout and stderr together. Killed, failing the test, when it does not end in 60 s.
pub fn check_config_file(path: &std::path::Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(binary());
    command.arg("check").arg("-c").arg(path).envs(env.iter().copied());
    let out = output_within(&mut command, Duration::from_secs(60));
    (
        out.status.code(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// The last `n` lines of a log, for assertion messages.
pub fn log_tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The samples of a scrape: metric name with sorted labels → value.
pub fn scrape(proxy: &Proxy) -> (String, std::collections::HashMap<String, f64>) {
    let got = get(&proxy.admin_url("/metrics"), &[]);
    assert_eq!(got.status, 200);
    assert!(got.header("content-type").unwrap_or("").starts_with("text/plain; version=0.0.4"));
    let text = got.text();
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text format");
    let mut samples = std::collections::HashMap::new();
    for s in parsed.samples {
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            prometheus_parse::Value::Summary(_) => continue,
        };
        samples.insert(format!("{}{{{}}}", s.metric, labels.join(",")), value);
    }
    (text, samples)
}

pub fn value(samples: &std::collections::HashMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {:#?}", samples.keys().collect::<Vec<_>>()))
}

/// Runs `during` two seconds into a 9 s wrk run (2 threads, 16 keep-alive connections)
/// and checks that wrk saw no failed request and enough load to mean something.
pub fn under_keep_alive_load<T>(port: u16, during: impl FnOnce() -> T) -> T {
    // wrk counts every request that gets no answer as a socket error.
    let wrk = Command::new("wrk")
        .args(["-t2", "-c16", "-d9s", "-H", "X-Forwarded-User: alice"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wrk (scripts/install-deps.sh installs it)");
    std::thread::sleep(Duration::from_secs(2));
    let result = during();
    let out = wrk.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {report}{}", String::from_utf8_lossy(&out.stderr));
    let requests: u64 = report
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in: {report}"));
    assert!(requests > 100, "too little load to mean anything: {report}");
    assert!(!report.contains("Socket errors"), "requests failed: {report}");
    assert!(!report.contains("Non-2xx"), "error statuses: {report}");
    result
}
