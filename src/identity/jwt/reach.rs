//! `check -c`: whether the key URLs of the JWT sources answer. Reported as warnings,
//! never errors: the identity provider may be unreachable from where `check` runs
//! (a CI box) and reachable from where the proxy runs.

use jsonwebtoken::jwk::JwkSet;

use super::fetch::KeyFetcher;
use crate::config::{Config, KeySource, SourceConfig};

/// How long `check` waits for each key URL.
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// One warning per key URL that does not answer with usable keys.
pub fn key_url_warnings(config: &Config) -> Vec<String> {
    let mut urls = Vec::new();
    for (s, site) in config.sites.iter().enumerate() {
        let prefix = if config.sites.len() > 1 { format!("sites[{s}].") } else { String::new() };
        for (n, source) in site.identity.sources.iter().enumerate() {
            let keys = match source {
                SourceConfig::JwtCookie(c) => &c.verify.keys,
                SourceConfig::SignedHeader(c) => &c.verify.keys,
                _ => continue,
            };
            if let KeySource::JwksUrl(url) = keys {
                urls.push((format!("{prefix}identity.sources[{n}].jwks_url"), url.clone()));
            }
        }
    }
    if urls.is_empty() {
        return Vec::new();
    }
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return vec!["cannot start a runtime to check the JWKS URLs".into()];
    };
    let fetcher = KeyFetcher::default();
    urls.into_iter()
        .filter_map(|(key, url)| {
            let problem = match runtime.block_on(fetcher.get(&url, CHECK_TIMEOUT)) {
                Err(e) => Some(format!("cannot fetch {url} ({e})")),
                Ok(body) => match serde_json::from_slice::<JwkSet>(&body) {
                    Err(_) => Some(format!("{url} does not answer with a JWKS")),
                    Ok(set)
                        if set
                            .keys
                            .iter()
                            .all(|k| jsonwebtoken::DecodingKey::from_jwk(k).is_err()) =>
                    {
                        Some(format!("the JWKS at {url} holds no usable key"))
                    }
                    Ok(_) => None,
                },
            };
            problem.map(|p| format!("{key}: {p}; tokens cannot be verified until it answers"))
        })
        .collect()
}
