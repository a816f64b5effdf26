//! The legacy app servers of tests/legacy/, each started on a free loopback port:
//! - Python's `http.server` (HTTP/1.0: Content-Length, connection closed after each
//!   response);
//! - PHP's built-in server (`php -S`, PHP sessions; bodies end at connection close);
//! - Apache httpd + mod_php (prefork, keep-alive, chunked because the page flushes
//!   mid-way, gzip from mod_deflate), with its own config, not /etc/apache2;
//! - Express with express-session.
//!
//! The PHP app keeps its sessions in files, or with phpredis in a Redis; the Express
//! app in memory, or with connect-redis in a Redis ([`Server::start_with_redis_sessions`]).

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where an app keeps its sessions when they are in Redis.
#[derive(Clone, Copy)]
struct RedisSessions<'a> {
    /// The Redis on 127.0.0.1.
    port: u16,
    /// Express's password for it, if it asks for one.
    password: Option<&'a str>,
    /// PHP's `session.serialize_handler`.
    php_format: &'a str,
}

/// The Express app's session secret when its sessions are in Redis (what the
/// proxy's `cookie_secrets_env` must hold to verify `connect.sid`).
pub const EXPRESS_SESSION_SECRET: &str = "legacy-express-redis-secret";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Python,
    Php,
    Apache,
    Express,
}

impl Kind {
    /// The app's session cookie (what the proxy replays to /api/me).
    pub fn session_cookie(self) -> &'static str {
        match self {
            Kind::Python => "sid",
            Kind::Php | Kind::Apache => "PHPSESSID",
            Kind::Express => "connect.sid",
        }
    }
}

/// A real app server process (in its own process group) on a loopback port.
pub struct Server {
    pub kind: Kind,
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts the app server on a free port; on another port when another process
    /// took that one first.
    pub fn start(kind: Kind) -> Server {
        super::on_a_free_port(&format!("the {kind:?} app server"), || Self::try_start(kind, None))
    }

    /// Starts the PHP app (`php -S` or Apache) with its sessions in the Redis on
    /// `redis_port` (phpredis, `PHPREDIS_SESSION:<id>`, PHP's session format), or the
    /// Express app with connect-redis (`sess:<id>`, JSON, `connect.sid` signed with
    /// [`EXPRESS_SESSION_SECRET`]).
    pub fn start_with_redis_sessions(kind: Kind, redis_port: u16) -> Server {
        assert!(kind != Kind::Python, "the Python app keeps its sessions in memory only");
        let sessions = RedisSessions { port: redis_port, password: None, php_format: "php" };
        let what = format!("the {kind:?} app server");
        super::on_a_free_port(&what, || Self::try_start(kind, Some(sessions)))
    }

    /// Starts the Express app with connect-redis, as [`Server::start_with_redis_sessions`],
    /// authenticating to the Redis on `redis_port` with `password`.
    pub fn start_express_with_redis_password(redis_port: u16, password: &str) -> Server {
        let sessions =
            RedisSessions { port: redis_port, password: Some(password), php_format: "php" };
        super::on_a_free_port("the Express app server", || {
            Self::try_start(Kind::Express, Some(sessions))
        })
    }

    /// Starts the PHP app (`php -S`) with its sessions in the Redis on `redis_port`, as
    /// [`Server::start_with_redis_sessions`], written in PHP's `format` (its
    /// `session.serialize_handler`: php, php_serialize or php_binary).
    pub fn start_php_with_redis_sessions_in(redis_port: u16, format: &str) -> Server {
        let sessions = RedisSessions { port: redis_port, password: None, php_format: format };
        super::on_a_free_port("the Php app server", || Self::try_start(Kind::Php, Some(sessions)))
    }

    /// Starts the app server; why not (with its log), when it does not listen.
    fn try_start(kind: Kind, redis: Option<RedisSessions>) -> Result<Server, String> {
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let legacy = root().join("tests/legacy");
        let (mut cmd, hint) = match kind {
            Kind::Python => {
                let mut c = Command::new("python3");
                c.arg(legacy.join("python/app.py"))
                    .arg(port.to_string())
                    .env("PYTHONUNBUFFERED", "1");
                (c, "install python3")
            }
            Kind::Php => {
                let mut c = Command::new("php");
                for (key, value) in php_sessions(dir.path(), redis) {
                    c.arg("-d").arg(format!("{key}={value}"));
                }
                c.arg("-S")
                    .arg(format!("127.0.0.1:{port}"))
                    .arg("-t")
                    .arg(legacy.join("php"))
                    .arg(legacy.join("php/router.php"));
                (c, "install php-cli")
            }
            Kind::Apache => {
                (apache_command(dir.path(), port, redis), "install apache2 and libapache2-mod-php")
            }
            Kind::Express => {
                let app = legacy.join("express");
                assert!(
                    app.join("node_modules/express-session").is_dir(),
                    "the Express app's dependencies are missing in {}: run `make test`, or `npm ci` there",
                    app.display()
                );
                let mut c = Command::new("node");
                c.arg(app.join("app.js")).env("PORT", port.to_string());
                if let Some(RedisSessions { port: redis_port, password, .. }) = redis {
                    let auth = password.map(|p| format!(":{p}@")).unwrap_or_default();
                    c.env("REDIS_URL", format!("redis://{auth}127.0.0.1:{redis_port}/0"))
                        .env("SESSION_SECRET", EXPRESS_SESSION_SECRET);
                }
                (c, "install Node 20+")
            }
        };
        let log = dir.path().join("server.log");
        let out = File::create(&log).unwrap();
        // Its own process group, so that Drop stops the server and any children it forked.
        cmd.current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0);
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run `{program}` for the {kind:?} app ({e}): {hint}; `make test` does")
        });
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        super::listening_or_exited(
            addr,
            &mut child,
            Duration::from_secs(20),
            &format!("{kind:?} app server"),
            &|| log_text(dir.path()),
        )?;
        Ok(Server { kind, child, addr, dir })
    }

    pub fn log_text(&self) -> String {
        log_text(self.dir.path())
    }

    /// Logs `user` in directly at the app (a form POST to /login); the "name=value" of
    /// the session cookie it set.
    pub fn login(&self, user: &str) -> String {
        let body = format!("user={user}");
        let r = super::conn::fetch(
            self.addr,
            "POST",
            "/login",
            &[("Content-Type", "application/x-www-form-urlencoded"), ("Connection", "close")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 302, "login at the app failed:\n{}", r.describe());
        let name = self.kind.session_cookie();
        // PHP's session_regenerate_id() sends two cookies: the last one counts.
        r.all("set-cookie")
            .into_iter()
            .filter_map(|c| c.split(';').next())
            .rfind(|c| c.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("the login set no {name} cookie:\n{}", r.describe()))
            .to_string()
    }
}

