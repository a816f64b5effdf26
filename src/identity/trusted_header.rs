//! Identity from headers set by an authenticating proxy (`X-Forwarded-User` style).
//!
//! Only peers inside the configured CIDRs may assert identity. From anyone else the
//! headers are removed in every spelling before the request reaches the app: header
//! names are case-insensitive, and app stacks fold punctuation into `_` (PHP `.` and
//! `-`, CGI any byte but letters and digits), so `X.Forwarded.User` would otherwise
//! smuggle an identity past us (the rule: `headers::FoldedName`).

use std::net::IpAddr;

use http::HeaderName;
use pingora::http::RequestHeader;

use super::{Company, Identity};
use crate::config::TrustedHeaderConfig;
use crate::headers::FoldedName;

/// The trusted-header source.
pub struct TrustedHeaderSource {
    config: TrustedHeaderConfig,
    /// Configured names folded, for spoof detection.
    folded: Vec<FoldedName>,
    /// The configured names, parsed once (`None`: not a valid name, so never sent).
    names: Names,
}

/// The headers of one identity, by field.
struct Names {
    user_id: Option<HeaderName>,
    email: Option<HeaderName>,
    name: Option<HeaderName>,
    company_id: Option<HeaderName>,
    company_name: Option<HeaderName>,
}

impl Names {
    fn new(config: &TrustedHeaderConfig) -> Names {
        let parse =
            |name: Option<&String>| name.and_then(|n| HeaderName::from_bytes(n.as_bytes()).ok());
        Names {
            user_id: parse(Some(&config.user_id)),
            email: parse(config.email.as_ref()),
            name: parse(config.name.as_ref()),
            company_id: parse(config.company_id.as_ref()),
            company_name: parse(config.company_name.as_ref()),
        }
    }
}

impl TrustedHeaderSource {
    /// Builds the source.
    pub fn new(config: TrustedHeaderConfig) -> Self {
        let folded = configured_names(&config).map(|n| FoldedName::new(n)).collect();
        let names = Names::new(&config);
        TrustedHeaderSource { config, folded, names }
    }

    fn is_trusted(&self, peer: Option<IpAddr>) -> bool {
        let Some(ip) = peer else { return false };
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.config.trusted_cidrs.iter().any(|net| net.contains(&ip))
    }

    /// Removes identity headers the peer may not set and returns the identity a trusted
    /// peer asserted, if any.
    pub fn filter_request(
        &self,
        req: &mut RequestHeader,
        peer: Option<IpAddr>,
    ) -> Option<Identity> {
        let trusted = self.is_trusted(peer);
        // From a trusted peer only the exact configured spelling counts; variants are
        // dropped so the app cannot be handed two different answers.
        let doomed: Vec<HeaderName> = req
            .headers
            .keys()
            .filter(|name| {
                let n = name.as_str();
                self.folded.iter().any(|f| f.matches(n))
                    && !(trusted && self.is_configured_spelling(n))
            })
            .cloned()
            .collect();
        for name in &doomed {
            req.remove_header(name);
        }
        if !trusted {
            return None;
        }
        let names = &self.names;
        let user_id = single_value(req, names.user_id.as_ref()?)?;
        let email = names.email.as_ref().and_then(|h| single_value(req, h));
        let company_id = names.company_id.as_ref().and_then(|h| single_value(req, h));
        if [Some(&user_id), email.as_ref(), company_id.as_ref()]
            .into_iter()
            .flatten()
            .any(|v| may_be_joined(v))
        {
            crate::warn_limited!(
                "identity header {} or {} holds a comma-separated list (a proxy may have joined two headers); no identity for this request",
                self.config.user_id,
                self.config.email.as_deref().unwrap_or("-")
            );
            return None;
        }
        let mut identity = Identity::new(user_id);
        identity.email = email;
        identity.name = names.name.as_ref().and_then(|h| single_value(req, h));
        identity.company = company_id.map(|id| Company {
            id,
            name: names.company_name.as_ref().and_then(|h| single_value(req, h)),
        });
        Some(identity)
    }

    fn is_configured_spelling(&self, name: &str) -> bool {
        configured_names(&self.config).any(|c| c == name)
    }
}

/// Every header name the source reads (all of them are identity, so all are stripped
/// from untrusted peers).
fn configured_names(config: &TrustedHeaderConfig) -> impl Iterator<Item = &String> {
    [
        Some(&config.user_id),
        config.email.as_ref(),
        config.name.as_ref(),
        config.company_id.as_ref(),
        config.company_name.as_ref(),
    ]
    .into_iter()
    .flatten()
}

/// Whether an identifier may be two values a proxy joined into one (`a, b` or `a,b`,
/// the way HTTP folds repeated headers). Names are display text and may hold commas;
/// user ids and emails never do in practice, and guessing which half is meant would
/// sign someone's identity for someone else.
fn may_be_joined(value: &str) -> bool {
    value.contains(',')
}

