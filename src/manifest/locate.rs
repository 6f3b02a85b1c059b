//! Positions in YAML text. serde_yaml gives a position only with an error, so to find
//! where a node is, [`locate`] walks the document to it and raises an error there;
//! [`refuse_duplicate_keys`] raises one at the second of two equal keys.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

impl From<serde_yaml::Location> for Pos {
    fn from(l: serde_yaml::Location) -> Self {
        Pos {
            line: l.line(),
            column: l.column(),
        }
    }
}

/// One step of a path into a document: a mapping key or a sequence index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'k> {
    /// The value under this key.
    Key(&'k str),
    /// The key itself (last step only): for problems with a whole section.
    KeyOf(&'k str),
    Index(usize),
}

/// Builds a path: `at!["healthcheck", "timeout"]`, `at!["mounts", 2usize, "target"]`.
macro_rules! at {
    ($($seg:expr),* $(,)?) => { vec![$($crate::manifest::locate::Seg::from($seg)),*] };
}
pub(crate) use at;

impl<'k> From<&'k str> for Seg<'k> {
    fn from(k: &'k str) -> Self {
        Seg::Key(k)
    }
}

impl From<usize> for Seg<'_> {
    fn from(i: usize) -> Self {
        Seg::Index(i)
    }
}

/// The marker message of the error raised where the walk stops.
const HERE: &str = "\u{0}berth-locate";

/// The position of the node at `path`, or of its deepest existing ancestor when part of
/// the path is absent (so a missing key points at the mapping that lacks it).
pub fn locate(text: &str, path: &[Seg]) -> Option<Pos> {
    let de = serde_yaml::Deserializer::from_str(text);
    match (Walk { path }).deserialize(de) {
        Err(e) if e.to_string().contains(HERE) => e.location().map(Pos::from),
        _ => None,
    }
}

struct Walk<'p> {
    path: &'p [Seg<'p>],
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        // The error must be raised inside a deserialize_* call of this node, which is
        // where serde_yaml stamps it with the node's position.
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        match self.path.split_first() {
            Some((Seg::Key(want), rest)) => {
                while let Some(key) = map.next_key::<KeyText>()? {
                    if key.0.as_deref() == Some(*want) {
                        return map.next_value_seed(Walk { path: rest });
                    }
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Some((Seg::KeyOf(want), _)) => {
                // FindKey fails at the wanted key, so the error carries its position.
                while map.next_key_seed(FindKey(want))?.is_some() {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            _ => {}
        }
        Err(de::Error::custom(HERE))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some((Seg::Index(want), rest)) = self.path.split_first() {
            let mut i = 0;
            while i < *want {
                if seq.next_element::<IgnoredAny>()?.is_none() {
                    return Err(de::Error::custom(HERE));
                }
                i += 1;
            }
            if seq.next_element_seed(Walk { path: rest })?.is_some() {
                return Ok(());
            }
        }
        Err(de::Error::custom(HERE))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }
}

/// Reads a mapping key and fails, at the key, if it is the wanted one.
struct FindKey<'w>(&'w str);

impl<'de> DeserializeSeed<'de> for FindKey<'_> {
    type Value = KeyText;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<KeyText, D::Error> {
        d.deserialize_any(KeyVisitor {
            check: KeyCheck::Find(self.0),
        })
    }
}

/// A mapping key as text if it is a scalar; `None` for a mapping or sequence used as key.
struct KeyText(Option<String>);

impl<'de> de::Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KeyVisitor {
            check: KeyCheck::None,
        })
    }
}

/// What to do with a key as it is read; an error raised here carries the key's position.
enum KeyCheck<'s> {
    None,
    /// Refuse a key already seen in this mapping.
    Unique(&'s mut Vec<String>),
    /// Stop the walk at this key.
    Find(&'s str),
}

struct KeyVisitor<'s> {
    check: KeyCheck<'s>,
}

impl KeyVisitor<'_> {
    fn text<E: de::Error>(self, key: String) -> Result<KeyText, E> {
        match self.check {
            KeyCheck::Unique(seen) if seen.contains(&key) => {
                return Err(E::custom(format_args!("duplicate key `{key}`")));
            }
            KeyCheck::Unique(seen) => seen.push(key.clone()),
            KeyCheck::Find(want) if want == key => return Err(E::custom(HERE)),
            KeyCheck::Find(_) | KeyCheck::None => {}
        }
        Ok(KeyText(Some(key)))
    }
}

