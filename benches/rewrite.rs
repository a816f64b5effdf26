//! Page rewriting throughput: each corpus page fed through `PageRewriter` the way the
//! proxy's body filter receives it (16 KiB `Bytes` slices of one buffer; and, in
//! `rewrite_one_chunk`, the whole page as one chunk), with the per-response setup
//! (`Pages::start`: header changes, CSP plan, script render, rewriter construction)
//! inside the measured loop, exactly as the proxy does it.
//!
//! Run: `cargo bench --bench rewrite`. Throughput is reported per page byte, so the
//! figure is "page bytes delivered per second", not "bytes parsed per second": the
//! rewriter stops parsing once the script is placed.

mod harness;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use criterion::{black_box, Criterion, Throughput};
use intercom_secure_proxy::page::{Limits, Outcome, Pages, Plan, ScriptSettings};
use pingora::http::ResponseHeader;

/// What a proxy body filter typically receives per call.
const CHUNK: usize = 16 * 1024;
/// Over loopback Pingora may hand the filter a small page in a single chunk (seen with
/// app.html from a local nginx), so the whole page as one chunk is measured too.
const WHOLE: usize = usize::MAX;
const PAGES: [&str; 4] =
    ["app.html", "cloudflare.com.html", "ecma402-spec.html", "html-parsing-spec.html"];
/// A real HS256 token shape (header.claims.signature); the rewriter never inspects it.
const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoiYmVuY2gtdXNlciIsImVtYWlsIjoiYmVuY2hAZXhhbXBsZS5jb20iLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMzYwMH0.c2lnbmF0dXJlLW9mLXRoZS1iZW5jaC10b2tlbi0wMTIzNDU2Nzg5YWI";

fn corpus(name: &str) -> Bytes {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(name);
    let data =
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    Bytes::from(data)
}

fn pages() -> Pages {
    Pages::new(
        &ScriptSettings {
            app_id: "abc12345",
            api_base: "https://api-iam.intercom.io",
            auto_include: false,
            cookie_domain: None,
            mode: Default::default(),
            refresh: None,
        },
        Limits { max_scan_bytes: 1 << 20, parser_memory: 256 << 10 },
    )
}

fn plan() -> Plan {
    Plan { token: Some(TOKEN.into()), ..Plan::default() }
}

/// One response, started as the proxy starts it (an app's HTML header without CSP),
/// then fed chunk by chunk. Calls `sink` with every output chunk.
fn rewrite_page(pages: &Pages, page: &Bytes, chunk: usize, mut sink: impl FnMut(Bytes)) -> Outcome {
    let mut resp = ResponseHeader::build(200, Some(4)).expect("header");
    resp.insert_header("content-type", "text/html").expect("header");
    resp.insert_header("content-length", page.len().to_string()).expect("header");
    let mut rewriter = pages.start(&mut resp, &plan()).expect("start");
    let mut offset = 0;
    while offset < page.len() {
        let end = offset.saturating_add(chunk).min(page.len());
        let mut body = Some(page.slice(offset..end));
        rewriter.process(&mut body, end == page.len());
        if let Some(out) = body {
            sink(out);
        }
        offset = end;
    }
    rewriter.outcome()
}

/// The rewriter must place exactly our script (its start tag padded to the announced
/// length) and keep every other byte.
fn check(pages: &Pages, name: &str, page: &Bytes, chunk: usize) {
    let mut out = Vec::with_capacity(page.len() + 8192);
    let outcome = rewrite_page(pages, page, chunk, |b| out.extend_from_slice(&b));
    assert_eq!(outcome, Outcome::Placed, "{name}: script not placed");
    let script = pages.script(&plan(), None);
    let content = script.html().strip_prefix("<script>").expect("a plain start tag").as_bytes();
    let after = out
        .windows(content.len())
        .position(|w| w == content)
        .unwrap_or_else(|| panic!("{name}: script not found in output"));
    let at = after - out[..after].iter().rev().position(|&b| b == b'<').expect("start tag") - 1;
    let tag = std::str::from_utf8(&out[at..after]).expect("ascii start tag");
    assert_eq!(
        format!("{}>", tag.trim_end_matches('>').trim_end()),
        "<script>",
        "{name}: start tag"
    );
    assert_eq!(&out[..at], &page[..at], "{name}: bytes before the script changed");
    assert_eq!(
        &out[after + content.len()..],
        &page[at..],
        "{name}: bytes after the script changed"
    );
    assert!(String::from_utf8_lossy(&out).contains("\"j\":\"eyJ"), "{name}: token missing");
}

fn bench_rewrite(c: &mut Criterion) {
    let rewriting = pages();
    let corpus: Vec<(&str, Bytes)> = PAGES.iter().map(|&name| (name, corpus(name))).collect();
    for (group_name, chunk) in [("rewrite", CHUNK), ("rewrite_one_chunk", WHOLE)] {
        let mut group = c.benchmark_group(group_name);
        for (name, page) in &corpus {
            check(&rewriting, name, page, chunk);
            group.throughput(Throughput::Bytes(page.len() as u64));
            group.bench_function(*name, |b| {
                b.iter(|| {
                    let mut out_bytes = 0usize;
                    let outcome = rewrite_page(&rewriting, black_box(page), chunk, |out| {
                        out_bytes += out.len();
                        black_box(out);
                    });
                    black_box((outcome, out_bytes))
                })
            });
        }
        group.finish();
    }
}

/// Set-up checks under `cargo test`: every corpus page rewrites right, in chunks and whole.
fn main() {
    let targets: &[fn(&mut Criterion)] = &[bench_rewrite];
    harness::main(harness::config(Duration::from_millis(800), 50), targets, || {
        let rewriting = pages();
        for name in PAGES {
            let page = corpus(name);
            check(&rewriting, name, &page, CHUNK);
            check(&rewriting, name, &page, WHOLE);
        }
        println!("rewrite bench: {} pages rewrite correctly (run `cargo bench --bench rewrite` to measure)", PAGES.len());
    });
}
