//! The small Python apps of tests/legacy/python/ that `init`'s tests run, one per way
//! an app keeps who is logged in (a JWT cookie, an HTML account page, an auth proxy's
//! headers), each on a free loopback port in its own process group. They run on
//! Debian's python3, for which PyJWT and cryptography are installed
//! (scripts/install-deps.sh test).

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A Python app server process on a loopback port, stopped with its group on drop.
pub struct PythonApp {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl PythonApp {
    /// Starts `python3 tests/legacy/python/SCRIPT PORT ARGS...` with `env` on a free port.
    pub fn start(script: &str, args: &[&str], env: &[(&str, &str)]) -> PythonApp {
        super::on_a_free_port(script, || Self::try_start(script, args, env))
    }

    fn try_start(script: &str, args: &[&str], env: &[(&str, &str)]) -> Result<PythonApp, String> {
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let out = File::create(dir.path().join("server.log")).unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/legacy/python").join(script);
        let child = Command::new("/usr/bin/python3")
            .arg(path)
            .arg(port.to_string())
            .args(args)
            .envs(env.iter().copied())
            .env("PYTHONUNBUFFERED", "1")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run /usr/bin/python3 for {script} ({e}): `make test` installs it")
            });
        // Built before waiting, so that a server that did not listen is stopped on drop.
        let mut app = PythonApp { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), dir };
        let log_dir = app.dir.path().to_path_buf();
        super::listening_or_exited(
            app.addr,
            &mut app.child,
            Duration::from_secs(20),
            script,
            &|| std::fs::read_to_string(log_dir.join("server.log")).unwrap_or_default(),
        )?;
        Ok(app)
    }

    /// The server's output.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Logs `user` in directly at the app (`GET /login?user=`, as its form would post):
    /// the cookies it set, as `NAME=VALUE`.
    pub fn log_in(&self, user: &str) -> Vec<String> {
        let r = super::get(&format!("http://{}/login?user={user}", self.addr), &[]);
        assert_eq!(r.status, 302, "login at the app failed:\n{}", self.log_text());
        let cookies: Vec<String> = r
            .all("set-cookie")
            .iter()
            .filter_map(|c| c.split(';').next())
            .map(str::to_string)
            .collect();
        assert!(!cookies.is_empty(), "the login set no cookie");
        cookies
    }
}

impl Drop for PythonApp {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}
