//! Mounts and the root switch of a launched app: the mechanism, run in the child.
//!
//! The parent describes every mount as an [`Op`] (built before clone, see
//! `plan.rs`); the child carries them out in order while the new root is still a
//! directory of the host (so host paths such as `/dev/null` and volume directories
//! can be bound in), then enters it with `pivot_root`.
//!
//! Targets are resolved *inside* the new root, never by joining strings: an image may
//! hold symlinks such as `etc/hosts -> /etc/shadow-of-the-host`. With `openat2`
//! (Linux 5.6) a target is opened with `RESOLVE_IN_ROOT`, so a symlink is followed as
//! if the new root were `/`; on older kernels the walk refuses symlinks in a target
//! path. Missing directories are created one component at a time, from an already
//! resolved parent. Each mount then goes onto `/proc/self/fd/N` of the opened target,
//! so what is mounted over is exactly what was resolved.

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

use libc::c_ulong;

use super::sys::{self, Errno, SysResult};

/// What kind of file a mount target is, when it must be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// One step of building the app's root, relative to the new root (no leading `/`).
#[derive(Debug)]
pub enum Op {
    /// A filesystem of type `fstype` at `target`. When the kernel refuses it with
    /// EPERM (a user namespace that does not own the matching namespace, e.g. sysfs
    /// with the host's network), `fallback` (a host path) is bound read-only instead.
    Fs {
        fstype: &'static CStr,
        target: CString,
        flags: c_ulong,
        data: Option<CString>,
        fallback: Option<&'static CStr>,
    },
    /// The host path `source` bound at `target` (recursively), then remounted with
    /// `flags` (`MS_RDONLY`, `MS_NOSUID`, ...) when there are any.
    Bind {
        source: CString,
        target: CString,
        kind: Kind,
        flags: c_ulong,
    },
    /// `/dev/null` over a file, or an empty read-only tmpfs over a directory, where the
    /// target exists (runc's masked paths).
    Mask { target: CString },
    /// The target, where it exists, bound onto itself read-only.
    ReadOnly { target: CString },
    /// A device node `dir/name` (mode with the file type, and device number), made
    /// with `mknod` (outside a user namespace, where nodes may be created; cheaper than
    /// a bind mount, and gone with the tmpfs).
    Node {
        dir: CString,
        name: CString,
        mode: libc::mode_t,
        rdev: libc::dev_t,
    },
    /// A symlink `dir/name -> to`.
    Symlink {
        dir: CString,
        name: CString,
        to: &'static CStr,
    },
}

impl Op {
    /// The target, as the app will see it (for error messages).
    pub fn describe(&self) -> String {
        let shown = |t: &CStr| format!("/{}", t.to_string_lossy());
        match self {
            Op::Fs { fstype, target, .. } => {
                format!("mount {} on {}", fstype.to_string_lossy(), shown(target))
            }
            Op::Bind { source, target, .. } => {
                format!("bind {} on {}", source.to_string_lossy(), shown(target))
            }
            Op::Mask { target } => format!("mask {}", shown(target)),
            Op::ReadOnly { target } => format!("make {} read-only", shown(target)),
            Op::Node { dir, name, .. } => {
                format!("mknod {}/{}", shown(dir), name.to_string_lossy())
            }
            Op::Symlink { dir, name, to } => format!(
                "symlink {}/{} -> {}",
                shown(dir),
                name.to_string_lossy(),
                to.to_string_lossy()
            ),
        }
    }
}

/// The flags berth adds to every mount of app data.
pub const DATA_FLAGS: c_ulong = libc::MS_NOSUID | libc::MS_NODEV;

