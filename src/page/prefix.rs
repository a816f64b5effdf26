//! The usual start of a page, read without the HTML parser.
//!
//! Most pages begin with a doctype, `<html>`, `<head>` and `<meta charset>`, and the
//! script goes right after the first of `<head>` (when the header names the charset)
//! or the charset declaration. Building lol_html's rewriter and parsing those few
//! hundred bytes costs more than everything else the proxy does for a page, so the
//! first chunk is read here first, by a deliberately narrow grammar: whitespace, one
//! doctype, and the `<html>`, `<head>` and `<meta>` start tags with plainly written
//! attributes. Anything else before the insertion point (a comment, a script, text,
//! an `http-equiv` other than `Content-Type`, an entity, a self-closing slash, a tag
//! cut by the end of the chunk) means "ask the parser", which then reads the page
//! from its first byte. Where both can decide they place the script at the same byte;
//! a property test holds them to it.

/// Bytes the narrow reading looks at; the insertion point is almost always within a
/// few hundred. No token within them can reach the parser's smallest memory limit.
const PREFIX_LIMIT: usize = 4096;

/// Where the script goes in `first`, the first chunk of a body, if everything before
/// that point is in the narrow grammar. `head_ok` says whether the script may go right
/// after `<head>` (the header names the charset).
pub(crate) fn insertion_point(first: &[u8], head_ok: bool) -> Option<usize> {
    // HTML's whitespace (space, tab, LF, FF, CR) is exactly `u8::is_ascii_whitespace`.
    let input = &first[..first.len().min(PREFIX_LIMIT)];
    let mut at = 0;
    loop {
        at += input[at..].iter().take_while(|b| b.is_ascii_whitespace()).count();
        let rest = &input[at..];
        if starts_with_ignore_case(rest, b"<!doctype") {
            at += rest.iter().position(|&b| b == b'>')? + 1;
            continue;
        }
        let tag = StartTag::read(rest)?;
        let end = at + tag.len;
        match tag.name {
            n if n.eq_ignore_ascii_case(b"html") => {}
            n if n.eq_ignore_ascii_case(b"head") => {
                if head_ok {
                    return Some(end);
                }
            }
            n if n.eq_ignore_ascii_case(b"meta") => {
                if tag.charset
                    || tag
                        .http_equiv
                        .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"content-type"))
                {
                    return Some(end);
                }
                // A policy, a refresh...: the parser's rules decide.
                if tag.http_equiv.is_some() {
                    return None;
                }
            }
            _ => return None,
        }
        at = end;
    }
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// A start tag in the narrow grammar, with what [`insertion_point`] needs of it.
struct StartTag<'a> {
    name: &'a [u8],
    /// Bytes from `<` to `>`, both included.
    len: usize,
    charset: bool,
    /// The first `http-equiv` value.
    http_equiv: Option<&'a [u8]>,
}

