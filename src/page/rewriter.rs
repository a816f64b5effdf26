//! Rewrite: streams an HTML body through lol_html until the page script is placed,
//! then hands every later byte through untouched.
//!
//! The script goes at the earliest point where it still runs before any page code and
//! breaks nothing:
//!
//! - right after `<head>`, when the `Content-Type` header names the charset;
//! - otherwise right after a `<meta charset>` / `http-equiv=Content-Type` element
//!   (browsers look for it only in the first kilobyte, and the script must not push it
//!   out). No bytes are held back to look for one: an app that sends its first bytes
//!   and then pauses gets them to the browser at once;
//! - in any case right before the first token that does not belong in `<head>`
//!   ([`head`](super::head)): a `<script>` or `<template>`, any element but a head
//!   element, an end tag such as `</head>`, text; so never inside `<template>`,
//!   foreign content or raw text, and never after a `<frameset>`. A document without
//!   one gets it at its end, but before whatever the end leaves open (a comment, a
//!   `<title>`, a cut tag), where it would not run.
//!
//! lol_html reports start tags, comments and doctypes; text is what it writes out
//! between them, read from the output (asked for text, lol_html would re-encode it).
//! The only bytes kept back are an open `<title>`, `<style>`, `<noscript>` or
//! `<noframes>` until its end tag (should the body end inside, the script goes before
//! it), and up to two first bytes that may be a byte order mark.
//!
//! The usual start of a page (doctype, `<html>`, `<head>`, `<meta charset>`) is read
//! first without the parser ([`prefix`](super::prefix)); the parser is built only for
//! pages that start otherwise, and reads them from their first byte.
//!
//! Once the script is placed the parser is finished and dropped: the rest of the
//! response is never parsed, copied or re-chunked. The input is fed in slices that
//! start small, so that little beyond the insertion point is parsed either. Memory is
//! bounded by lol_html's limit; on bail-out (limit hit, or no insertion point within
//! `max_scan_bytes`) the bytes pass through unmodified.
//!
//! When the response keeps a `Content-Length` (see [`Pages::start`](super::Pages::start))
//! the rewrite adds exactly the announced number of bytes: the script's start tag is
//! padded with spaces to fill what a page nonce or an amended `<meta>` policy did not
//! take, and a page that gets no script after all (a give-up) ends with that many
//! spaces instead, after its last byte, where they change nothing.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use lol_html::send::HtmlRewriter;
use lol_html::OutputSink;

use super::csp::MetaCsp;
use super::script::PageScript;

mod placement;

use placement::{build_parser, Scan};

/// Bytes handed to the parser at a time while looking for the insertion point: the
/// first slice is small (the point is usually near the top), later ones grow to this.
const SLICE: usize = 2048;
const FIRST_SLICE: usize = 256;

/// Renders the script at the insertion point, given the CSP nonce found on the page
/// (if any).
pub(crate) type Render = Box<dyn FnOnce(Option<&str>) -> Arc<PageScript> + Send>;

/// The script as it goes into the page: as rendered, or refitted to the length left.
enum Placed {
    Rendered(Arc<PageScript>),
    Fitted(String),
}

impl Placed {
    fn html(&self) -> &str {
        match self {
            Placed::Rendered(script) => script.html(),
            Placed::Fitted(html) => html,
        }
    }
}

/// Limits of one rewrite.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Give up looking for the insertion point after this many bytes.
    pub max_scan_bytes: usize,
    /// Memory bound of the parser.
    pub parser_memory: usize,
}

/// How a rewrite ended (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Still looking.
    Scanning,
    /// The script was placed.
    Placed,
    /// Nothing was placed; the page went through unchanged.
    GaveUp(GiveUpReason),
}

/// Why nothing was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpReason {
    /// No insertion point within the scan limit.
    ScanLimit,
    /// The parser hit its memory bound.
    Memory,
    /// A `<meta>` CSP forbids the script and cannot be amended.
    MetaCsp,
    /// The parser failed otherwise.
    ParserError,
    /// The script would not fit in the length announced for the response.
    Length,
}

