//! `current_user_endpoint` with `format: html`: the app's account, profile or settings
//! page, asked with the session, and a CSS selector, unique on the page, for an
//! element whose text or attribute is the page's user id (and email, and name). Tried
//! last: an HTML page changes with every redesign, an id or a claim does not.
//!
//! The pages are the links of the learned pages whose path or text says account,
//! profile or settings (never one that logs out), then the usual paths. Each selector
//! is checked with the source's own extractor on the page before the acceptance check
//! runs it through the proxy's resolver.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use lol_html::html_content::{Element, TextChunk};
use lol_html::{
    DocumentContentHandlers, ElementContentHandlers, HtmlRewriter, MemorySettings, Selector,
    Settings,
};

use super::endpoint::{display_type, item, ok_answer};
use super::{Candidate, Evidence};
use crate::init::browser::Link;
use crate::init::candidate::Attempt;
use crate::init::logout;
use crate::init::pointer::Fields;
use intercom_secure_proxy::config::EndpointConfig;
use intercom_secure_proxy::identity::{decode_entities, HtmlFields};

/// The source `type`.
const SOURCE: &str = "current_user_endpoint";

/// Paths apps commonly show the logged-in user's account on, after the pages' links.
const COMMON_PATHS: [&str; 8] = [
    "/account",
    "/profile",
    "/settings",
    "/me",
    "/user",
    "/users/me",
    "/account/profile",
    "/settings/profile",
];

/// Words of a link to an account page (compared with letters only, lowercase: "My
/// account" is `myaccount`).
const WORDS: [&str; 3] = ["account", "profile", "settings"];

/// Words of a link that may change the account when followed (some apps act on a
/// GET): such a link is never asked, whatever else it says.
const UNSAFE_WORDS: [&str; 9] =
    ["delete", "remove", "deactivate", "destroy", "close", "cancel", "disable", "revoke", "reset"];

/// The pages' links tried at most.
const MAX_LINKS: usize = 8;

/// What the source reads of a page (the current-user endpoint's body bound): a larger
/// page is no answer at all.
const SOURCE_BODY_LIMIT: usize = 64 * 1024;

/// The parser's memory bound (the body is bounded before parsing).
const PARSER_MEMORY: usize = 512 * 1024;

/// Elements holding one value looked at, at most.
const MAX_HITS: usize = 8;

/// The most `:nth-of-type` steps a selector's path may have.
const MAX_STEPS: usize = 6;

/// Tries each page in turn; the first whose selectors the acceptance check accepts.
pub(super) fn find(ev: &Evidence<'_>, attempts: &mut Vec<Attempt>) -> Option<Candidate> {
    if ev.learned.session.is_empty() {
        attempts.push(Attempt::rejected(
            SOURCE,
            "(html)",
            "no session cookie to ask the app with".into(),
        ));
        return None;
    }
    for path in paths(&ev.learned.links) {
        match candidate(ev, &path) {
            Ok(candidate) => {
                if let Some(accepted) = ev.try_candidate(candidate, attempts) {
                    return Some(accepted);
                }
            }
            Err(why) => attempts.push(Attempt::rejected(SOURCE, &tried(&path), why)),
        }
    }
    None
}

fn tried(path: &str) -> String {
    format!("GET {path} (html)")
}

/// The pages to look on: the learned pages' links that say account, profile or
/// settings (links only: a form may change something; never one that logs out or
/// may change the account), then the usual paths.
fn paths(links: &[Link]) -> Vec<String> {
    let says = |words: &[&str], s: &str| {
        let folded: String =
            s.chars().filter(char::is_ascii_alphabetic).collect::<String>().to_ascii_lowercase();
        words.iter().any(|w| folded.contains(w))
    };
    let says_either = |words: &[&str], l: &Link| says(words, &l.path) || says(words, &l.text);
    let mut out: Vec<String> = links
        .iter()
        .filter(|l| {
            l.method.is_none()
                && l.path.starts_with('/')
                && says_either(&WORDS, l)
                && !says_either(&UNSAFE_WORDS, l)
        })
        .filter(|l| logout::find(std::slice::from_ref(*l)).is_none())
        .map(|l| l.path.clone())
        .fold(Vec::new(), |mut seen, p| {
            if !seen.contains(&p) {
                seen.push(p);
            }
            seen
        });
    out.truncate(MAX_LINKS);
    for path in COMMON_PATHS {
        if !out.iter().any(|p| p == path) {
            out.push(path.to_string());
        }
    }
    out
}

