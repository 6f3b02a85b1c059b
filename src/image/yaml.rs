//! Writing the image records as YAML by hand: two small mappings of strings
//! ([`ImageDefaults`] in `berth pack`'s `.berth-image.yaml`, the store's `image.yaml`).
//! A serialiser and YAML emitter would add about 20 KB to the board's binary for them;
//! what is written here is read back by the same strict deserialiser as ever.

use std::fmt::Write as _;

use super::ImageDefaults;

/// `s` as a double-quoted YAML scalar: `"`, `\` and every control character escaped
/// (also U+0085, U+2028 and U+2029, which YAML may take for line breaks), everything
/// else as it is.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                // Writing into a String cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A flow sequence of quoted strings: `["a", "b"]`.
fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quoted(s)).collect();
    format!("[{}]", quoted.join(", "))
}

impl ImageDefaults {
    /// The defaults as one YAML flow mapping, with the keys that are set (empty ones
    /// left out, as the deserialiser defaults them): `{entrypoint: ["/app"], user:
    /// "app"}`, `{}` when none is.
    pub fn to_yaml(&self) -> String {
        let mut parts = Vec::new();
        for (key, items) in [
            ("entrypoint", &self.entrypoint),
            ("cmd", &self.cmd),
            ("env", &self.env),
        ] {
            if !items.is_empty() {
                parts.push(format!("{key}: {}", list(items)));
            }
        }
        for (key, value) in [("workdir", &self.workdir), ("user", &self.user)] {
            if let Some(value) = value {
                parts.push(format!("{key}: {}", quoted(value)));
            }
        }
        format!("{{{}}}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(d: &ImageDefaults) {
        let yaml = d.to_yaml();
        let back: ImageDefaults =
            crate::manifest::parse_yaml(&yaml).unwrap_or_else(|e| panic!("{e:?} in {yaml}"));
        assert_eq!(&back, d, "{yaml}");
    }

    #[test]
    fn every_string_comes_back_as_it_was() {
        let hard = [
            "",
            "plain",
            "with \"quotes\" and \\back\\slashes",
            "new\nline and\ttab and \r return",
            "\u{0}\u{1b}[2J\u{7f}\u{85}\u{2028}\u{2029}",
            "null",
            "true",
            "~",
            "- dash",
            "key: value # comment",
            "{[flow]}, &anchor *alias !tag %directive @ `",
            "ünïcödé 日本 🚢",
            "  leading and trailing  ",
            "PATH=/usr/bin:/bin",
            "123",
            "0x1f",
        ];
        for s in hard {
            round_trip(&ImageDefaults {
                entrypoint: vec![s.to_owned(), "x".to_owned()],
                cmd: vec![s.to_owned()],
                env: vec![format!("A={s}")],
                workdir: Some(s.to_owned()),
                user: Some(s.to_owned()),
            });
        }
    }

    #[test]
    fn empty_keys_are_left_out() {
        assert_eq!(ImageDefaults::default().to_yaml(), "{}");
        round_trip(&ImageDefaults::default());
        let d = ImageDefaults {
            entrypoint: vec!["/app".into(), "--serve".into()],
            user: Some("app".into()),
            ..ImageDefaults::default()
        };
        assert_eq!(
            d.to_yaml(),
            r#"{entrypoint: ["/app", "--serve"], user: "app"}"#
        );
        round_trip(&d);
    }
}
