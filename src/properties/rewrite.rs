//! The streaming rewriter on arbitrary bytes and on HTML-ish documents built from a
//! grammar of the constructs that decide where the script goes, fed in arbitrary chunks
//! the way Pingora's body filter hands them over. Where the script must go is said by
//! an independent model of the HTML tokenizer ([`head_model`]): where a browser parses
//! it as a script in `<head>`, before any page code, and after the charset declaration.
//!
//! The main grammar has no `<meta http-equiv=Content-Security-Policy>`: amending one
//! changes bytes outside the script on purpose (tests/rewriter.rs covers that). The
//! announced-length property adds them, since all it asks is the exact length.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::page::csp::MetaCsp;
use crate::page::rewriter::{Limits, Outcome, PageRewriter, Render};
use crate::page::script::{ScriptSettings, ScriptTemplate};
use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

use super::check;

mod head_model;

/// Limits no generated input comes near (inputs stay below 64 KiB), so only the bytes
/// decide the outcome.
const GENEROUS: Limits = Limits { max_scan_bytes: 1 << 20, parser_memory: 256 << 10 };

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoiZnV6eiJ9.c2ln";

/// The test workspace, plain settings (as the rewriter tests use).
fn template() -> ScriptTemplate {
    ScriptTemplate::new(&ScriptSettings {
        app_id: "abc12345",
        api_base: "https://api-iam.intercom.io",
        auto_include: true,
        cookie_domain: None,
        mode: Default::default(),
        refresh: None,
    })
}

// ---------------------------------------------------------------------------
// Inputs

/// A regex-generated piece as bytes.
fn re(pattern: &'static str) -> BoxedStrategy<Vec<u8>> {
    pattern.prop_map(String::into_bytes).boxed()
}

/// One piece of a document: insertion points, charset declarations, things that look
/// like them but are not (comments, CDATA, raw text), places where a script does not
/// run (template, foreign content, raw text, frameset, comments left open), text, and
/// raw bytes.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        re(
            r"(?i:<template>|<svg>|<math>|<svg><script>|<math><script>|<template><script>|<plaintext>|<frameset>|<frame src=a>|</frameset>)"
        ),
        re(
            r"(?i:<title>|</title>|</title |<style>|</style>|<noscript>|</noscript>|<noframes>|</noframes>|<textarea>)[ -~]{0,8}"
        ),
        re(
            r"<\?xml[ -~]{0,12}>?|<![a-zA-Z -]{0,8}>?|</[ 0-9][ -~]{0,6}>?|<!(?i:doctype)[ a-z]{0,8}|<!--!?-?>?|--!?>"
        ),
        re(r"[ \t\n]{0,3}[a-z]{1,8}|\x00|<[ 0-9=]|<link rel=icon>|<base href=/>"),
        re(r"(?i:<head)( [a-z]{1,6}(=[a-z0-9]{0,4})?)?/?>"),
        re(r"(?i:</head>)"),
        re(r#"(?i:<meta charset=)("utf-8"|utf-8|'windows-1252'|x|"")/?>"#),
        re(
            r#"(?i:<meta http-equiv=)"?(?i:content-type)"? content="text/html; (?i:charset)=utf-8">"#
        ),
        re(r#"<meta name=viewport content="width=device-width"( charset)?>"#),
        re(concat!(
            r#"(?i:<script)( src=a\.js| type=module| nonce=[A-Za-z0-9+/=_-]{0,12}| nonce="[^"]{0,8}")?>"#,
            r"[ -~]{0,16}(?i:</script>)?"
        )),
        re(r"(?i:<body)( class=a)?>|(?i:</body>)"),
        re(r"<!--[ -~]{0,16}-->|<!-->|<!---->|<!--|<!-- <script> -->|<!-- <head> -->"),
        re(r"<!\[CDATA\[[ -~]{0,16}\]\]>|<!\[CDATA\["),
        re(r"(?i:<!doctype html>|<html>|</html>|<title>|</title>|<\?xml version=.1.0.\?>)"),
        re(
            r"(?i:</?(style|textarea|xmp|iframe|noembed|noframes|noscript|template|svg|math|plaintext|p|div|select)>)"
        ),
        re(r#"<|</|<a|<div class="|</>|&amp;|&|>|"|'|\r\n|\n|charset|é|😀|\u{feff}"#),
        re(r"[ -~]{0,32}"),
        // Long text moves later pieces past the 256-byte first slice and the
        // 1024-byte charset prescan window.
        (100usize..1500).prop_map(|n| vec![b'x'; n]).boxed(),
        vec(any::<u8>(), 0..24).boxed(),
    ]
}

/// A page's bytes.
#[derive(Clone)]
struct Page(Vec<u8>);

/// Failure reports (and the saved regressions) show the page as escaped text, with
/// runs of one byte shortened: `b"<div a=\""+[y; 16384]+b"\">"`.
impl fmt::Debug for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("b\"")?;
        let mut rest = &self.0[..];
        while let Some(&b) = rest.first() {
            let run = rest.iter().take_while(|&&c| c == b).count();
            if run >= 16 {
                write!(f, "\"+[{}; {run}]+b\"", b.escape_ascii())?;
            } else {
                write!(f, "{}", rest[..run].escape_ascii())?;
            }
            rest = &rest[run..];
        }
        f.write_str("\"")
    }
}

