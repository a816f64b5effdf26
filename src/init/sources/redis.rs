//! `redis_session` (with `--redis`): the app's session as it lies in Redis.
//!
//! Each session cookie's value names its session: the id itself, or express-session's
//! signed `s:<id>.<signature>` (unsigned here by stripping: finding the key needs no
//! secret, the written configuration does). The layouts session stores write by
//! default are looked up first; then a bounded `SCAN MATCH *<id>*` (and the same for
//! the id's SHA-256, Rack's private ids) finds the key under any prefix. The session is
//! decoded as JSON or PHP with the proxy's own decoders, and the JSON pointers to the
//! page's user id, email and name make the candidate; its `key` is the found key with
//! `{id}` (or `{id_sha256}`) in place of the id.
//!
//! Redis is only read: [`Reader`] sends `TYPE`, `STRLEN`, `GET` and `SCAN` and nothing
//! else (the client's handshake aside). A key holds a session id, so no key is ever
//! shown: only its template.

use std::time::Duration;

use ::redis::{Cmd, FromRedisValue, RedisError};
use serde_json::Value;

use super::{Candidate, Evidence};
use crate::audit::input::CookieArg;
use crate::init::candidate::Attempt;
use crate::init::pointer::Fields;
use crate::init::yaml::quote;
use intercom_secure_proxy::config::{
    redact_url, Secret, SessionFormat, SESSION_ID_PLACEHOLDER, SESSION_ID_SHA256_PLACEHOLDER,
};
use intercom_secure_proxy::identity::redis_session::{
    document, express, plausible_session_id, session_key, DecodeError, MAX_SESSION_BYTES,
    MAX_SESSION_ID,
};

/// The source `type`.
const SOURCE: &str = "redis_session";

/// How long connecting and each command may take. A healthy Redis answers a `SCAN`
/// round in about a millisecond; this only bounds a Redis that does not answer.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Keys one `SCAN` round looks at.
const SCAN_COUNT: u32 = 1000;

/// Rounds one `SCAN` may take (about 100,000 keys): a search that does not end on a
/// Redis holding millions of keys, whose sessions then need a known layout.
const SCAN_ROUNDS: usize = 100;

/// Of the first `SCAN` round that matched, the keys tried at most: a store may keep
/// siblings of a session (its expiry, its index) under keys holding the id too.
const MAX_KEYS: usize = 4;

/// Ids shorter than this are not looked for: `*<id>*` would match keys that merely
/// contain a short string (session ids are 26 to 64 characters).
const MIN_ID: usize = 16;

/// The variable the written configuration reads a `--redis` URL's password from: the
/// file must not hold it.
const PASSWORD_ENV: &str = "REDIS_PASSWORD";

/// The keys session stores write by default, and who writes them; looked up before any
/// `SCAN`.
const LAYOUTS: [(&str, &str); 7] = [
    ("sess:{id}", "connect-redis (express-session)"),
    ("PHPREDIS_SESSION:{id}", "phpredis (PHP)"),
    (":1:django.contrib.sessions.cache{id}", "django-redis (Django's cache sessions)"),
    ("session:{id}", "redis-store (Rails, namespace session)"),
    ("2::{id_sha256}", "redis-session-store 0.11.6+ (Rails, Rack's private id)"),
    ("session:2::{id_sha256}", "redis-store (Rails, namespace session, Rack's private id)"),
    ("{id}", "redis-session-store (Rails) without a key_prefix"),
];

/// Looks for each session cookie's session in the Redis of `--redis`; the first
/// candidate the acceptance check accepts.
pub(super) fn find(ev: &Evidence<'_>, attempts: &mut Vec<Attempt>) -> Option<Candidate> {
    let Some(url) = ev.plan.options.redis.as_deref() else {
        attempts.push(Attempt::rejected(SOURCE, "(redis)", "no --redis given".into()));
        return None;
    };
    let shown = redact_url(url);
    if ev.learned.session.is_empty() {
        attempts.push(Attempt::rejected(
            SOURCE,
            &shown,
            "no session cookie to look up in Redis".into(),
        ));
        return None;
    }
    let mut reader = match Reader::connect(url) {
        Ok(reader) => reader,
        Err(why) => {
            attempts.push(Attempt::rejected(SOURCE, &shown, why));
            return None;
        }
    };
    ev.learned.session.iter().find_map(|cookie| from_cookie(ev, &mut reader, cookie, attempts))
}

