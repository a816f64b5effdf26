//! `sites:`: two apps behind one proxy, chosen by `Host`, each with its own upstream,
//! workspace (app_id and secret) and identity sources, through the real binary.

mod support;

use support::{Proxy, Reply, Upstream};

const SHOP_SECRET: &str = "shop-secret-9876543210fedcba";
/// A minimal identity section of a site.
const IDENTITY: &str =
    "    identity: {sources: [{type: trusted_header, trusted_cidrs: [\"127.0.0.1/32\"]}]}\n";
const PAGE: &str = "<html><head><title>t</title><script>window.intercomSettings={app_id:'x'};</script></head><body>hi</body></html>";

fn verify_with(
    secret: &str,
    token: &str,
) -> Result<serde_json::Value, jsonwebtoken::errors::Error> {
    let v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &v,
    )
    .map(|d| d.claims)
}

fn sites(support_app: &Upstream, shop_app: &Upstream) -> String {
    format!(
        r#"sites:
  - hosts: [support.example.test]
    upstream: {{addresses: ["{support}"]}}
    intercom: {{app_id: abc12345, secret_env: TEST_INTERCOM_SECRET}}
    identity:
      sources: [{{type: trusted_header, trusted_cidrs: ["127.0.0.1/32"], headers: {{user_id: X-Forwarded-User}}}}]
  - hosts: ["*.shop.example.test", shop.example.test]
    upstream: {{addresses: ["{shop}"]}}
    intercom: {{app_id: shop9999, secret_env: TEST_SHOP_SECRET}}
    identity:
      sources: [{{type: current_user_endpoint, path: /api/me, cookies: [sid], fields: {{user_id: /id}}}}]
    logout: {{paths: ["/signout"]}}
"#,
        support = support_app.addr,
        shop = shop_app.addr
    )
}

#[test]
fn each_host_gets_its_own_app_workspace_and_identity() {
    let support_app = Upstream::start(|_| Reply::html(PAGE));
    let shop_app = Upstream::start(|r| match (r.path(), r.cookie("sid").as_deref()) {
        ("/api/me", Some("s-7")) => {
            Reply::with(200, &[("content-type", "application/json")], r#"{"id":"shop-7"}"#)
        }
        ("/api/me", _) => Reply::with(401, &[], ""),
        ("/signout", _) => {
            Reply::with(302, &[("location", "/"), ("set-cookie", "sid=; Max-Age=0; Path=/")], "")
        }
        _ => Reply::html(PAGE),
    });
    let proxy = Proxy::start_with_env(
        &sites(&support_app, &shop_app),
        &[("TEST_SHOP_SECRET", SHOP_SECRET)],
    );
    let url = proxy.url("/");

    // Support: the trusted header names the user; its workspace signs.
    let got = support::get(&url, &[("host", "support.example.test"), ("x-forwarded-user", "u-1")]);
    let token = support::page_token(&got.text()).expect("a token on the support site");
    assert_eq!(support::verify(&token)["user_id"], "u-1");
    assert!(verify_with(SHOP_SECRET, &token).is_err(), "signed with the other site's secret");
    assert!(got.text().contains("\"a\":\"abc12345\""), "the support workspace's app_id");
    assert_eq!(support_app.count("/"), 1);
    assert_eq!(shop_app.count("/"), 0, "the support request reached the shop app");

    // Shop (a subdomain): the session cookie is looked up at the shop app's endpoint.
    let got = support::get(&url, &[("host", "eu.shop.example.test:443"), ("cookie", "sid=s-7")]);
    let token = support::page_token(&got.text()).expect("a token on the shop site");
    assert_eq!(
        verify_with(SHOP_SECRET, &token).expect("verifies with the shop secret")["user_id"],
        "shop-7"
    );
    assert!(verify_with(support::SECRET, &token).is_err(), "signed with the support site's secret");
    assert!(got.text().contains("\"a\":\"shop9999\""), "the shop workspace's app_id");
    assert_eq!(shop_app.count("/api/me"), 1);
    assert_eq!(support_app.count("/api/me"), 0);

    // The shop site trusts no header: X-Forwarded-User identifies nobody there.
    let got = support::get(&url, &[("host", "shop.example.test"), ("x-forwarded-user", "u-1")]);
    assert_eq!(got.status, 200);
    assert_eq!(support::page_token(&got.text()), None);
    assert_eq!(
        support::without_our_script(&got.body),
        PAGE.as_bytes(),
        "a logged-out page gets only the watcher"
    );

    // Logouts are per site: /signout is one on the shop, not on support.
    let got = support::get(
        &proxy.url("/signout"),
        &[("host", "shop.example.test"), ("cookie", "sid=s-7")],
    );
    assert!(
        got.all("set-cookie").iter().any(|c| c.starts_with("intercom-session-shop9999=;")),
        "{:?}",
        got.headers
    );
    let got = support::get(&proxy.url("/signout"), &[("host", "support.example.test")]);
    assert!(
        got.all("set-cookie").iter().all(|c| !c.starts_with("__isp_shutdown=1")),
        "{:?}",
        got.headers
    );

    // A host no site claims: 421, and neither app is asked.
    let before = support_app.requests().len() + shop_app.requests().len();
    let got = support::get(&url, &[("host", "other.example.test")]);
    assert_eq!(got.status, 421);
    assert_eq!(support_app.requests().len() + shop_app.requests().len(), before);
}

#[test]
fn a_catch_all_site_takes_the_hosts_no_other_site_claims() {
    // Plain text: these pages say which app answered, and get no watcher.
    let named = Upstream::start(|_| Reply::with(200, &[("Content-Type", "text/plain")], "named"));
    let rest = Upstream::start(|_| Reply::with(200, &[("Content-Type", "text/plain")], "rest"));
    let yaml = format!(
        "sites:\n  - hosts: [\"*\"]\n    upstream: {{addresses: [\"{}\"]}}\n    intercom: {{app_id: abc12345, secret_env: TEST_INTERCOM_SECRET}}\n{IDENTITY}  - hosts: [app.example.test]\n    upstream: {{addresses: [\"{}\"]}}\n    intercom: {{app_id: abc12345, secret_env: TEST_INTERCOM_SECRET}}\n{IDENTITY}",
        rest.addr, named.addr
    );
    let proxy = Proxy::start(&yaml);
    assert_eq!(support::get(&proxy.url("/"), &[("host", "APP.example.test")]).text(), "named");
    assert_eq!(support::get(&proxy.url("/"), &[("host", "anything.test")]).text(), "rest");
}

fn check(yaml: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, format!("listen: [\"127.0.0.1:{}\"]\n{yaml}", support::free_port()))
        .unwrap();
    let env = [("TEST_INTERCOM_SECRET", support::SECRET), ("TEST_SHOP_SECRET", SHOP_SECRET)];
    let (code, text) = support::check_config_file(&path, &env);
    (code.expect("exit code"), text)
}

