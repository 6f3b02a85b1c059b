//! What the evil-archive corpus is made of: fixtures with a canary beside the target,
//! archives put together entry by entry (well-formed by `tar::Builder`, malformed by
//! hand), and the driver that extracts them as `berth unpack` does.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt as _, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use berth::image::extract::{Extractor, Report};
use berth::image::{ImageError, Limits};
use tar::{EntryType, Header};

pub const MTIME: u64 = 1_600_000_000;

// ---------------------------------------------------------------- fixtures

/// `DIR/root` (the target) and `DIR/outside` (the canary), removed on drop, also when
/// the test fails.
pub struct Fixture {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub outside: PathBuf,
}

impl Fixture {
    pub fn new(name: &str) -> Fixture {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("berth-evil-{}-{n}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let (root, outside) = (dir.join("root"), dir.join("outside"));
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(outside.join("sub")).unwrap();
        fs::write(outside.join("canary.txt"), b"canary\n").unwrap();
        fs::write(outside.join("sub/deep.txt"), b"deep\n").unwrap();
        symlink("canary.txt", outside.join("alias")).unwrap();
        Fixture { dir, root, outside }
    }

    pub fn outside_str(&self) -> &str {
        self.outside.to_str().unwrap()
    }

    /// Everything that must not change: the fixture except `root/`, `/etc/passwd`,
    /// and whether a few paths that escapes aim at exist.
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        let mut s = BTreeMap::new();
        describe_tree(&self.dir, &self.dir, &mut s);
        s.retain(|k, _| k != "root" && !k.starts_with("root/"));
        let p = fs::symlink_metadata("/etc/passwd").unwrap();
        s.insert(
            "/etc/passwd".into(),
            format!(
                "{} {} {} {} {}",
                p.ino(),
                p.size(),
                p.mtime(),
                p.mtime_nsec(),
                p.nlink()
            ),
        );
        let tmp_etc = self.dir.parent().unwrap().join("etc/x");
        for abs in [
            Path::new("/etc/x"),
            Path::new("/etc/pwned"),
            Path::new("/x"),
            &tmp_etc,
        ] {
            s.insert(
                abs.display().to_string(),
                abs.symlink_metadata().is_ok().to_string(),
            );
        }
        s
    }

    /// The tree under `root/`, described as [`describe`] does.
    pub fn tree(&self) -> BTreeMap<String, String> {
        let mut s = BTreeMap::new();
        describe_tree(&self.root, &self.root, &mut s);
        s
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn describe_tree(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    out.insert(rel(base, dir), describe(dir));
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            describe_tree(base, &p, out);
        } else {
            out.insert(rel(base, &p), describe(&p));
        }
    }
}

fn rel(base: &Path, p: &Path) -> String {
    p.strip_prefix(base).unwrap().to_string_lossy().into_owned()
}

/// Kind, mode, owner, mtime and content (or link target) of one path.
fn describe(p: &Path) -> String {
    let m = fs::symlink_metadata(p).unwrap();
    let t = m.file_type();
    let owner = format!(
        "{:o} {}:{} {}",
        m.mode() & 0o7777,
        m.uid(),
        m.gid(),
        m.mtime()
    );
    if t.is_symlink() {
        format!("link {owner} -> {}", fs::read_link(p).unwrap().display())
    } else if t.is_dir() {
        format!("dir {owner}")
    } else if t.is_file() {
        format!(
            "file {owner} {:?}",
            String::from_utf8_lossy(&fs::read(p).unwrap())
        )
    } else {
        format!("other {owner} {:?}", t)
    }
}

/// Fails the test loudly when not root: CI runs as root, and a skipped test would
/// hide a missing setup.
pub fn require_root(why: &str) {
    assert!(
        is_root(),
        "this test must run as root ({why}); CI runs it as root"
    );
}

pub fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: the evil-archive corpus needs root (owners, device nodes), as CI runs it");
    false
}

