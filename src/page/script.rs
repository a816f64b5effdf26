//! The inline script put at the top of rewritten pages.
//!
//! Rather than parse every page to its end looking for Intercom code, the proxy puts one
//! small script before the page's first script. It runs before any page code and makes
//! whatever the page does safe: `window.intercomSettings` (set before or after the
//! loader, reassigned later) and `Intercom('boot'|'update', …)` calls (inline or from a
//! bundle) get the signed `intercom_user_jwt`, lose plain `user_id`/`email`/`user_hash`
//! and the signed fields. With auto-include on it adds the official loader once the
//! page's own scripts have run, if they brought none. After a logout it runs
//! `Intercom('shutdown')` before anything can boot. See `page.js` for the code.
//!
//! Pages get `page.js` minified by terser (`make page-js`; a test fails when they drift
//! apart). Every byte of it goes into every rewritten page, and is copied, sent and
//! parsed each time, so a page gets the script without the blocks that cannot run
//! there: the shutdown block only on a page that shuts down first, the auto-include
//! block only with `inject.auto_include` (`src/page/min/`, four files). Everything
//! static is rendered once at start-up; per response only the token, the plain
//! settings and the CSP nonce are spliced in.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use base64::Engine as _;

use super::Plan;
use crate::config::{MessengerMode, OnIdentityFailure};
use crate::script_json::to_script_json;

/// The page script minified, by the optional blocks it keeps, `[shutdown][auto_include]`:
/// one function expression, called with `(window, c)`.
const PAGE_JS: [[&str; 2]; 2] = [
    [include_str!("min/live.js"), include_str!("min/live-auto.js")],
    [include_str!("min/shutdown.js"), include_str!("min/shutdown-auto.js")],
];

/// The observer report-only pages get instead (`src/page/observer.js` minified): one
/// function expression, called with `(window, c)`.
const OBSERVER_JS: &str = include_str!("min/observer.js");

/// The Messenger settings that identify a user when given in clear: what the rollout
/// report's observer sends back and what `audit` calls insecure, so the two agree.
pub const IDENTIFYING_FIELDS: [&str; 2] = ["user_id", "email"];

/// The observer script of report-only pages (`rollout.mode: report_only`), rendered
/// once per site: the same bytes on every page, with no user data, so a page with it
/// stays cacheable as the app made it.
#[derive(Debug, Clone)]
pub(crate) struct ObserverScript {
    /// The script's code and its call.
    content: String,
}

impl ObserverScript {
    /// The observer that reports to `report_path`.
    pub(crate) fn new(report_path: &str) -> Self {
        let params = to_script_json(&json!({"p": report_path, "s": IDENTIFYING_FIELDS}));
        ObserverScript { content: format!("{OBSERVER_JS}(window,{params});") }
    }

    /// The script element, with `nonce` (a page's CSP nonce) and `pad` spaces at the
    /// end of its start tag.
    pub(crate) fn render_padded(&self, nonce: Option<&str>, pad: usize) -> PageScript {
        let mut html = String::with_capacity(self.content.len() + 96 + pad);
        open_tag(&mut html, nonce, pad);
        let start = html.len();
        html.push_str(&self.content);
        let end = html.len();
        html.push_str("</script>");
        PageScript { html, content: start..end }
    }
}

/// `<script nonce="…"   >`: the start tag of a script we place, with the page's nonce
/// when it is safe to copy and `pad` spaces.
fn open_tag(html: &mut String, nonce: Option<&str>, pad: usize) {
    html.push_str("<script");
    if let Some(n) = nonce.filter(|n| is_nonce(n)) {
        html.push_str(" nonce=\"");
        html.push_str(n);
        html.push('"');
    }
    push_spaces(html, pad);
    html.push('>');
}

/// Static parts of the script, rendered once per configuration.
#[derive(Debug, Clone)]
pub struct ScriptTemplate {
    /// JS and static parameters, up to the token value, for a page that shuts down.
    shutdown_head: String,
    /// The same for every other page, without the shutdown block.
    live_head: String,
}

