//! The `intercom-secure-proxy` command: a thin CLI over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod audit;
mod demo;
mod init;

/// Large per-response buffers (a page's first chunk) would otherwise make glibc grow and
/// trim its heap on every response; mimalloc keeps and reuses that memory.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use audit::{AuditError, AuditOptions};
use init::InitOptions;
use intercom_secure_proxy::{Config, Identity, RedactingLogger, TokenSigner};

/// Adds Intercom Messenger Secure Mode (signed JWTs, real logouts) to an unmodified web
/// app, as a reverse proxy in front of it.
#[derive(Parser)]
#[command(name = "intercom-secure-proxy", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run {
        /// The configuration file (see conf/intercom-secure-proxy.yaml).
        #[arg(short, long)]
        conf: PathBuf,
        /// Run in the background (needs server.pid_file).
        #[arg(short, long)]
        daemon: bool,
        /// Graceful upgrade: take the listening sockets over from the running process
        /// (through server.upgrade_sock), then send it SIGQUIT.
        #[arg(short, long)]
        upgrade: bool,
        /// Validate the configuration and exit.
        #[arg(short, long)]
        test: bool,
        /// Forward everything untouched (a baseline for benchmarks): every site runs
        /// with no identity sources, no logout paths and nothing to rewrite.
        #[arg(long)]
        passthrough: bool,
    },
    /// Validate a configuration and print a summary (never the secret).
    Check {
        /// The configuration file.
        #[arg(short, long)]
        conf: PathBuf,
    },
    /// Print a signed Messenger token, for debugging.
    Token {
        /// The configuration file (for app_id, secret and claims).
        #[arg(short, long)]
        conf: PathBuf,
        /// With `sites:`, the site whose workspace signs (by index; the first by default).
        #[arg(long, default_value_t = 0)]
        site: usize,
        /// The user id to sign.
        #[arg(long)]
        user_id: String,
        /// The email to sign, if the config signs emails.
        #[arg(long)]
        email: Option<String>,
        /// The name to sign, if the config signs names.
        #[arg(long)]
        name: Option<String>,
    },
    /// Load pages in headless Chromium and report how the Messenger would boot on each:
    /// none, anonymous, insecure (plain user_id/email), user_hash (legacy) or jwt.
    /// Nothing is sent to Intercom or to any host but the audited URLs'.
    ///
    /// Exit codes: 0 every page secure (and the logout check passed); 1 something
    /// insecure, a token that fails a check, a per-user page shared caches may store,
    /// a failed logout check or a page that could not be loaded; 2 a bad argument or
    /// configuration; 3 Chromium could not be started or stopped answering.
    Audit {
        /// The pages to audit (absolute http:// or https:// URLs).
        #[arg(required = true, value_name = "URL")]
        urls: Vec<String>,
        /// A cookie sent to every audited host, e.g. the app's session (repeatable);
        /// its value is never printed.
        #[arg(long = "cookie", value_name = "NAME=VALUE")]
        cookies: Vec<String>,
        /// A header sent with every request, as an authenticating proxy in front of the
        /// app would (repeatable); its value is never printed.
        #[arg(long = "header", value_name = "NAME=VALUE")]
        headers: Vec<String>,
        /// The proxy's configuration file: verify each page's JWT with its site's
        /// secret (from the environment variable or file it names), app_id and
        /// token_lifetime.
        #[arg(short, long)]
        conf: Option<PathBuf>,
        /// The user every page must identify (the JWT's user_id, or the plain one).
        #[arg(long, value_name = "ID")]
        expect_user: Option<String>,
        /// After the pages, load this logout URL, then the first URL again: passes when
        /// Intercom('shutdown') ran and nothing booted identified after the logout.
        #[arg(long, value_name = "URL")]
        logout: Option<String>,
        /// Print one JSON document instead of the table.
        #[arg(long)]
        json: bool,
        /// The Chromium executable (default: the first of chromium, chromium-browser,
        /// google-chrome on PATH).
        #[arg(long, value_name = "PATH")]
        chromium: Option<PathBuf>,
        /// How long one page may take to load.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// How long a loaded page must stay quiet (no Intercom call, no navigation)
        /// before its calls are judged.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        settle: std::time::Duration,
    },
    /// Learn from a running app where it keeps the logged-in user, and write a
    /// verified configuration: the page's own Messenger boot is the answer key.
    /// Nothing is sent to any host but the app's (and Redis, only read).
    ///
    /// Exit codes: 0 a configuration was written and verified; 1 written but the
    /// verification failed; 2 a bad argument; 3 Chromium could not be started or
    /// stopped answering; 4 nothing to learn from, or no identity source found.
    Init {
        #[command(flatten)]
        options: InitOptions,
        /// Write the configuration to this file (default: stdout, the report on stderr).
        // Listed after --cookie-secret-env, as before the options moved into InitOptions.
        #[arg(long, value_name = "FILE", display_order = 11)]
        out: Option<PathBuf>,
        /// Print one JSON document (with the configuration) instead of the report.
        #[arg(long, display_order = 12)]
        json: bool,
    },
    /// Run a sample legacy app on 127.0.0.1:3000 and the proxy in front on 127.0.0.1:8080.
    Demo {
        /// Port of the sample app.
        #[arg(long, default_value_t = 3000)]
        app_port: u16,
        /// Port of the proxy.
        #[arg(long, default_value_t = 8080)]
        proxy_port: u16,
        /// Where the proxy learns who is logged in: the app's /api/me (`endpoint`), or
        /// the app's sessions in Redis (`redis`, see --redis).
        #[arg(long, value_enum, default_value_t = IdentityChoice::Endpoint)]
        identity: IdentityChoice,
        /// The Redis of `--identity redis`.
        #[arg(long, default_value = "redis://127.0.0.1:6379/0")]
        redis: String,
    },
}