/// The candidates of one session cookie: each key found holding its session.
fn from_cookie(
    ev: &Evidence<'_>,
    reader: &mut Reader,
    cookie: &CookieArg,
    attempts: &mut Vec<Attempt>,
) -> Option<Candidate> {
    let tried = format!("cookie {}", cookie.name);
    let Some(session) = SessionId::of(&cookie.value) else {
        let why = format!("its value is not a session id (visible ASCII, {MIN_ID} to {MAX_SESSION_ID} characters, or express-session's s:<id>.<signature>)");
        attempts.push(Attempt::rejected(SOURCE, &tried, why));
        return None;
    };
    let found = match locate(reader, &session.id) {
        Ok(found) => found,
        Err(why) => {
            attempts.push(Attempt::rejected(SOURCE, &tried, why));
            return None;
        }
    };
    for key in found {
        let tried = format!("cookie {} → key {}", cookie.name, key.template);
        match candidate(ev, reader, cookie, &session, &key, &tried) {
            Ok(candidate) => {
                if let Some(accepted) = ev.try_candidate(candidate, attempts) {
                    return Some(accepted);
                }
            }
            Err(why) => attempts.push(Attempt::rejected(SOURCE, &tried, why)),
        }
    }
    None
}

/// The session id a cookie's value names, as the app's store keys it.
#[derive(Debug, PartialEq)]
struct SessionId {
    /// The id (percent-decoded, unsigned).
    id: String,
    /// Whether the value is express-session's signed `s:<id>.<signature>`.
    signed: bool,
}

impl SessionId {
    /// The id of a cookie value, as the proxy's redis_session source reads it (with or
    /// without `cookie_signature: express`); `None` when it cannot be a session id.
    fn of(value: &str) -> Option<SessionId> {
        let value = express::percent_decode(value.trim().trim_matches('"'))?;
        let session = match value.strip_prefix("s:").and_then(|signed| signed.rsplit_once('.')) {
            Some((id, _signature)) if !id.is_empty() => {
                SessionId { id: id.to_string(), signed: true }
            }
            _ => SessionId { id: value, signed: false },
        };
        (session.id.len() >= MIN_ID && plausible_session_id(&session.id)).then_some(session)
    }
}

/// A key that holds the session.
struct Found {
    /// The key itself (it holds the id: never shown).
    key: String,
    /// The key with the id's placeholder.
    template: String,
    /// How it was found, for the configuration's comment.
    how: String,
}

/// The keys that hold session `id`: the first known layout's, else those of the first
/// `SCAN` round that matched the id (or its SHA-256). `Err` says what was searched.
fn locate(reader: &mut Reader, id: &str) -> Result<Vec<Found>, String> {
    for (template, store) in LAYOUTS {
        let key = session_key(template, id);
        if reader.kind(&key)? != "none" {
            return Ok(vec![Found {
                key,
                template: template.to_string(),
                how: format!("the session is under {template}, where {store} keeps them"),
            }]);
        }
    }
    let known: Vec<&str> = LAYOUTS.iter().map(|(template, _)| *template).collect();
    let hashed = session_key(SESSION_ID_SHA256_PLACEHOLDER, id);
    let mut stopped = false;
    for (value, what) in [(id, "the id"), (hashed.as_str(), "the id's SHA-256")] {
        let pattern = format!("*{}*", glob_escape(value));
        match reader.scan(&pattern)? {
            Scan::Matched(keys) => {
                let found: Vec<Found> = keys
                    .into_iter()
                    .filter_map(|key| {
                        let template = key_template(&key, id)?;
                        Some(Found {
                            how: format!(
                                "the session is under {template}, found by SCAN MATCH for {what}"
                            ),
                            key,
                            template,
                        })
                    })
                    .collect();
                if found.is_empty() {
                    return Err(format!("the keys holding {what} hold it more than once, so no key template names them"));
                }
                return Ok(found);
            }
            Scan::Complete => {}
            Scan::Stopped => stopped = true,
        }
    }
    let scanned = match stopped {
        true => format!("a SCAN MATCH for the id and its SHA-256 stopped after {SCAN_ROUNDS} rounds of {SCAN_COUNT} keys without finding it; give the key by hand"),
        false => "a SCAN MATCH of every key for the id and its SHA-256 found none".into(),
    };
    Err(format!(
        "no key in {} holds its session: none of the known layouts ({}), and {scanned}",
        reader.shown,
        known.join(", ")
    ))
}

