//! `intercom`: the workspace, its secret and what tokens carry.

use super::secret_source::{read_secret, SecretKeys};
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
    /// How pages identify the user: JWT, the deprecated `user_hash`, or both.
    pub mode: MessengerMode,
    /// How long before its token expires an open page fetches a fresh one.
    pub token_refresh_margin: Duration,
}

/// Default of `intercom.api_base`: the `us` region's base.
pub const DEFAULT_API_BASE: &str = "https://api-iam.intercom.io";
/// Default of `intercom.token_lifetime` (Intercom suggests 1h to 2h).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Shortest `intercom.token_lifetime` accepted.
pub const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Longest `intercom.token_lifetime` accepted (7 days).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(7 * 86400);
/// Default of `intercom.claims`: the standard identity fields, `email` and `name`.
pub const DEFAULT_CLAIMS: &[&str] = &STANDARD_CLAIMS;
/// Names `intercom.claims` may not list: the proxy always sets them itself.
pub const RESERVED_CLAIMS: &[&str] = &["user_id", "iat", "exp"];

impl IntercomConfig {
    /// The workspace `app_id` signing with `secret` (given in code, so
    /// [`SecretSource::Inline`]), with the `us` API base, the default token lifetime and
    /// the default claims, as a file naming only the app id and a secret would give.
    /// The app id is taken as is, not checked.
    pub fn new(app_id: impl Into<String>, secret: Secret) -> IntercomConfig {
        IntercomConfig {
            app_id: app_id.into(),
            api_base: DEFAULT_API_BASE.to_string(),
            secret,
            secret_source: SecretSource::Inline,
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            claims: DEFAULT_CLAIMS.iter().map(|c| c.to_string()).collect(),
            mode: DEFAULT_MESSENGER_MODE,
            token_refresh_margin: DEFAULT_TOKEN_REFRESH_MARGIN,
        }
    }
}

/// Known regional API bases.
const API_BASES: [(&str, &str); 3] = [
    ("us", DEFAULT_API_BASE),
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
    secret: Option<yaml_serde::Value>,
    token_lifetime: Option<String>,
    claims: Option<Vec<String>>,
    mode: Option<String>,
    token_refresh_margin: Option<String>,
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
        None | Some("") => DEFAULT_API_BASE.to_string(),
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
    let keys = SecretKeys {
        env_key: "intercom.secret_env",
        file_key: "intercom.secret_file",
        what: "the Messenger secret",
    };
    let Some((secret, secret_source)) = read_secret(&keys, i.secret_env, i.secret_file, env)?
    else {
        return Err(ConfigError::new(
            "intercom.secret_env",
            "the Messenger secret is required: set secret_env to the name of an environment variable holding it, or secret_file to a file path",
        ));
    };
    let token_lifetime =
        duration("intercom.token_lifetime", i.token_lifetime.as_deref(), DEFAULT_TOKEN_LIFETIME)?;
    if !(MIN_TOKEN_LIFETIME..=MAX_TOKEN_LIFETIME).contains(&token_lifetime) {
        // The bounds are spelled as operators write them (humantime would say "7days").
        return Err(ConfigError::new(
            "intercom.token_lifetime",
            "must be between 1m and 7d (Intercom suggests 1h to 2h)",
        ));
    }
    let claims = i.claims.unwrap_or_else(|| DEFAULT_CLAIMS.iter().map(|s| s.to_string()).collect());
    for (n, c) in claims.iter().enumerate() {
        if c.is_empty() || RESERVED_CLAIMS.contains(&c.as_str()) {
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
        mode: messenger_mode(i.mode.as_deref())?,
        token_refresh_margin: refresh_margin(i.token_refresh_margin.as_deref(), token_lifetime)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_matches_a_section_with_only_app_id_and_secret() {
        let file = FileIntercom {
            app_id: Some("abc12345".into()),
            api_base: None,
            secret_env: Some("SECRET".into()),
            secret_file: None,
            secret: None,
            token_lifetime: None,
            claims: None,
            mode: None,
            token_refresh_margin: None,
        };
        let validated = validate_intercom(Some(file), &|_| Some("s3cret".into())).unwrap();
        let built = IntercomConfig::new("abc12345", Secret::new(b"s3cret".to_vec()));
        assert_eq!(built.app_id, validated.app_id);
        assert_eq!(built.api_base, validated.api_base);
        assert_eq!(built.secret.expose(), validated.secret.expose());
        assert!(matches!(built.secret_source, SecretSource::Inline));
        assert_eq!(built.token_lifetime, validated.token_lifetime);
        assert_eq!(built.claims, validated.claims);
        assert_eq!(built.mode, validated.mode);
        assert_eq!(built.token_refresh_margin, validated.token_refresh_margin);
    }
}
