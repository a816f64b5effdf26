//! Request-header hygiene of the trusted-header identity source, through
//! `IdentityResolver::inspect_request` as the proxy calls it, on arbitrary headers:
//! case and `_`/`-` variants of the configured names, near misses, other names,
//! repeated headers, values with non-UTF-8 bytes.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use crate::config::Config;
use crate::identity::IdentityResolver;
use crate::upstream::Upstream;
use pingora::http::RequestHeader;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

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
        select(&["X-Forwarded-User", "Remote_User", "X-Auth-Request-User", "x-user"][..]),
        select(&["X-Forwarded-Email", "X_Auth_Email", "Email"][..]),
        proptest::option::of(select(&["X-Forwarded-Name", "X-User_Name"][..])),
    )
        .prop_map(|(user_id, email, name)| Names { user_id, email, name })
}

/// The resolver the proxy builds from a config file with one trusted_header source.
fn resolver(n: &Names) -> IdentityResolver {
    let (user_id, email) = (n.user_id, n.email);
    let name = n.name.map(|v| format!(", name: {v}")).unwrap_or_default();
    let yaml = format!(
        "listen: [\"127.0.0.1:8080\"]\n\
         upstream: {{addresses: [\"127.0.0.1:3000\"]}}\n\
         intercom: {{app_id: abc12345, secret_env: FUZZ_SECRET}}\n\
         identity: {{sources: [{{type: trusted_header, trusted_cidrs: [\"{TRUSTED_CIDR}\"], \
         headers: {{user_id: {user_id}, email: {email}{name}}}}}]}}\n"
    );
    let config = Config::from_yaml(&yaml, &|_| Some("fuzz-secret".into())).expect("valid config");
    // Only an endpoint source would use the upstream; building one is slow, so all
    // cases share one.
    static UPSTREAM: OnceLock<Arc<Upstream>> = OnceLock::new();
    let upstream = UPSTREAM.get_or_init(|| Upstream::new(&config.site().upstream).expect("upstream").0);
    IdentityResolver::new(&config.site().identity, upstream.clone())
}

/// How app stacks fold header names: lowercase, `_` as `-`.
fn fold(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// `name` with each letter's case and each `-`/`_` chosen at random.
fn spelling_of(name: &'static str) -> impl Strategy<Value = String> {
    vec(any::<(bool, bool)>(), name.len()).prop_map(move |flips| {
        name.chars()
            .zip(flips)
            .map(|(c, (upper, underscore))| match c {
                '-' | '_' if underscore => '_',
                '-' | '_' => '-',
                c if upper => c.to_ascii_uppercase(),
                c => c.to_ascii_lowercase(),
            })
            .collect()
    })
}

/// A header name: a spelling of a configured name, a near miss, or anything else.
fn header_name(n: &Names) -> impl Strategy<Value = String> {
    let spelling = select(n.all()).prop_flat_map(spelling_of);
    prop_oneof![
        4 => spelling.clone(),
        2 => (spelling, select(&["s", "-", "_", "x"][..]), any::<bool>()).prop_map(|(s, extra, before)| {
            if before { format!("{extra}{s}") } else { format!("{s}{extra}") }
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
        any::<[u8; 4]>().prop_filter("outside 10/8", |a| a[0] != 10).prop_map(|a| Some(IpAddr::from(a))),
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
        let headers = vec((header_name(&n), header_value()), 0..12);
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
