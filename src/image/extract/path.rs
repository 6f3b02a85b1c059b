//! Entry names: normalised, checked for escapes, split into parent and name; and the
//! whiteout names of layered images.

/// A checked entry path: relative, without `.`, `..` or empty components, no NUL.
/// Held as `a/b/c` so that the parent `a/b` is a prefix slice (no allocation per
/// component).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EntryPath {
    joined: Vec<u8>,
    /// Index of the last `/`, if there is one.
    slash: Option<usize>,
}

impl EntryPath {
    /// Checks and normalises `raw` (as the archive spells it): `./a//b/` → `a/b`.
    /// `what` names the path in messages ("path", "hardlink target").
    pub(super) fn parse(raw: &[u8], what: &str) -> Result<EntryPath, String> {
        if raw.contains(&0) {
            return Err(format!("{what} contains a NUL byte"));
        }
        if raw.first() == Some(&b'/') {
            return Err(format!(
                "{what} is absolute; it would escape the image root"
            ));
        }
        let mut joined = Vec::with_capacity(raw.len());
        let mut slash = None;
        for component in raw.split(|b| *b == b'/') {
            match component {
                b"" | b"." => {}
                b".." => return Err(format!("{what} escapes the image root (..)")),
                c => {
                    if !joined.is_empty() {
                        slash = Some(joined.len());
                        joined.push(b'/');
                    }
                    joined.extend_from_slice(c);
                }
            }
        }
        Ok(EntryPath { joined, slash })
    }

    /// The image root itself (`./`).
    pub(super) fn is_root(&self) -> bool {
        self.joined.is_empty()
    }

    /// The whole path, `a/b/c`.
    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.joined
    }

    /// The parent directory, `a/b` (empty for an entry at the top).
    pub(super) fn parent(&self) -> &[u8] {
        match self.slash {
            Some(i) => self.joined.get(..i).unwrap_or_default(),
            None => b"",
        }
    }

    /// The last component, `c` (empty for the root).
    pub(super) fn name(&self) -> &[u8] {
        match self.slash {
            Some(i) => self.joined.get(i + 1..).unwrap_or_default(),
            None => &self.joined,
        }
    }

    /// The path of `name` inside this directory.
    pub(super) fn child(dir: &[u8], name: &[u8]) -> Vec<u8> {
        let mut path = Vec::with_capacity(dir.len() + 1 + name.len());
        path.extend_from_slice(dir);
        if !dir.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name);
        path
    }
}

/// What a layered-image entry means by its name.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Whiteout<'a> {
    /// Not a whiteout: an entry to write.
    None,
    /// `.wh.NAME`: delete NAME (from earlier layers) in the parent.
    Delete(&'a [u8]),
    /// `.wh..wh..opq`: empty the parent of what earlier layers put there.
    Opaque,
    /// Other `.wh..wh.` names (aufs bookkeeping such as `.wh..wh.plnk`) and anything
    /// inside them: not written.
    Meta,
}

const WH: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";
const META: &[u8] = b".wh..wh.";

impl<'a> Whiteout<'a> {
    /// Classifies a checked entry path; a whiteout that names no file, or an entry
    /// inside a whiteout, is an error.
    pub(super) fn of(path: &'a EntryPath) -> Result<Whiteout<'a>, String> {
        for component in path.parent().split(|b| *b == b'/') {
            if component.starts_with(META) {
                return Ok(Whiteout::Meta);
            }
            if component.starts_with(WH) {
                return Err("entry inside a whiteout".to_owned());
            }
        }
        let name = path.name();
        if name == OPAQUE {
            return Ok(Whiteout::Opaque);
        }
        if name.starts_with(META) {
            return Ok(Whiteout::Meta);
        }
        match name.strip_prefix(WH) {
            None => Ok(Whiteout::None),
            Some(b"" | b"." | b"..") => Err("whiteout names no file".to_owned()),
            Some(target) => Ok(Whiteout::Delete(target)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<EntryPath, String> {
        EntryPath::parse(raw.as_bytes(), "path")
    }

    #[test]
    fn paths_are_normalised_and_split() {
        let p = parse("./usr//lib/./libc.so").unwrap();
        assert_eq!(p.as_bytes(), b"usr/lib/libc.so");
        assert_eq!(p.parent(), b"usr/lib");
        assert_eq!(p.name(), b"libc.so");
        let p = parse("etc/").unwrap();
        assert_eq!((p.parent(), p.name()), (&b""[..], &b"etc"[..]));
        assert!(parse("./").unwrap().is_root());
        assert!(parse(".").unwrap().is_root());
        assert_eq!(parse("a...b/..c").unwrap().as_bytes(), b"a...b/..c");
    }

    #[test]
    fn escapes_are_refused() {
        assert_eq!(
            parse("../../etc/x").unwrap_err(),
            "path escapes the image root (..)"
        );
        assert_eq!(
            parse("a/b/../../..").unwrap_err(),
            "path escapes the image root (..)"
        );
        assert_eq!(
            parse("/etc/x").unwrap_err(),
            "path is absolute; it would escape the image root"
        );
        assert_eq!(parse("a\0b").unwrap_err(), "path contains a NUL byte");
    }

    #[test]
    fn child_paths_join() {
        assert_eq!(EntryPath::child(b"", b"x"), b"x");
        assert_eq!(EntryPath::child(b"a/b", b"x"), b"a/b/x");
    }

    #[test]
    fn whiteouts_are_recognised() {
        let of = |raw: &str| {
            let p = parse(raw).unwrap();
            Whiteout::of(&p).map(|w| match w {
                Whiteout::None => "none".to_owned(),
                Whiteout::Delete(t) => format!("delete {}", String::from_utf8_lossy(t)),
                Whiteout::Opaque => "opaque".to_owned(),
                Whiteout::Meta => "meta".to_owned(),
            })
        };
        assert_eq!(of("etc/passwd").unwrap(), "none");
        assert_eq!(of("etc/.wh.passwd").unwrap(), "delete passwd");
        assert_eq!(of("etc/.wh..wh..opq").unwrap(), "opaque");
        assert_eq!(of(".wh..wh.plnk/123.456").unwrap(), "meta");
        assert_eq!(of(".wh..wh.aufs").unwrap(), "meta");
        assert_eq!(of("etc/.wh.").unwrap_err(), "whiteout names no file");
        assert_eq!(of(".wh..").unwrap_err(), "whiteout names no file");
        assert_eq!(of(".wh...").unwrap_err(), "whiteout names no file");
        assert_eq!(of(".wh.dir/x").unwrap_err(), "entry inside a whiteout");
    }
}
