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
//! - in any case before a `<script>`, the `</head>` end tag or inside `<body>` if one
//!   of those comes first; or at the end of a document that has none of them.
//!
//! Once the script is placed the parser is finished and dropped: the rest of the
//! response is never parsed, copied or re-chunked. The input is fed in slices that
//! start small, so that little beyond the insertion point is parsed either. Memory is
//! bounded by lol_html's limit; on bail-out (limit hit, or no insertion point within
//! `max_scan_bytes`) the bytes pass through unmodified.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use lol_html::html_content::{ContentType, Element};
use lol_html::send::{HtmlRewriter, Settings};
use lol_html::{ElementContentHandlers, MemorySettings, OutputSink, Selector};
use once_cell::sync::Lazy;

use super::csp::{MetaCsp, MetaVerdict};

/// Bytes handed to the parser at a time while looking for the insertion point: the
/// first slice is small (the point is usually near the top), later ones grow to this.
const SLICE: usize = 2048;
const FIRST_SLICE: usize = 256;

static SCRIPT: Lazy<Selector> = Lazy::new(|| "script".parse().expect("static selector"));
static HEAD: Lazy<Selector> = Lazy::new(|| "head".parse().expect("static selector"));
static BODY: Lazy<Selector> = Lazy::new(|| "body".parse().expect("static selector"));
static META: Lazy<Selector> = Lazy::new(|| "meta".parse().expect("static selector"));

/// Renders the script at the insertion point, given the CSP nonce found on the page
/// (if any). `None` means "do not inject after all".
pub(crate) type Render = Box<dyn FnOnce(Option<&str>) -> Option<String> + Send>;

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
}

struct Shared {
    render: Mutex<Option<Render>>,
    /// A nonce learned from a `<meta>` CSP seen before the insertion point.
    meta_nonce: Mutex<Option<String>>,
    refused: AtomicBool,
    placed: AtomicBool,
    meta_csp: MetaCsp,
    /// Whether the script may go right after `<head>` (the header names the charset).
    head_ok: bool,
}

impl Shared {
    /// Takes the renderer (once) and renders with the best nonce known.
    fn render(&self, element_nonce: Option<&str>) -> Option<String> {
        let render = self.render.lock().ok()?.take()?;
        let meta = self.meta_nonce.lock().ok().and_then(|m| m.clone());
        let html = render(meta.as_deref().or(element_nonce));
        self.placed.store(html.is_some(), Ordering::Release);
        html
    }

