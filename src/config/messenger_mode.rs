//! `intercom.mode` and `intercom.token_refresh_margin`: how the Messenger learns who
//! the user is (a signed JWT, the deprecated `user_hash`, or both during a switch), and
//! when open pages fetch a fresh token.

use super::*;

/// How pages identify the user to the Messenger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessengerMode {
    /// Secure Mode: a signed `intercom_user_jwt`; plain `user_id`, `email` and
    /// `user_hash` are removed from what the Messenger receives.
    #[default]
    Jwt,
    /// The deprecated Identity Verification: the page gives `user_id`, `email` and
    /// `user_hash` (lowercase hex HMAC-SHA256 of the user id with the Messenger
    /// secret), set by the proxy; no JWT.
    UserHash,
    /// Both during the switch: the JWT, and `user_id`, `email`, `user_hash`.
    Both,
}

impl MessengerMode {
    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            MessengerMode::Jwt => "jwt",
            MessengerMode::UserHash => "user_hash",
            MessengerMode::Both => "both",
        }
    }

    /// Pages get a signed JWT.
    pub fn signs_jwt(self) -> bool {
        matches!(self, MessengerMode::Jwt | MessengerMode::Both)
    }

    /// Pages get `user_id`, `email` and `user_hash` from the proxy.
    pub fn sends_user_hash(self) -> bool {
        matches!(self, MessengerMode::UserHash | MessengerMode::Both)
    }
}

/// Default of `intercom.mode`.
pub const DEFAULT_MESSENGER_MODE: MessengerMode = MessengerMode::Jwt;
/// Default of `intercom.token_refresh_margin`: how long before a token expires an open
/// page fetches a fresh one (capped at half the token lifetime).
pub const DEFAULT_TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(300);

pub(super) fn messenger_mode(value: Option<&str>) -> Result<MessengerMode> {
    match value.map(str::trim) {
        None => Ok(DEFAULT_MESSENGER_MODE),
        Some("jwt") => Ok(MessengerMode::Jwt),
        Some("user_hash") => Ok(MessengerMode::UserHash),
        Some("both") => Ok(MessengerMode::Both),
        Some(v) => Err(ConfigError::new(
            "intercom.mode",
            format!("{v:?} is not jwt, user_hash or both (user_hash → both → jwt is the migration path)"),
        )),
    }
}

/// The refresh margin: as set (above zero and below the lifetime, so a page never
/// asks for a token it already has), else the default capped at half the lifetime.
pub(super) fn refresh_margin(value: Option<&str>, lifetime: Duration) -> Result<Duration> {
    const KEY: &str = "intercom.token_refresh_margin";
    let Some(text) = value else {
        return Ok(DEFAULT_TOKEN_REFRESH_MARGIN.min(lifetime / 2));
    };
    let margin = duration(KEY, Some(text), DEFAULT_TOKEN_REFRESH_MARGIN)?;
    if margin.is_zero() || margin >= lifetime {
        return Err(ConfigError::new(
            KEY,
            format!(
                "must be above zero and below intercom.token_lifetime ({}), e.g. 5m",
                humantime::format_duration(lifetime)
            ),
        ));
    }
    Ok(margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_defaults_within_the_lifetime_and_is_checked_against_it() {
        let hour = Duration::from_secs(3600);
        assert_eq!(refresh_margin(None, hour).unwrap(), DEFAULT_TOKEN_REFRESH_MARGIN);
        assert_eq!(refresh_margin(None, Duration::from_secs(60)).unwrap(), Duration::from_secs(30));
        assert_eq!(
            refresh_margin(Some("55s"), Duration::from_secs(60)).unwrap(),
            Duration::from_secs(55)
        );
        for bad in ["0s", "1m", "2h"] {
            assert_eq!(
                refresh_margin(Some(bad), Duration::from_secs(60)).unwrap_err().key,
                "intercom.token_refresh_margin"
            );
        }
        assert_eq!(messenger_mode(Some("hash")).unwrap_err().key, "intercom.mode");
        assert_eq!(messenger_mode(None).unwrap(), MessengerMode::Jwt);
    }
}
