//! # intercom-secure-proxy
//!
//! A Pingora reverse proxy that adds Intercom Messenger Secure Mode to web applications
//! that cannot be changed: it learns who is logged in from the app's own session, puts
//! a freshly signed `intercom_user_jwt` into every page the Messenger boots on, and
//! turns the app's logouts into real Intercom logouts.
//!
//! The modules follow the data through the proxy:
//!
//! - [`config`]: the YAML file, validated into [`config::Config`];
//! - [`identity`]: who is logged in (trusted headers, the app's current-user endpoint);
//! - [`token`]: where the JWT is signed (and cached per identity);
//! - [`script`]: the inline script that makes any page's Intercom code use the token;
//! - [`rewrite`]: streaming the HTML and placing that script, then getting out of the way;
//! - [`csp`], [`logout`], [`headers`]: Content-Security-Policy, logouts, response headers;
//! - [`hygiene`]: request checks, framing per client HTTP version, the validated host
//!   and cookies;
//! - [`upstream`] and [`connections`]: the app side (selection, the proxy's own
//!   exchanges, quick ACKs) and the client side (head deadline, keep-alive, connection
//!   cap, pipelining);
//! - [`warn`]: rate-limited warnings and what may be logged;
//! - [`proxy`] and [`server`]: the Pingora wiring (the sample app of `make demo` lives
//!   in the binary).
//!
//! Embed it in your own Pingora server with [`server::add_proxy`], or use
//! [`proxy::SecureModeProxy`] directly as a [`pingora::proxy::ProxyHttp`].

#![warn(missing_docs)]

pub mod config;
pub mod connections;
pub mod csp;
pub mod headers;
pub mod hygiene;
pub mod identity;
pub mod logout;
pub mod proxy;
pub mod rewrite;
pub mod script;
pub mod server;
pub mod token;
pub mod upstream;
pub mod warn;