    fn pending(&self) -> bool {
        self.render.lock().map(|r| r.is_some()).unwrap_or(false)
    }
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl OutputSink for Sink {
    fn handle_chunk(&mut self, chunk: &[u8]) {
        if let Ok(mut out) = self.0.lock() {
            out.extend_from_slice(chunk);
        }
    }
}

struct Scanner {
    // lol_html's Send rewriter is not Sync; the Mutex is never contended (one owner).
    rewriter: Mutex<HtmlRewriter<'static, Sink>>,
    out: Arc<Mutex<Vec<u8>>>,
    shared: Arc<Shared>,
}

/// The streaming rewriter of one response.
pub struct PageRewriter {
    scanner: Option<Scanner>,
    limits: Limits,
    fed: usize,
    outcome: Outcome,
}

impl PageRewriter {
    /// Prepares a rewrite that places what `render` returns. `charset_in_header` says
    /// whether the response's `Content-Type` names the charset.
    pub(crate) fn new(render: Render, meta_csp: MetaCsp, limits: Limits, charset_in_header: bool) -> Self {
        let shared = Arc::new(Shared {
            render: Mutex::new(Some(render)),
            meta_nonce: Mutex::new(None),
            refused: AtomicBool::new(false),
            placed: AtomicBool::new(false),
            meta_csp,
            head_ok: charset_in_header,
        });
        let out = Arc::new(Mutex::new(Vec::with_capacity(SLICE * 2)));
        let settings = Settings::new_send()
            .with_strict(false)
            .with_memory_settings(
                MemorySettings::new()
                    .with_max_allowed_memory_usage(limits.parser_memory)
                    .with_graceful_bail_out_on_memory_limit_exceeded(true),
            )
            .with_graceful_bail_out_on_content_handler_error(true)
            .append_element_content_handler(handler(&META, &shared, on_meta))
            .append_element_content_handler(handler(&SCRIPT, &shared, |el, s| {
                let nonce = el.get_attribute("nonce");
                if let Some(html) = s.render(nonce.as_deref()) {
                    el.before(&html, ContentType::Html);
                }
            }))
            .append_element_content_handler(handler(&HEAD, &shared, |el, s| {
                // A self-closed `<head/>` (possible in foreign content) takes no content.
                if s.head_ok && el.can_have_content() {
                    if let Some(html) = s.render(None) {
                        el.prepend(&html, ContentType::Html);
                    }
                    return;
                }
                let s = s.clone();
                // Void or self-closed heads have no end tag; the other points apply.
                let _ = el.on_end_tag(Box::new(move |end| {
                    if s.pending() {
                        if let Some(html) = s.render(None) {
                            end.before(&html, ContentType::Html);
                        }
                    }
                    Ok(())
                }));
            }))
            .append_element_content_handler(handler(&BODY, &shared, |el, s| {
                if !el.can_have_content() {
                    return;
                }
                if let Some(html) = s.render(None) {
                    el.prepend(&html, ContentType::Html);
                }
            }))
            .append_document_content_handler(lol_html::send::DocumentContentHandlers::default().end({
                let s = shared.clone();
                Box::new(move |end: &mut lol_html::html_content::DocumentEnd<'_>| {
                    if let Some(html) = s.render(None) {
                        end.append(&html, ContentType::Html);
                    }
                    Ok(())
                })
            }));
        let rewriter = HtmlRewriter::new(settings, Sink(out.clone()));
        PageRewriter {
            scanner: Some(Scanner {
                rewriter: Mutex::new(rewriter),
                out,
                shared,
            }),
            limits,
            fed: 0,
            outcome: Outcome::Scanning,
        }
    }

    /// Bytes of this response the HTML parser has been given so far.
    pub fn parsed_bytes(&self) -> usize {
        self.fed
    }

    /// How the rewrite went so far.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Whether later chunks are passed through untouched.
    pub fn is_done(&self) -> bool {
        self.scanner.is_none()
    }

