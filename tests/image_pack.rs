//! `berth pack`: round trips through `berth::image::unpack` compared attribute by
//! attribute, reproducibility, owners, image defaults, and the tar it writes.
//!
//! Ownership needs root (as in CI); the tests that chown or mknod skip themselves,
//! saying so, when not run as root.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown, symlink};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::{TempDir, is_root, require_root};

use berth::image::layout::Platform;
use berth::image::pack::{Compression, PackOptions, pack};
use berth::image::{ImageDefaults, ImageError, Limits, unpack};
use berth::manifest::types::Digest;
use tar::EntryType;

const DEFAULTS_ENTRY: &str = ".berth-image.yaml";

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Deterministic, incompressible bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The round-trip tree: files of several sizes, nested and empty directories, both
/// kinds of symlink, a hardlinked pair, modes and (as root) owners.
fn build_tree(root: &Path) {
    for dir in [
        "etc/app/conf.d",
        "usr/bin",
        "usr/sbin",
        "var/empty",
        "root",
        "home/user",
        "tmp",
    ] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::write(root.join("empty"), "").unwrap();
    fs::write(root.join("etc/app/conf.d/x.conf"), "key: value\n").unwrap();
    fs::write(root.join("etc/block"), noise(512, 1)).unwrap();
    fs::write(root.join("etc/secret"), noise(1000, 2)).unwrap();
    fs::write(
        root.join("usr/bin/big"),
        noise((1 << 20) + (1 << 19) + 17, 3),
    )
    .unwrap();
    fs::write(root.join("usr/bin/tool"), "#!/bin/sh\necho tool\n").unwrap();
    fs::write(root.join("usr/bin/su"), "#!/bin/sh\nid\n").unwrap();
    fs::hard_link(root.join("usr/bin/tool"), root.join("usr/sbin/tool-hard")).unwrap();
    symlink("tool", root.join("usr/bin/alias")).unwrap();
    symlink("/usr/share/zoneinfo/UTC", root.join("etc/localtime")).unwrap();
    symlink("../usr/bin/tool", root.join("root/tool")).unwrap();
    let long = root.join(format!("etc/{}/{}", "d".repeat(90), "f".repeat(60)));
    fs::create_dir(long.parent().unwrap()).unwrap();
    fs::write(&long, "long name").unwrap();
    fs::write(root.join("home/user/notes"), "mine").unwrap();
    if is_root() {
        // Before chmod: chown clears setuid.
        chown(root.join("home/user"), Some(1000), Some(1000)).unwrap();
        chown(root.join("home/user/notes"), Some(1000), Some(1000)).unwrap();
        std::os::unix::fs::lchown(root.join("root/tool"), Some(1000), Some(1000)).unwrap();
        chown(root.join("usr/bin/su"), Some(0), Some(0)).unwrap();
    }
    set_mode(&root.join("etc/secret"), 0o600);
    set_mode(&root.join("usr/bin/tool"), 0o755);
    set_mode(&root.join("usr/bin/su"), 0o4755);
    set_mode(&root.join("usr"), 0o755);
    set_mode(&root.join("root"), 0o700);
    set_mode(&root.join("home/user"), 0o750);
    set_mode(&root.join("tmp"), 0o1777);
    set_mode(&root.join("var/empty"), 0o711);
}

/// What is compared of one path: everything lstat says except times and inode
/// numbers, plus the content's sha256 and the symlink target.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: Mode,
    uid: u32,
    gid: u32,
    size: Option<u64>,
    content: Option<Digest>,
    target: Option<PathBuf>,
}

/// Permission bits, shown in octal.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Mode(u32);

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "0o{:o}", self.0)
    }
}

struct Scan {
    nodes: BTreeMap<PathBuf, Node>,
    mtimes: BTreeMap<PathBuf, i64>,
    /// Paths sharing an inode, for every inode with more than one.
    links: BTreeSet<BTreeSet<PathBuf>>,
}

