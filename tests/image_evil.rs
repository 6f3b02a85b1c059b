//! The evil-archive corpus, as root: every archive is built here, in memory, and
//! extracted with `Extractor` the way `berth unpack` drives it. Each case asserts the
//! exact error (variant, entry, offset, reason) and that nothing outside the target
//! changed: every fixture has `root/` (the target) beside `outside/` (a canary tree),
//! and `/etc/passwd` is compared too. Every case runs twice, with `openat2` and with
//! the per-component walk used on kernels without it. Then the positive cases: a
//! normal archive extracts exactly, and layers with whiteouts and opaque directories
//! give the expected tree.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

#[path = "image_evil/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};

use berth::image::extract::Report;
use berth::image::{ImageError, Limits};
use berth::manifest::units::Size;
use tar::EntryType;

use support::*;

// ---------------------------------------------------------------- escapes

#[test]
fn path_traversal() {
    let build = one(|_, t| {
        t.file("ok", 0o644, b"fine");
        t.raw(header(b"../../etc/x", b'0', 4, b""), b"evil");
    });
    refuses("traversal", false, build, ("../../etc/x", 1024), ESCAPES);
}

#[test]
fn path_traversal_into_the_canary() {
    let name = "sub/../../outside/canary.txt";
    let build = one(|_, t| {
        t.raw(header(name.as_bytes(), b'0', 4, b""), b"evil");
    });
    refuses("traversal-canary", false, build, (name, 0), ESCAPES);
}

#[test]
fn absolute_path() {
    let build = one(|_, t| {
        t.raw(header(b"/etc/x", b'0', 4, b""), b"evil");
    });
    let why = "path is absolute; it would escape the image root";
    refuses("absolute", false, build, ("/etc/x", 0), why);
}

#[test]
fn symlink_to_outside_then_a_file_through_it() {
    let build = one(|fx, t| {
        t.symlink("link", fx.outside_str());
        t.file("link/pwned", 0o644, b"evil");
    });
    let why = through_link("link");
    refuses("link-outside", false, build, ("link/pwned", 512), &why);
}

#[test]
fn symlink_to_outside_then_a_directory_through_it() {
    let build = one(|fx, t| {
        t.symlink("link", fx.outside_str());
        t.dir("link/sub/new/", 0o755);
    });
    let why = through_link("link");
    refuses(
        "link-outside-dir",
        false,
        build,
        ("link/sub/new/", 512),
        &why,
    );
}

#[test]
fn symlink_to_outside_then_a_symlink_through_it() {
    let build = one(|fx, t| {
        t.symlink("link", fx.outside_str());
        t.symlink("link/alias2", "canary.txt");
    });
    let why = through_link("link");
    refuses(
        "link-outside-link",
        false,
        build,
        ("link/alias2", 512),
        &why,
    );
}

#[test]
fn symlinked_parent_directory() {
    let build = one(|_, t| {
        t.symlink("dir", "..");
        t.file("dir/x", 0o644, b"evil");
    });
    refuses(
        "link-parent",
        false,
        build,
        ("dir/x", 512),
        &through_link("dir"),
    );
}

#[test]
fn relative_symlink_escaping_by_dotdot() {
    let build = one(|_, t| {
        t.dir("a/b/", 0o755);
        t.symlink("a/b/esc", "../../../outside");
        t.file("a/b/esc/canary.txt", 0o644, b"evil");
    });
    let why = through_link("a/b/esc");
    refuses(
        "link-relative",
        false,
        build,
        ("a/b/esc/canary.txt", 1024),
        &why,
    );
}

#[test]
fn symlink_loop_as_a_parent() {
    let build = one(|_, t| {
        t.symlink("loop", "loop");
        t.file("loop/x", 0o644, b"evil");
    });
    refuses(
        "link-loop",
        false,
        build,
        ("loop/x", 512),
        &through_link("loop"),
    );
}

// ---------------------------------------------------------------- hardlinks

#[test]
fn hardlink_to_etc_passwd() {
    let build = one(|_, t| {
        t.hardlink("passwd", "/etc/passwd");
    });
    let why = "hardlink target \"/etc/passwd\" is absolute; it would escape the image root";
    refuses("hardlink-passwd", false, build, ("passwd", 0), why);
}