/// The key template of `key`, a key found for session `id`: the id (or its SHA-256) in
/// place of its placeholder; `None` when neither is in the key exactly once.
fn key_template(key: &str, id: &str) -> Option<String> {
    // session_key of the bare placeholder is the digest as the proxy computes it.
    let hashed = session_key(SESSION_ID_SHA256_PLACEHOLDER, id);
    let (value, placeholder) =
        [(id, SESSION_ID_PLACEHOLDER), (hashed.as_str(), SESSION_ID_SHA256_PLACEHOLDER)]
            .into_iter()
            .find(|(value, _)| key.matches(value).count() == 1)?;
    Some(key.replacen(value, placeholder, 1))
}

/// `s` matching itself only in a Redis glob pattern (`*`, `?`, `[`, `]` and `\` escaped).
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The candidate for the session under `found`, or why it cannot be one.
fn candidate(
    ev: &Evidence<'_>,
    reader: &mut Reader,
    cookie: &CookieArg,
    session: &SessionId,
    found: &Found,
    tried: &str,
) -> Result<Candidate, String> {
    let kind = reader.kind(&found.key)?;
    if kind != "string" {
        return Err(format!("the key is a Redis {kind}, and redis_session reads a string (GET)"));
    }
    let len = reader.strlen(&found.key)?;
    if len > MAX_SESSION_BYTES {
        return Err(format!(
            "the session is {len} bytes, more than the {MAX_SESSION_BYTES} the proxy reads"
        ));
    }
    let data = reader.get(&found.key)?.ok_or("the session expired while init read it")?;
    let (format, doc) = decode(&data)?;
    let fields = Fields::find(&doc, &ev.learned.answer, "the session")?;
    let secret_env = signature_secret(ev, cookie, session)?;
    let mut yaml = format!(
        "    - type: {SOURCE}\n{}",
        redis_lines(ev.plan.options.redis.as_deref().unwrap_or_default())?
    );
    yaml.push_str(&format!("      # the session cookie (its removal lost the user): its id names the session's key\n      cookie: {}\n", quote(&cookie.name)));
    if let Some(env) = secret_env {
        yaml.push_str(&format!(
            "      # {} is express-session's signed s:<id>.<signature>: verified with the app's session secret, from the variable given with --cookie-secret-env\n      cookie_signature: express\n      cookie_secrets_env: [{env}]\n",
            cookie.name
        ));
    }
    yaml.push_str(&format!("      # {}\n      key: {}\n", found.how, quote(&found.template)));
    yaml.push_str(&format!("      # {}\n      format: {}\n", format_why(format), format.as_str()));
    let (fields_yaml, claims) = (fields.yaml("matched"), fields.claims());
    yaml.push_str(&fields_yaml);
    Ok(Candidate {
        source: SOURCE,
        tried: tried.to_string(),
        why: format!(
            "user id in the Redis session at {} → {}, matched the page's user_id",
            found.template, fields.user_id
        ),
        yaml,
        claims,
    })
}