/// The server's output and, for Apache, its error log.
fn log_text(dir: &std::path::Path) -> String {
    let mut text = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    if let Ok(errors) = std::fs::read_to_string(dir.join("error.log")) {
        text.push_str(&errors);
    }
    text
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM to the group: Apache's parent then stops its prefork children itself.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

const APACHE_MODULES: &str = "/usr/lib/apache2/modules";

/// Apache httpd in the foreground with a config of its own in `dir` (nothing from
/// /etc/apache2): prefork + mod_php, keep-alive, mod_deflate for text/html, serving a
/// copy of tests/legacy/php.
fn apache_command(dir: &Path, port: u16, redis: Option<RedisSessions>) -> Command {
    let modules = Path::new(APACHE_MODULES);
    let php = std::fs::read_dir(modules)
        .ok()
        .and_then(|entries| {
            entries.flatten().map(|e| e.path()).find(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.starts_with("libphp") && name.ends_with(".so")
            })
        })
        .unwrap_or_else(|| panic!("no libphp*.so in {APACHE_MODULES}: install apache2 and libapache2-mod-php; `make test` does"));
    // As root, Apache serves as `nobody`: it must be able to read the app and write the
    // sessions. The tempdir is 0700 by default.
    let app = dir.join("app");
    std::fs::create_dir(&app).unwrap();
    let sessions: String = php_sessions(dir, redis)
        .iter()
        .map(|(key, value)| format!("php_admin_value {key} \"{value}\"\n"))
        .collect();
    std::fs::copy(root().join("tests/legacy/php/router.php"), app.join("router.php")).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(app.join("router.php"), std::fs::Permissions::from_mode(0o644))
        .unwrap();
    let d = dir.display();
    let m = modules.display();
    let conf = format!(
        r#"ServerRoot "{d}"
DefaultRuntimeDir "{d}"
PidFile "{d}/httpd.pid"
ErrorLog "{d}/error.log"
LogLevel warn
Listen 127.0.0.1:{port}
ServerName 127.0.0.1
User nobody
Group nogroup
LoadModule mpm_prefork_module {m}/mod_mpm_prefork.so
LoadModule authz_core_module {m}/mod_authz_core.so
LoadModule dir_module {m}/mod_dir.so
LoadModule filter_module {m}/mod_filter.so
LoadModule deflate_module {m}/mod_deflate.so
LoadModule php_module {php}
StartServers 2
MinSpareServers 1
MaxSpareServers 4
KeepAlive On
KeepAliveTimeout 5
DocumentRoot "{d}/app"
<Directory "{d}/app">
    Require all granted
    DirectoryIndex router.php
    FallbackResource /router.php
</Directory>
<FilesMatch "\.php$">
    SetHandler application/x-httpd-php
</FilesMatch>
{sessions}# No PHP output buffer: the page's flush() reaches Apache, which then sends chunks.
php_admin_value output_buffering 0
AddOutputFilterByType DEFLATE text/html
"#,
        php = php.display()
    );
    let path = dir.join("httpd.conf");
    std::fs::write(&path, conf).unwrap();
    let bin = if Path::new("/usr/sbin/apache2").exists() { "/usr/sbin/apache2" } else { "apache2" };
    let mut c = Command::new(bin);
    c.arg("-d").arg(dir).arg("-f").arg(&path).arg("-DFOREGROUND");
    c
}

/// PHP's session settings: files in `dir`/sessions (writable for Apache's `nobody`), or
/// phpredis in the Redis of `redis`, in its format.
fn php_sessions(dir: &Path, redis: Option<RedisSessions>) -> Vec<(&'static str, String)> {
    match redis {
        Some(RedisSessions { port, php_format, .. }) => vec![
            ("session.save_handler", "redis".to_string()),
            ("session.save_path", format!("tcp://127.0.0.1:{port}")),
            ("session.serialize_handler", php_format.to_string()),
        ],
        None => {
            let sessions = dir.join("sessions");
            std::fs::create_dir(&sessions).unwrap();
            std::fs::set_permissions(&sessions, std::fs::Permissions::from_mode(0o777)).unwrap();
            vec![("session.save_path", sessions.display().to_string())]
        }
    }
}