/// The candidate for the page at `path`, or why it cannot be one.
fn candidate(ev: &Evidence<'_>, path: &str) -> Result<Candidate, String> {
    let learned = ev.learned;
    let answer = &learned.answer;
    let response = ok_answer(ev, path, "text/html")?;
    if !matches!(response.content_type.as_str(), "text/html" | "application/xhtml+xml") {
        return Err(format!("answered {}, not HTML", display_type(&response.content_type)));
    }
    if response.body.len() > SOURCE_BODY_LIMIT {
        return Err(format!(
            "the page is larger than the {} KiB the source reads",
            SOURCE_BODY_LIMIT / 1024
        ));
    }
    let body = &response.body;
    let wants: Vec<&str> =
        [Some(answer.user_id.as_str()), answer.email.as_deref(), answer.name.as_deref()]
            .into_iter()
            .flatten()
            .collect();
    let hits = scan(body, &wants)?;
    let place = |want: &str| -> Option<String> {
        hits.iter()
            .filter(|h| wants[h.field] == want)
            .flat_map(|h| specs(h, &wants))
            .find(|spec| reads(body, path, spec, want))
    };
    let user_id = place(&answer.user_id).ok_or("no element's text or attribute is the page's user_id alone, by a selector unique on the page")?;
    let email = answer.email.as_deref().and_then(place);
    if answer.email.is_some() && email.is_none() {
        return Err(format!("the user_id is at {user_id}, but no element's text or attribute is the page's email alone, by a selector unique on the page"));
    }
    let name = answer.name.as_deref().and_then(place);
    let others = [("email", email), ("name", name)]
        .into_iter()
        .filter_map(|(f, s)| s.map(|s| (f, s)))
        .collect();
    let fields = Fields { user_id, others };
    Ok(Candidate {
        source: SOURCE,
        tried: tried(path),
        why: format!("user id at GET {path} → {}, matched the page's user_id", fields.user_id),
        yaml: item(path, &learned.session, "html", &fields),
        claims: fields.claims(),
    })
}

/// Whether the source's own extractor, given `spec` for a field, reads exactly `want`
/// on the page (one element, decoded and trimmed as the source does).
fn reads(body: &[u8], path: &str, spec: &str, want: &str) -> bool {
    let fields = HtmlFields::new(&EndpointConfig::html_page(path, spec));
    matches!(fields.identity(body, None), Ok(Some(found)) if found.user_id == want)
}

/// An element as the selectors see it.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    /// The tag name, lowercase.
    tag: String,
    /// Its `id`.
    id: Option<String>,
    /// Its classes.
    classes: Vec<String>,
    /// Its other attributes but `style`, values decoded.
    attrs: Vec<(String, String)>,
    /// Its place among its parent's children of its tag, from 1.
    nth_of_type: usize,
}

/// An element whose text or attribute is one of the values looked for.
#[derive(Debug, Clone)]
struct Hit {
    /// Which value (an index into the values looked for).
    field: usize,
    /// The element, after its ancestors from the outermost.
    path: Vec<Node>,
    /// The attribute holding it; `None`: its text.
    attribute: Option<String>,
}

/// An element not closed yet.
struct Open {
    node: Node,
    /// How many children of each tag it has had so far.
    children: HashMap<String, usize>,
    /// Which element it is, for its end tag.
    key: usize,
}

/// The scan's state, shared by the parser's handlers.
#[derive(Default)]
struct ScanState {
    open: Vec<Open>,
    /// The top-level elements' counts per tag.
    top: HashMap<String, usize>,
    /// The text node read so far.
    text: String,
    hits: Vec<Hit>,
    next_key: usize,
}

impl ScanState {
    fn record(&mut self, field: usize, path: Vec<Node>, attribute: Option<String>) {
        if self.hits.iter().filter(|h| h.field == field).count() < MAX_HITS {
            self.hits.push(Hit { field, path, attribute });
        }
    }

    fn path(&self) -> Vec<Node> {
        self.open.iter().map(|o| o.node.clone()).collect()
    }
}