/// The session as one JSON value, in the first format that reads it; the serializations
/// the proxy refuses (Ruby Marshal, Python pickle, php_binary) are named with their fix.
fn decode(data: &[u8]) -> Result<(SessionFormat, Value), String> {
    for format in [SessionFormat::Json, SessionFormat::Php, SessionFormat::PhpSerialize] {
        match document(format, data) {
            Ok(doc) => return Ok((format, doc)),
            Err(
                e @ (DecodeError::RubyMarshal
                | DecodeError::PythonPickle
                | DecodeError::PhpBinary
                | DecodeError::TooLarge(_)),
            ) => return Err(e.to_string()),
            Err(_) => {}
        }
    }
    Err("the session is neither JSON nor PHP's session format (php or php_serialize)".into())
}

/// The configuration's comment on `format`.
fn format_why(format: SessionFormat) -> &'static str {
    match format {
        SessionFormat::Json => "the session is JSON",
        SessionFormat::Php => "the session is in PHP's session format (session.serialize_handler=php)",
        SessionFormat::PhpSerialize => "the session is PHP's serialize() of $_SESSION (session.serialize_handler=php_serialize)",
    }
}

/// For express-session's signed cookies, the variable of `--cookie-secret-env`, checked
/// to verify this cookie (`Ok(None)` for an unsigned cookie).
fn signature_secret(
    ev: &Evidence<'_>,
    cookie: &CookieArg,
    session: &SessionId,
) -> Result<Option<String>, String> {
    if !session.signed {
        return Ok(None);
    }
    let name = &cookie.name;
    let Some(env) = ev.plan.options.cookie_secret_env.clone() else {
        return Err(format!("{name} is signed by express-session: give its secret's variable with --cookie-secret-env NAME"));
    };
    match std::env::var(&env) {
        Ok(secret) if !secret.is_empty() => match express::unsign(&cookie.value, &[Secret::new(secret)]) {
            Some(_) => Ok(Some(env)),
            None => Err(format!("the secret in {env} (--cookie-secret-env) does not verify {name}'s signature: is it the app's express-session secret?")),
        },
        _ => Err(format!("{env} (--cookie-secret-env) is not set: export the app's express-session secret in it")),
    }
}

/// The source's `redis` (and `password_env`) lines for the `--redis` URL: never its
/// password, which the proxy then reads from [`PASSWORD_ENV`]; `Err` when that
/// variable is not set (the acceptance check and the proxy could not read Redis).
fn redis_lines(url: &str) -> Result<String, String> {
    let (redis, had_password) = without_password(url);
    let mut lines = format!("      # the Redis of --redis\n      redis: {}\n", quote(&redis));
    if had_password {
        if std::env::var(PASSWORD_ENV).map_or(true, |v| v.trim().is_empty()) {
            return Err(format!(
                "the --redis URL carries a password, which the configuration reads from {PASSWORD_ENV} instead of the file: export it there and run init again"
            ));
        }
        lines.push_str(&format!("      # the --redis URL's password: read from this variable, never from this file\n      password_env: {PASSWORD_ENV}\n"));
    }
    Ok(lines)
}

/// The URL without its password, and whether it had one (the user, if any, is kept:
/// the password then comes from [`PASSWORD_ENV`]). Everything before the last `@` is
/// the user info, as [`redact_url`] reads it.
fn without_password(url: &str) -> (String, bool) {
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_string(), false) };
    let Some((userinfo, host)) = rest.rsplit_once('@') else { return (url.to_string(), false) };
    match userinfo.split_once(':') {
        Some(("", _)) => (format!("{scheme}://{host}"), true),
        Some((user, _)) => (format!("{scheme}://{user}@{host}"), true),
        // `redis://word@host`: the client reads a user without a password and sends no
        // AUTH, so the word does nothing; it may be a password pasted without its colon.
        None => (format!("{scheme}://{host}"), false),
    }
}

/// What a bounded `SCAN` found.
enum Scan {
    /// The keys of the first round that matched (at most [`MAX_KEYS`]).
    Matched(Vec<String>),
    /// Every key was looked at; none matched.
    Complete,
    /// [`SCAN_ROUNDS`] rounds matched nothing.
    Stopped,
}

