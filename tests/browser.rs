//! Real-browser end-to-end tests: a real upstream app, the real proxy binary, and
//! headless Chromium (tests/browser/driver.mjs) with a stand-in Intercom widget that
//! records every Messenger call.
//!
//! What is checked, in the browser, is what the Messenger was actually given:
//! - every common shape of page code boots with a verified `intercom_user_jwt` for the
//!   logged-in user and without plain `user_id`/`email`/`user_hash`/`name`;
//! - after a logout (by path, by session-cookie expiry, through the interstitial) or a
//!   user switch, `shutdown` runs before the next user boots, and nothing of the
//!   previous user is left;
//! - pages under a nonce, an allowlist or a `<meta>` Content-Security-Policy boot without
//!   any CSP violation, and the policy is amended with a hash, never loosened.
//!
//! Needs Node 20+, Debian's Chromium and `npm ci` in tests/browser (`make test` does it);
//! without them these tests fail, they never skip.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::{Proxy, Reply, Request, Upstream, APP_ID};

// ---------------------------------------------------------------------------
// The upstream app.

#[derive(Debug)]
struct User {
    id: &'static str,
    email: &'static str,
    name: &'static str,
}

static ALICE: User = User { id: "u-alice-1001", email: "alice@example.com", name: "Alice Liddell" };
static BOB: User = User { id: "u-bob-2002", email: "bob@example.org", name: "Bob Builder" };
/// What the app renders into its pages for a visitor without a session.
static GUEST: User = User { id: "guest-77", email: "guest@example.net", name: "Guest Visitor" };

fn user_named(name: &str) -> Option<&'static User> {
    match name {
        "alice" => Some(&ALICE),
        "bob" => Some(&BOB),
        _ => None,
    }
}

/// The official Intercom loader, unmodified (reference §3, app id abc12345).
const LOADER: &str = r#"(function(){var w=window;var ic=w.Intercom;if(typeof ic==="function"){ic('reattach_activator');ic('update',w.intercomSettings);}else{var d=document;var i=function(){i.c(arguments);};i.q=[];i.c=function(args){i.q.push(args);};w.Intercom=i;var l=function(){var s=d.createElement('script');s.type='text/javascript';s.async=true;s.src='https://widget.intercom.io/widget/abc12345';var x=d.getElementsByTagName('script')[0];x.parentNode.insertBefore(s,x);};if(document.readyState==='complete'){l();}else if(w.attachEvent){w.attachEvent('onload',l);}else{w.addEventListener('load',l,false);}}})();"#;

/// The older loader: the same without the `document.readyState==='complete'` branch.
fn old_loader() -> String {
    let old = LOADER.replace(
        "if(document.readyState==='complete'){l();}else if(w.attachEvent)",
        "if(w.attachEvent)",
    );
    assert_ne!(old, LOADER, "the old loader variant must differ from the current one");
    old
}

/// The settings object an insecure app renders for `u`.
fn settings_js(u: &User) -> String {
    format!(
        r#"{{api_base: "https://api-iam.intercom.io", app_id: "{APP_ID}", user_id: "{}", email: "{}", name: "{}"}}"#,
        u.id, u.email, u.name
    )
}

fn doc(title: &str, head: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n{head}</head>\n<body>\n<h1>{title}</h1>\n{body}</body>\n</html>\n"
    )
}

const LOGIN_PAGE: &str = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Sign in</title></head>\n<body><form action=\"/login\" method=\"get\"><input name=\"user\"><button>Sign in</button></form></body></html>\n";

/// The pages under test, rendered for the session's user (or the guest).
fn shape_page(n: &str, u: &User) -> Option<String> {
    let settings = settings_js(u);
    Some(match n {
        // 1. Settings before the loader, in <head>.
        "1" => doc(
            "Settings in head",
            &format!("<script>window.intercomSettings = {settings};</script>\n<script>{LOADER}</script>\n"),
            "<p>Dashboard</p>\n",
        ),
        // 3. Settings assigned after the loader.
        "3" => doc(
            "Settings after loader",
            &format!("<script>{LOADER}</script>\n"),
            &format!("<p>Dashboard</p>\n<script>window.intercomSettings = {settings};</script>\n"),
        ),
        // 4. A placeholder first, the full settings later (DOMContentLoaded).
        "4" => doc(
            "Settings reassigned",
            &format!("<script>window.intercomSettings = {{app_id: \"{APP_ID}\"}};</script>\n<script>{LOADER}</script>\n"),
            &format!(
                "<p>Dashboard</p>\n<script>document.addEventListener('DOMContentLoaded', function () {{ window.intercomSettings = {settings}; }});</script>\n"
            ),
        ),
        // 5. Explicit inline boot after the loader, no settings.
        "5" => doc(
            "Inline boot",
            &format!("<script>{LOADER}</script>\n"),
            &format!("<p>Dashboard</p>\n<script>window.Intercom('boot', {settings});</script>\n"),
        ),
        // 6. Boot from an external bundle.
        "6" => doc(
            "Bundle boot",
            &format!("<script>{LOADER}</script>\n<script src=\"/bundle.js\"></script>\n"),
            "<p>Dashboard</p>\n",
        ),
        // 7. Boot without identity, then updates carrying it: one queued before the
        //    widget loads, one made to the live widget.
        "7" => doc(
            "Update after boot",
            &format!("<script>{LOADER}</script>\n"),
            &format!(
                "<p>Dashboard</p>\n<script>\
window.Intercom('boot', {{app_id: \"{APP_ID}\"}});\n\
window.Intercom('update', {{user_id: \"{id}\", email: \"{email}\", name: \"{name}\", stage: \"queued\"}});\n\
var poll = setInterval(function () {{\n\
  var s = window.__intercom;\n\
  if (s && s.calls && s.calls.length) {{ clearInterval(poll); window.Intercom('update', {{user_id: \"{id}\", email: \"{email}\", stage: \"live\"}}); }}\n\
}}, 20);\n</script>\n",
                id = u.id,
                email = u.email,
                name = u.name
            ),
        ),
        // 8. The older loader (no readyState branch), settings in head.
        "8" => doc(
            "Old loader",
            &format!("<script>window.intercomSettings = {settings};</script>\n<script>{}</script>\n", old_loader()),
            "<p>Dashboard</p>\n",
        ),
        // Settings and loader at the end of the body, behind a slow synchronous script
        // (a vendor script, say): typical of legacy pages, and the corpus page's shape.
        "late" => doc(
            "Late Intercom code",
            "<script>window.appStarted = Date.now();</script>\n",
            &format!(
                "<p>Dashboard</p>\n<script src=\"/slow-vendor.js\"></script>\n<script>window.intercomSettings = {settings};</script>\n<script>{LOADER}</script>\n"
            ),
        ),
        _ => return None,
    })
}