/// The elements of the page whose whole text node (trimmed) or an attribute is one of
/// `wants`, in document order. The text is attributed to the innermost open element
/// (an element closed only implicitly stays open: the extractor's check sorts that out).
fn scan(body: &[u8], wants: &[&str]) -> Result<Vec<Hit>, String> {
    let state = Rc::new(RefCell::new(ScanState::default()));
    let wants: Vec<String> = wants.iter().map(|w| w.to_string()).collect();
    let on_element = state.clone();
    let element_wants = wants.clone();
    let elements = ElementContentHandlers::default().element(move |el: &mut Element<'_, '_>| {
        let on_end = on_element.clone();
        let mut guard = on_element.borrow_mut();
        let s = &mut *guard;
        let tag = el.tag_name();
        let counts = match s.open.last_mut() {
            Some(parent) => &mut parent.children,
            None => &mut s.top,
        };
        let nth_of_type = *counts.entry(tag.clone()).and_modify(|n| *n += 1).or_insert(1);
        let mut node = Node { tag, id: None, classes: Vec::new(), attrs: Vec::new(), nth_of_type };
        for attr in el.attributes() {
            let Some(value) = decode_entities(&attr.value()) else { continue };
            match attr.name().as_str() {
                "id" => node.id = Some(value),
                "class" => {
                    node.classes = value.split_ascii_whitespace().map(str::to_string).collect()
                }
                "style" => {}
                name => node.attrs.push((name.to_string(), value)),
            }
        }
        for (name, value) in &node.attrs {
            for (field, want) in element_wants.iter().enumerate() {
                if value.trim() == want {
                    let mut path = s.path();
                    path.push(node.clone());
                    s.record(field, path, Some(name.clone()));
                }
            }
        }
        s.text.clear();
        if el.can_have_content() {
            let key = s.next_key;
            s.next_key += 1;
            s.open.push(Open { node, children: HashMap::new(), key });
            el.on_end_tag(Box::new(move |_| {
                let mut s = on_end.borrow_mut();
                if let Some(at) = s.open.iter().rposition(|o| o.key == key) {
                    s.open.truncate(at);
                }
                s.text.clear();
                Ok(())
            }))?;
        }
        Ok(())
    });
    let on_text = state.clone();
    let text = DocumentContentHandlers::default().text(move |t: &mut TextChunk<'_>| {
        let mut s = on_text.borrow_mut();
        s.text.push_str(t.as_str());
        if t.last_in_text_node() {
            let text = std::mem::take(&mut s.text);
            let decoded = decode_entities(&text).unwrap_or_default();
            for (field, want) in wants.iter().enumerate() {
                if decoded.trim() == want && !s.open.is_empty() {
                    let path = s.path();
                    s.record(field, path, None);
                }
            }
        }
        Ok(())
    });
    let any: Selector = "*".parse().map_err(|e| format!("{e}"))?;
    let settings = Settings::new()
        .with_memory_settings(MemorySettings::new().with_max_allowed_memory_usage(PARSER_MEMORY))
        .with_adjust_charset_on_meta_tag(true)
        .append_element_content_handler((Cow::Owned(any), elements))
        .append_document_content_handler(text);
    let mut rewriter = HtmlRewriter::new(settings, |_: &[u8]| {});
    rewriter
        .write(body)
        .and_then(|()| rewriter.end())
        .map_err(|_| "the page could not be parsed as HTML".to_string())?;
    let hits = std::mem::take(&mut state.borrow_mut().hits);
    Ok(hits)
}

/// The field specs (`selector` or `selector@attribute`) of a hit, most stable first.
fn specs(hit: &Hit, wants: &[&str]) -> Vec<String> {
    let suffix = hit.attribute.as_deref().map(|a| format!("@{a}")).unwrap_or_default();
    selectors(&hit.path, hit.attribute.as_deref(), wants)
        .into_iter()
        .map(|s| format!("{s}{suffix}"))
        .collect()
}

