//! `format: html` of the current-user endpoint: who is logged in, read from an HTML
//! "account" page with CSS selectors (`meta[name=user-id]@content` for an attribute,
//! `#account-email` for an element's text).
//!
//! The page is parsed with lol_html (the rewriter's parser) under a memory limit, and
//! its body is bounded like a JSON answer. Identity is never guessed: a selector for
//! the user id, email or company id that matches more than one element (user content
//! on the page may imitate the app's markup), or a value with an entity we do not
//! decode, means no identity. A selector that matches nothing means logged out.

use std::cell::RefCell;
use std::rc::Rc;

use lol_html::{
    AsciiCompatibleEncoding, ElementContentHandlers, HtmlRewriter, MemorySettings, Selector,
    Settings,
};

use super::{Company, EndpointError, Identity};
use crate::config::{EndpointConfig, HtmlField};

/// The parser's memory bound (the body itself is bounded before parsing).
const PARSER_MEMORY: usize = 512 * 1024;

/// Which field a selector feeds, and whether a doubtful value voids the whole lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    UserId,
    Email,
    Name,
    CompanyId,
    CompanyName,
    Attribute(usize),
}

impl Role {
    /// Fields that name or place the user: a doubtful value is an error, not a
    /// missing field.
    fn must_be_certain(self) -> bool {
        matches!(self, Role::UserId | Role::Email | Role::CompanyId)
    }

    fn label(self, fields: &HtmlFields) -> String {
        match self {
            Role::UserId => "user_id".into(),
            Role::Email => "email".into(),
            Role::Name => "name".into(),
            Role::CompanyId => "company_id".into(),
            Role::CompanyName => "company_name".into(),
            Role::Attribute(i) => format!("attributes.{}", fields.attribute_names[i]),
        }
    }
}

/// The configured selectors of one endpoint source.
pub struct HtmlFields {
    /// (role, field, its parsed selector); a selector that does not parse (only
    /// possible from code, files are validated) is kept as the reason.
    slots: Vec<(Role, HtmlField, Selector)>,
    attribute_names: Vec<String>,
    invalid: Option<String>,
}

/// What one selector found on the page.
#[derive(Default, Clone)]
struct Found {
    matches: usize,
    raw: Option<String>,
}

/// A field's value as read: absent, one certain value, or doubtful.
enum Value {
    Absent,
    One(String),
    Doubtful(&'static str),
}

impl HtmlFields {
    /// Parses the selectors of `config` (its fields are selectors when its format is
    /// html).
    pub fn new(config: &EndpointConfig) -> HtmlFields {
        let mut specs = vec![(Role::UserId, config.fields.user_id.as_str())];
        let optional = [
            (Role::Email, &config.fields.email),
            (Role::Name, &config.fields.name),
            (Role::CompanyId, &config.company_id),
            (Role::CompanyName, &config.company_name),
        ];
        specs
            .extend(optional.iter().filter_map(|(role, spec)| spec.as_deref().map(|s| (*role, s))));
        specs.extend(
            config
                .fields
                .attributes
                .iter()
                .enumerate()
                .map(|(i, (_, s))| (Role::Attribute(i), s.as_str())),
        );
        let mut slots = Vec::new();
        let mut invalid = None;
        for (role, spec) in specs {
            let parsed = HtmlField::parse(spec).and_then(|f| {
                let selector = f.selector.parse::<Selector>().map_err(|e| e.to_string())?;
                Ok((f, selector))
            });
            match parsed {
                Ok((field, selector)) => slots.push((role, field, selector)),
                Err(why) => invalid = invalid.or(Some(why)),
            }
        }
        HtmlFields {
            slots,
            attribute_names: config.fields.attributes.iter().map(|(n, _)| n.clone()).collect(),
            invalid,
        }
    }

