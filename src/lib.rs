//! # intercom-secure-proxy
//!
//! Adds Intercom Messenger Secure Mode to web applications that cannot be changed:
//! it learns who is logged in from the app's own session, puts a freshly signed
//! `intercom_user_jwt` into every page the Messenger boots on, and turns the app's
//! logouts into real Intercom logouts.
//!
//! Two ways to use it:
//!
//! - **as middleware** in your own Pingora proxy: build a [`SecureMode`] per app (from
//!   a validated [`Config`] or with [`SecureMode::builder`]), keep a [`RequestState`]
//!   in your `CTX`, and call its phase methods from your hooks. Your routing, your
//!   `upstream_peer` and your filters stay yours. See `examples/embed.rs`.
//! - **as a whole proxy**: [`server::build`] (what the binary runs), or
//!   [`server::add_proxy`] to add the [`SecureModeProxy`] service to your server.
//!
//! The modules follow the data: [`config`] → [`identity`] (who is logged in) → the
//! token ([`TokenSigner`]) → [`page`] (the script, the CSP, the streaming rewriter) →
//! logouts → the Pingora wiring ([`SecureMode`], [`SecureModeProxy`], [`server`]),
//! with the app behind it in [`upstream`].
//!
//! Install [`RedactingLogger`] around your logger so that nothing Pingora logs on
//! your behalf carries a session cookie or a token.

#![deny(missing_docs)]

mod access_log;
mod admin;
pub mod config;
mod connections;
mod headers;
pub mod identity;
mod in_flight;
mod intercom_cookies;
mod logout;
mod messenger_token;
mod metrics;
pub mod page;
mod proxy;
mod refusals;
mod rollout;
mod script_json;
mod secure_mode;
pub mod server;
pub mod upstream;
mod user_hash;
mod warn;

#[cfg(test)]
mod properties;

/// Internals the benchmarks (`benches/`) measure one by one: compiled only with the
/// `bench-internals` feature, and not an API.
#[cfg(feature = "bench-internals")]
pub mod bench_internals {
    /// Decodes a PHP session (`session.serialize_handler = php`) into JSON, as the
    /// `redis_session` source does; `Err` says why not.
    pub fn parse_php_session(data: &[u8]) -> Result<serde_json::Value, String> {
        crate::identity::redis_session::parse_php_session(data)
    }
}

pub use config::{Config, ConfigError, SiteConfig};
pub use identity::{Company, Identity};
pub use messenger_token::{TokenError, TokenSigner};
pub use proxy::{ProxyCtx, SecureModeProxy};
pub use secure_mode::{BuildError, RequestState, SecureMode, SecureModeBuilder};
pub use user_hash::UserHasher;
pub use warn::RedactingLogger;
// The rate-limited warning every module logs through, as `crate::warn_limited!`.
pub(crate) use warn::warn_limited;
