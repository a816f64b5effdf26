//! `admin`: the admin listener (metrics, health checks and the live rollout), and the
//! token that may change the rollout.

use super::*;
use secret_source::{read_secret, SecretKeys};

/// The admin listener: `GET /metrics`, `/healthz`, `/readyz` and `/rollout`, and
/// `PUT /rollout` with the token.
#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    /// Where it listens; off when `None`.
    pub listen: Option<SocketAddr>,
    /// The bearer token `PUT /rollout` requires (`admin.token_env` or
    /// `admin.token_file`); without one, `PUT` is refused.
    pub token: Option<Secret>,
    /// Where the token was read from, for `check` (never the value).
    pub token_source: Option<SecretSource>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAdmin {
    listen: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
}

/// The keys of the admin token.
const TOKEN_KEYS: SecretKeys<'static> = SecretKeys {
    env_key: "admin.token_env",
    file_key: "admin.token_file",
    what: "the admin token (a long random string)",
};

pub(super) fn validate_admin(
    a: FileAdmin,
    proxy: &[Listener],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AdminConfig> {
    let token = read_secret(&TOKEN_KEYS, a.token_env, a.token_file, env)?;
    let Some(text) = a.listen else {
        if token.is_some() {
            return Err(ConfigError::new("admin.listen", "the admin token is for the admin listener: set admin.listen too, e.g. \"127.0.0.1:9090\""));
        }
        return Ok(AdminConfig::default());
    };
    let addr = socket_addr("admin.listen", &text)?;
    if let Some(l) = proxy.iter().find(|l| binds_overlap(&addr, &l.addr)) {
        return Err(ConfigError::new(
            "admin.listen",
            format!("{addr} overlaps the proxy's listener {}; give the admin listener a port of its own", l.addr),
        ));
    }
    let (token, token_source) = token.unzip();
    Ok(AdminConfig { listen: Some(addr), token, token_source })
}
