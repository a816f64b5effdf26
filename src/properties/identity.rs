//! Request-header hygiene of the identity sources that read headers (trusted_header,
//! signed_header), through `IdentityResolver::inspect_request` as the proxy calls it,
//! on arbitrary headers: spellings of the configured names in any case with any
//! punctuation HTTP allows in a name for their separators, near misses (a byte more
//! anywhere, so doubled separators too), other names, repeated headers, values with
//! non-UTF-8 bytes. The rule held: a name that folds to a configured one, letters in
//! one case and every other byte one `_`, is that header to some app stack.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};

use crate::config::{Config, UpstreamConfig};
use crate::headers::FoldedName;
use crate::identity::IdentityResolver;
use crate::upstream::Upstream;
use bytes::Bytes;
use pingora::http::RequestHeader;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};

use super::check;

const TRUSTED_CIDR: &str = "10.0.0.0/8";

/// The configured header names, as written in the config file.
#[derive(Debug, Clone)]
struct Names {
    user_id: &'static str,
    email: &'static str,
    name: Option<&'static str>,
}

impl Names {
    fn all(&self) -> Vec<&'static str> {
        [Some(self.user_id), Some(self.email), self.name].into_iter().flatten().collect()
    }
}

fn names() -> impl Strategy<Value = Names> {
    (
        select(&["X-Forwarded-User", "Remote_User", "X-Auth-Request-User", "x-user", "X.Auth.User"][..]),
        select(&["X-Forwarded-Email", "X_Auth_Email", "Email"][..]),
        proptest::option::of(select(&["X-Forwarded-Name", "X-User_Name"][..])),
    )
        .prop_map(|(user_id, email, name)| Names { user_id, email, name })
}

/// The resolver the proxy builds from a config file with one trusted_header source.
fn resolver(n: &Names) -> IdentityResolver {
    let (user_id, email) = (n.user_id, n.email);
    let name = n.name.map(|v| format!(", name: {v}")).unwrap_or_default();
    resolver_with(&format!(
        "{{type: trusted_header, trusted_cidrs: [\"{TRUSTED_CIDR}\"], headers: {{user_id: {user_id}, email: {email}{name}}}}}"
    ))
}

/// The resolver the proxy builds from a config file with one identity source (YAML flow).
fn resolver_with(source: &str) -> IdentityResolver {
    let yaml = format!(
        "listen: [\"127.0.0.1:8080\"]\n\
         upstream: {{addresses: [\"127.0.0.1:3000\"]}}\n\
         intercom: {{app_id: abc12345, secret_env: FUZZ_SECRET}}\n\
         identity: {{sources: [{source}]}}\n"
    );
    let config =
        Config::from_yaml(&yaml, &|_| Some("fuzz-secret-0123456789abcdef-0123456789".into()))
            .expect("valid config");
    IdentityResolver::new(&config.site().identity, upstream(&config.site().upstream))
}

/// An upstream for the sources that take one. Only an endpoint source would use it;
/// building one is slow, so all cases share the first one asked for.
pub(super) fn upstream(config: &UpstreamConfig) -> Arc<Upstream> {
    static UPSTREAM: OnceLock<Arc<Upstream>> = OnceLock::new();
    UPSTREAM.get_or_init(|| Upstream::new(config).expect("upstream").0).clone()
}

/// The bytes besides letters and digits that HTTP allows in a header name (`tchar`).
const PUNCTUATION: &[u8] = b"!#$%&'*+-.^_`|~";

/// How some app stack may read a header name: letters in one case, every other byte
/// `_` (PHP does so for `-` and `.`, lighttpd's CGI for all of them).
fn fold(name: &str) -> String {
    name.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { b.to_ascii_lowercase() as char } else { '_' })
        .collect()
}

/// `name` with each letter's case chosen at random and each other byte replaced by
/// any punctuation byte.
fn spelling_of(name: &'static str) -> impl Strategy<Value = String> {
    vec((any::<bool>(), select(PUNCTUATION)), name.len()).prop_map(move |choices| {
        name.bytes()
            .zip(choices)
            .map(|(b, (upper, punctuation))| match b {
                b if !b.is_ascii_alphanumeric() => punctuation as char,
                b if upper => b.to_ascii_uppercase() as char,
                b => b.to_ascii_lowercase() as char,
            })
            .collect()
    })
}