/// Every path under `root` (not `root` itself), without following symlinks.
fn scan(root: &Path) -> Scan {
    let mut scan = Scan {
        nodes: BTreeMap::new(),
        mtimes: BTreeMap::new(),
        links: BTreeSet::new(),
    };
    let mut inodes: BTreeMap<(u64, u64), BTreeSet<PathBuf>> = BTreeMap::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_owned();
            let meta = fs::symlink_metadata(&path).unwrap();
            let ft = meta.file_type();
            let kind = if ft.is_dir() {
                todo.push(path.clone());
                "dir"
            } else if ft.is_file() {
                inodes
                    .entry((meta.dev(), meta.ino()))
                    .or_default()
                    .insert(rel.clone());
                "file"
            } else if ft.is_symlink() {
                "symlink"
            } else {
                "other"
            };
            let node = Node {
                kind,
                mode: Mode(meta.mode() & 0o7777),
                uid: meta.uid(),
                gid: meta.gid(),
                size: (kind == "file").then_some(meta.len()),
                content: (kind == "file").then(|| berth::digest::sha256_file(&path).unwrap()),
                target: (kind == "symlink").then(|| fs::read_link(&path).unwrap()),
            };
            scan.mtimes.insert(rel.clone(), meta.mtime());
            scan.nodes.insert(rel, node);
        }
    }
    scan.links = inodes
        .into_values()
        .filter(|paths| paths.len() > 1)
        .collect();
    scan
}

/// Every difference between the packed tree and the unpacked one, one per line.
fn compare(packed: &Path, unpacked: &Path) -> Vec<String> {
    let (want, got) = (scan(packed), scan(unpacked));
    let mut problems = Vec::new();
    for (path, node) in &want.nodes {
        match got.nodes.get(path) {
            None => problems.push(format!("{}: missing", path.display())),
            Some(other) if other != node => problems.push(format!(
                "{}: packed {node:?}, unpacked {other:?}",
                path.display()
            )),
            Some(_) => {}
        }
    }
    for path in got.nodes.keys().filter(|p| !want.nodes.contains_key(*p)) {
        problems.push(format!("{}: not in the packed tree", path.display()));
    }
    for (path, mtime) in got.mtimes.iter().filter(|(_, t)| **t != 0) {
        problems.push(format!("{}: mtime {mtime}, not 0", path.display()));
    }
    if want.links != got.links {
        problems.push(format!(
            "hardlinks: packed {:?}, unpacked {:?}",
            want.links, got.links
        ));
    }
    problems
}

fn unpack_into(
    image: &Path,
    digest: &Digest,
    scratch: &TempDir,
) -> (PathBuf, berth::image::Unpacked) {
    let rootfs = scratch.mkdir("unpacked");
    let spool = scratch.mkdir("spool");
    let limits = Limits {
        allow_setuid: true,
        ..Limits::default()
    };
    let unpacked = unpack(
        image,
        digest,
        &rootfs,
        &spool,
        &limits,
        &Platform::current(),
    )
    .unwrap_or_else(|e| panic!("unpack {}: {e}", image.display()));
    (rootfs, unpacked)
}

/// The tar inside an image of any compression.
fn open_tar(image: &Path) -> tar::Archive<Box<dyn Read>> {
    let mut file = BufReader::new(File::open(image).unwrap());
    let magic = file.fill_buf().unwrap().to_vec();
    let reader: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(file))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(ruzstd::decoding::StreamingDecoder::new(file).unwrap())
    } else {
        Box::new(file)
    };
    tar::Archive::new(reader)
}

/// One tar entry as `pack` wrote it.
#[derive(Debug)]
struct Listed {
    name: String,
    kind: EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: Option<String>,
    device: Option<(u32, u32)>,
}

fn list(image: &Path) -> Vec<Listed> {
    let mut archive = open_tar(image);
    let entries = archive.entries().unwrap();
    entries
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            assert_eq!(h.username_bytes(), Some(&b""[..]), "{name}: user name");
            assert_eq!(h.groupname_bytes(), Some(&b""[..]), "{name}: group name");
            let device = match h.entry_type() {
                EntryType::Char | EntryType::Block => Some((
                    h.device_major().unwrap().unwrap(),
                    h.device_minor().unwrap().unwrap(),
                )),
                _ => None,
            };
            Listed {
                kind: h.entry_type(),
                mode: h.mode().unwrap(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                mtime: h.mtime().unwrap(),
                link: e
                    .link_name_bytes()
                    .map(|l| String::from_utf8(l.into_owned()).unwrap()),
                device,
                name,
            }
        })
        .collect()
}

