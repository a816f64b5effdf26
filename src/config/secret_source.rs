//! A secret read from the environment variable or the file that `<name>_env` or
//! `<name>_file` names: secrets never live in the config file itself.

use super::*;

/// The pair of keys that name one secret, and what the secret is (for messages).
pub(super) struct SecretKeys<'a> {
    /// The dotted key of the `_env` form, e.g. `intercom.secret_env`.
    pub env_key: &'a str,
    /// The dotted key of the `_file` form, e.g. `intercom.secret_file`.
    pub file_key: &'a str,
    /// What the secret is, e.g. "the Messenger secret".
    pub what: &'a str,
}

/// The secret `name` (an environment variable) or `path` (a file) holds, trimmed of
/// surrounding whitespace; `None` when neither is set. Errors never repeat the name or
/// the path: either may be the secret itself, pasted by mistake.
pub(super) fn read_secret(
    keys: &SecretKeys<'_>,
    name: Option<String>,
    path: Option<PathBuf>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(Secret, SecretSource)>> {
    let (env_field, file_field) = (last_segment(keys.env_key), last_segment(keys.file_key));
    let what = keys.what;
    match (name, path) {
        (Some(_), Some(_)) => Err(ConfigError::new(keys.env_key, format!("set only one of {env_field} and {file_field}"))),
        (None, None) => Ok(None),
        (Some(name), None) => match env(&name) {
            Some(v) if !v.trim().is_empty() => Ok(Some((Secret::new(v.trim().as_bytes()), SecretSource::Env(name)))),
            _ => Err(ConfigError::new(
                keys.env_key,
                format!("the environment variable it names is not set or is empty; set {env_field} to the variable's name (not the secret) and export {what} in it"),
            )),
        },
        (None, Some(path)) => match std::fs::read(&path) {
            Ok(bytes) if !bytes.trim_ascii().is_empty() => Ok(Some((Secret::new(bytes.trim_ascii().to_vec()), SecretSource::File(path)))),
            Ok(_) => Err(ConfigError::new(keys.file_key, format!("the file it names is empty; put {what} in it"))),
            Err(e) => Err(ConfigError::new(
                keys.file_key,
                format!("the file it names cannot be read ({}); set {file_field} to the path of a file holding {what}", e.kind()),
            )),
        },
    }
}

/// `password_env` of `identity.sources[0].password_env`.
fn last_segment(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}
