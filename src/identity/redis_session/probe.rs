//! `check`: whether each redis_session source's Redis answers. A Redis that is down is a
//! warning, not an error: the proxy serves pages without tokens until it comes back.

use crate::config::{Config, SourceConfig};

use super::RedisSessionSource;

/// One sentence per redis_session source whose Redis does not answer a `PING` within the
/// source's timeout, naming the key and the redacted URL.
pub fn reachability_warnings(config: &Config) -> Vec<String> {
    let many = config.sites.len() > 1;
    let mut probes = Vec::new();
    for (s, site) in config.sites.iter().enumerate() {
        for (n, source) in site.identity.sources.iter().enumerate() {
            if let SourceConfig::RedisSession(c) = source {
                let prefix = if many { format!("sites[{s}].") } else { String::new() };
                probes.push((format!("{prefix}identity.sources[{n}].redis"), c.redis.redacted(), RedisSessionSource::new(c.clone())));
            }
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
        for (key, url, source) in &probes {
            if let Err(why) = source.probe().await {
                out.push(format!(
                    "{key}: {url} does not answer ({why}); pages are served without Messenger tokens until it does"
                ));
            }
        }
        out
    })
}
