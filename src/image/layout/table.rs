//! What the one pass over a layered archive keeps: archive path → content (in memory
//! or in a spool file), its sha256 and size. Memory stays bounded: JSON documents and
//! small blobs in memory under fixed limits, everything else streamed through one
//! fixed buffer to a file.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Cursor, Read, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tar::EntryType;

use super::names::{self, Name};
use crate::image::unpack::entry_name;
use crate::image::{ImageError, io_error};
use crate::manifest::types::Digest;

/// Most bytes of one JSON document (index, manifest, config, ...).
pub(super) const MAX_DOCUMENT: u64 = 1 << 20;
/// Most bytes held in memory for all documents and small blobs together.
const MAX_MEMORY: u64 = 8 << 20;
/// Blobs up to this size stay in memory (while the total allows): manifests, configs,
/// empty layers. Larger ones go to the spool directory.
const SMALL_BLOB: u64 = 64 << 10;
/// Most files one archive may hold; one image has a few per layer.
const MAX_FILES: usize = 10_000;
/// Buffer for streaming blobs to the spool.
const BUFFER: usize = 64 << 10;
/// Most links followed to reach a file.
const MAX_HOPS: usize = 8;

/// Where the content of an archive file is.
#[derive(Debug)]
pub(super) enum Data {
    Memory(Vec<u8>),
    File(PathBuf),
}

/// One file of the archive.
#[derive(Debug)]
pub(super) struct Stored {
    pub data: Data,
    pub sha256: Digest,
    pub size: u64,
}

#[derive(Debug)]
enum Item {
    Stored(Stored),
    /// A symlink or hard link of the archive, resolved to another archive path (docker
    /// save links a layer it has already written). Never followed on disk.
    Link(String),
}

pub(super) struct Table {
    dir: PathBuf,
    items: BTreeMap<String, Item>,
    memory: u64,
    spooled: u64,
    buffer: Vec<u8>,
}

impl Table {
    /// A table whose spool files go to `dir` (an existing directory).
    pub(super) fn new(dir: &Path) -> Self {
        Table {
            dir: dir.to_owned(),
            items: BTreeMap::new(),
            memory: 0,
            spooled: 0,
            buffer: Vec::new(),
        }
    }