#[test]
fn hardlink_to_dotdot_outside() {
    let build = one(|_, t| {
        t.hardlink("h", "../outside/canary.txt");
    });
    let why = "hardlink target \"../outside/canary.txt\" escapes the image root (..)";
    refuses("hardlink-dotdot", false, build, ("h", 0), why);
}

#[test]
fn hardlink_to_a_symlink() {
    let build = one(|fx, t| {
        t.symlink("s", &format!("{}/canary.txt", fx.outside_str()));
        t.hardlink("h", "s");
    });
    let why = "hardlink target \"s\" is a symbolic link";
    refuses("hardlink-symlink", false, build, ("h", 512), why);
}

#[test]
fn hardlink_through_a_symlinked_directory() {
    let build = one(|fx, t| {
        t.symlink("d", fx.outside_str());
        t.hardlink("h", "d/canary.txt");
    });
    let why = format!(
        "hardlink target \"d/canary.txt\" is unusable: {}",
        through_link("d")
    );
    refuses("hardlink-through", false, build, ("h", 512), &why);
}

#[test]
fn hardlink_to_a_directory_or_to_nothing() {
    let build = one(|_, t| {
        t.dir("d/", 0o755);
        t.hardlink("h", "d");
    });
    refuses(
        "hardlink-dir",
        false,
        build,
        ("h", 512),
        "hardlink target \"d\" is a directory",
    );
    let build = one(|_, t| {
        t.hardlink("h", "nowhere");
    });
    let why = "hardlink target \"nowhere\" does not exist";
    refuses("hardlink-missing", false, build, ("h", 0), why);
}

// ---------------------------------------------------------------- duplicates

#[test]
fn symlink_replaced_by_a_file() {
    let build = one(|fx, t| {
        t.symlink("canary", &format!("{}/canary.txt", fx.outside_str()));
        t.file("canary", 0o644, b"evil");
    });
    evil("dup-link-file", false, limits(), build, |fx, r| {
        refused(r, "canary", 512, DUPLICATE);
        assert!(
            fx.root
                .join("canary")
                .symlink_metadata()
                .unwrap()
                .is_symlink()
        );
    });
}

#[test]
fn file_replaced_by_a_symlink() {
    let build = one(|fx, t| {
        t.file("f", 0o644, b"first");
        t.symlink("f", fx.outside_str());
    });
    evil("dup-file-link", false, limits(), build, |fx, r| {
        refused(r, "f", 1024, DUPLICATE);
        assert_eq!(fs::read(fx.root.join("f")).unwrap(), b"first");
    });
}

#[test]
fn hardlink_replaced_by_a_file() {
    let build = one(|_, t| {
        t.file("a", 0o644, b"a");
        t.hardlink("b", "a");
        t.file("b", 0o644, b"evil");
    });
    evil("dup-hardlink-file", false, limits(), build, |fx, r| {
        refused(r, "b", 1536, DUPLICATE);
        assert_eq!(fs::read(fx.root.join("a")).unwrap(), b"a");
    });
}

// ---------------------------------------------------------------- devices, setuid

#[test]
fn device_nodes_and_fifos_are_skipped() {
    let build = one(|_, t| {
        t.node(EntryType::Char, "dev/mem", 1, 1);
        t.node(EntryType::Block, "dev/sda", 8, 0);
        t.node(EntryType::Fifo, "run/fifo", 0, 0);
        t.file("ok", 0o644, b"");
    });
    evil("devices", false, limits(), build, |fx, r| {
        let report = r.unwrap();
        assert_eq!((report.skipped_devices, report.entries), (3, 1));
        let tree: Vec<String> = fx.tree().into_keys().collect();
        assert_eq!(tree, ["", "ok"], "nothing made for them, not even a parent");
    });
}

#[test]
fn setuid_and_setgid_are_cleared() {
    let build = one(|_, t| {
        t.file("bin/su", 0o4755, b"#!");
        t.file("bin/wall", 0o2755, b"#!");
    });
    evil("setuid", false, limits(), build, |fx, r| {
        assert_eq!(r.unwrap().cleared_setuid, 2);
        for f in ["bin/su", "bin/wall"] {
            let mode = fs::metadata(fx.root.join(f)).unwrap().mode();
            assert_eq!(mode & 0o7777, 0o755, "{f}");
        }
    });
}

// ---------------------------------------------------------------- bombs

