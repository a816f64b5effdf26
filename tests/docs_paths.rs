//! The README and the guides in `docs/` name source files and tests so that a newcomer
//! can go from a sentence to the code. A renamed or moved file leaves such a name
//! pointing nowhere, and nothing else notices: this test reads README.md and every
//! docs/*.md and checks that each `src/...` and `tests/...` path they name exists, that
//! their links to files in the repository (and the headings those links name) exist,
//! and that the README stays a front door (under 400 lines).
//!
//! Pure Rust, no dependencies: it runs in `make test` like any other test.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The README's ceiling: past it the README is a manual again, and the details belong
/// in docs/.
const README_MAX_LINES: usize = 400;

/// The prefixes of the paths this test holds the documents to.
const CHECKED_ROOTS: [&str; 2] = ["src/", "tests/"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and docs/*.md, as (path relative to the repository, text).
fn documents() -> Vec<(PathBuf, String)> {
    let mut docs = vec![PathBuf::from("README.md")];
    let mut guides: Vec<PathBuf> = fs::read_dir(repo().join("docs"))
        .expect("docs/ is readable")
        .map(|e| e.expect("a docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| PathBuf::from("docs").join(p.file_name().expect("a file name")))
        .collect();
    guides.sort();
    docs.extend(guides);
    docs.into_iter()
        .map(|p| {
            let text = fs::read_to_string(repo().join(&p))
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, text)
        })
        .collect()
}

/// Characters a path is made of; anything else ends it, so a `:function`, `#anchor`,
/// closing backtick, parenthesis or space after a path is not part of it.
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

/// Characters that stand for a part of a name (`<module>.rs`, `{id}`, `*.rs`): the path
/// is then checked only as far as its last whole folder.
fn is_placeholder(c: char) -> bool {
    matches!(c, '<' | '{' | '*')
}

/// Every `src/...` or `tests/...` path named in `text`: in backticks, in links, in code
/// blocks or in plain prose. A path starts at a word boundary (so the `src/` inside a
/// URL or inside `tests/browser/src/` is not taken for one), may carry a `:function` or
/// `#anchor` suffix (left off), and loses a sentence's trailing `.` or `,`. Directories
/// count. A path that goes on into a placeholder is cut back to its last folder.
fn named_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (i, &(at, _)) in chars.iter().enumerate() {
        let boundary = i == 0 || !(is_path_char(chars[i - 1].1) || chars[i - 1].1 == '~');
        if !boundary || !CHECKED_ROOTS.iter().any(|root| text[at..].starts_with(root)) {
            continue;
        }
        let end =
            chars[i..].iter().find(|(_, c)| !is_path_char(*c)).map_or(text.len(), |&(e, _)| e);
        let mut path = &text[at..end];
        if text[end..].starts_with(is_placeholder) {
            path = &path[..path.rfind('/').map_or(0, |s| s + 1)];
        }
        let path = path.trim_end_matches(['.', ',']);
        if CHECKED_ROOTS.iter().any(|root| path.len() > root.len() && path.starts_with(root)) {
            found.push(path.to_string());
        }
    }
    found
}

/// The targets of Markdown links `[text](target)` and images, without a title.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("](") {
        rest = &rest[open + 2..];
        if let Some(close) = rest.find(')') {
            let target = rest[..close].split_whitespace().next().unwrap_or("");
            targets.push(target.to_string());
            rest = &rest[close..];
        }
    }
    targets
}

/// A heading's anchor as GitHub makes it: lower case, spaces to `-`, and every
/// character but letters, digits, `-` and `_` dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown document's headings (outside code blocks).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut found = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            found.insert(slug(line.trim_start_matches('#')));
        }
    }
    found
}

#[test]
fn every_src_and_tests_path_the_docs_name_exists() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for (doc, text) in documents() {
        for path in named_paths(&text) {
            checked += 1;
            if !repo().join(&path).exists() {
                missing.push(format!("{}: {path}", doc.display()));
            }
        }
    }
    // The README alone names dozens; a handful means the extraction broke, and an
    // empty check would pass whatever the docs say.
    assert!(checked >= 30, "only {checked} src/ and tests/ paths found in README.md and docs/*.md");
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "paths named in the docs that do not exist:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn every_link_to_a_file_in_the_repository_resolves() {
    let docs = documents();
    let mut broken = Vec::new();
    for (doc, text) in &docs {
        let dir = doc.parent().unwrap_or(Path::new(""));
        for target in link_targets(text) {
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let file_path = if file.is_empty() { doc.clone() } else { dir.join(file) };
            let on_disk = repo().join(&file_path);
            if !on_disk.exists() {
                broken.push(format!("{}: {target} (no such file)", doc.display()));
                continue;
            }
            if anchor.is_empty() || !file.is_empty() && !file.ends_with(".md") {
                continue;
            }
            let linked = fs::read_to_string(&on_disk).unwrap_or_default();
            if !anchors(&linked).contains(anchor) {
                broken.push(format!("{}: {target} (no such heading)", doc.display()));
            }
        }
    }
    assert!(broken.is_empty(), "links in the docs that lead nowhere:\n  {}", broken.join("\n  "));
}

#[test]
fn the_readme_is_a_front_door() {
    let readme = fs::read_to_string(repo().join("README.md")).expect("README.md");
    let lines = readme.lines().count();
    assert!(
        lines < README_MAX_LINES,
        "README.md has {lines} lines; move details to docs/ (under {README_MAX_LINES})"
    );
}

#[test]
fn paths_are_found_wherever_the_docs_write_them() {
    let text = "See `src/proxy.rs:request_filter`, [the rewriter](src/page/rewriter.rs#L10), \
                src/identity/ and tests/memory.rs. Not https://x.org/src/a.rs, not \
                tests/browser/src/b.js's inner src/, \
                and `src/properties/<module>.proptest-regressions`.\n\
                ```\ncargo test --test tests/cli.rs\n```";
    assert_eq!(
        named_paths(text),
        [
            "src/proxy.rs",
            "src/page/rewriter.rs",
            "src/identity/",
            "tests/memory.rs",
            "tests/browser/src/b.js",
            "src/properties/",
            "tests/cli.rs",
        ]
    );
}

#[test]
fn anchors_follow_githubs_rule() {
    let doc = "# Top\n## JWT sources: `jwt_cookie` and `signed_header`\n\
               ```\n# not a heading\n```\n### Logins the proxy sees\n";
    let found = anchors(doc);
    assert!(found.contains("jwt-sources-jwt_cookie-and-signed_header"), "{found:?}");
    assert!(found.contains("logins-the-proxy-sees"));
    assert!(!found.contains("not-a-heading"));
    assert_eq!(link_targets("a [b](docs/x.md#y) and ![c](d.svg \"t\")"), ["docs/x.md#y", "d.svg"]);
}
