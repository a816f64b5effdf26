//! JSON for inline scripts: what the page script, the logout interstitial and the
//! `user_hash` settings put inside a `<script>`. Below all three, so none imports
//! another for it.

use serde_json::Value;

/// JSON that is safe inside an inline `<script>` in any ASCII-compatible charset:
/// ASCII only, with `<`, `>`, `&`, U+2028 and U+2029 escaped, so no value can close the
/// script element, open a comment, or end a JS string literal.
pub fn to_script_json(value: &Value) -> String {
    let raw = value.to_string();
    let mut out = String::with_capacity(raw.len() + 16);
    let mut units = [0u16; 2];
    for ch in raw.chars() {
        match ch {
            '<' | '>' | '&' => out.push_str(&format!("\\u{:04x}", ch as u32)),
            c if c.is_ascii() => out.push(c),
            // Characters outside strings are ASCII in serde_json output, so every
            // non-ASCII character here is inside a string and may be \u-escaped.
            c => {
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{:04x}", unit));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn script_json_cannot_break_out() {
        let v = json!({"n": "</script><script>alert(1)</script>\u{2028}\u{2029}&é😀"});
        let s = to_script_json(&v);
        assert!(s.is_ascii());
        for bad in ["<", ">", "&", "\u{2028}"] {
            assert!(!s.contains(bad), "{s}");
        }
        let back: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }
}