/// Per-workspace facts the script needs.
pub struct ScriptSettings<'a> {
    /// The workspace id.
    pub app_id: &'a str,
    /// The regional Messenger API base.
    pub api_base: &'a str,
    /// Add the loader to pages without Intercom code.
    pub auto_include: bool,
    /// Domain Intercom's cookies are set on, when not host-only.
    pub cookie_domain: Option<&'a str>,
    /// How pages identify the user: with `user_hash` alone nothing is signed, so only
    /// the identifying fields are replaced, not removed.
    pub mode: MessengerMode,
    /// Where and when open pages fetch a fresh token (JWT modes only).
    pub refresh: Option<TokenRefresh<'a>>,
}

/// How the page script keeps its token fresh.
#[derive(Debug, Clone, Copy)]
pub struct TokenRefresh<'a> {
    /// The proxy's refresh path (`inject.token_refresh_path`).
    pub path: &'a str,
    /// Fetch this long before the token expires (`intercom.token_refresh_margin`).
    pub margin: std::time::Duration,
}

/// One rendered script for one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageScript {
    html: String,
    content: std::ops::Range<usize>,
}

impl PageScript {
    /// The whole `<script …>…</script>` element.
    pub fn html(&self) -> &str {
        &self.html
    }

    /// The CSP source expression allowing exactly this script, `'sha256-…'`.
    pub fn csp_hash(&self) -> String {
        let digest = Sha256::digest(self.html[self.content.clone()].as_bytes());
        format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest))
    }
}

impl ScriptTemplate {
    /// Renders the static part.
    pub fn new(s: &ScriptSettings<'_>) -> Self {
        // Fields always stripped: the ones Intercom identifies a user by (in the user_hash
        // modes the proxy puts its own values back). The script also strips whatever
        // claim the token it holds carries, read from the token itself: a claim no
        // source could fill is not in the token, and the page keeps its plain value.
        let strip = ["user_id", "email", "user_hash"];
        let auto = usize::from(s.auto_include);
        ScriptTemplate {
            shutdown_head: head(PAGE_JS[1][auto], &params(s, &strip, true)),
            live_head: head(PAGE_JS[0][auto], &params(s, &strip, false)),
        }
    }

    /// Renders the script for one response. The token must come from the signer (it is
    /// base64url and dots, so it needs no escaping), the plain settings from
    /// [`UserHasher::plain_settings`](crate::UserHasher::plain_settings) (script-safe
    /// JSON); `nonce` is the page's CSP nonce.
    pub fn render(&self, plan: &Plan, nonce: Option<&str>) -> PageScript {
        self.render_padded(plan, nonce, 0)
    }

    /// [`render`](Self::render) with `pad` spaces at the end of the start tag.
    pub fn render_padded(&self, plan: &Plan, nonce: Option<&str>, pad: usize) -> PageScript {
        let token = plan.token.as_deref();
        let plain = plan.plain.as_deref();
        let extra = token.map_or(4, str::len) + plain.map_or(4, str::len) + 6;
        let head = if plan.shutdown { &self.shutdown_head } else { &self.live_head };
        let mut html = String::with_capacity(head.len() + 96 + extra + pad);
        open_tag(&mut html, nonce, pad);
        let start = html.len();
        html.push_str(head);
        match token.filter(|t| is_token(t)) {
            Some(t) => {
                html.push('"');
                html.push_str(t);
                html.push('"');
            }
            None => html.push_str("null"),
        }
        html.push_str(",\"h\":");
        html.push_str(plain.filter(|p| is_script_safe_object(p)).unwrap_or("null"));
        html.push_str(match plan.failure {
            Some(OnIdentityFailure::Defer) => ",\"d\":1});",
            Some(OnIdentityFailure::Strip) => ",\"d\":2});",
            Some(OnIdentityFailure::Pass) | None => "});",
        });
        let end = html.len();
        html.push_str("</script>");
        PageScript { html, content: start..end }
    }
}

/// The script's code and call up to the token value, `js(window,{…,"j":`: the object is
/// left open so the per-response values can follow.
fn head(js: &str, params: &Value) -> String {
    let params = to_script_json(params);
    let open = &params[..params.len() - 1];
    format!("{js}(window,{open},\"j\":")
}

