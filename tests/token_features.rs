//! What tokens carry and how pages get them, through the real proxy: the `company`
//! claim (JSON endpoint and trusted headers), `intercom.mode: user_hash | both` checked
//! against an independent HMAC, and the token refresh path the proxy answers itself.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use support::conn::Conn;
use support::{
    check_config, free_port, get, page_token, request, sections, verify, Proxy, Reply, Upstream,
    SECRET, TRUSTED_HEADER,
};

const PAGE: &str = "<!DOCTYPE html><html><head><title>t</title><script>window.intercomSettings={app_id:'abc12345',user_id:'spoofed'};</script></head><body>hi</body></html>";

/// An app whose /api/me knows `sid=alice` (with a company), answers 500 for `sid=boom`,
/// else 401; every other path is a page that counts its requests.
fn app(pages: Arc<AtomicUsize>) -> Upstream {
    Upstream::start(move |req| match (req.path(), req.cookie("sid").as_deref()) {
        ("/api/me", Some("alice")) => Reply::with(
            200,
            &[("Content-Type", "application/json")],
            r#"{"id":"42","email":"alice@example.com","org":{"id":1234567890123456789012,"name":"Acme"}}"#,
        ),
        ("/api/me", Some("boom")) => Reply::with(500, &[], "oops"),
        ("/api/me", _) => Reply::with(401, &[], "{}"),
        _ => {
            pages.fetch_add(1, Ordering::SeqCst);
            Reply::html(PAGE)
        }
    })
}

fn endpoint(extra_intercom: &str, extra: &str, up: &Upstream) -> Proxy {
    let identity = "identity:\n  sources:\n    - type: current_user_endpoint\n      path: /api/me\n      cookies: [sid]\n      fields:\n        company_id: /org/id\n        company_name: /org/name\n";
    let yaml = sections(up.addr, identity, extra).replace(
        "secret_env: TEST_INTERCOM_SECRET\n",
        &format!("secret_env: TEST_INTERCOM_SECRET\n{extra_intercom}"),
    );
    Proxy::start(&yaml)
}

/// The `"h":{...}` object of the page script (plain settings in the user_hash modes).
fn plain_settings(html: &str) -> serde_json::Value {
    let at = html.find(",\"h\":").expect("the page script") + 5;
    let mut de = serde_json::Deserializer::from_str(&html[at..]).into_iter::<serde_json::Value>();
    de.next().unwrap().unwrap()
}