/// Carries out `op` under the new root open at `root`.
pub fn apply(root: RawFd, op: &Op, openat2: bool) -> SysResult<()> {
    let mut path = [0u8; 32];
    match op {
        Op::Fs {
            fstype,
            target,
            flags,
            data,
            fallback,
        } => {
            let fd = Target::create(root, target, Kind::Dir, openat2)?;
            let at = sys::fd_path(fd.0, &mut path);
            match sys::mount(Some(fstype), at, Some(fstype), *flags, data.as_deref()) {
                Err(Errno(libc::EPERM)) if fallback.is_some() => {
                    let source = fallback.unwrap_or(c"/");
                    sys::mount(Some(source), at, None, libc::MS_BIND | libc::MS_REC, None)?;
                    drop(fd);
                    remount(root, target, libc::MS_RDONLY | *flags, openat2)
                }
                other => other,
            }
        }
        Op::Bind {
            source,
            target,
            kind,
            flags,
        } => {
            let fd = Target::create(root, target, *kind, openat2)?;
            let at = sys::fd_path(fd.0, &mut path);
            sys::mount(Some(source), at, None, libc::MS_BIND | libc::MS_REC, None)?;
            drop(fd);
            if *flags == 0 {
                return Ok(());
            }
            remount(root, target, *flags, openat2)
        }
        Op::Mask { target } => {
            let Some(fd) = Target::open(root, target, openat2)? else {
                return Ok(());
            };
            let at = sys::fd_path(fd.0, &mut path);
            if fd.is_dir()? {
                sys::mount(
                    Some(c"tmpfs"),
                    at,
                    Some(c"tmpfs"),
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    Some(c"size=0,mode=0555"),
                )
            } else {
                sys::mount(Some(c"/dev/null"), at, None, libc::MS_BIND, None)
            }
        }
        Op::ReadOnly { target } => {
            let Some(fd) = Target::open(root, target, openat2)? else {
                return Ok(());
            };
            let at = sys::fd_path(fd.0, &mut path);
            sys::mount(Some(at), at, None, libc::MS_BIND | libc::MS_REC, None)?;
            drop(fd);
            remount(
                root,
                target,
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
                openat2,
            )
        }
        Op::Node {
            dir,
            name,
            mode,
            rdev,
        } => {
            let fd = Target::create(root, dir, Kind::Dir, openat2)?;
            // SAFETY: `name` is NUL-terminated and borrowed for the call.
            let ret = unsafe { libc::mknodat(fd.0, name.as_ptr(), *mode, *rdev) };
            if ret < 0 {
                return Err(sys::errno());
            }
            // mknod applies the umask; the node must have the host's mode.
            // SAFETY: as above; plain integer mode.
            let ret = unsafe { libc::fchmodat(fd.0, name.as_ptr(), *mode & 0o7777, 0) };
            if ret < 0 { Err(sys::errno()) } else { Ok(()) }
        }
        Op::Symlink { dir, name, to } => {
            let fd = Target::create(root, dir, Kind::Dir, openat2)?;
            match sys::symlinkat(to, fd.0, name) {
                Err(Errno(libc::EEXIST)) => Ok(()),
                other => other,
            }
        }
    }
}

/// Remounts the mount now on top of `target` with `flags`, keeping the flags the
/// kernel locks in a user namespace (a remount that would clear `nosuid`, `nodev`,
/// `noexec` or an atime flag of a mount inherited from the host fails with EPERM).
fn remount(root: RawFd, target: &CStr, flags: c_ulong, openat2: bool) -> SysResult<()> {
    let fd = Target::open(root, target, openat2)?.ok_or(Errno(libc::ENOENT))?;
    let current = sys::mount_flags(fd.0)?;
    // The `ST_*` values of statvfs(3) (Linux's; musl's libc crate lacks some).
    let locked: c_ulong = [
        (0x0002, libc::MS_NOSUID),
        (0x0004, libc::MS_NODEV),
        (0x0008, libc::MS_NOEXEC),
        (0x0400, libc::MS_NOATIME),
        (0x0800, libc::MS_NODIRATIME),
        (0x1000, libc::MS_RELATIME),
        (0x0001, libc::MS_RDONLY),
    ]
    .iter()
    .filter(|(st, _)| current & *st != 0)
    .fold(0, |acc, (_, ms)| acc | ms);
    let mut path = [0u8; 32];
    let at = sys::fd_path(fd.0, &mut path);
    sys::mount(
        None,
        at,
        None,
        libc::MS_REMOUNT | libc::MS_BIND | flags | locked,
        None,
    )
}

/// An `O_PATH` descriptor of a target inside the new root, closed on drop.
struct Target(RawFd);

impl Drop for Target {
    fn drop(&mut self) {
        sys::close(self.0);
    }
}

/// The longest target path (bytes) the walk handles; manifests are far below it.
const MAX_PATH: usize = 1024;