/// Arbitrary bytes, or a document of grammar pieces.
fn page() -> impl Strategy<Value = Page> {
    prop_oneof![
        1 => vec(any::<u8>(), 0..2048),
        4 => vec(piece(), 0..24).prop_map(|pieces| pieces.concat()),
    ]
    .prop_map(Page)
}

/// How a body reaches the filter: cut at these points (repeated points give empty
/// chunks), and end of stream either with the last bytes or as a later call without any.
#[derive(Debug, Clone)]
struct Split {
    cuts: Vec<Index>,
    separate_end: bool,
}

fn split() -> impl Strategy<Value = Split> {
    (vec(any::<Index>(), 0..8), any::<bool>())
        .prop_map(|(cuts, separate_end)| Split { cuts, separate_end })
}

impl Split {
    /// The chunk boundaries for an input of `len` bytes.
    fn bounds(&self, len: usize) -> Vec<usize> {
        let mut b: Vec<usize> = self.cuts.iter().map(|i| i.index(len + 1)).collect();
        b.sort_unstable();
        b.push(len);
        b
    }
}

// ---------------------------------------------------------------------------
// Running the rewriter

struct Rewritten {
    out: Vec<u8>,
    outcome: Outcome,
    /// The script the renderer returned, if it was asked for one.
    script: Option<String>,
}

/// How a rewrite is set up: the charset in the header or not, the limits, the bytes
/// announced beyond the input's length, and whether the narrow reading of the page's
/// start is tried first (as in the proxy) or the parser reads everything.
#[derive(Debug, Clone, Copy)]
struct Setup {
    charset_in_header: bool,
    limits: Limits,
    extra: Option<usize>,
    narrow: bool,
}

impl Setup {
    /// As the proxy sets up a page without a length.
    fn new(charset_in_header: bool, limits: Limits) -> Self {
        Setup { charset_in_header, limits, extra: None, narrow: true }
    }
}

/// Rewrites `input` fed in chunks ending at `bounds` (the last one being the input's
/// length), set up as the proxy does: the page's nonce, if any, goes into the script.
fn rewrite(input: &[u8], bounds: &[usize], separate_end: bool, setup: Setup) -> Rewritten {
    let template = template();
    let meta = MetaCsp { nonce: None, script: Arc::new(template.render(&token_plan(), None)) };
    let rendered = Arc::new(Mutex::new(None));
    let record = rendered.clone();
    let render: Render = Box::new(move |page_nonce| {
        let script = template.render(&token_plan(), page_nonce);
        *record.lock().unwrap() = Some(script.html().to_string());
        Arc::new(script)
    });
    let mut rw =
        PageRewriter::new(render, meta, setup.limits, setup.charset_in_header, setup.extra);
    if !setup.narrow {
        rw = rw.parser_only();
    }
    let whole = Bytes::copy_from_slice(input);
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &end) in bounds.iter().enumerate() {
        let mut body = Some(whole.slice(start..end));
        rw.process(&mut body, !separate_end && i == bounds.len() - 1);
        out.extend_from_slice(&body.unwrap_or_default());
        start = end;
    }
    if separate_end {
        let mut body = None;
        rw.process(&mut body, true);
        out.extend_from_slice(&body.unwrap_or_default());
    }
    let script = rendered.lock().unwrap().take();
    Rewritten { out, outcome: rw.outcome(), script }
}

/// `input` with `script` where it must go: the model's insertion point.
fn with_script(input: &[u8], script: &[u8], charset_in_header: bool) -> Vec<u8> {
    let at = head_model::read(input).insertion_point(charset_in_header);
    [&input[..at], script, &input[at..]].concat()
}

// ---------------------------------------------------------------------------
// Properties