/// A page without any Intercom code (but with a script of its own).
fn plain_page() -> String {
    doc(
        "No Intercom",
        "<script>document.documentElement.setAttribute('data-app', 'ready');</script>\n",
        "<p>Nothing about Intercom here.</p>\n",
    )
}

/// External script of the CSP pages: the app's settings and the official loader.
fn app_js(u: &User) -> String {
    format!("window.intercomSettings = {};\n{LOADER}\n", settings_js(u))
}

const NONCE_CSP: &str = "script-src 'nonce-R4nd0m' 'strict-dynamic'; object-src 'none'";
const ALLOWLIST_CSP: &str =
    "script-src 'self' https://widget.intercom.io; object-src 'none'; base-uri 'self'";
const META_CSP: &str = "script-src 'self' https://widget.intercom.io";

fn csp_page(kind: &str, u: &User) -> Option<(String, Option<&'static str>)> {
    Some(match kind {
        "nonce" => (
            doc(
                "CSP nonce",
                &format!(
                    "<script nonce=\"R4nd0m\">window.intercomSettings = {};</script>\n<script nonce=\"R4nd0m\">{LOADER}</script>\n",
                    settings_js(u)
                ),
                "<p>Dashboard</p>\n",
            ),
            Some(NONCE_CSP),
        ),
        "header" => (doc("CSP header", "<script src=\"/app.js\"></script>\n", "<p>Dashboard</p>\n"), Some(ALLOWLIST_CSP)),
        "meta" => (
            doc(
                "CSP meta",
                &format!("<meta http-equiv=\"Content-Security-Policy\" content=\"{META_CSP}\">\n<script src=\"/app.js\"></script>\n"),
                "<p>Dashboard</p>\n",
            ),
            None,
        ),
        // The policy comes before the charset declaration, so it governs our script too.
        "meta-first" => (
            format!(
                "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta http-equiv=\"Content-Security-Policy\" content=\"{META_CSP}\">\n<meta charset=\"utf-8\">\n<title>CSP meta first</title>\n<script src=\"/app.js\"></script>\n</head>\n<body>\n<p>Dashboard</p>\n</body>\n</html>\n"
            ),
            None,
        ),
        // Control: an inline script of the page's own under the allowlist policy must be
        // reported as a violation (proves the recorder works and nothing was loosened).
        "control" => (
            doc(
                "CSP control",
                "<script src=\"/app.js\"></script>\n",
                "<p>Dashboard</p>\n<script>window.__pageInline = 1;</script>\n",
            ),
            Some(ALLOWLIST_CSP),
        ),
        _ => return None,
    })
}

type Sessions = Arc<Mutex<HashMap<String, &'static User>>>;

struct App {
    upstream: Upstream,
    sessions: Sessions,
}

impl App {
    fn start() -> App {
        let sessions: Sessions = Arc::default();
        let s = sessions.clone();
        let upstream = Upstream::start(move |req| route(req, &s));
        App { upstream, sessions }
    }

    /// A session created directly (for requests made without the browser).
    fn session_for(&self, u: &'static User) -> String {
        let sid = new_sid();
        self.sessions.lock().unwrap().insert(sid.clone(), u);
        sid
    }
}

fn new_sid() -> String {
    format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>())
}

fn html_reply(body: impl Into<Vec<u8>>, extra: &[(&str, &str)]) -> Reply {
    let mut headers =
        vec![("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")];
    headers.extend_from_slice(extra);
    Reply::with(200, &headers, body)
}

fn js_reply(body: String) -> Reply {
    Reply::with(
        200,
        &[("Content-Type", "application/javascript"), ("Cache-Control", "no-store")],
        body,
    )
}

fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').filter_map(|p| p.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

