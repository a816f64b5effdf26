//! Identity and assertion headers spelled with other punctuation, through the real
//! proxy in front of the app stacks that fold header names into variables:
//! - PHP's built-in server (`php -S`): `-`, `.` (and `_`) become `_`;
//! - lighttpd + CGI: every byte that is not a letter or digit becomes `_`.
//!
//! Each app (tests/legacy/headers/) echoes the `HTTP_*` variables it got. A header
//! whose name any stack could fold into a configured one must never reach the app,
//! except the exact configured spelling from a trusted peer: `X.Forwarded.User: admin`
//! beside a trusted proxy's `X-Forwarded-User: alice` would make the app see admin
//! while the proxy signs alice. Every punctuation byte HTTP allows in a header name
//! stands in for the dashes, in both cases.
//!
//! Needs php-cli, lighttpd, and python3 with PyJWT + cryptography (`make test`
//! installs them). Without them these tests fail, they never skip.

#[path = "jwt/sign.rs"]
mod sign;
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::conn::fetch;
use support::{page_token, sections, verify, Proxy};

/// The bytes besides letters and digits that HTTP allows in a header name (`tchar`).
const PUNCTUATION: &[u8] = b"!#$%&'*+-.^_`|~";

/// The identity headers the trusted-header source is configured with.
const IDENTITY_HEADERS: [&str; 4] =
    ["X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Company", "X-Forwarded-Company-Name"];

/// The app stacks under test.
#[derive(Clone, Copy, Debug)]
enum Stack {
    Php,
    LighttpdCgi,
}

impl Stack {
    /// Whether the stack turns `byte` in a header name into `_`, the separator of `HTTP_*`
    /// variables (checked against the app, so that the test knows it reaches the stack).
    fn folds(self, byte: u8) -> bool {
        match self {
            Stack::Php => b"-._".contains(&byte),
            Stack::LighttpdCgi => !byte.is_ascii_alphanumeric(),
        }
    }
}

/// A real app server process on a loopback port, echoing its `HTTP_*` variables.
struct App {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl App {
    /// Starts the app on a free port; on another port when another process took that one.
    fn start(stack: Stack) -> App {
        support::on_a_free_port(&format!("the {stack:?} app"), || Self::try_start(stack))
    }

    fn try_start(stack: Stack) -> Result<App, String> {
        let dir = tempfile::tempdir().unwrap();
        let port = support::free_port();
        let apps = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/legacy/headers");
        let (mut cmd, hint) = match stack {
            Stack::Php => {
                let mut c = Command::new("php");
                c.arg("-S").arg(format!("127.0.0.1:{port}")).arg(apps.join("env.php"));
                (c, "install php-cli")
            }
            Stack::LighttpdCgi => {
                let conf = dir.path().join("lighttpd.conf");
                std::fs::write(&conf, lighttpd_conf(&apps, dir.path(), port)).unwrap();
                let mut c = Command::new("/usr/sbin/lighttpd");
                c.arg("-D").arg("-f").arg(&conf);
                (c, "install lighttpd")
            }
        };
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut child = cmd
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start the {stack:?} app ({e}): {hint}; `make test` does")
            });
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = || log_text(dir.path());
        support::listening_or_exited(
            addr,
            &mut child,
            Duration::from_secs(20),
            &format!("the {stack:?} app"),
            &log,
        )?;
        Ok(App { child, addr, dir })
    }
}

/// The server's output and, for lighttpd, its error log.
fn log_text(dir: &Path) -> String {
    ["server.log", "error.log"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_default())
        .collect()
}

impl Drop for App {
    fn drop(&mut self) {
        // Neither server forks a child that outlives a request.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// lighttpd in the foreground with a config of its own: env.py, a CGI script, as the
/// index page.
fn lighttpd_conf(apps: &Path, dir: &Path, port: u16) -> String {
    format!(
        r#"server.document-root = "{apps}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{dir}/error.log"
server.modules = ("mod_cgi")
index-file.names = ("env.py")
cgi.assign = (".py" => "/usr/bin/python3")
"#,
        apps = apps.display(),
        dir = dir.display()
    )
}

/// What one request through the proxy gave: the app's `HTTP_*` variables, as the stack
/// named them, and the claims of the Messenger token the proxy put in the page.
struct Seen {
    vars: Vec<(String, String)>,
    claims: Option<Value>,
}

impl Seen {
    /// The variables an app could read as `header`: those whose name folds to
    /// `HTTP_` + the header's name, each non-alphanumeric byte as `_` (any stack's
    /// folding, so a spelling one stack keeps apart still counts).
    fn readable_as(&self, header: &str) -> Vec<&(String, String)> {
        let wanted = format!("HTTP_{}", cgi_fold(header));
        self.vars.iter().filter(|(name, _)| cgi_fold(name) == wanted).collect()
    }
}

fn cgi_fold(name: &str) -> String {
    name.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { b.to_ascii_uppercase() as char } else { '_' })
        .collect()
}

/// Sends `headers` (exactly as given) through the proxy and reads what the app echoed.
fn through(proxy: &Proxy, app: &App, headers: &[(String, String)]) -> Seen {
    let mut all: Vec<(&str, &str)> = vec![("Accept", "text/html"), ("Connection", "close")];
    all.extend(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let r = fetch(proxy.addr, "GET", "/", &all, b"");
    let context = || {
        format!(
            "{}\nproxy log:\n{}\napp log:\n{}",
            r.describe(),
            proxy.log_text(),
            log_text(app.dir.path())
        )
    };
    assert_eq!(r.status, 200, "{}", context());
    let html = String::from_utf8_lossy(&r.body).into_owned();
    let hex = html
        .split_once("<pre id=\"http-vars\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(hex, _)| hex)
        .unwrap_or_else(|| panic!("the app echoed no variables:\n{}", context()));
    let json: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&hex[i..i + 2], 16)
                .unwrap_or_else(|e| panic!("not hex ({e}):\n{}", context()))
        })
        .collect();
    let vars = serde_json::from_slice(&json)
        .unwrap_or_else(|e| panic!("not JSON pairs ({e}):\n{}", context()));
    Seen { vars, claims: page_token(&html).map(|t| verify(&t)) }
}