#[test]
fn every_input_gets_exactly_one_script_and_the_same_output_however_split() {
    let strategy = (page(), any::<bool>(), vec(split(), 3));
    check(
        "rewrite: one script, split-invariant",
        strategy,
        |(Page(input), charset_in_header, splits)| {
            let whole =
                rewrite(&input, &[input.len()], false, Setup::new(charset_in_header, GENEROUS));
            // Within the limits every document has an insertion point: at the latest its end.
            prop_assert_eq!(whole.outcome, Outcome::Placed);
            let script = whole.script.clone().expect("a placed script was rendered");
            prop_assert!(
                whole.out == with_script(&input, script.as_bytes(), charset_in_header),
                "the output is not the input plus the script where it must go"
            );
            for s in &splits {
                let got = rewrite(
                    &input,
                    &s.bounds(input.len()),
                    s.separate_end,
                    Setup::new(charset_in_header, GENEROUS),
                );
                prop_assert!(got.out == whole.out, "{s:?} gives another output than one chunk");
                prop_assert_eq!(
                    got.outcome,
                    whole.outcome,
                    "{:?} ends another way than one chunk",
                    s
                );
            }
            let bytewise: Vec<usize> = (1..input.len()).chain([input.len()]).collect();
            let got = rewrite(&input, &bytewise, false, Setup::new(charset_in_header, GENEROUS));
            prop_assert!(
                got.out == whole.out,
                "one-byte chunks give another output than one chunk"
            );
            Ok(())
        },
    );
}

/// A page with one huge tag somewhere in it: more than the smallest parser memory.
fn page_with_huge_tag() -> impl Strategy<Value = Page> {
    (page(), any::<Index>(), 16usize << 10..48 << 10).prop_map(|(Page(page), at, size)| {
        let at = at.index(page.len() + 1);
        let mut out = page[..at].to_vec();
        out.extend_from_slice(b"<div data-x=\"");
        out.resize(out.len() + size, b'y');
        out.extend_from_slice(b"\">");
        out.extend_from_slice(&page[at..]);
        Page(out)
    })
}

#[test]
fn with_tight_limits_the_script_is_placed_once_or_the_page_is_untouched() {
    // The smallest limits the config accepts, up to a few times that.
    let limits = (1024usize..8192, 16usize << 10..64 << 10)
        .prop_map(|(max_scan_bytes, parser_memory)| Limits { max_scan_bytes, parser_memory });
    let input = prop_oneof![page(), page_with_huge_tag()];
    let strategy = (input, any::<bool>(), split(), limits);
    check("rewrite: tight limits", strategy, |(Page(input), charset_in_header, s, limits)| {
        let got = rewrite(
            &input,
            &s.bounds(input.len()),
            s.separate_end,
            Setup::new(charset_in_header, limits),
        );
        match got.outcome {
            Outcome::Placed => {
                let script = got.script.expect("a placed script was rendered");
                prop_assert!(
                    got.out == with_script(&input, script.as_bytes(), charset_in_header),
                    "placed, but the output is not the input plus the script where it must go"
                );
            }
            Outcome::GaveUp(why) => {
                prop_assert!(got.out == input, "gave up ({why:?}) but changed the page")
            }
            Outcome::Scanning => {
                return Err(TestCaseError::fail("still scanning after the end of the stream"))
            }
        }
        Ok(())
    });
}

/// Pieces that change the page's length before the script: `<meta>` policies that
/// get our hash, give our script their nonce, or cannot be amended; long nonces.
fn length_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => piece().boxed(),
        1 => re(r#"<meta http-equiv=(?i:content-security-policy) content=("script-src 'self'"|'default-src https:'|"script-src 'nonce-[a-z0-9]{1,40}'"|"script-src 'self', img-src \*"|x)( id=[a-z&;"]{0,6})?>"#),
        1 => re(r#"<script nonce=[A-Za-z0-9+/]{40,120}>"#),
    ]
}

