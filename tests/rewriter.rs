//! The streaming rewriter on its own: byte-split invariance, corpus pages byte-identical
//! outside the insertion point, the early exit, and where the script goes.

mod support;

use bytes::Bytes;
use intercom_secure_proxy::page::{GiveUpReason, Limits, Outcome, PageRewriter, PageScript, Plan};
use pingora::http::ResponseHeader;
use rand::{Rng, SeedableRng};

const LIMITS: Limits = Limits { max_scan_bytes: 1 << 20, parser_memory: 256 << 10 };

fn plan() -> Plan {
    Plan { token: Some("h.p.s".into()), shutdown: false, plain: None, failure: None }
}

fn script() -> PageScript {
    support::pages(LIMITS).script(&plan(), None)
}

/// The header of an HTML response (no CSP), with this `Content-Type`.
fn html_response(content_type: &str) -> ResponseHeader {
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.insert_header("content-type", content_type).unwrap();
    resp
}

/// The rewriter the proxy would start for an HTML response without a charset in its
/// `Content-Type`.
fn rewriter_with(limits: Limits) -> PageRewriter {
    support::pages(limits).start(&mut html_response("text/html"), &plan()).unwrap()
}

/// Feeds `input` split at `cuts` and returns (output, rewriter).
fn run(input: &[u8], cuts: &[usize], limits: Limits) -> (Vec<u8>, PageRewriter) {
    let mut rw = rewriter_with(limits);
    let out = feed(&mut rw, input, cuts);
    (out, rw)
}

fn one_byte_cuts(len: usize) -> Vec<usize> {
    (1..len).collect()
}

fn random_cuts(len: usize, seed: u64) -> Vec<usize> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut cuts: Vec<usize> =
        (0..(len / 700).max(3)).map(|_| rng.random_range(1..len.max(2))).collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

#[test]
fn corpus_pages_are_identical_outside_the_insertion_point_however_split() {
    for name in ["app.html", "cloudflare.com.html", "ecma402-spec.html", "html-parsing-spec.html"] {
        let page = support::corpus(name);
        let (whole, rw) = run(&page, &[], LIMITS);
        assert_eq!(rw.outcome(), Outcome::Placed, "{name}");
        assert_eq!(
            support::without_our_script(&whole),
            page,
            "{name}: bytes outside the script changed"
        );
        for seed in 0..4 {
            let (split, _) = run(&page, &random_cuts(page.len(), seed), LIMITS);
            assert_eq!(split, whole, "{name}: random split {seed} differs");
        }
        let chunks16k: Vec<usize> =
            (1..).map(|i| i * 16384).take_while(|&c| c < page.len()).collect();
        assert_eq!(run(&page, &chunks16k, LIMITS).0, whole, "{name}: 16 KiB chunks differ");
    }
}

#[test]
fn one_byte_chunks_give_the_same_output() {
    // The head of app.html (up to well past the insertion point) fed one byte at a time.
    let page = support::corpus("app.html");
    let (whole, _) = run(&page, &[], LIMITS);
    let (bytewise, _) = run(&page, &one_byte_cuts(page.len()), LIMITS);
    assert_eq!(bytewise, whole);
}

#[test]
fn parsing_stops_once_the_script_is_placed() {
    // Counted chunk by chunk: once the script is in, later chunks add no parsed bytes.
    let page = Bytes::from(support::corpus("app.html"));
    let mut rw = rewriter_with(LIMITS);
    let mut fed_when_placed = None;
    let mut out = Vec::new();
    for (i, start) in (0..page.len()).step_by(16384).enumerate() {
        let end = (start + 16384).min(page.len());
        let mut body = Some(page.slice(start..end));
        rw.process(&mut body, end == page.len());
        out.extend_from_slice(&body.unwrap());
        match fed_when_placed {
            None if rw.is_done() => fed_when_placed = Some(rw.parsed_bytes()),
            None => panic!("chunk {i}: app.html's insertion point is in its first chunk"),
            Some(n) => assert_eq!(rw.parsed_bytes(), n, "chunk {i} was fed to the parser"),
        }
    }
    assert_eq!(support::without_our_script(&out), page.to_vec());
    // app.html declares its charset first thing in <head>: the parser stops in the
    // first slice instead of reading the 5 KB of <head> before its first script.
    assert!(rw.parsed_bytes() <= 256, "parsed {} of {} bytes", rw.parsed_bytes(), page.len());

    let page = support::corpus("html-parsing-spec.html");
    let chunks16k: Vec<usize> = (1..).map(|i| i * 16384).take_while(|&c| c < page.len()).collect();
    let (out, rw) = run(&page, &chunks16k, LIMITS);
    assert_eq!(rw.outcome(), Outcome::Placed);
    let insertion =
        support::find(&out, format!("<script>{}", support::our_script_marker()).as_bytes())
            .unwrap();
    // The parser saw at most one feeding slice (2 KiB) past the insertion point, out of 714 KB.
    assert!(
        rw.parsed_bytes() <= insertion + 2048,
        "parsed {} bytes, insertion at {insertion}",
        rw.parsed_bytes()
    );
    assert!(rw.parsed_bytes() < page.len() / 50);
    assert!(rw.is_done());
    assert_eq!(support::without_our_script(&out), page);
}

