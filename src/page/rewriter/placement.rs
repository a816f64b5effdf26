//! Where the script goes, as lol_html reads the page: the handlers of the tokens it
//! reports (start tags, comments, doctypes, the end), and the scan of the text it writes
//! out between them, by the rules of [`head`](crate::page::head).

use std::borrow::Cow;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use lol_html::html_content::{ContentType, Element};
use lol_html::send::{HtmlRewriter, Settings};
use lol_html::{ElementContentHandlers, MemorySettings, Selector};
use once_cell::sync::Lazy;

use super::{lock, refuse_for_length, stop, GiveUpReason, Limits, Shared, Sink, SLICE};
use crate::page::csp::MetaVerdict;
use crate::page::head::{self, Between, Role};

static ANY: Lazy<Selector> = Lazy::new(|| "*".parse().expect("static selector"));

/// Where the scan stands in the body. The parser reports start tags, comments and
/// doctypes, not text (asked for text, lol_html would re-encode every byte of it):
/// text is what it writes out between them, read here from the output.
#[derive(Default)]
pub(super) struct Scan {
    /// Input before this offset is tokens, or whitespace between them.
    checked: usize,
    /// How much longer the output is than the input at `checked`.
    growth: isize,
    /// Inside `<title>`, `<style>`, `<noscript>` or `<noframes>`: text up to its end tag.
    in_text_element: bool,
    /// Output from this offset is kept back: the start tag of an open text element, or
    /// a start of the body that may be a byte order mark. Should the body end before
    /// its end tag (or the mark), the script goes there.
    held_from: Option<usize>,
}

impl Shared {
    /// Places the script at output offset `at`, in the part of the output not yet
    /// handed on, where the output is `grown` bytes longer than the input.
    fn place_at(&self, at: usize, grown: isize, nonce: Option<&str>) {
        let Some(script) = self.render(nonce, grown) else { return };
        let html = script.html().as_bytes();
        let mut out = lock(&self.out);
        let start = self.emitted.load(Ordering::Acquire) - out.len();
        out.splice(at - start..at - start, html.iter().copied());
        self.emitted.fetch_add(html.len(), Ordering::AcqRel);
    }

    /// Places the script right before the token that starts at input offset `at`
    /// (everything before it is written out).
    fn place_before_token(&self, at: usize, nonce: Option<&str>) {
        self.place_at(self.emitted.load(Ordering::Acquire), self.grown(at), nonce);
    }

    /// Reads what was written out since the last token and places the script before
    /// any text in it; `more` says whether the text may go on. Returns whether the
    /// script is still to be placed.
    pub(super) fn text_since_last_token(&self, more: bool) -> bool {
        let mut scan = lock(&self.scan);
        if scan.in_text_element {
            return true;
        }
        let from = (scan.checked as isize + scan.growth) as usize;
        let found = {
            let out = lock(&self.out);
            let start = self.emitted.load(Ordering::Acquire) - out.len();
            let between = &out[from - start..];
            match head::between(between, scan.checked, more) {
                Between::Blank => {
                    scan.checked += between.len();
                    scan.held_from = None;
                    None
                }
                Between::MaybeBom => {
                    scan.held_from = Some(from);
                    None
                }
                Between::Text(i) => Some(from + i),
            }
        };
        match found {
            Some(at) => {
                let growth = scan.growth;
                drop(scan);
                self.place_at(at, growth, None);
                false
            }
            None => true,
        }
    }

    /// The token at `range` of the input was written out as it was: the scan goes on
    /// after it.
    fn passed(&self, range: Range<usize>) {
        let mut scan = lock(&self.scan);
        scan.growth = self.grown(range.start);
        scan.checked = range.end;
    }

    /// A rewritten token that ends at input offset `end` has just been written out.
    fn passed_rewritten(&self, end: usize) {
        lock(&self.scan).growth = self.grown(end);
    }

    /// A text element starts here: its start tag and text are kept back until its end
    /// tag.
    fn hold_text_element(&self) {
        let mut scan = lock(&self.scan);
        scan.in_text_element = true;
        scan.held_from = Some(self.emitted.load(Ordering::Acquire));
    }

