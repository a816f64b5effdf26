//! The command line: config validation (every error names its key, exit code 2, nothing
//! listens), `check`, `token`, `--help`, and the demo (`make demo`'s acceptance).

mod support;

use std::io::Read;
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{binary, free_port, SECRET};

const GOOD: &str = r#"
listen: ["127.0.0.1:PORT"]
upstream:
  addresses: ["127.0.0.1:9"]
intercom:
  app_id: abc12345
  secret_env: TEST_INTERCOM_SECRET
identity:
  sources:
    - type: trusted_header
      trusted_cidrs: ["127.0.0.1/32"]
"#;

fn with_config(yaml: &str, args: &[&str]) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(binary())
        .args(args)
        .arg("-c")
        .arg(&path)
        .env("TEST_INTERCOM_SECRET", SECRET)
        .env_remove("UNSET_SECRET_VAR")
        .output()
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out, text)
}

/// `check -c` (through [`support::check_config`]) or `run -c` on `yaml`: the exit code,
/// with stdout and stderr together.
fn check_or_run(yaml: &str, command: &str) -> (Option<i32>, String) {
    match command {
        "check" => support::check_config(yaml),
        _ => {
            let (out, text) = with_config(yaml, &[command]);
            (out.status.code(), text)
        }
    }
}

fn good() -> String {
    GOOD.replace("PORT", &free_port().to_string())
}

#[test]
fn config_errors_name_the_key_and_exit_2() {
    let secret_dir = tempfile::tempdir().unwrap();
    let empty_secret = secret_dir.path().join("empty");
    std::fs::write(&empty_secret, "\n").unwrap();
    let cases: Vec<(String, &str)> = vec![
        (good().replace("listen:", "listn:"), "`listn`"),
        (
            good().replace("  app_id: abc12345\n", "  app_id: abc12345\n  colour: blue\n"),
            "`intercom.colour`",
        ),
        (good().replace("      trusted_cidrs", "      bogus: 1\n      trusted_cidrs"), "bogus"),
        (
            good().replace("  app_id: abc12345\n", "  app_id: abc12345\n  token_lifetime: 1x\n"),
            "`intercom.token_lifetime`",
        ),
        (
            good().replace("  app_id: abc12345\n", "  app_id: abc12345\n  token_lifetime: 10s\n"),
            "`intercom.token_lifetime`",
        ),
        (good().replace("TEST_INTERCOM_SECRET", "UNSET_SECRET_VAR"), "`intercom.secret_env`"),
        (good().replace("  secret_env: TEST_INTERCOM_SECRET\n", ""), "`intercom.secret_env`"),
        (
            good().replace("  secret_env: TEST_INTERCOM_SECRET\n", "  secret: hunter2\n"),
            "`intercom.secret`",
        ),
        (
            good().replace(
                "  secret_env: TEST_INTERCOM_SECRET\n",
                "  secret_file: /nonexistent/secret\n",
            ),
            "`intercom.secret_file`",
        ),
        (
            good().replace(
                "  secret_env: TEST_INTERCOM_SECRET\n",
                &format!("  secret_file: {}\n", empty_secret.display()),
            ),
            "`intercom.secret_file`",
        ),
        (good().replace("app_id: abc12345", "app_id: \"\""), "`intercom.app_id`"),
        (
            good().replace("app_id: abc12345", "app_id: abc12345\n  api_base: mars"),
            "`intercom.api_base`",
        ),
        (
            good().replace("      trusted_cidrs: [\"127.0.0.1/32\"]\n", ""),
            "`identity.sources[0].trusted_cidrs`",
        ),
        (good().replace("127.0.0.1/32", "not-a-net"), "`identity.sources[0].trusted_cidrs[0]`"),
        (good().replace("type: trusted_header", "type: magic"), "`identity.sources[0].type`"),
        (good().replace("listen: [\"127.0.0.1:", "listen: [\"nowhere:"), "`listen[0]`"),
        (good().replace("[\"127.0.0.1:9\"]", "[]"), "`upstream.addresses`"),
        (
            format!("{}inject:\n  exclude_paths: [\"relative\"]\n", good()),
            "`inject.exclude_paths[0]`",
        ),
        (format!("{}logout:\n  mode: sometimes\n", good()), "`logout.mode`"),
        (format!("{}server:\n  threads: 0\n", good()), "`server.threads`"),
        (format!("{}server:\n  grace_period: soon\n", good()), "`server.grace_period`"),
        ("listen: [\n".to_string(), "config error"),
        // A zero timeout would fail every request.
        (
            good().replace("[\"127.0.0.1:9\"]", "[\"127.0.0.1:9\"]\n  read_timeout: 0s"),
            "`upstream.read_timeout`",
        ),
        (
            good().replace("[\"127.0.0.1:9\"]", "[\"127.0.0.1:9\"]\n  connect_timeout: 0ms"),
            "`upstream.connect_timeout`",
        ),
        (
            format!("{}server:\n  client_header_timeout: 0s\n", good()),
            "`server.client_header_timeout`",
        ),
        (
            format!("{}server:\n  max_client_connections: 0\n", good()),
            "`server.max_client_connections`",
        ),
        (format!("{}server:\n  work_stealing: maybe\n", good()), "`server.work_stealing`"),
        // Binding the same address twice (or under a wildcard) fails at start.
        (
            GOOD.replace(
                "listen: [\"127.0.0.1:PORT\"]",
                "listen: [\"127.0.0.1:7001\", \"127.0.0.1:7001\"]",
            ),
            "`listen[1]`",
        ),
        (
            GOOD.replace(
                "listen: [\"127.0.0.1:PORT\"]",
                "listen: [\"0.0.0.0:7001\", \"127.0.0.1:7001\"]",
            ),
            "`listen[1]`",
        ),
    ];
    for (yaml, key) in cases {
        for args in ["check", "run"] {
            let (code, text) = check_or_run(&yaml, args);
            assert_eq!(code, Some(2), "{args:?} {key}: {text}");
            assert!(text.contains(key), "{args:?}: expected {key} in: {text}");
            assert!(
                !text.contains(SECRET) && !text.contains("hunter2"),
                "a secret was printed: {text}"
            );
        }
    }
}