#[test]
fn site_config_errors_name_the_site_and_key() {
    let site = |host: &str, app_id: &str| {
        format!("  - hosts: [{host}]\n    upstream: {{addresses: [\"127.0.0.1:3000\"]}}\n    intercom: {{app_id: {app_id}, secret_env: TEST_INTERCOM_SECRET}}\n{IDENTITY}")
    };
    let cases = [
        (format!("sites:\n{}{}", site("a.test", "abc"), site("A.test", "def")), "`sites[1].hosts[0]`"),
        (format!("sites:\n{}{}", site("a.test", "abc"), site("b.test", "\"\"")), "`sites[1].intercom.app_id`"),
        (format!("sites:\n{}  - hosts: [c.test]\n    intercom: {{app_id: x, secret_env: TEST_INTERCOM_SECRET}}\n{IDENTITY}", site("a.test", "abc")), "`sites[1].upstream`"),
        (format!("sites:\n{}", site("\"a b\"", "abc")), "`sites[0].hosts[0]`"),
        (format!("sites:\n  - upstream: {{addresses: [\"127.0.0.1:3000\"]}}\n    intercom: {{app_id: x, secret_env: TEST_INTERCOM_SECRET}}\n{IDENTITY}"), "`sites[0].hosts`"),
        (format!("upstream: {{addresses: [\"127.0.0.1:3000\"]}}\nsites:\n{}", site("a.test", "abc")), "`upstream`"),
        ("sites: []\n".to_string(), "`sites`"),
    ];
    for (yaml, key) in cases {
        let (code, text) = check(&yaml);
        assert_eq!(code, 2, "{yaml}\n{text}");
        assert!(text.contains(key), "expected {key} in: {text}");
    }
    let (code, text) =
        check(&format!("sites:\n{}{}", site("a.test", "abc"), site("\"*.b.test\"", "def")));
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("sites[0].hosts: a.test") && text.contains("sites[1].hosts: *.b.test"),
        "{text}"
    );
    assert!(text.contains("app_id abc") && text.contains("app_id def"), "{text}");
    assert!(!text.contains(support::SECRET), "the summary shows a secret");
}
