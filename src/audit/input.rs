//! What the operator asked for: the URLs and cookies of `audit`, checked before any
//! browser starts. Errors name the argument but never repeat a cookie's value (it is a
//! live session).

use url::Url;

/// A usage problem: exit code 2, one message naming what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// An audited or logout URL that is not an absolute http(s) URL.
    #[error("{what} {text:?} is not an absolute http:// or https:// URL: {reason}")]
    BadUrl {
        /// `URL #2` or `--logout`.
        what: String,
        /// The argument as given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--cookie` that is not `NAME=VALUE`; the value is never shown.
    #[error("--cookie #{index}: {reason}; write it as NAME=VALUE, e.g. --cookie session=abc123")]
    BadCookie {
        /// Which `--cookie`, from 1.
        index: usize,
        /// What is wrong, without the value.
        reason: String,
    },
    /// A `--header` that is not `NAME=VALUE`; the value is never shown (it may be a
    /// signed assertion).
    #[error(
        "--header #{index}: {reason}; write it as NAME=VALUE, e.g. --header X-Forwarded-User=alice"
    )]
    BadHeader {
        /// Which `--header`, from 1.
        index: usize,
        /// What is wrong, without the value.
        reason: String,
    },
    /// The `-c` file could not be loaded (its message names the key).
    #[error("{0}")]
    Config(#[from] intercom_secure_proxy::config::ConfigError),
    /// With `-c` and `sites:`, no site answers an audited host.
    #[error("-c: no site of the configuration answers host {host:?} (of {url}), so its tokens cannot be checked; audit it without -c or add the host to a site's hosts")]
    NoSite {
        /// The host.
        host: String,
        /// The audited URL.
        url: String,
    },
}

/// Parses an audited URL (`what` names it in errors): absolute, http or https, with a host.
pub fn parse_url(what: &str, text: &str) -> Result<Url, UsageError> {
    let bad = |reason: String| UsageError::BadUrl {
        what: what.to_string(),
        text: text.to_string(),
        reason,
    };
    let url = Url::parse(text).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!("the scheme is {}", url.scheme())));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("there is no host".into()));
    }
    Ok(url)
}

/// A cookie to send to the audited hosts: the session the pages are audited with.
#[derive(Clone)]
pub struct CookieArg {
    /// The cookie's name.
    pub name: String,
    /// Its value; never printed.
    pub value: String,
}

impl std::fmt::Debug for CookieArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CookieArg({}=[redacted])", self.name)
    }
}

/// Parses each value of a repeated flag (`--cookie`, `--header`) with `parse`, numbered
/// from 1 as its messages count them.
pub fn parse_each<T>(
    values: &[String],
    parse: fn(usize, &str) -> Result<T, UsageError>,
) -> Result<Vec<T>, UsageError> {
    values.iter().enumerate().map(|(i, v)| parse(i + 1, v)).collect()
}

/// Parses the `index`-th `--cookie` (from 1): an RFC 6265 token, `=`, cookie octets
/// (optionally in double quotes).
pub fn parse_cookie(index: usize, text: &str) -> Result<CookieArg, UsageError> {
    let bad = |reason: &str| UsageError::BadCookie { index, reason: reason.to_string() };
    let (name, value) = text.split_once('=').ok_or_else(|| bad("there is no '='"))?;
    if name.is_empty() {
        return Err(bad("the name is empty"));
    }
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !name.bytes().all(token) {
        return Err(bad(
            "the name has a character a cookie name cannot have (space, separator or control)",
        ));
    }
    let inner = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
    let octet = |b: u8| matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e);
    if !inner.bytes().all(octet) {
        return Err(bad(&format!("the value of cookie {name} has a space, quote, comma, semicolon, backslash or control character")));
    }
    Ok(CookieArg { name: name.to_string(), value: value.to_string() })
}

/// Parses the `index`-th `--header` (from 1): a header name (an RFC 9110 token), `=`,
/// a value without control characters.
pub fn parse_header(index: usize, text: &str) -> Result<(String, String), UsageError> {
    let bad = |reason: &str| UsageError::BadHeader { index, reason: reason.to_string() };
    let (name, value) = text.split_once('=').ok_or_else(|| bad("there is no '='"))?;
    if name.is_empty()
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return Err(bad("the name is empty or has a character a header name cannot have"));
    }
    if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(bad(&format!("the value of header {name} has a control character")));
    }
    Ok((name.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_absolute_http() {
        assert_eq!(parse_url("URL #1", "http://127.0.0.1:3000/").unwrap().port(), Some(3000));
        for bad in
            ["127.0.0.1:3000/", "/relative", "ftp://example.com/", "file:///etc/passwd", "http://"]
        {
            let err = parse_url("URL #1", bad).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(err.to_string().starts_with("URL #1"), "{err}");
        }
    }

    #[test]
    fn headers_are_name_value_and_errors_never_show_the_value() {
        assert_eq!(
            parse_header(1, "X-Forwarded-User=alice=1").unwrap(),
            ("X-Forwarded-User".into(), "alice=1".into())
        );
        for bad in ["s3cr3t", "=s3cr3t", "X User=s3cr3t", "X-User=s3cr3t\n"] {
            let err = parse_header(3, bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"))
                .to_string();
            assert!(err.starts_with("--header #3"), "{err}");
            assert!(!err.contains("s3cr3t"), "{err}");
        }
    }

    #[test]
    fn cookies_are_name_value_and_errors_never_show_the_value() {
        let c = parse_cookie(1, "session=abc123").unwrap();
        assert_eq!((c.name.as_str(), c.value.as_str()), ("session", "abc123"));
        assert_eq!(parse_cookie(1, "s=\"quoted\"").unwrap().value, "\"quoted\"");
        assert_eq!(parse_cookie(1, "empty=").unwrap().value, "");
        assert!(!format!("{c:?}").contains("abc123"));
        for bad in [
            "s3cr3tvalue",
            "=s3cr3tvalue",
            "na me=s3cr3tvalue",
            "s=s3cr3t value",
            "s=s3cr3t;value",
            "s=s3cr3t\u{7}",
        ] {
            let err = parse_cookie(2, bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"))
                .to_string();
            assert!(err.starts_with("--cookie #2"), "{err}");
            assert!(!err.contains("s3cr3t"), "{err}");
        }
    }
}