    /// Takes one entry of the archive.
    pub(super) fn take<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), ImageError> {
        let offset = entry.raw_header_position();
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let bad = |why: String| ImageError::Entry {
            path: raw.clone(),
            offset,
            why,
        };
        let path = entry_name(&raw);
        names::check_name(path).map_err(bad)?;
        let kind = entry.header().entry_type();
        match kind {
            EntryType::Directory | EntryType::XGlobalHeader => return Ok(()),
            EntryType::Regular | EntryType::Continuous | EntryType::Symlink | EntryType::Link => {}
            other => {
                return Err(bad(format!(
                    "is a {other:?} entry; an OCI or docker-save archive holds only files, directories and links"
                )));
            }
        }
        let name = match names::classify(path) {
            Some(Name::Dir | Name::Unused) => return Ok(()),
            Some(name) => name,
            None => {
                log::debug!(
                    "image archive: skipping {raw:?}, not a file of an OCI or docker-save archive"
                );
                return Ok(());
            }
        };
        let path = path.to_owned();
        if self.items.contains_key(&path) {
            return Err(bad("appears twice in the archive".into()));
        }
        if self.items.len() >= MAX_FILES {
            return Err(bad(format!(
                "the archive has more than {MAX_FILES} files; one image needs far fewer"
            )));
        }
        let item = if kind == EntryType::Symlink || kind == EntryType::Link {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| bad("is a link without a target".into()))?;
            let target = String::from_utf8_lossy(&target).into_owned();
            Item::Link(names::resolve_link(&path, &target, kind == EntryType::Link).map_err(bad)?)
        } else {
            let size = entry.size();
            let document = matches!(
                name,
                Name::Layout | Name::Index | Name::DockerManifest | Name::Config(_)
            );
            if document && size > MAX_DOCUMENT {
                return Err(bad(format!(
                    "is {size} bytes; berth reads JSON documents of at most {MAX_DOCUMENT}"
                )));
            }
            let fits = self.memory.saturating_add(size) <= MAX_MEMORY;
            if document && !fits {
                return Err(bad(format!(
                    "the archive's JSON documents exceed {MAX_MEMORY} bytes in all"
                )));
            }
            let stored = if document || (size <= SMALL_BLOB && fits) {
                self.memory += size;
                read_to_memory(entry, size).map_err(|e| bad(format!("cannot read: {e}")))?
            } else {
                self.spool(entry, &bad)?
            };
            if stored.size != size {
                return Err(bad(format!(
                    "has {} bytes, its header says {size}",
                    stored.size
                )));
            }
            Item::Stored(stored)
        };
        self.items.insert(path, item);
        Ok(())
    }

    /// Streams an entry to a new file in the spool directory, hashing it.
    fn spool<R: Read>(
        &mut self,
        entry: &mut R,
        bad: &dyn Fn(String) -> ImageError,
    ) -> Result<Stored, ImageError> {
        self.spooled += 1;
        let path = self.dir.join(format!("blob-{}", self.spooled));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_error("create spool file", &path))?;
        if self.buffer.is_empty() {
            self.buffer = vec![0; BUFFER];
        }
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        loop {
            let n = match entry.read(&mut self.buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(bad(format!("cannot read: {e}"))),
            };
            let chunk = self.buffer.get(..n).unwrap_or_default();
            hasher.update(chunk);
            file.write_all(chunk)
                .map_err(io_error("write spool file", &path))?;
            written += n as u64;
        }
        Ok(Stored {
            data: Data::File(path),
            sha256: Digest::from_bytes(&hasher.finalize()),
            size: written,
        })
    }

    /// Whether the archive has a file (or link) at `path`.
    pub(super) fn contains(&self, path: &str) -> bool {
        self.items.contains_key(path)
    }

    /// The file at `path`, following the archive's own links, with the path it was
    /// found at. `what` names it in errors: a missing file, a link loop, and a file
    /// whose name promises a sha256 (`blobs/sha256/<hex>`, `<hex>.json`) that its
    /// content does not have.
    pub(super) fn lookup(&self, path: &str, what: &str) -> Result<(&str, &Stored), ImageError> {
        let mut at = path;
        for _ in 0..MAX_HOPS {
            let Some((key, item)) = self.items.get_key_value(at) else {
                return Err(ImageError::Format(format!(
                    "{what} is not in the archive (no file {path:?})"
                )));
            };
            match item {
                Item::Link(target) => at = target,
                Item::Stored(stored) => {
                    for name in [path, key.as_str()] {
                        check_named(name, stored, what)?;
                    }
                    return Ok((key, stored));
                }
            }
        }
        Err(ImageError::Format(format!(
            "{what}: more than {MAX_HOPS} links from {path:?}"
        )))
    }

    /// The content of a JSON document (at most [`MAX_DOCUMENT`] bytes).
    pub(super) fn document<'s>(
        &self,
        stored: &'s Stored,
        what: &str,
    ) -> Result<Cow<'s, [u8]>, ImageError> {
        if stored.size > MAX_DOCUMENT {
            return Err(ImageError::Format(format!(
                "{what} is {} bytes; berth reads JSON documents of at most {MAX_DOCUMENT}",
                stored.size
            )));
        }
        match &stored.data {
            Data::Memory(bytes) => Ok(Cow::Borrowed(bytes)),
            Data::File(path) => {
                let mut bytes = Vec::new();
                File::open(path)
                    .and_then(|f| f.take(MAX_DOCUMENT).read_to_end(&mut bytes))
                    .map_err(io_error("read spool file", path))?;
                Ok(Cow::Owned(bytes))
            }
        }
    }

    /// A reader of the content of `stored`.
    pub(super) fn open<'t>(&'t self, stored: &'t Stored) -> Result<Box<dyn Read + 't>, ImageError> {
        Ok(match &stored.data {
            Data::Memory(bytes) => Box::new(Cursor::new(bytes.as_slice())),
            Data::File(path) => {
                Box::new(File::open(path).map_err(io_error("open spool file", path))?)
            }
        })
    }

    /// Frees the content at `path` (a key [`Table::lookup`] returned): deletes its
    /// spool file.
    pub(super) fn remove(&mut self, path: &str) -> Result<(), ImageError> {
        if let Some(Item::Stored(Stored {
            data: Data::File(file),
            ..
        })) = self.items.remove(path)
        {
            fs::remove_file(&file).map_err(io_error("remove spool file", &file))?;
        }
        Ok(())
    }

    /// Checks every file whose name promises a sha256, used or not.
    pub(super) fn verify_names(&self) -> Result<(), ImageError> {
        for (path, item) in &self.items {
            if let Item::Stored(stored) = item {
                check_named(path, stored, &format!("file {path}"))?;
            }
        }
        Ok(())
    }
}

fn read_to_memory<R: Read>(entry: &mut R, size: u64) -> io::Result<Stored> {
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    entry.take(size).read_to_end(&mut bytes)?;
    let sha256 = Digest::from_bytes(&Sha256::digest(&bytes));
    Ok(Stored {
        size: bytes.len() as u64,
        sha256,
        data: Data::Memory(bytes),
    })
}

