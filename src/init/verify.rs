//! Verifying the written configuration: a temporary proxy with it, on a free loopback
//! port in front of the app, and the audit of the pages directly ("before") and
//! through the proxy ("after") with the same session, the learned user expected,
//! plus the logout check when a logout was found.
//!
//! The temporary proxy signs with a random secret of its own in a private file (never
//! the real one), which the audit checks the tokens with.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::answer::Answer;
use super::browser::Learned;
use super::logout::Logout;
use super::options::{InitError, Plan};
use super::yaml::Written;
use crate::audit::{self, cdp, AuditError, AuditOptions, Report};

/// How long the temporary proxy may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// What the verification found.
#[derive(Debug, Serialize)]
pub struct Verification {
    /// The audit of the pages directly at the app.
    pub before: Report,
    /// The audit through the temporary proxy.
    pub after: Report,
    /// Whether every page through the proxy passed (and the logout check, if any).
    pub passed: bool,
    /// What failed through the proxy, one line each (`URL: code: message`).
    pub failures: Vec<String>,
}

/// Runs the verification.
pub(crate) fn run(
    plan: &Plan,
    written: &Written,
    answer: &Answer,
    learned: &Learned,
    logout: Option<&Logout>,
) -> Result<Verification, InitError> {
    let dir = tempfile::tempdir()
        .map_err(|e| InitError::Usage(format!("cannot make a temporary directory: {e}")))?;
    let port = free_port()?;
    let config = dir.path().join("verify.yaml");
    let secret = dir.path().join("secret");
    write_private(&secret, &random_hex()?)?;
    let text = verify_config(written, port, dir.path(), &secret);
    write_private(&config, &text)?;
    let mut proxy = TemporaryProxy::start(&config, port, dir.path())?;
    let cookies: Vec<String> =
        learned.cookies.iter().map(|c| format!("{}={}", c.name, c.value)).collect();
    let options = |urls: Vec<String>| AuditOptions {
        urls,
        cookies: cookies.clone(),
        headers: plan.options.headers.clone(),
        logout: None,
        config: None,
        expect_user: None,
        chromium: plan.options.chromium.clone(),
        timeout: plan.options.timeout,
        settle: plan.options.settle,
    };
    let direct: Vec<String> = plan.pages.iter().map(|u| u.to_string()).collect();
    let proxied: Vec<String> =
        plan.pages.iter().map(|u| format!("http://127.0.0.1:{port}{}", u.path())).collect();
    let before = audit_run(&options(direct))?;
    let mut through = options(proxied);
    through.config = Some(config.clone());
    through.expect_user = Some(answer.user_id.clone());
    // A GET logout is what the audit's check loads; a form's logout is the app's to test.
    through.logout =
        logout.filter(|l| l.method == "GET").map(|l| format!("http://127.0.0.1:{port}{}", l.path));
    let after = audit_run(&through);
    proxy.stop();
    let after = after?;
    let passed = after.passed;
    let failures = after
        .pages
        .iter()
        .flat_map(|p| p.findings.iter().map(move |f| (p.url.as_str(), f)))
        .chain(
            after.logout.iter().flat_map(|l| l.findings.iter().map(move |f| (l.url.as_str(), f))),
        )
        .map(|(url, f)| format!("{url}: {}: {}", f.code, f.message))
        .collect();
    Ok(Verification { before, after, passed, failures })
}

fn audit_run(options: &AuditOptions) -> Result<Report, InitError> {
    audit::run(options).map_err(|e| match e {
        AuditError::Usage(u) => InitError::Generated(u.to_string()),
        AuditError::Chromium(c) => InitError::Chromium(c),
    })
}

/// The written configuration with the temporary proxy's port, its own secret file and
/// its own pid and upgrade socket paths.
fn verify_config(written: &Written, port: u16, dir: &Path, secret: &Path) -> String {
    let secret = format!("secret_file: {}", super::yaml::quote(&secret.display().to_string()));
    let server = format!(
        "\nserver:\n  pid_file: {}\n  upgrade_sock: {}\n  grace_period: 1s\n",
        super::yaml::quote(&dir.join("proxy.pid").display().to_string()),
        super::yaml::quote(&dir.join("upgrade.sock").display().to_string())
    );
    written.with(&format!("127.0.0.1:{port}"), &secret, &server)
}

fn write_private(path: &Path, text: &str) -> Result<(), InitError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| InitError::Usage(format!("cannot write {}: {e}", path.display())))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .map_err(|e| InitError::Usage(format!("cannot write {}: {e}", path.display())))
}

