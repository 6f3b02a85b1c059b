//! Entry handling, with archives built here and owned by the running user (no root
//! needed). The evil-archive corpus, as root, is `tests/image_evil.rs`.

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::*;
use crate::manifest::units::Size;

/// A temporary directory removed on drop, also when the test fails.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("berth-extract-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(crate) fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Builds archives of entries owned by the running user.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Tar {
        Tar(tar::Builder::new(Vec::new()))
    }

    fn header(kind: EntryType, mode: u32) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(nix::unistd::geteuid().as_raw().into());
        h.set_gid(nix::unistd::getegid().as_raw().into());
        h.set_mtime(1_600_000_000);
        h.set_size(0);
        h
    }

    fn file(mut self, path: &str, mode: u32, body: &[u8]) -> Tar {
        let mut h = Tar::header(EntryType::Regular, mode);
        h.set_size(body.len() as u64);
        self.0.append_data(&mut h, path, body).unwrap();
        self
    }

    fn dir(mut self, path: &str, mode: u32) -> Tar {
        let mut h = Tar::header(EntryType::Directory, mode);
        self.0.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    fn link(mut self, kind: EntryType, path: &str, target: &str) -> Tar {
        let mut h = Tar::header(kind, 0o777);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    fn node(mut self, kind: EntryType, path: &str) -> Tar {
        let mut h = Tar::header(kind, 0o644);
        self.0.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn limits() -> Limits {
    Limits::default()
}

/// Applies `layers` (one archive each) to `root`; `layered` as for an image's layers.
fn apply(
    root: &Path,
    layers: &[Vec<u8>],
    layered: bool,
    limits: Limits,
    walk: bool,
) -> Result<Report, ImageError> {
    let mut x = Extractor::new(root, &limits)?;
    if walk {
        x = x.without_openat2();
    }
    for layer in layers {
        x.begin_layer();
        let mut archive = tar::Archive::new(&layer[..]);
        for entry in archive.entries().unwrap() {
            x.entry(&mut entry.unwrap(), layered)?;
        }
    }
    x.finish()
}

fn extract(root: &Path, archive: Vec<u8>) -> Result<Report, ImageError> {
    apply(root, &[archive], false, limits(), false)
}

/// `Entry { path, why }` of an error, for comparison.
fn refused(err: ImageError) -> (String, String) {
    match err {
        ImageError::Entry { path, why, .. } => (path, why),
        other => panic!("expected an entry error, got {other:?}"),
    }
}

fn pair(path: &str, why: &str) -> (String, String) {
    (path.to_owned(), why.to_owned())
}

#[test]
fn a_plain_archive_extracts_exactly() {
    let t = TempDir::new("plain");
    let archive = Tar::new()
        .dir("./", 0o755)
        .dir("./etc/", 0o750)
        .file("./etc/hostname", 0o640, b"board\n")
        .dir("./empty/", 0o700)
        .file("./bin/tool", 0o755, b"#!/bin/sh\n")
        .link(EntryType::Symlink, "./bin/sh", "busybox")
        .link(EntryType::Link, "./bin/tool2", "./bin/tool")
        .bytes();
    let report = extract(&t.0, archive).unwrap();
    assert_eq!(
        report,
        Report {
            entries: 7,
            bytes: 16,
            skipped_devices: 0,
            cleared_setuid: 0
        }
    );
    let meta = |p: &str| fs::symlink_metadata(t.join(p)).unwrap();
    assert_eq!(fs::read(t.join("etc/hostname")).unwrap(), b"board\n");
    assert_eq!(meta("etc/hostname").mode() & 0o7777, 0o640);
    assert_eq!(meta("etc").mode() & 0o7777, 0o750);
    assert_eq!(meta("empty").mode() & 0o7777, 0o700);
    // A parent without an entry of its own is made.
    assert!(meta("bin").is_dir());
    assert_eq!(
        fs::read_link(t.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(meta("bin/tool2").ino(), meta("bin/tool").ino());
    for p in ["etc", "etc/hostname", "empty", "bin/tool", "bin/sh"] {
        assert_eq!(meta(p).mtime(), 1_600_000_000, "{p}");
    }
    assert_eq!(
        meta("").mtime(),
        1_600_000_000,
        "the root's time, set after its entries"
    );
}

#[test]
fn escapes_are_refused_with_the_entry_named() {
    let t = TempDir::new("escapes");
    // tar::Builder refuses to write these names; a GNU long name is not checked.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Tar::header(EntryType::Regular, 0o644);
    b.append_data(&mut h, format!("{}/../../x", "a".repeat(120)), &[][..])
        .unwrap();
    let err = extract(&t.0, b.into_inner().unwrap()).unwrap_err();
    assert_eq!(refused(err).1, "path escapes the image root (..)");
    assert_eq!(fs::read_dir(&t.0).unwrap().count(), 0);
}

#[test]
fn writes_through_an_archive_link_are_refused() {
    for walk in [false, true] {
        let t = TempDir::new(&format!("through-link-{walk}"));
        let root = t.join("root");
        fs::create_dir(&root).unwrap();
        let outside = t.join("outside");
        fs::create_dir(&outside).unwrap();
        let archive = Tar::new()
            .link(EntryType::Symlink, "etc", outside.to_str().unwrap())
            .file("etc/pwned", 0o644, b"x")
            .bytes();
        let err = apply(&root, &[archive], false, limits(), walk).unwrap_err();
        assert_eq!(
            refused(err),
            pair(
                "etc/pwned",
                "parent etc is a symbolic link; writes through links are refused"
            )
        );
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    }
}

#[test]
fn duplicates_are_refused_but_directories_may_repeat() {
    let t = TempDir::new("dups");
    let archive = Tar::new()
        .file("a", 0o644, b"1")
        .file("a", 0o644, b"2")
        .bytes();
    let err = extract(&t.0, archive).unwrap_err();
    assert_eq!(
        refused(err),
        pair("a", "duplicate entry replaces an earlier one")
    );
    assert_eq!(fs::read(t.join("a")).unwrap(), b"1");

    let t = TempDir::new("dups-link");
    let archive = Tar::new()
        .link(EntryType::Symlink, "l", "/etc/passwd")
        .file("l", 0o644, b"x")
        .bytes();
    assert_eq!(
        refused(extract(&t.0, archive).unwrap_err()),
        pair("l", "duplicate entry replaces an earlier one")
    );

    let t = TempDir::new("dups-dir");
    let archive = Tar::new()
        .dir("d", 0o755)
        .file("d/f", 0o644, b"")
        .dir("d/", 0o711)
        .bytes();
    extract(&t.0, archive).unwrap();
    assert_eq!(
        fs::symlink_metadata(t.join("d")).unwrap().mode() & 0o7777,
        0o711
    );
    assert!(t.join("d/f").exists());
}

#[test]
fn hardlink_targets_must_be_plain_files_inside() {
    let cases = [
        (
            "/etc/passwd",
            "hardlink target \"/etc/passwd\" is absolute; it would escape the image root",
        ),
        (
            "../outside",
            "hardlink target \"../outside\" escapes the image root (..)",
        ),
        ("sym", "hardlink target \"sym\" is a symbolic link"),
        ("dir", "hardlink target \"dir\" is a directory"),
        ("missing", "hardlink target \"missing\" does not exist"),
        (
            "sym/x",
            "hardlink target \"sym/x\" is unusable: parent sym is a symbolic link; writes through links are refused",
        ),
    ];
    for (target, why) in cases {
        let t = TempDir::new("hardlinks");
        let mut archive = Tar::new()
            .dir("dir", 0o755)
            .link(EntryType::Symlink, "sym", "dir")
            .bytes();
        // Replace the end-of-archive blocks by a hand-made hardlink header.
        archive.truncate(archive.len() - 1024);
        let mut h = Tar::header(EntryType::Link, 0o644);
        h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        h.set_path("h").unwrap();
        h.set_cksum();
        archive.extend_from_slice(h.as_bytes());
        archive.extend_from_slice(&[0; 1024]);
        assert_eq!(
            refused(extract(&t.0, archive).unwrap_err()),
            pair("h", why),
            "{target}"
        );
    }
}

#[test]
fn limits_are_enforced_before_writing() {
    let t = TempDir::new("limits");
    let small = Limits {
        max_entries: 2,
        ..limits()
    };
    let archive = Tar::new()
        .dir("a", 0o755)
        .dir("b", 0o755)
        .dir("c", 0o755)
        .bytes();
    let err = apply(&t.0, &[archive], false, small, false).unwrap_err();
    assert!(
        matches!(err, ImageError::TooManyEntries { limit: 2 }),
        "{err:?}"
    );

    let t = TempDir::new("limits-size");
    let small = Limits {
        max_size: Size::from_bytes(1000),
        ..limits()
    };
    let archive = Tar::new()
        .file("a", 0o644, &[1; 600])
        .file("b", 0o644, &[1; 600])
        .bytes();
    let err = apply(&t.0, &[archive], false, small, false).unwrap_err();
    assert!(
        matches!(err, ImageError::TooLarge { limit } if limit.bytes() == 1000),
        "{err:?}"
    );
    assert!(!t.join("b").exists());
}

#[test]
fn setuid_is_cleared_and_devices_are_skipped_unless_allowed() {
    let t = TempDir::new("setuid");
    let archive = || {
        Tar::new()
            .file("su", 0o4755, b"x")
            .file("sg", 0o2711, b"x")
            .dir("shared", 0o2775)
            .node(EntryType::Fifo, "fifo")
            .bytes()
    };
    let report = extract(&t.0, archive()).unwrap();
    assert_eq!(
        (
            report.cleared_setuid,
            report.skipped_devices,
            report.entries
        ),
        (2, 1, 3)
    );
    let mode = |p: &str| fs::symlink_metadata(t.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(
        (mode("su"), mode("sg"), mode("shared")),
        (0o755, 0o711, 0o2775)
    );
    assert!(!t.join("fifo").exists());

    let t = TempDir::new("setuid-allowed");
    let allowed = Limits {
        allow_setuid: true,
        allow_devices: true,
        ..limits()
    };
    let report = apply(&t.0, &[archive()], false, allowed, false).unwrap();
    let mode = |p: &str| fs::symlink_metadata(t.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(
        (
            report.cleared_setuid,
            report.skipped_devices,
            report.entries
        ),
        (0, 0, 4)
    );
    assert_eq!(mode("su"), 0o4755);
    use std::os::unix::fs::FileTypeExt as _;
    assert!(
        fs::symlink_metadata(t.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(mode("fifo"), 0o644);
}

#[test]
fn layers_replace_and_whiteouts_delete() {
    for walk in [false, true] {
        let t = TempDir::new(&format!("layers-{walk}"));
        let base = Tar::new()
            .dir("etc", 0o755)
            .file("etc/a", 0o644, b"a1")
            .file("etc/gone", 0o644, b"")
            .dir("opq", 0o755)
            .file("opq/old", 0o644, b"")
            .dir("opq/sub", 0o755)
            .file("opq/sub/old", 0o644, b"")
            .dir("tree/x/y", 0o755)
            .link(EntryType::Symlink, "was-link", "/etc")
            .bytes();
        let top = Tar::new()
            .file("etc/a", 0o600, b"a2")
            .file("etc/.wh.gone", 0o644, b"")
            .file("opq/new", 0o644, b"")
            .dir("opq/sub", 0o700)
            .file("opq/.wh..wh..opq", 0o644, b"")
            .file("tree", 0o644, b"now a file")
            .dir("was-link", 0o755)
            .file("was-link/f", 0o644, b"")
            .file(".wh..wh.plnk/1.2", 0o644, b"")
            .file(".wh.never-there", 0o644, b"")
            .bytes();
        apply(&t.0, &[base, top], true, limits(), walk).unwrap();
        assert_eq!(fs::read(t.join("etc/a")).unwrap(), b"a2");
        assert!(!t.join("etc/gone").exists());
        let mut opq: Vec<_> = fs::read_dir(t.join("opq"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        opq.sort();
        assert_eq!(opq, ["new", "sub"]);
        assert_eq!(fs::read_dir(t.join("opq/sub")).unwrap().count(), 0);
        assert_eq!(fs::read(t.join("tree")).unwrap(), b"now a file");
        assert!(fs::symlink_metadata(t.join("was-link")).unwrap().is_dir());
        assert!(t.join("was-link/f").exists());
        let names: Vec<_> = fs::read_dir(&t.0)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| !n.to_string_lossy().starts_with(".wh.")),
            "{names:?}"
        );
    }
}

#[test]
fn within_a_layer_duplicates_are_refused() {
    let t = TempDir::new("layer-dups");
    let layer = Tar::new()
        .file("a", 0o644, b"1")
        .link(EntryType::Symlink, "a", "/x")
        .bytes();
    let err = apply(&t.0, &[layer], true, limits(), false).unwrap_err();
    assert_eq!(
        refused(err),
        pair("a", "duplicate entry replaces an earlier one")
    );
}

#[test]
fn whiteouts_keep_their_own_layers_files() {
    let t = TempDir::new("layer-own");
    let base = Tar::new().file("f", 0o644, b"1").bytes();
    let top = Tar::new()
        .file("g", 0o644, b"2")
        .file(".wh.g", 0o644, b"")
        .file(".wh.f", 0o644, b"")
        .bytes();
    apply(&t.0, &[base, top], true, limits(), false).unwrap();
    assert!(!t.join("f").exists());
    assert!(t.join("g").exists());
}

#[test]
fn directory_times_survive_later_entries() {
    let t = TempDir::new("dir-times");
    let archive = Tar::new()
        .dir("d", 0o755)
        .file("d/1", 0o644, b"")
        .file("d/2", 0o644, b"")
        .bytes();
    extract(&t.0, archive).unwrap();
    assert_eq!(fs::metadata(t.join("d")).unwrap().mtime(), 1_600_000_000);
}

#[test]
fn a_missing_root_is_an_io_error() {
    let t = TempDir::new("no-root");
    let err = Extractor::new(&t.join("absent"), &limits()).err().unwrap();
    assert!(
        err.to_string().starts_with("cannot open the image root "),
        "{err}"
    );
}

#[test]
fn the_root_entry_sets_the_roots_mode_but_cannot_be_a_file() {
    let t = TempDir::new("root-entry");
    let root = t.join("root");
    fs::create_dir(&root).unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
    extract(&root, Tar::new().dir(".", 0o751).bytes()).unwrap();
    assert_eq!(fs::metadata(&root).unwrap().mode() & 0o7777, 0o751);
    let mut h = Tar::header(EntryType::Regular, 0o644);
    h.set_path(".").unwrap();
    h.set_cksum();
    let mut archive = h.as_bytes().to_vec();
    archive.extend_from_slice(&[0; 1024]);
    let err = extract(&root, archive).unwrap_err();
    assert_eq!(
        refused(err),
        pair(".", "entry names the image root but is not a directory")
    );
}

#[test]
fn a_replaced_directory_is_not_used_from_the_cache() {
    let t = TempDir::new("layer-stale");
    let base = Tar::new().file("a/b/f1", 0o644, b"").bytes();
    // The parent of the last entry of the first layer is cached.
    let top = Tar::new()
        .link(EntryType::Symlink, "a", "/tmp")
        .file("a/b/f3", 0o644, b"")
        .bytes();
    let err = apply(&t.0, &[base, top], true, limits(), false).unwrap_err();
    let why = "parent a is a symbolic link; writes through links are refused";
    assert_eq!(refused(err), pair("a/b/f3", why));
}
