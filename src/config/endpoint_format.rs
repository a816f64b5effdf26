//! `identity.sources[].format` of a current_user_endpoint source: what its `fields`
//! are (JSON pointers into a JSON answer, or CSS selectors into an HTML account page),
//! and their validation.

use super::*;

/// What the current-user endpoint answers, and so what its `fields` mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndpointFormat {
    /// A JSON document; fields are JSON pointers (`/user/id`).
    #[default]
    Json,
    /// An HTML page (an "account" page); fields are CSS selectors, with `@attribute`
    /// for an attribute's value (`meta[name=user-id]@content`), else the element's
    /// text content, trimmed (`#account-email`).
    Html,
}

/// Default of a current_user_endpoint source's `format`.
pub const DEFAULT_ENDPOINT_FORMAT: EndpointFormat = EndpointFormat::Json;

impl EndpointFormat {
    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointFormat::Json => "json",
            EndpointFormat::Html => "html",
        }
    }
}

/// A validated HTML field: the elements to look at and what to read from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtmlField {
    /// The CSS selector (lol_html's supported subset).
    pub selector: String,
    /// The attribute whose value is read; `None`: the element's text content.
    pub attribute: Option<String>,
}

impl HtmlField {
    /// Parses `selector` or `selector@attribute`. An `@` is an attribute suffix only
    /// when what follows it is an attribute name, so `a[href="mailto:x@y"]` is a
    /// selector. Fails with the reason when the selector does not parse.
    pub fn parse(spec: &str) -> std::result::Result<HtmlField, String> {
        let spec = spec.trim();
        let (selector, attribute) = match spec.rsplit_once('@') {
            Some((sel, attr)) if is_attribute_name(attr) => {
                (sel.trim(), Some(attr.to_ascii_lowercase()))
            }
            _ => (spec, None),
        };
        if selector.is_empty() {
            return Err("the selector is empty".into());
        }
        selector
            .parse::<lol_html::Selector>()
            .map_err(|e| format!("{selector:?} is not a supported CSS selector ({e})"))?;
        Ok(HtmlField { selector: selector.to_string(), attribute })
    }
}

fn is_attribute_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b))
}

pub(super) fn endpoint_format(key: &str, value: Option<&str>) -> Result<EndpointFormat> {
    match value.map(str::trim) {
        None => Ok(DEFAULT_ENDPOINT_FORMAT),
        Some(v) if v.eq_ignore_ascii_case("json") => Ok(EndpointFormat::Json),
        Some(v) if v.eq_ignore_ascii_case("html") => Ok(EndpointFormat::Html),
        Some(v) => Err(ConfigError::new(key, format!("{v:?} is neither json nor html"))),
    }
}

/// Validates one field of the endpoint's answer for its format: a JSON pointer, or a
/// CSS selector with an optional `@attribute`.
pub(super) fn endpoint_field(format: EndpointFormat, key: &str, spec: &str) -> Result<String> {
    match format {
        EndpointFormat::Json => json_pointer(key, spec),
        EndpointFormat::Html => HtmlField::parse(spec).map(|_| spec.trim().to_string()).map_err(|why| {
            ConfigError::new(
                key,
                format!("{why}; with format: html write a CSS selector, e.g. \"#account-email\" (text) or \"meta[name=user-id]@content\" (attribute)"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_suffix_only_when_it_is_an_attribute_name() {
        let f = HtmlField::parse("meta[name=user-id]@content").unwrap();
        assert_eq!(
            (f.selector.as_str(), f.attribute.as_deref()),
            ("meta[name=user-id]", Some("content"))
        );
        let f = HtmlField::parse("#account-email").unwrap();
        assert_eq!((f.selector.as_str(), f.attribute), ("#account-email", None));
        let f = HtmlField::parse(r#"a[href="mailto:x@y"]"#).unwrap();
        assert_eq!(f.attribute, None);
    }

    #[test]
    fn bad_selectors_name_the_key() {
        for bad in ["", "@content", "div[", "p:nth-child(", "a >> b"] {
            let e = endpoint_field(EndpointFormat::Html, "identity.sources[0].fields.user_id", bad)
                .unwrap_err();
            assert_eq!(e.key, "identity.sources[0].fields.user_id", "{bad:?}");
        }
        assert!(endpoint_field(EndpointFormat::Json, "k", "#id").is_err());
        assert_eq!(endpoint_format("k", Some("xml")).unwrap_err().key, "k");
    }
}
