//! `sites`: several apps behind one proxy, chosen by the request's `Host`.
//!
//! A file without `sites:` describes one site that answers every host (the top-level
//! `upstream`, `intercom`, `identity`, `inject` and `logout`). With `sites:`, each
//! entry has its own `hosts`, `upstream`, `intercom` and `identity`, and may have a
//! `name` (the admin listener's `/rollout/<name>`); `inject`, `logout` and `rollout`
//! default to the top-level sections.

use super::*;

/// One app behind the proxy, with its own workspace and identity sources.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// The hosts this site answers.
    pub hosts: Vec<HostPattern>,
    /// The site's name (`sites[n].name`), for the admin listener's `/rollout/<name>`.
    pub name: Option<String>,
    /// The application.
    pub upstream: UpstreamConfig,
    /// The Intercom workspace and token settings.
    pub intercom: IntercomConfig,
    /// How the logged-in user is found.
    pub identity: IdentityConfig,
    /// Which responses are rewritten and how.
    pub inject: InjectConfig,
    /// How logouts are detected and turned into Intercom shutdowns.
    pub logout: LogoutConfig,
    /// Enforce, report only or off, and for which share of users.
    pub rollout: RolloutConfig,
}

/// A host a site answers: `app.example.com`, every subdomain with `*.example.com`, or
/// any host with `*`. Compared without port and case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this host name.
    Exact(String),
    /// Any subdomain of this domain (not the domain itself).
    Subdomains(String),
    /// Any host: the site for requests no other site claims.
    Any,
}

impl HostPattern {
    /// Parses `app.example.com`, `*.example.com` or `*`.
    pub fn parse(text: &str) -> std::result::Result<Self, BadHost> {
        let lower = text.trim().to_ascii_lowercase();
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
                && !n.starts_with('.')
                && !n.ends_with('.')
        };
        match lower.strip_prefix("*.") {
            _ if lower == "*" => Ok(HostPattern::Any),
            Some(domain) if name_ok(domain) => Ok(HostPattern::Subdomains(domain.to_string())),
            None if name_ok(&lower) => Ok(HostPattern::Exact(lower)),
            _ => Err(BadHost(text.to_string())),
        }
    }

    /// How well this pattern matches `host` (lowercase, no port): `None` when it does
    /// not, else higher for more specific patterns.
    pub fn rank(&self, host: &str) -> Option<usize> {
        match self {
            HostPattern::Exact(h) => (h == host).then_some(usize::MAX),
            HostPattern::Subdomains(d) => (host.len() > d.len() + 1
                && host.ends_with(d.as_str())
                && host.as_bytes()[host.len() - d.len() - 1] == b'.')
                .then_some(d.len() + 1),
            HostPattern::Any => Some(0),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Subdomains(d) => write!(f, "*.{d}"),
            HostPattern::Any => f.write_str("*"),
        }
    }
}

/// The index of the site whose hosts match `host` (lowercase, no port) best: an exact
/// name, then the longest `*.domain`, then `*`; the first of equals.
pub(crate) fn best_site<'a>(
    sites: impl IntoIterator<Item = &'a [HostPattern]>,
    host: &str,
) -> Option<usize> {
    let ranked = sites
        .into_iter()
        .enumerate()
        .filter_map(|(i, hosts)| hosts.iter().filter_map(|h| h.rank(host)).max().map(|r| (r, i)));
    ranked.max_by_key(|&(rank, i)| (rank, std::cmp::Reverse(i))).map(|(_, i)| i)
}