#[test]
fn later_chunks_pass_through_as_the_same_buffers() {
    let page = support::corpus("app.html");
    let whole = Bytes::from(page.clone());
    let mut rw = rewriter_with(LIMITS);
    let mut first = Some(whole.slice(..16384));
    rw.process(&mut first, false);
    assert!(rw.is_done());
    let rest = whole.slice(16384..);
    let mut body = Some(rest.clone());
    rw.process(&mut body, true);
    // Not copied, not re-chunked: the very same buffer.
    assert_eq!(body.unwrap().as_ptr(), rest.as_ptr());
}

fn place(html: &str) -> String {
    let (out, rw) = run(html.as_bytes(), &[], LIMITS);
    assert_eq!(rw.outcome(), Outcome::Placed, "{html}");
    let out = String::from_utf8(out).unwrap();
    let s = script();
    out.replace(s.html(), "[S]")
}

#[test]
fn the_script_goes_at_the_earliest_safe_point() {
    // A charset declaration in the first kilobyte: right after it, so it stays there.
    assert_eq!(
        place("<!DOCTYPE html><html><head><meta charset=utf-8><title>x</title><script src=a.js></script></head><body></body></html>"),
        "<!DOCTYPE html><html><head><meta charset=utf-8>[S]<title>x</title><script src=a.js></script></head><body></body></html>"
    );
    assert_eq!(
        place("<html><head><title>t</title><meta http-equiv=Content-Type content=\"text/html; charset=utf-8\"></head>"),
        "<html><head><title>t</title><meta http-equiv=Content-Type content=\"text/html; charset=utf-8\">[S]</head>"
    );
    // No charset declared anywhere: before the end of <head> (the first bytes are never
    // held back to find out whether a declaration follows).
    assert_eq!(
        place("<html><head><title>t</title></head><body><p>x</body>"),
        "<html><head><title>t</title>[S]</head><body><p>x</body>"
    );
    assert_eq!(
        place("<HTML><HEAD><SCRIPT type=module>1</SCRIPT>"),
        "<HTML><HEAD>[S]<SCRIPT type=module>1</SCRIPT>"
    );
    // Page code before the charset declaration still comes after us.
    assert_eq!(
        place("<head><title>t</title><script>early()</script><meta charset=utf-8>"),
        "<head><title>t</title>[S]<script>early()</script><meta charset=utf-8>"
    );
    // No <head>: before the first element or text that closes it (the parser makes a
    // <head> for our script there), or the end.
    assert_eq!(place("<p>no head<script>x()</script>"), "[S]<p>no head<script>x()</script>");
    assert_eq!(place("<body class=a><p>x"), "[S]<body class=a><p>x");
    assert_eq!(place("just text"), "[S]just text");
    assert_eq!(
        place("<!DOCTYPE html><link rel=icon href=a.ico>\n"),
        "<!DOCTYPE html><link rel=icon href=a.ico>\n[S]"
    );
    // Comments and strings that look like tags are not insertion points.
    assert_eq!(
        place("<head><!-- <script> --><title>&lt;script&gt;</title><meta charset=utf-8></head>"),
        "<head><!-- <script> --><title>&lt;script&gt;</title><meta charset=utf-8>[S]</head>"
    );
}

