//! Mounts and the root switch of a launched app: the mechanism, run in the child.
//!
//! The parent describes every mount as an [`Op`] (built before clone, see
//! `plan.rs`); the child carries them out in order while the new root is still a
//! directory of the host (so host paths such as `/dev/null` and volume directories
//! can be bound in), then enters it with `pivot_root`.
//!
//! Targets are resolved *inside* the new root, never by joining strings: an image may
//! hold symlinks such as `etc/hosts -> /etc/shadow-of-the-host` (see [`resolve`] for
//! the three ways a target is opened). Each mount then goes onto `/proc/self/fd/N` of
//! the opened target, so what is mounted over is exactly what was resolved; after a
//! filesystem is mounted, the mount is opened again and its magic number checked, so
//! its masks are applied inside the filesystem berth mounted and nowhere else.

mod resolve;

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

use libc::c_ulong;

use crate::sys::{self, Error, Result as SysResult};
use resolve::Target;

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
    /// A `system` target (`/proc`, `/sys`, `/dev` and the mounts below `/dev`) must be
    /// a real directory, reached without following any symlink. Once mounted, the
    /// filesystem's magic number is checked.
    Fs {
        fstype: &'static CStr,
        target: CString,
        flags: c_ulong,
        data: Option<CString>,
        fallback: Option<&'static CStr>,
        system: bool,
    },
    /// The host path `source` bound at `target` (recursively), then given `flags`
    /// (`MS_RDONLY`, `MS_NOSUID`, ...) when there are any, on every mount below too
    /// (Linux 5.12; see `bind` for older kernels).
    Bind {
        source: CString,
        target: CString,
        kind: Kind,
        flags: c_ulong,
    },
    /// As [`Op::Bind`], for a host source the parent opened and checked (see
    /// `binds.rs`): the child opens `source` again and binds that descriptor only if
    /// it is the file the parent checked (device `dev`, inode `ino`); a source that
    /// became another file meanwhile fails with ESTALE.
    Checked {
        source: CString,
        dev: u64,
        ino: u64,
        target: CString,
        kind: Kind,
        flags: c_ulong,
    },
    /// Inside the filesystem mounted at the system target `fs` (which must have the
    /// magic number `magic`), `/dev/null` over the file `path`, or an empty read-only
    /// tmpfs over the directory (runc's masked paths). A path the kernel's filesystem
    /// does not have is skipped; any other failure fails the launch.
    Mask {
        fs: &'static CStr,
        magic: u32,
        path: CString,
    },
    /// As [`Op::Mask`], the path bound onto itself read-only (runc's read-only paths).
    ReadOnly {
        fs: &'static CStr,
        magic: u32,
        path: CString,
    },
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
            // Its ESTALE means the source became another file after berth checked it.
            Op::Checked { source, target, .. } => format!(
                "bind {} on {} (as checked before the launch)",
                source.to_string_lossy(),
                shown(target)
            ),
            Op::Mask { fs, path, .. } => format!("mask {}/{}", shown(fs), path.to_string_lossy()),
            Op::ReadOnly { fs, path, .. } => {
                format!("make {}/{} read-only", shown(fs), path.to_string_lossy())
            }
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
            system,
        } => {
            let open = |create: bool| -> SysResult<Target> {
                if *system {
                    Target::strict(root, target, create, openat2)
                } else if create {
                    Target::create(root, target, Kind::Dir, openat2)
                } else {
                    Target::open(root, target, openat2)?.ok_or(Error::new("openat", libc::ENOENT))
                }
            };
            let fd = open(true)?;
            let at = sys::fd::fd_path(fd.fd(), &mut path);
            let fell_back =
                match sys::mount::mount(Some(fstype), at, Some(fstype), *flags, data.as_deref()) {
                    Err(Error {
                        errno: libc::EPERM, ..
                    }) if fallback.is_some() => {
                        let source = fallback.unwrap_or(c"/");
                        bind(fd, source, libc::MS_RDONLY | *flags, || open(false))?;
                        true
                    }
                    other => {
                        other?;
                        false
                    }
                };
            // What is on top of the target now must be the filesystem asked for: its
            // masks are applied inside it. A fallback bind is checked where masks
            // follow (sysfs); the host's /dev/mqueue may be a plain directory.
            match magic(fstype) {
                Some(magic) if !fell_back || *fstype == c"sysfs" => open(false)?.expect_fs(magic),
                _ => Ok(()),
            }
        }
        Op::Bind {
            source,
            target,
            kind,
            flags,
        } => {
            let fd = Target::create(root, target, *kind, openat2)?;
            bind(fd, source, *flags, || {
                Target::open(root, target, openat2)?.ok_or(Error::new("openat", libc::ENOENT))
            })
        }
        Op::Checked {
            source,
            dev,
            ino,
            target,
            kind,
            flags,
        } => {
            // Opened in this mount namespace (a descriptor of the host's cannot be
            // bound here), following links as the parent did; bound only if it is
            // still the file the parent checked.
            let opened = Target(sys::fs::openat(libc::AT_FDCWD, source, libc::O_PATH, 0)?);
            if opened.identity()? != (*dev, *ino) {
                // Not the file the parent checked: stale.
                return Err(Error::new("mount", libc::ESTALE));
            }
            let mut source_path = [0u8; 32];
            let from = sys::fd::fd_path(opened.fd(), &mut source_path);
            let fd = Target::create(root, target, *kind, openat2)?;
            bind(fd, from, *flags, || {
                Target::open(root, target, openat2)?.ok_or(Error::new("openat", libc::ENOENT))
            })
        }
        Op::Mask {
            fs,
            magic,
            path: inner,
        } => {
            let Some(t) = inside(root, fs, *magic, inner, openat2)? else {
                return Ok(());
            };
            let at = sys::fd::fd_path(t.fd(), &mut path);
            if t.is_dir()? {
                sys::mount::mount(
                    Some(c"tmpfs"),
                    at,
                    Some(c"tmpfs"),
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    Some(c"size=0,mode=0555"),
                )
            } else {
                let null = dev_null()?;
                let mut source = [0u8; 32];
                let source = sys::fd::fd_path(null.fd(), &mut source);
                sys::mount::mount(Some(source), at, None, libc::MS_BIND, None)
            }
        }
        Op::ReadOnly {
            fs,
            magic,
            path: inner,
        } => {
            let Some(t) = inside(root, fs, *magic, inner, openat2)? else {
                return Ok(());
            };
            let at = sys::fd::fd_path(t.fd(), &mut path);
            sys::mount::mount(Some(at), at, None, libc::MS_BIND | libc::MS_REC, None)?;
            drop(t);
            let top = inside(root, fs, *magic, inner, openat2)?
                .ok_or(Error::new("openat", libc::ENOENT))?;
            restrict(&top, libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV)
        }
        Op::Node {
            dir,
            name,
            mode,
            rdev,
        } => {
            let fd = Target::strict(root, dir, true, openat2)?;
            // With the host's mode exactly (mknod alone applies the umask).
            sys::fs::mknodat(fd.fd(), name, *mode, *rdev)
        }
        Op::Symlink { dir, name, to } => {
            let fd = Target::strict(root, dir, true, openat2)?;
            match sys::fs::symlinkat(to, fd.fd(), name) {
                Err(Error {
                    errno: libc::EEXIST,
                    ..
                }) => Ok(()),
                other => other,
            }
        }
    }
}