fn route(req: &Request, sessions: &Sessions) -> Reply {
    let user = req.cookie("sid").and_then(|sid| sessions.lock().unwrap().get(&sid).copied());
    let query = req.target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let path = req.path().to_string();
    if req.method != "GET" {
        return Reply::with(405, &[], "");
    }
    match path.as_str() {
        // /login?user=NAME[&next=/path]: a fresh session, then on to `next` (or /).
        "/login" => match param(query, "user").and_then(user_named) {
            Some(u) => {
                let sid = new_sid();
                sessions.lock().unwrap().insert(sid.clone(), u);
                let cookie = format!("sid={sid}; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax");
                let next = param(query, "next").filter(|n| n.starts_with('/')).unwrap_or("/");
                Reply::with(
                    302,
                    &[("Location", next), ("Set-Cookie", &cookie), ("Cache-Control", "no-store")],
                    "",
                )
            }
            None => html_reply(LOGIN_PAGE, &[]),
        },
        "/api/me" => match user {
            Some(u) => Reply::with(
                200,
                &[("Content-Type", "application/json")],
                json!({"id": u.id, "email": u.email, "name": u.name}).to_string(),
            ),
            None => Reply::with(
                401,
                &[("Content-Type", "application/json")],
                "{\"error\":\"not logged in\"}",
            ),
        },
        // Logouts: a redirect to the login page that expires the session cookie, with
        // the small body most frameworks send (Rails, Express), or none at all
        // (`Content-Length: 0`, like Django) on /logout-empty.
        "/logout" | "/signout" | "/logout-empty" => {
            if let Some(sid) = req.cookie("sid") {
                sessions.lock().unwrap().remove(&sid);
            }
            let body = if path == "/logout-empty" {
                ""
            } else {
                "<html><body>You are being <a href=\"/login\">redirected</a>.</body></html>"
            };
            Reply::with(
                302,
                &[
                    ("Location", "/login"),
                    ("Set-Cookie", "sid=; Path=/; Max-Age=0"),
                    ("Content-Type", "text/html; charset=utf-8"),
                    ("Cache-Control", "no-store"),
                ],
                body,
            )
        }
        "/" => html_reply(shape_page("1", user.unwrap_or(&GUEST)).unwrap(), &[]),
        "/app.html" => html_reply(support::corpus("app.html"), &[]),
        "/plain" => html_reply(plain_page(), &[]),
        "/slow-vendor.js" => Reply::After(
            std::time::Duration::from_millis(1200),
            Box::new(js_reply("window.vendorLoaded = true;\n".to_string())),
        ),
        "/bundle.js" => {
            js_reply(format!("window.Intercom('boot', {});\n", settings_js(user.unwrap_or(&GUEST))))
        }
        "/app.js" => js_reply(app_js(user.unwrap_or(&GUEST))),
        p => {
            if let Some(page) =
                p.strip_prefix("/shape/").and_then(|n| shape_page(n, user.unwrap_or(&GUEST)))
            {
                return html_reply(page, &[]);
            }
            if let Some((page, csp)) =
                p.strip_prefix("/csp/").and_then(|k| csp_page(k, user.unwrap_or(&GUEST)))
            {
                if p == "/csp/meta-first" {
                    // No charset in Content-Type: the page's <meta charset> is what counts,
                    // so the proxy places its script after it, under the policy before it.
                    return Reply::with(200, &[("Content-Type", "text/html")], page);
                }
                let extra: Vec<(&str, &str)> =
                    csp.map(|c| ("Content-Security-Policy", c)).into_iter().collect();
                return html_reply(page, &extra);
            }
            Reply::with(404, &[("Content-Type", "text/plain")], "")
        }
    }
}

/// The app's /api/me, with time to answer while Chromium and other tests load the
/// machine (the default 500 ms is the production setting, not what these tests check).
const IDENTITY: &str = "identity:\n  sources:\n    - type: current_user_endpoint\n      path: /api/me\n      cookies: [sid]\n      timeout: 5s\n";

fn start_proxy(app: &App, extra: &str) -> Proxy {
    Proxy::start(&support::sections(app.upstream.addr, IDENTITY, extra))
}

// ---------------------------------------------------------------------------
// The browser driver.

/// One step of a scenario.
fn step(url: String, wait: &str) -> Value {
    json!({"goto": url, "wait": wait, "timeoutMs": 6000})
}

/// The driver's report, step by step, with names for the steps.
struct Run {
    names: Vec<&'static str>,
    steps: Vec<Value>,
    proxy_log: String,
}

impl Run {
    fn step(&self, name: &str) -> &Value {
        let i = self.index(name);
        &self.steps[i]
    }

    fn index(&self, name: &str) -> usize {
        self.names.iter().position(|n| *n == name).unwrap_or_else(|| panic!("no step named {name}"))
    }

    /// A short description of a step for assertion messages (cookies left out).
    fn excerpt(&self, name: &str) -> String {
        let mut s = self.step(name).clone();
        if let Some(o) = s.as_object_mut() {
            o.remove("cookies");
        }
        let mut text = serde_json::to_string_pretty(&s).unwrap();
        if text.len() > 6000 {
            text.truncate(6000);
            text.push_str("\n…");
        }
        let log = support::log_tail(&self.proxy_log, 15);
        format!("step {name}:\n{text}\nproxy log (tail):\n{log}")
    }
}

