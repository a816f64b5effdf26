//! `check`: whether each configured Redis (of redis_session sources and the shared
//! identity cache) answers. A Redis that is down is a warning, not an error: the proxy
//! serves pages without tokens (or asks the app itself) until it comes back.

use crate::config::{Config, SourceConfig};

use super::redis_store::Store;

/// One sentence per Redis that does not answer a `PING` within its timeout, naming the
/// key and the redacted URL.
pub fn reachability_warnings(config: &Config) -> Vec<String> {
    let many = config.sites.len() > 1;
    let mut probes = Vec::new();
    for (s, site) in config.sites.iter().enumerate() {
        let prefix = if many { format!("sites[{s}].") } else { String::new() };
        for (n, source) in site.identity.sources.iter().enumerate() {
            if let SourceConfig::RedisSession(c) = source {
                let consequence = "pages are served without Messenger tokens until it does";
                let store = Store::new(c.redis.clone(), c.tls_ca.clone(), c.timeout);
                probes.push((format!("{prefix}identity.sources[{n}].redis"), c.redis.redacted(), store, consequence));
            }
        }
        if let Some(c) = &site.identity.shared_cache {
            let consequence = "each instance asks the app itself until it does";
            let store = Store::new(c.redis.clone(), c.tls_ca.clone(), c.timeout);
            probes.push((format!("{prefix}identity.shared_cache"), c.redis.redacted(), store, consequence));
        }
    }
    if probes.is_empty() {
        return Vec::new();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return vec![format!("cannot check Redis reachability: no async runtime ({e})")],
    };
    runtime.block_on(async {
        let mut out = Vec::new();
        for (key, url, store, consequence) in &probes {
            if let Err(why) = store.ping().await {
                out.push(format!("{key}: {url} does not answer ({why}); {consequence}"));
            }
        }
        out
    })
}