#[test]
fn the_script_goes_before_what_does_not_belong_in_head() {
    // Issue 24, point 7: each of these pages used to get the script where it is never
    // run (inside <template>, foreign content, raw text, an open comment, after a
    // <frameset>). The first token that closes <head> takes it instead.
    for (page, placed) in [
        (
            "<template><script>x()</script></template>",
            "[S]<template><script>x()</script></template>",
        ),
        (
            "<head><template><script>x()</script></template><script>y()</script>",
            "<head>[S]<template><script>x()</script></template><script>y()</script>",
        ),
        ("<svg><script>x()</script></svg>", "[S]<svg><script>x()</script></svg>"),
        ("<math><script>x()</script></math>", "[S]<math><script>x()</script></math>"),
        ("<svg><circle r=1>", "[S]<svg><circle r=1>"),
        ("<meta name=a><!-- left open", "<meta name=a>[S]<!-- left open"),
        ("<?xml version=\"1.0\"", "[S]<?xml version=\"1.0\""),
        (
            "<!doctype html><?xml version=\"1.0\"?><p>x",
            "<!doctype html><?xml version=\"1.0\"?>[S]<p>x",
        ),
        ("<plaintext><script>x()</script>", "[S]<plaintext><script>x()</script>"),
        ("<frameset><frame src=a></frameset>", "[S]<frameset><frame src=a></frameset>"),
        (
            "<textarea><script>x()</script></textarea>",
            "[S]<textarea><script>x()</script></textarea>",
        ),
        ("hello <b>x</b>", "[S]hello <b>x</b>"),
        ("\n  hello", "\n  [S]hello"),
        ("\u{feff}hello", "\u{feff}[S]hello"),
        ("<title>left open", "[S]<title>left open"),
        (
            "<noscript><script>x()</script></noscript>",
            "<noscript><script>x()</script></noscript>[S]",
        ),
        (
            "<head><style>p{}</style><link rel=icon></head>",
            "<head><style>p{}</style><link rel=icon>[S]</head>",
        ),
        ("<div cla", "[S]<div cla"),
    ] {
        assert_eq!(place(page), placed, "{page:?}");
    }
}

#[test]
fn a_charset_in_the_content_type_header_allows_the_head() {
    let html = "<html><head><meta charset=utf-8><title>x</title></head>";
    let s = script();
    let mut rw = support::pages(LIMITS)
        .start(&mut html_response("text/html; charset=utf-8"), &plan())
        .unwrap();
    let mut body = Some(Bytes::from_static(html.as_bytes()));
    rw.process(&mut body, true);
    let out = String::from_utf8(body.unwrap().to_vec()).unwrap().replace(s.html(), "[S]");
    assert_eq!(out, "<html><head>[S]<meta charset=utf-8><title>x</title></head>");
}

#[test]
fn an_incomplete_tag_at_the_end_is_kept() {
    let html = "<head><script>a()</script><div cla";
    let (out, _) = run(html.as_bytes(), &[], LIMITS);
    assert!(String::from_utf8(out).unwrap().ends_with("</script><div cla"));
}

#[test]
fn no_insertion_point_within_the_scan_limit_means_untouched() {
    let mut page = b"<html><title>".to_vec();
    page.extend(std::iter::repeat_n(b'x', 200_000));
    page.extend_from_slice(b"</title><body></body></html>");
    let limits = Limits { max_scan_bytes: 64 << 10, parser_memory: 256 << 10 };
    let (out, rw) = run(&page, &random_cuts(page.len(), 7), limits);
    assert_eq!(rw.outcome(), Outcome::GaveUp(GiveUpReason::ScanLimit));
    assert_eq!(out, page);
    assert!(rw.parsed_bytes() <= (64 << 10) + 2048);
}

#[test]
fn a_tag_larger_than_the_parser_memory_bails_out_unchanged() {
    let mut page = b"<html><meta content=\"".to_vec();
    page.extend(std::iter::repeat_n(b'y', 600_000));
    page.extend_from_slice(b"\"><script>x()</script></head></html>");
    let limits = Limits { max_scan_bytes: 4 << 20, parser_memory: 64 << 10 };
    let (out, rw) = run(&page, &random_cuts(page.len(), 3), limits);
    assert_eq!(rw.outcome(), Outcome::GaveUp(GiveUpReason::Memory));
    assert_eq!(out, page);
}