#[test]
fn a_secret_pasted_where_its_name_or_path_belongs_is_never_echoed() {
    const PASTED: &str = "sk_live_9f8e7d6c5b4a39281706f5e4d3c2b1a0";
    for (key, line) in [
        ("`intercom.secret_env`", format!("  secret_env: {PASTED}\n")),
        ("`intercom.secret_file`", format!("  secret_file: {PASTED}\n")),
        ("`intercom.secret_file`", format!("  secret_file: /etc/{PASTED}\n")),
        ("`intercom.secret_env`", "  secret_env: 123456789012345678901234567890\n".to_string()),
        ("`intercom.secret_env`", format!("  secret_env: [{PASTED}]\n")),
    ] {
        let yaml = good().replace("  secret_env: TEST_INTERCOM_SECRET\n", &line);
        for args in ["check", "run"] {
            let (code, text) = check_or_run(&yaml, args);
            assert_eq!(code, Some(2), "{args:?} {line}: {text}");
            assert!(text.contains(key), "{args:?}: expected {key} in: {text}");
            assert!(
                !text.contains(PASTED) && !text.contains("1234567890123"),
                "the pasted secret was echoed: {text}"
            );
        }
    }
}

/// "Billion laughs": nine levels of aliases, each naming the one below ten times, would
/// expand to 10^9 strings in a `listen` entry (read as a plain YAML value, so nothing
/// stops at a type mismatch first). The parser's repetition limit refuses the file.
#[test]
fn an_alias_bomb_is_refused_with_its_key() {
    let mut yaml =
        String::from("listen:\n  - &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..9 {
        let below = vec![format!("*l{}", level - 1); 10].join(", ");
        yaml.push_str(&format!("  - &l{level} [{below}]\n"));
    }
    yaml.push_str(&good().replace("listen: [\"127.0.0.1:", "# listen: [\"127.0.0.1:"));
    let (code, text) = support::check_config(&yaml);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("config error at `listen["), "{text}");
    assert!(text.contains("aliases"), "the refusal does not say why: {text}");
}

/// A source's `type` need not come first, and a mistake inside a source is reported at
/// its own key, line and column.
#[test]
fn a_mistake_inside_a_source_names_its_own_key_and_line() {
    let yaml = good().replace(
        "    - type: trusted_header\n      trusted_cidrs: [\"127.0.0.1/32\"]\n",
        "    - trusted_cidrs: [\"127.0.0.1/32\"]\n      type: trusted_header\n",
    );
    let (code, text) = support::check_config(&yaml);
    assert_eq!(code, Some(0), "{text}");
    let yaml = good().replace(
        "[\"127.0.0.1/32\"]\n",
        "[\"127.0.0.1/32\"]\n      headers: {user_id: X-User, colour: 1}\n",
    );
    let (code, text) = support::check_config(&yaml);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("config error at `identity.sources[0].headers.colour`"), "{text}");
    assert!(
        text.contains("unknown field `colour`") && text.contains("at line 12 column 34"),
        "{text}"
    );
}

