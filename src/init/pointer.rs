//! JSON pointers to a known value: where in the app's answer (or session) the page's
//! user id, email and name are.

use serde_json::Value;

/// How deep a document is searched.
const MAX_DEPTH: usize = 8;

/// The JSON pointers (RFC 6901) of every string or number in `doc` equal to `want`,
/// shortest first, then in key order.
pub fn find(doc: &Value, want: &str) -> Vec<String> {
    let mut out = Vec::new();
    walk(doc, want, &mut String::new(), 0, &mut out);
    out.sort_by_key(|p| p.matches('/').count());
    out
}

/// The first of [`find`], if any.
pub fn first(doc: &Value, want: &str) -> Option<String> {
    find(doc, want).into_iter().next()
}

fn walk(value: &Value, want: &str, at: &mut String, depth: usize, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s == want => out.push(at.clone()),
        Value::Number(n) if n.to_string() == want => out.push(at.clone()),
        Value::Object(map) if depth < MAX_DEPTH => {
            for (key, v) in map {
                let len = at.len();
                at.push('/');
                at.push_str(&key.replace('~', "~0").replace('/', "~1"));
                walk(v, want, at, depth + 1, out);
                at.truncate(len);
            }
        }
        Value::Array(items) if depth < MAX_DEPTH => {
            for (i, v) in items.iter().enumerate() {
                let len = at.len();
                at.push_str(&format!("/{i}"));
                walk(v, want, at, depth + 1, out);
                at.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_to_the_value_shortest_first() {
        let doc = json!({"data": {"user": {"id": 42, "email": "a@x"}}, "id": "42", "a/b": {"~c": "a@x"}, "list": ["a@x"]});
        assert_eq!(find(&doc, "42"), ["/id", "/data/user/id"]);
        assert_eq!(find(&doc, "a@x"), ["/a~1b/~0c", "/list/0", "/data/user/email"]);
        assert_eq!(first(&doc, "nobody"), None);
        assert_eq!(doc.pointer("/a~1b/~0c"), Some(&json!("a@x")));
    }
}
