//! `intercom`: the workspace, its secret and what tokens carry.

use super::*;

/// Intercom workspace settings.
#[derive(Debug, Clone)]
pub struct IntercomConfig {
    /// The workspace (app) id.
    pub app_id: String,
    /// The regional Messenger API base URL.
    pub api_base: String,
    /// The Messenger secret used to sign tokens.
    pub secret: Secret,
    /// Where the secret came from (for summaries).
    pub secret_source: SecretSource,
    /// `exp - iat` of every token.
    pub token_lifetime: Duration,
    /// Identity fields signed into the token besides `user_id`.
    pub claims: Vec<String>,
}

/// Known regional API bases.
const API_BASES: [(&str, &str); 3] = [
    ("us", "https://api-iam.intercom.io"),
    ("eu", "https://api-iam.eu.intercom.io"),
    ("au", "https://api-iam.au.intercom.io"),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileIntercom {
    app_id: Option<String>,
    api_base: Option<String>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    /// Accepted only to reject it with a helpful message.
    secret: Option<serde_yaml::Value>,
    token_lifetime: Option<String>,
    claims: Option<Vec<String>>,
}

pub(super) fn validate_intercom(
    i: Option<FileIntercom>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<IntercomConfig> {
    let i = i.ok_or_else(|| {
        ConfigError::new(
            "intercom",
            "the intercom section is required (app_id and secret_env or secret_file)",
        )
    })?;
    if i.secret.is_some() {
        return Err(ConfigError::new(
            "intercom.secret",
            "secrets are never written in the config file; use secret_env (an environment variable name) or secret_file (a path)",
        ));
    }
    let app_id = i.app_id.unwrap_or_default().trim().to_string();
    if app_id.is_empty() {
        return Err(ConfigError::new(
            "intercom.app_id",
            "the Intercom workspace id is required (Settings > Installation), e.g. app_id: abc12345",
        ));
    }
    if !app_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(ConfigError::new(
            "intercom.app_id",
            format!("{app_id:?} is not an Intercom app id (letters and digits only)"),
        ));
    }
    let api_base = match i.api_base.as_deref().map(str::trim) {
        None | Some("") => API_BASES[0].1.to_string(),
        Some(v) => match API_BASES.iter().find(|(k, _)| k.eq_ignore_ascii_case(v)) {
            Some((_, url)) => url.to_string(),
            None if v.starts_with("https://")
                && v.len() > "https://".len()
                && !v["https://".len()..].contains(['/', '"', '\'', '<', '>', '\\', ' ']) =>
            {
                v.to_string()
            }
            None => {
                return Err(ConfigError::new(
                    "intercom.api_base",
                    format!("{v:?} is neither us, eu, au nor an https://host URL without a path"),
                ))
            }
        },
    };
    let (secret, secret_source) = match (i.secret_env, i.secret_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "intercom.secret_env",
                "set only one of secret_env and secret_file",
            ))
        }
        (None, None) => {
            return Err(ConfigError::new(
                "intercom.secret_env",
                "the Messenger secret is required: set secret_env to the name of an environment variable holding it, or secret_file to a file path",
            ))
        }
        (Some(name), None) => match env(&name) {
            Some(v) if !v.trim().is_empty() => {
                (Secret::new(v.trim().as_bytes()), SecretSource::Env(name))
            }
            _ => {
                // The name is not repeated: it may be the secret itself, pasted by mistake.
                return Err(ConfigError::new(
                    "intercom.secret_env",
                    "the environment variable it names is not set or is empty; set secret_env to the variable's name (not the secret) and export the Messenger secret in it",
                ))
            }
        },
        (None, Some(path)) => match std::fs::read(&path) {
            Ok(bytes) if !bytes.trim_ascii().is_empty() => (
                Secret::new(bytes.trim_ascii().to_vec()),
                SecretSource::File(path),
            ),
            Ok(_) => {
                return Err(ConfigError::new(
                    "intercom.secret_file",
                    "the file it names is empty; put the Messenger secret in it",
                ))
            }
            Err(e) => {
                // The path is not repeated: it may be the secret itself, pasted by mistake.
                return Err(ConfigError::new(
                    "intercom.secret_file",
                    format!("the file it names cannot be read ({}); set secret_file to the path of a file holding the Messenger secret", e.kind()),
                ))
            }
        },
    };
    let token_lifetime = duration(
        "intercom.token_lifetime",
        i.token_lifetime.as_deref(),
        Duration::from_secs(3600),
    )?;
    if token_lifetime < Duration::from_secs(60) || token_lifetime > Duration::from_secs(7 * 86400)
    {
        return Err(ConfigError::new(
            "intercom.token_lifetime",
            "must be between 1m and 7d (Intercom suggests 1h to 2h)",
        ));
    }
    let claims = i
        .claims
        .unwrap_or_else(|| STANDARD_CLAIMS.iter().map(|s| s.to_string()).collect());
    for (n, c) in claims.iter().enumerate() {
        if c == "user_id" || c == "exp" || c == "iat" || c.is_empty() {
            return Err(ConfigError::new(
                format!("intercom.claims[{n}]"),
                format!("{c:?} cannot be listed: user_id, iat and exp are always set by the proxy"),
            ));
        }
    }
    Ok(IntercomConfig {
        app_id,
        api_base,
        secret,
        secret_source,
        token_lifetime,
        claims,
    })
}
