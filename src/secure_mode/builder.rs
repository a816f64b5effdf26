//! Configuring Secure Mode in code: the same validated types the YAML file produces,
//! with the same defaults.

use super::{BuildError, SecureMode};
use crate::config::{
    ConfigError, HostPattern, IdentityConfig, InjectConfig, IntercomConfig, LogoutConfig,
    RolloutConfig, SiteConfig, SourceConfig, UpstreamConfig,
};

/// Builds a [`SecureMode`] in code. Start from [`SecureMode::builder`]; everything not
/// set has the default the YAML file has.
///
/// ```
/// use intercom_secure_proxy::config::{EndpointConfig, IntercomConfig, LogoutConfig, PathPattern, Secret, SourceConfig, UpstreamConfig};
/// use intercom_secure_proxy::SecureMode;
///
/// let intercom = IntercomConfig::new("abc12345", Secret::new(b"messenger-secret".to_vec()));
/// let mut logout = LogoutConfig::default();
/// logout.paths.push((vec!["GET".into(), "POST".into()], PathPattern::parse("/logout")?));
/// let secure_mode = SecureMode::builder(intercom, UpstreamConfig::new(["127.0.0.1:3000"]))
///     .identity_source(SourceConfig::CurrentUserEndpoint(EndpointConfig::new("/api/me", "/id")))
///     .logout(logout)
///     .build()?;
/// assert!(secure_mode.app_peer().is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SecureModeBuilder {
    site: SiteConfig,
}

impl SecureModeBuilder {
    pub(super) fn new(intercom: IntercomConfig, upstream: UpstreamConfig) -> Self {
        SecureModeBuilder {
            site: SiteConfig {
                hosts: vec![HostPattern::Any],
                name: None,
                upstream,
                intercom,
                identity: IdentityConfig::default(),
                inject: InjectConfig::default(),
                logout: LogoutConfig::default(),
                rollout: RolloutConfig::default(),
            },
        }
    }

    /// Adds an identity source after the ones already added (first hit wins).
    pub fn identity_source(mut self, source: SourceConfig) -> Self {
        self.site.identity.sources.push(source);
        self
    }

    /// Shares current-user endpoint answers with other instances through Redis
    /// (build it with [`SharedCacheConfig::new`](crate::config::SharedCacheConfig::new)
    /// from the same secret as the Intercom settings, or instances will not share).
    pub fn shared_cache(mut self, cache: crate::config::SharedCacheConfig) -> Self {
        self.site.identity.shared_cache = Some(cache);
        self
    }

    /// Which responses are rewritten, and how.
    pub fn inject(mut self, inject: InjectConfig) -> Self {
        self.site.inject = inject;
        self
    }

    /// How logouts are detected and answered.
    pub fn logout(mut self, logout: LogoutConfig) -> Self {
        self.site.logout = logout;
        self
    }

    /// Enforce, report only or off, and for which share of users (the file's
    /// `rollout`).
    pub fn rollout(mut self, rollout: RolloutConfig) -> Self {
        self.site.rollout = rollout;
        self
    }

    /// Checks what the file validation would refuse and builds Secure Mode.
    pub fn build(self) -> Result<SecureMode, BuildError> {
        let s = &self.site;
        let missing = |key: &str, fix: &str| Err(BuildError::Config(ConfigError::new(key, fix)));
        if s.intercom.app_id.trim().is_empty() {
            return missing(
                "intercom.app_id",
                "set the workspace's app id (Settings > Installation in Intercom)",
            );
        }
        if s.intercom.secret.expose().is_empty() {
            return missing(
                "intercom.secret",
                "set the Messenger secret (Settings > Messenger > Security)",
            );
        }
        if s.upstream.addresses.is_empty() {
            return missing("upstream.addresses", "give at least one host:port of the app");
        }
        if s.identity.sources.is_empty() {
            return missing(
                "identity.sources",
                "add at least one identity source with identity_source()",
            );
        }
        SecureMode::new(&self.site)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, TrustedHeaderConfig};

    fn key_of(result: Result<SecureMode, BuildError>) -> String {
        match result {
            Err(BuildError::Config(e)) => e.key,
            Err(e) => panic!("not a config error: {e}"),
            Ok(_) => panic!("built without a required setting"),
        }
    }

    #[test]
    fn what_the_file_requires_the_builder_requires() {
        let source = || {
            SourceConfig::TrustedHeader(TrustedHeaderConfig::new(
                vec!["127.0.0.1/32".parse().unwrap()],
                "X-User",
            ))
        };
        let intercom =
            |app_id: &str, secret: &[u8]| IntercomConfig::new(app_id, Secret::new(secret.to_vec()));
        let app = || UpstreamConfig::new(["127.0.0.1:3000"]);
        let build = |i, u, with_source: bool| {
            let b = SecureMode::builder(i, u);
            if with_source { b.identity_source(source()) } else { b }.build()
        };
        assert_eq!(key_of(build(intercom(" ", b"s"), app(), true)), "intercom.app_id");
        assert_eq!(key_of(build(intercom("abc", b""), app(), true)), "intercom.secret");
        assert_eq!(
            key_of(build(intercom("abc", b"s"), UpstreamConfig::new(Vec::<String>::new()), true)),
            "upstream.addresses"
        );
        assert_eq!(key_of(build(intercom("abc", b"s"), app(), false)), "identity.sources");
        assert!(build(intercom("abc", b"s"), app(), true).is_ok());
    }
}