#[test]
fn with_an_announced_length_the_output_has_exactly_that_length() {
    let template = template();
    let announced =
        template.render(&token_plan(), None).html().len() + crate::page::nonce_room(false);
    let limits = prop_oneof![
        Just(GENEROUS),
        (1024usize..8192, 16usize << 10..64 << 10)
            .prop_map(|(max_scan_bytes, parser_memory)| Limits { max_scan_bytes, parser_memory }),
    ];
    let input = prop_oneof![
        4 => vec(length_piece(), 0..24).prop_map(|pieces| Page(pieces.concat())),
        1 => page_with_huge_tag(),
    ];
    let strategy = (input, any::<bool>(), vec(split(), 2), limits);
    check(
        "rewrite: announced length",
        strategy,
        |(Page(input), charset_in_header, splits, limits)| {
            let setup = Setup { extra: Some(announced), ..Setup::new(charset_in_header, limits) };
            let whole = rewrite(&input, &[input.len()], false, setup);
            prop_assert_eq!(whole.out.len(), input.len() + announced, "{:?}", whole.outcome);
            for s in &splits {
                let got = rewrite(&input, &s.bounds(input.len()), s.separate_end, setup);
                prop_assert_eq!(
                    got.out.len(),
                    input.len() + announced,
                    "{:?}, {:?}",
                    s,
                    got.outcome
                );
                prop_assert!(got.out == whole.out, "{s:?} gives another output than one chunk");
            }
            let amended = input.windows(10).any(|w| w.eq_ignore_ascii_case(b"http-equiv"));
            match whole.outcome {
                // The script, padded in its start tag, at one position, and nothing else.
                Outcome::Placed if !amended => {
                    let script = whole.script.expect("a placed script was rendered");
                    let mut padded = script.clone();
                    padded.insert_str(
                        script.find('>').unwrap(),
                        &" ".repeat(announced - script.len()),
                    );
                    prop_assert!(
                        whole.out == with_script(&input, padded.as_bytes(), charset_in_header),
                        "not the input plus the padded script where it must go"
                    );
                }
                Outcome::Placed => {}
                // A give-up leaves the page as it was (but for an amended policy) and ends it
                // with the spaces owed.
                Outcome::GaveUp(why) => {
                    let (page, tail) =
                        whole.out.split_at(whole.out.len() - announced.min(whole.out.len()));
                    prop_assert!(
                        amended || page == &input[..],
                        "gave up ({why:?}) but changed the page"
                    );
                    prop_assert!(
                        amended || tail.iter().all(|&b| b == b' '),
                        "gave up ({why:?}) without ending in spaces"
                    );
                }
                Outcome::Scanning => {
                    return Err(TestCaseError::fail("still scanning after the end of the stream"))
                }
            }
            Ok(())
        },
    );
}

/// Pieces of the usual start of a page, written every way the narrow reading accepts
/// and a few ways it must leave to the parser.
fn prefix_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        re(r"[ \t\r\n\x0c]{1,3}"),
        re(r"(?i:<!doctype html)( PUBLIC .-//W3C//DTD XHTML 1.0//EN.)?>"),
        re(r#"(?i:<html)( lang=en| lang="en-US"| data-x='a>b'| itemscope| x = "1")*[ \n]?>"#),
        re(r#"(?i:<head)( id=h| class="a b")?[ ]?/?>"#),
        re(
            r#"(?i:<meta)( (?i:charset)( ?= ?("utf-8"|'utf-8'|utf-8|utf-8/|""))?| (?i:http-equiv)=("?(?i:content-type)"?|" content-type "|refresh|"Content-Security-Policy")| name=viewport| content="width=device-width"| content="a&amp;b"| property='og:title')*[ ]?/?>"#
        ),
        re(
            r#"<meta name="a"charset=utf-8>|<meta charset=utf-8|<meta\ncharset=utf-8>|<META CHARSET=UTF-8>"#
        ),
        re(
            r#"<meta http-equiv=(?i:content-security-policy) content=("script-src 'self'"|"script-src 'nonce-abc'"|'default-src https:')>"#
        ),
        // What sends the page to the parser and decides there: a byte order mark,
        // comments, text, elements that close <head>.
        re(
            r"\u{feff}|<!-- c -->|<!--|<\?xml ?>?|<template>|<svg>|<plaintext>|<frameset>|<title>t</title>|hello"
        ),
        piece().boxed(),
    ]
}

#[test]
fn the_narrow_reading_of_a_page_start_agrees_with_the_parser() {
    let limits = prop_oneof![
        Just(GENEROUS),
        (64usize..2048, 16usize << 10..64 << 10)
            .prop_map(|(max_scan_bytes, parser_memory)| Limits { max_scan_bytes, parser_memory }),
    ];
    let extra =
        template().render(&token_plan(), None).html().len() + crate::page::nonce_room(false);
    let strategy = (vec(prefix_piece(), 0..12), any::<bool>(), split(), limits, any::<bool>());
    check(
        "rewrite: narrow reading = parser",
        strategy,
        |(pieces, charset_in_header, s, limits, announced)| {
            let input = pieces.concat();
            let extra = announced.then_some(extra);
            let bounds = s.bounds(input.len());
            let setup = Setup { extra, ..Setup::new(charset_in_header, limits) };
            let narrow = rewrite(&input, &bounds, s.separate_end, setup);
            let parser = rewrite(&input, &bounds, s.separate_end, Setup { narrow: false, ..setup });
            prop_assert!(
                narrow.out == parser.out,
                "the outputs differ ({:?} / {:?})",
                narrow.outcome,
                parser.outcome
            );
            prop_assert_eq!(narrow.outcome, parser.outcome);
            Ok(())
        },
    );
}

/// The plan of a logged-in page with the test token.
fn token_plan() -> crate::page::Plan {
    crate::page::Plan { token: Some(TOKEN.into()), shutdown: false, plain: None, failure: None }
}
