//! Unit tests of berth's host-side files: links, FIFOs and hard links are refused,
//! modes are narrowed. No root needed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]
use super::*;
use crate::testdir::TempDir;
use std::fs;
use std::os::unix::fs::symlink;

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn a_planted_link_is_neither_followed_nor_written_through() {
    let tmp = TempDir::new("hostfs", "link");
    let victim = tmp.0.join("victim");
    fs::write(&victim, "host file\n").unwrap();
    let dir = ensure_and_open(&tmp, "logs");
    symlink(&victim, dir.join("web.log")).unwrap();
    let err = dir.open_append("web.log", 0o640).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "open {}: it is a symbolic link, and berth does not follow links here",
            dir.join("web.log").display()
        )
    );
    let err = dir
        .write_if_changed("web.log", b"new\n", 0o644)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "write {}: it is a symbolic link, not a regular file",
            dir.join("web.log").display()
        )
    );
    assert_eq!(fs::read_to_string(&victim).unwrap(), "host file\n");
    // Removing and renaming act on the link itself.
    dir.rename("web.log", "web.log.1").unwrap();
    dir.remove("web.log.1").unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "host file\n");
}

#[test]
fn fifos_and_hard_links_are_refused_without_blocking() {
    let tmp = TempDir::new("hostfs", "fifo");
    let dir = ensure_and_open(&tmp, "run");
    nix::unistd::mkfifo(&dir.join("hosts"), Mode::from_bits_truncate(0o600)).unwrap();
    let err = dir.write_if_changed("hosts", b"x\n", 0o644).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "write {}: it is a FIFO, not a regular file",
            dir.join("hosts").display()
        )
    );
    let err = dir.open_append("hosts", 0o640).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "open {}: it is a FIFO or socket, not a regular file",
            dir.join("hosts").display()
        )
    );
    let victim = tmp.0.join("victim");
    fs::write(&victim, "host file\n").unwrap();
    fs::hard_link(&victim, dir.join("hostname")).unwrap();
    let err = dir.write_if_changed("hostname", b"x\n", 0o644).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "write {}: it has 2 hard links, and berth writes only files of one link",
            dir.join("hostname").display()
        )
    );
    assert_eq!(fs::read_to_string(&victim).unwrap(), "host file\n");
}

#[test]
fn writes_only_what_changed_and_appends() {
    let tmp = TempDir::new("hostfs", "write");
    let dir = ensure_and_open(&tmp, "etc");
    dir.write_if_changed("hosts", b"a long first text\n", 0o644)
        .unwrap();
    dir.write_if_changed("hosts", b"short\n", 0o644).unwrap();
    assert_eq!(fs::read_to_string(dir.join("hosts")).unwrap(), "short\n");
    assert_eq!(mode(&dir.join("hosts")), 0o644);
    let (mut f, size) = dir.open_append("a.log", 0o640).unwrap();
    assert_eq!(size, 0);
    f.write_all(b"one\n").unwrap();
    let (_, size) = dir.open_append("a.log", 0o640).unwrap();
    assert_eq!(size, 4);
    assert_eq!(dir.read("a.log", 4).unwrap(), Some(b"one\n".to_vec()));
    assert_eq!(dir.read("missing", 4).unwrap(), None);
    let err = dir.read("a.log", 3).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("read {}: larger than 3 bytes", dir.join("a.log").display())
    );
}

#[test]
fn directories_are_created_closed_and_narrowed_when_found_open() {
    let tmp = TempDir::new("hostfs", "modes");
    let state = tmp.0.join("state");
    assert!(!ensure_dir(&state, 0o711).unwrap());
    assert_eq!(mode(&state), 0o711);
    fs::set_permissions(&state, fs::Permissions::from_mode(0o757)).unwrap();
    assert!(ensure_dir(&state, 0o711).unwrap());
    assert_eq!(mode(&state), 0o711);
    // Narrower than asked is left alone.
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    assert!(!ensure_dir(&state, 0o711).unwrap());
    assert_eq!(mode(&state), 0o700);

    let dir = Dir::open(&state).unwrap();
    let apps = dir.sub("apps", 0o700, None).unwrap();
    assert_eq!(mode(apps.path()), 0o700);
    fs::set_permissions(apps.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir.sub("apps", 0o700, None).unwrap();
    assert_eq!(mode(apps.path()), 0o700);
    // A link in place of a subdirectory is refused.
    symlink(&tmp.0, state.join("images")).unwrap();
    let err = dir.sub("images", 0o700, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "open directory {}: it is a symbolic link, and berth does not follow links here",
            state.join("images").display()
        )
    );
}

fn ensure_and_open(tmp: &TempDir, name: &str) -> Dir {
    let path = tmp.0.join(name);
    ensure_dir(&path, 0o700).unwrap();
    Dir::open(&path).unwrap()
}
