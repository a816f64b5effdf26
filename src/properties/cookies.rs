//! Reading one cookie by name: `headers::cookie` against a model that never parses a
//! header (the jar is generated as data, then written out as `Cookie` lines with any
//! spacing, quoting and line splits a client may use), and every caller that reads a
//! cookie agreeing with it: the `redis_session` and `jwt_cookie` sources, the
//! `current_user_endpoint` source's named cookies, and the proxy's own cookies.

use pingora::http::RequestHeader;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::check;
use crate::config::{Config, CookieSignature, EndpointConfig, RedisSessionConfig};
use crate::headers::{cookie, CookieValue};
use crate::identity::endpoint::CurrentUserEndpoint;
use crate::identity::redis_session::{plausible_session_id, RedisSessionSource};
use crate::intercom_cookies::USER_COOKIE;
use crate::logout::cookies::own_cookies;

/// The name every property looks up; the others are near misses and bystanders.
const NAME: &str = "sid";

/// One cookie as a client sends it: name, value, and how it is written.
#[derive(Debug, Clone)]
struct Sent {
    name: &'static str,
    /// The value without quotes: cookie-octets (no space, `"`, `,`, `;` or `\`).
    value: String,
    /// Written in DQUOTEs (RFC 6265 4.1.1 allows it; the quotes are not the value).
    quoted: bool,
    /// Spaces or tabs around the name and the value.
    spaces: [&'static str; 4],
    /// Whether a new `Cookie` line starts before this pair.
    new_line: bool,
}

impl Sent {
    fn pair(&self) -> String {
        let [a, b, c, d] = self.spaces;
        let value = if self.quoted { format!("\"{}\"", self.value) } else { self.value.clone() };
        format!("{a}{}{b}={c}{value}{d}", self.name)
    }
}

fn sent() -> impl Strategy<Value = Sent> {
    let space = || select(&["", " ", "  ", "\t"][..]);
    (
        select(&[NAME, "sid", "Sid", "sidx", "sid.0", "x", USER_COOKIE][..]),
        // Few values, so the same one recurs; `=` may stand in a value.
        // (`%` left out: redis_session percent-decodes ids.)
        prop_oneof![
            select(&["abc", "abd", "a=b", ""][..]).prop_map(str::to_string),
            "[!#$&-+\\--:<-\\[\\]-~]{1,12}"
        ],
        any::<bool>(),
        [space(), space(), space(), space()],
        any::<bool>(),
    )
        .prop_map(|(name, value, quoted, spaces, new_line)| Sent {
            name,
            value,
            quoted,
            spaces,
            new_line,
        })
}

/// The jar written as `Cookie` lines, with a stray pair without `=` here and there.
fn request(jar: &[Sent]) -> RequestHeader {
    let mut lines: Vec<String> = vec![];
    for (i, c) in jar.iter().enumerate() {
        match lines.last_mut() {
            Some(line) if !c.new_line => {
                line.push(';');
                if i % 3 == 0 {
                    line.push_str(" sid ;");
                }
                line.push_str(&c.pair());
            }
            _ => lines.push(c.pair()),
        }
    }
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    for line in lines {
        req.append_header("cookie", line).unwrap();
    }
    req
}

/// What the jar says about `name`, from the data: absent, one value, or two values.
fn model<'a>(jar: &'a [Sent], name: &str) -> CookieValue<'a> {
    let mut values: Vec<&str> =
        jar.iter().filter(|c| c.name == name).map(|c| c.value.as_str()).collect();
    values.sort_unstable();
    values.dedup();
    match values[..] {
        [] => CookieValue::Absent,
        [one] => CookieValue::One(one),
        _ => CookieValue::Ambiguous,
    }
}

fn redis_source() -> RedisSessionSource {
    let mut config = RedisSessionConfig::new("redis://127.0.0.1:1/", NAME, "/user");
    config.cookie_signature = CookieSignature::None;
    RedisSessionSource::new(config)
}

/// A `current_user_endpoint` source that forwards cookie [`NAME`] (the config file is
/// only there for its upstream).
fn endpoint_source() -> CurrentUserEndpoint {
    let yaml = "listen: [\"127.0.0.1:8080\"]\n\
                upstream: {addresses: [\"127.0.0.1:3000\"]}\n\
                intercom: {app_id: abc12345, secret_env: FUZZ_SECRET}\n\
                identity: {sources: [{type: trusted_header, trusted_cidrs: [\"10.0.0.0/8\"], \
                headers: {user_id: X-User, email: X-Email}}]}\n";
    let secret = |_: &str| Some("fuzz-secret-0123456789abcdef-0123456789".into());
    let config = Config::from_yaml(yaml, &secret).expect("valid config");
    let mut endpoint = EndpointConfig::new("/api/me", "/id");
    endpoint.cookies = vec![NAME.to_string()];
    CurrentUserEndpoint::unshared(endpoint, super::identity::upstream(&config.site().upstream))
}

#[test]
fn one_cookie_is_what_the_jar_says_and_every_reader_agrees() {
    let redis = redis_source();
    let endpoint = endpoint_source();
    check("one cookie", vec(sent(), 0..8), |jar| {
        let req = request(&jar);
        let expected = model(&jar, NAME);
        prop_assert_eq!(cookie(&req, NAME), expected);
        let one = match expected {
            CookieValue::One(v) => Some(v),
            _ => None,
        };
        // redis_session looks up the one value (when it is a plausible id).
        let key = redis.session_ref(&req).map(|s| s.key);
        let plausible = one.filter(|v| plausible_session_id(v));
        prop_assert_eq!(key, plausible.map(|v| format!("sess:{v}")));
        // jwt_cookie takes the one value as the token (chunks only stand in for none).
        let chunked = jar.iter().any(|c| c.name == "sid.0");
        if !chunked || expected != CookieValue::Absent {
            let token = crate::identity::jwt_cookie::cookie_value(&req, NAME);
            prop_assert_eq!(token.as_deref(), one);
        }
        // current_user_endpoint forwards the pairs named so, as sent.
        let forwarded = endpoint.session_key(&req).map(|k| k.cookie().to_string());
        let pairs: Vec<String> =
            jar.iter().filter(|c| c.name == NAME).map(|c| c.pair().trim().to_string()).collect();
        prop_assert_eq!(forwarded, (!pairs.is_empty()).then(|| pairs.join("; ")));
        // The proxy's own last-user cookie: the last non-empty value sent.
        let user = jar.iter().rfind(|c| c.name == USER_COOKIE && !c.value.is_empty());
        prop_assert_eq!(own_cookies(&req).1, user.map(|c| c.value.clone()));
        Ok(())
    });
}