/// A connection to the Redis of `--redis` that only reads: it has no method that sends
/// anything but `TYPE`, `STRLEN`, `GET` or `SCAN` (the client's handshake aside:
/// `AUTH`, `SELECT`, `CLIENT SETINFO`).
struct Reader {
    connection: ::redis::Connection,
    /// The URL without its password, for messages.
    shown: String,
}

impl Reader {
    /// Connects, within [`TIMEOUT`]; errors show the URL without its password.
    fn connect(url: &str) -> Result<Reader, String> {
        let shown = redact_url(url);
        let client = ::redis::Client::open(url)
            .map_err(|_| format!("{shown} is not a Redis URL the client reads"))?;
        let connection = client
            .get_connection_with_timeout(TIMEOUT)
            .map_err(|e| format!("cannot read {shown}: {}", describe(&e)))?;
        let timeouts = connection
            .set_read_timeout(Some(TIMEOUT))
            .and_then(|()| connection.set_write_timeout(Some(TIMEOUT)));
        timeouts.map_err(|e| format!("cannot read {shown}: {}", describe(&e)))?;
        Ok(Reader { connection, shown })
    }

    fn query<T: FromRedisValue>(&mut self, cmd: &Cmd, name: &str) -> Result<T, String> {
        cmd.query(&mut self.connection)
            .map_err(|e| format!("Redis answered {name} with {}", describe(&e)))
    }

    /// `TYPE key`: `none` when there is no such key.
    fn kind(&mut self, key: &str) -> Result<String, String> {
        self.query(::redis::cmd("TYPE").arg(key), "TYPE")
    }

    /// `STRLEN key`.
    fn strlen(&mut self, key: &str) -> Result<usize, String> {
        self.query(::redis::cmd("STRLEN").arg(key), "STRLEN")
    }

    /// `GET key`.
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.query(::redis::cmd("GET").arg(key), "GET")
    }

    /// `SCAN cursor MATCH pattern COUNT 1000`, round after round, until a round
    /// matches, the cursor comes back to 0, or [`SCAN_ROUNDS`] rounds. Keys that are
    /// not UTF-8 cannot be a template in the file and are passed over.
    fn scan(&mut self, pattern: &str) -> Result<Scan, String> {
        let mut cursor: u64 = 0;
        for _ in 0..SCAN_ROUNDS {
            let (next, keys): (u64, Vec<Vec<u8>>) = self.query(
                ::redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT),
                "SCAN",
            )?;
            let keys: Vec<String> =
                keys.into_iter().filter_map(|k| String::from_utf8(k).ok()).take(MAX_KEYS).collect();
            if !keys.is_empty() {
                return Ok(Scan::Matched(keys));
            }
            if next == 0 {
                return Ok(Scan::Complete);
            }
            cursor = next;
        }
        Ok(Scan::Stopped)
    }
}

