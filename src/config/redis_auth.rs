//! `username`, `password_env` and `password_file` beside a Redis address (a
//! redis_session source's `redis`, `identity.shared_cache`): the Redis password comes
//! from a variable or a file, like every other secret, instead of the URL.

use super::secret_source::{read_secret, SecretKeys};
use super::*;

/// How the proxy authenticates to a Redis, besides what its URL carries. `Debug`
/// shows the password's length only.
#[derive(Debug, Clone, Default)]
pub struct RedisAuth {
    /// The ACL user (`AUTH username password`); none for the default user.
    pub username: Option<String>,
    /// The password, and the variable or file it came from.
    pub password: Option<(Secret, SecretSource)>,
}

impl RedisAuth {
    /// " as user U with the password from env V", for summaries; empty without
    /// credentials.
    pub(super) fn describe(&self) -> String {
        let user = self.username.as_deref().map(|u| format!(" as user {u}")).unwrap_or_default();
        let password = match &self.password {
            Some((_, SecretSource::Env(name))) => format!(" with the password from env {name}"),
            Some((_, SecretSource::File(path))) => {
                format!(" with the password from file {}", path.display())
            }
            Some((_, SecretSource::Inline)) => " with a password set in code".to_string(),
            None => String::new(),
        };
        user + &password
    }
}

/// The auth keys of one Redis as the file has them (fields of the section that holds
/// `redis:`; serde's `flatten` cannot be combined with `deny_unknown_fields`).
pub(super) struct FileRedisAuth {
    pub username: Option<String>,
    pub password_env: Option<yaml_serde::Value>,
    pub password_file: Option<yaml_serde::Value>,
}

/// Validates the auth keys at `base` for `redis`: one password source at most, and
/// none when the URL carries one already; a `username` needs a password and must not
/// repeat a user the URL names.
pub(super) fn validate_redis_auth(
    base: &str,
    redis: &RedisTarget,
    f: FileRedisAuth,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RedisAuth> {
    let (env_key, file_key) = (format!("{base}.password_env"), format!("{base}.password_file"));
    let keys = SecretKeys { env_key: &env_key, file_key: &file_key, what: "the Redis password" };
    let from_file = f.password_file.is_some();
    let name =
        f.password_env.map(|v| one_string(&env_key, v, "an environment variable")).transpose()?;
    let path = f
        .password_file
        .map(|v| one_string(&file_key, v, "a file").map(PathBuf::from))
        .transpose()?;
    let password = read_secret(&keys, name, path, env)?;
    if let Some((secret, _)) = &password {
        let key = if from_file { file_key } else { env_key };
        if redis.carries_password() {
            return Err(ConfigError::new(key, "the Redis URL carries a password too; remove it from the URL (it belongs outside the config file)"));
        }
        if std::str::from_utf8(secret.expose()).is_err() {
            return Err(ConfigError::new(
                key,
                "the Redis password is not UTF-8 text; Redis clients send it as text",
            ));
        }
    }
    let username_key = format!("{base}.username");
    let username = match f.username {
        Some(u) if u.is_empty() || u.contains(char::is_whitespace) => {
            return Err(ConfigError::new(
                username_key,
                "an ACL user name is one word, e.g. username: app",
            ))
        }
        Some(_) if redis.names_user() => {
            return Err(ConfigError::new(
                username_key,
                "the Redis URL names a user too; keep one of them",
            ))
        }
        Some(_) if password.is_none() => {
            return Err(ConfigError::new(
                username_key,
                "an ACL user needs its password: set password_env or password_file",
            ))
        }
        other => other,
    };
    Ok(RedisAuth { username, password })
}

/// The string at `key`; anything else is an error that does not quote it (it may be
/// the password itself, pasted in place of the name of `what` holding it).
fn one_string(key: &str, value: yaml_serde::Value, what: &str) -> Result<String> {
    match value {
        yaml_serde::Value::String(s) => Ok(s),
        _ => Err(ConfigError::new(
            key,
            format!("must be a single string: the name of {what} holding the Redis password"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(source_keys: &str) -> std::result::Result<Config, ConfigError> {
        let yaml = format!(
            "listen: [\"127.0.0.1:8080\"]\nupstream: {{addresses: [\"127.0.0.1:3000\"]}}\nintercom: {{app_id: abc, secret_env: S, claims: []}}\nidentity: {{sources: [{{type: redis_session, redis: \"redis://h/0\", cookie: sid, fields: {{user_id: /u}}, {source_keys}}}]}}\n"
        );
        Config::from_yaml(&yaml, &|name| match name {
            "S" => Some("s".repeat(40)),
            "REDIS_PW" => Some("envPw123".to_string()),
            _ => None,
        })
    }

    #[test]
    fn the_summary_names_where_the_password_comes_from_and_never_shows_it() {
        let c = load("username: app, password_env: REDIS_PW").unwrap();
        let summary = c.summary();
        assert!(summary.contains("as user app with the password from env REDIS_PW"), "{summary}");
        assert!(
            !summary.contains("envPw123") && !format!("{c:?}").contains("envPw123"),
            "{summary}"
        );
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    }

    #[test]
    fn a_password_pasted_in_place_of_a_name_is_not_quoted_back() {
        for keys in ["password_env: 987654321", "password_file: [987654321]"] {
            let e = load(keys).unwrap_err();
            assert!(e.key.ends_with(keys.split(':').next().unwrap()), "{e}");
            assert!(!e.to_string().contains("987654321"), "{e}");
        }
    }
}