/// Selectors for the last element of `path`, most stable first: its id, an
/// identifying attribute, the attribute read, a class, its tag; then those under the
/// nearest ancestor with an id, and with a class; last, `:nth-of-type` steps from the
/// nearest ancestor with an id (or the top). A name or value holding any of
/// `forbidden` (the user's own id, email, name) is never part of one: such a selector
/// would find this user only.
fn selectors(path: &[Node], attribute: Option<&str>, forbidden: &[&str]) -> Vec<String> {
    let Some((node, ancestors)) = path.split_last() else { return Vec::new() };
    let usable =
        |v: &str| !v.is_empty() && v.len() <= 64 && !forbidden.iter().any(|f| v.contains(f));
    let id_of = |n: &Node| n.id.clone().filter(|i| ident(i) && usable(i));
    let class_of = |n: &Node| {
        n.classes.iter().find(|c| ident(c) && usable(c)).map(|c| format!("{}.{c}", n.tag))
    };
    let mut own = Vec::new();
    own.extend(id_of(node).map(|i| format!("#{i}")));
    for (name, value) in &node.attrs {
        if identifying(name)
            && Some(name.as_str()) != attribute
            && usable(value)
            && !value.contains(['"', '\\', '\n'])
        {
            own.push(format!(
                "{}[{name}={}]",
                node.tag,
                if ident(value) { value.clone() } else { format!("\"{value}\"") }
            ));
        }
    }
    own.extend(attribute.map(|a| format!("{}[{a}]", node.tag)));
    own.extend(
        node.classes.iter().filter(|c| ident(c) && usable(c)).map(|c| format!("{}.{c}", node.tag)),
    );
    own.push(node.tag.clone());
    let mut out = own.clone();
    let contexts = [
        ancestors.iter().rev().find_map(|a| id_of(a).map(|i| format!("#{i}"))),
        ancestors.iter().rev().find_map(class_of),
    ];
    for context in contexts.into_iter().flatten() {
        out.extend(own.iter().filter(|s| !s.starts_with('#')).map(|s| format!("{context} {s}")));
    }
    let anchor = ancestors.iter().rposition(|a| id_of(a).is_some());
    let start = anchor.map_or(0, |i| i + 1);
    if path.len() - start <= MAX_STEPS {
        let steps: Vec<String> = path[start..]
            .iter()
            .map(|n| format!("{}:nth-of-type({})", n.tag, n.nth_of_type))
            .collect();
        let head = anchor
            .and_then(|i| id_of(&ancestors[i]))
            .map(|i| format!("#{i} > "))
            .unwrap_or_default();
        out.push(format!("{head}{}", steps.join(" > ")));
    }
    let mut seen = Vec::new();
    out.retain(|s| {
        let new = !seen.contains(s);
        seen.push(s.clone());
        new
    });
    out
}

/// Attributes that say what an element is, rather than what it holds.
fn identifying(name: &str) -> bool {
    matches!(
        name,
        "name" | "itemprop" | "property" | "role" | "type" | "rel" | "for" | "http-equiv"
    ) || name.starts_with("data-")
}