    /// Where the open text element starts, if one is open: the output offset of its
    /// start tag and how much longer the output is there.
    fn open_text_element(&self) -> Option<(usize, isize)> {
        let scan = lock(&self.scan);
        scan.in_text_element.then(|| (scan.held_from.expect("a text element is held"), scan.growth))
    }

    /// The end tag at `range` closes the open text element.
    fn text_element_closed(&self, range: Range<usize>) {
        {
            let mut scan = lock(&self.scan);
            scan.in_text_element = false;
            scan.held_from = None;
        }
        self.passed(range);
    }

    /// How much of the output gathered so far may be handed on.
    pub(super) fn releasable(&self, out_len: usize) -> usize {
        let start = self.emitted.load(Ordering::Acquire) - out_len;
        lock(&self.scan).held_from.map_or(out_len, |held| held - start)
    }
}

/// lol_html's rewriter with the handlers that place the script.
pub(super) fn build_parser(shared: &Arc<Shared>, limits: Limits) -> HtmlRewriter<'static, Sink> {
    lock(&shared.out).reserve(SLICE * 2);
    let on_comment = shared.clone();
    let on_doctype = shared.clone();
    let on_end = shared.clone();
    let settings = Settings::new_send()
        .with_strict(false)
        .with_memory_settings(
            MemorySettings::new()
                .with_max_allowed_memory_usage(limits.parser_memory)
                .with_graceful_bail_out_on_memory_limit_exceeded(true),
        )
        .with_graceful_bail_out_on_content_handler_error(true)
        .append_element_content_handler(start_tags(shared))
        .append_document_content_handler(
            lol_html::send::DocumentContentHandlers::default()
                .comments(Box::new(move |c: &mut lol_html::html_content::Comment<'_>| {
                    on_markup(&on_comment, c.source_location().bytes());
                    Ok(())
                }))
                .doctype(Box::new(move |d: &mut lol_html::html_content::Doctype<'_>| {
                    on_markup(&on_doctype, d.source_location().bytes());
                    Ok(())
                }))
                .end(Box::new(move |_: &mut lol_html::html_content::DocumentEnd<'_>| {
                    on_document_end(&on_end);
                    Ok(())
                })),
        );
    HtmlRewriter::new(settings, Sink(shared.clone()))
}

/// The handler of every start tag while the script is still to be placed.
fn start_tags(
    shared: &Arc<Shared>,
) -> (Cow<'static, Selector>, ElementContentHandlers<'static, lol_html::send::SendHandlerTypes>) {
    let shared = shared.clone();
    let handlers =
        ElementContentHandlers::default().element(Box::new(move |el: &mut Element<'_, '_, _>| {
            if shared.pending() {
                on_start_tag(el, &shared);
            }
            Ok(())
        }));
    (Cow::Borrowed(&*ANY), handlers)
}

/// A start tag: the script goes before it, after it (`<head>`, a charset declaration),
/// or later; any text before it comes first ([`head`](crate::page::head)).
fn on_start_tag(el: &mut Element<'_, '_, lol_html::send::SendHandlerTypes>, shared: &Arc<Shared>) {
    let range = el.source_location().bytes();
    if !shared.text_since_last_token(false) {
        return;
    }
    let name = el.tag_name();
    match head::role(&name) {
        Role::Before => {
            // A page script's nonce is the one our script needs under the page's policy.
            let nonce = if name == "script" { el.get_attribute("nonce") } else { None };
            shared.place_before_token(range.start, nonce.as_deref());
        }
        Role::HeadText => {
            shared.hold_text_element();
            let s = shared.clone();
            let closed = el.on_end_tag(Box::new(move |end| {
                if s.pending() {
                    s.text_element_closed(end.source_location().bytes());
                }
                Ok(())
            }));
            // lol_html gives every HTML text element an end tag; should it not, the
            // element's text may run to the end of the body.
            if closed.is_err() {
                shared.place_before_token(range.start, None);
            }
        }
        Role::Head if name == "head" && shared.head_ok && el.can_have_content() => {
            if let Some(script) = shared.render(None, shared.grown(range.start)) {
                el.prepend(script.html(), ContentType::Html);
            }
        }
        Role::Head if name == "meta" => {
            let rewritten = on_meta(el, shared);
            if shared.pending() {
                shared.passed(range.clone());
            }
            if rewritten {
                // Its new length is known once it is written out.
                let s = shared.clone();
                el.streaming_after(Box::new(
                    move |_: &mut lol_html::html_content::StreamingHandlerSink<'_>| {
                        s.passed_rewritten(range.end);
                        Ok(())
                    },
                ));
            }
        }
        Role::Head => shared.passed(range),
    }
}