    /// The identity an account page shows, `None` when it shows nobody. `charset` is
    /// the one `Content-Type` names (UTF-8 otherwise, unless a `<meta charset>` says).
    pub fn identity(
        &self,
        body: &[u8],
        charset: Option<&str>,
    ) -> Result<Option<Identity>, EndpointError> {
        if let Some(why) = &self.invalid {
            return Err(EndpointError::Selector(why.clone()));
        }
        let found = self.scan(body, page_encoding(charset)?)?;
        let value = |role: Role| -> Result<Option<String>, EndpointError> {
            let Some(i) = self.slots.iter().position(|(r, _, _)| *r == role) else {
                return Ok(None);
            };
            match judge(&found[i]) {
                Value::Absent => Ok(None),
                Value::One(v) => Ok(Some(v)),
                Value::Doubtful(why) if role.must_be_certain() => {
                    Err(EndpointError::Doubtful { field: role.label(self), why })
                }
                Value::Doubtful(_) => Ok(None),
            }
        };
        let Some(user_id) = value(Role::UserId)? else { return Ok(None) };
        let mut identity = Identity::new(user_id);
        identity.email = value(Role::Email)?;
        identity.name = value(Role::Name)?;
        identity.company = value(Role::CompanyId)?.map(|id| Company { id, name: None });
        if let Some(company) = identity.company.as_mut() {
            company.name = value(Role::CompanyName)?;
        }
        for (i, name) in self.attribute_names.iter().enumerate() {
            if let Some(v) = value(Role::Attribute(i))? {
                identity.attributes.insert(name.clone(), serde_json::Value::String(v));
            }
        }
        Ok(Some(identity))
    }

    /// Runs the parser over the page once, recording per selector how many elements
    /// matched and the raw value of the first.
    fn scan(
        &self,
        body: &[u8],
        encoding: Option<AsciiCompatibleEncoding>,
    ) -> Result<Vec<Found>, EndpointError> {
        let found = Rc::new(RefCell::new(vec![Found::default(); self.slots.len()]));
        let mut settings = Settings::new().with_memory_settings(
            MemorySettings::new().with_max_allowed_memory_usage(PARSER_MEMORY),
        );
        settings = match encoding {
            Some(encoding) => settings.with_encoding(encoding),
            // Legacy pages often name their charset only in the document.
            None => settings.with_adjust_charset_on_meta_tag(true),
        };
        for (i, (_, field, selector)) in self.slots.iter().enumerate() {
            let on_element = found.clone();
            let attribute = field.attribute.clone();
            let mut content = ElementContentHandlers::default().element(
                move |el: &mut lol_html::html_content::Element<'_, '_>| {
                    let mut found = on_element.borrow_mut();
                    let slot = &mut found[i];
                    slot.matches += 1;
                    if slot.matches == 1 {
                        slot.raw = match &attribute {
                            Some(a) => el.get_attribute(a),
                            None => Some(String::new()),
                        };
                    }
                    Ok(())
                },
            );
            if field.attribute.is_none() {
                let on_text = found.clone();
                content = content.text(move |t: &mut lol_html::html_content::TextChunk<'_>| {
                    let mut found = on_text.borrow_mut();
                    let slot = &mut found[i];
                    // Only the first match's text counts; a second match is doubtful anyway.
                    if slot.matches == 1 {
                        if let Some(raw) = slot.raw.as_mut() {
                            raw.push_str(t.as_str());
                        }
                    }
                    Ok(())
                });
            }
            settings = settings
                .append_element_content_handler((std::borrow::Cow::Borrowed(selector), content));
        }
        let mut rewriter = HtmlRewriter::new(settings, |_: &[u8]| {});
        rewriter
            .write(body)
            .and_then(|()| rewriter.end())
            .map_err(|e| EndpointError::NotHtml(parse_failure(&e)))?;
        let found = found.borrow().clone();
        Ok(found)
    }
}

/// The encoding `Content-Type` names, `None` when it names none (or one we do not
/// know: the document's `<meta charset>` or UTF-8 then). Names, emails and ids in a
/// windows-1252 page must not turn into replacement characters.
fn page_encoding(charset: Option<&str>) -> Result<Option<AsciiCompatibleEncoding>, EndpointError> {
    let Some(encoding) = charset.and_then(|c| encoding_rs::Encoding::for_label(c.as_bytes()))
    else {
        return Ok(None);
    };
    AsciiCompatibleEncoding::new(encoding)
        .map(Some)
        .ok_or(EndpointError::NotHtml("the page's charset is not ASCII-compatible"))
}

/// The parser's failure as a category (never page content).
fn parse_failure(e: &lol_html::errors::RewritingError) -> &'static str {
    match e {
        lol_html::errors::RewritingError::MemoryLimitExceeded(_) => {
            "the parser's memory limit was exceeded"
        }
        lol_html::errors::RewritingError::ParsingAmbiguity(_) => {
            "the markup is ambiguous to a streaming parser"
        }
        _ => "the page could not be parsed",
    }
}