/// A header name: a spelling of a configured name, a near miss (a letter, digit or
/// punctuation byte more, anywhere), or anything else.
fn header_name(configured: Vec<&'static str>) -> impl Strategy<Value = String> {
    let spelling = select(configured).prop_flat_map(spelling_of);
    let extra = prop_oneof![select(PUNCTUATION).prop_map(char::from), select(&['s', 'x', '0'][..])];
    prop_oneof![
        4 => spelling.clone(),
        2 => (spelling, any::<Index>(), extra).prop_map(|(mut s, at, extra)| {
            s.insert(at.index(s.len() + 1), extra);
            s
        }),
        1 => select(&["Host", "Cookie", "Accept", "X-Forwarded-For", "Forwarded", "User-Agent"][..])
            .prop_map(String::from),
        2 => "[!#$%&'*+.^`|~0-9A-Za-z_-]{1,16}",
    ]
}

/// A header value: anything a header value may hold (no control bytes but tab,
/// obs-text bytes 0x80-0xFF allowed), often with surrounding blanks.
fn header_value() -> impl Strategy<Value = Bytes> {
    let byte = prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff];
    let blanks_around_text = "[ \t]{0,2}[a-z@.]{0,12}[ \t]{0,2}".prop_map(String::into_bytes);
    prop_oneof![vec(byte, 0..16), blanks_around_text].prop_map(Bytes::from)
}

fn request(headers: &[(String, Bytes)]) -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    for (k, v) in headers {
        req.append_header(k.clone(), v.as_ref()).expect("a valid header");
    }
    req
}

/// Headers by lowercase name: each with the spelling sent and its value, in order.
type Wire = BTreeMap<String, Vec<(Bytes, Bytes)>>;

/// The headers as they go to the app on the wire. (Grouped by name because the order
/// across names is not kept when a header is removed; HTTP gives it no meaning.)
fn wire(req: &RequestHeader) -> Wire {
    let mut buf = Vec::new();
    req.header_to_h1_wire(&mut buf);
    let mut by_name = Wire::new();
    for line in buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let line = line.strip_suffix(b"\r").expect("CRLF line ends");
        let colon = line.iter().position(|&b| b == b':').expect("name: value");
        let name = &line[..colon];
        let value = line[colon + 1..].strip_prefix(b" ").expect("a space after the colon");
        by_name
            .entry(String::from_utf8(name.to_ascii_lowercase()).expect("token names are ASCII"))
            .or_default()
            .push((Bytes::copy_from_slice(name), Bytes::copy_from_slice(value)));
    }
    by_name
}

/// The value a trusted source must take for `name`: the header present exactly once,
/// UTF-8, trimmed of spaces and tabs, non-empty.
fn single_value(before: &Wire, name: &str) -> Option<String> {
    match before.get(&name.to_ascii_lowercase()).map(Vec::as_slice) {
        Some([(_, value)]) => {
            let v = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
            (!v.is_empty()).then(|| v.to_string())
        }
        _ => None,
    }
}

fn untrusted_peer() -> impl Strategy<Value = Option<IpAddr>> {
    prop_oneof![
        Just(None),
        any::<[u8; 4]>()
            .prop_filter("outside 10/8", |a| a[0] != 10)
            .prop_map(|a| Some(IpAddr::from(a))),
        any::<[u8; 4]>()
            .prop_filter("outside 10/8", |a| a[0] != 10)
            .prop_map(|a| Some(IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped()))),
        any::<u128>()
            .prop_filter("not IPv4-mapped", |a| Ipv6Addr::from(*a).to_ipv4_mapped().is_none())
            .prop_map(|a| Some(IpAddr::V6(Ipv6Addr::from(a)))),
    ]
}

fn trusted_peer() -> impl Strategy<Value = Option<IpAddr>> {
    any::<[u8; 3]>().prop_flat_map(|[a, b, c]| {
        let v4 = Ipv4Addr::new(10, a, b, c);
        select(vec![Some(IpAddr::V4(v4)), Some(IpAddr::V6(v4.to_ipv6_mapped()))])
    })
}

/// Configured names, headers built from them, and a peer.
fn case(
    peer: impl Strategy<Value = Option<IpAddr>>,
) -> impl Strategy<Value = (Names, Vec<(String, Bytes)>, Option<IpAddr>)> {
    (names(), peer).prop_flat_map(|(n, peer)| {
        let headers = vec((header_name(n.all()), header_value()), 0..12);
        (Just(n), headers, Just(peer))
    })
}