#[test]
fn too_many_entries() {
    let small = Limits {
        max_entries: 100,
        ..limits()
    };
    let build = one(|_, t| {
        for i in 0..1000 {
            t.file(&format!("f{i}"), 0o644, b"");
        }
    });
    evil("entries", false, small, build, |fx, r| {
        assert!(
            matches!(r, Err(ImageError::TooManyEntries { limit: 100 })),
            "{r:?}"
        );
        assert_eq!(fs::read_dir(&fx.root).unwrap().count(), 100);
    });
}

fn sixteen_megabytes() -> Limits {
    Limits {
        max_size: Size::from_bytes(16 << 20),
        ..limits()
    }
}

#[test]
fn size_bomb_in_the_header() {
    let build = one(|_, t| {
        t.raw(header(b"huge", b'0', 0o77777777777, b""), &[0; 512]);
    });
    evil("size-header", false, sixteen_megabytes(), build, |fx, r| {
        let err = r.unwrap_err();
        assert!(matches!(err, ImageError::TooLarge { limit } if limit.bytes() == 16 << 20));
        assert_eq!(
            err.to_string(),
            "image unpacks to more than 16M (images.max_size)"
        );
        assert!(!fx.root.join("huge").exists(), "refused before writing");
    });
}

#[test]
fn size_bomb_of_compressed_zeros() {
    let build = |_: &Fixture| {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for name in ["a", "b", "c"] {
            let mut h = normal_header(EntryType::Regular, 0o644);
            h.set_size(8 << 20);
            b.append_data(&mut h, name, io::repeat(0).take(8 << 20))
                .unwrap();
        }
        let bytes = b.into_inner().unwrap().finish().unwrap();
        assert!(bytes.len() < 200_000, "a bomb is small: {}", bytes.len());
        vec![bytes]
    };
    evil("size-zeros", false, sixteen_megabytes(), build, |fx, r| {
        assert!(matches!(r, Err(ImageError::TooLarge { .. })), "{r:?}");
        assert!(!fx.root.join("c").exists());
        assert_eq!(fs::metadata(fx.root.join("b")).unwrap().len(), 8 << 20);
    });
}

#[test]
fn size_bomb_of_a_sparse_file() {
    let build = one(|_, t| {
        // GNU sparse: 512 bytes stored, 7 GiB when expanded.
        let mut h = normal_header(EntryType::GNUSparse, 0o644);
        h.set_path("sparse").unwrap();
        h.set_size(512);
        let gnu = h.as_gnu_mut().unwrap();
        octal(&mut gnu.sparse[0].offset, (7 << 30) - 512);
        octal(&mut gnu.sparse[0].numbytes, 512);
        octal(&mut gnu.realsize, 7 << 30);
        h.set_cksum();
        t.raw(*h.as_bytes(), &[7; 512]);
    });
    evil("size-sparse", false, sixteen_megabytes(), build, |fx, r| {
        assert!(matches!(r, Err(ImageError::TooLarge { .. })), "{r:?}");
        assert!(!fx.root.join("sparse").exists());
    });
}

// ---------------------------------------------------------------- broken archives

#[test]
fn truncated_in_the_middle_of_data() {
    let build = |_: &Fixture| {
        let mut t = Tar::default();
        t.file("small", 0o644, b"x");
        t.file("big", 0o644, &[5; 100 * 1024]);
        let mut bytes = t.finish();
        bytes.truncate(1024 + 512 + 50_000);
        vec![bytes]
    };
    let why = "archive ends inside this entry: 50000 of 102400 bytes";
    refuses("truncated-data", false, build, ("big", 1024), why);
}

#[test]
fn truncated_in_the_middle_of_a_header() {
    let build = |_: &Fixture| {
        let mut t = Tar::default();
        t.file("first", 0o644, b"x");
        t.file("second", 0o644, b"y");
        let mut bytes = t.finish();
        bytes.truncate(1024 + 300);
        vec![bytes]
    };
    evil("truncated-header", false, limits(), build, |_, r| {
        let corrupt =
            matches!(&r, Err(ImageError::Corrupt { last: Some(l), offset: 0, .. }) if l == "first");
        assert!(corrupt, "{r:?}");
    });
}