/// Runs the driver on `steps` (in one browser profile) and returns its report.
fn drive(proxy: &Proxy, steps: Vec<(&'static str, Value)>) -> Run {
    let (names, steps): (Vec<_>, Vec<_>) = steps.into_iter().unzip();
    let steps = support::run_browser(steps, &|| format!("proxy log:\n{}", proxy.log_text()));
    Run { names, steps, proxy_log: proxy.log_text() }
}

fn calls(step: &Value) -> &[Value] {
    step["calls"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn methods(step: &Value) -> Vec<&str> {
    calls(step).iter().map(|c| c["method"].as_str().unwrap_or("?")).collect()
}

fn cookie<'a>(step: &'a Value, name: &str) -> Option<&'a str> {
    step["cookies"].as_array()?.iter().find(|c| c["name"] == name)?["value"].as_str()
}

const SESSION_COOKIE: &str = "intercom-session-abc12345";

/// Plain identity fields that must never reach the Messenger next to a token. `name`
/// is signed by default, so it is stripped too when the token carries it.
fn assert_no_plain_identity(run: &Run, name: &str, claims: &Value, literals: &[&str]) {
    let s = run.step(name);
    let mut objects: Vec<(&str, &Value)> = calls(s)
        .iter()
        .filter(|c| c["settings"].is_object())
        .map(|c| (c["method"].as_str().unwrap_or("?"), &c["settings"]))
        .collect();
    if s["intercomSettings"].is_object() {
        objects.push(("window.intercomSettings", &s["intercomSettings"]));
    }
    let mut plain = vec!["user_id", "email", "user_hash"];
    if claims.get("name").is_some() {
        plain.push("name");
    }
    for (what, o) in objects {
        for key in &plain {
            assert!(o.get(*key).is_none(), "{what} carries plain `{key}`\n{}", run.excerpt(name));
        }
        let text = o.to_string();
        for lit in literals {
            assert!(
                !text.contains(lit),
                "{what} carries {lit:?} in plain text\n{}",
                run.excerpt(name)
            );
        }
    }
}

/// The Messenger booted exactly once on this step, with a token that verifies with the
/// secret and names `u`, and without plain identity anywhere. Returns (token, claims).
fn assert_secure_boot(run: &Run, name: &str, u: &User, literals: &[&str]) -> (String, Value) {
    let s = run.step(name);
    assert_eq!(s["status"], 200, "{}", run.excerpt(name));
    assert_eq!(s["timedOut"], false, "the Messenger never booted\n{}", run.excerpt(name));
    let boots: Vec<&Value> = calls(s).iter().filter(|c| c["method"] == "boot").collect();
    assert_eq!(boots.len(), 1, "expected exactly one boot\n{}", run.excerpt(name));
    let settings = &boots[0]["settings"];
    assert_eq!(settings["app_id"], APP_ID, "{}", run.excerpt(name));
    let token = settings["intercom_user_jwt"]
        .as_str()
        .unwrap_or_else(|| panic!("boot without intercom_user_jwt\n{}", run.excerpt(name)))
        .to_string();
    let claims = support::verify(&token);
    assert_eq!(claims["user_id"], u.id, "token for the wrong user\n{}", run.excerpt(name));
    assert_eq!(claims["email"], u.email, "{}", run.excerpt(name));
    assert_eq!(claims["name"], u.name, "{}", run.excerpt(name));
    let mut all = vec![u.id, u.email];
    all.extend_from_slice(literals);
    assert_no_plain_identity(run, name, &claims, &all);
    assert_eq!(s["loads"], 1, "the widget script should run exactly once\n{}", run.excerpt(name));
    assert_eq!(s["widgetAppId"], APP_ID, "{}", run.excerpt(name));
    assert_eq!(s["pageErrors"], json!([]), "page errors\n{}", run.excerpt(name));
    (token, claims)
}

// ---------------------------------------------------------------------------
// A. Page shapes: one driver run for all of them, shared by the tests below.

struct ShapesRun {
    run: Run,
    /// The page a logged-out visitor got through the proxy, and what the app sent.
    guest_html: (Vec<u8>, Vec<u8>),
}

static SHAPES: OnceLock<ShapesRun> = OnceLock::new();

fn shapes() -> &'static ShapesRun {
    SHAPES.get_or_init(|| {
        let app = App::start();
        let proxy = start_proxy(&app, "");
        let u = |p: &str| proxy.url(p);
        let mut steps = vec![
            ("guest", step(u("/shape/1"), "boot")),
            ("login", step(u("/login?user=alice"), "boot")),
            ("shape1", step(u("/shape/1"), "boot")),
            ("shape2", step(u("/app.html"), "boot")),
        ];
        for (name, n) in [
            ("shape3", "3"),
            ("shape4", "4"),
            ("shape5", "5"),
            ("shape6", "6"),
            ("shape7", "7"),
            ("shape8", "8"),
        ] {
            steps.push((name, step(u(&format!("/shape/{n}")), "boot")));
        }
        let mut plain = step(u("/plain"), "load");
        plain["settleMs"] = json!(700);
        steps.push(("plain", plain));
        let run = drive(&proxy, steps);
        let through = support::get(&proxy.url("/shape/1"), &[("Accept", "text/html")]);
        assert_eq!(through.status, 200);
        let sent = shape_page("1", &GUEST).unwrap().into_bytes();
        ShapesRun { run, guest_html: (through.body, sent) }
    })
}

/// Intercom's published install snippet (tests/browser/intercom-loader.js) for `app_id`.
fn official_loader(app_id: &str) -> String {
    const VENDORED: &str = include_str!("browser/intercom-loader.js");
    let code: Vec<&str> = VENDORED.lines().filter(|l| !l.starts_with("//")).collect();
    assert_eq!(code.len(), 1, "one line of code after the header");
    code[0].replace("WORKSPACE_ID", app_id)
}

