//! Paths inside the new root (or inside a filesystem mounted in it), resolved by
//! the kernel one descriptor at a time, never by joining strings on the host.
//!
//! Three ways, for three kinds of target:
//! - [`Target::create`] / [`Target::open`]: the app's own mount targets. With
//!   `openat2` (Linux 5.6) symlinks are followed *inside* the root
//!   (`RESOLVE_IN_ROOT`), as Docker and runc do, and a dangling one (systemd's
//!   `/etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf`) is followed to
//!   where it points, which is then created. Without `openat2` the walk refuses any
//!   symlink: following one safely needs the kernel's help.
//! - [`Target::strict`]: the system mount points (`/proc`, `/sys`, `/dev` and the
//!   mounts below `/dev`): a real directory, reached without following any symlink,
//!   even one that stays inside (runc's answer to CVE-2019-19921: `proc -> /` would
//!   put procfs, unmasked, on the root).
//! - [`Target::beneath`]: a path inside an already mounted filesystem, for its masks
//!   and read-only paths: no symlink, no `..` out of it.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::sys::{self, Error, Result as SysResult};

use super::Kind;

/// An `O_PATH` descriptor of a target, closed on drop.
pub(super) struct Target(pub(super) OwnedFd);

/// The longest target path (bytes) the walk handles; manifests are far below it.
const MAX_PATH: usize = 1024;

/// How many dangling symlinks a creating walk follows before giving up (ELOOP).
const MAX_HOPS: usize = 8;

