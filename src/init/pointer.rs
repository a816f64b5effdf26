//! JSON pointers to a known value: where in the app's answer (or session) the page's
//! user id, email and name are.

use serde_json::Value;

use super::answer::Answer;
use super::yaml::quote;

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

/// Where the page's user id, email and name are in a document (the app's answer, a
/// session, a token's claims): the `fields` of the source that reads it.
#[derive(Debug, PartialEq)]
pub(crate) struct Fields {
    /// The pointer to the user id.
    pub user_id: String,
    /// The other fields found: (`email` or `name`, pointer).
    pub others: Vec<(&'static str, String)>,
}

impl Fields {
    /// The pointers in `doc` to the page's user id, email and name. The email is
    /// required when the page shows one (the acceptance check wants it); `Err` says what
    /// `holder` ("the answer", "the session", "its claims") lacks.
    pub(crate) fn find(doc: &Value, answer: &Answer, holder: &str) -> Result<Fields, String> {
        let user_id = first(doc, &answer.user_id)
            .ok_or_else(|| format!("{holder} does not hold the page's user_id"))?;
        let email = answer.email.as_deref().and_then(|e| first(doc, e));
        if answer.email.is_some() && email.is_none() {
            return Err(format!("{holder} holds the page's user_id but not its email"));
        }
        let name = answer.name.as_deref().and_then(|n| first(doc, n));
        let others = [("email", email), ("name", name)]
            .into_iter()
            .filter_map(|(f, p)| p.map(|p| (f, p)))
            .collect();
        Ok(Fields { user_id, others })
    }

    /// The identity fields mapped besides the user id (the Messenger token's claims).
    pub(crate) fn claims(&self) -> Vec<&'static str> {
        self.others.iter().map(|(f, _)| *f).collect()
    }

    /// The `fields:` block of a source's list item, each pointer commented with what
    /// it matched (`what` names the place: "the claim holding", "matched").
    pub(crate) fn yaml(&self, what: &str) -> String {
        let mut yaml = format!(
            "      fields:\n        user_id: {}   # {what} the page's user_id\n",
            quote(&self.user_id)
        );
        for (field, pointer) in &self.others {
            yaml.push_str(&format!(
                "        {field}: {}   # {what} the page's {field}\n",
                quote(pointer)
            ));
        }
        yaml
    }
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

    #[test]
    fn fields_need_the_email_the_page_shows_and_write_what_they_matched() {
        let answer = Answer {
            user_id: "42".into(),
            email: Some("a@x".into()),
            name: None,
            app_id: None,
            api_base: None,
            today: crate::audit::classify::Classification::Insecure,
            page: "/".into(),
        };
        let fields =
            Fields::find(&json!({"user": {"id": 42, "email": "a@x"}}), &answer, "the session")
                .unwrap();
        assert_eq!(fields.user_id, "/user/id");
        let (yaml, claims) = (fields.yaml("matched"), fields.claims());
        assert_eq!(yaml, "      fields:\n        user_id: \"/user/id\"   # matched the page's user_id\n        email: \"/user/email\"   # matched the page's email\n");
        assert_eq!(claims, ["email"]);
        let e = Fields::find(&json!({"id": 42}), &answer, "the session").err().unwrap();
        assert_eq!(e, "the session holds the page's user_id but not its email");
        let e = Fields::find(&json!({}), &answer, "the answer").err().unwrap();
        assert_eq!(e, "the answer does not hold the page's user_id");
    }
}
