//! The configuration `init` writes: commented YAML in which every decision says why,
//! secrets only as the names of the variables that hold them.

use url::Url;

use super::answer::Answer;
use super::candidate::Candidate;
use super::logout::Logout;
use super::options::Plan;

/// The secret variable of the configurations `init` loads for its own checks.
pub(crate) const PROBE_SECRET_ENV: &str = "ISP_INIT_PROBE_SECRET";

/// A string as a YAML double-quoted scalar (JSON's string syntax is YAML's).
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// The `upstream:` section for the app's origin.
fn upstream(origin: &Url) -> String {
    let host = match origin.host() {
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        _ => origin.host_str().unwrap_or_default().to_string(),
    };
    let port = origin.port_or_known_default().unwrap_or(80);
    let mut out = format!("upstream:\n  addresses: [{}]\n", quote(&format!("{host}:{port}")));
    if origin.scheme() == "https" {
        out.push_str(&format!(
            "  # the app is reached over https\n  tls: true\n  sni: {}\n",
            quote(origin.host_str().unwrap_or_default())
        ));
    }
    out
}

/// A source for configurations that need one but use none (a header nobody sends).
const NO_SOURCE: &str = "    - {type: trusted_header, trusted_cidrs: [\"127.0.0.1/32\"], headers: {user_id: X-Isp-Init-Unused}}\n";

/// A configuration with this one source (or an unused one when empty), for `init`'s
/// own checks.
pub(crate) fn probe_config(origin: &Url, source: &str) -> String {
    let source = if source.is_empty() { NO_SOURCE } else { source };
    format!("listen: [\"127.0.0.1:1\"]\n{}intercom: {{app_id: probe, secret_env: {PROBE_SECRET_ENV}}}\nidentity:\n  sources:\n{source}", upstream(origin))
}

/// The `intercom.api_base` for the boot's `api_base`: a region name when it is one.
fn api_base(seen: Option<&str>) -> Option<String> {
    let seen = seen?.trim_end_matches('/');
    Some(match seen {
        "https://api-iam.intercom.io" => "us".into(),
        "https://api-iam.eu.intercom.io" => "eu".into(),
        "https://api-iam.au.intercom.io" => "au".into(),
        other => other.to_string(),
    })
}

/// The written configuration.
#[derive(Debug, Clone)]
pub struct Written {
    /// The YAML.
    pub text: String,
    /// The YAML around what the verification's copy changes: before the listen
    /// address, from it to the Messenger secret's key, and after that key's value.
    parts: [String; 3],
}

impl Written {
    /// The configuration for the app of `plan` with the accepted `source`.
    pub(crate) fn new(
        plan: &Plan,
        answer: &Answer,
        source: &Candidate,
        logout: Option<&Logout>,
    ) -> Written {
        let options = &plan.options;
        let port = if plan.origin.port_or_known_default() == Some(8080) { 8081 } else { 8080 };
        let listen = format!("127.0.0.1:{port}");
        let mut t = String::new();
        t.push_str(
            "# intercom-secure-proxy configuration, written by `intercom-secure-proxy init`.\n",
        );
        t.push_str(&format!(
            "# Learned from {}{}, where the Messenger booted user_id {} ({}).\n",
            plan.origin.as_str().trim_end_matches('/'),
            answer.page,
            quote(&answer.user_id),
            answer.today.as_str()
        ));
        t.push_str(&format!("# Check it: {}=... intercom-secure-proxy check -c FILE; run it: intercom-secure-proxy run -c FILE\n", options.secret_env));
        t.push_str("# Keys not written here have their defaults (see conf/intercom-secure-proxy.yaml in the project).\n\n");
        t.push_str("# Where browsers reach the proxy: change it to the address your users reach.\nlisten: [");
        let before_listen = std::mem::take(&mut t);
        t.push_str("]\n\n# The app init learned from.\n");
        t.push_str(&upstream(&plan.origin));
        t.push_str("\nintercom:\n");
        match (&options.app_id, &answer.app_id) {
            (Some(id), _) => t.push_str(&format!("  # given with --app-id\n  app_id: {}\n", quote(id))),
            (None, Some(id)) => t.push_str(&format!("  # the page's Messenger booted with this app_id\n  app_id: {}\n", quote(id))),
            (None, None) => t.push_str("  # the page booted without an app_id: set yours (Settings > Installation)\n  app_id: CHANGE_ME\n"),
        }
        if let Some(base) = api_base(answer.api_base.as_deref()) {
            t.push_str(&format!("  # the page's api_base\n  api_base: {}\n", quote(&base)));
        }
        t.push_str("  # the Messenger secret (Settings > Messenger > Security) is read from this variable, never from this file\n  ");
        let before_secret = std::mem::take(&mut t);
        t.push('\n');
        t.push_str(&format!(
            "  # signed into the token besides user_id: what the source maps\n  claims: [{}]\n",
            source.claims.join(", ")
        ));
        t.push_str(&format!("\nidentity:\n  sources:\n    # {}\n", source.why));
        t.push_str(&source.yaml);
        t.push_str("\nlogout:\n");
        match logout {
            Some(l) => t.push_str(&format!("  # {}\n  paths: [{}]\n", l.why, quote(&l.path_rule()))),
            None => t.push_str("  # no log-out link or form was found on the pages: a response that expires the session cookie is the logout\n  paths: []\n"),
        }
        t.push_str("  detect_cookie_expiry: true\n");
        t.push_str("\n# To watch first what the proxy would do, then widen: see \"Rolling it out\" in the README.\n# rollout: {mode: report_only, percent: 100}\n");
        let parts = [before_listen, before_secret, t];
        let text = render(&parts, &quote(&listen), &format!("secret_env: {}", options.secret_env));
        Written { text, parts }
    }

    /// This configuration listening on `listen` instead, with `secret` (a key and its
    /// value, such as `secret_file: "/path"`) naming the Messenger secret, and `more`
    /// YAML at the end: built from the same parts as [`Written::text`], so it differs
    /// from it in nothing else.
    pub(crate) fn with(&self, listen: &str, secret: &str, more: &str) -> String {
        render(&self.parts, &quote(listen), secret) + more
    }
}

/// The YAML of `parts` with the quoted `listen` address and the `secret` key and value.
fn render(parts: &[String; 3], listen: &str, secret: &str) -> String {
    let [before_listen, before_secret, rest] = parts;
    format!("{before_listen}{listen}{before_secret}{secret}{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_named_and_other_hosts_kept() {
        assert_eq!(api_base(Some("https://api-iam.eu.intercom.io")).as_deref(), Some("eu"));
        assert_eq!(api_base(Some("https://api-iam.intercom.io/")).as_deref(), Some("us"));
        assert_eq!(
            api_base(Some("https://x.intercom-messenger.com")).as_deref(),
            Some("https://x.intercom-messenger.com")
        );
        assert_eq!(api_base(None), None);
    }

    #[test]
    fn quoted_strings_are_yaml() {
        let q = quote("a\"b\\c: #d");
        let back: String = yaml_serde::from_str(&q).unwrap();
        assert_eq!(back, "a\"b\\c: #d");
    }
}