#[test]
fn meta_csp_before_the_insertion_point_is_amended_with_the_hash() {
    let s = script();
    let html = "<head><meta http-equiv=\"Content-Security-Policy\" content=\"script-src 'self'\"><meta charset=\"utf-8\"><script src=x.js></script>";
    let (out, _) = run(html.as_bytes(), &[], LIMITS);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains(&format!("content=\"script-src 'self' {}\"", s.csp_hash())), "{out}");
    assert!(out.contains(s.html()));
}

#[test]
fn text_after_an_amended_meta_csp_takes_the_script_before_it() {
    // The amended policy is longer than the page's: text after it is found where the
    // output has it, however the body is split.
    let s = script();
    let html = "<meta http-equiv=\"Content-Security-Policy\" content=\"script-src 'self'\">hello<script>x()</script>";
    let amended = format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"script-src 'self' {}\">",
        s.csp_hash()
    );
    let (whole, _) = run(html.as_bytes(), &[], LIMITS);
    assert_eq!(
        String::from_utf8(whole.clone()).unwrap(),
        format!("{amended}{}hello<script>x()</script>", s.html())
    );
    assert_eq!(run(html.as_bytes(), &one_byte_cuts(html.len()), LIMITS).0, whole);
}

#[test]
fn meta_csp_with_a_nonce_gives_our_script_that_nonce() {
    let mut rw = rewriter_with(LIMITS);
    let html = "<head><meta http-equiv=content-security-policy content=\"script-src 'nonce-abc123'\"><meta charset=utf-8><script nonce=abc123>1</script>";
    let mut body = Some(Bytes::from_static(html.as_bytes()));
    rw.process(&mut body, true);
    let out = String::from_utf8(body.unwrap().to_vec()).unwrap();
    assert!(out.contains("<script nonce=\"abc123\">(function"), "{out}");
}

#[test]
fn meta_csp_that_cannot_be_amended_means_no_injection() {
    let html = "<head><meta http-equiv=\"Content-Security-Policy\" content=\"script-src 'self', img-src *\"><meta charset=utf-8><script src=x.js></script>";
    let (out, rw) = run(html.as_bytes(), &[], LIMITS);
    assert_eq!(rw.outcome(), Outcome::GaveUp(GiveUpReason::MetaCsp));
    assert_eq!(out, html.as_bytes());
}

#[test]
fn the_first_bytes_are_not_held_back_without_a_charset_in_the_header() {
    // An app that sends its first bytes and then pauses: whatever the parser has seen
    // whole goes out at once, before the rest of the page exists.
    let first = b"<!DOCTYPE html><html><head><title>t</title><link rel=stylesheet href=a.css>";
    let mut rw = rewriter_with(LIMITS);
    let mut body = Some(Bytes::from_static(first));
    rw.process(&mut body, false);
    assert_eq!(body.unwrap().as_ref(), &first[..], "the first chunk comes out whole and unchanged");
    assert_eq!(rw.outcome(), Outcome::Scanning);
    let mut body = Some(Bytes::from_static(b"<script>x()</script></head>"));
    rw.process(&mut body, false);
    assert_eq!(rw.outcome(), Outcome::Placed);
    assert!(body.unwrap().starts_with(b"<script>(function"), "placed before the first script");
}

#[test]
fn placement_does_not_depend_on_how_the_body_is_split() {
    // No charset anywhere, a <head> early, a script after 1 KiB of comment.
    let comment = format!("<!--{}-->", "x".repeat(1500));
    let mut page = b"<!DOCTYPE html><html><head><title>t</title>".to_vec();
    page.extend_from_slice(comment.as_bytes());
    page.extend_from_slice(b"<script>x()</script></head><body>hi</body></html>");
    let (whole, _) = run(&page, &[], LIMITS);
    let (bytewise, _) = run(&page, &one_byte_cuts(page.len()), LIMITS);
    assert_eq!(bytewise, whole);
    for seed in 0..8 {
        assert_eq!(run(&page, &random_cuts(page.len(), seed), LIMITS).0, whole, "seed {seed}");
    }
    let text = String::from_utf8(whole).unwrap();
    let at = text.find("<script>(function").expect("placed");
    assert!(text[..at].ends_with(&comment), "placed right before the page's first script");
}