fn names(image: &Path) -> Vec<String> {
    list(image).into_iter().map(|e| e.name).collect()
}

fn opts(compression: Compression) -> PackOptions {
    PackOptions {
        compression,
        ..PackOptions::default()
    }
}

#[test]
fn round_trip_keeps_every_attribute() {
    require_root("building a tree with owners 1000:1000 needs root");
    let scratch = TempDir::new("pack");
    let tree = scratch.mkdir("tree");
    build_tree(&tree);
    let image = scratch.0.join("image.tar");
    let digest = pack(
        &tree,
        &image,
        &PackOptions {
            keep_owners: true,
            ..PackOptions::default()
        },
    )
    .unwrap();
    assert_eq!(digest, berth::digest::sha256_file(&image).unwrap());
    let (rootfs, unpacked) = unpack_into(&image, &digest, &scratch);
    assert_eq!(unpacked.defaults, ImageDefaults::default());
    let problems = compare(&tree, &rootfs);
    assert!(
        problems.is_empty(),
        "the unpacked tree differs:\n{}",
        problems.join("\n")
    );
    // The comparison itself sees what it should.
    let packed = scan(&tree);
    assert_eq!(packed.nodes[Path::new("home/user/notes")].uid, 1000);
    assert_eq!(packed.nodes[Path::new("usr/bin/su")].mode, Mode(0o4755));
    assert_eq!(packed.links.len(), 1);
}

/// The same comparison with the tar crate's extractor, so that what pack writes is
/// checked independently of berth's own extractor.
#[test]
fn round_trip_through_a_reference_extractor() {
    require_root("building a tree with owners 1000:1000 needs root");
    let scratch = TempDir::new("pack");
    let tree = scratch.mkdir("tree");
    build_tree(&tree);
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let image = scratch.0.join(format!("image-{compression:?}"));
        pack(
            &tree,
            &image,
            &PackOptions {
                compression,
                keep_owners: true,
                ..PackOptions::default()
            },
        )
        .unwrap();
        let rootfs = scratch.mkdir(&format!("unpacked-{compression:?}"));
        let mut archive = open_tar(&image);
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.set_preserve_mtime(true);
        archive.unpack(&rootfs).unwrap();
        // tar-rs makes mtime 0 into 1, leaves symlinks' alone and sets a directory's
        // before filling it: times are for berth's extractor to get right.
        reset_times(&rootfs);
        let problems = compare(&tree, &rootfs);
        assert!(
            problems.is_empty(),
            "{compression:?}: the unpacked tree differs:\n{}",
            problems.join("\n")
        );
    }
}

