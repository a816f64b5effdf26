//! Every Redis the configuration names (of redis_session sources and the shared
//! identity cache), for `check` and `/readyz`. For `check`, a Redis that is down is a
//! warning, not an error: the proxy serves pages without tokens (or asks the app itself)
//! until it comes back.

use crate::config::{Config, SourceConfig};

use super::redis_store::Store;

/// One Redis the configuration names, with a store (connected on first use) to ask it.
pub(crate) struct ConfiguredRedis {
    /// Its site's index in `config.sites`.
    pub(crate) site: usize,
    /// Its key within the site: `identity.sources[n].redis` or `identity.shared_cache`.
    pub(crate) key: String,
    /// Whether it holds the shared identity cache (else a redis_session source's sessions).
    pub(crate) shared_cache: bool,
    /// Its URL(s), passwords redacted.
    pub(crate) url: String,
    pub(crate) store: Store,
}

/// Every Redis of every site, in file order: what `check` and `/readyz` ask.
pub(crate) fn configured(config: &Config) -> Vec<ConfiguredRedis> {
    let mut all = Vec::new();
    for (site, s) in config.sites.iter().enumerate() {
        for (n, source) in s.identity.sources.iter().enumerate() {
            if let SourceConfig::RedisSession(c) = source {
                all.push(ConfiguredRedis {
                    site,
                    key: format!("identity.sources[{n}].redis"),
                    shared_cache: false,
                    url: c.redis.redacted(),
                    store: Store::new(c.redis.clone(), c.tls_ca.clone(), c.auth.clone(), c.timeout),
                });
            }
        }
        if let Some(c) = &s.identity.shared_cache {
            all.push(ConfiguredRedis {
                site,
                key: "identity.shared_cache".to_string(),
                shared_cache: true,
                url: c.redis.redacted(),
                store: Store::new(c.redis.clone(), c.tls_ca.clone(), c.auth.clone(), c.timeout),
            });
        }
    }
    all
}

/// One sentence per Redis that does not answer a `PING` within its timeout, naming the
/// key and the redacted URL.
pub fn reachability_warnings(config: &Config) -> Vec<String> {
    let many = config.sites.len() > 1;
    let probes = configured(config);
    if probes.is_empty() {
        return Vec::new();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return vec![format!("cannot check Redis reachability: no async runtime ({e})")],
    };
    runtime.block_on(async {
        let mut out = Vec::new();
        for r in &probes {
            if let Err(why) = r.store.ping().await {
                let prefix = if many { format!("sites[{}].", r.site) } else { String::new() };
                let consequence = match r.shared_cache {
                    true => "each instance asks the app itself until it does",
                    false => "pages are served without Messenger tokens until it does",
                };
                out.push(format!(
                    "{prefix}{}: {} does not answer ({why}); {consequence}",
                    r.key, r.url
                ));
            }
        }
        out
    })
}