#[test]
fn hitting_the_scan_limit_in_the_last_chunk_leaves_the_page_untouched() {
    // Found by the property suite: the limit reached inside the final chunk used to let
    // the end-of-document handler place the script where the parser stopped, inside
    // this attribute value.
    let mut page = b"<div data-x=\"".to_vec();
    page.resize(page.len() + (16 << 10), b'y');
    page.extend_from_slice(b"\">");
    let limits = Limits { max_scan_bytes: 1024, parser_memory: 16 << 10 };
    let (out, rw) = run(&page, &[], limits);
    assert!(matches!(rw.outcome(), Outcome::GaveUp(_)), "{:?}", rw.outcome());
    assert!(out == page, "the page was changed");
}

#[test]
fn insertion_points_that_cannot_take_the_script_are_passed_over() {
    // Found by the property suite: in foreign content a charset <meta> waits for an end
    // tag and a self-closed <head/> has no inside; placing there lost the script while
    // reporting it placed. The document end takes it instead.
    for html in ["<svg><svg><meta charset=utf-8>", "<svg><svg><!----><head/>"] {
        let (out, rw) = run(html.as_bytes(), &[], LIMITS);
        assert_eq!(rw.outcome(), Outcome::Placed, "{html}");
        assert_eq!(support::without_our_script(&out), html.as_bytes(), "{html}");
    }
}

/// How a page may bear on the script's length: the header's policy, a `<meta>` policy
/// or a nonce of the page's own before the insertion point.
struct Shape {
    name: &'static str,
    header_csp: Option<&'static str>,
    /// Put right after the page's `<head>` start tag.
    in_head: &'static str,
    placed: bool,
}

const SHAPES: &[Shape] = &[
    Shape { name: "no policy", header_csp: None, in_head: "", placed: true },
    Shape { name: "header nonce", header_csp: Some("script-src 'nonce-R4nd0m' 'strict-dynamic'"), in_head: "", placed: true },
    Shape { name: "header allowlist", header_csp: Some("script-src 'self' https://widget.intercom.io"), in_head: "", placed: true },
    Shape {
        name: "meta policy amended",
        header_csp: None,
        in_head: "<meta http-equiv='Content-Security-Policy' content=\"script-src 'self'\">",
        placed: true,
    },
    Shape {
        name: "meta policy nonce",
        header_csp: None,
        in_head: "<meta http-equiv=content-security-policy content=\"script-src 'nonce-bWV0YW5vbmNlMTIzNDU2'\">",
        placed: true,
    },
    Shape { name: "page nonce", header_csp: None, in_head: "<script nonce=\"cGFnZW5vbmNlMTIzNDU2Nzg5MDEyMzQ1Ng==\">x()</script>", placed: true },
    Shape {
        name: "header nonce and meta policy amended",
        header_csp: Some("script-src 'nonce-R4nd0m'"),
        in_head: "<meta http-equiv=Content-Security-Policy content=\"script-src 'self'\">",
        placed: false,
    },
    Shape {
        name: "page nonce too long to fit",
        header_csp: None,
        in_head: "<script nonce=\"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODk=\">x()</script>",
        placed: false,
    },
    Shape {
        name: "meta policy that cannot be amended",
        header_csp: None,
        in_head: "<meta http-equiv=Content-Security-Policy content=\"script-src 'self', img-src *\">",
        placed: false,
    },
];

/// The offset of `page`'s `<head …>` start tag, if it has one.
fn head_tag(page: &[u8]) -> Option<usize> {
    let lower = page.to_ascii_lowercase();
    [&b"<head>"[..], b"<head "].iter().filter_map(|t| support::find(&lower, t)).min()
}

/// `page` with `snippet` right after its `<head …>` start tag, or its `<html …>` one.
fn with_in_head(page: &[u8], snippet: &str) -> Vec<u8> {
    let tag = head_tag(page)
        .or_else(|| support::find(&page.to_ascii_lowercase(), b"<html"))
        .expect("a head or html tag");
    let at = tag + support::find(&page[tag..], b">").unwrap() + 1;
    [&page[..at], snippet.as_bytes(), &page[at..]].concat()
}