/// Sets the mtime of everything under `root` to 0.
fn reset_times(root: &Path) {
    use nix::sys::stat::{UtimensatFlags, utimensat};
    use nix::sys::time::TimeSpec;
    let zero = TimeSpec::new(0, 0);
    for rel in scan(root).nodes.into_keys() {
        let path = root.join(rel);
        utimensat(
            nix::fcntl::AT_FDCWD,
            &path,
            &zero,
            &zero,
            UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
    }
}

#[test]
fn the_same_tree_gives_the_same_bytes() {
    let scratch = TempDir::new("pack");
    let first = scratch.mkdir("first");
    let second = scratch.mkdir("second");
    build_tree(&first);
    build_tree(&second);
    // Other inode numbers and creation order, other mtimes.
    fs::remove_file(second.join("empty")).unwrap();
    fs::write(second.join("empty"), "").unwrap();
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    for path in ["usr/bin/big", "etc/secret", "var/empty", "usr"] {
        File::open(second.join(path))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let a = scratch.0.join(format!("a-{compression:?}"));
        let b = scratch.0.join(format!("b-{compression:?}"));
        let c = scratch.0.join(format!("c-{compression:?}"));
        let digest = pack(&first, &a, &opts(compression)).unwrap();
        assert_eq!(
            pack(&first, &b, &opts(compression)).unwrap(),
            digest,
            "{compression:?} twice"
        );
        assert_eq!(
            pack(&second, &c, &opts(compression)).unwrap(),
            digest,
            "{compression:?} other tree"
        );
        let bytes = fs::read(&a).unwrap();
        assert_eq!(fs::read(&b).unwrap(), bytes, "{compression:?}");
        assert_eq!(fs::read(&c).unwrap(), bytes, "{compression:?}");
        assert_eq!(digest, berth::digest::sha256_file(&a).unwrap());
        // Touching a file does not change the image.
        File::open(first.join("etc/block"))
            .unwrap()
            .set_modified(SystemTime::now())
            .unwrap();
        assert_eq!(
            pack(&first, &a, &opts(compression)).unwrap(),
            digest,
            "{compression:?} touched"
        );
    }
}

#[test]
fn compressed_images_hold_the_same_tar() {
    let scratch = TempDir::new("pack");
    let tree = scratch.mkdir("tree");
    build_tree(&tree);
    let plain = scratch.0.join("image.tar");
    pack(&tree, &plain, &PackOptions::default()).unwrap();
    let plain = fs::read(plain).unwrap();
    for (compression, magic) in [
        (Compression::Gzip, &[0x1f, 0x8b][..]),
        (Compression::Zstd, &[0x28, 0xb5, 0x2f, 0xfd]),
    ] {
        let image = scratch.0.join(format!("image-{compression:?}"));
        let digest = pack(&tree, &image, &opts(compression)).unwrap();
        assert_eq!(digest, berth::digest::sha256_file(&image).unwrap());
        assert!(
            fs::read(&image).unwrap().starts_with(magic),
            "{compression:?}"
        );
        let mut tar = Vec::new();
        open_tar(&image).into_inner().read_to_end(&mut tar).unwrap();
        assert_eq!(tar, plain, "{compression:?}");
    }
}

#[test]
fn without_keep_owners_everything_is_root_owned() {
    let scratch = TempDir::new("pack");
    let tree = scratch.mkdir("tree");
    build_tree(&tree);
    let image = scratch.0.join("image.tar.zst");
    pack(&tree, &image, &opts(Compression::Zstd)).unwrap();
    let entries = list(&image);
    assert!(entries.len() > 20, "{entries:?}");
    for e in &entries {
        assert_eq!((e.uid, e.gid, e.mtime), (0, 0, 0), "{}", e.name);
    }
    if is_root() {
        let kept = scratch.0.join("kept.tar");
        pack(
            &tree,
            &kept,
            &PackOptions {
                keep_owners: true,
                ..PackOptions::default()
            },
        )
        .unwrap();
        let notes = list(&kept)
            .into_iter()
            .find(|e| e.name == "home/user/notes")
            .unwrap();
        assert_eq!((notes.uid, notes.gid), (1000, 1000));
    }
}

#[test]
fn defaults_round_trip() {
    let scratch = TempDir::new("pack");
    let tree = scratch.mkdir("tree");
    fs::write(tree.join("app"), "#!/bin/sh\n").unwrap();
    let defaults = ImageDefaults {
        entrypoint: vec!["/app".into(), "--serve".into()],
        cmd: vec!["--port".into(), "8080".into()],
        env: vec!["A=1".into(), "B=two words".into()],
        workdir: Some("/data".into()),
        user: Some("1000:1000".into()),
    };
    let image = scratch.0.join("image.tar.gz");
    let options = PackOptions {
        compression: Compression::Gzip,
        defaults: defaults.clone(),
        ..PackOptions::default()
    };
    let digest = pack(&tree, &image, &options).unwrap();
    let entries = list(&image);
    assert_eq!(entries[0].name, DEFAULTS_ENTRY, "the defaults come first");
    assert_eq!(
        (entries[0].kind, entries[0].mode, entries[0].mtime),
        (EntryType::Regular, 0o644, 0)
    );
    // What unpack reads, parsed as unpack parses it.
    let mut archive = open_tar(&image);
    let mut first = archive.entries().unwrap().next().unwrap().unwrap();
    let mut yaml = String::new();
    first.read_to_string(&mut yaml).unwrap();
    let parsed: ImageDefaults =
        berth::manifest::parse_yaml(&yaml).unwrap_or_else(|e| panic!("{e:?} in {yaml}"));
    assert_eq!(parsed, defaults);
    drop(first);
    require_root("extraction sets owners, which needs root");
    let (rootfs, unpacked) = unpack_into(&image, &digest, &scratch);
    assert_eq!(unpacked.defaults, defaults);
    assert!(
        !rootfs.join(DEFAULTS_ENTRY).exists(),
        "the defaults entry is read, not extracted"
    );
    assert!(rootfs.join("app").exists());
}

#[test]
fn defaults_may_not_clash_with_a_file_of_the_rootfs() {
    let scratch = TempDir::new("pack");
    let tree = scratch.mkdir("tree");
    fs::write(tree.join(DEFAULTS_ENTRY), "cmd: [x]\n").unwrap();
    let options = PackOptions {
        defaults: ImageDefaults {
            entrypoint: vec!["/bin/app".into()],
            ..ImageDefaults::default()
        },
        ..PackOptions::default()
    };
    let image = scratch.0.join("image.tar");
    let err = pack(&tree, &image, &options).unwrap_err();
    let ImageError::Io { action, path, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*action, "store image defaults over");
    assert_eq!(path, &fs::canonicalize(&tree).unwrap().join(DEFAULTS_ENTRY));
    assert_eq!(
        fs::read_dir(&scratch.0).unwrap().count(),
        1,
        "no image, no temporary file"
    );
}

#[test]
fn a_missing_directory_is_an_io_error_naming_it() {
    let scratch = TempDir::new("pack");
    let missing = scratch.0.join("no-such-rootfs");
    let out = scratch.mkdir("out");
    let err = pack(&missing, &out.join("image.tar"), &PackOptions::default()).unwrap_err();
    let ImageError::Io {
        action,
        path,
        source,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((action.as_ref(), path), ("read directory", &missing));
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read directory {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
    assert_eq!(
        fs::read_dir(&out).unwrap().count(),
        0,
        "no image, no temporary file"
    );

    // A file is not a directory either.
    let file = scratch.0.join("file");
    fs::write(&file, "").unwrap();
    let err = pack(&file, &out.join("image.tar"), &PackOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read directory {}: Not a directory (os error 20)",
            file.display()
        )
    );
    assert_eq!(fs::read_dir(&out).unwrap().count(), 0);
}

#[test]
fn an_unreadable_file_leaves_no_temporary_file() {
    // Root reads files of mode 000, so `berth pack` runs as nobody (65534) here.
    require_root("running berth pack as another user");
    let scratch = TempDir::new("pack");
    let tree = scratch.mkdir("tree");
    fs::write(tree.join("locked"), "x").unwrap();
    set_mode(&tree.join("locked"), 0);
    let out = scratch.mkdir("out");
    std::os::unix::fs::chown(&out, Some(65534), Some(65534)).unwrap();
    for dir in [&scratch.0, &tree] {
        set_mode(dir, 0o755);
    }
    let image = out.join("image.tar");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("pack")
        .arg(&tree)
        .arg("-o")
        .arg(&image)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with("berth pack: cannot open "), "{stdout}");
    assert!(stdout.contains("Permission denied"), "{stdout}");
    assert_eq!(
        fs::read_dir(&out).unwrap().count(),
        0,
        "no temporary file left"
    );
}

#[test]
fn entries_are_sorted_depth_first_with_fixed_metadata() {
    let scratch = TempDir::new("pack");
    let root = scratch.mkdir("tree");
    fs::create_dir(root.join("b")).unwrap();
    fs::create_dir(root.join("a")).unwrap();
    fs::write(root.join("a/z"), "z").unwrap();
    fs::write(root.join("a/y"), "y").unwrap();
    fs::write(root.join("a-b"), "ab").unwrap();
    fs::write(root.join("B"), "upper case sorts first").unwrap();
    symlink("a//./y", root.join("c")).unwrap();
    fs::hard_link(root.join("a/y"), root.join("d")).unwrap();
    set_mode(&root.join("a/z"), 0o2751);
    let image = scratch.0.join("image.tar");
    pack(&root, &image, &PackOptions::default()).unwrap();
    let entries = list(&image);
    let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["B", "a/", "a/y", "a/z", "a-b", "b/", "c", "d"]);
    for e in &entries {
        assert_eq!((e.uid, e.gid, e.mtime), (0, 0, 0), "{}", e.name);
    }
    assert_eq!(entries[1].kind, EntryType::Directory);
    assert_eq!(entries[3].mode, 0o2751);
    assert_eq!(entries[6].kind, EntryType::Symlink);
    assert_eq!(
        entries[6].link.as_deref(),
        Some("a//./y"),
        "symlink target kept byte for byte"
    );
    assert_eq!(entries[7].kind, EntryType::Link);
    assert_eq!(entries[7].link.as_deref(), Some("a/y"));
}

