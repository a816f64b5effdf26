//! A real redis-server on a free loopback port, with an append-only file so that a
//! restart keeps its data.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A redis-server of the test's own.
pub struct Redis {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// More `redis-server` arguments (e.g. `--requirepass`).
    args: Vec<String>,
    /// What [`Redis::command`] sends `AUTH` with first, when the server wants it.
    auth: Vec<String>,
}

impl Redis {
    /// Starts a server on a free port; on another port when another process took that
    /// one first.
    pub fn start() -> Redis {
        Self::start_with(&[], &[])
    }

    /// Like [`Redis::start`], with more server arguments; [`Redis::command`] authenticates
    /// with `auth` (`[password]` or `[user, password]`) first.
    pub fn start_with(args: &[&str], auth: &[&str]) -> Redis {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        let mut redis = Redis {
            child: None,
            port: 0,
            dir: tempfile::tempdir().unwrap(),
            args: owned(args),
            auth: owned(auth),
        };
        super::on_a_free_port("redis-server", || {
            redis.port = super::free_port();
            redis.try_launch()
        });
        redis
    }

    /// Starts the server again on its port (its data comes back from the append-only file).
    pub fn launch(&mut self) {
        if let Err(why) = self.try_launch() {
            panic!("{why}");
        }
    }

    /// Starts the server and waits until it answers; why not (with its log), when it
    /// exits first.
    fn try_launch(&mut self) -> Result<(), String> {
        let log_path = self.dir.path().join("redis.log");
        let log = File::create(&log_path).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(&self.args)
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-server ({e}): install redis-server; `make test` does")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command(&["PING"]).as_deref() != Some("+PONG") {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(format!(
                    "redis-server exited:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                ));
            }
            assert!(Instant::now() < deadline, "redis-server did not answer on port {}", self.port);
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Stops the server (SIGTERM: it flushes its append-only file and exits).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    /// One command over RESP (after `AUTH`, when the server was started with it); the
    /// first line of the answer.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        if !self.auth.is_empty() {
            let auth: Vec<&str> =
                std::iter::once("AUTH").chain(self.auth.iter().map(String::as_str)).collect();
            if exchange(&mut conn, &auth)? != "+OK" {
                return None;
            }
        }
        exchange(&mut conn, args)
    }

    /// `KEYS pattern` as a count (a test helper on a test server).
    pub fn count_keys(&self, pattern: &str) -> usize {
        let first = self.command(&["KEYS", pattern]).unwrap_or_default();
        first.strip_prefix('*').and_then(|n| n.parse().ok()).unwrap_or(0)
    }
}

/// Sends one command and reads the first line of its answer.
fn exchange(conn: &mut TcpStream, args: &[&str]) -> Option<String> {
    let mut req = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        req.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    conn.write_all(&req).ok()?;
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    Some(text.lines().next().unwrap_or("").to_string())
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
