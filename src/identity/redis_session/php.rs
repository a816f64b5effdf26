//! PHP's session formats, read into JSON: `session.serialize_handler=php` (the
//! default) and `php_serialize`; `php_binary` is recognised, to be refused by name.
//!
//! With `php`, a session is a run of `name|value` pairs, each value in `serialize()` form:
//! `N;`, `b:1;`, `i:42;`, `d:0.5;`, `s:5:"alice";`, `a:2:{i:0;…;s:1:"k";…}` and
//! `O:4:"User":1:{s:2:"id";…}`. With `php_serialize`, the whole `$_SESSION` is one
//! `serialize()`d array (`a:2:{s:4:"user";…}`). Either way the session's variables
//! become the keys of one JSON object, so the same JSON pointers work as for JSON
//! sessions (`/account/id`).
//!
//! The parser is strict and bounded; it never runs PHP semantics:
//! - Objects (`O:`) are read as plain maps of their properties (class name dropped,
//!   private/protected name prefixes removed). Nothing is instantiated here, so PHP's
//!   object-injection risks do not apply, and apps that keep a `User` object in the
//!   session can still be read.
//! - Custom-serialized objects (`C:`), references (`r:`/`R:`), enums (`E:`) and the old
//!   escaped strings (`S:`) are refused: their meaning is opaque or aliased.
//! - Depth, element count and every declared length are bounded by constants and by the
//!   bytes actually left, before anything is allocated.
//! - Strings that are not UTF-8 become `null`: a lossy conversion could turn two
//!   different ids into the same one.

use serde_json::{Map, Number, Value};

/// Deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 32;
/// Most values (all levels together) accepted in one session.
pub const MAX_ELEMENTS: usize = 100_000;
/// Longest top-level variable name accepted.
const MAX_NAME: usize = 256;
/// The smallest encoding of one array element (`i:0;N;`), to bound declared counts.
const MIN_ELEMENT_BYTES: usize = 6;

/// Why a PHP session could not be read (positions only, never content).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhpError {
    /// The data ended in the middle of a value.
    #[error("it ends in the middle of a value")]
    Truncated,
    /// A byte that the format does not allow here.
    #[error("unexpected byte at offset {0}")]
    Unexpected(usize),
    /// A length or count that does not fit in the data.
    #[error("a declared length at offset {0} does not fit the data")]
    BadLength(usize),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// More than [`MAX_ELEMENTS`] values.
    #[error("more than {MAX_ELEMENTS} values")]
    TooMany,
    /// A kind of value that is never read.
    #[error("it holds {0} at offset {1}, which is not read (store plain values and arrays)")]
    Unsupported(&'static str, usize),
}

/// Parses a whole session (`name|value…`) into a JSON object of its variables.
pub fn parse_session(data: &[u8]) -> Result<Value, PhpError> {
    let mut p = Parser { s: data, pos: 0, elements: 0 };
    let mut vars = Map::new();
    while p.pos < data.len() {
        // `!name|` marks a variable that was unset (older PHP): no value follows.
        let unset = p.peek() == Some(b'!');
        if unset {
            p.pos += 1;
        }
        let start = p.pos;
        let end = data[start..]
            .iter()
            .take(MAX_NAME + 1)
            .position(|&b| b == b'|')
            .map(|i| start + i)
            .ok_or(PhpError::Unexpected(start))?;
        let name = std::str::from_utf8(&data[start..end])
            .map_err(|_| PhpError::Unexpected(start))?
            .to_string();
        if name.is_empty() {
            return Err(PhpError::Unexpected(start));
        }
        p.pos = end + 1;
        if unset {
            vars.remove(&name);
            continue;
        }
        let value = p.value(0)?;
        vars.insert(name, value);
    }
    Ok(Value::Object(vars))
}