impl<'a> StartTag<'a> {
    /// Reads `<name attr="value" attr='value' attr=value attr>` at the start of `s`.
    fn read(s: &'a [u8]) -> Option<StartTag<'a>> {
        if s.first() != Some(&b'<') || !s.get(1)?.is_ascii_alphabetic() {
            return None;
        }
        let name_len = s[1..].iter().take_while(|b| b.is_ascii_alphanumeric()).count();
        let mut tag =
            StartTag { name: &s[1..1 + name_len], len: 0, charset: false, http_equiv: None };
        let mut at = 1 + name_len;
        loop {
            let spaces = s.get(at..)?.iter().take_while(|b| b.is_ascii_whitespace()).count();
            at += spaces;
            match *s.get(at)? {
                b'>' => {
                    tag.len = at + 1;
                    return Some(tag);
                }
                // Attributes are apart from the name and from each other.
                _ if spaces == 0 => return None,
                _ => {}
            }
            let name_len = s[at..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(b))
                .count();
            if name_len == 0 {
                return None;
            }
            let name = &s[at..at + name_len];
            at += name_len;
            let mut value: &[u8] = b"";
            let before_eq = s.get(at..)?.iter().take_while(|b| b.is_ascii_whitespace()).count();
            if s.get(at + before_eq) == Some(&b'=') {
                at += before_eq + 1;
                at += s.get(at..)?.iter().take_while(|b| b.is_ascii_whitespace()).count();
                let (v, len) = attribute_value(s.get(at..)?)?;
                value = v;
                at += len;
            }
            if value.contains(&b'&') {
                return None; // entities: the parser decodes them
            }
            if name.eq_ignore_ascii_case(b"charset") {
                tag.charset = true;
            } else if name.eq_ignore_ascii_case(b"http-equiv") && tag.http_equiv.is_none() {
                if !value.is_ascii() {
                    return None;
                }
                tag.http_equiv = Some(value);
            }
        }
    }
}

/// A quoted or plain attribute value at the start of `s`: (value, bytes taken). A
/// plain one stops short of a `/` too, so `<meta charset=utf-8/>` is the parser's.
fn attribute_value(s: &[u8]) -> Option<(&[u8], usize)> {
    match *s.first()? {
        q @ (b'"' | b'\'') => {
            let len = s[1..].iter().position(|&b| b == q)?;
            Some((&s[1..1 + len], len + 2))
        }
        _ => {
            let len = s
                .iter()
                .take_while(|&&b| !b.is_ascii_whitespace() && !b"\"'<=>`/".contains(&b) && b != 0)
                .count();
            (len > 0).then(|| (&s[..len], len))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(html: &str, head_ok: bool) -> Option<&str> {
        insertion_point(html.as_bytes(), head_ok).map(|at| &html[..at])
    }

    #[test]
    fn the_usual_starts_are_read() {
        let page = "<!DOCTYPE html>\n<html lang=\"en\" itemscope>\n  <head>\n    <meta charset=\"UTF-8\">\n<title>";
        assert_eq!(point(page, false), Some(&page[..page.find("<title>").unwrap() - 1]));
        assert_eq!(
            point(page, true),
            Some("<!DOCTYPE html>\n<html lang=\"en\" itemscope>\n  <head>")
        );
        let page = "<HTML><HEAD><META NAME=viewport CONTENT='width=device-width'><Meta Http-Equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">x";
        assert_eq!(point(page, false), Some(&page[..page.len() - 1]));
        assert_eq!(point("<meta charset=utf-8>", false), Some("<meta charset=utf-8>"));
        assert_eq!(point("<meta charset>", false), Some("<meta charset>"));
    }

    #[test]
    fn anything_else_is_left_to_the_parser() {
        for page in [
            "",
            "<html><head>",                               // no point yet
            "<!-- <meta charset=utf-8> --><meta charset=utf-8>",
            "<script>x()</script><meta charset=utf-8>",
            "text<meta charset=utf-8>",
            "\u{feff}<meta charset=utf-8>",
            "<meta http-equiv=Content-Security-Policy content=\"script-src 'self'\"><meta charset=utf-8>",
            "<meta http-equiv=refresh content=5><meta charset=utf-8>",
            "<meta name=a content=\"&amp;\"><meta charset=utf-8>",
            "<meta charset=utf-8/>",
            "<meta charset=\"utf-8\"/>",
            "<head/>",
            "<meta name=\"a\"charset=utf-8>",
            "<meta charset=\"utf-8",
            "<meta charset=utf-8",
            "<title>t</title><meta charset=utf-8>",
            "<body><meta charset=utf-8>",
            "<meta http-equiv=\"\u{a0}content-type\" content=x>",
            "<!doctype html",
        ] {
            assert_eq!(point(page, false), None, "{page:?}");
        }
        assert_eq!(point("<head/>", true), None);
    }

    #[test]
    fn only_the_first_bytes_are_read() {
        let mut page =
            "<html ".to_string() + &"a=b ".repeat(PREFIX_LIMIT / 4) + "><meta charset=utf-8>";
        assert_eq!(insertion_point(page.as_bytes(), false), None);
        page.replace_range(6..PREFIX_LIMIT - 100, "");
        assert!(insertion_point(page.as_bytes(), false).is_some());
    }
}
