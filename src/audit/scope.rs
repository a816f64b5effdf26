//! What the audit's browser may reach: the audited URLs' origins and nothing else.
//!
//! Two layers. Every request a page makes is paused (`Fetch.requestPaused`) and
//! [`Scope::route`]d: Intercom's widget gets the stand-in, Intercom's APIs an empty
//! answer, the audited origins go through, everything else fails. Under that,
//! [`Scope::chromium_args`] leaves the browser no way out that the pause does not see
//! (WebSockets, workers, Chromium's own background requests): every host name but the
//! audited ones resolves to nothing, and every connection but those to the audited
//! host:port pairs goes to a proxy that does not exist, loopback included.

use std::collections::BTreeSet;

use url::{Origin, Url};

/// The proxy every connection outside the scope is sent to: a reserved name
/// (RFC 2606) that the resolver rules make unresolvable, so the connection fails.
const NOWHERE_PROXY: &str = "http://isp-audit-blocked.invalid:9";

/// Domains whose requests are Intercom's (the widget's own API, assets and realtime
/// hosts): they never leave the browser.
const INTERCOM_DOMAINS: [&str; 5] = [
    "intercom.io",
    "intercomcdn.com",
    "intercom-messenger.com",
    "intercomassets.com",
    "intercomusercontent.com",
];

/// What to do with one paused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// An audited origin: let it through.
    Continue,
    /// Intercom's widget loader: answer with the stand-in widget.
    Widget,
    /// Another Intercom request: answer with an empty JSON object.
    IntercomApi,
    /// Anything else: fail it; the origin is reported.
    Block(String),
}

/// The origins the audit may reach.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    origins: Vec<Origin>,
}

impl Scope {
    /// The scope of these URLs (the audited pages and the logout URL).
    pub fn new<'a>(urls: impl IntoIterator<Item = &'a Url>) -> Scope {
        let mut origins: Vec<Origin> = Vec::new();
        for url in urls {
            let origin = url.origin();
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Scope { origins }
    }

    /// Where the request for `url` goes.
    pub fn route(&self, url: &str) -> Route {
        let Ok(url) = Url::parse(url) else {
            return Route::Block("(unparsable URL)".into());
        };
        if let Some(host) = url.host_str().filter(|h| is_intercom(h)) {
            let loader = (host == "widget.intercom.io" && url.path().starts_with("/widget/"))
                || host == "js.intercomcdn.com";
            return if loader { Route::Widget } else { Route::IntercomApi };
        }
        let origin = url.origin();
        if self.origins.contains(&origin) {
            Route::Continue
        } else {
            Route::Block(origin_text(&url))
        }
    }

    /// The command-line flags that keep Chromium inside the scope below the request pause.
    pub fn chromium_args(&self) -> Vec<String> {
        let mut hosts = BTreeSet::new();
        let mut pairs = BTreeSet::new();
        for origin in &self.origins {
            if let Origin::Tuple(_, host, port) = origin {
                hosts.insert(host.to_string());
                pairs.insert(format!("{host}:{port}"));
            }
        }
        let excluded: String = hosts.iter().map(|h| format!(", EXCLUDE {h}")).collect();
        // `<-loopback>` first: Chromium otherwise sends loopback addresses direct, and
        // an app's other ports on 127.0.0.1 are outside the scope too.
        let bypass: String = pairs.iter().map(|p| format!(";{p}")).collect();
        vec![
            format!("--host-resolver-rules=MAP * ~NOTFOUND{excluded}"),
            format!("--proxy-server={NOWHERE_PROXY}"),
            format!("--proxy-bypass-list=<-loopback>{bypass}"),
        ]
    }
}

/// `scheme://host[:port]` of a URL, as reported for blocked requests (never a path or
/// query, which may carry tokens).
pub fn origin_text(url: &Url) -> String {
    match url.origin() {
        origin @ Origin::Tuple(..) => origin.ascii_serialization(),
        Origin::Opaque(_) => format!("{}:", url.scheme()),
    }
}

fn is_intercom(host: &str) -> bool {
    INTERCOM_DOMAINS
        .iter()
        .any(|d| host == *d || host.strip_suffix(d).is_some_and(|rest| rest.ends_with('.')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        let urls = [
            "http://127.0.0.1:3000/",
            "http://127.0.0.1:3000/account",
            "https://app.example.com/",
            "http://[::1]:8080/logout",
        ]
        .map(|u| Url::parse(u).unwrap());
        Scope::new(urls.iter())
    }

    #[test]
    fn only_the_audited_origins_go_through() {
        let s = scope();
        assert_eq!(s.route("http://127.0.0.1:3000/static/app.js"), Route::Continue);
        assert_eq!(s.route("https://app.example.com:443/x"), Route::Continue);
        assert_eq!(s.route("http://[::1]:8080/"), Route::Continue);
        assert_eq!(
            s.route("http://127.0.0.1:3001/x?token=secret"),
            Route::Block("http://127.0.0.1:3001".into())
        );
        assert_eq!(
            s.route("http://app.example.com/"),
            Route::Block("http://app.example.com".into())
        );
        assert_eq!(
            s.route("https://www.google-analytics.com/collect"),
            Route::Block("https://www.google-analytics.com".into())
        );
    }

    #[test]
    fn intercom_never_leaves_the_browser() {
        let s = scope();
        assert_eq!(s.route("https://widget.intercom.io/widget/abc12345"), Route::Widget);
        assert_eq!(s.route("https://js.intercomcdn.com/frame-modern.abc.js"), Route::Widget);
        assert_eq!(s.route("https://widget.intercom.io/other"), Route::IntercomApi);
        assert_eq!(s.route("https://api-iam.intercom.io/messenger/web/ping"), Route::IntercomApi);
        assert_eq!(
            s.route("https://api-iam.eu.intercom.io/messenger/web/ping"),
            Route::IntercomApi
        );
        assert_eq!(s.route("wss://nexus-websocket-a.intercom.io/"), Route::IntercomApi);
        assert_eq!(s.route("https://static.intercomassets.com/a.png"), Route::IntercomApi);
        assert_eq!(
            s.route("https://notintercom.io/"),
            Route::Block("https://notintercom.io".into())
        );
    }

    #[test]
    fn chromium_resolves_and_connects_to_the_audited_hosts_only() {
        let args = scope().chromium_args();
        assert_eq!(args[0], "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE [::1], EXCLUDE app.example.com");
        assert_eq!(args[1], "--proxy-server=http://isp-audit-blocked.invalid:9");
        assert_eq!(
            args[2],
            "--proxy-bypass-list=<-loopback>;127.0.0.1:3000;[::1]:8080;app.example.com:443"
        );
    }
}
