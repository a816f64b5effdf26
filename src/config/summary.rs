//! What `check` prints: the summary and the warnings about risky settings.

use super::*;

impl Config {
    /// Settings that are valid but risky, one sentence each naming the key and the fix;
    /// `check` prints them and `run` logs them at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (prefix, site) in self.site_prefixes() {
            site.warnings(&prefix, &mut out);
        }
        out
    }

    /// Each site with the prefix its keys have in the file (`sites[n].`, or nothing).
    fn site_prefixes(&self) -> impl Iterator<Item = (String, &SiteConfig)> {
        let many = self.sites.len() > 1 || self.sites.iter().any(|s| s.hosts != [HostPattern::Any]);
        self.sites
            .iter()
            .enumerate()
            .map(move |(n, s)| (if many { format!("sites[{n}].") } else { String::new() }, s))
    }

    /// A human summary for `check`; never includes the secret.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let list = |v: &[String]| if v.is_empty() { "-".to_string() } else { v.join(", ") };
        let listen: Vec<String> = self.listen.iter().map(|l| l.to_string()).collect();
        let _ = writeln!(out, "listen:    {}", list(&listen));
        let _ = writeln!(
            out,
            "server:    {} thread(s){}, grace period {}",
            self.server.threads,
            if self.server.work_stealing { " sharing work" } else { "" },
            humantime::format_duration(self.server.grace_period)
        );
        if let Some(addr) = self.admin.listen {
            let put = match &self.admin.token_source {
                Some(SecretSource::Env(name)) => {
                    format!("PUT /rollout with the token from env {name}")
                }
                Some(SecretSource::File(path)) => {
                    format!("PUT /rollout with the token from file {}", path.display())
                }
                Some(SecretSource::Inline) => "PUT /rollout with the token set in code".to_string(),
                None => "no token: PUT /rollout refused".to_string(),
            };
            let _ = writeln!(out, "admin:     {addr} (metrics, health, rollout; {put})");
        }
        for (prefix, site) in self.site_prefixes() {
            if !prefix.is_empty() {
                let hosts: Vec<String> = site.hosts.iter().map(|h| h.to_string()).collect();
                let name = site
                    .name
                    .as_deref()
                    .map(|n| format!(" (name {n}: /rollout/{n})"))
                    .unwrap_or_default();
                let _ = writeln!(out, "{}hosts: {}{name}", prefix, hosts.join(", "));
            }
            site.summary(&mut out);
        }
        out
    }
}

impl SiteConfig {
    fn warnings(&self, prefix: &str, out: &mut Vec<String>) {
        let secret_len = self.intercom.secret.expose().len();
        if secret_len < MIN_SECRET_LEN {
            let key = match &self.intercom.secret_source {
                SecretSource::File(_) => "secret_file",
                _ => "secret_env",
            };
            out.push(format!(
                "{prefix}intercom.{key}: the secret is {secret_len} bytes; Intercom's Messenger secrets are long random strings (copy the whole value from Settings > Messenger > Security)"
            ));
        }
        if let SecretSource::File(path) = &self.intercom.secret_source {
            if let Some(mode) = group_or_other_readable(path) {
                out.push(format!(
                    "{prefix}intercom.secret_file: the secret file is readable by group or others (mode {mode:o}); run chmod 600 on it"
                ));
            }
        }
        if self.intercom.mode == MessengerMode::UserHash {
            out.push(format!(
                "{prefix}intercom.mode: user_hash is Intercom's deprecated Identity Verification; switch to both, enforce JWTs in Intercom, then jwt"
            ));
        }
        for (key, redis) in self.redis_addresses() {
            if redis.carries_password() {
                out.push(format!(
                    "{prefix}{key}: the URL carries a password, so it lives in the config file; remove it from the URL and set password_env (or password_file) beside it"
                ));
            }
        }
        for (n, s) in self.identity.sources.iter().enumerate() {
            let SourceConfig::TrustedHeader(t) = s else { continue };
            for (i, net) in t.trusted_cidrs.iter().enumerate() {
                if net.prefix_len() == 0 {
                    out.push(format!(
                        "{prefix}identity.sources[{n}].trusted_cidrs[{i}]: {net} trusts every address to assert who is logged in; list only the auth proxy's addresses"
                    ));
                }
            }
        }
        self.unfilled_claim_warnings(prefix, out);
    }

    /// Every Redis the site names, with its key in the file.
    fn redis_addresses(&self) -> Vec<(String, &RedisTarget)> {
        let sources = self.identity.sources.iter().enumerate().filter_map(|(n, s)| match s {
            SourceConfig::RedisSession(r) => {
                Some((format!("identity.sources[{n}].redis"), &r.redis))
            }
            _ => None,
        });
        let shared = self
            .identity
            .shared_cache
            .iter()
            .map(|c| ("identity.shared_cache.redis".to_string(), &c.redis));
        sources.chain(shared).collect()
    }