impl Target {
    /// Opens `rel`, or `None` if it does not exist.
    fn open(root: RawFd, rel: &CStr, openat2: bool) -> SysResult<Option<Target>> {
        match Self::walk(root, rel, None, openat2) {
            Ok(t) => Ok(Some(t)),
            Err(Errno(libc::ENOENT)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens `rel`, creating it (as `kind`) and missing parent directories.
    fn create(root: RawFd, rel: &CStr, kind: Kind, openat2: bool) -> SysResult<Target> {
        Self::walk(root, rel, Some(kind), openat2)
    }

    fn is_dir(&self) -> SysResult<bool> {
        // SAFETY: an all-zero `stat` is a valid value of the plain C struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is writable and borrowed for the call; the empty path with
        // AT_EMPTY_PATH names the descriptor itself.
        let ret = unsafe { libc::fstatat(self.0, c"".as_ptr(), &raw mut st, libc::AT_EMPTY_PATH) };
        if ret < 0 {
            return Err(sys::errno());
        }
        Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
    }

    fn is_symlink(&self) -> SysResult<bool> {
        // SAFETY: as in `is_dir`.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as in `is_dir`.
        let ret = unsafe { libc::fstatat(self.0, c"".as_ptr(), &raw mut st, libc::AT_EMPTY_PATH) };
        if ret < 0 {
            return Err(sys::errno());
        }
        Ok(st.st_mode & libc::S_IFMT == libc::S_IFLNK)
    }

    /// The component walk. Each step opens the path so far: with `openat2` the whole
    /// prefix from the root, in-root; without, the next name from the parent, never
    /// following a symlink. A missing component is created in its (resolved) parent
    /// when `create` is given, then opened again the same way.
    fn walk(root: RawFd, rel: &CStr, create: Option<Kind>, openat2: bool) -> SysResult<Target> {
        let bytes = rel.to_bytes();
        if bytes.len() >= MAX_PATH {
            return Err(Errno(libc::ENAMETOOLONG));
        }
        let mut prefix = [0u8; MAX_PATH];
        let mut name = [0u8; MAX_PATH];
        // SAFETY: plain integer arguments; the duplicate is owned by the `Target`.
        let first = unsafe { libc::fcntl(root, libc::F_DUPFD_CLOEXEC, 0) };
        if first < 0 {
            return Err(sys::errno());
        }
        let mut parent = Target(first);
        if bytes.is_empty() {
            return Ok(parent);
        }
        if openat2 {
            // Most targets exist already: one call instead of one per component.
            let wanted = if create == Some(Kind::Dir) {
                libc::O_PATH | libc::O_DIRECTORY
            } else {
                libc::O_PATH
            };
            let flags = sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS;
            match sys::openat2(root, rel, wanted, flags) {
                Ok(fd) => return Ok(Target(fd)),
                Err(Errno(libc::ENOENT)) if create.is_some() => {}
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
            let open = |prefix: &mut [u8; MAX_PATH], parent: &Target| -> SysResult<RawFd> {
                if openat2 {
                    let path = c_str(prefix, bytes.get(..end).unwrap_or_default())?;
                    sys::openat2(
                        root,
                        path,
                        wanted,
                        sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
                    )
                } else {
                    sys::openat(parent.0, name, wanted | libc::O_NOFOLLOW, 0)
                }
            };
            let fd = match (open(&mut prefix, &parent), create) {
                (Ok(fd), _) => fd,
                (Err(Errno(libc::ENOENT)), Some(kind)) => {
                    if !last || kind == Kind::Dir {
                        match sys::mkdirat(parent.0, name, 0o755) {
                            Ok(()) | Err(Errno(libc::EEXIST)) => {}
                            Err(e) => return Err(e),
                        }
                    } else {
                        let flags =
                            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW;
                        match sys::openat(parent.0, name, flags, 0o644) {
                            Ok(fd) => sys::close(fd),
                            Err(Errno(libc::EEXIST)) => {}
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
            return Err(Errno(libc::ELOOP));
        }
        Ok(parent)
    }
}

/// Copies `bytes` into `buf` as a C string.
fn c_str<'a>(buf: &'a mut [u8; MAX_PATH], bytes: &[u8]) -> SysResult<&'a CStr> {
    let len = bytes.len();
    let dst = buf.get_mut(..len).ok_or(Errno(libc::ENAMETOOLONG))?;
    dst.copy_from_slice(bytes);
    *buf.get_mut(len).ok_or(Errno(libc::ENAMETOOLONG))? = 0;
    CStr::from_bytes_until_nul(buf).map_err(|_| Errno(libc::EINVAL))
}

/// Enters the new root open at `root` (a mount point) and detaches the old one:
/// `pivot_root(".", ".")` stacks the old root on the new one, so it can be unmounted
/// without a `put_old` directory (runc's way). Where `/` is the initramfs (rootfs),
/// `pivot_root` fails with EINVAL and the new root is moved over `/` and chrooted
/// into instead (what `switch_root` does); the initramfs stays underneath, out of
/// reach of a process without CAP_SYS_CHROOT.
///
/// `move_only` skips `pivot_root` (tests of the fallback on a normal root).
pub fn enter(root: RawFd, move_only: bool) -> SysResult<PivotKind> {
    sys::fchdir(root)?;
    let pivot = if move_only {
        Err(Errno(libc::EINVAL))
    } else {
        sys::pivot_root(c".", c".")
    };
    match pivot {
        Ok(()) => {
            // The old root is now on top of ".": make sure nothing of it propagates
            // back to the host, then drop it.
            sys::mount(None, c".", None, libc::MS_SLAVE | libc::MS_REC, None)?;
            sys::umount2(c".", libc::MNT_DETACH)?;
            sys::chdir(c"/")?;
            Ok(PivotKind::PivotRoot)
        }
        Err(Errno(libc::EINVAL)) => {
            sys::mount(Some(c"."), c"/", None, libc::MS_MOVE, None)?;
            sys::chroot(c".")?;
            sys::chdir(c"/")?;
            Ok(PivotKind::Moved)
        }
        Err(e) => Err(e),
    }
}

/// How the root was switched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PivotKind {
    PivotRoot,
    Moved,
}

/// Remounts the (already entered) root read-only.
pub fn root_read_only() -> SysResult<()> {
    let fd = sys::openat(libc::AT_FDCWD, c"/", libc::O_PATH | libc::O_DIRECTORY, 0)?;
    let root = Target(fd);
    remount(root.0, c"", libc::MS_RDONLY, false)
}