/// A comment or doctype: part of `<head>`, unless the end of the body left it open
/// (`<!-- ...`, `<?xml ...`): a script after it would be inside, so it goes before.
fn on_markup(shared: &Shared, range: Range<usize>) {
    if !shared.pending() || !shared.text_since_last_token(false) {
        return;
    }
    if shared.at_end.load(Ordering::Acquire) {
        shared.place_before_token(range.start, None);
    } else {
        shared.passed(range);
    }
}

/// The end of the body, with the script not placed yet: before a text element left
/// open, before text or a tag cut off at the end, or else at the very end.
fn on_document_end(shared: &Shared) {
    if !shared.pending() {
        return;
    }
    if let Some((at, grown)) = shared.open_text_element() {
        shared.place_at(at, grown, None);
    } else if shared.text_since_last_token(false) {
        // Every byte given has been written out by now.
        let end = shared.emitted.load(Ordering::Acquire);
        shared.place_at(end, shared.grown(shared.fed.load(Ordering::Acquire)), None);
    }
}

/// A charset declaration is the insertion point when `<head>` was not safe. A
/// `<meta http-equiv=Content-Security-Policy>` before the insertion point applies to our
/// script: learn its nonce, amend it with our hash, or refuse to inject. Returns whether
/// the element was rewritten (amended).
fn on_meta(
    el: &mut Element<'_, '_, lol_html::send::SendHandlerTypes>,
    shared: &Arc<Shared>,
) -> bool {
    let http_equiv = el.get_attribute("http-equiv");
    let declares_charset = el.has_attribute("charset")
        || http_equiv.as_deref().is_some_and(|v| v.trim().eq_ignore_ascii_case("content-type"));
    if declares_charset {
        if let Some(script) = shared.render(None, shared.grown(el.source_location().bytes().start))
        {
            el.after(script.html(), ContentType::Html);
        }
        return false;
    }
    let is_csp =
        http_equiv.is_some_and(|v| v.trim().eq_ignore_ascii_case("content-security-policy"));
    if !is_csp {
        return false;
    }
    let content = el.get_attribute("content").unwrap_or_default();
    match shared.meta_csp.judge(&content) {
        MetaVerdict::Allows => {}
        MetaVerdict::Nonce(n) => *lock(&shared.meta_nonce) = Some(n),
        MetaVerdict::Amend(amended) => {
            if !amendment_fits(el, shared, &amended) {
                refuse_for_length(shared, "the page's <meta> Content-Security-Policy, amended, would outgrow the announced length");
                return false;
            }
            if el.set_attribute("content", &amended).is_err() {
                refuse(shared, "its content could not be rewritten");
                return false;
            }
            return true;
        }
        MetaVerdict::Refuse(why) => refuse(shared, &why),
    }
    false
}

/// Whether the page, grown by this `<meta>` written out again with `amended`, stays
/// within the announced length (always, when none was announced). The bound is the
/// longest start tag lol_html could write: every value escaped at six bytes a byte.
fn amendment_fits(
    el: &Element<'_, '_, lol_html::send::SendHandlerTypes>,
    shared: &Shared,
    amended: &str,
) -> bool {
    let Some(extra) = shared.extra else { return true };
    let longest: usize = el
        .attributes()
        .iter()
        .map(|a| {
            let value = if a.name().eq_ignore_ascii_case("content") {
                amended.len()
            } else {
                a.value().len()
            };
            a.name().len() + 6 * value + 4
        })
        .sum::<usize>()
        + el.tag_name().len()
        + 4;
    shared.grown(el.source_location().bytes().start) + longest as isize <= extra as isize
}

fn refuse(shared: &Shared, why: &str) {
    log::warn!("not injecting: the page's <meta> Content-Security-Policy {why}");
    stop(shared, GiveUpReason::MetaCsp);
}