#[test]
fn long_names_and_long_targets_survive() {
    let scratch = TempDir::new("pack");
    let root = scratch.mkdir("tree");
    let long_dir = "d".repeat(120);
    let long_file = format!("{}/{}", long_dir, "f".repeat(200));
    fs::create_dir(root.join(&long_dir)).unwrap();
    fs::write(root.join(&long_file), "x").unwrap();
    let target = format!("../{}", "t/".repeat(100));
    symlink(&target, root.join("link")).unwrap();
    let image = scratch.0.join("image.tar");
    pack(&root, &image, &PackOptions::default()).unwrap();
    let entries = list(&image);
    assert_eq!(entries[0].name, format!("{long_dir}/"));
    assert_eq!(entries[1].name, long_file);
    assert_eq!(entries[2].name, "link");
    assert_eq!(entries[2].link.as_deref(), Some(target.as_str()));
}

#[test]
fn the_image_inside_the_rootfs_is_not_packed() {
    let scratch = TempDir::new("pack");
    let root = scratch.mkdir("tree");
    fs::write(root.join("a"), "a").unwrap();
    let image = root.join("image.tar");
    let first = pack(&root, &image, &PackOptions::default()).unwrap();
    let again = pack(&root, &image, &PackOptions::default()).unwrap();
    assert_eq!(first, again);
    assert_eq!(names(&image), ["a"]);
    // Also through a path that is not canonical.
    let odd = scratch.0.join("tree/../tree/image.tar");
    assert_eq!(pack(&root, &odd, &PackOptions::default()).unwrap(), first);
}