/// `name` with `byte` in place of each `-`, in upper case or as written.
fn spelled(name: &str, byte: u8, upper: bool) -> String {
    let name = if upper { name.to_ascii_uppercase() } else { name.to_string() };
    name.replace('-', std::str::from_utf8(&[byte]).unwrap())
}

/// Every spelling under test: each punctuation byte for the dashes, as written and in
/// upper case.
fn spellings() -> impl Iterator<Item = (u8, bool)> {
    PUNCTUATION.iter().flat_map(|&b| [(b, false), (b, true)])
}

/// The app must see a harmless header in each spelling under the variable its stack
/// folds it to: proof that spoofed names reach the stack at all when nothing removes them.
fn probe(byte: u8, upper: bool) -> (String, String) {
    (spelled("X-Probe-Header", byte, upper), "probe".into())
}

fn assert_probe_arrived(stack: Stack, seen: &Seen, byte: u8, upper: bool) {
    let name = probe(byte, upper).0;
    let exact = format!("HTTP_{}", cgi_fold(&name));
    let arrived =
        seen.vars.iter().any(|(n, v)| v == "probe" && (n == &exact || !stack.folds(byte)));
    assert!(
        arrived,
        "{stack:?}: the probe {name} should reach the app as {exact}: {:?}",
        seen.vars
    );
}

fn trusted_header_proxy(app: &App, cidr: &str) -> Proxy {
    let identity = format!(
        "identity:\n  sources:\n    - type: trusted_header\n      trusted_cidrs: [\"{cidr}\"]\n      headers: {{user_id: {}, email: {}, company_id: {}, company_name: {}}}\n",
        IDENTITY_HEADERS[0], IDENTITY_HEADERS[1], IDENTITY_HEADERS[2], IDENTITY_HEADERS[3]
    );
    Proxy::start(&sections(app.addr, &identity, ""))
}

// ---------------------------------------------------------------------------
// trusted_header: an untrusted peer

fn untrusted_peer_loses_every_spelling(stack: Stack) {
    let app = App::start(stack);
    // The test client is on loopback, outside the trusted network.
    let proxy = trusted_header_proxy(&app, "10.0.0.0/8");
    let mut leaks = Vec::new();
    for (byte, upper) in spellings() {
        let mut headers: Vec<(String, String)> = IDENTITY_HEADERS
            .iter()
            .map(|h| (spelled(h, byte, upper), "mallory".to_string()))
            .collect();
        headers.push(probe(byte, upper));
        let seen = through(&proxy, &app, &headers);
        assert_probe_arrived(stack, &seen, byte, upper);
        assert_eq!(seen.claims, None, "an untrusted peer asserted an identity with {headers:?}");
        for header in IDENTITY_HEADERS {
            let got = seen.readable_as(header);
            if !got.is_empty() {
                leaks
                    .push(format!("{:?} reached the app as {got:?}", spelled(header, byte, upper)));
            }
        }
    }
    assert!(leaks.is_empty(), "{stack:?}, untrusted peer:\n{}", leaks.join("\n"));
}

#[test]
fn php_untrusted_peer_identity_headers_in_any_punctuation_never_reach_the_app() {
    untrusted_peer_loses_every_spelling(Stack::Php);
}

#[test]
fn lighttpd_cgi_untrusted_peer_identity_headers_in_any_punctuation_never_reach_the_app() {
    untrusted_peer_loses_every_spelling(Stack::LighttpdCgi);
}

// ---------------------------------------------------------------------------
// trusted_header: a trusted peer, with a client's twin of each header

