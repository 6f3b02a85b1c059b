//! Issue 16, item 15 (same class, found after): a bind mount's host source is opened
//! once by the parent, checked on that descriptor, and the child mounts the
//! descriptor. A path swapped for a link after berth's check (another app writing on
//! the way) reaches neither `/proc` nor berth's directories.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::fs;
use std::os::unix::fs::symlink;

use common::launch_world::{World, collect};
use common::probe::Variant;

/// The manifest is loaded (and its bind source checked) while the source is a plain
/// directory; then the directory becomes a link to the host's root through /proc,
/// as a racing writer would make it just before the mount. The launch refuses it.
#[test]
fn a_bind_source_swapped_for_a_link_after_the_check_is_refused_at_launch() {
    let w = World::new("bind-swap", Variant::Plain);
    let data = w.tmp.join("data");
    fs::create_dir_all(data.join("sub")).unwrap();
    fs::write(data.join("sub/ok"), "fine\n").unwrap();
    let extra = format!(
        "command: [probe, cat, /mnt/ok]\nmounts:\n  - {{ type: bind, source: {}, target: /mnt, readonly: true }}\n",
        data.join("sub").display()
    );
    let m = w.manifest("swapped", &extra);
    // As loaded and checked: it launches and reads the file.
    let (code, out, _) = collect(w.spawn(&mut w.launcher(), &m).unwrap());
    assert_eq!((code, out.as_str()), (0, "fine\n"));

    // The swap: `sub` is now a link to the host's root, seen through /proc.
    fs::rename(data.join("sub"), data.join("was-sub")).unwrap();
    symlink("/proc/self/root", data.join("sub")).unwrap();
    let e = match w.spawn(&mut w.launcher(), &m) {
        Ok(running) => panic!("launched over the host's root: {:?}", collect(running)),
        Err(e) => e,
    };
    assert_eq!(e.status(), None, "refused before clone");
    assert_eq!(
        e.to_string(),
        format!(
            "swapped: bind mount source / overlaps /proc: an app given it could reach the \
             host or berth's own files; bind another directory, or set allow_system_path: \
             true on this mount (bind mount source {} is / now)",
            data.join("sub").display()
        )
    );
}

/// The child mounts what the parent opened: a bind of a file reached through a link
/// shows the file the link named when the parent opened it.
#[test]
fn the_child_mounts_the_opened_source() {
    let w = World::new("bind-fd", Variant::Plain);
    let real = w.tmp.join("real");
    fs::create_dir_all(&real).unwrap();
    fs::write(real.join("ok"), "through the link\n").unwrap();
    symlink(&real, w.tmp.join("link")).unwrap();
    let extra = format!(
        "command: [probe, cat, /mnt/ok]\nmounts:\n  - {{ type: bind, source: {}, target: /mnt }}\n",
        w.tmp.join("link").display()
    );
    let (code, out, err) = w.run("linked", &extra);
    assert_eq!((code, out.as_str()), (0, "through the link\n"), "{err}");
}

/// The child's own check, called as the child calls it (in a private mount
/// namespace): a source that is another file than the one the parent checked (the
/// swap came after the parent's check) is refused with ESTALE. (That the checked
/// file itself is bound, a real launch shows: `the_child_mounts_the_opened_source`.)
#[test]
fn the_child_binds_only_the_file_the_parent_checked() {
    use std::ffi::CString;
    use std::os::unix::fs::MetadataExt as _;

    use berth::launch::rootfs::{self, Kind, Op};

    common::require_root("mounts need CAP_SYS_ADMIN");
    let tmp = common::TempDir::new("bind-child");
    let root = tmp.mkdir("root");
    let checked = tmp.mkdir("checked");
    let other = tmp.mkdir("other");
    fs::write(other.join("secret"), "host\n").unwrap();
    let meta = fs::metadata(&checked).unwrap();
    let op = |source: &std::path::Path| Op::Checked {
        source: CString::new(source.to_str().unwrap()).unwrap(),
        dev: meta.dev(),
        ino: meta.ino(),
        target: CString::new("mnt").unwrap(),
        kind: Kind::Dir,
        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_RDONLY,
    };
    let swapped = op(&other);
    let code = common::in_private_namespace(&root, |root_fd| {
        match rootfs::apply(root_fd, &swapped, true) {
            Ok(()) => 0,
            Err(e) => e.errno(),
        }
    });
    assert_eq!(code, libc::ESTALE);
}