struct Shared {
    render: Mutex<Option<Render>>,
    /// What the parser has written out so far (the part not yet handed on in `bytes`).
    out: Mutex<Vec<u8>>,
    /// Bytes written out, and bytes given to the parser, since the start.
    emitted: AtomicUsize,
    fed: AtomicUsize,
    /// Bytes the rewrite must add, when the response announced its length.
    extra: Option<usize>,
    /// A nonce learned from a `<meta>` CSP seen before the insertion point.
    meta_nonce: Mutex<Option<String>>,
    /// Why nothing will be placed, once that is decided before the end.
    refusal: OnceLock<GiveUpReason>,
    placed: AtomicBool,
    meta_csp: MetaCsp,
    /// Whether the script may go right after `<head>` (the header names the charset).
    head_ok: bool,
    /// Where the scan stands between the tokens the parser reports.
    scan: Mutex<Scan>,
    /// The body has ended: a token the parser reports now was left open by the end.
    at_end: AtomicBool,
}

impl Shared {
    /// Takes the renderer (once) and renders with the best nonce known, for a point
    /// where the output is already `grown` bytes longer than the input.
    fn render(&self, element_nonce: Option<&str>, grown: isize) -> Option<Placed> {
        let render = self.render.lock().ok()?.take()?;
        let meta = self.meta_nonce.lock().ok().and_then(|m| m.clone());
        let script = render(meta.as_deref().or(element_nonce));
        let placed = match self.extra {
            Some(extra) => {
                let room = extra as isize - grown;
                if room == script.html().len() as isize {
                    Placed::Rendered(script)
                } else if let Some(fitted) = fit(script.html(), room) {
                    Placed::Fitted(fitted)
                } else {
                    refuse_for_length(self, "the script does not fit in the announced length");
                    return None;
                }
            }
            None => Placed::Rendered(script),
        };
        self.placed.store(true, Ordering::Release);
        Some(placed)
    }

    /// How much longer than the input the output is up to input offset `at`. Valid in a
    /// handler: lol_html writes out everything before a token before handing it over.
    fn grown(&self, at: usize) -> isize {
        self.emitted.load(Ordering::Acquire) as isize - at as isize
    }

    fn pending(&self) -> bool {
        self.render.lock().map(|r| r.is_some()).unwrap_or(false)
    }
}

/// The script `html` with as many spaces at the end of its start tag as make it
/// `room` bytes long; `None` when it does not fit.
fn fit(html: &str, room: isize) -> Option<String> {
    // The script is ours: its start tag ends at its first `>` (a nonce has none).
    let at = html.find('>')?;
    let tag = html[..at].trim_end_matches(' ');
    let rest = &html[at..];
    let pad = usize::try_from(room).ok()?.checked_sub(tag.len() + rest.len())?;
    let mut fitted = String::with_capacity(tag.len() + pad + rest.len());
    fitted.push_str(tag);
    super::script::push_spaces(&mut fitted, pad);
    fitted.push_str(rest);
    Some(fitted)
}

struct Sink(Arc<Shared>);

impl OutputSink for Sink {
    fn handle_chunk(&mut self, chunk: &[u8]) {
        self.0.emitted.fetch_add(chunk.len(), Ordering::AcqRel);
        lock(&self.0.out).extend_from_slice(chunk);
    }
}

/// The streaming rewriter of one response.
pub struct PageRewriter {
    shared: Arc<Shared>,
    /// The HTML parser, built only when the narrow reading of the page's start
    /// ([`prefix`](super::prefix)) cannot place the script. lol_html's Send rewriter
    /// is not Sync; the Mutex is never contended (one owner).
    parser: Option<Mutex<HtmlRewriter<'static, Sink>>>,
    /// Whether the narrow reading is tried first (tests compare it with the parser).
    narrow: bool,
    /// The rewrite is over: later chunks pass through (but for the spaces owed).
    done: bool,
    limits: Limits,
    outcome: Outcome,
    /// Spaces still owed at the end of the body to make up the announced length.
    owed: usize,
}