/// Whether `s` can stand in a selector as it is: ASCII letters, digits, `-` and `_`,
/// starting with a letter or `_` (or `-` and one of them).
fn ident(s: &str) -> bool {
    let rest = s.strip_prefix('-').unwrap_or(s);
    rest.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<!DOCTYPE html><html><head><meta name="user-id" content="u-1"><title>Account</title></head><body>
<nav><span class="who">a@x</span> <a href="/logout">Log out</a></nav>
<main id="account"><h1>Your account</h1><dl><dt>Email</dt><dd>a@x</dd><dt>Name</dt><dd>Ann &amp; Co</dd></dl>
<ul><li>Ann &amp; Co<li>other</ul>
<div data-user="u-1" class="card u-1"><p>Member since 2020</p></div></main></body></html>"#;

    fn place(page: &str, want: &str, wants: &[&str]) -> Option<String> {
        let hits = scan(page.as_bytes(), wants).unwrap();
        hits.iter()
            .filter(|h| wants[h.field] == want)
            .flat_map(|h| specs(h, wants))
            .find(|s| reads(page.as_bytes(), "/account", s, want))
    }

    fn node(
        tag: &str,
        id: Option<&str>,
        classes: &[&str],
        attrs: &[(&str, &str)],
        nth: usize,
    ) -> Node {
        Node {
            tag: tag.into(),
            id: id.map(Into::into),
            classes: classes.iter().map(|c| c.to_string()).collect(),
            attrs: attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            nth_of_type: nth,
        }
    }

    #[test]
    fn text_and_attributes_holding_a_value_are_found() {
        let wants = ["u-1", "a@x", "Ann & Co"];
        let hits = scan(PAGE.as_bytes(), &wants).unwrap();
        let seen: Vec<(usize, &str, Option<&str>)> = hits
            .iter()
            .map(|h| (h.field, h.path.last().unwrap().tag.as_str(), h.attribute.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                (0, "meta", Some("content")),
                (1, "span", None),
                (1, "dd", None),
                (2, "dd", None),
                (2, "li", None),
                (0, "div", Some("data-user"))
            ]
        );
        let dd = &hits[2].path;
        assert_eq!(
            dd.iter().map(|n| n.tag.as_str()).collect::<Vec<_>>(),
            ["html", "body", "main", "dl", "dd"]
        );
        assert_eq!((dd[2].id.as_deref(), dd[4].nth_of_type), (Some("account"), 1));
    }

    #[test]
    fn the_first_selector_the_extractor_reads_uniquely_wins() {
        let wants = ["u-1", "a@x", "Ann & Co"];
        assert_eq!(place(PAGE, "u-1", &wants).as_deref(), Some("meta[name=user-id]@content"));
        assert_eq!(place(PAGE, "a@x", &wants).as_deref(), Some("span.who"));
        // `dd` and `#account dd` match two elements; the second dd is the name.
        assert_eq!(
            place(PAGE, "Ann & Co", &wants).as_deref(),
            Some("#account > dl:nth-of-type(1) > dd:nth-of-type(2)")
        );
        assert_eq!(place("<p>u-1 and more</p>", "u-1", &["u-1"]), None);
    }

    #[test]
    fn selectors_never_hold_the_users_own_values() {
        let path = [
            node("html", None, &[], &[], 1),
            node(
                "div",
                Some("u-1"),
                &["card", "u-1"],
                &[("data-user", "u-1"), ("data-role", "member")],
                3,
            ),
        ];
        let got = selectors(&path, Some("data-user"), &["u-1"]);
        assert_eq!(
            got,
            [
                "div[data-role=member]",
                "div[data-user]",
                "div.card",
                "div",
                "html:nth-of-type(1) > div:nth-of-type(3)"
            ]
        );
        assert!(got.iter().all(|s| !s.contains("u-1")));
    }

    #[test]
    fn selectors_use_ids_classes_and_quoted_values() {
        let path = [
            node("body", None, &["page"], &[], 1),
            node("section", Some("profile"), &[], &[], 2),
            node("span", None, &["value", "9x"], &[("itemprop", "e mail")], 2),
        ];
        let got = selectors(&path, None, &["a@x"]);
        assert_eq!(
            got,
            [
                "span[itemprop=\"e mail\"]",
                "span.value",
                "span",
                "#profile span[itemprop=\"e mail\"]",
                "#profile span.value",
                "#profile span",
                "body.page span[itemprop=\"e mail\"]",
                "body.page span.value",
                "body.page span",
                "#profile > span:nth-of-type(2)",
            ]
        );
        for s in &got {
            assert!(intercom_secure_proxy::config::HtmlField::parse(s).is_ok(), "{s}");
        }
        assert!(
            intercom_secure_proxy::config::HtmlField::parse("meta[name=user-id]@content").is_ok()
        );
    }

    #[test]
    fn account_links_first_never_a_logout_or_a_form() {
        let link = |path: &str, text: &str, method: Option<&str>| Link {
            path: path.into(),
            text: text.into(),
            method: method.map(Into::into),
        };
        let links = [
            link("/u/settings", "Settings", None),
            link("/me/edit", "My Account", None),
            link("/account/logout", "Log out", None),
            link("/profile/delete", "Delete", Some("POST")),
            link("/account/close", "Close my account", None),
            link("/u/settings", "again", None),
            link("/about", "About", None),
        ];
        let got = paths(&links);
        assert_eq!(&got[..3], ["/u/settings", "/me/edit", "/account"]);
        assert!(!got.contains(&"/account/close".to_string()), "{got:?}");
        assert_eq!(got.len(), 2 + COMMON_PATHS.len());
    }
}
