//! Running `intercom-secure-proxy init` against a real app and checking what every
//! init test checks: the exit code, the source the written YAML picked, that `check`
//! loads the YAML, and that no secret value (a cookie, a form password, a header's
//! assertion) appears in stdout, stderr or the file.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// One finished `init` run.
pub struct InitRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The `--out` file's text ("" when none was written).
    pub yaml: String,
    pub out: PathBuf,
    /// The environment init ran with: `check` loads the file with it (the variables
    /// of secrets the file names).
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl InitRun {
    /// Everything `init` printed or wrote, for leak checks and failure messages.
    pub fn all(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}\n--- {}\n{}",
            self.stdout,
            self.stderr,
            self.out.display(),
            self.yaml
        )
    }

    /// The `type` of the written configuration's first identity source.
    pub fn source_type(&self) -> Option<String> {
        let doc: yaml_serde::Value = yaml_serde::from_str(&self.yaml).ok()?;
        doc["identity"]["sources"][0]["type"].as_str().map(str::to_string)
    }

    /// Asserts the exit code, then that none of `secrets` appears anywhere.
    pub fn expect(&self, code: i32, secrets: &[&str]) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "init exited {:?}, expected {code}:\n{}",
            self.code,
            self.all()
        );
        self.never_shows(secrets)
    }

    /// Asserts none of `secrets` (cookie values, passwords, assertions) appears in
    /// stdout, stderr or the file.
    pub fn never_shows(&self, secrets: &[&str]) -> &Self {
        let all = self.all();
        for secret in secrets.iter().filter(|s| s.len() >= 6) {
            assert!(
                !all.contains(secret),
                "a secret value ({} bytes) appears in init's output or file:\n{all}",
                secret.len()
            );
        }
        self
    }

    /// Asserts the written configuration picked `source` and that `check` loads it (with
    /// the environment init ran with: the file may name a secret's variable, such as
    /// express-session's secret).
    pub fn picked(&self, source: &str) -> &Self {
        assert_eq!(
            self.source_type().as_deref(),
            Some(source),
            "wrong or no source:\n{}",
            self.all()
        );
        let env: Vec<(&str, &str)> = [("INTERCOM_SECRET", super::SECRET)]
            .into_iter()
            .chain(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .collect();
        let (code, text) = super::check_config_file(&self.out, &env);
        assert_eq!(
            code,
            Some(0),
            "check refused the written configuration:\n{text}\n{}",
            self.all()
        );
        self
    }

    /// The report's line for the rejected candidate of `source` ("" when there is none).
    pub fn rejection(&self, source: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.contains(source) && l.contains("rejected"))
            .unwrap_or_default()
    }
}

/// Runs `init --upstream http://ADDR --out FILE ARGS...` with `env`, within 3 minutes.
pub fn run_init(app: std::net::SocketAddr, args: &[&str], env: &[(&str, &str)]) -> InitRun {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("init.yaml");
    let mut command = Command::new(super::binary());
    command
        .arg("init")
        .arg("--upstream")
        .arg(format!("http://{app}"))
        .arg("--out")
        .arg(&out)
        .args(args)
        .env("RUST_LOG", "debug");
    for (k, v) in env {
        command.env(k, v);
    }
    let output = super::output_within(&mut command, Duration::from_secs(180));
    InitRun {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        yaml: std::fs::read_to_string(&out).unwrap_or_default(),
        out,
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        _dir: dir,
    }
}