// ---------------------------------------------------------------- archives

/// A tar archive put together entry by entry: well-formed entries by `tar::Builder`,
/// malformed ones from hand-made headers. Each method returns the entry's offset.
#[derive(Default)]
pub struct Tar {
    bytes: Vec<u8>,
}

pub fn normal_header(kind: EntryType, mode: u32) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h.set_size(0);
    h
}

impl Tar {
    fn built(&mut self, f: impl FnOnce(&mut tar::Builder<Vec<u8>>) -> io::Result<()>) -> u64 {
        let offset = self.bytes.len() as u64;
        let mut b = tar::Builder::new(Vec::new());
        f(&mut b).unwrap();
        let mut v = b.into_inner().unwrap();
        v.truncate(v.len() - 1024);
        self.bytes.extend(v);
        offset
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> u64 {
        let mut h = normal_header(EntryType::Regular, mode);
        h.set_size(data.len() as u64);
        self.built(|b| b.append_data(&mut h, path, data))
    }

    pub fn owned(
        &mut self,
        kind: EntryType,
        path: &str,
        mode: u32,
        owner: (u64, u64),
        mtime: u64,
        data: &[u8],
    ) -> u64 {
        let mut h = normal_header(kind, mode);
        h.set_size(data.len() as u64);
        h.set_uid(owner.0);
        h.set_gid(owner.1);
        h.set_mtime(mtime);
        self.built(|b| b.append_data(&mut h, path, data))
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> u64 {
        let mut h = normal_header(EntryType::Directory, mode);
        self.built(|b| b.append_data(&mut h, path, &[][..]))
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> u64 {
        let mut h = normal_header(EntryType::Symlink, 0o777);
        self.built(|b| b.append_link(&mut h, path, target))
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> u64 {
        self.raw(header(path.as_bytes(), b'1', 0, target.as_bytes()), b"")
    }

    pub fn node(&mut self, kind: EntryType, path: &str, major: u32, minor: u32) -> u64 {
        let mut h = normal_header(kind, 0o660);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.built(|b| b.append_data(&mut h, path, &[][..]))
    }

    /// A PAX extended header with `records` (`key=value`) for the next entry.
    pub fn pax(&mut self, records: &[&str]) -> u64 {
        let mut data = Vec::new();
        for r in records {
            // The length counts itself: "NN key=value\n".
            let rest = r.len() + 2;
            let mut len = rest + 1;
            while len.to_string().len() + rest != len {
                len += 1;
            }
            data.extend_from_slice(format!("{len} {r}\n").as_bytes());
        }
        self.raw(
            header(b"./PaxHeaders/x", b'x', data.len() as u64, b""),
            &data,
        )
    }

    /// A hand-made header and its data, padded to whole blocks.
    pub fn raw(&mut self, header: [u8; 512], data: &[u8]) -> u64 {
        let offset = self.bytes.len() as u64;
        self.bytes.extend_from_slice(&header);
        self.bytes.extend_from_slice(data);
        self.bytes.resize(self.bytes.len().next_multiple_of(512), 0);
        offset
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(&[0; 1024]);
        self.bytes
    }
}

pub fn octal(field: &mut [u8], value: u64) {
    let text = format!("{value:0width$o}\0", width = field.len() - 1);
    field.copy_from_slice(text.as_bytes());
}

/// A ustar header with every field set by hand: any name, link name and size.
pub fn header(name: &[u8], kind: u8, size: u64, link: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], MTIME);
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    checksum(&mut h);
    h
}

/// Writes the header checksum: the byte sum with the checksum field as spaces.
fn checksum(h: &mut [u8; 512]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
}

// ---------------------------------------------------------------- driving

/// Extracts `layers` into `root` as `berth unpack` does: every entry through the
/// extractor, an error of the archive itself as `Corrupt` after the last good entry;
/// gzip layers are decompressed.
pub fn extract(
    root: &Path,
    layers: &[Vec<u8>],
    layered: bool,
    limits: &Limits,
    walk: bool,
) -> Result<Report, ImageError> {
    let mut x = Extractor::new(root, limits)?;
    if walk {
        x = x.without_openat2();
    }
    for layer in layers {
        if layered {
            x.begin_layer();
        }
        let reader: Box<dyn Read> = if layer.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::GzDecoder::new(&layer[..]))
        } else {
            Box::new(&layer[..])
        };
        let mut archive = tar::Archive::new(reader);
        let mut entries = archive.entries().unwrap();
        let (mut last, mut offset) = (None, 0);
        loop {
            let mut entry = match entries.next() {
                None => break,
                Some(Ok(entry)) => entry,
                Some(Err(source)) => {
                    return Err(ImageError::Corrupt {
                        last,
                        offset,
                        source,
                    });
                }
            };
            offset = entry.raw_header_position();
            x.entry(&mut entry, layered)?;
            last = Some(String::from_utf8_lossy(&entry.path_bytes()).into_owned());
        }
    }
    x.finish()
}