impl Target {
    /// Opens `rel`, or `None` if it does not exist.
    pub(super) fn open(root: RawFd, rel: &CStr, openat2: bool) -> SysResult<Option<Target>> {
        match Self::walk(root, rel, None, openat2) {
            Ok(t) => Ok(Some(t)),
            Err(Error {
                errno: libc::ENOENT,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens `rel`, creating it (as `kind`) and missing parent directories.
    pub(super) fn create(root: RawFd, rel: &CStr, kind: Kind, openat2: bool) -> SysResult<Target> {
        Self::walk(root, rel, Some(kind), openat2)
    }

    /// Opens the directory `rel` without following any symlink on the way (the last
    /// component included: ENOTDIR or ELOOP), creating it and missing parents when
    /// `create`.
    pub(super) fn strict(
        root: RawFd,
        rel: &CStr,
        create: bool,
        openat2: bool,
    ) -> SysResult<Target> {
        if openat2 {
            let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;
            let resolve = sys::fs::RESOLVE_IN_ROOT | sys::fs::RESOLVE_NO_SYMLINKS;
            match sys::fs::openat2(root, rel, flags, resolve) {
                Ok(fd) => return Ok(Target(fd)),
                Err(Error {
                    errno: libc::ENOENT,
                    ..
                }) if create => {}
                Err(e) => return Err(e),
            }
        }
        // The O_NOFOLLOW walk: each directory opened from its parent, refusing
        // symlinks; it creates what is missing.
        Self::walk(root, rel, create.then_some(Kind::Dir), false)
    }

    /// Opens `rel` inside the directory `dir` (a mounted filesystem's root): no
    /// symlink followed, nothing outside `dir` reached.
    pub(super) fn beneath(dir: RawFd, rel: &CStr, openat2: bool) -> SysResult<Target> {
        if openat2 {
            let resolve = sys::fs::RESOLVE_BENEATH | sys::fs::RESOLVE_NO_SYMLINKS;
            let t = Target(sys::fs::openat2(
                dir,
                rel,
                libc::O_PATH | libc::O_NOFOLLOW,
                resolve,
            )?);
            // O_PATH | O_NOFOLLOW opens a trailing symlink itself.
            if t.is_symlink()? {
                return Err(Error::new("openat", libc::ELOOP));
            }
            return Ok(t);
        }
        // The walk refuses symlinks; the paths given here hold no `..`.
        Self::walk(dir, rel, None, false)
    }

    /// The descriptor's number, for the calls that take one.
    pub(super) fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    pub(super) fn is_dir(&self) -> SysResult<bool> {
        Ok(sys::fs::kind_of(self.fd())?.0 == libc::S_IFDIR)
    }

    /// (device, inode) of the file it names.
    pub(super) fn identity(&self) -> SysResult<(u64, u64)> {
        sys::fs::identity(self.fd())
    }

    fn is_symlink(&self) -> SysResult<bool> {
        Ok(sys::fs::kind_of(self.fd())?.0 == libc::S_IFLNK)
    }

    /// The magic number of the filesystem the target is on must be `magic`
    /// (EMEDIUMTYPE otherwise: "wrong medium type").
    pub(super) fn expect_fs(&self, magic: u32) -> SysResult<()> {
        if sys::fs::fs_magic(self.fd())? == magic {
            Ok(())
        } else {
            Err(Error::new("openat", libc::EMEDIUMTYPE))
        }
    }

    /// The component walk. Each step opens the path so far: with `openat2` the whole
    /// prefix from the root, in-root; without, the next name from the parent, never
    /// following a symlink. A missing component is created in its (resolved) parent
    /// when `create` is given, then opened again the same way; with `openat2`, a
    /// missing component that is a dangling symlink is replaced in the path by its
    /// text and the walk starts again (at most [`MAX_HOPS`] times).
    fn walk(root: RawFd, rel: &CStr, create: Option<Kind>, openat2: bool) -> SysResult<Target> {
        let mut path = [0u8; MAX_PATH];
        let mut len = rel.to_bytes().len();
        path.get_mut(..len)
            .ok_or(Error::new("openat", libc::ENAMETOOLONG))?
            .copy_from_slice(rel.to_bytes());
        for _ in 0..=MAX_HOPS {
            match Self::walk_once(root, &path, len, create, openat2)? {
                Walked::Done(t) => return Ok(t),
                Walked::Link { start, end, text } => {
                    len = splice(&mut path, len, start, end, text.as_slice())?;
                }
            }
        }
        Err(Error::new("openat", libc::ELOOP))
    }

    fn walk_once(
        root: RawFd,
        path: &[u8; MAX_PATH],
        len: usize,
        create: Option<Kind>,
        openat2: bool,
    ) -> SysResult<Walked> {
        let bytes = path
            .get(..len)
            .ok_or(Error::new("openat", libc::ENAMETOOLONG))?;
        if bytes.len() >= MAX_PATH {
            return Err(Error::new("openat", libc::ENAMETOOLONG));
        }
        let mut prefix = [0u8; MAX_PATH];
        let mut name = [0u8; MAX_PATH];
        let mut parent = Target(sys::fd::dup_at_least(root, 0)?);
        if bytes.is_empty() {
            return Ok(Walked::Done(parent));
        }
        if openat2 {
            // Most targets exist already: one call instead of one per component.
            let wanted = if create == Some(Kind::Dir) {
                libc::O_PATH | libc::O_DIRECTORY
            } else {
                libc::O_PATH
            };
            let whole = c_str(&mut prefix, bytes)?;
            let flags = sys::fs::RESOLVE_IN_ROOT | sys::fs::RESOLVE_NO_MAGICLINKS;
            match sys::fs::openat2(root, whole, wanted, flags) {
                Ok(fd) => return Ok(Walked::Done(Target(fd))),
                Err(Error {
                    errno: libc::ENOENT,
                    ..
                }) if create.is_some() => {}
                Err(e) => return Err(e),
            }
        }
        let mut start = 0;
        while start <= bytes.len() {
            let end = bytes
                .iter()
                .skip(start)
                .position(|&b| b == b'/')
                .map_or(bytes.len(), |p| start + p);
            let last = end >= bytes.len();
            let component = bytes.get(start..end).unwrap_or_default();
            let this = start;
            start = end + 1;
            if component.is_empty() {
                continue;
            }
            let name = c_str(&mut name, component)?;
            let wanted = if last && create != Some(Kind::Dir) {
                libc::O_PATH
            } else {
                libc::O_PATH | libc::O_DIRECTORY
            };
            let open = |prefix: &mut [u8; MAX_PATH], parent: &Target| -> SysResult<OwnedFd> {
                if openat2 {
                    let path = c_str(prefix, bytes.get(..end).unwrap_or_default())?;
                    sys::fs::openat2(
                        root,
                        path,
                        wanted,
                        sys::fs::RESOLVE_IN_ROOT | sys::fs::RESOLVE_NO_MAGICLINKS,
                    )
                } else {
                    sys::fs::openat(parent.fd(), name, wanted | libc::O_NOFOLLOW, 0)
                }
            };
            let fd = match (open(&mut prefix, &parent), create) {
                (Ok(fd), _) => fd,
                (
                    Err(Error {
                        errno: libc::ENOENT,
                        ..
                    }),
                    Some(kind),
                ) => {
                    if openat2 {
                        let mut text = LinkText([0; MAX_PATH], 0);
                        if let Ok(link) = sys::fs::readlinkat(parent.fd(), name, &mut text.0) {
                            text.1 = link.len();
                            return Ok(Walked::Link {
                                start: this,
                                end,
                                text,
                            });
                        }
                    }
                    if !last || kind == Kind::Dir {
                        match sys::fs::mkdirat(parent.fd(), name, 0o755) {
                            Ok(())
                            | Err(Error {
                                errno: libc::EEXIST,
                                ..
                            }) => {}
                            Err(e) => return Err(e),
                        }
                    } else {
                        let flags =
                            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW;
                        match sys::fs::openat(parent.fd(), name, flags, 0o644) {
                            Ok(_created) => {}
                            Err(Error {
                                errno: libc::EEXIST,
                                ..
                            }) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    open(&mut prefix, &parent)?
                }
                (Err(e), _) => return Err(e),
            };
            parent = Target(fd);
        }
        if !openat2 && parent.is_symlink()? {
            return Err(Error::new("openat", libc::ELOOP));
        }
        Ok(Walked::Done(parent))
    }
}

/// The outcome of one pass of the walk.
#[allow(
    clippy::large_enum_variant,
    reason = "on the child's stack: boxing the link's text would allocate between clone and exec"
)]
enum Walked {
    Done(Target),
    /// The component at `start..end` is a dangling symlink whose text is `text`.
    Link {
        start: usize,
        end: usize,
        text: LinkText,
    },
}

/// A symlink's text and its length.
struct LinkText([u8; MAX_PATH], usize);

impl LinkText {
    fn as_slice(&self) -> &[u8] {
        self.0.get(..self.1).unwrap_or_default()
    }
}

/// Replaces the component `start..end` of `path` (`len` bytes) by a symlink's `text`,
/// as the kernel would read the path: an absolute text starts again from the root
/// (the prefix is dropped), a relative one goes on from the link's directory. The
/// `..` that may result are resolved later by `openat2`, in-root. The new length.
fn splice(
    path: &mut [u8; MAX_PATH],
    len: usize,
    start: usize,
    end: usize,
    text: &[u8],
) -> SysResult<usize> {
    let mut out = [0u8; MAX_PATH];
    let mut at = 0;
    let mut put = |bytes: &[u8]| -> SysResult<()> {
        let dst = out
            .get_mut(at..at + bytes.len())
            .ok_or(Error::new("openat", libc::ENAMETOOLONG))?;
        dst.copy_from_slice(bytes);
        at += bytes.len();
        Ok(())
    };
    let (prefix, text) = match text.strip_prefix(b"/") {
        Some(rest) => (&[][..], rest),
        None => (path.get(..start).unwrap_or_default(), text),
    };
    put(prefix)?;
    put(text)?;
    put(path.get(end..len).unwrap_or_default())?;
    if at >= MAX_PATH {
        return Err(Error::new("openat", libc::ENAMETOOLONG));
    }
    *path = out;
    Ok(at)
}

/// Copies `bytes` into `buf` as a C string.
fn c_str<'a>(buf: &'a mut [u8; MAX_PATH], bytes: &[u8]) -> SysResult<&'a CStr> {
    let len = bytes.len();
    let dst = buf
        .get_mut(..len)
        .ok_or(Error::new("openat", libc::ENAMETOOLONG))?;
    dst.copy_from_slice(bytes);
    *buf.get_mut(len)
        .ok_or(Error::new("openat", libc::ENAMETOOLONG))? = 0;
    CStr::from_bytes_until_nul(buf).map_err(|_| Error::new("openat", libc::EINVAL))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spliced(path: &str, component: &str, text: &str) -> String {
        let mut buf = [0u8; MAX_PATH];
        buf[..path.len()].copy_from_slice(path.as_bytes());
        let start = path.find(component).unwrap();
        let len = splice(
            &mut buf,
            path.len(),
            start,
            start + component.len(),
            text.as_bytes(),
        )
        .unwrap();
        String::from_utf8(buf[..len].to_vec()).unwrap()
    }

    #[test]
    fn a_dangling_link_is_read_as_the_kernel_would() {
        assert_eq!(
            spliced(
                "etc/resolv.conf",
                "resolv.conf",
                "../run/systemd/resolve/stub-resolv.conf"
            ),
            "etc/../run/systemd/resolve/stub-resolv.conf"
        );
        assert_eq!(spliced("etc/hosts", "hosts", "/var/hosts"), "var/hosts");
        assert_eq!(spliced("var/run/x", "run", "/run"), "run/x");
        assert_eq!(spliced("a/b/c", "b", "d/e"), "a/d/e/c");
    }
}