/// A Redis error without anything of the request or the answer: Redis' own error
/// (`NOPERM …`, `WRONGPASS …`), the I/O error, or the kind of client error (a type
/// error's text would quote the answer, which may hold a key).
fn describe(e: &RedisError) -> String {
    match (e.code(), e.is_io_error()) {
        (Some(code), _) => {
            format!("{code} {}", e.detail().unwrap_or_default()).trim_end().to_string()
        }
        (None, true) => e.to_string(),
        (None, false) => e.category().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "Ql6Ih_5cz8HQrGbuGVSsdBZxnhG-2Rq1";

    #[test]
    fn express_cookies_are_unsigned_by_stripping_and_others_are_the_id() {
        let signed = express::sign(ID, b"any secret");
        assert!(signed.starts_with("s%3A"));
        assert_eq!(SessionId::of(&signed), Some(SessionId { id: ID.into(), signed: true }));
        let plain = express::percent_decode(&signed).unwrap();
        assert_eq!(SessionId::of(&plain), Some(SessionId { id: ID.into(), signed: true }));
        assert_eq!(
            SessionId::of("abcdef0123456789abcdef"),
            Some(SessionId { id: "abcdef0123456789abcdef".into(), signed: false })
        );
        // Percent-encoded ids are decoded, as the proxy decodes them.
        assert_eq!(
            SessionId::of("abc%2Bdef0123456789abcdef").map(|s| s.id).as_deref(),
            Some("abc+def0123456789abcdef")
        );
        assert_eq!(
            SessionId::of("\"abcdef0123456789abcdef\"").map(|s| s.id).as_deref(),
            Some("abcdef0123456789abcdef")
        );
    }

    #[test]
    fn values_that_cannot_be_session_ids_are_not_looked_for() {
        for value in [
            "1",
            "short-id",
            "s%3A.sig",
            "abc def0123456789abcdef",
            "bad%ZZescape0123456789",
            &"x".repeat(300),
        ] {
            assert_eq!(SessionId::of(value), None, "{value}");
        }
    }

    #[test]
    fn glob_patterns_match_the_id_literally() {
        assert_eq!(glob_escape("a*b?c[d]e\\f-g^h"), "a\\*b\\?c\\[d\\]e\\\\f-g^h");
        assert_eq!(glob_escape(ID), ID);
    }

    #[test]
    fn key_templates_put_the_placeholder_where_the_id_was() {
        assert_eq!(key_template(&format!("sess:{ID}"), ID).as_deref(), Some("sess:{id}"));
        assert_eq!(
            key_template(&format!("myapp:{ID}:data"), ID).as_deref(),
            Some("myapp:{id}:data")
        );
        let hashed = session_key(SESSION_ID_SHA256_PLACEHOLDER, "abc");
        assert_eq!(hashed, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(
            key_template(&format!("myapp:session:2::{hashed}"), "abc").as_deref(),
            Some("myapp:session:2::{id_sha256}")
        );
        assert_eq!(key_template(&format!("{ID}:{ID}"), ID), None);
        assert_eq!(key_template("sess:other", ID), None);
        // Every known layout gives back its own template.
        for (template, _) in LAYOUTS {
            assert_eq!(key_template(&session_key(template, ID), ID).as_deref(), Some(template));
        }
    }

    #[test]
    fn the_written_url_has_no_password() {
        assert_eq!(
            without_password("redis://127.0.0.1:6379/0"),
            ("redis://127.0.0.1:6379/0".into(), false)
        );
        assert_eq!(
            without_password("redis://:pw@127.0.0.1:6379/0"),
            ("redis://127.0.0.1:6379/0".into(), true)
        );
        assert_eq!(
            without_password("rediss://app:p@ss/w@r.example:6380/2"),
            ("rediss://app@r.example:6380/2".into(), true)
        );
        assert_eq!(without_password("redis://word@h/1"), ("redis://h/1".into(), false));
    }

    #[test]
    fn the_format_is_the_one_that_reads_the_session() {
        let (format, doc) = decode(br#"{"passport":{"user":"u-1"}}"#).unwrap();
        assert_eq!(
            (format, doc.pointer("/passport/user").and_then(Value::as_str)),
            (SessionFormat::Json, Some("u-1"))
        );
        let (format, doc) = decode(br#"user|s:5:"alice";account|a:1:{s:2:"id";i:1001;}"#).unwrap();
        assert_eq!(
            (format, doc.pointer("/account/id").map(Value::to_string)),
            (SessionFormat::Php, Some("1001".into()))
        );
        let (format, _) = decode(br#"a:1:{s:4:"user";s:5:"alice";}"#).unwrap();
        assert_eq!(format, SessionFormat::PhpSerialize);
        assert!(decode(b"\x04\x08{\x06I\"\x0cuser_id\x06:\x06ETi\x06")
            .unwrap_err()
            .contains("serializer: :json"));
        assert!(decode(b"user=secret").unwrap_err().contains("neither JSON nor PHP"));
    }
}