#[test]
fn every_corpus_page_and_policy_shape_gets_exactly_the_length_it_announces() {
    let pages = support::pages(LIMITS);
    for name in ["app.html", "cloudflare.com.html", "ecma402-spec.html", "html-parsing-spec.html"] {
        for shape in SHAPES {
            let page = with_in_head(&support::corpus(name), shape.in_head);
            for content_type in ["text/html", "text/html; charset=utf-8"] {
                let what = format!("{name}, {}, {content_type}", shape.name);
                // With the charset in the header the script goes right after `<head>`,
                // before the snippet, which then has no say.
                let snippet_governs =
                    !(content_type.contains("charset") && head_tag(&page).is_some());
                let placed = shape.placed || !snippet_governs;
                let mut resp = html_response(content_type);
                resp.insert_header("content-length", page.len()).unwrap();
                if let Some(csp) = shape.header_csp {
                    resp.insert_header("content-security-policy", csp).unwrap();
                }
                let start = |resp: &mut ResponseHeader| pages.start(resp, &plan()).unwrap();
                let mut header = resp.clone();
                start(&mut header);
                let announced: usize =
                    header.headers["content-length"].to_str().unwrap().parse().unwrap();
                assert!(header.headers.get("transfer-encoding").is_none(), "{what}");
                let mut outputs = Vec::new();
                let mut cuts = vec![
                    vec![],
                    one_byte_cuts(4096.min(page.len())),
                    (1..).map(|i| i * 16384).take_while(|&c| c < page.len()).collect(),
                ];
                cuts.extend((0..3).map(|seed| random_cuts(page.len(), seed)));
                for cut in &cuts {
                    let mut rw = start(&mut resp.clone());
                    let out = feed(&mut rw, &page, cut);
                    assert_eq!(out.len(), announced, "{what}: {:?}", rw.outcome());
                    assert_eq!(
                        rw.outcome() == Outcome::Placed,
                        placed,
                        "{what}: {:?}",
                        rw.outcome()
                    );
                    outputs.push(out);
                }
                assert!(
                    outputs.iter().all(|o| *o == outputs[0]),
                    "{what}: the output depends on the split"
                );
                let out = &outputs[0];
                if placed {
                    let text = String::from_utf8_lossy(out);
                    let governing =
                        shape.header_csp.or(snippet_governs.then_some(shape.in_head)).unwrap_or("");
                    let nonce =
                        ["R4nd0m", "bWV0YW5vbmNlMTIzNDU2", "cGFnZW5vbmNlMTIzNDU2Nzg5MDEyMzQ1Ng=="]
                            .into_iter()
                            .find(|n| governing.contains(n));
                    // The start tag takes the right nonce, and spaces before its `>`.
                    let open = our_start_tag(&text);
                    let unpadded = format!("{}>", open.strip_suffix('>').unwrap().trim_end());
                    let expected =
                        nonce.map_or("<script>".to_string(), |n| format!("<script nonce=\"{n}\">"));
                    assert_eq!(unpadded, expected, "{what}");
                } else {
                    // No script: the page ends with the bytes it was owed, as spaces (all of
                    // them but what an amended policy took).
                    let spaces = out.iter().rev().take_while(|&&b| b == b' ').count();
                    assert!(
                        spaces + 128 >= announced - page.len(),
                        "{what}: ends with {spaces} spaces"
                    );
                    assert!(
                        support::find(out, support::our_script_marker().as_bytes()).is_none(),
                        "{what}"
                    );
                }
            }
        }
    }
}

/// Feeds `input` to `rw` split at `cuts` (an empty input as one empty chunk, then
/// the end of the stream on its own) and returns everything that came out.
fn feed(rw: &mut PageRewriter, input: &[u8], cuts: &[usize]) -> Vec<u8> {
    let whole = Bytes::copy_from_slice(input);
    let mut out = Vec::new();
    let mut start = 0;
    for end in cuts.iter().copied().filter(|&c| c > 0 && c < input.len()).chain([input.len()]) {
        let mut body = Some(whole.slice(start..end));
        rw.process(&mut body, end == input.len());
        out.extend_from_slice(&body.unwrap_or_default());
        start = end;
    }
    if input.is_empty() {
        let mut body = None;
        rw.process(&mut body, true);
        out.extend_from_slice(&body.unwrap_or_default());
    }
    out
}

/// The start tag of our script in `html`, whitespace and all.
fn our_start_tag(html: &str) -> &str {
    let at = html.find(support::our_script_marker()).expect("our script");
    let open = html[..at].rfind("<script").unwrap();
    &html[open..at]
}