#[test]
fn risky_settings_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let yaml = good()
        .replace(
            "  secret_env: TEST_INTERCOM_SECRET\n",
            &format!("  secret_file: {}\n", secret.display()),
        )
        .replace("[\"127.0.0.1/32\"]", "[\"127.0.0.1/32\", \"0.0.0.0/0\", \"::/0\"]");
    let (code, text) = support::check_config(&yaml);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("intercom.secret_file") && text.contains("chmod 600"), "{text}");
    assert!(text.contains("trusted_cidrs[1]: 0.0.0.0/0"), "{text}");
    assert!(text.contains("trusted_cidrs[2]: ::/0"), "{text}");
    assert!(
        !text.contains("bytes; Intercom's Messenger secrets"),
        "a long secret was called short: {text}"
    );
    std::fs::write(&secret, "short-secret").unwrap();
    let (_, text) = support::check_config(&yaml);
    assert!(text.contains("intercom.secret_file: the secret is 12 bytes"), "{text}");
    assert!(!text.contains("short-secret"), "the secret was echoed: {text}");
    std::fs::write(&secret, SECRET).unwrap();
    // The default claims are email and name, and trusted_header has no name header by default.
    assert!(
        text.contains("claim \"name\" has no field in source trusted_header (identity.sources[0])"),
        "{text}"
    );
    // Tightened, narrowed and the name mapped: no warnings.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let yaml = yaml.replace(", \"0.0.0.0/0\", \"::/0\"", "").replace(
        "[\"127.0.0.1/32\"]\n",
        "[\"127.0.0.1/32\"]\n      headers: {name: X-Forwarded-Name}\n",
    );
    let (code, text) = support::check_config(&yaml);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("WARN"), "{text}");
}

#[test]
fn a_bad_config_never_listens() {
    let port = free_port();
    let yaml =
        GOOD.replace("PORT", &port.to_string()).replace("TEST_INTERCOM_SECRET", "UNSET_SECRET_VAR");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, yaml).unwrap();
    let mut child = Command::new(binary())
        .args(["run", "-c"])
        .arg(&path)
        .env_remove("UNSET_SECRET_VAR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Connects to its port from the moment it starts until it has exited: a listener it
    // opened at any time before exiting would accept one (checked after the exit, the
    // port would be closed again and prove nothing).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut probes = 0;
    let status = loop {
        let exited = child.try_wait().unwrap();
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "127.0.0.1:{port} accepted a connection while `run` had a bad config \
                 (probe {probes})"
            );
        }
        probes += 1;
        if let Some(status) = exited {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`run` with a bad config was still running after 10 s");
        }
    };
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("`intercom.secret_env`"), "{err}");
}

#[test]
fn check_prints_a_summary_without_the_secret() {
    let (code, text) = support::check_config(&good());
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("app_id abc12345") && text.contains("secret from env TEST_INTERCOM_SECRET"),
        "{text}"
    );
    assert!(!text.contains(SECRET));
    let (out, text) = with_config(&good(), &["run", "-t"]);
    assert!(out.status.success(), "{text}");
}

#[test]
fn token_prints_a_verifiable_token() {
    let (out, text) =
        with_config(&good(), &["token", "--user-id", "42", "--email", "a@example.com"]);
    assert!(out.status.success(), "{text}");
    let claims = support::verify(String::from_utf8_lossy(&out.stdout).trim());
    assert_eq!(claims["user_id"], "42");
    assert_eq!(claims["email"], "a@example.com");
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["check", "--help"],
        vec!["token", "--help"],
        vec!["audit", "--help"],
        vec!["demo", "--help"],
    ] {
        let out = Command::new(binary()).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"), "{args:?}");
    }
}

/// A cookie jar small enough for the demo: name=value pairs from Set-Cookie.
fn jar_update(jar: &mut Vec<(String, String)>, set_cookies: &[&str]) {
    for sc in set_cookies {
        let pair = sc.split(';').next().unwrap();
        let (name, value) = pair.split_once('=').unwrap();
        jar.retain(|(n, _)| n != name);
        let expired = sc.contains("Max-Age=0");
        if !expired {
            jar.push((name.to_string(), value.to_string()));
        }
    }
}

fn jar_header(jar: &[(String, String)]) -> String {
    jar.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
}

#[test]
fn the_demo_logs_alice_in_signs_her_token_and_logs_her_out() {
    demo_logs_alice_in_and_out(&[]);
}