#[test]
fn fifos_are_kept_and_sockets_skipped() {
    let scratch = TempDir::new("pack");
    let root = scratch.mkdir("tree");
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    set_mode(&root.join("fifo"), 0o640);
    let _listener = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
    let image = scratch.0.join("image.tar");
    pack(&root, &image, &PackOptions::default()).unwrap();
    let entries = list(&image);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (entries[0].name.as_str(), entries[0].kind, entries[0].mode),
        ("fifo", EntryType::Fifo, 0o640)
    );
}

#[test]
fn devices_keep_their_numbers() {
    require_root("mknod needs root");
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    let scratch = TempDir::new("pack");
    let root = scratch.mkdir("tree");
    mknod(
        &root.join("null"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        makedev(1, 3),
    )
    .unwrap();
    mknod(
        &root.join("loop"),
        SFlag::S_IFBLK,
        Mode::from_bits_truncate(0o660),
        makedev(7, 300),
    )
    .unwrap();
    let image = scratch.0.join("image.tar");
    pack(&root, &image, &PackOptions::default()).unwrap();
    let entries = list(&image);
    assert_eq!(
        (entries[0].name.as_str(), entries[0].kind, entries[0].device),
        ("loop", EntryType::Block, Some((7, 300)))
    );
    assert_eq!(
        (entries[1].name.as_str(), entries[1].kind, entries[1].device),
        ("null", EntryType::Char, Some((1, 3)))
    );
}