    fn summary(&self, out: &mut String) {
        use std::fmt::Write as _;
        let d = |d: Duration| humantime::format_duration(d).to_string();
        let list = |v: &[String]| if v.is_empty() { "-".to_string() } else { v.join(", ") };
        let _ = writeln!(
            out,
            "upstream:  {} ({}, connect timeout {}, read timeout {})",
            list(&self.upstream.addresses),
            if self.upstream.tls { "TLS" } else { "plain HTTP" },
            d(self.upstream.connect_timeout),
            d(self.upstream.read_timeout)
        );
        let secret = match &self.intercom.secret_source {
            SecretSource::Env(name) => format!("from env {name}"),
            SecretSource::File(path) => format!("from file {}", path.display()),
            SecretSource::Inline => "set in code".into(),
        };
        let _ = writeln!(
            out,
            "intercom:  app_id {}, api_base {}, secret {secret} ({} bytes), tokens valid {}, claims: user_id{} (as each source fills them)",
            self.intercom.app_id,
            self.intercom.api_base,
            self.intercom.secret.expose().len(),
            d(self.intercom.token_lifetime),
            self.intercom.claims.iter().map(|c| format!(", {c}")).collect::<String>()
        );
        let _ = writeln!(
            out,
            "messenger: mode {}, open pages refresh their token {} before expiry at {}",
            self.intercom.mode.as_str(),
            d(self.intercom.token_refresh_margin),
            self.inject.token_refresh_path
        );
        for (n, s) in self.identity.sources.iter().enumerate() {
            let _ = match s {
                SourceConfig::TrustedHeader(t) => writeln!(
                    out,
                    "identity:  {}. trusted_header {} from {}{}",
                    n + 1,
                    t.user_id,
                    t.trusted_cidrs.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", "),
                    t.company_id.as_deref().map(|h| format!(", company from {h}")).unwrap_or_default()
                ),
                SourceConfig::CurrentUserEndpoint(e) => writeln!(
                    out,
                    "identity:  {}. current_user_endpoint GET {} ({}{}, cookies: {}, timeout {}, cache {}/{})",
                    n + 1,
                    e.path,
                    e.format.as_str(),
                    if e.company_id.is_some() { ", with company" } else { "" },
                    if e.cookies.is_empty() { "all".to_string() } else { e.cookies.join(", ") },
                    d(e.timeout),
                    d(e.cache.ttl),
                    d(e.cache.negative_ttl)
                ),
                SourceConfig::RedisSession(r) => writeln!(
                    out,
                    "identity:  {}. redis_session {}{}{} key {} ({}, cookie {}, signature {}{}, timeout {}, cache {}/{})",
                    n + 1,
                    r.redis.redacted(),
                    r.auth.describe(),
                    r.tls_ca.as_ref().map(|ca| format!(" (CA {})", ca.path.display())).unwrap_or_default(),
                    r.key,
                    r.format.as_str(),
                    r.cookie,
                    format!("{:?}", r.cookie_signature).to_lowercase(),
                    if r.cookie_secrets_env.is_empty() { String::new() } else { format!(" with secrets from env {}", r.cookie_secrets_env.join(", ")) },
                    d(r.timeout),
                    d(r.cache.ttl),
                    d(r.cache.negative_ttl)
                ),
                SourceConfig::JwtCookie(j) => writeln!(out, "identity:  {}. {}", n + 1, j.summary()),
                SourceConfig::SignedHeader(h) => writeln!(out, "identity:  {}. {}", n + 1, h.summary()),
            };
            if self.intercom.mode != MessengerMode::UserHash {
                let _ = writeln!(out, "           signs: {}", self.signed_by(s).join(", "));
            }
        }
        if let Some(c) = &self.identity.shared_cache {
            let _ = writeln!(
                out,
                "identity:  shared cache {}{} (timeout {}; entries sealed with a key derived from the secret)",
                c.redis.redacted(),
                c.auth.describe(),
                d(c.timeout)
            );
        }
        let excluded: Vec<String> =
            self.inject.exclude_paths.iter().map(|p| p.as_str().to_string()).collect();
        let _ = writeln!(
            out,
            "inject:    {} (excluded: {}), auto_include {}, honor no-transform {}",
            self.inject.content_types.join(", "),
            list(&excluded),
            self.inject.auto_include,
            self.inject.honor_no_transform
        );
        let _ = writeln!(out, "rollout:   {}", self.rollout.describe());
        let paths: Vec<String> = self
            .logout
            .paths
            .iter()
            .map(|(m, p)| format!("{} {}", m.join("|"), p.as_str()))
            .collect();
        let _ = writeln!(
            out,
            "logout:    {} (paths: {}, session cookie expiry {})",
            match self.logout.mode {
                LogoutMode::Marker => "marker",
                LogoutMode::Interstitial => "interstitial",
            },
            list(&paths),
            if self.logout.detect_cookie_expiry { "detected" } else { "ignored" }
        );
    }
}

impl RolloutConfig {
    /// The rollout in a line of `check`.
    fn describe(&self) -> String {
        let who = format!("{}% of users", self.percent);
        let reports = format!("reports at {}", self.report_path);
        match self.mode {
            RolloutMode::Enforce => {
                format!("enforce: Secure Mode for {who} ({reports} from earlier report-only pages)")
            }
            RolloutMode::ReportOnly => format!(
                "report_only: pages left as the app sent them, an observer for {who}, {reports}"
            ),
            RolloutMode::Off => format!("off: every page passes through untouched ({reports})"),
        }
    }
}

/// Shorter secrets are warned about: Intercom issues long random ones, so a short one
/// is most likely cut off or a placeholder.
const MIN_SECRET_LEN: usize = 32;

/// The permission bits of `path` when group or others may read it.
fn group_or_other_readable(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then_some(mode)
}