/// The demo's identity sources.
#[derive(Clone, Copy, clap::ValueEnum)]
enum IdentityChoice {
    /// The sample app's current-user endpoint.
    Endpoint,
    /// The sample app's sessions, written to Redis.
    Redis,
}

/// `init`: runs it, writes the configuration, prints the report; the exit code.
fn init_command(options: &InitOptions, out: Option<&std::path::Path>, json: bool) -> ExitCode {
    let report = match init::run(options) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("intercom-secure-proxy init: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let written_to = match (out, &report.config) {
        (Some(path), Some(config)) => {
            if let Err(e) = std::fs::write(path, config) {
                eprintln!("intercom-secure-proxy init: cannot write --out {}: {e}", path.display());
                return ExitCode::from(2);
            }
            Some(path.display().to_string())
        }
        _ => None,
    };
    match (json, out, &report.config) {
        (true, _, _) => println!("{}", report.to_json()),
        (false, Some(_), _) | (false, None, None) => {
            print!("{}", report.human(written_to.as_deref()))
        }
        // The configuration on stdout, the report on stderr.
        (false, None, Some(config)) => {
            print!("{config}");
            eprint!("{}", report.human(None));
        }
    }
    ExitCode::from(report.exit_code())
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    let config = Config::from_file(path).map_err(|e| {
        eprintln!("intercom-secure-proxy: {e}");
        ExitCode::from(2)
    })?;
    for warning in config.warnings() {
        log::warn!("{warning}");
    }
    Ok(config)
}

/// A listener that fails after the probe (a race, or a new address on `run -u`) panics
/// inside a Pingora service task; without this the process would keep running with
/// nothing listening and later exit 0.
fn exit_on_listener_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.contains("Failed to build listeners") {
            std::process::exit(1);
        }
    }));
}

/// The benchmark's baseline: the same proxy, with Secure Mode given nothing to do.
fn strip_secure_mode(config: &mut Config) {
    for site in &mut config.sites {
        site.identity.sources.clear();
        site.logout.paths.clear();
        site.logout.detect_cookie_expiry = false;
        site.inject.content_types.clear();
        site.inject.compression_level = 0;
        // No request path is empty: the token refresh and report paths are forwarded like any other.
        site.inject.token_refresh_path.clear();
        site.rollout.report_path.clear();
    }
}