/// The static parameters a script reads: only what its blocks use, since every byte goes
/// into every page. The loader's URL is for the shutdown and auto-include blocks; the
/// cookie names and domain for the shutdown block.
fn params(s: &ScriptSettings<'_>, strip: &[&str], shutdown: bool) -> Value {
    let refresh = s.refresh;
    let mut p = json!({
        "a": s.app_id,
        "b": s.api_base,
        "s": strip,
        "r": refresh.map(|r| r.path),
        "g": refresh.map_or(0, |r| r.margin.as_secs()),
    });
    if shutdown || s.auto_include {
        p["l"] = json!(format!("https://widget.intercom.io/widget/{}", s.app_id));
    }
    if shutdown {
        p["k"] = json!(s.cookie_domain);
        p["n"] = json!(crate::intercom_cookies::INTERCOM_COOKIES);
    }
    p
}

/// Appends `n` spaces (a slice at a time, not a char at a time).
pub(crate) fn push_spaces(out: &mut String, mut n: usize) {
    const SPACES: &str = "                                                                ";
    while n > 0 {
        let k = n.min(SPACES.len());
        out.push_str(&SPACES[..k]);
        n -= k;
    }
}

/// A JSON object as [`to_script_json`] writes it: nothing in it can end the script.
fn is_script_safe_object(json: &str) -> bool {
    json.starts_with('{')
        && json.ends_with('}')
        && json.is_ascii()
        && !json.contains(['<', '>', '&'])
}

/// Whether `t` has only a JWT's characters (base64url and dots), so it needs no
/// escaping in the script. Every byte is checked, with no early exit: the loop is then
/// vectorised, several times faster on a token of 300 bytes, and a page's token passes.
fn is_token(t: &str) -> bool {
    t.bytes().fold(true, |ok, b| {
        ok & (b.is_ascii_alphanumeric() | (b == b'-') | (b == b'_') | (b == b'.'))
    })
}

