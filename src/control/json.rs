//! A small JSON writer for berth's `--json` output and the control protocol's
//! requests (berth reads JSON with serde_yaml: JSON is YAML, no second parser).

use std::fmt::Write as _;

/// `text` as a JSON string, quotes included: `"`, `\` and every control character
/// escaped, so the result is one line.
pub fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    push_string(&mut out, text);
    out
}

fn push_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // The other C0 controls, DEL, and the C1 controls and line separators that
            // some readers take as line ends.
            c if (c as u32) < 0x20 || matches!(c as u32, 0x7f..=0x9f | 0x2028 | 0x2029) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON object written field by field: `Object::new().str("name", "web").end()`.
/// Fields whose value is `None` are written as `null`, so every object of a kind has
/// the same keys.
pub struct Object(String);

impl Default for Object {
    fn default() -> Self {
        Object::new()
    }
}

impl Object {
    pub fn new() -> Object {
        Object(String::from("{"))
    }

    fn key(&mut self, key: &str) -> &mut String {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        push_string(&mut self.0, key);
        self.0.push(':');
        &mut self.0
    }

    pub fn str(mut self, key: &str, value: &str) -> Object {
        let out = self.key(key);
        push_string(out, value);
        self
    }

    pub fn opt_str(self, key: &str, value: Option<&str>) -> Object {
        match value {
            Some(v) => self.str(key, v),
            None => self.raw(key, "null"),
        }
    }

    /// A count, size or id (never negative: one formatting routine, no wider one).
    pub fn num(mut self, key: &str, value: u64) -> Object {
        let _ = write!(self.key(key), "{value}");
        self
    }

    pub fn opt_num(self, key: &str, value: Option<u64>) -> Object {
        match value {
            Some(v) => self.num(key, v),
            None => self.raw(key, "null"),
        }
    }

    pub fn bool(self, key: &str, value: bool) -> Object {
        self.raw(key, if value { "true" } else { "false" })
    }

    /// `value` is JSON already (an array, an object, a number with a fraction).
    pub fn raw(mut self, key: &str, value: &str) -> Object {
        self.key(key).push_str(value);
        self
    }

    pub fn end(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// A JSON array of already-encoded values.
pub fn array<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let mut out = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item.as_ref());
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_onto_one_line() {
        assert_eq!(string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(string("l1\nl2\t\r"), r#""l1\nl2\t\r""#);
        assert_eq!(
            string("\u{1b}[31m\u{7f}\u{85}\u{2028}é"),
            "\"\\u001b[31m\\u007f\\u0085\\u2028é\""
        );
    }

    #[test]
    fn objects_keep_their_keys_with_nulls() {
        let o = Object::new()
            .str("name", "web")
            .num("pid", 12)
            .opt_num("uptime", None)
            .opt_str("why", None)
            .bool("up", true)
            .raw("exits", &array([string("x")]))
            .end();
        assert_eq!(
            o,
            r#"{"name":"web","pid":12,"uptime":null,"why":null,"up":true,"exits":["x"]}"#
        );
        assert_eq!(Object::new().end(), "{}");
    }
}