#[test]
fn bad_header_checksum() {
    let build = one(|_, t| {
        t.file("ok.txt", 0o644, b"ok");
        let mut h = header(b"bad.txt", b'0', 2, b"");
        h[0] = b'B'; // after the checksum was computed
        t.raw(h, b"no");
    });
    evil("checksum", false, limits(), build, |fx, r| {
        let err = r.unwrap_err();
        let corrupt =
            matches!(&err, ImageError::Corrupt { last: Some(l), offset: 0, .. } if l == "ok.txt");
        assert!(corrupt, "{err:?}");
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        assert!(!fx.root.join("Bad.txt").exists() && !fx.root.join("bad.txt").exists());
    });
}

#[test]
fn pax_size_that_disagrees_with_the_data() {
    for (pax, in_header) in [(100_000u64, 10u64), (5, 10)] {
        let build = one(|_, t| {
            t.pax(&[&format!("size={pax}")]);
            t.raw(header(b"pax.txt", b'0', in_header, b""), &[b'p'; 10]);
        });
        let why = format!("pax size {pax} disagrees with the header size {in_header}");
        refuses("pax-size", false, build, ("pax.txt", 1024), &why);
    }
}

#[test]
fn gnu_long_name_that_traverses() {
    let long = format!("{}/../../../outside/long.txt", "a".repeat(120));
    let build = one(|_, t| {
        let mut name = long.clone().into_bytes();
        name.push(0);
        t.raw(
            header(b"././@LongLink", b'L', name.len() as u64, b""),
            &name,
        );
        t.raw(header(&long.as_bytes()[..100], b'0', 4, b""), b"evil");
    });
    refuses("long-name", false, build, (&long, 1024), ESCAPES);
}

#[test]
fn pax_path_that_traverses() {
    let build = one(|_, t| {
        t.pax(&["path=../outside/pax.txt"]);
        t.raw(header(b"innocent.txt", b'0', 4, b""), b"evil");
    });
    refuses(
        "pax-path",
        false,
        build,
        ("../outside/pax.txt", 1024),
        ESCAPES,
    );
}

// ---------------------------------------------------------------- layers

#[test]
fn whiteout_that_traverses() {
    let build = layers(&[
        |_, t| {
            t.file("x", 0o644, b"x");
        },
        |_, t| {
            t.raw(header(b".wh.../../x", b'0', 0, b""), b"");
        },
    ]);
    refuses("wh-traverse", true, build, (".wh.../../x", 0), ESCAPES);
    let build = layers(&[|_, t| {
        t.raw(header(b"sub/.wh...", b'0', 0, b""), b"");
    }]);
    refuses(
        "wh-dotdot",
        true,
        build,
        ("sub/.wh...", 0),
        "whiteout names no file",
    );
}

#[test]
fn whiteout_and_opaque_through_an_earlier_layers_link() {
    for name in ["link/.wh.canary.txt", "link/.wh..wh..opq"] {
        let build = |fx: &Fixture| {
            let mut first = Tar::default();
            first.symlink("link", fx.outside_str());
            let mut second = Tar::default();
            second.raw(header(name.as_bytes(), b'0', 0, b""), b"");
            vec![first.finish(), second.finish()]
        };
        refuses("wh-link", true, build, (name, 0), &through_link("link"));
    }
}

#[test]
fn a_file_through_an_earlier_layers_link() {
    let build = layers(&[
        |fx, t| {
            t.symlink("dir", fx.outside_str());
        },
        |_, t| {
            t.file("dir/pwned", 0o644, b"evil");
        },
    ]);
    refuses(
        "layer-through-link",
        true,
        build,
        ("dir/pwned", 0),
        &through_link("dir"),
    );
}

#[test]
fn an_earlier_layers_link_is_replaced_not_followed() {
    let build = layers(&[
        |fx, t| {
            t.symlink("canary", &format!("{}/canary.txt", fx.outside_str()));
            t.symlink("dir", fx.outside_str());
        },
        |_, t| {
            t.file("canary", 0o644, b"replaced");
            t.dir("dir/", 0o755);
            t.file("dir/canary.txt", 0o644, b"inside");
        },
    ]);
    evil("layer-replace-link", true, limits(), build, |fx, r| {
        r.unwrap();
        assert_eq!(fs::read(fx.root.join("canary")).unwrap(), b"replaced");
        assert!(fs::symlink_metadata(fx.root.join("dir")).unwrap().is_dir());
        assert_eq!(fs::read(fx.root.join("dir/canary.txt")).unwrap(), b"inside");
    });
}

