//! Opens directories below the image root without ever following a symbolic link:
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`, or, where
//! the kernel lacks it (before 5.6, or a seccomp filter refuses it), a walk of one
//! `openat(O_NOFOLLOW)` per component. The walk also says which component is wrong
//! and creates missing directories, so it runs too when `openat2` fails.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat, mkdirat};

/// Why a directory below the root could not be opened. Paths are relative to the root.
#[derive(Debug)]
pub(super) enum PathError {
    /// This component is a symbolic link.
    Symlink(String),
    /// This component is something else that is not a directory.
    NotDir(String),
    /// This component does not exist (and was not to be created).
    Missing(String),
    /// Removing this tree would hold more open directories than allowed.
    TooDeep(String),
    Sys {
        action: &'static str,
        path: String,
        errno: Errno,
    },
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            PathError::Symlink(p) => {
                write!(
                    f,
                    "parent {p} is a symbolic link; writes through links are refused"
                )
            }
            PathError::NotDir(p) => write!(f, "parent {p} is not a directory"),
            PathError::Missing(p) => write!(f, "parent {p} does not exist"),
            PathError::TooDeep(p) => {
                write!(
                    f,
                    "{p} is more than {} directories deep",
                    super::prune::MAX_DEPTH
                )
            }
            PathError::Sys {
                action,
                path,
                errno,
            } => write!(f, "cannot {action} {path}: {errno}"),
        }
    }
}

impl PathError {
    pub(super) fn sys(action: &'static str, path: &[u8], errno: Errno) -> PathError {
        PathError::Sys {
            action,
            path: shown(path),
            errno,
        }
    }

    pub(super) fn into_io(self) -> io::Error {
        match self {
            PathError::Sys { errno, .. } => errno.into(),
            other => io::Error::other(other.to_string()),
        }
    }
}

/// A relative path for messages: `.` for the root itself.
pub(super) fn shown(path: &[u8]) -> String {
    if path.is_empty() {
        ".".to_owned()
    } else {
        String::from_utf8_lossy(path).into_owned()
    }
}

/// The file type bits of a stat.
pub(super) fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// The type of `name` in `dir`, not following a link; `None` if it does not exist.
pub(super) fn kind_at(dir: BorrowedFd<'_>, name: &[u8]) -> Result<Option<SFlag>, Errno> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(kind(&st))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The root directory and the last parent directory opened below it.
pub(super) struct Resolver {
    root: OwnedFd,
    openat2: bool,
    /// The parent of the previous entry: a directory of many files is resolved once.
    cache: Option<(Vec<u8>, OwnedFd)>,
}

/// Flags every directory is opened with: no link at the last component either.
fn dir_flags(access: OFlag) -> OFlag {
    access | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

impl Resolver {
    /// `root` must be a directory opened for reading (it is also used for `syncfs`).
    pub(super) fn new(root: OwnedFd) -> Resolver {
        Resolver {
            root,
            openat2: true,
            cache: None,
        }
    }

    /// Uses the component walk only, as on a kernel without `openat2`.
    pub(super) fn without_openat2(mut self) -> Resolver {
        self.openat2 = false;
        self
    }

    pub(super) fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// The directory `dir` (a checked path such as `usr/lib`, empty for the root),
    /// creating missing components (mode 0755) when `create`. Kept until the next call
    /// for another directory or [`Resolver::forget`].
    pub(super) fn parent(&mut self, dir: &[u8], create: bool) -> Result<BorrowedFd<'_>, PathError> {
        if dir.is_empty() {
            return Ok(self.root.as_fd());
        }
        let hit = matches!(&self.cache, Some((cached, _)) if cached.as_slice() == dir);
        if !hit {
            let fd = self.open(dir, OFlag::O_PATH, create)?;
            self.remember(dir, fd);
        }
        match &self.cache {
            Some((_, fd)) => Ok(fd.as_fd()),
            None => Ok(self.root.as_fd()),
        }
    }

    /// Makes `fd`, the directory `dir`, the one [`Resolver::parent`] returns for `dir`.
    pub(super) fn remember(&mut self, dir: &[u8], fd: OwnedFd) {
        let mut path = self.cache.take().map(|(p, _)| p).unwrap_or_default();
        path.clear();
        path.extend_from_slice(dir);
        self.cache = Some((path, fd));
    }

    /// Drops the cached directory (after something was removed: it may be gone).
    pub(super) fn forget(&mut self) {
        self.cache = None;
    }

    /// Opens the directory `dir` with `access` (`O_PATH` or `O_RDONLY`), not cached.
    pub(super) fn open(
        &mut self,
        dir: &[u8],
        access: OFlag,
        create: bool,
    ) -> Result<OwnedFd, PathError> {
        let flags = dir_flags(access);
        if dir.is_empty() {
            return openat(self.root.as_fd(), ".", flags, Mode::empty())
                .map_err(|e| PathError::sys("open directory", dir, e));
        }
        if self.openat2 {
            let how = OpenHow::new().flags(flags).resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            );
            match openat2(self.root.as_fd(), dir, how) {
                Ok(fd) => return Ok(fd),
                // No openat2 here (kernel before 5.6, or a seccomp filter that refuses
                // it): the walk is as safe, just one call per component.
                Err(Errno::ENOSYS | Errno::EPERM) => self.openat2 = false,
                // A link, a missing or a wrong component: the walk says which one, or
                // creates what is missing.
                Err(_) => {}
            }
        }
        self.walk(dir, flags, create)
    }

    /// One `openat(O_PATH | O_NOFOLLOW)` per component, the last one with `flags`.
    fn walk(&self, dir: &[u8], flags: OFlag, create: bool) -> Result<OwnedFd, PathError> {
        let step = dir_flags(OFlag::O_PATH);
        let mut current: Option<OwnedFd> = None;
        let mut end = 0;
        for component in dir.split(|b| *b == b'/') {
            end += usize::from(end > 0) + component.len();
            let prefix = dir.get(..end).unwrap_or(dir);
            let flags = if end >= dir.len() { flags } else { step };
            let at = current.as_ref().map_or(self.root.as_fd(), |fd| fd.as_fd());
            let opened = match openat(at, component, flags, Mode::empty()) {
                Err(Errno::ENOENT) if create => {
                    match mkdirat(at, component, Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => openat(at, component, flags, Mode::empty()),
                        Err(e) => return Err(PathError::sys("create directory", prefix, e)),
                    }
                }
                other => other,
            };
            match opened {
                Ok(fd) => current = Some(fd),
                Err(e) => return Err(diagnose(at, component, prefix, e)),
            }
        }
        current.ok_or_else(|| PathError::sys("open directory", dir, Errno::EINVAL))
    }
}

/// Names what is wrong with `component` (in `at`, at `prefix`) after opening it as a
/// directory failed with `errno`.
fn diagnose(at: BorrowedFd<'_>, component: &[u8], prefix: &[u8], errno: Errno) -> PathError {
    match errno {
        Errno::ENOTDIR | Errno::ELOOP => match kind_at(at, component) {
            Ok(Some(SFlag::S_IFLNK)) => PathError::Symlink(shown(prefix)),
            _ => PathError::NotDir(shown(prefix)),
        },
        Errno::ENOENT => PathError::Missing(shown(prefix)),
        e => PathError::sys("open directory", prefix, e),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::image::extract::tests::TempDir;

    fn resolvers(root: &std::path::Path) -> [Resolver; 2] {
        let open = || nix::fcntl::open(root, dir_flags(OFlag::O_RDONLY), Mode::empty()).unwrap();
        [
            Resolver::new(open()),
            Resolver::new(open()).without_openat2(),
        ]
    }

    #[test]
    fn opens_and_creates_directories_below_the_root() {
        let t = TempDir::new("resolve-create");
        fs::create_dir_all(t.join("a/b")).unwrap();
        for mut r in resolvers(&t.0) {
            r.parent(b"a/b", false).unwrap();
            assert!(matches!(r.parent(b"a/x", false), Err(PathError::Missing(p)) if p == "a/x"));
            r.parent(b"a/c/d", true).unwrap();
            assert!(t.join("a/c/d").is_dir());
            fs::remove_dir_all(t.join("a/c")).unwrap();
        }
    }

    #[test]
    fn symlinked_components_are_refused_and_named() {
        let t = TempDir::new("resolve-links");
        let outside = TempDir::new("resolve-links-outside");
        fs::create_dir_all(t.join("a/real")).unwrap();
        symlink(&outside.0, t.join("abs")).unwrap();
        symlink("..", t.join("a/up")).unwrap();
        symlink("real", t.join("a/rel")).unwrap();
        fs::write(t.join("a/file"), b"").unwrap();
        for mut r in resolvers(&t.0) {
            let err =
                |r: &mut Resolver, p: &[u8]| r.parent(p, true).map(drop).unwrap_err().to_string();
            assert_eq!(
                err(&mut r, b"abs"),
                "parent abs is a symbolic link; writes through links are refused"
            );
            assert_eq!(
                err(&mut r, b"abs/x"),
                "parent abs is a symbolic link; writes through links are refused"
            );
            assert_eq!(
                err(&mut r, b"a/up/x"),
                "parent a/up is a symbolic link; writes through links are refused"
            );
            // Even a link that stays inside the root is not followed.
            assert_eq!(
                err(&mut r, b"a/rel"),
                "parent a/rel is a symbolic link; writes through links are refused"
            );
            assert_eq!(err(&mut r, b"a/file/x"), "parent a/file is not a directory");
        }
        assert_eq!(
            fs::read_dir(&outside.0).unwrap().count(),
            0,
            "nothing created outside"
        );
    }

    #[test]
    fn the_parent_is_cached_until_forgotten() {
        let t = TempDir::new("resolve-cache");
        fs::create_dir_all(t.join("a")).unwrap();
        let [mut r, _] = resolvers(&t.0);
        r.parent(b"a", false).unwrap();
        fs::rename(t.join("a"), t.join("moved")).unwrap();
        // Still the cached directory, wherever it is now.
        r.parent(b"a", false).unwrap();
        r.forget();
        assert!(matches!(r.parent(b"a", false), Err(PathError::Missing(_))));
    }
}
