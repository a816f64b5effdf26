//! From the bytes Redis holds to an identity: refuse serializations that cannot be read
//! safely, decode JSON or PHP (either readable serializer) into one JSON value, then
//! map it with JSON pointers.

use serde_json::Value;

use super::php::{self, PhpError};
use crate::config::{RedisSessionConfig, SessionFormat};
use crate::identity::json_fields;
use crate::identity::Identity;

/// Sessions larger than this are not read (a login session is a few hundred bytes).
pub const MAX_SESSION_BYTES: usize = 512 * 1024;

/// Why a stored session could not be read. Texts name formats, sizes, pointers and
/// kinds; never the session's content.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DecodeError {
    /// A Ruby Marshal dump (`\x04\x08`): reading it safely is not possible.
    #[error("the session is a Ruby Marshal dump, which the proxy does not read (unmarshalling untrusted data is unsafe); switch the app's session serializer to JSON (redis-session-store: `serializer: :json`) and set format: json")]
    RubyMarshal,
    /// A Python pickle (`\x80` + protocol): reading it safely is not possible.
    #[error("the session is a Python pickle, which the proxy does not read (unpickling untrusted data is unsafe); switch the app to a JSON session serializer (django-redis: `SERIALIZER: django_redis.serializers.json.JSONSerializer`) and set format: json")]
    PythonPickle,
    /// Larger than [`MAX_SESSION_BYTES`].
    #[error("the session is {0} bytes, more than the {MAX_SESSION_BYTES} read")]
    TooLarge(usize),
    /// `format: json`, but the value is not JSON.
    #[error("the session is not JSON ({0}); check `format` against what the app writes")]
    NotJson(String),
    /// `format: php` or `php_serialize`, but the value is not in that format.
    #[error("the PHP session cannot be read: {0}; check `format` against the app's session.serialize_handler (php or php_serialize)")]
    Php(#[from] PhpError),
    /// A PHP session written by the other readable serializer than `format` names.
    #[error("the PHP session was written with session.serialize_handler={0}; set format: {0}")]
    OtherPhpHandler(&'static str),
    /// A PHP session written by `session.serialize_handler=php_binary`.
    #[error("the PHP session was written with session.serialize_handler=php_binary, which the proxy does not read; set session.serialize_handler=php_serialize in the app's php.ini and format: php_serialize")]
    PhpBinary,
    /// The user id is there but cannot be an id.
    #[error("the user id at {pointer} is {kind}")]
    UserId {
        /// The configured pointer.
        pointer: String,
        /// What was found there.
        kind: &'static str,
    },
}

/// The identity in a stored session; `Ok(None)` when the session has no user (a
/// visitor's session, or a logged-out one).
pub fn identity(config: &RedisSessionConfig, data: &[u8]) -> Result<Option<Identity>, DecodeError> {
    let doc = document(config.format, data)?;
    map_fields(config, &doc)
}

/// The session as one JSON value.
pub fn document(format: SessionFormat, data: &[u8]) -> Result<Value, DecodeError> {
    refuse_unsafe_serializations(data)?;
    if data.len() > MAX_SESSION_BYTES {
        return Err(DecodeError::TooLarge(data.len()));
    }
    match format {
        // serde_json bounds nesting itself (128 levels).
        SessionFormat::Json => serde_json::from_slice(data).map_err(|e| {
            DecodeError::NotJson(format!(
                "{:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ))
        }),
        SessionFormat::Php => {
            php_session(data, php::parse_session, (php::parse_serialized, "php_serialize"))
        }
        SessionFormat::PhpSerialize => {
            php_session(data, php::parse_serialized, (php::parse_session, "php"))
        }
    }
}

type PhpParser = fn(&[u8]) -> Result<Value, PhpError>;

/// A PHP session read with `parse`; when that fails, an error naming the serializer
/// that did write it, if it is the `other` readable one or `php_binary`.
fn php_session(
    data: &[u8],
    parse: PhpParser,
    (other, other_name): (PhpParser, &'static str),
) -> Result<Value, DecodeError> {
    parse(data).map_err(|e| {
        if other(data).is_ok() {
            DecodeError::OtherPhpHandler(other_name)
        } else if php::looks_like_php_binary(data) {
            DecodeError::PhpBinary
        } else {
            DecodeError::Php(e)
        }
    })
}

/// Ruby Marshal starts with its version `4.8`; pickle protocols 2 and later start with
/// `\x80` and the protocol number. Neither is ever valid JSON or PHP session text.
fn refuse_unsafe_serializations(data: &[u8]) -> Result<(), DecodeError> {
    match data {
        [0x04, 0x08, ..] => Err(DecodeError::RubyMarshal),
        [0x80, 2..=5, ..] => Err(DecodeError::PythonPickle),
        _ => Ok(()),
    }
}

/// Reads the configured pointers; a missing, null or empty user id means no user.
fn map_fields(config: &RedisSessionConfig, doc: &Value) -> Result<Option<Identity>, DecodeError> {
    json_fields::identity(doc, &config.fields)
        .map_err(|kind| DecodeError::UserId { pointer: config.fields.user_id.clone(), kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(format: SessionFormat, user_id: &str) -> RedisSessionConfig {
        let mut c = RedisSessionConfig::new("redis://127.0.0.1/", "sid", user_id);
        c.format = format;
        c.fields.email = Some("/profile/email".into());
        c.fields.name = Some("/profile/name".into());
        c
    }

    #[test]
    fn an_express_session_maps_to_its_user() {
        let data = br#"{"cookie":{"originalMaxAge":null,"httpOnly":true,"path":"/"},"user":"alice","passport":{"user":"u-alice-1001"},"profile":{"email":"alice@example.com","name":"Alice"}}"#;
        let id = identity(&config(SessionFormat::Json, "/passport/user"), data).unwrap().unwrap();
        assert_eq!(id.user_id, "u-alice-1001");
        assert_eq!(id.email.as_deref(), Some("alice@example.com"));
        assert_eq!(id.name.as_deref(), Some("Alice"));
    }

    #[test]
    fn a_session_without_a_user_is_no_identity() {
        let data = br#"{"cookie":{"path":"/"}}"#;
        assert!(identity(&config(SessionFormat::Json, "/passport/user"), data).unwrap().is_none());
        let php = br#"csrf|s:4:"abcd";"#;
        assert!(identity(&config(SessionFormat::Php, "/account/id"), php).unwrap().is_none());
    }

    #[test]
    fn a_php_session_maps_with_the_same_pointers() {
        let data = br#"user|s:5:"alice";account|a:2:{s:2:"id";i:1001;s:5:"email";s:17:"alice@example.com";}"#;
        let mut c = config(SessionFormat::Php, "/account/id");
        c.fields.email = Some("/account/email".into());
        let id = identity(&c, data).unwrap().unwrap();
        assert_eq!(id.user_id, "1001");
        assert_eq!(id.email.as_deref(), Some("alice@example.com"));
    }

    #[test]
    fn a_php_serialize_session_maps_with_the_same_pointers() {
        let data = br#"a:2:{s:4:"user";s:5:"alice";s:7:"account";a:2:{s:2:"id";i:1001;s:5:"email";s:17:"alice@example.com";}}"#;
        let mut c = config(SessionFormat::PhpSerialize, "/account/id");
        c.fields.email = Some("/account/email".into());
        let id = identity(&c, data).unwrap().unwrap();
        assert_eq!((id.user_id.as_str(), id.email.as_deref()), ("1001", Some("alice@example.com")));
    }

    #[test]
    fn the_wrong_php_format_names_the_serializer_that_wrote_the_session() {
        let php = br#"account|a:1:{s:2:"id";i:1;}"#;
        let serialized = br#"a:1:{s:7:"account";a:1:{s:2:"id";i:1;}}"#;
        let binary = b"\x07accounta:1:{s:2:\"id\";i:1;}";
        let e = identity(&config(SessionFormat::Php, "/account/id"), serialized).unwrap_err();
        assert!(e.to_string().contains("set format: php_serialize"), "{e}");
        let e = identity(&config(SessionFormat::PhpSerialize, "/account/id"), php).unwrap_err();
        assert!(e.to_string().contains("set format: php"), "{e}");
        for format in [SessionFormat::Php, SessionFormat::PhpSerialize] {
            let e = identity(&config(format, "/account/id"), binary).unwrap_err();
            assert!(matches!(e, DecodeError::PhpBinary), "{e}");
            assert!(e.to_string().contains("session.serialize_handler=php_serialize"), "{e}");
        }
    }

    #[test]
    fn ruby_marshal_is_refused_with_the_fix() {
        // Marshal.dump({"user_id" => 1}) in Ruby 3 (format 4.8, an IVAR-wrapped UTF-8 key).
        let data = b"\x04\x08{\x06I\"\x0cuser_id\x06:\x06ETi\x06";
        for format in [SessionFormat::Json, SessionFormat::Php] {
            let e = identity(&config(format, "/user_id"), data).unwrap_err();
            assert!(matches!(e, DecodeError::RubyMarshal));
            assert!(e.to_string().contains("serializer: :json"), "{e}");
        }
    }

    #[test]
    fn python_pickle_is_refused_with_the_fix() {
        // pickle.dumps({"_auth_user_id": "1"}, protocol=4), as written by Python 3.11.
        let data = b"\x80\x04\x95\x18\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x0d_auth_user_id\x94\x8c\x011\x94s.";
        let e = identity(&config(SessionFormat::Json, "/_auth_user_id"), data).unwrap_err();
        assert!(matches!(e, DecodeError::PythonPickle));
        assert!(e.to_string().contains("JSONSerializer"), "{e}");
    }

    #[test]
    fn garbage_and_oversized_sessions_are_errors_that_name_no_content() {
        let e = identity(&config(SessionFormat::Json, "/u"), b"user=secret-value").unwrap_err();
        assert!(matches!(e, DecodeError::NotJson(_)) && !e.to_string().contains("secret"), "{e}");
        let big = vec![b' '; MAX_SESSION_BYTES + 1];
        assert!(matches!(
            identity(&config(SessionFormat::Json, "/u"), &big),
            Err(DecodeError::TooLarge(_))
        ));
        let e =
            identity(&config(SessionFormat::Json, "/u"), br#"{"u":{"id":"secret"}}"#).unwrap_err();
        assert!(e.to_string().contains("an object") && !e.to_string().contains("secret"), "{e}");
    }
}