// ---------------------------------------------------------------- positive

#[test]
fn a_normal_archive_extracts_exactly() {
    require_root("this test applies numeric owners and makes device nodes");
    let dir = EntryType::Directory;
    let file = EntryType::Regular;
    let mut t = Tar::default();
    t.owned(dir, "./", 0o755, (0, 0), MTIME, b"");
    t.owned(dir, "./etc/", 0o755, (0, 0), MTIME + 1, b"");
    t.owned(
        file,
        "./etc/passwd",
        0o644,
        (0, 0),
        MTIME + 2,
        b"root:x:0:0::/root:/bin/sh\n",
    );
    t.owned(
        file,
        "./etc/shadow",
        0o640,
        (0, 42),
        MTIME + 3,
        b"root:*:1::::::\n",
    );
    t.owned(dir, "./home/user/", 0o700, (1000, 1000), MTIME + 4, b"");
    t.owned(
        file,
        "./home/user/.profile",
        0o600,
        (1000, 1000),
        MTIME + 5,
        b"PS1='$ '\n",
    );
    t.owned(dir, "./bin/", 0o755, (0, 0), MTIME + 6, b"");
    t.owned(
        file,
        "./bin/busybox",
        0o755,
        (0, 0),
        MTIME + 7,
        b"\x7fELF busybox",
    );
    t.symlink("./bin/sh", "busybox");
    t.hardlink("./bin/ls", "./bin/busybox");
    t.symlink("./lib64", "/lib");
    t.owned(dir, "./tmp/", 0o1777, (0, 0), MTIME + 8, b"");
    t.owned(dir, "./var/empty/", 0o555, (0, 0), MTIME + 9, b"");
    let big: Vec<u8> = (0..300 * 1024u32).map(|i| (i % 253) as u8).collect();
    t.owned(
        file,
        "./srv/data.bin",
        0o444,
        (4242, 4343),
        MTIME + 10,
        &big,
    );
    t.pax(&["mtime=1600000000.5", "uid=70000", "gid=70001"]);
    t.owned(file, "./srv/pax.txt", 0o644, (0, 0), MTIME, b"pax");
    let archive = [t.finish()];

    let expected: BTreeMap<String, String> = [
        ("", "dir 755 0:0 1600000000"),
        ("bin", "dir 755 0:0 1600000006"),
        (
            "bin/busybox",
            "file 755 0:0 1600000007 \"\\u{7f}ELF busybox\"",
        ),
        ("bin/ls", "file 755 0:0 1600000007 \"\\u{7f}ELF busybox\""),
        ("bin/sh", "link 777 0:0 1600000000 -> busybox"),
        ("etc", "dir 755 0:0 1600000001"),
        (
            "etc/passwd",
            "file 644 0:0 1600000002 \"root:x:0:0::/root:/bin/sh\\n\"",
        ),
        (
            "etc/shadow",
            "file 640 0:42 1600000003 \"root:*:1::::::\\n\"",
        ),
        ("home", "dir 755 0:0 -"),
        ("home/user", "dir 700 1000:1000 1600000004"),
        (
            "home/user/.profile",
            "file 600 1000:1000 1600000005 \"PS1='$ '\\n\"",
        ),
        ("lib64", "link 777 0:0 1600000000 -> /lib"),
        ("srv", "dir 755 0:0 -"),
        ("srv/pax.txt", "file 644 70000:70001 1600000000 \"pax\""),
        ("tmp", "dir 1777 0:0 1600000008"),
        ("var", "dir 755 0:0 -"),
        ("var/empty", "dir 555 0:0 1600000009"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for walk in [false, true] {
        let fx = Fixture::new("normal");
        let report = extract(&fx.root, &archive, false, &limits(), walk).unwrap();
        let bytes = 26 + 15 + 9 + 12 + 300 * 1024 + 3;
        assert_eq!(
            report,
            Report {
                entries: 15,
                bytes,
                skipped_devices: 0,
                cleared_setuid: 0
            }
        );
        let mut tree = fx.tree();
        let data = tree.remove("srv/data.bin").unwrap();
        // Parents made without an entry have the time of the extraction.
        for dir in ["home", "srv", "var"] {
            let v = tree.get_mut(dir).unwrap();
            *v = format!("{} -", v.rsplit_once(' ').unwrap().0);
        }
        assert_eq!(tree, expected);
        assert!(data.starts_with("file 444 4242:4343 1600000010 "), "{data}");
        assert_eq!(fs::read(fx.root.join("srv/data.bin")).unwrap(), big);
        let stat = |p: &str| fs::symlink_metadata(fx.root.join(p)).unwrap();
        assert_eq!(stat("bin/ls").ino(), stat("bin/busybox").ino());
        assert_eq!(stat("bin/ls").nlink(), 2);
        assert_eq!(
            stat("srv/pax.txt").mtime_nsec(),
            500_000_000,
            "the PAX fraction is kept"
        );
    }
}

#[test]
fn devices_are_made_when_allowed() {
    require_root("this test applies numeric owners and makes device nodes");
    let fx = Fixture::new("devices-allowed");
    let mut t = Tar::default();
    t.node(EntryType::Char, "dev/null", 1, 3);
    t.node(EntryType::Block, "dev/loop7", 7, 7);
    t.node(EntryType::Fifo, "run/fifo", 0, 0);
    let allowed = Limits {
        allow_devices: true,
        ..limits()
    };
    let report = extract(&fx.root, &[t.finish()], false, &allowed, false).unwrap();
    assert_eq!((report.entries, report.skipped_devices), (3, 0));
    let stat = |p: &str| fs::symlink_metadata(fx.root.join(p)).unwrap();
    assert!(stat("dev/null").file_type().is_char_device());
    assert_eq!(stat("dev/null").rdev(), nix::sys::stat::makedev(1, 3));
    assert!(stat("dev/loop7").file_type().is_block_device());
    assert!(stat("run/fifo").file_type().is_fifo());
    assert_eq!(stat("dev/null").mode() & 0o7777, 0o660);
    assert_eq!(stat("run/fifo").mtime(), MTIME as i64);
}

#[test]
fn layers_with_whiteouts_and_opaque_directories() {
    require_root("this test applies numeric owners and makes device nodes");
    let build = layers(&[
        |_, t| {
            t.dir("etc/", 0o755);
            t.file("etc/a", 0o644, b"a1");
            t.file("etc/b", 0o644, b"b1");
            t.dir("usr/lib/keep/", 0o755);
            t.file("usr/lib/old.so", 0o644, b"old");
            t.file("usr/lib/keep/x", 0o644, b"x");
            t.file("opt/tool", 0o755, b"tool1");
            t.symlink("link", "usr/lib");
        },
        |_, t| {
            t.file("etc/.wh.b", 0o644, b"");
            t.file("usr/lib/new.so", 0o644, b"new");
            // After new.so: it stays, being of this layer.
            t.file("usr/lib/.wh..wh..opq", 0o644, b"");
            t.file("opt/.wh.tool", 0o644, b"");
            t.dir("opt/tool/", 0o755);
            t.file("opt/tool/bin", 0o755, b"tool2");
            t.dir("link/", 0o755);
            t.file("link/real", 0o644, b"real");
        },
        |_, t| {
            t.file("etc/a", 0o600, b"a3");
            t.file("etc/b", 0o644, b"b3");
            t.file(".wh.opt", 0o644, b"");
            t.symlink("usr/lib/new.so", "old.so");
        },
    ]);
    for walk in [false, true] {
        let fx = Fixture::new("layers");
        let before = fx.snapshot();
        let report = extract(&fx.root, &build(&fx), true, &limits(), walk).unwrap();
        assert_eq!(fx.snapshot(), before);
        assert_eq!(report.entries, 8 + 5 + 3);
        let tree: Vec<String> = fx
            .tree()
            .into_iter()
            .map(|(path, what)| match what.split_once(' ') {
                Some(("dir", _)) => format!("{path}/"),
                _ => format!("{path} {}", what.rsplit_once(' ').unwrap().1),
            })
            .collect();
        let expected = [
            "/",
            "etc/",
            "etc/a \"a3\"",
            "etc/b \"b3\"",
            "link/",
            "link/real \"real\"",
            "usr/",
            "usr/lib/",
            "usr/lib/new.so old.so",
        ];
        assert_eq!(tree, expected);
        let mode = fs::metadata(fx.root.join("etc/a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