/// A `hosts` entry that is not a host name, `*.domain` or `*`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a host name; write it like \"app.example.com\", \"*.example.com\" or \"*\"")]
pub struct BadHost(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSite {
    #[serde(default)]
    hosts: Vec<String>,
    name: Option<String>,
    upstream: Option<FileUpstream>,
    intercom: Option<FileIntercom>,
    #[serde(default)]
    identity: FileIdentity,
    inject: Option<FileInject>,
    logout: Option<FileLogout>,
    rollout: Option<FileRollout>,
}

/// The sections of one site as the file gives them (a `sites:` entry, or the top level).
pub(super) struct SiteSections {
    pub(super) hosts: Vec<HostPattern>,
    pub(super) name: Option<String>,
    pub(super) upstream: Option<FileUpstream>,
    pub(super) intercom: Option<FileIntercom>,
    pub(super) identity: FileIdentity,
    pub(super) inject: Option<FileInject>,
    pub(super) logout: Option<FileLogout>,
    pub(super) rollout: Option<FileRollout>,
}

/// Validates one site; `prefix` (`sites[2].` or empty) goes before every key named in
/// an error, and the shared `inject`/`logout`/`rollout` apply where the site has none.
pub(super) fn validate_site(
    s: SiteSections,
    prefix: &str,
    shared: (&InjectConfig, &LogoutConfig, &RolloutConfig),
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SiteConfig> {
    let at = |e: ConfigError| ConfigError::new(format!("{prefix}{}", e.key), e.message);
    let intercom = validate_intercom(s.intercom, env).map_err(at)?;
    let inject = match s.inject {
        Some(i) => validate_inject(i).map_err(at)?,
        None => shared.0.clone(),
    };
    let rollout = match s.rollout {
        Some(r) => validate_rollout(r, &inject.token_refresh_path).map_err(at)?,
        None => shared_rollout(shared.2, &inject).map_err(at)?,
    };
    Ok(SiteConfig {
        hosts: s.hosts,
        name: s.name,
        upstream: validate_upstream(s.upstream).map_err(at)?,
        identity: validate_identity(s.identity, &intercom, env).map_err(at)?,
        intercom,
        inject,
        logout: match s.logout {
            Some(l) => validate_logout(l).map_err(at)?,
            None => shared.1.clone(),
        },
        rollout,
    })
}

/// The top-level `rollout` for a site without its own, whose own `inject` may have made
/// the report path its refresh path.
fn shared_rollout(rollout: &RolloutConfig, inject: &InjectConfig) -> Result<RolloutConfig> {
    if rollout.report_path == inject.token_refresh_path {
        return Err(ConfigError::new(
            "inject.token_refresh_path",
            format!(
                "{} is already rollout.report_path; give the refresh path a path of its own",
                inject.token_refresh_path
            ),
        ));
    }
    Ok(rollout.clone())
}

/// A site name as the admin path `/rollout/<name>` carries it.
fn is_site_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The sections of each `sites:` entry, with its hosts parsed; no host may be claimed
/// by two sites.
pub(super) fn site_sections(sites: Vec<FileSite>) -> Result<Vec<SiteSections>> {
    if sites.is_empty() {
        return Err(ConfigError::new(
            "sites",
            "list at least one site, or remove sites: and configure one app at the top level",
        ));
    }
    let mut seen: Vec<(HostPattern, usize)> = Vec::new();
    let mut names: Vec<(String, usize)> = Vec::new();
    let mut out = Vec::with_capacity(sites.len());
    for (n, site) in sites.into_iter().enumerate() {
        if let Some(name) = &site.name {
            let key = format!("sites[{n}].name");
            if !is_site_name(name) {
                return Err(ConfigError::new(key, format!("{name:?} is not a site name; use letters, digits, '-', '_' or '.' (up to 64), e.g. \"shop\"")));
            }
            if let Some((_, other)) = names.iter().find(|(seen, _)| seen == name) {
                return Err(ConfigError::new(key, format!("{name} is already the name of sites[{other}]; each site needs a name of its own")));
            }
            names.push((name.clone(), n));
        }
        if site.hosts.is_empty() {
            return Err(ConfigError::new(
                format!("sites[{n}].hosts"),
                "list the hosts this site answers, e.g. [\"app.example.com\"] (\"*\" for every other host)",
            ));
        }
        let mut hosts = Vec::with_capacity(site.hosts.len());
        for (i, text) in site.hosts.iter().enumerate() {
            let key = format!("sites[{n}].hosts[{i}]");
            let host =
                HostPattern::parse(text).map_err(|e| ConfigError::new(&key, e.to_string()))?;
            if let Some((_, other)) = seen.iter().find(|(h, _)| *h == host) {
                return Err(ConfigError::new(
                    key,
                    format!(
                        "{host} is already a host of sites[{other}]; each host belongs to one site"
                    ),
                ));
            }
            seen.push((host.clone(), n));
            hosts.push(host);
        }
        out.push(SiteSections {
            hosts,
            name: site.name,
            upstream: site.upstream,
            intercom: site.intercom,
            identity: site.identity,
            inject: site.inject,
            logout: site.logout,
            rollout: site.rollout,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        let exact = HostPattern::parse("App.Example.com").unwrap();
        let sub = HostPattern::parse("*.example.com").unwrap();
        let any = HostPattern::parse("*").unwrap();
        assert_eq!(exact.rank("app.example.com"), Some(usize::MAX));
        assert_eq!(exact.rank("example.com"), None);
        assert!(sub.rank("app.example.com").is_some());
        assert_eq!(sub.rank("example.com"), None);
        assert_eq!(sub.rank("badexample.com"), None);
        assert_eq!(any.rank("anything"), Some(0));
        for bad in ["", "a b", "*.", ".example.com", "exa*mple.com", "a/b"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
