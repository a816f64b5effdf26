//! A page's Content-Security-Policy against what the Messenger needs. The proxy does
//! not loosen a policy (its own script gets the page's nonce or hash); what the
//! Messenger itself loads and talks to must be allowed by the app's team.

/// What the Messenger needs, per directive, for a workspace of this region's `api_base`
/// (Intercom's "Using Intercom with Content Security Policy").
fn needs(api_base: Option<&str>) -> Vec<(&'static str, Vec<String>)> {
    let api = match api_base.map(|b| b.trim_end_matches('/')) {
        Some(b) if b.starts_with("https://") => b.to_string(),
        _ => "https://api-iam.intercom.io".to_string(),
    };
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        ("script-src", owned(&["https://widget.intercom.io", "https://js.intercomcdn.com"])),
        (
            "connect-src",
            [api.clone()]
                .into_iter()
                .chain(owned(&[
                    "https://*.intercom.io",
                    "wss://*.intercom.io",
                    "https://uploads.intercomcdn.com",
                    "https://uploads.intercomusercontent.com",
                ]))
                .collect(),
        ),
        (
            "img-src",
            owned(&[
                "data:",
                "blob:",
                "https://js.intercomcdn.com",
                "https://static.intercomassets.com",
                "https://downloads.intercomcdn.com",
                "https://uploads.intercomusercontent.com",
                "https://gifs.intercomcdn.com",
            ]),
        ),
        ("font-src", owned(&["https://js.intercomcdn.com", "https://fonts.intercomcdn.com"])),
        ("media-src", owned(&["https://js.intercomcdn.com"])),
        (
            "frame-src",
            owned(&["https://intercom-sheets.com", "https://www.intercom-reporting.com"]),
        ),
        ("form-action", [api].into_iter().chain(owned(&["https://intercom.help"])).collect()),
        ("style-src", owned(&["'unsafe-inline'"])),
    ]
}

/// The directives that fall back to `default-src` when absent.
fn falls_back(directive: &str) -> bool {
    directive != "form-action"
}

/// The additions the app's team must make to the policy (`directive source ...`, one
/// per directive that blocks something), empty when nothing is blocked or there is
/// no policy. Several policies (a header sent twice, joined by `, `) must each allow.
pub fn additions(policy: Option<&str>, api_base: Option<&str>) -> Vec<String> {
    let Some(policy) = policy else { return Vec::new() };
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for one in policy.split(',') {
        for (directive, sources) in needs(api_base) {
            let list = directive_sources(one, directive).or_else(|| {
                falls_back(directive).then(|| directive_sources(one, "default-src")).flatten()
            });
            let Some(list) = list else { continue };
            if directive == "script-src" && list.iter().any(|s| s == "'strict-dynamic'") {
                // Scripts the nonced loader adds are trusted: no host to list.
                continue;
            }
            let missing: Vec<String> = sources.into_iter().filter(|s| !allows(&list, s)).collect();
            if missing.is_empty() {
                continue;
            }
            match out.iter_mut().find(|(d, _)| d == directive) {
                Some((_, have)) => have
                    .extend(missing.into_iter().filter(|m| !have.contains(m)).collect::<Vec<_>>()),
                None => out.push((directive.to_string(), missing)),
            }
        }
    }
    out.into_iter().map(|(d, s)| format!("{d} {}", s.join(" "))).collect()
}

/// The sources of `directive` in one policy, if it has the directive.
fn directive_sources(policy: &str, directive: &str) -> Option<Vec<String>> {
    policy.split(';').find_map(|d| {
        let mut words = d.split_ascii_whitespace();
        let name = words.next()?;
        name.eq_ignore_ascii_case(directive).then(|| words.map(str::to_string).collect())
    })
}

/// Whether a source list allows `need` (a host source, a scheme, or a keyword).
fn allows(list: &[String], need: &str) -> bool {
    if list.iter().any(|s| s == "'none'") {
        return false;
    }
    list.iter().any(|have| {
        let have = have.to_ascii_lowercase();
        if have == need {
            return true;
        }
        if need.starts_with('\'') || need.ends_with(':') {
            return false;
        }
        let (scheme, host) = need.split_once("://").unwrap_or(("https", need));
        if have == "*" || have == format!("{scheme}:") {
            return true;
        }
        let (have_scheme, have_host) = match have.split_once("://") {
            Some((s, h)) => (Some(s), h),
            None => (None, have.as_str()),
        };
        if have_scheme.is_some_and(|s| s != scheme) {
            return false;
        }
        let have_host = have_host.trim_end_matches('/');
        match have_host.strip_prefix("*.") {
            Some(suffix) => {
                host.strip_prefix("*.").unwrap_or(host).ends_with(&format!(".{suffix}"))
                    || host.strip_prefix("*.") == Some(suffix)
            }
            None => have_host == host,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_policy_or_an_open_one_needs_nothing() {
        assert!(additions(None, None).is_empty());
        assert!(additions(Some("default-src * data: blob: 'unsafe-inline'; form-action *"), None)
            .is_empty());
    }

    #[test]
    fn a_strict_policy_gets_each_missing_source() {
        let got = additions(Some("default-src 'self'; script-src 'self' https://js.intercomcdn.com; connect-src 'self' https://*.intercom.io"), Some("https://api-iam.eu.intercom.io"));
        assert_eq!(got[0], "script-src https://widget.intercom.io");
        assert_eq!(got[1], "connect-src wss://*.intercom.io https://uploads.intercomcdn.com https://uploads.intercomusercontent.com");
        assert!(got.iter().any(|d| d.starts_with("style-src 'unsafe-inline'")), "{got:?}");
        assert!(
            !got.iter().any(|d| d.starts_with("form-action")),
            "form-action does not fall back: {got:?}"
        );
    }

    #[test]
    fn strict_dynamic_trusts_what_the_loader_adds() {
        let got = additions(Some("script-src 'nonce-abc' 'strict-dynamic'"), None);
        assert!(got.is_empty(), "{got:?}");
    }
}
