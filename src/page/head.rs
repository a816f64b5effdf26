//! What keeps an HTML parser in `<head>`: the rules that say where an inserted script
//! is parsed as a script, in `<head>`, before any page code.
//!
//! Until the parser leaves the "in head" insertion mode (or the modes before it), only
//! whitespace, comments, a doctype and the start tags of `base`, `basefont`, `bgsound`,
//! `link`, `meta`, `noframes`, `noscript` (scripting is on wherever our script runs),
//! `script`, `style`, `template` and `title` (and a repeated `html` or `head`) belong
//! there. Anything else closes `<head>`: another start tag, an end tag, other text,
//! the end of the file. A script put right before such a token, where the tokenizer
//! reads markup, is a script in `<head>` and runs. Put later it can land where it is
//! not a script at all: inside `<template>` (inert), `<svg>` or `<math>` (foreign
//! content, where its text is markup), raw text (`<plaintext>`, `<textarea>`, ...), a
//! comment left open, or after a `<frameset>`.

/// What a start tag met before the script is placed means for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Belongs in `<head>`, and markup goes on after it.
    Head,
    /// Belongs in `<head>`, but what follows it is text up to its end tag (`title`,
    /// `style`, `noscript`, `noframes`): a script inside would be text.
    HeadText,
    /// The script goes right before it: a page script (ours runs first), a `template`
    /// (its content is inert), or anything that does not belong in `<head>`.
    Before,
}

/// The role of the start tag named `tag` (lowercase, as lol_html gives it).
pub(crate) fn role(tag: &str) -> Role {
    match tag {
        "html" | "head" | "base" | "basefont" | "bgsound" | "link" | "meta" => Role::Head,
        "title" | "style" | "noscript" | "noframes" => Role::HeadText,
        _ => Role::Before,
    }
}

/// The UTF-8 byte order mark. At the very start of a body it picks the encoding and is
/// not text; the script must never go before it.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What the bytes between two tokens hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Between {
    /// Only whitespace (and a byte order mark at the start of the body).
    Blank,
    /// Text that closes `<head>`, from this index on.
    Text(usize),
    /// The start of the body so far, which may yet be a byte order mark.
    MaybeBom,
}

/// Reads `bytes`, which lie between tokens and start at offset `at` of the body.
/// `more` says whether more of them may follow (the next token is not known yet).
pub(crate) fn between(bytes: &[u8], at: usize, more: bool) -> Between {
    let mut skip = 0;
    if at == 0 {
        if bytes.starts_with(BOM) {
            skip = BOM.len();
        } else if more && BOM.starts_with(bytes) && !bytes.is_empty() {
            return Between::MaybeBom;
        }
    }
    // HTML's whitespace (space, tab, LF, FF, CR) is exactly `u8::is_ascii_whitespace`.
    match bytes[skip..].iter().position(|b| !b.is_ascii_whitespace()) {
        Some(i) => Between::Text(skip + i),
        None => Between::Blank,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_head_elements_keep_the_script_waiting() {
        for tag in ["html", "head", "base", "basefont", "bgsound", "link", "meta"] {
            assert_eq!(role(tag), Role::Head, "{tag}");
        }
        for tag in ["title", "style", "noscript", "noframes"] {
            assert_eq!(role(tag), Role::HeadText, "{tag}");
        }
        for tag in [
            "script",
            "template",
            "body",
            "frameset",
            "svg",
            "math",
            "plaintext",
            "textarea",
            "xmp",
            "iframe",
            "noembed",
            "div",
            "x-app",
        ] {
            assert_eq!(role(tag), Role::Before, "{tag}");
        }
    }

    #[test]
    fn whitespace_and_a_leading_byte_order_mark_are_not_text() {
        assert_eq!(between(b" \t\r\n\x0c", 5, true), Between::Blank);
        assert_eq!(between(b"\n hello", 5, false), Between::Text(2));
        assert_eq!(between(b"\xEF\xBB\xBF\n", 0, false), Between::Blank);
        assert_eq!(between(b"\xEF\xBB\xBFx", 0, false), Between::Text(3));
        // Only at the start of the body.
        assert_eq!(between(b"\xEF\xBB\xBF", 7, false), Between::Text(0));
        assert_eq!(between(b"\xEF\xBB", 0, true), Between::MaybeBom);
        assert_eq!(between(b"\xEF\xBB", 0, false), Between::Text(0));
        assert_eq!(between(b"\xEFx", 0, true), Between::Text(0));
        assert_eq!(between(b"\x00", 3, true), Between::Text(0));
        assert_eq!(between(b"\xc2\xa0", 3, true), Between::Text(0));
    }
}
