//! `identity.shared_cache`: one identity cache in Redis for every instance of the proxy,
//! so N instances behind a load balancer call the app's current-user endpoint once per
//! session, not N times.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::redis_auth::{validate_redis_auth, FileRedisAuth};
use super::redis_session::{redis_target, tls_ca, FileRedisTarget};
use super::*;

/// Default of `identity.shared_cache.timeout`: a healthy Redis answers in well under a
/// millisecond; past this the proxy asks the app itself instead of waiting.
pub const DEFAULT_SHARED_CACHE_TIMEOUT: Duration = Duration::from_millis(100);

/// Settings of the shared identity cache.
#[derive(Debug, Clone)]
pub struct SharedCacheConfig {
    /// The server or cluster.
    pub redis: RedisTarget,
    /// With `rediss://`: the CA to trust instead of the system's roots.
    pub tls_ca: Option<RedisCa>,
    /// The user and password to authenticate with, besides the URL's.
    pub auth: RedisAuth,
    /// Give up on Redis after this long (the proxy then asks the app itself).
    pub timeout: Duration,
    /// The key that names and seals entries, derived from the site's Intercom secret:
    /// instances that sign with the same secret share entries, and nobody who can only
    /// read or write Redis can read an identity or plant one.
    pub key: Secret,
}

impl SharedCacheConfig {
    /// The cache at `url` (not checked), sealed with a key derived from `intercom_secret`,
    /// with the default timeout.
    pub fn new(url: impl Into<String>, intercom_secret: &Secret) -> Self {
        SharedCacheConfig {
            redis: RedisTarget::Single(url.into()),
            tls_ca: None,
            auth: RedisAuth::default(),
            timeout: DEFAULT_SHARED_CACHE_TIMEOUT,
            key: derive_key(intercom_secret),
        }
    }
}

/// A key of its own for the cache, so the Messenger secret itself is used only to sign.
fn derive_key(secret: &Secret) -> Secret {
    Secret::new(subkey(secret.expose(), b"intercom-secure-proxy shared identity cache v1").to_vec())
}

/// HMAC-SHA256 of `label` under `key`: a key for one use, so no two uses share a key.
pub(crate) fn subkey(key: &[u8], label: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

/// `shared_cache:` in the file: a URL, or the long form.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum FileSharedCache {
    Url(String),
    Long(Box<FileSharedCacheLong>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSharedCacheLong {
    redis: Option<FileRedisTarget>,
    username: Option<String>,
    // Values of any type, so that a password pasted here is not quoted back by serde.
    password_env: Option<yaml_serde::Value>,
    password_file: Option<yaml_serde::Value>,
    tls_ca_file: Option<String>,
    timeout: Option<String>,
}

/// Validates `identity.shared_cache`; the key is derived from the site's secret.
pub(super) fn validate_shared_cache(
    f: FileSharedCache,
    secret: &Secret,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SharedCacheConfig> {
    const KEY: &str = "identity.shared_cache";
    let long = match f {
        FileSharedCache::Url(url) => FileSharedCacheLong {
            redis: Some(FileRedisTarget::One(url)),
            username: None,
            password_env: None,
            password_file: None,
            tls_ca_file: None,
            timeout: None,
        },
        FileSharedCache::Long(long) => *long,
    };
    let redis =
        redis_target(&format!("{KEY}.redis"), long.redis, "the Redis that holds the shared cache")?;
    let auth = FileRedisAuth {
        username: long.username,
        password_env: long.password_env,
        password_file: long.password_file,
    };
    Ok(SharedCacheConfig {
        tls_ca: long.tls_ca_file.map(|path| tls_ca(KEY, &redis, path)).transpose()?,
        auth: validate_redis_auth(KEY, &redis, auth, env)?,
        redis,
        timeout: positive_duration(
            &format!("{KEY}.timeout"),
            long.timeout.as_deref(),
            DEFAULT_SHARED_CACHE_TIMEOUT,
        )?,
        key: derive_key(secret),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(identity: &str) -> std::result::Result<Config, ConfigError> {
        let yaml = format!(
            "listen: [\"127.0.0.1:8080\"]\nupstream: {{addresses: [\"127.0.0.1:3000\"]}}\nintercom: {{app_id: abc, secret_env: S}}\nidentity: {identity}\n"
        );
        Config::from_yaml(&yaml, &|_| Some("s".repeat(40)))
    }

    const ENDPOINT: &str = "sources: [{type: current_user_endpoint, path: /api/me}]";

    #[test]
    fn a_url_or_the_long_form() {
        let c =
            load(&format!("{{shared_cache: \"redis://127.0.0.1:6379/2\", {ENDPOINT}}}")).unwrap();
        let shared = c.site().identity.shared_cache.clone().unwrap();
        assert_eq!(shared.redis.redacted(), "redis://127.0.0.1:6379/2");
        assert_eq!(shared.timeout, DEFAULT_SHARED_CACHE_TIMEOUT);
        let c = load(&format!(
            "{{shared_cache: {{redis: \"redis://h:6379\", timeout: 20ms}}, {ENDPOINT}}}"
        ))
        .unwrap();
        assert_eq!(
            c.site().identity.shared_cache.clone().unwrap().timeout,
            Duration::from_millis(20)
        );
    }

    #[test]
    fn mistakes_name_the_key() {
        let e = load(&format!("{{shared_cache: \"http://x\", {ENDPOINT}}}")).unwrap_err();
        assert_eq!(e.key, "identity.shared_cache.redis");
        let e = load(&format!("{{shared_cache: {{timeout: 1s}}, {ENDPOINT}}}")).unwrap_err();
        assert_eq!(e.key, "identity.shared_cache.redis");
        let e =
            load(&format!("{{shared_cache: {{redis: \"redis://h\", timeout: 0s}}, {ENDPOINT}}}"))
                .unwrap_err();
        assert_eq!(e.key, "identity.shared_cache.timeout");
        let e = load("{shared_cache: \"redis://h\", sources: [{type: trusted_header, trusted_cidrs: [\"10.0.0.1/32\"]}]}").unwrap_err();
        assert_eq!(e.key, "identity.shared_cache");
        assert!(e.message.contains("current_user_endpoint"), "{e}");
    }

    #[test]
    fn a_refused_address_never_echoes_its_password() {
        for cache in [
            "\"u:redisPw@127.0.0.1:6379\"",
            "{redis: \"u:redisPw@h/0\"}",
            "{redis: [\"u:redisPw@h:x\"]}",
        ] {
            let e = load(&format!("{{shared_cache: {cache}, {ENDPOINT}}}")).unwrap_err();
            assert!(e.key.starts_with("identity.shared_cache.redis"), "{cache}: {e}");
            assert!(!e.to_string().contains("redisPw"), "{e}");
        }
    }

    #[test]
    fn the_key_is_derived_and_never_printed() {
        let c = load(&format!("{{shared_cache: \"redis://u:hunter2@h/0\", {ENDPOINT}}}")).unwrap();
        let shared = c.site().identity.shared_cache.clone().unwrap();
        assert_ne!(
            shared.key.expose(),
            "s".repeat(40).as_bytes(),
            "not the Messenger secret itself"
        );
        assert_eq!(shared.key.expose().len(), 32);
        let debug = format!("{shared:?}");
        assert!(!debug.contains("hunter2") && !debug.contains(&"s".repeat(40)), "{debug}");
    }
}