/// A blob named by a digest must have that digest.
fn check_named(path: &str, stored: &Stored, what: &str) -> Result<(), ImageError> {
    match names::named_digest(path) {
        Some(hex) if hex != stored.sha256.as_str() => Err(ImageError::BlobMismatch {
            what: if what.contains(path) {
                what.to_owned()
            } else {
                format!("{what} ({path})")
            },
            expected: hex.to_owned(),
            actual: stored.sha256.to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{Node, TempDir, blob_name, sha, table, tar};
    use super::*;

    fn entry_error(e: ImageError) -> (String, String) {
        match e {
            ImageError::Entry { path, why, .. } => (path, why),
            other => panic!("expected an entry error, got {other:?}"),
        }
    }

    #[test]
    fn documents_in_memory_large_blobs_spooled() {
        let dir = TempDir::new("spool");
        let big = vec![7u8; 200_000];
        let small = b"{\"rootfs\":{}}".to_vec();
        let archive = tar(&[
            ("./", Node::Dir),
            (
                "./oci-layout",
                Node::File(b"{\"imageLayoutVersion\":\"1.0.0\"}"),
            ),
            ("blobs/", Node::Dir),
            ("blobs/sha256/", Node::Dir),
            (&blob_name(&big), Node::File(&big)),
            (&blob_name(&small), Node::File(&small)),
            ("README.md", Node::File(b"not part of the layout")),
        ]);
        let t = table(&archive, dir.path()).unwrap();
        assert_eq!(
            dir.files(),
            vec!["blob-1"],
            "only the large blob is spooled"
        );
        let (key, stored) = t.lookup(&blob_name(&big), "layer").unwrap();
        assert_eq!(key, blob_name(&big));
        assert_eq!(
            (stored.sha256.as_str(), stored.size),
            (sha(&big).as_str(), 200_000)
        );
        assert!(matches!(&stored.data, Data::File(p) if fs::read(p).unwrap() == big));
        let (_, stored) = t.lookup(&blob_name(&small), "config").unwrap();
        assert!(matches!(&stored.data, Data::Memory(b) if *b == small));
        assert_eq!(&*t.document(stored, "config").unwrap(), &small[..]);
        assert!(t.contains("oci-layout"));
        assert!(!t.contains("README.md"), "unknown files are skipped");
        assert_eq!(
            t.lookup("index.json", "index.json")
                .unwrap_err()
                .to_string(),
            "index.json is not in the archive (no file \"index.json\")"
        );
    }

    #[test]
    fn spooled_files_are_removed_after_use() {
        let dir = TempDir::new("remove");
        let big = vec![1u8; SMALL_BLOB as usize + 1];
        let t = table(&tar(&[(&blob_name(&big), Node::File(&big))]), dir.path());
        let mut t = t.unwrap();
        let (_, stored) = t.lookup(&blob_name(&big), "layer").unwrap();
        let mut content = Vec::new();
        t.open(stored).unwrap().read_to_end(&mut content).unwrap();
        assert_eq!(content, big);
        t.remove(&blob_name(&big)).unwrap();
        assert!(dir.files().is_empty());
    }

    #[test]
    fn a_blob_must_hash_to_its_name() {
        let dir = TempDir::new("named");
        let name = blob_name(b"expected");
        let t = table(&tar(&[(&name, Node::File(b"tampered"))]), dir.path()).unwrap();
        let mismatch = |e: ImageError| match e {
            ImageError::BlobMismatch {
                what,
                expected,
                actual,
            } => (what, expected, actual),
            other => panic!("expected BlobMismatch, got {other:?}"),
        };
        let (what, expected, actual) = mismatch(t.lookup(&name, "layer 2 of 3").unwrap_err());
        assert_eq!(what, format!("layer 2 of 3 ({name})"));
        assert_eq!((expected, actual), (sha(b"expected"), sha(b"tampered")));
        let (what, ..) = mismatch(t.verify_names().unwrap_err());
        assert_eq!(what, format!("file {name}"));
    }

    #[test]
    fn document_limits() {
        let dir = TempDir::new("limits");
        let huge = vec![b' '; MAX_DOCUMENT as usize + 1];
        let err = table(&tar(&[("index.json", Node::File(&huge))]), dir.path())
            .err()
            .unwrap();
        assert_eq!(
            entry_error(err),
            (
                "index.json".into(),
                "is 1048577 bytes; berth reads JSON documents of at most 1048576".into()
            )
        );

        // Eight full-size configs fit, the ninth is refused.
        let doc = vec![b' '; MAX_DOCUMENT as usize];
        let names: Vec<String> = (0..9u8).map(|i| format!("{}.json", sha(&[i]))).collect();
        let entries: Vec<(&str, Node<'_>)> = names
            .iter()
            .map(|n| (n.as_str(), Node::File(&doc)))
            .collect();
        let (path, why) = entry_error(table(&tar(&entries), dir.path()).err().unwrap());
        assert_eq!(
            (path.as_str(), why.as_str()),
            (
                names[8].as_str(),
                "the archive's JSON documents exceed 8388608 bytes in all"
            )
        );
    }

    #[test]
    fn small_blobs_go_to_the_spool_when_memory_is_used_up() {
        let dir = TempDir::new("budget");
        let blobs: Vec<Vec<u8>> = (0..130u32)
            .map(|i| {
                let mut b = vec![0u8; SMALL_BLOB as usize];
                b[..4].copy_from_slice(&i.to_le_bytes());
                b
            })
            .collect();
        let names: Vec<String> = blobs.iter().map(|b| blob_name(b)).collect();
        let entries: Vec<(&str, Node<'_>)> = names
            .iter()
            .zip(&blobs)
            .map(|(n, b)| (n.as_str(), Node::File(b)))
            .collect();
        let t = table(&tar(&entries), dir.path()).unwrap();
        assert_eq!(t.memory, MAX_MEMORY);
        assert_eq!(dir.files().len(), 2);
        t.verify_names().unwrap();
    }

    #[test]
    fn refused_entries() {
        let dir = TempDir::new("refused");
        /// Entries of an archive, the entry refused, why.
        type Case<'a> = (&'a [(&'a str, Node<'a>)], &'a str, &'a str);
        let cases: [Case<'_>; 5] = [
            (
                &[("/index.json", Node::File(b"{}"))],
                "/index.json",
                "absolute path in an image archive",
            ),
            (
                &[("blobs/../../x", Node::File(b""))],
                "blobs/../../x",
                "`..` in a path of an image archive",
            ),
            (
                &[("blobs/sha256/fifo", Node::Fifo)],
                "blobs/sha256/fifo",
                "is a Fifo entry; an OCI or docker-save archive holds only files, directories and links",
            ),
            (
                &[
                    ("index.json", Node::File(b"{}")),
                    ("./index.json", Node::File(b"{}")),
                ],
                "./index.json",
                "appears twice in the archive",
            ),
            (
                &[(
                    "1111111111111111111111111111111111111111111111111111111111111111/layer.tar",
                    Node::Symlink("../../../etc/shadow"),
                )],
                "1111111111111111111111111111111111111111111111111111111111111111/layer.tar",
                "link target \"../../../etc/shadow\" leaves the archive",
            ),
        ];
        for (entries, path, why) in cases {
            let err = table(&tar(entries), dir.path()).err().unwrap();
            assert_eq!(entry_error(err), (path.to_owned(), why.to_owned()));
        }
    }

    #[test]
    fn links_are_aliases_inside_the_archive() {
        let dir = TempDir::new("links");
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let c = "c".repeat(64);
        let archive = tar(&[
            (
                &format!("{b}/layer.tar"),
                Node::Symlink(&format!("../{a}/layer.tar")),
            ),
            (&format!("{a}/layer.tar"), Node::File(b"layer")),
            (
                &format!("{c}/layer.tar"),
                Node::Hardlink(&format!("{b}/layer.tar")),
            ),
            (
                &format!("{}.tar", "d".repeat(64)),
                Node::Symlink("missing.tar"),
            ),
        ]);
        let t = table(&archive, dir.path()).unwrap();
        let (key, stored) = t.lookup(&format!("{c}/layer.tar"), "layer 3").unwrap();
        assert_eq!(key, format!("{a}/layer.tar"));
        assert_eq!(stored.sha256.as_str(), sha(b"layer"));
        assert_eq!(
            t.lookup(&format!("{}.tar", "d".repeat(64)), "layer 4")
                .unwrap_err()
                .to_string(),
            format!(
                "layer 4 is not in the archive (no file \"{}.tar\")",
                "d".repeat(64)
            )
        );
    }

    #[test]
    fn link_loops_end() {
        let dir = TempDir::new("loop");
        let a = format!("{}.tar", "a".repeat(64));
        let b = format!("{}.tar", "b".repeat(64));
        let t = table(
            &tar(&[(&a, Node::Symlink(&b)), (&b, Node::Symlink(&a))]),
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            t.lookup(&a, "layer 1").unwrap_err().to_string(),
            format!("layer 1: more than 8 links from {a:?}")
        );
    }
}