/// Whether a CSP nonce is safe to copy into an attribute (base64 / base64url characters).
pub fn is_nonce(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 256
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=_-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ScriptSettings<'static> {
        ScriptSettings {
            app_id: "abc123",
            api_base: "https://api-iam.intercom.io",
            auto_include: false,
            cookie_domain: None,
            mode: Default::default(),
            refresh: None,
        }
    }

    fn template() -> ScriptTemplate {
        ScriptTemplate::new(&settings())
    }

    fn plan(token: Option<&str>, shutdown: bool) -> Plan {
        Plan { token: token.map(Into::into), shutdown, plain: None, failure: None }
    }

    #[test]
    fn the_served_scripts_are_one_ascii_expression_that_cannot_end_its_element() {
        for js in PAGE_JS.iter().flatten() {
            assert!(js.is_ascii());
            assert!(js.starts_with("(function(") && js.ends_with("})"), "{js}");
            let lower = js.to_ascii_lowercase();
            for bad in ["</script", "<script", "<!--"] {
                assert!(!lower.contains(bad), "{bad}");
            }
        }
    }

    #[test]
    fn a_page_gets_only_the_blocks_and_parameters_that_can_run_there() {
        // The shutdown block clears Intercom's storage; the auto-include block looks for
        // the page's own loader: each one's code is in its scripts only.
        let storage = "/^intercom/.test(";
        let loader = "script[src*=\"widget.intercom.io\"]";
        for auto in [false, true] {
            let t = ScriptTemplate::new(&ScriptSettings { auto_include: auto, ..settings() });
            let shutdown = t.render(&plan(Some("a.b.c"), true), None);
            let live = t.render(&plan(Some("a.b.c"), false), None);
            assert!(shutdown.html().contains(PAGE_JS[1][usize::from(auto)]));
            assert!(live.html().contains(PAGE_JS[0][usize::from(auto)]));
            assert!(shutdown.html().contains(storage) && !live.html().contains(storage));
            assert!(
                shutdown.html().contains("\"n\":[\"intercom-session-\"")
                    && !live.html().contains("\"n\":")
            );
            for page in [&shutdown, &live] {
                assert_eq!(page.html().contains(loader), auto, "{auto}");
            }
            // The loader's URL, for the shutdown and auto-include blocks only.
            assert!(shutdown.html().contains("\"l\":\"https://widget.intercom.io/widget/abc123\""));
            assert_eq!(live.html().contains("\"l\":"), auto);
            assert!(live.html().len() + 500 < shutdown.html().len());
        }
        let none = template().render(&plan(Some("a.b.c"), false), None);
        let auto = ScriptTemplate::new(&ScriptSettings { auto_include: true, ..settings() })
            .render(&plan(Some("a.b.c"), false), None);
        assert!(none.html().len() + 700 < auto.html().len());
    }

    #[test]
    fn the_observer_is_one_script_with_no_user_data_and_its_own_hash() {
        let observer = ObserverScript::new("/__isp/report");
        let plain = observer.render_padded(Some("n0nce"), 0);
        assert!(plain.html().starts_with("<script nonce=\"n0nce\">(function("));
        assert!(plain.html().ends_with(
            "(window,{\"p\":\"/__isp/report\",\"s\":[\"user_id\",\"email\"]});</script>"
        ));
        assert_eq!(plain.html().matches("</script>").count(), 1);
        let padded = observer.render_padded(Some("n0nce"), 10);
        assert_eq!(padded.html().len(), plain.html().len() + 10);
        assert_eq!(padded.csp_hash(), plain.csp_hash());
        assert_ne!(plain.csp_hash(), template().render(&plan(None, false), None).csp_hash());
        let lower = OBSERVER_JS.to_ascii_lowercase();
        assert!(OBSERVER_JS.is_ascii() && !lower.contains("</script") && !lower.contains("<!--"));
    }

    #[test]
    fn render_is_one_script_with_hash_of_its_content() {
        let t = template();
        let p = t.render(&plan(Some("a.b.c"), false), Some("abc+/="));
        assert!(p.html().starts_with("<script nonce=\"abc+/=\">"));
        assert!(p.html().ends_with("});</script>"));
        assert!(p.html().contains("\"j\":\"a.b.c\",\"h\":null});</script>"));
        assert_eq!(p.html().matches("</script>").count(), 1);
        assert!(p.csp_hash().starts_with("'sha256-"));
    }

    #[test]
    fn padding_goes_in_the_start_tag_and_leaves_the_hash_alone() {
        let t = template();
        let plain = t.render(&plan(Some("a.b.c"), false), Some("abc"));
        for pad in [0, 1, 64, 200] {
            let padded = t.render_padded(&plan(Some("a.b.c"), false), Some("abc"), pad);
            assert_eq!(padded.html().len(), plain.html().len() + pad);
            assert!(padded
                .html()
                .starts_with(&format!("<script nonce=\"abc\"{}>(function", " ".repeat(pad))));
            assert_eq!(padded.csp_hash(), plain.csp_hash());
        }
    }

    #[test]
    fn hostile_nonce_and_token_are_dropped() {
        let t = template();
        let p = t.render(&plan(Some("x\"><script>"), true), Some("a\" onload=\"x"));
        assert!(p.html().starts_with("<script>"));
        assert!(p.html().contains("\"j\":null,\"h\":null});</script>"));
    }

    #[test]
    fn a_token_passes_only_with_jwt_characters_in_every_position() {
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoiNDIifQ.c2ln-_AZaz09";
        assert!(is_token(token));
        for byte in 0..=u8::MAX {
            let allowed = byte.is_ascii_alphanumeric() || b"-_.".contains(&byte);
            for at in [0, token.len() / 2, token.len() - 1] {
                let mut bytes = token.as_bytes().to_vec();
                bytes[at] = byte;
                // Bytes above 0x7f are not UTF-8 alone: checked as the start of a pair.
                let text = String::from_utf8(bytes).unwrap_or_else(|e| {
                    let mut b = e.into_bytes();
                    b.splice(at..=at, char::from_u32(u32::from(byte)).unwrap().to_string().bytes());
                    String::from_utf8(b).unwrap()
                });
                assert_eq!(is_token(&text), allowed, "byte {byte:#04x} at {at}");
            }
        }
    }
}
