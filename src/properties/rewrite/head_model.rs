//! An independent model of how a browser reads the start of a page, written from the
//! HTML tokenizer's states (not from lol_html), to say where the script must go.
//!
//! It reads tokens from the first byte while they keep the parser in `<head>` with the
//! tokenizer reading markup: whitespace, comments (also bogus ones, `<?xml …>`), a
//! doctype, and the start tags of `html`, `head`, `base`, `basefont`, `bgsound`,
//! `link`, `meta`, and of `title`, `style`, `noscript`, `noframes` with their text up to
//! their end tag. The first thing that is none of these (any other start tag, among
//! them `script` and `template`, an end tag, other text, a construct the end of the page
//! leaves open) is the limit: a script inserted at or before it, between two of those
//! tokens, is parsed as a script in `<head>` and runs before any page code.

/// What the start of a page holds, as the model reads it.
#[derive(Debug, Default)]
pub(super) struct PageStart {
    /// Where the first token that does not belong in `<head>` starts (or the end).
    pub limit: usize,
    /// The end of the first `<head>` start tag before `limit`.
    pub head_end: Option<usize>,
    /// The end of the first charset declaration (`<meta charset>`, or `http-equiv`
    /// `Content-Type`) before `limit`.
    pub charset_end: Option<usize>,
}

