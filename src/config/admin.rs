//! `admin`: the admin listener (metrics and health checks).

use super::*;

/// The admin listener: `GET /metrics`, `/healthz` and `/readyz`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where it listens; off when `None`.
    pub listen: Option<SocketAddr>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAdmin {
    listen: Option<String>,
}

pub(super) fn validate_admin(a: FileAdmin, proxy: &[Listener]) -> Result<AdminConfig> {
    let Some(text) = a.listen else { return Ok(AdminConfig::default()) };
    let addr = socket_addr("admin.listen", &text)?;
    if let Some(l) = proxy.iter().find(|l| binds_overlap(&addr, &l.addr)) {
        return Err(ConfigError::new(
            "admin.listen",
            format!("{addr} overlaps the proxy's listener {}; give the admin listener a port of its own", l.addr),
        ));
    }
    Ok(AdminConfig { listen: Some(addr) })
}