/// Intercom's user_hash, computed here with the hmac crate (not the proxy's code).
fn independent_user_hash(user_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(user_id.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_company_claim_comes_from_the_endpoint_with_every_digit() {
    let up = app(Arc::new(AtomicUsize::new(0)));
    let proxy = endpoint("", "", &up);
    let r = get(&proxy.url("/"), &[("Cookie", "sid=alice")]);
    let claims = verify(&page_token(&r.text()).expect("token"));
    assert_eq!(
        claims["company"],
        serde_json::json!({"id": "1234567890123456789012", "name": "Acme"})
    );
    assert_eq!(claims["user_id"], "42");
}

#[test]
fn the_company_claim_comes_from_trusted_headers_and_is_stripped_from_others() {
    let up = Upstream::start(|_| Reply::html(PAGE));
    let identity = TRUSTED_HEADER.replace(
        "X-Forwarded-Name}",
        "X-Forwarded-Name, company_id: X-Company, company_name: X-Company-Name}",
    );
    let proxy = Proxy::start(&sections(up.addr, &identity, ""));
    let r = get(
        &proxy.url("/"),
        &[("X-Forwarded-User", "7"), ("X-Company", "c-1"), ("X-Company-Name", "Initech")],
    );
    let claims = verify(&page_token(&r.text()).expect("token"));
    assert_eq!(claims["company"], serde_json::json!({"id": "c-1", "name": "Initech"}));
    // A company id that may be two joined values names nobody.
    let r = get(&proxy.url("/"), &[("X-Forwarded-User", "7"), ("X-Company", "c-1, c-2")]);
    assert_eq!(page_token(&r.text()), None);
    // Without a company header the token has no company claim.
    let r = get(&proxy.url("/"), &[("X-Forwarded-User", "7")]);
    assert!(verify(&page_token(&r.text()).unwrap()).get("company").is_none());
    // From a peer outside trusted_cidrs (127.0.0.2, not 127.0.0.1/32) the same headers
    // name nobody, and none of them reaches the app.
    let spoofed = [("X-Forwarded-User", "7"), ("X-Company", "c-1"), ("X-Company-Name", "Initech")];
    let before = up.requests().len();
    let mut untrusted = Conn::open_from(proxy.addr, [127, 0, 0, 2].into());
    let r = untrusted.send("GET", "/untrusted", &spoofed, b"");
    assert_eq!(r.status, 200);
    let html = String::from_utf8(r.decoded()).unwrap();
    assert_eq!(page_token(&html), None, "an untrusted peer named a user");
    let seen = up.requests();
    assert_eq!(seen.len(), before + 1);
    let forwarded = seen.last().unwrap();
    assert_eq!(forwarded.path(), "/untrusted");
    for (name, _) in spoofed {
        assert_eq!(forwarded.header(name), None, "{name} from an untrusted peer reached the app");
    }
}

#[test]
fn user_hash_mode_gives_the_hmac_of_the_user_id_and_no_jwt() {
    let up = app(Arc::new(AtomicUsize::new(0)));
    let proxy = endpoint("  mode: user_hash\n", "", &up);
    let html = get(&proxy.url("/"), &[("Cookie", "sid=alice")]).text();
    assert_eq!(page_token(&html), None, "no JWT in user_hash mode");
    assert!(html.contains(",\"j\":null,"));
    let plain = plain_settings(&html);
    assert_eq!(plain["user_id"], "42");
    assert_eq!(plain["email"], "alice@example.com");
    assert_eq!(plain["user_hash"], independent_user_hash("42"));
    // Logged out: the watcher, without a user.
    let html = get(&proxy.url("/"), &[("Cookie", "sid=nobody")]).text();
    assert!(html.contains(",\"j\":null,\"h\":null});"));
    assert_eq!(support::without_our_script(html.as_bytes()), PAGE.as_bytes());
}

#[test]
fn both_mode_gives_the_jwt_and_the_user_hash() {
    let up = app(Arc::new(AtomicUsize::new(0)));
    let proxy = endpoint("  mode: both\n", "", &up);
    let html = get(&proxy.url("/"), &[("Cookie", "sid=alice")]).text();
    assert_eq!(verify(&page_token(&html).expect("a JWT in both mode"))["user_id"], "42");
    assert_eq!(plain_settings(&html)["user_hash"], independent_user_hash("42"));
    // In jwt mode (the default) nothing is given in the clear.
    let up = app(Arc::new(AtomicUsize::new(0)));
    let proxy = endpoint("", "", &up);
    let html = get(&proxy.url("/"), &[("Cookie", "sid=alice")]).text();
    assert!(html.contains(",\"h\":null});</script>"));
}

#[test]
fn the_refresh_path_answers_a_fresh_token_without_asking_the_app() {
    let pages = Arc::new(AtomicUsize::new(0));
    let up = app(pages.clone());
    let proxy = endpoint("", "", &up);
    let page_exp =
        verify(&page_token(&get(&proxy.url("/"), &[("Cookie", "sid=alice")]).text()).unwrap())
            ["exp"]
            .as_u64()
            .unwrap();
    // Tokens are stamped in whole seconds: wait for the clock to pass the page token's
    // second, so a freshly signed one expires later than the page's.
    let lifetime = 3600;
    support::wait_until("the next second", Duration::from_secs(2), || {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + lifetime > page_exp
    });
    let r = get(&proxy.url("/__isp/token"), &[("Cookie", "sid=alice")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("access-control-allow-origin"),
        None,
        "only same-origin scripts may read it"
    );
    let answer: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let claims = verify(answer["intercom_user_jwt"].as_str().unwrap());
    assert_eq!(claims["user_id"], "42");
    assert_eq!(answer["exp"], claims["exp"]);
    assert!(
        claims["exp"].as_u64().unwrap() > page_exp,
        "signed fresh, not the page's cached token"
    );
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(claims["exp"].as_u64().unwrap() >= now + 3590);
    assert_eq!(pages.load(Ordering::SeqCst), 1, "the refresh path never reaches the app");
    assert_eq!(up.count("/__isp/token"), 0);
}

#[test]
fn the_refresh_path_answers_204_for_nobody_and_with_retry_after_for_failures() {
    let up = app(Arc::new(AtomicUsize::new(0)));
    let proxy = endpoint("", "", &up);
    for (cookie, retry) in [("sid=nobody", None), ("", None), ("sid=boom", Some("30"))] {
        let r = get(&proxy.url("/__isp/token"), &[("Cookie", cookie)]);
        assert_eq!(r.status, 204, "{cookie:?}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("retry-after"), retry, "{cookie:?}: a failure is not a logout");
    }
    let log = proxy.wait_for_log("status 500");
    assert!(!log.contains("sid=boom"), "a raw cookie leaked into the log");
    assert_eq!(up.count("/__isp/token"), 0);
    // Other methods are the app's business.
    assert_eq!(
        request("POST", &proxy.url("/__isp/token"), &[("Cookie", "sid=alice")]).text(),
        PAGE
    );
}

#[test]
fn the_refresh_path_is_configurable_and_gives_the_plain_settings_in_user_hash_mode() {
    let up = app(Arc::new(AtomicUsize::new(0)));
    let proxy = endpoint("", "inject:\n  token_refresh_path: /_secure/jwt\n", &up);
    let r = get(&proxy.url("/_secure/jwt"), &[("Cookie", "sid=alice")]);
    assert_eq!(r.status, 200);
    let html = get(&proxy.url("/"), &[("Cookie", "sid=alice")]).text();
    assert!(html.contains("\"r\":\"/_secure/jwt\""), "the page script knows the path");
    get(&proxy.url("/__isp/token"), &[("Cookie", "sid=alice")]);
    assert_eq!(up.count("/__isp/token"), 1, "the default path is the app's now");
    assert_eq!(up.count("/_secure/jwt"), 0);
    let up = app(Arc::new(AtomicUsize::new(0)));
    let proxy = endpoint("  mode: user_hash\n", "", &up);
    let r = get(&proxy.url("/__isp/token"), &[("Cookie", "sid=alice")]);
    assert_eq!(r.status, 200);
    let answer: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(answer.get("intercom_user_jwt").is_none(), "no JWT in user_hash mode");
    assert_eq!(answer["user"]["user_id"], "42");
    assert_eq!(answer["user"]["user_hash"], independent_user_hash("42"));
    assert_eq!(get(&proxy.url("/__isp/token"), &[("Cookie", "sid=nobody")]).status, 204);
}

#[test]
fn mode_refresh_and_company_settings_are_validated_before_listening() {
    let config = |intercom: &str, rest: &str| {
        check_config(&format!(
            "listen: [\"127.0.0.1:{}\"]\nupstream:\n  addresses: [\"127.0.0.1:9\"]\nintercom:\n  app_id: abc12345\n  secret_env: TEST_INTERCOM_SECRET\n{intercom}{rest}",
            free_port()
        ))
    };
    let endpoint =
        "identity:\n  sources:\n    - type: current_user_endpoint\n      path: /api/me\n";
    let header = "identity:\n  sources:\n    - type: trusted_header\n      trusted_cidrs: [\"10.0.0.1/32\"]\n      headers: {company_name: X-Company-Name}\n";
    let cases = [
        ("  mode: hash\n", endpoint.to_string(), "`intercom.mode`"),
        (
            "  token_lifetime: 10m\n  token_refresh_margin: 10m\n",
            endpoint.to_string(),
            "`intercom.token_refresh_margin`",
        ),
        ("  token_refresh_margin: 0s\n", endpoint.to_string(), "`intercom.token_refresh_margin`"),
        (
            "",
            format!("{endpoint}inject:\n  token_refresh_path: \"/token?x=1\"\n"),
            "`inject.token_refresh_path`",
        ),
        (
            "",
            format!("{endpoint}inject:\n  token_refresh_path: \"/\"\n"),
            "`inject.token_refresh_path`",
        ),
        ("", header.to_string(), "`identity.sources[0].headers.company_name`"),
        (
            "",
            format!("{endpoint}      fields: {{attributes: {{company: /c}}}}\n"),
            "`identity.sources[0].fields.attributes.company`",
        ),
    ];
    for (intercom, rest, key) in cases {
        let (code, text) = config(intercom, &rest);
        assert_eq!(code, Some(2), "{intercom}{rest}: {text}");
        assert!(text.contains(key), "{intercom}{rest}: {text}");
    }
    let (code, text) = config("  mode: user_hash\n", endpoint);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("intercom.mode: user_hash is Intercom's deprecated Identity Verification"),
        "{text}"
    );
    let (code, text) = config(
        "  mode: both\n  token_lifetime: 2m\n",
        &format!("{endpoint}inject:\n  token_refresh_path: /_isp/jwt\n"),
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("deprecated"), "{text}");
    assert!(
        text.contains(
            "messenger: mode both, open pages refresh their token 1m before expiry at /_isp/jwt"
        ),
        "{text}"
    );
}