#[test]
fn loader_is_the_official_one() {
    // Every loader a browser gets here is Intercom's published snippet, compared with
    // the vendored publication (not one copy with another): the pages of these tests,
    // the corpus page, the legacy apps' pages, and the demo's app as it serves them.
    assert_eq!(LOADER, official_loader(APP_ID), "the loader of these tests' pages");
    let corpus = String::from_utf8(support::corpus("app.html")).unwrap();
    let official = official_loader(APP_ID);
    assert!(corpus.contains(&official), "the corpus page's loader is not the official one");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for app in ["python/app.py", "php/router.php", "express/app.js"] {
        let app = format!("tests/legacy/{app}");
        let source = std::fs::read_to_string(root.join(&app)).unwrap();
        assert!(source.contains(&official), "{app}: its loader is not the official one");
    }
    let (mut demo, app_port, _) = support::start_demo(&[], std::process::Stdio::null);
    let app = format!("http://127.0.0.1:{app_port}");
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let login = support::send("POST", &format!("{app}/login"), &form, b"username=alice");
    let session = login.header("set-cookie").expect("the demo's login sets its session");
    let cookie = session.split(';').next().unwrap().to_string();
    let home = support::get(&format!("{app}/"), &[("Cookie", &cookie)]);
    let _ = demo.kill();
    let _ = demo.wait();
    let page = home.text();
    assert_eq!(home.status, 200, "{page}");
    let served = format!("<script>{}</script>", official_loader("demo1234"));
    assert!(page.contains(&served), "the demo's loader is not the official one:\n{page}");
}

#[test]
fn shape1_settings_in_head_before_loader() {
    let r = &shapes().run;
    assert_secure_boot(r, "login", &ALICE, &[]);
    assert_secure_boot(r, "shape1", &ALICE, &[]);
}

#[test]
fn shape2_corpus_page_settings_at_end_of_body() {
    let r = &shapes().run;
    // The corpus page hard-codes user_id "legacy-42" for alice@example.com, so the
    // token (alice from /api/me) must win and the plain values must be gone.
    let s = r.step("shape2");
    assert_eq!(s["status"], 200, "{}", r.excerpt("shape2"));
    let boots: Vec<&Value> = calls(s).iter().filter(|c| c["method"] == "boot").collect();
    assert_eq!(boots.len(), 1, "{}", r.excerpt("shape2"));
    let token = boots[0]["settings"]["intercom_user_jwt"]
        .as_str()
        .unwrap_or_else(|| panic!("no token\n{}", r.excerpt("shape2")));
    let claims = support::verify(token);
    assert_eq!(claims["user_id"], ALICE.id, "{}", r.excerpt("shape2"));
    assert_eq!(boots[0]["settings"]["app_id"], APP_ID, "{}", r.excerpt("shape2"));
    assert_no_plain_identity(r, "shape2", &claims, &["legacy-42", "alice@example.com"]);
    assert_eq!(s["loads"], 1, "{}", r.excerpt("shape2"));
}

#[test]
fn shape3_settings_after_loader() {
    assert_secure_boot(&shapes().run, "shape3", &ALICE, &[]);
}

#[test]
fn shape4_settings_reassigned_later() {
    assert_secure_boot(&shapes().run, "shape4", &ALICE, &[]);
}

#[test]
fn shape5_inline_boot_call() {
    let r = &shapes().run;
    assert_secure_boot(r, "shape5", &ALICE, &[]);
    let boot = calls(r.step("shape5")).iter().find(|c| c["method"] == "boot").unwrap();
    assert_eq!(
        boot["auto"],
        false,
        "the page's own boot call should be the one recorded\n{}",
        r.excerpt("shape5")
    );
}

#[test]
fn shape6_boot_from_external_bundle() {
    let r = &shapes().run;
    assert_secure_boot(r, "shape6", &ALICE, &[]);
    let boot = calls(r.step("shape6")).iter().find(|c| c["method"] == "boot").unwrap();
    assert_eq!(
        boot["auto"],
        false,
        "the bundle's boot call should be the one recorded\n{}",
        r.excerpt("shape6")
    );
}

#[test]
fn shape7_update_after_boot_carries_no_plain_identity() {
    let r = &shapes().run;
    let (token, _) = assert_secure_boot(r, "shape7", &ALICE, &[]);
    let updates: Vec<&Value> =
        calls(r.step("shape7")).iter().filter(|c| c["method"] == "update").collect();
    for stage in ["queued", "live"] {
        let u = updates
            .iter()
            .find(|c| c["settings"]["stage"] == stage)
            .unwrap_or_else(|| panic!("no {stage} update recorded\n{}", r.excerpt("shape7")));
        assert_eq!(
            u["settings"]["intercom_user_jwt"],
            token.as_str(),
            "{stage} update\n{}",
            r.excerpt("shape7")
        );
    }
}

#[test]
fn shape8_older_loader_variant() {
    assert_secure_boot(&shapes().run, "shape8", &ALICE, &[]);
}

#[test]
fn shape10_no_intercom_code_without_auto_include_boots_nothing() {
    let r = &shapes().run;
    let s = r.step("plain");
    assert_eq!(s["status"], 200, "{}", r.excerpt("plain"));
    assert_eq!(s["loads"], 0, "no widget should load\n{}", r.excerpt("plain"));
    assert_eq!(s["calls"], json!([]), "{}", r.excerpt("plain"));
    assert_eq!(s["pageErrors"], json!([]), "{}", r.excerpt("plain"));
}