#[test]
fn the_demo_with_its_sessions_in_redis_does_the_same() {
    // A real redis-server on a free port, for this test only.
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (scripts/install-deps.sh installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("redis://127.0.0.1:{port}/0");
    demo_logs_alice_in_and_out(&["--identity", "redis", "--redis", &url]);
    let _ = redis.kill();
    let _ = redis.wait();
}

/// Runs `demo` with `args`: alice logs in, gets a token for her, logs out, and the next
/// page runs the shutdown.
fn demo_logs_alice_in_and_out(args: &[&str]) {
    let (mut child, _, proxy_port) = support::start_demo(args, Stdio::piped);
    let base = format!("http://127.0.0.1:{proxy_port}");
    let agent = support::client();
    let mut jar = Vec::new();

    let r = agent
        .post(&format!("{base}/login"))
        .content_type("application/x-www-form-urlencoded")
        .send("username=alice")
        .unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let sc: Vec<String> =
        r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    jar_update(&mut jar, &sc.iter().map(String::as_str).collect::<Vec<_>>());

    let home = support::get(&format!("{base}/"), &[("Cookie", &jar_header(&jar))]);
    assert_eq!(home.status, 200);
    assert!(home.header("cache-control").unwrap().contains("private"));
    let token = support::page_token(&home.text()).expect("the demo page carries a token");
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(b"demo-secret-not-for-production"),
        &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256),
    )
    .expect("verifies with the documented demo secret")
    .claims;
    assert_eq!(claims["user_id"], "alice");
    assert_eq!(claims["email"], "alice@example.com");
    jar_update(&mut jar, &home.all("set-cookie"));

    // Auto-include: /account has no Intercom code but gets the script.
    let account = support::get(&format!("{base}/account"), &[("Cookie", &jar_header(&jar))]);
    assert!(support::page_token(&account.text()).is_some());

    let out = support::get(&format!("{base}/logout"), &[("Cookie", &jar_header(&jar))]);
    assert_eq!(out.status, 302);
    assert_eq!(out.header("location"), Some("/login"));
    jar_update(&mut jar, &out.all("set-cookie"));
    assert!(jar.iter().any(|(n, _)| n == "__isp_shutdown"));
    let login = support::get(&format!("{base}/login"), &[("Cookie", &jar_header(&jar))]);
    assert!(support::runs_a_shutdown(&login.text()), "the login page runs the shutdown");
    assert!(support::page_token(&login.text()).is_none());

    child.kill().unwrap();
    let mut banner = String::new();
    child.stdout.take().unwrap().read_to_string(&mut banner).unwrap();
    let _ = child.wait();
    assert!(
        banner.contains("log in as alice or bob") || banner.contains("alice or bob"),
        "{banner}"
    );
}

#[test]
fn the_documented_configs_are_valid() {
    for name in [
        "intercom-secure-proxy.yaml",
        "demo.yaml",
        "sites.yaml",
        "redis-session.yaml",
        "signed-header.yaml",
        "demo-redis.yaml",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf").join(name);
        let (code, text) = support::check_config_file(
            &path,
            &[
                ("INTERCOM_SECRET", SECRET),
                ("SUPPORT_INTERCOM_SECRET", SECRET),
                ("SHOP_INTERCOM_SECRET", SECRET),
                ("SESSION_SECRET", "an-express-session-secret"),
            ],
        );
        assert_eq!(code, Some(0), "{name}: {text}");
    }
}

#[test]
fn a_port_in_use_makes_demo_exit_non_zero_naming_the_address() {
    // Either of the demo's two ports: it must not print its banner and wait for a port.
    for taken_is_app in [false, true] {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let free = free_port().to_string();
        let (app, proxy) =
            if taken_is_app { (port.to_string(), free) } else { (free, port.to_string()) };
        let out = support::output_within(
            Command::new(binary())
                .args(["demo", "--app-port", &app, "--proxy-port", &proxy])
                .env_remove("INTERCOM_SECRET"),
            Duration::from_secs(10),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{err}");
        assert!(out.stdout.is_empty(), "the banner promised a server that is not there");
    }
}

#[test]
fn a_port_in_use_makes_run_exit_non_zero_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    let d = dir.path().display();
    std::fs::write(
        &path,
        GOOD.replace("PORT", &port.to_string())
            + &format!("server:\n  pid_file: {d}/p.pid\n  upgrade_sock: {d}/u.sock\n"),
    )
    .unwrap();
    // Killed, and the test failed, if run keeps going without its listener.
    let out = support::output_within(
        Command::new(binary()).args(["run", "-c"]).arg(&path).env("TEST_INTERCOM_SECRET", SECRET),
        Duration::from_secs(10),
    );
    let (status, err) = (out.status, String::from_utf8_lossy(&out.stderr));
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    drop(taken);
}