/// Parses a `php_serialize` session: one `serialize()`d array, nothing after it. Its
/// keys are the session's variables. An empty value is an empty session.
pub fn parse_serialized(data: &[u8]) -> Result<Value, PhpError> {
    if data.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    if data[0] != b'a' {
        return Err(PhpError::Unexpected(0));
    }
    let mut p = Parser { s: data, pos: 0, elements: 0 };
    let vars = p.value(0)?;
    if p.pos != data.len() {
        return Err(PhpError::Unexpected(p.pos));
    }
    Ok(vars)
}

/// Whether `data` starts like a `php_binary` session: a length byte, that many name
/// bytes, then a `serialize()`d value. Only asked once the configured format failed,
/// so a valid session of another format is never taken for one.
pub fn looks_like_php_binary(data: &[u8]) -> bool {
    let Some((&len, rest)) = data.split_first() else { return false };
    // The high bit marks an unset variable (no value follows).
    let len = usize::from(len & 0x7f);
    if len == 0 || rest.len() < len + 2 {
        return false;
    }
    let (name, value) = rest.split_at(len);
    let plain_name = !name.contains(&b'|') && name.iter().all(|b| b.is_ascii_graphic());
    let value_start =
        matches!(value, [b'N', b';', ..] | [b'b' | b'i' | b'd' | b's' | b'a' | b'O', b':', ..]);
    plain_name && value_start
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    elements: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn next(&mut self) -> Result<u8, PhpError> {
        let b = self.peek().ok_or(PhpError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn expect(&mut self, want: u8) -> Result<(), PhpError> {
        let at = self.pos;
        match self.next()? {
            b if b == want => Ok(()),
            _ => Err(PhpError::Unexpected(at)),
        }
    }

    /// The bytes up to (not including) `end`, which is consumed.
    fn until(&mut self, end: u8, max: usize) -> Result<&'a [u8], PhpError> {
        let s: &'a [u8] = self.s;
        let start = self.pos;
        let rest = &s[start..];
        let len = rest.iter().take(max + 1).position(|&b| b == end);
        match len {
            Some(len) => {
                self.pos = start + len + 1;
                Ok(&s[start..start + len])
            }
            None if rest.len() <= max => Err(PhpError::Truncated),
            None => Err(PhpError::Unexpected(start)),
        }
    }

    /// A decimal length or count, terminated by `:`.
    fn length(&mut self) -> Result<usize, PhpError> {
        let at = self.pos;
        let digits = self.until(b':', 10)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(PhpError::Unexpected(at));
        }
        std::str::from_utf8(digits).unwrap_or("x").parse().map_err(|_| PhpError::BadLength(at))
    }

    fn count(&mut self, n: usize) -> Result<(), PhpError> {
        self.elements += n;
        if self.elements > MAX_ELEMENTS {
            return Err(PhpError::TooMany);
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Value, PhpError> {
        // Nested values are counted by the map that declares them; top-level ones are
        // bounded by the session's size.
        let at = self.pos;
        let tag = self.next()?;
        if tag == b'N' {
            self.expect(b';')?;
            return Ok(Value::Null);
        }
        self.expect(b':')?;
        match tag {
            b'b' => {
                let v = self.until(b';', 1)?;
                match v {
                    b"0" => Ok(Value::Bool(false)),
                    b"1" => Ok(Value::Bool(true)),
                    _ => Err(PhpError::Unexpected(at + 2)),
                }
            }
            b'i' => {
                let digits = self.until(b';', 20)?;
                integer(digits).map(Value::Number).ok_or(PhpError::Unexpected(at + 2))
            }
            b'd' => {
                let text = self.until(b';', 64)?;
                float(text).ok_or(PhpError::Unexpected(at + 2))
            }
            b's' => {
                let bytes = self.string()?;
                self.expect(b';')?;
                Ok(std::str::from_utf8(bytes).map_or(Value::Null, |s| Value::String(s.to_string())))
            }
            b'a' => self.map(depth, None),
            b'O' => {
                let class = self.string()?.to_vec();
                self.expect(b':')?;
                self.map(depth, Some(&class))
            }
            b'C' => Err(PhpError::Unsupported("a custom-serialized object", at)),
            b'r' | b'R' => Err(PhpError::Unsupported("a reference", at)),
            b'E' => Err(PhpError::Unsupported("an enum", at)),
            b'S' => Err(PhpError::Unsupported("an escaped string", at)),
            _ => Err(PhpError::Unexpected(at)),
        }
    }

    /// `<len>:"<bytes>"`, the length checked against what is left before slicing.
    fn string(&mut self) -> Result<&'a [u8], PhpError> {
        let s: &'a [u8] = self.s;
        let at = self.pos;
        let len = self.length()?;
        self.expect(b'"')?;
        let start = self.pos;
        let end =
            start.checked_add(len).filter(|&e| e < self.s.len()).ok_or(PhpError::BadLength(at))?;
        self.pos = end;
        self.expect(b'"')?;
        Ok(&s[start..end])
    }

    /// `<n>:{<key><value>…}` (after `a:` or an object's class name).
    fn map(&mut self, depth: usize, class: Option<&[u8]>) -> Result<Value, PhpError> {
        if depth >= MAX_DEPTH {
            return Err(PhpError::TooDeep);
        }
        let at = self.pos;
        let n = self.length()?;
        if n > (self.s.len() - self.pos) / MIN_ELEMENT_BYTES {
            return Err(PhpError::BadLength(at));
        }
        self.count(n)?;
        self.expect(b'{')?;
        let mut map = Map::new();
        for _ in 0..n {
            let key = self.key(class)?;
            let value = self.value(depth + 1)?;
            map.insert(key, value);
        }
        self.expect(b'}')?;
        Ok(Value::Object(map))
    }

    /// An array key (`i:` or `s:`), or an object's property name without the
    /// `\0Class\0` / `\0*\0` prefix PHP gives private and protected properties.
    fn key(&mut self, class: Option<&[u8]>) -> Result<String, PhpError> {
        let at = self.pos;
        match self.next()? {
            b'i' => {
                self.expect(b':')?;
                let digits = self.until(b';', 20)?;
                integer(digits).map(|n| n.to_string()).ok_or(PhpError::Unexpected(at))
            }
            b's' => {
                self.expect(b':')?;
                let bytes = self.string()?;
                self.expect(b';')?;
                let bytes = match (class, bytes.first()) {
                    (Some(_), Some(0)) => property_name(bytes).ok_or(PhpError::Unexpected(at))?,
                    _ => bytes,
                };
                std::str::from_utf8(bytes).map(str::to_string).map_err(|_| PhpError::Unexpected(at))
            }
            _ => Err(PhpError::Unexpected(at)),
        }
    }
}

/// `\0Class\0name` or `\0*\0name` → `name`.
fn property_name(bytes: &[u8]) -> Option<&[u8]> {
    let rest = bytes.strip_prefix(b"\0")?;
    let end = rest.iter().position(|&b| b == 0)?;
    Some(&rest[end + 1..])
}

/// `-?[0-9]+` as the exact JSON number (ids beyond 2^53 keep their digits).
fn integer(digits: &[u8]) -> Option<Number> {
    let body = digits.strip_prefix(b"-").unwrap_or(digits);
    if body.is_empty() || !body.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// PHP's float text; `INF`, `-INF` and `NAN` have no JSON form and become `null`.
fn float(text: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(text).ok()?;
    if matches!(text, "INF" | "-INF" | "NAN") {
        return Some(Value::Null);
    }
    let ok = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
    let f: f64 = if ok { text.parse().ok()? } else { return None };
    Some(Number::from_f64(f).map_or(Value::Null, Value::Number))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_php_writes() {
        let data = br#"user|s:5:"alice";account|a:3:{s:2:"id";s:12:"u-alice-1001";s:5:"email";s:17:"alice@example.com";s:5:"roles";a:2:{i:0;s:5:"admin";i:1;s:4:"user";}}n|i:-42;f|d:0.5;t|b:1;z|N;"#;
        let v = parse_session(data).unwrap();
        assert_eq!(v.pointer("/user"), Some(&json!("alice")));
        assert_eq!(v.pointer("/account/id"), Some(&json!("u-alice-1001")));
        assert_eq!(v.pointer("/account/roles/1"), Some(&json!("user")));
        assert_eq!(v.pointer("/n").unwrap().to_string(), "-42");
        assert_eq!(v.pointer("/f"), Some(&json!(0.5)));
        assert_eq!(v.pointer("/t"), Some(&json!(true)));
        assert_eq!(v.pointer("/z"), Some(&Value::Null));
    }

    #[test]
    fn big_integer_ids_keep_their_digits() {
        let v = parse_session(b"uid|i:9007199254740993;").unwrap();
        assert_eq!(v.pointer("/uid").unwrap().to_string(), "9007199254740993");
    }

    #[test]
    fn string_lengths_count_bytes_not_characters() {
        let v = parse_session("name|s:6:\"Zoë|;\";x|i:1;".as_bytes()).unwrap();
        assert_eq!(v.pointer("/name"), Some(&json!("Zoë|;")));
        assert_eq!(v.pointer("/x").unwrap().to_string(), "1");
    }

    #[test]
    fn php_serialize_reads_the_whole_session_as_one_array() {
        // What PHP 8 writes with session.serialize_handler=php_serialize.
        let data = br#"a:2:{s:4:"user";s:5:"alice";s:7:"account";a:2:{s:2:"id";s:12:"u-alice-1001";s:5:"email";s:3:"a@e";}}"#;
        let v = parse_serialized(data).unwrap();
        assert_eq!(v, json!({"user": "alice", "account": {"id": "u-alice-1001", "email": "a@e"}}));
        assert_eq!(parse_serialized(b"a:0:{}"), Ok(json!({})));
        assert_eq!(parse_serialized(b""), Ok(json!({})));
    }

    #[test]
    fn php_serialize_refuses_anything_but_one_array() {
        let cases: &[&[u8]] = &[
            br#"user|s:5:"alice";"#,  // the php handler's format
            br#"s:5:"alice";"#,       // not an array
            b"a:0:{}a:0:{}",          // something after it
            br#"a:1:{s:1:"u";N;"#,    // unterminated
            br#"a:1:{s:1:"u";r:1;}"#, // reference
        ];
        for case in cases {
            assert!(
                parse_serialized(case).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn php_binary_is_recognised_and_other_formats_are_not() {
        // What PHP 8 writes with session.serialize_handler=php_binary.
        assert!(looks_like_php_binary(b"\x04users:5:\"alice\";\x07accounta:1:{s:2:\"id\";i:1;}"));
        assert!(looks_like_php_binary(b"\x01xN;"));
        assert!(!looks_like_php_binary(br#"user|s:5:"alice";"#));
        assert!(!looks_like_php_binary(br#"a:1:{s:4:"user";s:5:"alice";}"#));
        assert!(!looks_like_php_binary(br#"{"user":"alice"}"#));
        assert!(!looks_like_php_binary(b"\x04us"));
        assert!(!looks_like_php_binary(b""));
    }

    #[test]
    fn objects_are_plain_maps_without_class_or_visibility() {
        let data = b"user|O:4:\"User\":3:{s:2:\"id\";i:7;s:10:\"\0User\0mail\";s:3:\"a@b\";s:7:\"\0*\0name\";s:1:\"A\";}";
        let v = parse_session(data).unwrap();
        assert_eq!(v, json!({"user": {"id": 7, "mail": "a@b", "name": "A"}}));
    }

    #[test]
    fn unset_markers_and_non_utf8_strings() {
        let v = parse_session(b"a|i:1;!a|b|s:2:\"\xff\xfe\";").unwrap();
        assert_eq!(v, json!({"b": null}));
    }

    #[test]
    fn infinities_have_no_json_form() {
        let v = parse_session(b"a|d:INF;b|d:NAN;c|d:1.0E+25;").unwrap();
        assert_eq!(v.pointer("/a"), Some(&Value::Null));
        assert_eq!(v.pointer("/b"), Some(&Value::Null));
        assert_eq!(v.pointer("/c"), Some(&json!(1.0e25)));
    }

    #[test]
    fn hostile_inputs_are_refused_without_panicking() {
        let cases: &[&[u8]] = &[
            b"",                               // (empty is an empty session, checked below)
            b"user",                           // no separator
            b"|s:1:\"a\";",                    // no name
            b"u|s:99999999999:\"a\";",         // length beyond the data (and usize on 32-bit)
            b"u|s:5:\"abc\";",                 // length beyond the data
            b"u|s:-1:\"\";",                   // negative length
            b"u|s:1:\"ab\";",                  // length too short: the quote is misplaced
            b"u|a:1000000:{}",                 // count beyond the data
            b"u|a:1:{i:0;s:1:\"a\";",          // unterminated array
            b"u|i:12a;",                       // not an integer
            b"u|i:99999999999999999999999;",   // too many digits
            b"u|b:2;",                         // not a boolean
            b"u|d:1e5x;",                      // not a float
            b"u|x:1;",                         // unknown tag
            b"u|a:1:{d:0.5;i:1;}",             // float key
            b"u|C:3:\"Foo\":0:{}",             // custom serialization
            b"u|a:2:{i:0;s:1:\"a\";i:1;r:2;}", // reference
            b"u|R:1;",                         // reference
            b"u|E:7:\"Foo:Bar\";",             // enum
            b"u|S:1:\"\\61\";",                // escaped string
            b"u|O:1:\"X\":1:{i:0;N;",          // unterminated object
            b"u|s:1:\"a\"",                    // missing ;
            b"u|N",                            // missing ;
        ];
        assert_eq!(parse_session(cases[0]), Ok(json!({})));
        for case in &cases[1..] {
            assert!(parse_session(case).is_err(), "accepted {:?}", String::from_utf8_lossy(case));
        }
    }

    /// Arrays nested one level deeper than allowed, after `prefix`.
    fn too_deep(prefix: &[u8]) -> Vec<u8> {
        let mut deep = prefix.to_vec();
        for _ in 0..=MAX_DEPTH {
            deep.extend_from_slice(b"a:1:{i:0;");
        }
        deep.extend_from_slice(b"N;");
        deep.extend(std::iter::repeat_n(b'}', MAX_DEPTH + 1));
        deep
    }

    #[test]
    fn nesting_is_bounded() {
        assert_eq!(parse_session(&too_deep(b"u|")), Err(PhpError::TooDeep));
        assert_eq!(parse_serialized(&too_deep(b"")), Err(PhpError::TooDeep));
    }

    #[test]
    fn element_count_is_bounded() {
        let mut many = format!("u|a:{}:{{", MAX_ELEMENTS + 1).into_bytes();
        for i in 0..=MAX_ELEMENTS {
            many.extend_from_slice(format!("i:{i};N;").as_bytes());
        }
        many.push(b'}');
        assert_eq!(parse_session(&many), Err(PhpError::TooMany));
    }

    #[test]
    fn truncations_of_a_valid_session_never_panic() {
        let data = br#"account|a:2:{s:2:"id";i:5;s:4:"tags";a:1:{i:0;O:1:"T":1:{s:1:"n";d:1.5;}}}"#;
        assert!(parse_session(data).is_ok());
        for end in 0..data.len() {
            let _ = parse_session(&data[..end]);
        }
    }
}