fn trusted_peer_spoofed_twins_are_dropped(stack: Stack) {
    let app = App::start(stack);
    let proxy = trusted_header_proxy(&app, "127.0.0.1/32");
    let genuine = ["alice", "alice@example.com", "acme-1", "Acme"];
    let mut wrong = Vec::new();
    // `-` as written is the configured spelling itself (in upper case the same header).
    for (byte, upper) in spellings().filter(|&(b, _)| b != b'-') {
        let mut headers: Vec<(String, String)> = IDENTITY_HEADERS
            .iter()
            .zip(genuine)
            .map(|(h, v)| (h.to_string(), v.to_string()))
            .collect();
        // The twins come last: where two fold to one variable, PHP keeps the last.
        headers.extend(
            IDENTITY_HEADERS.iter().map(|h| (spelled(h, byte, upper), "admin".to_string())),
        );
        headers.push(probe(byte, upper));
        let seen = through(&proxy, &app, &headers);
        assert_probe_arrived(stack, &seen, byte, upper);
        let claims = seen
            .claims
            .as_ref()
            .unwrap_or_else(|| panic!("{stack:?}: no identity for {headers:?}"));
        assert_eq!(claims["user_id"], "alice", "{stack:?}: {headers:?}");
        assert_eq!(claims["email"], "alice@example.com", "{stack:?}: {headers:?}");
        assert_eq!(
            claims["company"],
            json!({"id": "acme-1", "name": "Acme"}),
            "{stack:?}: {headers:?}"
        );
        for (header, value) in IDENTITY_HEADERS.iter().zip(genuine) {
            let got = seen.readable_as(header);
            let expected = [(format!("HTTP_{}", cgi_fold(header)), value.to_string())];
            if got.iter().copied().ne(expected.iter()) {
                wrong.push(format!(
                    "with {:?} the app read {header} as {got:?}",
                    spelled(header, byte, upper)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{stack:?}, trusted peer (the proxy signed alice):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn php_trusted_peer_spoofed_twins_of_identity_headers_never_reach_the_app() {
    trusted_peer_spoofed_twins_are_dropped(Stack::Php);
}

#[test]
fn lighttpd_cgi_trusted_peer_spoofed_twins_of_identity_headers_never_reach_the_app() {
    trusted_peer_spoofed_twins_are_dropped(Stack::LighttpdCgi);
}

// ---------------------------------------------------------------------------
// signed_header: the assertion, verified or not, in any spelling

const ASSERTION_HEADER: &str = "X-Pomerium-Jwt-Assertion";

fn assertion_never_reaches_the_app(stack: Stack) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({"sub": "pia", "aud": "app.example.com", "iss": "authenticate.example.com", "iat": now, "exp": now + 300});
    let s = sign::sign(
        json!({"keys": {"p1": "EC"}, "tokens": {"t": {"key": "p1", "alg": "ES256", "claims": claims}}}),
    );
    let assertion = s["tokens"]["t"].as_str().unwrap().to_string();
    let keys = tempfile::tempdir().unwrap();
    let jwks = keys.path().join("jwks.json");
    std::fs::write(&jwks, s["jwks"].to_string()).unwrap();
    let app = App::start(stack);
    let identity = format!(
        "identity:\n  sources:\n    - type: signed_header\n      preset: pomerium\n      jwks_file: {}\n      audience: app.example.com\n",
        jwks.display()
    );
    let proxy = Proxy::start(&sections(app.addr, &identity, ""));
    let mut leaks = Vec::new();
    for (byte, upper) in spellings() {
        // The assertion in the configured spelling (it identifies) and a twin (it must
        // not reach the app either); `-` as written is the configured spelling alone.
        let twin = spelled(ASSERTION_HEADER, byte, upper);
        let mut headers = vec![(ASSERTION_HEADER.to_string(), assertion.clone())];
        if !twin.eq_ignore_ascii_case(ASSERTION_HEADER) {
            headers.push((twin.clone(), assertion.clone()));
        }
        headers.push(probe(byte, upper));
        let seen = through(&proxy, &app, &headers);
        assert_probe_arrived(stack, &seen, byte, upper);
        let user = seen.claims.as_ref().map(|c| c["user_id"].clone());
        assert_eq!(
            user,
            Some(json!("pia")),
            "{stack:?}: the assertion should identify with {twin:?} beside it\n{}",
            proxy.log_text()
        );
        let got = seen.readable_as(ASSERTION_HEADER);
        if !got.is_empty() {
            leaks.push(format!(
                "{twin:?} reached the app as {:?}",
                got.iter().map(|(n, _)| n).collect::<Vec<_>>()
            ));
        }
    }
    assert!(leaks.is_empty(), "{stack:?}, signed header:\n{}", leaks.join("\n"));
}

#[test]
fn php_signed_header_assertions_in_any_punctuation_never_reach_the_app() {
    assertion_never_reaches_the_app(Stack::Php);
}

#[test]
fn lighttpd_cgi_signed_header_assertions_in_any_punctuation_never_reach_the_app() {
    assertion_never_reaches_the_app(Stack::LighttpdCgi);
}