#[test]
fn shape11_logged_out_visitor_gets_the_watcher_and_no_plain_identity() {
    // The app renders a plain identity for a visitor the proxy knows as nobody (a login
    // it did not see, say): the watcher asks the refresh path, hears "nobody", and the
    // Messenger boots without identity.
    let sr = shapes();
    let r = &sr.run;
    let s = r.step("guest");
    assert_eq!(s["timedOut"], false, "{}", r.excerpt("guest"));
    let boots: Vec<&Value> = calls(s).iter().filter(|c| c["method"] == "boot").collect();
    assert_eq!(boots.len(), 1, "{}", r.excerpt("guest"));
    let settings = &boots[0]["settings"];
    assert!(
        settings.get("intercom_user_jwt").is_none(),
        "a visitor got a token\n{}",
        r.excerpt("guest")
    );
    assert!(
        settings.get("user_id").is_none() && settings.get("email").is_none(),
        "a plain identity reached the Messenger\n{}",
        r.excerpt("guest")
    );
    assert_eq!(
        settings["name"],
        GUEST.name,
        "what the token would not carry stays\n{}",
        r.excerpt("guest")
    );
    assert!(cookie(s, "__isp_user").is_none(), "{}", r.excerpt("guest"));
    let (through, sent) = &sr.guest_html;
    assert!(
        &support::without_our_script(through) == sent,
        "the logged-out page was changed beyond the watcher script:\n--- sent\n{}\n--- received\n{}",
        String::from_utf8_lossy(sent),
        String::from_utf8_lossy(through)
    );
    assert!(
        support::page_token(&String::from_utf8_lossy(through)).is_none(),
        "a visitor's page carries a token"
    );
}

// A.9: auto-include.

#[test]
fn shape9_auto_include_boots_pages_without_intercom_code() {
    let app = App::start();
    let proxy = start_proxy(&app, "inject:\n  auto_include: true\n");
    let r = drive(
        &proxy,
        vec![
            ("login", step(proxy.url("/login?user=alice"), "boot")),
            ("plain", step(proxy.url("/plain"), "boot")),
        ],
    );
    // A page that has the loader still boots once with auto-include on.
    assert_secure_boot(&r, "login", &ALICE, &[]);
    let (_, claims) = assert_secure_boot(&r, "plain", &ALICE, &[]);
    assert_eq!(claims["user_id"], ALICE.id);
}

// ---------------------------------------------------------------------------
// B. Logout privacy: one browser profile, alice then bob.

/// alice logs in and boots; `logout` is visited; bob logs in and boots.
fn logout_then_next_user(extra: &str, logout: &str, interstitial: bool) {
    let app = App::start();
    let proxy = start_proxy(&app, extra);
    let mut out = step(proxy.url(logout), "shutdown");
    out["settleMs"] = json!(if interstitial { 1000 } else { 500 });
    let r = drive(
        &proxy,
        vec![
            ("alice", step(proxy.url("/login?user=alice"), "boot")),
            ("logout", out),
            ("bob", step(proxy.url("/login?user=bob"), "boot")),
        ],
    );
    let (alice_token, _) = assert_secure_boot(&r, "alice", &ALICE, &[]);
    let alice_session = cookie(r.step("alice"), SESSION_COOKIE)
        .unwrap_or_else(|| panic!("the widget set no session cookie\n{}", r.excerpt("alice")))
        .to_string();

    // The logout lands on a login page without any Intercom code: whatever Messenger
    // calls happen there come from the proxy.
    let lo = r.step("logout");
    assert!(lo["url"].as_str().unwrap_or("").ends_with("/login"), "{}", r.excerpt("logout"));
    let m = methods(lo);
    if interstitial {
        // The shutdown ran on the interstitial (and maybe again on the login page after
        // it): the driver saw a `shutdown` call in the step's documents before its
        // deadline, though the calls reported are those of the last document.
        assert_eq!(
            lo["timedOut"],
            false,
            "no shutdown seen during the logout\n{}",
            r.excerpt("logout")
        );
        assert!(!m.contains(&"boot"), "{}", r.excerpt("logout"));
    } else {
        assert_eq!(
            m.first(),
            Some(&"shutdown"),
            "the login page must shut the Messenger down first\n{}",
            r.excerpt("logout")
        );
        assert!(
            !m.contains(&"boot"),
            "nothing may boot on the logged-out page\n{}",
            r.excerpt("logout")
        );
        assert_eq!(lo["loads"], 1, "{}", r.excerpt("logout"));
    }
    for c in calls(lo) {
        let text = c.to_string();
        assert!(
            !text.contains(&alice_token) && !text.contains(ALICE.id),
            "alice's identity after logout\n{}",
            r.excerpt("logout")
        );
    }
    assert_ne!(
        cookie(lo, SESSION_COOKIE),
        Some(alice_session.as_str()),
        "alice's Intercom session cookie survived the logout\n{}",
        r.excerpt("logout")
    );

    // Across the whole sequence after alice's boot: a shutdown before bob's boot.
    let seen_on_logout =
        if interstitial && lo["timedOut"] == false { vec!["shutdown"] } else { methods(lo) };
    let after: Vec<&str> = seen_on_logout.into_iter().chain(methods(r.step("bob"))).collect();
    let shutdown_at = after.iter().position(|m| *m == "shutdown");
    let boot_at = after.iter().position(|m| *m == "boot");
    assert!(
        matches!((shutdown_at, boot_at), (Some(s), Some(b)) if s < b),
        "expected shutdown before bob's boot, got {after:?}\n{}\n{}",
        r.excerpt("logout"),
        r.excerpt("bob")
    );

    let (bob_token, _) =
        assert_secure_boot(&r, "bob", &BOB, &[ALICE.id, ALICE.email, ALICE.name, &alice_token]);
    assert_ne!(bob_token, alice_token);
    let b = r.step("bob");
    let text = serde_json::to_string(&b["calls"]).unwrap() + &b["intercomSettings"].to_string();
    assert!(!text.contains(&alice_token) && !text.contains(ALICE.id), "{}", r.excerpt("bob"));
    let bob_session = cookie(b, SESSION_COOKIE);
    assert!(bob_session.is_some(), "{}", r.excerpt("bob"));
    assert_ne!(
        bob_session,
        Some(alice_session.as_str()),
        "bob's Messenger reused alice's Intercom session\n{}",
        r.excerpt("bob")
    );
    assert!(
        cookie(b, "__isp_shutdown").is_none(),
        "the shutdown marker was never cleared\n{}",
        r.excerpt("bob")
    );
}