impl<'de> Visitor<'de> for KeyVisitor<'_> {
    type Value = KeyText;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
        self.text(v.to_owned())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
        self.text(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
        self.text(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
        self.text(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
        self.text(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
        self.text("null".to_owned())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<KeyText, A::Error> {
        NoDuplicates.visit_map(map).map(|_| KeyText(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<KeyText, A::Error> {
        NoDuplicates.visit_seq(seq).map(|_| KeyText(None))
    }
}

struct SeenKey<'s>(&'s mut Vec<String>);

impl<'de> DeserializeSeed<'de> for SeenKey<'_> {
    type Value = KeyText;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<KeyText, D::Error> {
        d.deserialize_any(KeyVisitor {
            check: KeyCheck::Unique(self.0),
        })
    }
}

/// Walks a whole document and fails at the first key repeated within one mapping.
/// (serde_yaml alone would keep the last value of a repeated `env:` key, silently.)
pub fn refuse_duplicate_keys(text: &str) -> Result<(), serde_yaml::Error> {
    de::Deserialize::deserialize(serde_yaml::Deserializer::from_str(text)).map(|NoDuplicates| ())
}

struct NoDuplicates;

impl<'de> de::Deserialize<'de> for NoDuplicates {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicates)
    }
}

impl<'de> Visitor<'de> for NoDuplicates {
    type Value = NoDuplicates;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any node")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicates, A::Error> {
        let mut seen = Vec::new();
        while map.next_key_seed(SeenKey(&mut seen))?.is_some() {
            map.next_value::<NoDuplicates>()?;
        }
        Ok(NoDuplicates)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicates, A::Error> {
        while seq.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_unit<E: de::Error>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_none<E: de::Error>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(text: &str, path: Vec<Seg>) -> Option<Pos> {
        locate(text, &path)
    }

    const DOC: &str = "name: web\nhealthcheck:\n  interval: 10s\n  timeout: 20s\nmounts:\n  - { type: tmpfs, target: /tmp }\n  - type: bind\n    target: /data\n";

    #[test]
    fn finds_keys_values_and_indices() {
        assert_eq!(loc(DOC, at!["name"]), Some(Pos { line: 1, column: 7 }));
        assert_eq!(
            loc(DOC, at!["healthcheck"]),
            Some(Pos { line: 3, column: 3 })
        );
        assert_eq!(
            loc(DOC, at!["healthcheck", "timeout"]),
            Some(Pos {
                line: 4,
                column: 12
            })
        );
        assert_eq!(
            loc(DOC, at!["mounts", 0usize, "target"]),
            Some(Pos {
                line: 6,
                column: 28
            })
        );
        assert_eq!(
            loc(DOC, at!["mounts", 1usize, "target"]),
            Some(Pos {
                line: 8,
                column: 13
            })
        );
        assert_eq!(
            loc(DOC, at![Seg::KeyOf("healthcheck")]),
            Some(Pos { line: 2, column: 1 })
        );
        assert_eq!(
            loc(DOC, at!["mounts", 0usize, Seg::KeyOf("target")]),
            Some(Pos {
                line: 6,
                column: 20
            })
        );
    }

    #[test]
    fn an_absent_node_points_at_its_nearest_ancestor() {
        assert_eq!(
            loc(DOC, at!["healthcheck", "retries"]),
            Some(Pos { line: 3, column: 3 })
        );
        assert_eq!(
            loc(DOC, at!["mounts", 7usize]),
            Some(Pos { line: 6, column: 3 })
        );
        assert_eq!(loc("", at!["name"]), Some(Pos { line: 1, column: 1 }));
    }

    #[test]
    fn duplicate_keys_are_refused_where_they_repeat() {
        assert!(refuse_duplicate_keys(DOC).is_ok());
        let e = refuse_duplicate_keys("env:\n  A: 1\n  B: 2\n  A: 3\n").unwrap_err();
        assert_eq!(
            e.location().map(Pos::from),
            Some(Pos { line: 4, column: 3 })
        );
        assert!(e.to_string().starts_with("env: duplicate key `A`"), "{e}");
        let e = refuse_duplicate_keys("a: 1\nb: [ {x: 1, x: 2} ]\n").unwrap_err();
        assert_eq!(
            e.location().map(Pos::from),
            Some(Pos {
                line: 2,
                column: 13
            })
        );
    }
}