/// One selector's outcome as a value: several matches or an entity we do not decode
/// make it doubtful; an empty value is absent.
fn judge(found: &Found) -> Value {
    match (found.matches, &found.raw) {
        (0, _) | (1, None) => Value::Absent,
        (1, Some(raw)) => match decode_entities(raw) {
            Some(v) if v.trim().is_empty() => Value::Absent,
            Some(v) => Value::One(v.trim().to_string()),
            None => Value::Doubtful("it holds a character reference that is not decoded"),
        },
        _ => Value::Doubtful("the selector matches more than one element"),
    }
}

/// Decodes numeric character references and the named ones that occur in ids,
/// emails and names (`&amp;` `&lt;` `&gt;` `&quot;` `&apos;` `&nbsp;`). `None` for
/// any other named reference: guessing its text could name someone else.
pub fn decode_entities(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest[1..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '#')).map(|n| n + 1);
        let Some(end) = end.filter(|&e| rest[e..].starts_with(';') && e > 1) else {
            // A bare `&` is text.
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let name = &rest[1..end];
        let ch = match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "nbsp" => '\u{a0}',
            n if n.starts_with("#x") || n.starts_with("#X") => {
                char::from_u32(u32::from_str_radix(&n[2..], 16).ok()?)?
            }
            n if n.starts_with('#') => char::from_u32(n[1..].parse().ok()?)?,
            _ => return None,
        };
        out.push(ch);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(user_id: &str, email: Option<&str>) -> HtmlFields {
        let mut c = EndpointConfig::html_page("/account", user_id);
        c.fields.email = email.map(str::to_string);
        HtmlFields::new(&c)
    }

    #[test]
    fn attribute_and_text_fields_are_read_and_decoded() {
        let f = fields("meta[name=user-id]@content", Some("#email"));
        let page =
            br#"<html><head><meta name="user-id" content="u&#45;42"></head><body><p id=email>
            a&amp;b@example.com </p></body></html>"#;
        let id = f.identity(page, None).unwrap().unwrap();
        assert_eq!(id.user_id, "u-42");
        assert_eq!(id.email.as_deref(), Some("a&b@example.com"));
    }

    #[test]
    fn the_pages_charset_is_honoured() {
        let mut c = EndpointConfig::html_page("/account", "#uid");
        c.fields.name = Some("#name".into());
        let f = HtmlFields::new(&c);
        let latin1 = b"<p id=uid>7</p><p id=name>Ren\xe9e</p>";
        assert_eq!(
            f.identity(latin1, Some("windows-1252")).unwrap().unwrap().name.as_deref(),
            Some("Ren\u{e9}e")
        );
        let with_meta = b"<meta charset=iso-8859-1><p id=uid>7</p><p id=name>Ren\xe9e</p>";
        assert_eq!(
            f.identity(with_meta, None).unwrap().unwrap().name.as_deref(),
            Some("Ren\u{e9}e")
        );
        assert!(matches!(f.identity(latin1, Some("utf-16le")), Err(EndpointError::NotHtml(_))));
    }

    #[test]
    fn nothing_found_is_logged_out_and_two_matches_are_doubtful() {
        let f = fields("#uid", None);
        assert_eq!(f.identity(b"<p>please log in</p>", None).unwrap(), None);
        let two = b"<span id=uid>1</span><span id=uid>2</span>";
        assert!(matches!(f.identity(two, None), Err(EndpointError::Doubtful { .. })));
        let nested = b"<div class=u>1<div class=u>2</div></div>";
        assert!(matches!(
            fields(".u", None).identity(nested, None),
            Err(EndpointError::Doubtful { .. })
        ));
    }

    #[test]
    fn unknown_named_references_are_not_guessed() {
        assert_eq!(decode_entities("a &copy; b"), None);
        assert_eq!(decode_entities("AT&T; x & y").as_deref(), None);
        assert_eq!(decode_entities("x & y &amp z").as_deref(), Some("x & y &amp z"));
        assert_eq!(decode_entities("&#x41;&#66;&lt;").as_deref(), Some("AB<"));
        assert!(matches!(
            fields("#uid", None).identity(b"<b id=uid>a&copy;</b>", None),
            Err(EndpointError::Doubtful { .. })
        ));
    }
}