#[test]
fn logout_by_path_marker_mode() {
    // Cookie-expiry detection off: only the configured path can trigger the logout.
    logout_then_next_user(
        "logout:\n  paths: [\"GET /logout\"]\n  detect_cookie_expiry: false\n",
        "/logout",
        false,
    );
}

#[test]
fn logout_by_session_cookie_expiry_marker_mode() {
    // No logout paths: only the app expiring `sid` on /signout reveals the logout.
    logout_then_next_user("", "/signout", false);
}

#[test]
fn logout_with_auto_include() {
    // The logged-out page gets the script with both optional blocks (`src/page/min/
    // shutdown-auto.js`): it shuts down, and adds no loader for nobody.
    logout_then_next_user("inject:\n  auto_include: true\n", "/signout", false);
}

const INTERSTITIAL: &str =
    "logout:\n  mode: interstitial\n  paths: [\"GET /logout\", \"GET /logout-empty\"]\n";

#[test]
fn logout_interstitial_mode() {
    logout_then_next_user(INTERSTITIAL, "/logout", true);
    assert_interstitial_served("/logout");
}

// Regression: an app's logout redirect with no body (`Content-Length: 0`, as Django
// sends) leaves Pingora no body phase for the interstitial; configured logout paths are
// therefore answered by the proxy itself (see `answer_logout` in src/proxy.rs).
#[test]
fn logout_interstitial_mode_with_empty_redirect_body() {
    logout_then_next_user(INTERSTITIAL, "/logout-empty", true);
    assert_interstitial_served("/logout-empty");
}

/// The logout redirect really is answered with the interstitial in this mode.
fn assert_interstitial_served(path: &str) {
    let app = App::start();
    let proxy = start_proxy(&app, INTERSTITIAL);
    let sid = app.session_for(&ALICE);
    let got = support::get(
        &proxy.url(path),
        &[
            ("Cookie", &format!("sid={sid}")),
            ("Accept", "text/html"),
            ("Sec-Fetch-Mode", "navigate"),
            ("Sec-Fetch-Dest", "document"),
        ],
    );
    assert_eq!(got.status, 200, "{:?}", got.headers);
    let body = got.text();
    assert!(body.contains("location.replace") && body.contains("\"/login\""), "{body}");
}

#[test]
fn user_switch_without_logout_shuts_down_first() {
    let app = App::start();
    let proxy = start_proxy(&app, "");
    let r = drive(
        &proxy,
        vec![
            ("alice", step(proxy.url("/login?user=alice"), "boot")),
            ("bob", step(proxy.url("/login?user=bob"), "boot")),
        ],
    );
    let (alice_token, _) = assert_secure_boot(&r, "alice", &ALICE, &[]);
    let alice_session = cookie(r.step("alice"), SESSION_COOKIE).unwrap().to_string();
    let (bob_token, _) =
        assert_secure_boot(&r, "bob", &BOB, &[ALICE.id, ALICE.email, ALICE.name, &alice_token]);
    assert_ne!(alice_token, bob_token);
    let m = methods(r.step("bob"));
    let shutdown_at = m.iter().position(|x| *x == "shutdown");
    let boot_at = m.iter().position(|x| *x == "boot");
    assert!(
        matches!((shutdown_at, boot_at), (Some(s), Some(b)) if s < b),
        "expected shutdown before bob's boot on the same page, got {m:?}\n{}",
        r.excerpt("bob")
    );
    assert_ne!(
        cookie(r.step("bob"), SESSION_COOKIE),
        Some(alice_session.as_str()),
        "{}",
        r.excerpt("bob")
    );
}

// Regression: on a shutdown page the widget used to load at once, before late page
// code (end of body, behind a slow script) had set its settings, so the new user never
// booted. page.js now waits for the window `load` event, as the official loader does.
#[test]
fn user_switch_on_page_with_late_intercom_code_boots_new_user() {
    // Same as above, but the switch lands on a page whose settings and loader come at
    // the end of the body, after a slow vendor script (like the corpus page).
    let app = App::start();
    let proxy = start_proxy(&app, "");
    let mut bob = step(proxy.url("/login?user=bob&next=/shape/late"), "boot");
    bob["timeoutMs"] = json!(5000);
    let r = drive(
        &proxy,
        vec![
            ("alice", step(proxy.url("/login?user=alice&next=/shape/late"), "boot")),
            ("bob", bob),
        ],
    );
    let (alice_token, _) = assert_secure_boot(&r, "alice", &ALICE, &[]);
    let m = methods(r.step("bob"));
    let shutdown_at = m.iter().position(|x| *x == "shutdown");
    let boot_at = m.iter().position(|x| *x == "boot");
    assert!(
        matches!((shutdown_at, boot_at), (Some(s), Some(b)) if s < b),
        "expected shutdown, then bob's boot, on the same page; got {m:?}\n{}",
        r.excerpt("bob")
    );
    assert_secure_boot(&r, "bob", &BOB, &[ALICE.id, &alice_token]);
}

