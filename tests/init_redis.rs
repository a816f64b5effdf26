//! `init --redis`: the `redis_session` finder against a real `redis-server` and real
//! apps that write their sessions into it, in real Chromium:
//! - Express with express-session + connect-redis (signed `connect.sid`, JSON under
//!   `sess:<id>`), with and without the session secret's variable;
//! - the PHP app under `php -S` with phpredis (`PHPSESSID`, PHP's session format under
//!   `PHPREDIS_SESSION:<id>`).
//!
//! Each run must never show the cookie's value, the session id or the Redis password
//! (which the written configuration reads from a variable); and `MONITOR` shows that
//! init only read Redis.
//!
//! Needs redis-server, php-cli + php-redis, Node 20+ with `npm ci` in
//! tests/legacy/express and tests/browser, and Chromium (`make test` installs them).
//! Without them these tests fail, they never skip.

mod support;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::init::run_init;
use support::legacy::{Kind, Server, EXPRESS_SESSION_SECRET};
use support::redis::Redis;

/// What a Redis command from `init` may be: the reads, and the client's handshake.
const READS: [&str; 4] = ["SCAN", "GET", "TYPE", "STRLEN"];
const HANDSHAKE: [&str; 7] = ["HELLO", "AUTH", "SELECT", "PING", "CLIENT", "INFO", "COMMAND"];

/// Logs `user` in at the app (`GET /login?user=`); the value of the session cookie it set.
fn log_in(app: &Server, user: &str) -> String {
    let login = support::get(&format!("http://{}/login?user={user}", app.addr), &[]);
    assert_eq!(login.status, 302, "login of {user}:\n{}", app.log_text());
    let prefix = format!("{}=", app.kind.session_cookie());
    login
        .all("set-cookie")
        .iter()
        .find_map(|c| c.strip_prefix(&prefix).and_then(|v| v.split(';').next()))
        .unwrap_or_else(|| panic!("no {prefix} set at login: {:?}", login.headers))
        .to_string()
}

/// The cookie's value in every form it could leak in: as sent, percent-decoded, and the
/// session id alone (express-session's `s:<id>.<signature>` unsigned).
fn secrets(value: &str) -> Vec<String> {
    let decoded =
        value.replace("%3A", ":").replace("%2B", "+").replace("%2F", "/").replace("%3D", "=");
    let id = decoded
        .strip_prefix("s:")
        .and_then(|s| s.rsplit_once('.'))
        .map_or(decoded.clone(), |(id, _)| id.to_string());
    vec![value.to_string(), decoded, id]
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A Redis, the Express + connect-redis app keeping its sessions there, and alice's
/// session cookie value.
fn express_logged_in() -> (Redis, Server, String) {
    let redis = Redis::start();
    let app = Server::start_with_redis_sessions(Kind::Express, redis.port);
    let cookie = log_in(&app, "alice");
    (redis, app, cookie)
}

/// `init` for the Express + connect-redis app, with the secret's variable when `secret`;
/// asserted to exit 0 without showing the cookie or the session id.
fn init_express(app: &Server, redis: &Redis, cookie: &str, secret: bool) -> support::init::InitRun {
    let arg = format!("connect.sid={cookie}");
    let url = redis.url();
    let mut args = vec!["--cookie", &arg, "--redis", &url];
    if secret {
        args.extend(["--cookie-secret-env", "SESSION_SECRET"]);
    }
    let run = run_init(app.addr, &args, &[("SESSION_SECRET", EXPRESS_SESSION_SECRET)]);
    run.expect(0, &as_strs(&secrets(cookie)));
    run
}

/// The written configuration's first identity source.
fn source(run: &support::init::InitRun) -> yaml_serde::Value {
    let doc: yaml_serde::Value = yaml_serde::from_str(&run.yaml).unwrap();
    doc["identity"]["sources"][0].clone()
}

#[test]
fn express_with_connect_redis_is_read_from_redis_and_verified() {
    let (redis, app, cookie) = express_logged_in();
    let run = init_express(&app, &redis, &cookie, true);
    run.picked("redis_session");
    assert!(run.stdout.contains("verified:"), "{}", run.all());
    let s = source(&run);
    assert_eq!(s["redis"].as_str(), Some(redis.url().as_str()), "{}", run.yaml);
    assert_eq!(
        (s["cookie"].as_str(), s["cookie_signature"].as_str()),
        (Some("connect.sid"), Some("express")),
        "{}",
        run.yaml
    );
    assert_eq!(s["cookie_secrets_env"][0].as_str(), Some("SESSION_SECRET"), "{}", run.yaml);
    assert_eq!(
        (s["key"].as_str(), s["format"].as_str()),
        (Some("sess:{id}"), Some("json")),
        "{}",
        run.yaml
    );
    assert_eq!(s["fields"]["user_id"].as_str(), Some("/passport/user"), "{}", run.yaml);
    assert_eq!(s["fields"]["email"].as_str(), Some("/profile/email"), "{}", run.yaml);
    assert!(
        run.yaml.contains("connect-redis"),
        "the key's comment does not say whose layout it is:\n{}",
        run.yaml
    );
}

#[test]
fn php_with_phpredis_is_read_from_redis_in_php_format() {
    let redis = Redis::start();
    let app = Server::start_with_redis_sessions(Kind::Php, redis.port);
    let cookie = log_in(&app, "alice");
    let arg = format!("PHPSESSID={cookie}");
    let run = run_init(app.addr, &["--cookie", &arg, "--redis", &redis.url()], &[]);
    run.expect(0, &[&cookie]).picked("redis_session");
    assert!(run.stdout.contains("verified:"), "{}", run.all());
    let s = source(&run);
    assert_eq!(
        (s["key"].as_str(), s["format"].as_str()),
        (Some("PHPREDIS_SESSION:{id}"), Some("php")),
        "{}",
        run.yaml
    );
    assert_eq!(
        (s["cookie"].as_str(), s["cookie_signature"].as_str()),
        (Some("PHPSESSID"), None),
        "{}",
        run.yaml
    );
    assert_eq!(s["fields"]["user_id"].as_str(), Some("/account/id"), "{}", run.yaml);
}

#[test]
fn express_without_its_secret_falls_back_to_the_endpoint_and_asks_for_the_secret_by_name() {
    let (redis, app, cookie) = express_logged_in();
    let run = init_express(&app, &redis, &cookie, false);
    run.picked("current_user_endpoint");
    let rejected = run.rejection("redis_session");
    assert!(
        rejected.contains("--cookie-secret-env"),
        "the report does not ask for --cookie-secret-env:\n{}",
        run.all()
    );
    assert!(
        rejected.contains("sess:{id}"),
        "the report does not say where the session was found:\n{}",
        run.all()
    );
}

#[test]
fn a_redis_password_is_written_as_a_variable_and_never_shown() {
    const PASSWORD: &str = "redis-Pw-for-init-7731";
    let redis = Redis::start_with(&["--requirepass", PASSWORD], &[PASSWORD]);
    let app = Server::start_express_with_redis_password(redis.port, PASSWORD);
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/0", redis.port);
    let cookie = log_in(&app, "alice");
    let arg = format!("connect.sid={cookie}");
    let args = ["--cookie", &arg, "--redis", &url, "--cookie-secret-env", "SESSION_SECRET"];
    let mut secrets = secrets(&cookie);
    secrets.push(PASSWORD.to_string());

    // Without the variable, the session is found but not written: the file must not hold
    // the password, and the proxy could not read Redis without it.
    let run = run_init(
        app.addr,
        &[&args[..], &["--no-verify"]].concat(),
        &[("SESSION_SECRET", EXPRESS_SESSION_SECRET)],
    );
    run.expect(0, &as_strs(&secrets)).picked("current_user_endpoint");
    let rejected = run.rejection("redis_session");
    assert!(
        rejected.contains("REDIS_PASSWORD"),
        "the report does not name REDIS_PASSWORD:\n{}",
        run.all()
    );

    let run = run_init(
        app.addr,
        &args,
        &[("SESSION_SECRET", EXPRESS_SESSION_SECRET), ("REDIS_PASSWORD", PASSWORD)],
    );
    run.expect(0, &as_strs(&secrets)).picked("redis_session");
    assert!(run.stdout.contains("verified:"), "{}", run.all());
    let s = source(&run);
    assert_eq!(s["redis"].as_str(), Some(redis.url().as_str()), "{}", run.yaml);
    assert_eq!(s["password_env"].as_str(), Some("REDIS_PASSWORD"), "{}", run.yaml);
}

/// `CLIENT LIST`: the address of every client connected now.
fn client_addresses(redis: &Redis) -> HashSet<String> {
    let mut conn = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut conn).unwrap();
    list.split_whitespace()
        .filter_map(|field| field.strip_prefix("addr="))
        .map(str::to_string)
        .collect()
}

