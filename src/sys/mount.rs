//! Mounts: `mount`, `umount2`, `pivot_root`, recursive mount attributes, and the
//! detached idmapped copy of an image a user-namespace app gets as its lower layer.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr;

use libc::{c_uint, c_ulong};

use super::{Error, Result, check, check_long, owned};

/// `mount(2)`.
pub(crate) fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: c_ulong,
    data: Option<&CStr>,
) -> Result<()> {
    let opt = |s: Option<&CStr>| s.map_or(ptr::null(), CStr::as_ptr);
    // SAFETY: every pointer is null or a NUL-terminated string borrowed for the call;
    // the kernel copies them before returning.
    let ret = unsafe {
        libc::mount(
            opt(source),
            target.as_ptr(),
            opt(fstype),
            flags,
            opt(data).cast(),
        )
    };
    check("mount", ret).map(drop)
}

/// `umount2(2)`.
pub(crate) fn umount2(target: &CStr, flags: libc::c_int) -> Result<()> {
    // SAFETY: `target` is NUL-terminated and borrowed for the call.
    check("umount2", unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
}

/// `pivot_root(new_root, put_old)`.
pub(crate) fn pivot_root(new_root: &CStr, put_old: &CStr) -> Result<()> {
    // SAFETY: both paths are NUL-terminated and borrowed for the call.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
    check_long("pivot_root", ret).map(drop)
}

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const AT_RECURSIVE: c_uint = 0x8000;

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, attr)`.
fn setattr_recursive(fd: RawFd, attr: &MountAttr) -> Result<()> {
    let flags = c_uint::try_from(libc::AT_EMPTY_PATH).unwrap_or(0x1000) | AT_RECURSIVE;
    // SAFETY: `attr` is a valid `mount_attr` of the size passed, borrowed for the
    // call; the empty path with AT_EMPTY_PATH names `fd` itself.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            flags,
            ptr::from_ref(attr),
            size_of::<MountAttr>(),
        )
    };
    check_long("mount_setattr", ret).map(drop)
}

/// Whether the kernel has `mount_setattr(2)` (Linux 5.12): a call with a zero size
/// is refused with EINVAL by a kernel that has it, ENOSYS by one that has not.
pub(crate) fn has_mount_setattr() -> bool {
    // SAFETY: a null attribute pointer with size 0 is refused before anything is
    // read; the empty path is NUL-terminated.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            ptr::null::<MountAttr>(),
            0usize,
        )
    };
    !(ret < 0 && super::errno() == libc::ENOSYS)
}

/// Adds the `MS_RDONLY`, `MS_NOSUID`, `MS_NODEV` and `MS_NOEXEC` of `flags` to the
/// mount open at `fd` and to every mount below it (`mount_setattr` with
/// `AT_RECURSIVE`): a submount of a read-only bind is read-only too. Only sets
/// attributes, so flags the kernel locks (user namespace) are kept.
pub(crate) fn restrict_recursive(fd: RawFd, flags: c_ulong) -> Result<()> {
    let set = [
        (libc::MS_RDONLY, 0x1),
        (libc::MS_NOSUID, 0x2),
        (libc::MS_NODEV, 0x4),
        (libc::MS_NOEXEC, 0x8),
    ]
    .iter()
    .filter(|(ms, _)| flags & ms != 0)
    .fold(0u64, |acc, (_, attr)| acc | attr);
    setattr_recursive(
        fd,
        &MountAttr {
            attr_set: set,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        },
    )
}

/// A detached, recursive copy of the mount tree at `path`, read-only and with its
/// owners shifted through the user namespace open at `userns` (an idmapped mount,
/// Linux 5.12; as overlayfs lower layer, 5.19).
pub(crate) fn idmapped_tree(path: &CStr, userns: BorrowedFd<'_>) -> Result<OwnedFd> {
    const OPEN_TREE_CLONE: c_uint = 1;
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    let cloexec =
        c_uint::try_from(libc::O_CLOEXEC).map_err(|_| Error::new("open_tree", libc::EINVAL))?;
    // SAFETY: `path` is NUL-terminated and borrowed for the call; the descriptor
    // returned is new.
    let tree = unsafe {
        owned(
            "open_tree",
            libc::syscall(
                libc::SYS_open_tree,
                libc::AT_FDCWD,
                path.as_ptr(),
                OPEN_TREE_CLONE | AT_RECURSIVE | cloexec,
            ),
        )
    }?;
    let userns_fd =
        u64::try_from(userns.as_raw_fd()).map_err(|_| Error::new("mount_setattr", libc::EBADF))?;
    setattr_recursive(
        tree.as_raw_fd(),
        &MountAttr {
            attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_IDMAP,
            attr_clr: 0,
            propagation: 0,
            userns_fd,
        },
    )?;
    Ok(tree)
}

/// Attaches the detached mount open at `tree` at `target` (`move_mount(2)`, Linux
/// 5.2). `tree` is a number: the launched child receives it from its parent.
pub(crate) fn attach_tree(tree: RawFd, target: &CStr) -> Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: c_uint = 0x4;
    // SAFETY: both paths are NUL-terminated and borrowed for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree,
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    check_long("move_mount", ret).map(drop)
}