// ---------------------------------------------------------------------------
// C. Content-Security-Policy.

struct CspRun {
    run: Run,
    nonce: support::Got,
    header: support::Got,
    meta: support::Got,
    meta_first: support::Got,
}

static CSP: OnceLock<CspRun> = OnceLock::new();

fn csp() -> &'static CspRun {
    CSP.get_or_init(|| {
        let app = App::start();
        let proxy = start_proxy(&app, "");
        let u = |p: &str| proxy.url(p);
        let mut control = step(u("/csp/control"), "boot");
        control["settleMs"] = json!(300);
        let run = drive(
            &proxy,
            vec![
                ("login", step(u("/login?user=alice"), "boot")),
                ("nonce", step(u("/csp/nonce"), "boot")),
                ("header", step(u("/csp/header"), "boot")),
                ("meta", step(u("/csp/meta"), "boot")),
                ("meta-first", step(u("/csp/meta-first"), "boot")),
                ("control", control),
            ],
        );
        let sid = app.session_for(&ALICE);
        let cookie = format!("sid={sid}");
        let get =
            |p: &str| support::get(&proxy.url(p), &[("Cookie", &cookie), ("Accept", "text/html")]);
        CspRun {
            run,
            nonce: get("/csp/nonce"),
            header: get("/csp/header"),
            meta: get("/csp/meta"),
            meta_first: get("/csp/meta-first"),
        }
    })
}

/// The injected script element and the CSP hash of its content.
fn injected(body: &str) -> (String, String) {
    let at = body.find(support::our_script_marker()).expect("our script is in the page");
    let open = body[..at].rfind("<script").unwrap();
    let content_start = open + body[open..].find('>').unwrap() + 1;
    let end = at + body[at..].find("</script>").unwrap();
    let digest = Sha256::digest(&body.as_bytes()[content_start..end]);
    let hash = format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest));
    (body[open..content_start].to_string(), hash)
}

fn assert_no_violations(r: &Run, name: &str) {
    assert_eq!(r.step(name)["cspViolations"], json!([]), "CSP violations\n{}", r.excerpt(name));
}

#[test]
fn csp_nonce_policy() {
    let c = csp();
    assert_secure_boot(&c.run, "nonce", &ALICE, &[]);
    assert_no_violations(&c.run, "nonce");
    // The policy is left as it was; our script carries the page's nonce.
    assert_eq!(c.nonce.all("content-security-policy"), vec![NONCE_CSP]);
    let (open, _) = injected(&c.nonce.text());
    assert_eq!(open, "<script nonce=\"R4nd0m\">");
}

#[test]
fn csp_allowlist_header_is_amended_with_a_hash() {
    let c = csp();
    assert_secure_boot(&c.run, "header", &ALICE, &[]);
    assert_no_violations(&c.run, "header");
    let policies = c.header.all("content-security-policy");
    assert_eq!(policies.len(), 1, "{policies:?}");
    let p = policies[0];
    let (_, hash) = injected(&c.header.text());
    assert!(p.contains("'sha256-"), "{p}");
    assert!(p.contains(&hash), "the header does not allow exactly our script ({hash}): {p}");
    assert!(!p.to_ascii_lowercase().contains("unsafe-inline"), "policy loosened: {p}");
    for kept in
        ["script-src 'self' https://widget.intercom.io", "object-src 'none'", "base-uri 'self'"]
    {
        assert!(p.contains(kept), "{kept:?} lost: {p}");
    }
}

#[test]
fn csp_meta_policy_is_amended_with_a_hash() {
    let c = csp();
    // A policy after our script does not govern it: it is left exactly as it was.
    assert_secure_boot(&c.run, "meta", &ALICE, &[]);
    assert_no_violations(&c.run, "meta");
    let body = c.meta.text();
    let ours = body.find(support::our_script_marker()).expect("our script");
    let at = body.find("http-equiv=\"Content-Security-Policy\"").expect("meta policy kept");
    assert!(ours < at, "our script precedes the policy");
    assert!(body.contains(&format!("content=\"{META_CSP}\">")), "policy untouched");
    // A policy before our script is amended with exactly our script's hash.
    assert_secure_boot(&c.run, "meta-first", &ALICE, &[]);
    assert_no_violations(&c.run, "meta-first");
    let body = c.meta_first.text();
    let (_, hash) = injected(&body);
    let at = body.find("http-equiv=\"Content-Security-Policy\"").expect("meta policy kept");
    assert!(at < body.find(support::our_script_marker()).unwrap());
    let tag = &body[at..at + body[at..].find('>').unwrap()];
    assert!(tag.contains(&hash), "meta policy does not allow our script ({hash}): {tag}");
    assert!(tag.contains("script-src 'self' https://widget.intercom.io"), "{tag}");
    assert!(!tag.to_ascii_lowercase().contains("unsafe-inline"), "{tag}");
}

#[test]
fn csp_violations_are_observed_and_nothing_is_loosened() {
    // The page's own inline script is not ours: the amended policy must still block it.
    let c = csp();
    let s = c.run.step("control");
    let v = s["cspViolations"].as_array().cloned().unwrap_or_default();
    assert!(
        !v.is_empty(),
        "the page's own inline script ran under script-src 'self'\n{}",
        c.run.excerpt("control")
    );
    assert!(v.iter().all(|x| x["blocked"] == "inline"), "{}", c.run.excerpt("control"));
    // Our script (before app.js) still ran and the Messenger booted with the token.
    assert_secure_boot(&c.run, "control", &ALICE, &[]);
}
