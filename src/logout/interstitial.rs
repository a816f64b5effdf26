//! Interstitial logouts: the logout redirect answered by a tiny page that runs the
//! shutdown and then continues to the app's `Location`, when that target is safe.

use crate::config::LogoutConfig;

/// Whether an interstitial may continue to `location`: a same-origin path, or an
/// absolute http(s) URL on the request's host, the cookie domain or an allowed host.
/// Anything ambiguous (`//host`, backslashes, userinfo, control characters, other
/// schemes) is refused, so `Location` cannot be turned into an open redirect.
pub fn safe_redirect(location: &str, request_host: Option<&str>, config: &LogoutConfig) -> bool {
    if location.is_empty()
        || location.bytes().any(|b| b <= 0x20 || b == 0x7f || b == b'\\' || b >= 0x80)
    {
        return false;
    }
    if let Some(rest) = location.strip_prefix('/') {
        return !rest.starts_with('/');
    }
    let lower = location.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return false;
    }
    let host = crate::headers::host_without_port(authority);
    let same_host = request_host.is_some_and(|h| h.eq_ignore_ascii_case(host));
    let in_domain = config
        .cookie_domain
        .as_deref()
        .is_some_and(|d| host == d || host.ends_with(&format!(".{d}")));
    same_host || in_domain || config.allowed_redirect_hosts.iter().any(|h| h == host)
}

/// The interstitial page: runs `script` (the page script with the shutdown flag), waits
/// briefly for the Messenger to take the shutdown, then continues to `location`.
pub fn interstitial_page(script: &str, location: &str) -> String {
    let js_target = crate::script_json::to_script_json(&serde_json::Value::String(location.into()));
    let attr_target = location.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;");
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta name=\"robots\" content=\"noindex\">\
<meta http-equiv=\"refresh\" content=\"3;url={attr_target}\"><title>Signing out…</title>{script}</head>\
<body><script>(function(){{var t={js_target},s=Date.now(),go=function(){{location.replace(t);}};\
var w=function(){{var i=window.Intercom;if((i&&!(i.q&&i.q.length))||Date.now()-s>1500){{go();}}else{{setTimeout(w,50);}}}};w();}})();</script>\
<noscript><a href=\"{attr_target}\">Continue</a></noscript></body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logout::tests::config;

    #[test]
    fn open_redirects_are_refused() {
        let c = config(Some("example.com"));
        let host = Some("app.example.com");
        for ok in [
            "/login",
            "/login?next=%2F",
            "https://app.example.com/login",
            "http://www.example.com/",
            "https://sso.partner.test/x",
        ] {
            assert!(safe_redirect(ok, host, &c), "{ok}");
        }
        for bad in [
            "//evil.com",
            "/\\evil.com",
            "https://evil.com",
            "https://app.example.com@evil.com/",
            "https://evil.com\\@app.example.com",
            "https://evil.com#@app.example.com",
            "javascript:alert(1)",
            "/\tevil",
            " /login",
            "https://example.com.evil.com/",
            "",
        ] {
            assert!(!safe_redirect(bad, host, &c), "{bad}");
        }
    }
}