    /// Rewrites one body chunk in place (Pingora's body-filter shape). Once the script
    /// is placed this returns at once, leaving `body` as it is.
    pub fn process(&mut self, body: &mut Option<Bytes>, end_of_stream: bool) {
        let Some(scanner) = self.scanner.as_mut() else {
            return;
        };
        let input = body.take().unwrap_or_default();
        let mut offset = 0;
        let mut finish: Option<Outcome> = None;
        {
            let rewriter = scanner.rewriter.get_mut().unwrap_or_else(|p| p.into_inner());
            while offset < input.len() {
                let slice = if self.fed < FIRST_SLICE { FIRST_SLICE } else { SLICE.min(self.fed.next_power_of_two()) };
                let end = (offset + slice).min(input.len());
                let result = rewriter.write(&input[offset..end]);
                self.fed += end - offset;
                offset = end;
                if let Err(e) = result {
                    // Graceful bail-out already flushed every byte given so far.
                    finish = Some(Outcome::GaveUp(match e {
                        lol_html::errors::RewritingError::MemoryLimitExceeded(_) => GiveUpReason::Memory,
                        _ => GiveUpReason::ParserError,
                    }));
                    break;
                }
                if scanner.shared.placed.load(Ordering::Acquire) {
                    finish = Some(Outcome::Placed);
                    break;
                }
                if scanner.shared.refused.load(Ordering::Acquire) {
                    finish = Some(Outcome::GaveUp(GiveUpReason::MetaCsp));
                    break;
                }
                if self.fed >= self.limits.max_scan_bytes {
                    finish = Some(Outcome::GaveUp(GiveUpReason::ScanLimit));
                    break;
                }
            }
        }
        if finish.is_none() && end_of_stream {
            finish = Some(Outcome::Scanning);
        }
        let Some(outcome) = finish else {
            let out = std::mem::take(&mut *lock(&scanner.out));
            *body = Some(Bytes::from(out));
            return;
        };
        let scanner = self.scanner.take().expect("scanner present");
        let errored = matches!(outcome, Outcome::GaveUp(GiveUpReason::Memory | GiveUpReason::ParserError));
        if matches!(outcome, Outcome::GaveUp(_)) || (outcome != Outcome::Placed && !end_of_stream) {
            // Giving up, or stopping mid-document: `end()` must place nothing, or the
            // script would land wherever the parser stopped (inside a tag, say).
            lock(&scanner.shared.render).take();
        }
        if !errored {
            // `end()` flushes the bytes the parser still holds (an unfinished tag) and,
            // at the real end of the document, places the script if nothing else did.
            let rewriter = scanner.rewriter.into_inner().unwrap_or_else(|p| p.into_inner());
            let _ = rewriter.end();
        }
        self.outcome = match outcome {
            Outcome::Scanning if scanner.shared.placed.load(Ordering::Acquire) => Outcome::Placed,
            Outcome::Scanning if scanner.shared.refused.load(Ordering::Acquire) => {
                Outcome::GaveUp(GiveUpReason::MetaCsp)
            }
            Outcome::Scanning => Outcome::GaveUp(GiveUpReason::ScanLimit),
            other => other,
        };
        let mut out = std::mem::take(&mut *lock(&scanner.out));
        out.extend_from_slice(&input[offset..]);
        *body = Some(Bytes::from(out));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An element handler that runs `f` only while the script is still to be placed.
fn handler(
    selector: &'static Selector,
    shared: &Arc<Shared>,
    f: fn(&mut Element<'_, '_, lol_html::send::SendHandlerTypes>, &Arc<Shared>),
) -> (
    Cow<'static, Selector>,
    ElementContentHandlers<'static, lol_html::send::SendHandlerTypes>,
) {
    let shared = shared.clone();
    (
        Cow::Borrowed(selector),
        ElementContentHandlers::default().element(Box::new(move |el: &mut Element<'_, '_, _>| {
            if shared.pending() {
                f(el, &shared);
            }
            Ok(())
        })),
    )
}

/// A charset declaration is the insertion point when `<head>` was not safe. A
/// `<meta http-equiv=Content-Security-Policy>` before the insertion point applies to our
/// script: learn its nonce, amend it with our hash, or refuse to inject.
fn on_meta(el: &mut Element<'_, '_, lol_html::send::SendHandlerTypes>, shared: &Arc<Shared>) {
    let http_equiv = el.get_attribute("http-equiv");
    let declares_charset = el.has_attribute("charset")
        || http_equiv.as_deref().is_some_and(|v| v.trim().eq_ignore_ascii_case("content-type"));
    if declares_charset {
        // Inside foreign content (`<svg><meta charset>`) lol_html sees an element that
        // waits for an end tag that never comes: the script would never be written.
        if el.can_have_content() {
            return;
        }
        if let Some(html) = shared.render(None) {
            el.after(&html, ContentType::Html);
        }
        return;
    }
    let is_csp = http_equiv.is_some_and(|v| v.trim().eq_ignore_ascii_case("content-security-policy"));
    if !is_csp {
        return;
    }
    let content = el.get_attribute("content").unwrap_or_default();
    match shared.meta_csp.judge(&content) {
        MetaVerdict::Allows => {}
        MetaVerdict::Nonce(n) => *lock(&shared.meta_nonce) = Some(n),
        MetaVerdict::Amend(amended) => {
            if el.set_attribute("content", &amended).is_err() {
                refuse(shared, "its content could not be rewritten");
            }
        }
        MetaVerdict::Refuse(why) => refuse(shared, &why),
    }
}

fn refuse(shared: &Shared, why: &str) {
    log::warn!("not injecting: the page's <meta> Content-Security-Policy {why}");
    lock(&shared.render).take();
    shared.refused.store(true, Ordering::Release);
}