/// 32 random bytes from the kernel, as hex.
fn random_hex() -> Result<String, InitError> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| InitError::Usage(format!("cannot read /dev/urandom: {e}")))?;
    Ok(hex::encode(bytes))
}

fn free_port() -> Result<u16, InitError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| InitError::Usage(format!("no free loopback port: {e}")))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| InitError::Usage(e.to_string()))
}

/// The proxy process `init` runs for the verification, stopped (with its process
/// group) on drop and on Ctrl-C.
struct TemporaryProxy {
    child: Option<Child>,
}

impl TemporaryProxy {
    /// Starts `run -c config` of this very binary and waits until it listens.
    fn start(config: &Path, port: u16, dir: &Path) -> Result<TemporaryProxy, InitError> {
        let exe = std::env::current_exe().map_err(|e| {
            InitError::Usage(format!("cannot find this program to run the temporary proxy: {e}"))
        })?;
        let log = dir.join("proxy.log");
        let out = std::fs::File::create(&log)
            .map_err(|e| InitError::Usage(format!("cannot write {}: {e}", log.display())))?;
        let err = out.try_clone().map_err(|e| InitError::Usage(e.to_string()))?;
        let child = Command::new(exe)
            .arg("run")
            .arg("-c")
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| InitError::Usage(format!("cannot start the temporary proxy: {e}")))?;
        if let Ok(group) = i32::try_from(child.id()) {
            cdp::stop_process_group_on_signals(group);
        }
        let mut proxy = TemporaryProxy { child: Some(child) };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(proxy);
            }
            let exited = proxy.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                proxy.stop();
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(InitError::Generated(format!(
                    "the temporary proxy did not listen on 127.0.0.1:{port}: {}",
                    output.lines().last().unwrap_or("no output")
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Ok(group) = i32::try_from(child.id()) {
            cdp::forget_process_group(group);
            // A group whose leader is our unreaped child, so its id is not reused yet.
            cdp::kill_group(group);
        }
        let _ = child.wait();
    }
}

impl Drop for TemporaryProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::init::candidate::Candidate;
    use crate::init::options::InitOptions;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        options: InitOptions,
    }

    #[test]
    fn the_verified_configuration_differs_only_in_listen_secret_and_server() {
        let args = ["init", "--upstream", "http://127.0.0.1:8080", "--header", "X-User=u-1"];
        let args = args.into_iter().chain(["--secret-env", "MY_SECRET", "--no-verify"]);
        let options = Args::parse_from(args).options;
        assert!(!options.verify, "--no-verify turns the verification off");
        let plan = options.plan().unwrap();
        let source = Candidate {
            source: "trusted_header",
            tried: "header X-User".into(),
            yaml: "    - type: trusted_header\n      trusted_cidrs: [\"127.0.0.1/32\"]\n      headers: {user_id: X-User}\n".into(),
            why: "the header names the user".into(),
            claims: vec![],
        };
        let written = Written::new(&plan, &crate::init::sources::test_answer(None), &source, None);
        // The app is on 8080, so the written configuration listens on 8081.
        assert!(written.text.contains("listen: [\"127.0.0.1:8081\"]\n"), "{}", written.text);
        assert!(written.text.contains("\n  secret_env: MY_SECRET\n"), "{}", written.text);

        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cret").unwrap();
        let text = verify_config(&written, 4567, dir.path(), &secret);
        // What the text replacements of the written YAML used to make, exactly.
        let quoted = |p: &Path| crate::init::yaml::quote(&p.display().to_string());
        let expected = written
            .text
            .replace("listen: [\"127.0.0.1:8081\"]", "listen: [\"127.0.0.1:4567\"]")
            .replace("  secret_env: MY_SECRET\n", &format!("  secret_file: {}\n", quoted(&secret)))
            + &format!(
                "\nserver:\n  pid_file: {}\n  upgrade_sock: {}\n  grace_period: 1s\n",
                quoted(&dir.path().join("proxy.pid")),
                quoted(&dir.path().join("upgrade.sock"))
            );
        assert_eq!(text, expected);
        let config = intercom_secure_proxy::Config::from_yaml(&text, &|_| None)
            .expect("the verified configuration loads");
        assert_eq!(config.listen.len(), 1);
        assert!(format!("{:?}", config.listen[0]).contains("4567"), "{:?}", config.listen);
    }
}