#[test]
fn untrusted_peers_lose_every_spelling_of_the_identity_headers_and_nothing_else() {
    check("identity: untrusted peer", case(untrusted_peer()), |(n, headers, peer)| {
        let mut req = request(&headers);
        let before = wire(&req);
        let hints = resolver(&n).inspect_request(&mut req, peer);
        prop_assert!(hints.asserted().is_none(), "an untrusted peer asserted an identity");
        let configured: Vec<String> = n.all().into_iter().map(fold).collect();
        let mut expected = before;
        expected.retain(|name, _| !configured.contains(&fold(name)));
        prop_assert_eq!(wire(&req), expected, "the headers the app gets");
        Ok(())
    });
}

#[test]
fn trusted_peers_keep_only_the_configured_spelling_and_assert_a_single_value() {
    check("identity: trusted peer", case(trusted_peer()), |(n, headers, peer)| {
        let mut req = request(&headers);
        let before = wire(&req);
        let hints = resolver(&n).inspect_request(&mut req, peer);
        let asserted = hints.asserted().map(|id| &**id);
        let user_id = asserted.map(|id| id.user_id.clone());
        // A user id or email holding a comma may be two values a proxy joined: no identity.
        let email = single_value(&before, n.email);
        let expected_user = single_value(&before, n.user_id)
            .filter(|u| !u.contains(',') && !email.as_deref().is_some_and(|e| e.contains(',')));
        prop_assert_eq!(user_id, expected_user, "the user id");
        if let Some(id) = asserted {
            prop_assert_eq!(id.email.clone(), email, "the email");
            let name = n.name.and_then(|name| single_value(&before, name));
            prop_assert_eq!(id.name.clone(), name, "the name");
        }
        // Variants of a configured name are dropped so the app cannot see two answers.
        let configured: Vec<String> = n.all().into_iter().map(str::to_ascii_lowercase).collect();
        let folded: Vec<String> = n.all().into_iter().map(fold).collect();
        let mut expected = before;
        expected.retain(|name, _| configured.contains(name) || !folded.contains(&fold(name)));
        prop_assert_eq!(wire(&req), expected, "the headers the app gets");
        Ok(())
    });
}

#[test]
fn a_name_matches_a_configured_one_exactly_when_both_fold_alike() {
    let case = names().prop_flat_map(|n| (select(n.all()), header_name(n.all())));
    check("identity: folding", case, |(configured, name)| {
        prop_assert_eq!(
            FoldedName::new(configured).matches(&name),
            fold(configured) == fold(&name),
            "{} against {}",
            name,
            configured
        );
        Ok(())
    });
}

/// Headers a signed_header source may be configured with.
const SIGNED_HEADERS: &[&str] = &[
    "X-Pomerium-Jwt-Assertion",
    "Cf-Access-Jwt-Assertion",
    "x-amzn-oidc-data",
    "X_Auth_Assertion",
    "authorization",
];

/// The resolver with a signed_header source reading `header`: one per header, shared
/// by all cases (a JWT verifier takes long to build).
fn signed_resolver(header: &str) -> &'static IdentityResolver {
    static RESOLVERS: OnceLock<Vec<IdentityResolver>> = OnceLock::new();
    let all = RESOLVERS.get_or_init(|| {
        SIGNED_HEADERS
            .iter()
            .map(|h| resolver_with(&format!("{{type: signed_header, header: {h}, algorithms: [HS256], secret_env: FUZZ_SECRET}}")))
            .collect()
    });
    &all[SIGNED_HEADERS.iter().position(|h| *h == header).expect("a listed header")]
}

/// A signed_header source's header, as configured, and headers built from it.
fn signed_case() -> impl Strategy<Value = (&'static str, Vec<(String, Bytes)>)> {
    select(SIGNED_HEADERS).prop_flat_map(|header| {
        (Just(header), vec((header_name(vec![header]), header_value()), 0..12))
    })
}

#[test]
fn the_signed_assertion_header_is_removed_in_every_spelling_and_nothing_else() {
    check("identity: signed header", signed_case(), |(header, headers)| {
        let mut req = request(&headers);
        let before = wire(&req);
        signed_resolver(header).inspect_request(&mut req, None);
        // Verified or not, the assertion goes: the app could decode it without checking.
        let mut expected = before;
        expected.retain(|name, _| fold(name) != fold(header));
        prop_assert_eq!(wire(&req), expected, "the headers the app gets");
        Ok(())
    });
}