impl PageRewriter {
    /// Prepares a rewrite that places what `render` returns. `charset_in_header` says
    /// whether the response's `Content-Type` names the charset.
    /// `extra`, when set, is the number of bytes the output must have beyond the input.
    pub(crate) fn new(
        render: Render,
        meta_csp: MetaCsp,
        limits: Limits,
        charset_in_header: bool,
        extra: Option<usize>,
    ) -> Self {
        let shared = Arc::new(Shared {
            render: Mutex::new(Some(render)),
            // Sized when the parser is built: most pages never need it.
            out: Mutex::new(Vec::new()),
            emitted: AtomicUsize::new(0),
            fed: AtomicUsize::new(0),
            extra,
            meta_nonce: Mutex::new(None),
            refusal: OnceLock::new(),
            placed: AtomicBool::new(false),
            meta_csp,
            head_ok: charset_in_header,
            scan: Mutex::new(Scan::default()),
            at_end: AtomicBool::new(false),
        });
        PageRewriter {
            shared,
            parser: None,
            narrow: true,
            done: false,
            limits,
            outcome: Outcome::Scanning,
            owed: 0,
        }
    }

    /// The same rewrite with the parser alone, for comparing the two.
    #[cfg(test)]
    pub(crate) fn parser_only(mut self) -> Self {
        self.narrow = false;
        self
    }

    /// Bytes of this response read so far to find the insertion point (by the narrow
    /// reader, up to the point it found, or by the HTML parser).
    pub fn parsed_bytes(&self) -> usize {
        self.shared.fed.load(Ordering::Acquire)
    }

    /// How the rewrite went so far.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Whether later chunks are passed through untouched.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Rewrites one body chunk in place (Pingora's body-filter shape). Once the script
    /// is placed this returns at once, leaving `body` as it is.
    pub fn process(&mut self, body: &mut Option<Bytes>, end_of_stream: bool) {
        if self.done {
            self.pay(body, end_of_stream);
            return;
        }
        let input = body.take().unwrap_or_default();
        // Before the parser exists nothing has been read: this is the first chunk.
        if self.narrow && self.parser.is_none() {
            if let Some(out) = self.place_in_prefix(&input) {
                *body = Some(out);
                self.pay(body, end_of_stream);
                return;
            }
        }
        let shared = self.shared.clone();
        let parser =
            self.parser.get_or_insert_with(|| Mutex::new(build_parser(&shared, self.limits)));
        let mut offset = 0;
        let mut fed = shared.fed.load(Ordering::Acquire);
        let mut finish: Option<Outcome> = None;
        {
            let rewriter = parser.get_mut().unwrap_or_else(|p| p.into_inner());
            while offset < input.len() {
                let end = (offset + next_slice(fed, self.limits.max_scan_bytes)).min(input.len());
                fed += end - offset;
                shared.fed.store(fed, Ordering::Release);
                let result = rewriter.write(&input[offset..end]);
                offset = end;
                if let Err(e) = result {
                    // Graceful bail-out already flushed every byte given so far.
                    finish = Some(Outcome::GaveUp(match e {
                        lol_html::errors::RewritingError::MemoryLimitExceeded(_) => {
                            GiveUpReason::Memory
                        }
                        _ => GiveUpReason::ParserError,
                    }));
                    break;
                }
                // Text the parser wrote out after its last token, if any, closes <head>.
                if shared.pending() {
                    shared.text_since_last_token(true);
                }
                if shared.placed.load(Ordering::Acquire) {
                    finish = Some(Outcome::Placed);
                    break;
                }
                if let Some(&why) = shared.refusal.get() {
                    finish = Some(Outcome::GaveUp(why));
                    break;
                }
                if fed >= self.limits.max_scan_bytes {
                    finish = Some(Outcome::GaveUp(GiveUpReason::ScanLimit));
                    break;
                }
            }
        }
        if finish.is_none() && end_of_stream {
            finish = Some(Outcome::Scanning);
        }
        let Some(outcome) = finish else {
            let mut out = lock(&shared.out);
            let ready = shared.releasable(out.len());
            let kept = out.split_off(ready);
            *body = Some(Bytes::from(std::mem::replace(&mut *out, kept)));
            return;
        };
        let parser = self.parser.take().expect("parser present");
        self.done = true;
        let errored =
            matches!(outcome, Outcome::GaveUp(GiveUpReason::Memory | GiveUpReason::ParserError));
        if matches!(outcome, Outcome::GaveUp(_)) || (outcome != Outcome::Placed && !end_of_stream) {
            // Giving up, or stopping mid-document: `end()` must place nothing, or the
            // script would land wherever the parser stopped (inside a tag, say).
            lock(&shared.render).take();
        }
        if !errored {
            // `end()` flushes the bytes the parser still holds (an unfinished tag) and,
            // at the real end of the document, places the script if nothing else did.
            shared.at_end.store(true, Ordering::Release);
            let rewriter = parser.into_inner().unwrap_or_else(|p| p.into_inner());
            let _ = rewriter.end();
        }
        self.outcome = match outcome {
            Outcome::Scanning if shared.placed.load(Ordering::Acquire) => Outcome::Placed,
            Outcome::Scanning => {
                Outcome::GaveUp(shared.refusal.get().copied().unwrap_or(GiveUpReason::ScanLimit))
            }
            other => other,
        };
        self.settle(shared.grown(fed));
        let mut out = std::mem::take(&mut *lock(&shared.out));
        out.extend_from_slice(&input[offset..]);
        *body = Some(Bytes::from(out));
        self.pay(body, end_of_stream);
    }