/// A `MONITOR` connection: every command Redis runs from now on, one line each
/// (`+<time> [<db> <address>] "<COMMAND>" "<arg>"...`), until [`Monitor::stop`].
struct Monitor {
    stream: TcpStream,
    lines: Arc<Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Monitor {
    fn start(redis: &Redis) -> Monitor {
        let mut stream = TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
        stream.write_all(b"*1\r\n$7\r\nMONITOR\r\n").unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut ok = String::new();
        reader.read_line(&mut ok).unwrap();
        assert_eq!(ok.trim_end(), "+OK", "MONITOR refused");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { break };
                seen.lock().unwrap().push(line);
            }
        });
        Monitor { stream, lines, reader }
    }

    /// Stops monitoring; each command seen as (client address, command name).
    fn stop(self) -> Vec<(String, String)> {
        // Let the last commands of the temporary proxy reach the log.
        std::thread::sleep(Duration::from_millis(300));
        self.stream.shutdown(Shutdown::Both).unwrap();
        self.reader.join().unwrap();
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter_map(|line| {
                let (_, rest) = line.split_once(" [")?;
                let (client, command) = rest.split_once("] ")?;
                let address = client.split_whitespace().nth(1)?.to_string();
                let name = command.split('"').nth(1)?.to_ascii_uppercase();
                Some((address, name))
            })
            .collect()
    }
}

#[test]
fn redis_sees_only_reads_from_init() {
    let (redis, app, cookie) = express_logged_in();
    // The app keeps one connection open (node-redis): its writes come from there.
    let app_clients = client_addresses(&redis);
    let monitor = Monitor::start(&redis);
    let run = init_express(&app, &redis, &cookie, true);
    let commands = monitor.stop();
    run.picked("redis_session");
    let from_init: Vec<&(String, String)> =
        commands.iter().filter(|(address, _)| !app_clients.contains(address)).collect();
    let others: Vec<&&(String, String)> = from_init
        .iter()
        .filter(|(_, name)| !READS.contains(&name.as_str()) && !HANDSHAKE.contains(&name.as_str()))
        .collect();
    assert!(others.is_empty(), "commands other than reads from init's connections (address, command): {others:?}\nall: {commands:?}");
    assert!(
        from_init.iter().any(|(_, name)| name == "GET" || name == "SCAN"),
        "no GET or SCAN from init was seen: is MONITOR seeing init's connections? {commands:?}"
    );
    assert!(
        commands.iter().any(|(address, _)| app_clients.contains(address)),
        "the app's own commands were not seen either: {commands:?}"
    );
}
