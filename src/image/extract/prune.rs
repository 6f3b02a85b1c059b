//! Removes what earlier layers made (whiteouts, opaque directories, an entry that
//! replaces a path): recursively, relative to directory descriptors, never following
//! a symbolic link, and keeping what the current layer wrote.

use std::collections::HashSet;
use std::os::fd::{AsFd, BorrowedFd};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::resolve::{PathError, kind_at};

/// Deepest tree removed: one open directory per level while descending.
pub(super) const MAX_DEPTH: usize = 256;

/// Paths (relative to the root) the current layer wrote.
pub(super) type Keep = HashSet<Box<[u8]>>;

/// Removes `name` in `dir` and everything below it, except paths in `keep` and the
/// directories that lead to them (a kept directory still loses what is in it and not
/// kept). `path` is `name`'s path from the root. Returns whether `name` is gone.
pub(super) fn prune(
    dir: BorrowedFd<'_>,
    name: &[u8],
    path: &[u8],
    keep: &Keep,
) -> Result<bool, PathError> {
    let mut path = path.to_vec();
    prune_at(dir, name, &mut path, keep, 0)
}

/// Removes everything in the directory `dir` (at `path`) except
/// paths in `keep`. Returns whether it is empty now.
pub(super) fn prune_children(
    dir: BorrowedFd<'_>,
    path: &[u8],
    keep: &Keep,
) -> Result<bool, PathError> {
    let mut path = path.to_vec();
    children(dir, &mut path, keep, 0)
}

fn prune_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    path: &mut Vec<u8>,
    keep: &Keep,
    depth: usize,
) -> Result<bool, PathError> {
    let kept = keep.contains(path.as_slice());
    let flag = match kind_at(dir, name).map_err(|e| PathError::sys("inspect", path, e))? {
        None => return Ok(true),
        Some(SFlag::S_IFDIR) => {
            if depth >= MAX_DEPTH {
                return Err(PathError::TooDeep(super::resolve::shown(path)));
            }
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let fd = openat(dir, name, flags, Mode::empty())
                .map_err(|e| PathError::sys("open directory", path, e))?;
            if !children(fd.as_fd(), path, keep, depth + 1)? || kept {
                return Ok(false);
            }
            UnlinkatFlags::RemoveDir
        }
        Some(_) if kept => return Ok(false),
        Some(_) => UnlinkatFlags::NoRemoveDir,
    };
    match unlinkat(dir, name, flag) {
        Ok(()) | Err(Errno::ENOENT) => Ok(true),
        Err(e) => Err(PathError::sys("remove", path, e)),
    }
}

fn children(
    dir: BorrowedFd<'_>,
    path: &mut Vec<u8>,
    keep: &Keep,
    depth: usize,
) -> Result<bool, PathError> {
    // The names first, then the descent: the directory stream (and its buffer) is
    // closed before going deeper, so one descriptor per level stays open.
    let names = list(dir).map_err(|e| PathError::sys("list directory", path, e))?;
    let len = path.len();
    let mut empty = true;
    for name in names {
        path.truncate(len);
        if len > 0 {
            path.push(b'/');
        }
        path.extend_from_slice(&name);
        empty &= prune_at(dir, &name, path, keep, depth)?;
    }
    path.truncate(len);
    Ok(empty)
}

/// The names in a directory, without `.` and `..`.
fn list(dir: BorrowedFd<'_>) -> Result<Vec<Vec<u8>>, Errno> {
    // `.` opens a second descriptor of the same directory for the stream to own.
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut stream = Dir::openat(dir, ".", flags, Mode::empty())?;
    let mut names = Vec::new();
    for entry in stream.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::image::extract::tests::TempDir;

    fn open(path: &std::path::Path) -> std::os::fd::OwnedFd {
        nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap()
    }

    fn keep(paths: &[&str]) -> Keep {
        paths.iter().map(|p| p.as_bytes().into()).collect()
    }

    #[test]
    fn removes_trees_without_following_links() {
        let t = TempDir::new("prune-links");
        let outside = TempDir::new("prune-links-outside");
        fs::write(outside.join("canary"), b"x").unwrap();
        fs::create_dir_all(t.join("d/e/f")).unwrap();
        fs::write(t.join("d/e/f/g"), b"").unwrap();
        symlink(&outside.0, t.join("d/link")).unwrap();
        let root = open(&t.0);
        assert!(prune(root.as_fd(), b"d", b"d", &Keep::new()).unwrap());
        assert!(!t.join("d").exists());
        assert!(outside.join("canary").exists());
        // Gone already is fine.
        assert!(prune(root.as_fd(), b"d", b"d", &Keep::new()).unwrap());
    }

    #[test]
    fn keeps_what_the_current_layer_wrote() {
        let t = TempDir::new("prune-keep");
        fs::create_dir_all(t.join("d/old")).unwrap();
        fs::create_dir_all(t.join("d/sub")).unwrap();
        fs::write(t.join("d/sub/old"), b"").unwrap();
        fs::write(t.join("d/new"), b"").unwrap();
        fs::write(t.join("d/gone"), b"").unwrap();
        let d = open(&t.join("d"));
        let kept = keep(&["d/new", "d/sub"]);
        assert!(!prune_children(d.as_fd(), b"d", &kept).unwrap());
        let mut left: Vec<_> = walk(&t.join("d"));
        left.sort();
        assert_eq!(left, ["new", "sub"]);
        let root = open(&t.0);
        assert!(
            !prune(root.as_fd(), b"d", b"d", &kept).unwrap(),
            "a kept entry keeps its directory"
        );
    }

    #[test]
    fn depth_is_bounded() {
        let t = TempDir::new("prune-deep");
        let deep: String = (0..MAX_DEPTH + 1).map(|_| "d/").collect();
        fs::create_dir_all(t.join(&deep)).unwrap();
        let root = open(&t.0);
        let err = prune(root.as_fd(), b"d", b"d", &Keep::new()).unwrap_err();
        assert!(matches!(err, PathError::TooDeep(_)), "{err}");
    }

    fn walk(dir: &std::path::Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}