    /// Places the script in the first chunk without the parser, when the narrow
    /// reading of the page's start finds the point ([`prefix`](super::prefix)).
    fn place_in_prefix(&mut self, first: &Bytes) -> Option<Bytes> {
        let at = super::prefix::insertion_point(first, self.shared.head_ok)?;
        // Where the parser would have given up first, it must be the one to.
        if at > self.limits.max_scan_bytes {
            return None;
        }
        let script = self.shared.render(None, 0);
        self.done = true;
        self.shared.fed.store(at, Ordering::Release);
        let html = script.as_ref().map_or("", Placed::html);
        self.outcome = match script {
            Some(_) => Outcome::Placed,
            // The renderer was there to take: only the length can have refused it.
            None => {
                Outcome::GaveUp(self.shared.refusal.get().copied().unwrap_or(GiveUpReason::Length))
            }
        };
        self.settle(html.len() as isize);
        let mut out = Vec::with_capacity(first.len() + html.len());
        out.extend_from_slice(&first[..at]);
        out.extend_from_slice(html.as_bytes());
        out.extend_from_slice(&first[at..]);
        Some(Bytes::from(out))
    }

    /// The rewrite is over and the output is `grown` bytes longer than the input: what
    /// is still owed to an announced length.
    fn settle(&mut self, grown: isize) {
        if let Some(extra) = self.shared.extra {
            // A placed script was fitted to the length; `grown` cannot pass `extra`.
            self.owed = usize::try_from(extra as isize - grown).unwrap_or(0);
        }
    }

    /// At the end of the body, ends it with the spaces still owed to the announced
    /// length. Whitespace after the last byte of a document changes nothing a browser
    /// shows or runs.
    fn pay(&mut self, body: &mut Option<Bytes>, end_of_stream: bool) {
        if !end_of_stream || self.owed == 0 {
            return;
        }
        let mut last = body.take().map(Vec::from).unwrap_or_default();
        last.resize(last.len() + self.owed, b' ');
        self.owed = 0;
        *body = Some(Bytes::from(last));
    }
}

/// How many bytes to give the parser next, `fed` having been given: a small first
/// slice, then growing ones, and never past the scan limit. The parser must have read
/// exactly the first `max_scan_bytes` bytes when it gives up, whatever the chunks were:
/// a slice running past the limit would place the script beyond it when the page came
/// in one chunk, and not when it came in two.
fn next_slice(fed: usize, max_scan_bytes: usize) -> usize {
    let slice = if fed < FIRST_SLICE { FIRST_SLICE } else { SLICE.min(fed.next_power_of_two()) };
    // At least one byte, so that the loop moves on and gives up at the limit.
    slice.min(max_scan_bytes.saturating_sub(fed)).max(1)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Gives up because the script cannot fit the length the response announced.
fn refuse_for_length(shared: &Shared, why: &str) {
    crate::warn_limited!("not injecting: {why}");
    stop(shared, GiveUpReason::Length);
}

/// Nothing is placed from here on, and the scan ends, for reason `why`.
fn stop(shared: &Shared, why: GiveUpReason) {
    lock(&shared.render).take();
    let _ = shared.refusal.set(why);
}
