//! The scripts pages get, `src/page/min/*.js`, are exactly `src/page/page.js` minified
//! by terser, each without the blocks its pages cannot run, and `src/page/observer.js`
//! minified (report-only pages): an edit that was not minified again fails here, before
//! any browser test runs the stale script.
//!
//! Needs Node 20+ and `npm ci` in tests/browser (`make test` does it).

use std::process::Command;

#[test]
fn the_served_scripts_are_page_js_minified() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("node")
        .arg(format!("{root}/scripts/minify-page-js.mjs"))
        .arg("--check")
        .output()
        .expect("node runs (the browser tests need Node 20+ too)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
