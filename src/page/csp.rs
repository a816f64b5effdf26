//! Content-Security-Policy: letting the injected script run without weakening the page's
//! policy.
//!
//! For each enforced policy, the directive that governs inline `<script>` elements is
//! `script-src-elem`, else `script-src`, else `default-src`. A policy that uses nonces
//! gets our script carrying the page's nonce; one that restricts inline scripts without
//! nonces gets the `'sha256-…'` of exactly our script added to that directive. Nothing
//! is ever loosened (`'unsafe-inline'` is never added), and
//! `Content-Security-Policy-Report-Only` is left alone.

use std::sync::Arc;

use super::script::PageScript;

/// A parsed policy: directives in order, names lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    directives: Vec<(String, Vec<String>)>,
}

/// What one policy needs so our inline script may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Inline scripts are allowed (or not restricted).
    Nothing,
    /// The script must carry this nonce.
    Nonce(String),
    /// The script's hash must be added to the directive at this index.
    Hash(usize),
}

impl Policy {
    /// Parses one serialized policy (`a b; c d`).
    pub fn parse(text: &str) -> Policy {
        let directives = text
            .split(';')
            .filter_map(|d| {
                let mut tokens = d.split_ascii_whitespace();
                let name = tokens.next()?.to_ascii_lowercase();
                Some((name, tokens.map(str::to_string).collect()))
            })
            .collect();
        Policy { directives }
    }

    /// Index of the directive governing inline script elements, if any.
    fn governing(&self) -> Option<usize> {
        ["script-src-elem", "script-src", "default-src"]
            .iter()
            .find_map(|want| self.directives.iter().position(|(n, _)| n == want))
    }

    /// What this policy needs for our inline script.
    pub fn need(&self) -> Need {
        let Some(i) = self.governing() else {
            return Need::Nothing;
        };
        let sources = &self.directives[i].1;
        let lower: Vec<String> = sources.iter().map(|s| s.to_ascii_lowercase()).collect();
        if let Some(n) = sources.iter().find_map(|s| nonce_of(s)) {
            return Need::Nonce(n.to_string());
        }
        let has_hash = lower.iter().any(|s| s.starts_with("'sha"));
        let strict_dynamic = lower.iter().any(|s| s == "'strict-dynamic'");
        // 'unsafe-inline' counts only without hashes, nonces or 'strict-dynamic'.
        if lower.iter().any(|s| s == "'unsafe-inline'") && !has_hash && !strict_dynamic {
            return Need::Nothing;
        }
        Need::Hash(i)
    }

    /// Adds `hash` to the directive at `index` (dropping a now-wrong `'none'`).
    pub fn add_source(&mut self, index: usize, hash: &str) {
        if let Some((_, sources)) = self.directives.get_mut(index) {
            sources.retain(|s| !s.eq_ignore_ascii_case("'none'"));
            if !sources.iter().any(|s| s == hash) {
                sources.push(hash.to_string());
            }
        }
    }

    /// Serializes the policy back.
    pub fn serialize(&self) -> String {
        let mut out = String::new();
        for (n, (name, sources)) in self.directives.iter().enumerate() {
            if n > 0 {
                out.push_str("; ");
            }
            out.push_str(name);
            for s in sources {
                out.push(' ');
                out.push_str(s);
            }
        }
        out
    }
}

/// The nonce value of a `'nonce-…'` source expression.
fn nonce_of(source: &str) -> Option<&str> {
    let inner = source.strip_prefix('\'')?.strip_suffix('\'')?;
    let (kind, value) = inner.split_once('-')?;
    (kind.eq_ignore_ascii_case("nonce") && super::script::is_nonce(value)).then_some(value)
}

/// The plan for a response's `Content-Security-Policy` headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderPlan {
    /// The nonce our script must carry.
    pub nonce: Option<String>,
    /// Whether a header must be amended with our script's hash.
    pub needs_hash: bool,
}

/// The enforced `Content-Security-Policy` header values of a response.
pub fn policies(resp: &pingora::http::ResponseHeader) -> Vec<String> {
    resp.headers
        .get_all(http::header::CONTENT_SECURITY_POLICY)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect()
}