fn main() -> ExitCode {
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    log::set_max_level(logger.filter());
    if log::set_boxed_logger(Box::new(RedactingLogger(logger))).is_err() {
        eprintln!("intercom-secure-proxy: a logger was already installed");
    }
    match Cli::parse().command {
        Command::Run { conf, daemon, upgrade, test, passthrough } => {
            let mut config = match load(&conf) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if passthrough {
                strip_secure_mode(&mut config);
            }
            if test {
                println!("configuration {} is valid", conf.display());
                return ExitCode::SUCCESS;
            }
            if !upgrade {
                if let Err(why) = intercom_secure_proxy::server::probe_listeners(&config) {
                    eprintln!("intercom-secure-proxy: {why}");
                    return ExitCode::from(1);
                }
            }
            exit_on_listener_panic();
            let opt = pingora::server::configuration::Opt { daemon, upgrade, ..Default::default() };
            match intercom_secure_proxy::server::build(config, opt) {
                Ok(server) => server.run_forever(),
                Err(e) => {
                    eprintln!("intercom-secure-proxy: cannot start: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Check { conf } => match load(&conf) {
            Ok(c) => {
                let warnings = intercom_secure_proxy::identity::reachability_warnings(&c)
                    .into_iter()
                    .chain(intercom_secure_proxy::identity::key_url_warnings(&c));
                for warning in warnings {
                    log::warn!("{warning}");
                }
                println!("configuration {} is valid\n{}", conf.display(), c.summary());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Token { conf, site, user_id, email, name } => {
            let config = match load(&conf) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let Some(site) = config.sites.get(site) else {
                eprintln!("intercom-secure-proxy: --site {site}: the configuration has {} site(s), numbered from 0", config.sites.len());
                return ExitCode::from(2);
            };
            let mut identity = Identity::new(user_id);
            identity.email = email;
            identity.name = name;
            match TokenSigner::new(&site.intercom).sign_fresh(&identity) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("intercom-secure-proxy: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Audit {
            urls,
            cookies,
            headers,
            conf,
            expect_user,
            logout,
            json,
            chromium,
            timeout,
            settle,
        } => {
            if let Err(e) = audit::cdp::stop_chromium_on_signals() {
                eprintln!("intercom-secure-proxy audit: cannot handle signals: {e}");
                return ExitCode::from(3);
            }
            let options = AuditOptions {
                urls,
                cookies,
                headers,
                logout,
                config: conf,
                expect_user,
                chromium,
                timeout,
                settle,
            };
            match audit::run(&options) {
                Ok(report) => {
                    print!("{}", if json { report.to_json() + "\n" } else { report.table() });
                    ExitCode::from(if report.passed { 0 } else { 1 })
                }
                Err(e @ AuditError::Usage(_)) => {
                    eprintln!("intercom-secure-proxy audit: {e}");
                    ExitCode::from(2)
                }
                Err(e @ AuditError::Chromium(_)) => {
                    eprintln!("intercom-secure-proxy audit: {e}");
                    ExitCode::from(3)
                }
            }
        }
        Command::Init { options, out, json } => {
            if let Err(e) = audit::cdp::stop_chromium_on_signals() {
                eprintln!("intercom-secure-proxy init: cannot handle signals: {e}");
                return ExitCode::from(3);
            }
            init_command(&options, out.as_deref(), json)
        }
        Command::Demo { app_port, proxy_port, identity, redis } => {
            let identity = match identity {
                IdentityChoice::Endpoint => demo::DemoIdentity::Endpoint,
                IdentityChoice::Redis => demo::DemoIdentity::Redis(redis),
            };
            exit_on_listener_panic();
            match demo::run(app_port, proxy_port, identity) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("intercom-secure-proxy: demo failed: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