/// The magic number a mount of `fstype` must have.
fn magic(fstype: &CStr) -> Option<u32> {
    Some(match fstype.to_bytes() {
        b"proc" => sys::fs::PROC_SUPER_MAGIC,
        b"sysfs" => sys::fs::SYSFS_MAGIC,
        b"tmpfs" => sys::fs::TMPFS_MAGIC,
        b"devpts" => sys::fs::DEVPTS_SUPER_MAGIC,
        b"mqueue" => sys::fs::MQUEUE_MAGIC,
        _ => return None,
    })
}

/// Opens `inner` inside the filesystem mounted at the system target `fs`, checking
/// that both are on a filesystem of magic number `magic`; `None` when the
/// filesystem has no such path. Skipping is right only there: procfs and sysfs
/// have what this kernel has (no `/proc/kcore` without CONFIG_PROC_KCORE, no
/// powercap without its driver), and a path they lack cannot be read either.
fn inside(
    root: RawFd,
    fs: &CStr,
    magic: u32,
    inner: &CStr,
    openat2: bool,
) -> SysResult<Option<Target>> {
    let top = Target::strict(root, fs, false, openat2)?;
    top.expect_fs(magic)?;
    match Target::beneath(top.fd(), inner, openat2) {
        Ok(t) => {
            t.expect_fs(magic)?;
            Ok(Some(t))
        }
        Err(Error {
            errno: libc::ENOENT,
            ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The host's `/dev/null`, checked to be the null device (char 1:3) before it is
/// bound over a masked file (runc's CVE-2025-31133 fix checks the same).
fn dev_null() -> SysResult<Target> {
    let null = Target(sys::fs::openat(
        libc::AT_FDCWD,
        c"/dev/null",
        libc::O_PATH,
        0,
    )?);
    match sys::fs::kind_of(null.fd())? {
        (libc::S_IFCHR, rdev) if rdev == libc::makedev(1, 3) => Ok(null),
        _ => Err(Error::new("mount", libc::ENODEV)),
    }
}

/// Binds `source` on the target open as `fd`, then gives the mount `flags`.
///
/// With `mount_setattr` (Linux 5.12) the bind is recursive and the flags reach every
/// mount below it too: a tmpfs mounted under a read-only host directory is
/// read-only in the app. Without it, a remount changes the top mount only, so a
/// read-only bind is made without its submounts (the app sees none, so none is
/// writable); a writable bind stays recursive there, its submounts keeping their
/// own flags.
fn bind(
    fd: Target,
    source: &CStr,
    flags: c_ulong,
    reopen: impl Fn() -> SysResult<Target>,
) -> SysResult<()> {
    let recursive_flags = flags != 0 && sys::mount::has_mount_setattr();
    let rec = if flags & libc::MS_RDONLY != 0 && !recursive_flags {
        0
    } else {
        libc::MS_REC
    };
    let mut path = [0u8; 32];
    let at = sys::fd::fd_path(fd.fd(), &mut path);
    sys::mount::mount(Some(source), at, None, libc::MS_BIND | rec, None)?;
    drop(fd);
    if flags == 0 {
        return Ok(());
    }
    // The bind is on top of the target now: open it again to reach the new mount.
    let top = reopen()?;
    if recursive_flags {
        sys::mount::restrict_recursive(top.fd(), flags)
    } else {
        remount(&top, flags)
    }
}

/// Gives the mount open at `top` (and, with `mount_setattr`, every mount below)
/// `flags`.
fn restrict(top: &Target, flags: c_ulong) -> SysResult<()> {
    if sys::mount::has_mount_setattr() {
        sys::mount::restrict_recursive(top.fd(), flags)
    } else {
        remount(top, flags)
    }
}

/// Remounts the mount open at `top` with `flags`, keeping the flags the kernel
/// locks in a user namespace (a remount that would clear `nosuid`, `nodev`,
/// `noexec` or an atime flag of a mount inherited from the host fails with EPERM).
fn remount(top: &Target, flags: c_ulong) -> SysResult<()> {
    let current = sys::fs::mount_flags(top.fd())?;
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
    let at = sys::fd::fd_path(top.fd(), &mut path);
    sys::mount::mount(
        None,
        at,
        None,
        libc::MS_REMOUNT | libc::MS_BIND | flags | locked,
        None,
    )
}

/// Enters the directory `path` of the (already entered) root, resolved in it with
/// `openat2` (`RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`: no `/proc/self/fd/N` can
/// lead out), else with the walk that follows no symlink; then checks with
/// `getcwd` that the kernel sees it inside the root.
pub fn enter_workdir(path: &CStr, openat2: bool) -> SysResult<()> {
    let root = Target(sys::fs::openat(
        libc::AT_FDCWD,
        c"/",
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )?);
    let dir = if openat2 {
        let resolve = sys::fs::RESOLVE_IN_ROOT | sys::fs::RESOLVE_NO_MAGICLINKS;
        Target(sys::fs::openat2(
            root.fd(),
            path,
            libc::O_PATH | libc::O_DIRECTORY,
            resolve,
        )?)
    } else {
        Target::open(root.fd(), path, false)?.ok_or(Error::new("openat", libc::ENOENT))?
    };
    sys::fs::fchdir(dir.fd())?;
    // A directory outside the root reads "(unreachable)/..."; one whose path does
    // not fit PATH_MAX cannot be checked, so it is refused too (ERANGE).
    let mut cwd = [0u8; libc::PATH_MAX as usize];
    match sys::fs::getcwd(&mut cwd) {
        Ok(_) if cwd.first() == Some(&b'/') => Ok(()),
        Ok(_) => Err(Error::new("getcwd", libc::ENOENT)),
        Err(e) => Err(e),
    }
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
    sys::fs::fchdir(root)?;
    let pivot = if move_only {
        Err(Error::new("pivot_root", libc::EINVAL))
    } else {
        sys::mount::pivot_root(c".", c".")
    };
    match pivot {
        Ok(()) => {
            // The old root is now on top of ".": make sure nothing of it propagates
            // back to the host, then drop it.
            sys::mount::mount(None, c".", None, libc::MS_SLAVE | libc::MS_REC, None)?;
            sys::mount::umount2(c".", libc::MNT_DETACH)?;
            sys::fs::chdir(c"/")?;
            Ok(PivotKind::PivotRoot)
        }
        Err(Error {
            errno: libc::EINVAL,
            ..
        }) => {
            sys::mount::mount(Some(c"."), c"/", None, libc::MS_MOVE, None)?;
            sys::fs::chroot(c".")?;
            sys::fs::chdir(c"/")?;
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
    let fd = sys::fs::openat(libc::AT_FDCWD, c"/", libc::O_PATH | libc::O_DIRECTORY, 0)?;
    let root = Target(fd);
    remount(&root, libc::MS_RDONLY)
}