/// Runs one evil case under both resolvers, each in a fresh fixture: builds the layers
/// (one unless `layered`), extracts them, checks that nothing outside `root/`
/// changed, and gives the result to `check`.
pub fn evil(
    name: &str,
    layered: bool,
    limits: Limits,
    build: impl Fn(&Fixture) -> Vec<Vec<u8>>,
    check: impl Fn(&Fixture, Result<Report, ImageError>),
) {
    if !is_root() {
        return;
    }
    for walk in [false, true] {
        let fx = Fixture::new(name);
        let layers = build(&fx);
        let before = fx.snapshot();
        let result = extract(&fx.root, &layers, layered, &limits, walk);
        assert_eq!(
            fx.snapshot(),
            before,
            "{name} (walk: {walk}): something outside the root changed"
        );
        check(&fx, result);
    }
}

/// One archive of `f`'s entries.
pub fn one(f: impl Fn(&Fixture, &mut Tar)) -> impl Fn(&Fixture) -> Vec<Vec<u8>> {
    move |fx| {
        let mut t = Tar::default();
        f(fx, &mut t);
        vec![t.finish()]
    }
}

/// Asserts the entry error: which entry, where, why; and that the message says so.
#[track_caller]
pub fn refused(result: Result<Report, ImageError>, path: &str, offset: u64, why: &str) {
    let err = result.expect_err("the archive was accepted");
    let text = err.to_string();
    assert!(
        matches!(&err, ImageError::Entry { path: p, offset: o, why: w } if p == path && *o == offset && w == why),
        "expected entry {path:?} at {offset}: {why}\n     got {err:?}"
    );
    assert!(
        text.contains(&format!("{path:?}")) && text.contains(why),
        "{text}"
    );
}

pub fn limits() -> Limits {
    Limits::default()
}

/// Archives of one layer each, from `builders`.
pub fn layers(builders: &[fn(&Fixture, &mut Tar)]) -> impl Fn(&Fixture) -> Vec<Vec<u8>> {
    move |fx| {
        builders
            .iter()
            .map(|f| {
                let mut t = Tar::default();
                f(fx, &mut t);
                t.finish()
            })
            .collect()
    }
}

/// An evil case that must be refused at one entry: `path` at `offset`, for `why`.
pub fn refuses(
    name: &str,
    layered: bool,
    build: impl Fn(&Fixture) -> Vec<Vec<u8>>,
    (path, offset): (&str, u64),
    why: &str,
) {
    evil(name, layered, limits(), build, |_, r| {
        refused(r, path, offset, why)
    });
}

/// Why a write through a link the archive made is refused.
pub fn through_link(parent: &str) -> String {
    format!("parent {parent} is a symbolic link; writes through links are refused")
}

pub const ESCAPES: &str = "path escapes the image root (..)";
pub const DUPLICATE: &str = "duplicate entry replaces an earlier one";