/// Reads the enforced CSP header values of a response.
pub fn plan(header_values: &[String]) -> HeaderPlan {
    let mut plan = HeaderPlan::default();
    for policy in header_values.iter().flat_map(|v| v.split(',')).map(Policy::parse) {
        match policy.need() {
            Need::Nothing => {}
            Need::Nonce(n) if plan.nonce.is_none() => plan.nonce = Some(n),
            Need::Nonce(n) if plan.nonce.as_deref() == Some(n.as_str()) => {}
            // A second policy with another nonce: our single nonce cannot satisfy it.
            Need::Nonce(_) | Need::Hash(_) => plan.needs_hash = true,
        }
    }
    plan
}

/// Adds `hash` to every policy in the header values that our script does not already
/// satisfy with `nonce`. Returns the new header values.
pub fn amend(header_values: &[String], nonce: Option<&str>, hash: &str) -> Vec<String> {
    header_values
        .iter()
        .map(|value| {
            value
                .split(',')
                .map(|text| {
                    let mut policy = Policy::parse(text);
                    match policy.need() {
                        Need::Nonce(n) if Some(n.as_str()) == nonce => text.trim().to_string(),
                        Need::Nothing => text.trim().to_string(),
                        Need::Nonce(_) => {
                            let i = policy.governing().expect("a nonce has a directive");
                            policy.add_source(i, hash);
                            policy.serialize()
                        }
                        Need::Hash(i) => {
                            policy.add_source(i, hash);
                            policy.serialize()
                        }
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect()
}

/// How a `<meta http-equiv=Content-Security-Policy>` before the insertion point is met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaVerdict {
    /// It does not restrict our script.
    Allows,
    /// Our script must carry this nonce.
    Nonce(String),
    /// Replace the meta's content with this (our hash added).
    Amend(String),
    /// We cannot run without weakening it; the reason is logged.
    Refuse(String),
}

/// What the rewriter knows about our script when it meets a `<meta>` CSP.
#[derive(Debug, Clone)]
pub struct MetaCsp {
    /// The nonce our script already carries (from the header policy).
    pub nonce: Option<String>,
    /// Our script (hashed only if a meta policy needs it: that is rare).
    pub script: Arc<PageScript>,
}

impl MetaCsp {
    /// Judges one meta policy.
    pub fn judge(&self, content: &str) -> MetaVerdict {
        if content.contains(',') || !content.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return MetaVerdict::Refuse(format!(
                "{content:?} is not a single plain policy we can safely amend"
            ));
        }
        let mut policy = Policy::parse(content);
        match policy.need() {
            Need::Nothing => MetaVerdict::Allows,
            Need::Nonce(n) if self.nonce.is_none() || self.nonce.as_deref() == Some(n.as_str()) => {
                MetaVerdict::Nonce(n)
            }
            Need::Nonce(_) | Need::Hash(_) => {
                let i = policy.governing().expect("a restriction has a directive");
                policy.add_source(i, &self.script.csp_hash());
                MetaVerdict::Amend(policy.serialize())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        vec![s.to_string()]
    }

    #[test]
    fn nonce_policies_reuse_the_nonce() {
        let p = plan(&v("default-src 'self'; script-src 'nonce-abc123' 'strict-dynamic' https:; object-src 'none'"));
        assert_eq!(p, HeaderPlan { nonce: Some("abc123".into()), needs_hash: false });
    }

    #[test]
    fn hash_is_added_to_the_governing_directive() {
        let h = "'sha256-AAAA'";
        let out = amend(&v("default-src 'self'; img-src *"), None, h);
        assert_eq!(out, v("default-src 'self' 'sha256-AAAA'; img-src *"));
        let out = amend(&v("script-src 'self' 'sha256-x='; style-src 'self'"), None, h);
        assert_eq!(out, v("script-src 'self' 'sha256-x=' 'sha256-AAAA'; style-src 'self'"));
        let out = amend(&v("script-src 'none'"), None, h);
        assert_eq!(out, v("script-src 'sha256-AAAA'"));
        let out = amend(&v("script-src-elem 'self'; script-src 'self'"), None, h);
        assert_eq!(out, v("script-src-elem 'self' 'sha256-AAAA'; script-src 'self'"));
    }

    #[test]
    fn permissive_policies_are_untouched() {
        assert_eq!(plan(&v("img-src 'self'")), HeaderPlan::default());
        assert_eq!(plan(&v("script-src 'self' 'unsafe-inline'")), HeaderPlan::default());
        // unsafe-inline is ignored next to a hash, so a hash is needed.
        assert!(plan(&v("script-src 'unsafe-inline' 'sha256-x='")).needs_hash);
    }

    #[test]
    fn several_policies_each_get_what_they_need() {
        let values = vec![
            "script-src 'nonce-one'".to_string(),
            "default-src 'self', script-src 'nonce-two'".to_string(),
        ];
        let p = plan(&values);
        assert_eq!(p.nonce.as_deref(), Some("one"));
        assert!(p.needs_hash);
        let out = amend(&values, Some("one"), "'sha256-H'");
        assert_eq!(out[0], "script-src 'nonce-one'");
        assert_eq!(out[1], "default-src 'self' 'sha256-H', script-src 'nonce-two' 'sha256-H'");
    }

    #[test]
    fn meta_policies() {
        let script =
            crate::page::script::ScriptTemplate::new(&crate::page::script::ScriptSettings {
                app_id: "a",
                api_base: "https://api-iam.intercom.io",
                auto_include: false,
                cookie_domain: None,
                mode: Default::default(),
                refresh: None,
            })
            .render(
                &crate::page::Plan {
                    token: Some("t.o.k".into()),
                    shutdown: false,
                    plain: None,
                    failure: None,
                },
                None,
            );
        let hash = script.csp_hash();
        let m = MetaCsp { nonce: None, script: Arc::new(script) };
        assert_eq!(m.judge("script-src 'nonce-n1'"), MetaVerdict::Nonce("n1".into()));
        assert_eq!(
            m.judge("script-src 'self'"),
            MetaVerdict::Amend(format!("script-src 'self' {hash}"))
        );
        assert_eq!(m.judge("img-src *"), MetaVerdict::Allows);
        assert!(matches!(m.judge("script-src 'self', img-src *"), MetaVerdict::Refuse(_)));
    }

    #[test]
    fn real_world_policies() {
        // A strict CSP as Google recommends it: nonce + strict-dynamic, with fallbacks
        // for old browsers that must not make it look permissive.
        let strict = "object-src 'none'; script-src 'nonce-r4nd0m' 'unsafe-inline' 'unsafe-eval' 'strict-dynamic' https: http:; base-uri 'none'; report-uri https://csp.example.com";
        assert_eq!(
            plan(&v(strict)),
            HeaderPlan { nonce: Some("r4nd0m".into()), needs_hash: false }
        );
        // An allowlist policy of a large site, with script-src-elem absent.
        let allowlist = "default-src 'none'; base-uri 'self'; connect-src 'self' uploads.example.com; img-src 'self' data: https:; script-src github.githubassets.com; style-src 'unsafe-inline' github.githubassets.com; upgrade-insecure-requests";
        let out = amend(&v(allowlist), None, "'sha256-Q'");
        assert!(out[0].contains("script-src github.githubassets.com 'sha256-Q';"), "{}", out[0]);
        assert!(
            out[0].contains("style-src 'unsafe-inline' github.githubassets.com"),
            "other directives untouched"
        );
        assert!(out[0].starts_with("default-src 'none'; base-uri 'self';"));
        // Hash-based strict-dynamic: 'unsafe-inline' is ignored, so a hash is needed.
        let hashed =
            "script-src 'strict-dynamic' 'sha256-abc=' 'unsafe-inline' https:; object-src 'none'";
        assert!(plan(&v(hashed)).needs_hash);
        // strict-dynamic alone still blocks inline scripts.
        assert!(plan(&v("script-src 'strict-dynamic'")).needs_hash);
        // Directive names are case-insensitive; a frame-only policy does not concern us.
        assert_eq!(plan(&v("SCRIPT-SRC 'NONCE-Abc'")).nonce.as_deref(), Some("Abc"));
        assert_eq!(plan(&v("frame-ancestors 'none'")), HeaderPlan::default());
        // An empty or whitespace-only policy header restricts nothing.
        assert_eq!(plan(&v(" ; ")), HeaderPlan::default());
    }
}