impl PageStart {
    /// Where the rewriter must put the script: right after `<head>` when the header
    /// names the charset (`head_ok`), right after the charset declaration, and in any
    /// case at the limit, whichever comes first.
    pub fn insertion_point(&self, head_ok: bool) -> usize {
        [self.head_end.filter(|_| head_ok), self.charset_end]
            .into_iter()
            .flatten()
            .fold(self.limit, usize::min)
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads `page` up to its limit.
pub(super) fn read(page: &[u8]) -> PageStart {
    let mut start = PageStart::default();
    // The decoder takes a leading byte order mark; it is not text.
    let mut at = if page.starts_with(BOM) { BOM.len() } else { 0 };
    loop {
        at += page[at..].iter().take_while(|b| b.is_ascii_whitespace()).count();
        start.limit = at;
        match token(page, at) {
            Token::End | Token::Closes => return start,
            Token::Markup(end) => at = end,
            Token::Start(tag) => {
                match tag.name.as_slice() {
                    b"html" | b"base" | b"basefont" | b"bgsound" | b"link" => {}
                    b"head" => {
                        start.head_end.get_or_insert(tag.end);
                    }
                    b"meta" if tag.declares_charset() => {
                        start.charset_end.get_or_insert(tag.end);
                    }
                    b"meta" => {}
                    b"title" | b"style" | b"noscript" | b"noframes" => {
                        match text_end(page, tag.end, &tag.name) {
                            Some(end) => {
                                at = end;
                                continue;
                            }
                            None => return start,
                        }
                    }
                    _ => return start,
                }
                at = tag.end;
            }
        }
    }
}

enum Token {
    /// The end of the page, between tokens.
    End,
    /// Something that closes `<head>`, or is left open by the end of the page.
    Closes,
    /// A comment or doctype, ending here.
    Markup(usize),
    Start(Tag),
}

/// A complete start or end tag.
struct Tag {
    /// ASCII-lowercased.
    name: Vec<u8>,
    /// Names ASCII-lowercased, values as written; the first of a name counts.
    attributes: Vec<(Vec<u8>, Vec<u8>)>,
    /// Just after its `>`.
    end: usize,
}

impl Tag {
    fn attribute(&self, name: &[u8]) -> Option<&[u8]> {
        self.attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    /// As the rewriter's rule reads a `<meta>`: a `charset` attribute, or an
    /// `http-equiv` whose (trimmed) value is `Content-Type`.
    fn declares_charset(&self) -> bool {
        self.attribute(b"charset").is_some()
            || self.attribute(b"http-equiv").is_some_and(|v| {
                String::from_utf8_lossy(v).trim().eq_ignore_ascii_case("content-type")
            })
    }
}

/// The token at `at` (not whitespace), from the tokenizer's data state.
fn token(page: &[u8], at: usize) -> Token {
    let rest = &page[at..];
    match rest {
        [] => Token::End,
        [b'<', c, ..] if c.is_ascii_alphabetic() => {
            tag(page, at + 1).map_or(Token::Closes, Token::Start)
        }
        [b'<', b'!', b'-', b'-', ..] => {
            comment_end(page, at + 4).map_or(Token::Closes, Token::Markup)
        }
        [b'<', b'!', ..] if rest.len() >= 9 && rest[2..9].eq_ignore_ascii_case(b"doctype") => {
            up_to_gt(page, at + 9).map_or(Token::Closes, Token::Markup)
        }
        // Bogus comments: `<!…>` (CDATA too, outside foreign content), `<?…>`, `</ …>`.
        [b'<', b'!' | b'?', ..] => up_to_gt(page, at + 2).map_or(Token::Closes, Token::Markup),
        [b'<', b'/', c, ..] if !c.is_ascii_alphabetic() && *c != b'>' => {
            up_to_gt(page, at + 2).map_or(Token::Closes, Token::Markup)
        }
        // End tags, `</>`, a lone `<`, text.
        _ => Token::Closes,
    }
}

/// Just after the first `>` from `at`: the end of a doctype or bogus comment.
fn up_to_gt(page: &[u8], at: usize) -> Option<usize> {
    page[at..].iter().position(|&b| b == b'>').map(|i| at + i + 1)
}

/// The end of a comment whose `<!--` ends at `at`: `<!-->` and `<!--->` end at once,
/// others at the first `-->` or `--!>`.
fn comment_end(page: &[u8], at: usize) -> Option<usize> {
    let rest = &page[at..];
    if rest.starts_with(b">") {
        return Some(at + 1);
    }
    if rest.starts_with(b"->") {
        return Some(at + 2);
    }
    (0..rest.len()).find_map(|i| {
        let r = &rest[i..];
        if r.starts_with(b"-->") {
            Some(at + i + 3)
        } else if r.starts_with(b"--!>") {
            Some(at + i + 4)
        } else {
            None
        }
    })
}

/// Just after the end tag that closes the text of element `name` opened before `at`:
/// `</name` (any case) followed by whitespace, `/` or `>`, then the rest of that tag.
fn text_end(page: &[u8], at: usize, name: &[u8]) -> Option<usize> {
    let mut i = at;
    loop {
        let lt = i + page[i..].windows(2).position(|w| w == b"</")?;
        let after = lt + 2 + name.len();
        let named = page.get(lt + 2..after).is_some_and(|n| n.eq_ignore_ascii_case(name));
        if named
            && page.get(after).is_some_and(|&c| c.is_ascii_whitespace() || c == b'/' || c == b'>')
        {
            return tag(page, lt + 2).map(|t| t.end);
        }
        i = lt + 2;
    }
}

/// The tag whose name starts at `at`, read by the tokenizer's tag states; `None` when
/// the page ends inside it (the tokenizer then drops it).
fn tag(page: &[u8], at: usize) -> Option<Tag> {
    #[derive(Clone, Copy)]
    enum State {
        Name,
        BeforeAttrName,
        AttrName,
        AfterAttrName,
        BeforeValue,
        Quoted(u8),
        Unquoted,
        AfterValue,
        SelfClosing,
    }
    let mut tag = Tag { name: Vec::new(), attributes: Vec::new(), end: 0 };
    let mut state = State::Name;
    let mut i = at;
    loop {
        let c = *page.get(i)?;
        i += 1;
        let space = c.is_ascii_whitespace();
        state = match state {
            State::Name if space => State::BeforeAttrName,
            State::Name if c == b'/' => State::SelfClosing,
            State::Name if c == b'>' => break,
            State::Name => {
                tag.name.push(c.to_ascii_lowercase());
                State::Name
            }
            State::BeforeAttrName if space => State::BeforeAttrName,
            State::BeforeAttrName | State::AfterAttrName if c == b'/' => State::SelfClosing,
            State::BeforeAttrName | State::AfterAttrName if c == b'>' => break,
            State::AfterAttrName if space => State::AfterAttrName,
            State::AfterAttrName if c == b'=' => State::BeforeValue,
            // A new attribute; `=` right at the start is part of its name.
            State::BeforeAttrName | State::AfterAttrName => {
                tag.attributes.push((vec![c.to_ascii_lowercase()], Vec::new()));
                State::AttrName
            }
            State::AttrName if space || c == b'/' || c == b'>' => {
                i -= 1;
                State::AfterAttrName
            }
            State::AttrName if c == b'=' => State::BeforeValue,
            State::AttrName => {
                last(&mut tag).0.push(c.to_ascii_lowercase());
                State::AttrName
            }
            State::BeforeValue if space => State::BeforeValue,
            State::BeforeValue if c == b'"' || c == b'\'' => State::Quoted(c),
            State::BeforeValue if c == b'>' => break,
            State::BeforeValue | State::Unquoted if !space && c != b'>' => {
                last(&mut tag).1.push(c);
                State::Unquoted
            }
            State::Unquoted if space => State::BeforeAttrName,
            State::Unquoted => break, // `>`
            State::Quoted(q) if c == q => State::AfterValue,
            State::Quoted(q) => {
                last(&mut tag).1.push(c);
                State::Quoted(q)
            }
            State::AfterValue | State::SelfClosing if c == b'>' => break,
            State::AfterValue if space => State::BeforeAttrName,
            State::AfterValue if c == b'/' => State::SelfClosing,
            State::AfterValue | State::SelfClosing => {
                i -= 1;
                State::BeforeAttrName
            }
            State::BeforeValue => unreachable!("whitespace and `>` are handled above"),
        };
    }
    // Only the first attribute of a name counts: `attribute` finds it first.
    tag.end = i;
    Some(tag)
}

fn last(tag: &mut Tag) -> &mut (Vec<u8>, Vec<u8>) {
    tag.attributes.last_mut().expect("an attribute was started")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(page: &str, head_ok: bool) -> &str {
        &page[..read(page.as_bytes()).insertion_point(head_ok)]
    }

    #[test]
    fn the_model_reads_the_head() {
        assert_eq!(
            point("<!DOCTYPE html><html><head><meta charset=utf-8><title>t</title>", false),
            "<!DOCTYPE html><html><head><meta charset=utf-8>"
        );
        assert_eq!(
            point("<!DOCTYPE html><html><head><meta charset=utf-8>", true),
            "<!DOCTYPE html><html><head>"
        );
        assert_eq!(
            point("<head><title>a</b></title ><style>x</STYLE/><link a='>'>x", false),
            "<head><title>a</b></title ><style>x</STYLE/><link a='>'>"
        );
        assert_eq!(
            point("<!-- a --><!---><!--><?xml ?><!x></ x><script>", false),
            "<!-- a --><!---><!--><?xml ?><!x></ x>"
        );
        assert_eq!(
            point("<meta http-equiv=' Content-Type ' content=x><p>", false),
            "<meta http-equiv=' Content-Type ' content=x>"
        );
        assert_eq!(
            point("<meta name=a http-equiv=refresh http-equiv=content-type><p>", false),
            "<meta name=a http-equiv=refresh http-equiv=content-type>"
        );
        assert_eq!(point("\u{feff} <template>", false), "\u{feff} ");
    }

    #[test]
    fn open_constructs_at_the_end_are_the_limit() {
        for (page, limit) in [
            ("<meta name=a><!-- open", 13),
            ("<!--!>", 0),
            ("<?xml", 0),
            ("<!doctype html", 0),
            ("<title>x</title", 0),
            ("<title>x</title a='", 0),
            ("<link><div cla", 6),
            ("</>", 0),
            ("<", 0),
            ("x", 0),
        ] {
            assert_eq!(read(page.as_bytes()).limit, limit, "{page:?}");
        }
    }
}
