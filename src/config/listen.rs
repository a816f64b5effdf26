//! `listen`: the addresses the proxy listens on, plain or TLS (with HTTP/2).

use super::*;

/// One listening address.
#[derive(Debug, Clone)]
pub struct Listener {
    /// The address.
    pub addr: SocketAddr,
    /// TLS settings; plain HTTP when `None`.
    pub tls: Option<TlsListener>,
}

/// TLS on a listener (rustls).
#[derive(Debug, Clone)]
pub struct TlsListener {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// Offer HTTP/2 (ALPN `h2`, then `http/1.1`).
    pub h2: bool,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tls {
            None => write!(f, "{}", self.addr),
            Some(t) => write!(f, "{} (TLS{})", self.addr, if t.h2 { ", h2" } else { "" }),
        }
    }
}

/// A `listen` entry: `"ip:port"`, or a mapping with `address`, `tls` and `h2`. Read as
/// a plain YAML value and sorted out in [`validate_listen`], so that a mistake inside
/// an entry is reported with its index and field (serde's untagged enums say only
/// that nothing matched).
pub(super) type FileListen = yaml_serde::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileListener {
    address: String,
    tls: Option<FileTls>,
    #[serde(default)]
    h2: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTls {
    cert_file: PathBuf,
    key_file: PathBuf,
}

pub(super) fn validate_listen(entries: Vec<FileListen>) -> Result<Vec<Listener>> {
    if entries.is_empty() {
        return Err(ConfigError::new(
            "listen",
            "at least one listen address is required, e.g. listen: [\"127.0.0.1:8080\"]",
        ));
    }
    let mut out: Vec<Listener> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let key = format!("listen[{i}]");
        let listener = match entry {
            yaml_serde::Value::String(s) => Listener { addr: socket_addr(&key, &s)?, tls: None },
            mapping @ yaml_serde::Value::Mapping(_) => {
                let l: FileListener = yaml_serde::from_value(mapping).map_err(|e| {
                    ConfigError::new(&key, format!("{e}; write an entry like \"127.0.0.1:8080\" or {{address: \"0.0.0.0:8443\", tls: {{cert_file: ..., key_file: ...}}, h2: true}}"))
                })?;
                let addr = socket_addr(&format!("{key}.address"), &l.address)?;
                let tls = match (l.tls, l.h2) {
                    (None, true) => {
                        return Err(ConfigError::new(
                            format!("{key}.h2"),
                            "HTTP/2 is offered over TLS only; add tls: {cert_file: ..., key_file: ...}",
                        ))
                    }
                    (None, false) => None,
                    (Some(t), h2) => Some(validate_tls(&format!("{key}.tls"), t, h2)?),
                };
                Listener { addr, tls }
            }
            _ => {
                return Err(ConfigError::new(
                    key,
                    "write an address like \"127.0.0.1:8080\", or {address: ..., tls: {cert_file: ..., key_file: ...}, h2: true}",
                ))
            }
        };
        if let Some(earlier) = out.iter().find(|b| binds_overlap(&listener.addr, &b.addr)) {
            return Err(ConfigError::new(
                key,
                format!("{} overlaps {}, listed earlier: the second bind would fail; list each address once", listener.addr, earlier.addr),
            ));
        }
        out.push(listener);
    }
    Ok(out)
}

/// The files must be readable and hold a certificate chain and a key rustls accepts.
fn validate_tls(key: &str, t: FileTls, h2: bool) -> Result<TlsListener> {
    for (name, path) in [("cert_file", &t.cert_file), ("key_file", &t.key_file)] {
        if let Err(e) = std::fs::File::open(path) {
            return Err(ConfigError::new(
                format!("{key}.{name}"),
                format!("cannot read {}: {e}", path.display()),
            ));
        }
    }
    let (cert, private) = (t.cert_file.display().to_string(), t.key_file.display().to_string());
    // Pingora's own loader (what the listener will use) finds nothing in a file that
    // is not PEM, or in a key given as the certificate.
    if !matches!(pingora::tls::load_certs_and_key_files(&cert, &private), Ok(Some(_))) {
        return Err(ConfigError::new(
            key,
            "the certificate and key do not load; give a PEM certificate chain (cert_file) and its PEM private key (key_file)",
        ));
    }
    Ok(TlsListener { cert_file: t.cert_file, key_file: t.key_file, h2 })
}