/// The header's value when it is present exactly once, non-empty and UTF-8.
fn single_value(req: &RequestHeader, name: &HeaderName) -> Option<String> {
    let mut values = req.headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        crate::warn_limited!("identity header {name} sent more than once; ignoring it");
        return None;
    }
    // Auth proxies send names in UTF-8; `to_str` would reject anything non-ASCII.
    let v = std::str::from_utf8(first.as_bytes()).ok()?.trim_matches([' ', '\t']);
    (!v.is_empty()).then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> TrustedHeaderSource {
        TrustedHeaderSource::new(TrustedHeaderConfig {
            trusted_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
            user_id: "x-forwarded-user".into(),
            email: Some("x-forwarded-email".into()),
            name: None,
            company_id: Some("x-forwarded-company".into()),
            company_name: Some("x-forwarded-company-name".into()),
        })
    }

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            req.append_header(k.to_string(), *v).unwrap();
        }
        req
    }

    #[test]
    fn untrusted_peer_loses_every_spelling() {
        let mut req = request(&[
            ("X-Forwarded-User", "mallory"),
            ("x_forwarded_user", "mallory"),
            ("X.Forwarded.User", "mallory"),
            ("X_FORWARDED_EMAIL", "m@example.com"),
            ("x~forwarded|email", "m@example.com"),
            ("X-Other", "kept"),
        ]);
        let got = source().filter_request(&mut req, Some("192.0.2.1".parse().unwrap()));
        assert!(got.is_none());
        let left: Vec<_> = req.headers.keys().map(|k| k.as_str().to_string()).collect();
        assert_eq!(left, vec!["x-other"]);
    }

    #[test]
    fn trusted_peer_asserts_and_variants_are_dropped() {
        let mut req = request(&[
            ("X-Forwarded-User", "alice"),
            ("X_Forwarded_User", "mallory"),
            ("X.Forwarded.User", "mallory"),
            ("X-Forwarded-Email", "alice@example.com"),
            ("X--Forwarded-User", "another header"),
        ]);
        let got =
            source().filter_request(&mut req, Some("::ffff:10.1.2.3".parse().unwrap())).unwrap();
        assert_eq!(got.user_id, "alice");
        assert_eq!(got.email.as_deref(), Some("alice@example.com"));
        assert!(req.headers.get("x_forwarded_user").is_none());
        assert!(req.headers.get("x.forwarded.user").is_none());
        // A run of separators folds to a run, as CGI keeps it: no stack reads it as the user.
        assert!(req.headers.get("x--forwarded-user").is_some());
    }

    #[test]
    fn joined_values_are_no_identity() {
        for joined in ["alice, bob", "alice,bob", "alice ,bob"] {
            let mut req = request(&[("X-Forwarded-User", joined)]);
            assert!(
                source().filter_request(&mut req, Some("10.0.0.1".parse().unwrap())).is_none(),
                "{joined}"
            );
        }
        let mut req = request(&[
            ("X-Forwarded-User", "alice"),
            ("X-Forwarded-Email", "a@example.com, b@example.com"),
        ]);
        assert!(source().filter_request(&mut req, Some("10.0.0.1".parse().unwrap())).is_none());
    }

    #[test]
    fn company_headers_are_read_from_trusted_peers_and_stripped_from_others() {
        let headers = [
            ("X-Forwarded-User", "alice"),
            ("X-Forwarded-Company", "acme-1"),
            ("X_Forwarded_Company_Name", "Acme"),
        ];
        let mut req = request(&headers);
        assert!(source().filter_request(&mut req, Some("192.0.2.1".parse().unwrap())).is_none());
        assert_eq!(req.headers.len(), 0, "company headers are identity too");
        let mut req = request(&[
            ("X-Forwarded-User", "alice"),
            ("X-Forwarded-Company", "acme-1"),
            ("X-Forwarded-Company-Name", "Acme"),
        ]);
        let got = source().filter_request(&mut req, Some("10.0.0.1".parse().unwrap())).unwrap();
        assert_eq!(got.company, Some(Company { id: "acme-1".into(), name: Some("Acme".into()) }));
        let mut req =
            request(&[("X-Forwarded-User", "alice"), ("X-Forwarded-Company", "acme-1, evil-2")]);
        assert!(source().filter_request(&mut req, Some("10.0.0.1".parse().unwrap())).is_none());
    }

    #[test]
    fn duplicate_user_header_is_ambiguous() {
        let mut req = request(&[("X-Forwarded-User", "a"), ("X-Forwarded-User", "b")]);
        assert!(source().filter_request(&mut req, Some("10.0.0.1".parse().unwrap())).is_none());
    }
}
