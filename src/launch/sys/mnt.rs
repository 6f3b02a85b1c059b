//! Raw calls about mounted filesystems, as the launched child uses them: which
//! filesystem a descriptor is on, recursive mount attributes, links and nodes read
//! without following them, and the idmapped copy of an image a user-namespace app
//! gets as its lower layer. Like the rest of `sys`, nothing here allocates.

use std::ffi::CStr;
use std::os::fd::RawFd;

use libc::{c_uint, c_ulong};

use super::{Errno, SysResult, check_long, close, errno};

/// `openat2` resolve flags besides those of `sys` (see `openat2(2)`).
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;

/// Superblock magic numbers (`linux/magic.h`), as [`fs_magic`] returns them.
pub const PROC_SUPER_MAGIC: u32 = 0x9fa0;
pub const SYSFS_MAGIC: u32 = 0x6265_6572;
pub const TMPFS_MAGIC: u32 = 0x0102_1994;
pub const DEVPTS_SUPER_MAGIC: u32 = 0x1cd1;
pub const MQUEUE_MAGIC: u32 = 0x1980_0202;

/// The magic number of the filesystem `fd` is on (`fstatfs(2)`'s `f_type`).
///
/// Every magic number is 32 bits wide; `f_type` is a signed or unsigned word
/// depending on the C library and architecture, so it is narrowed here.
pub fn fs_magic(fd: RawFd) -> SysResult<u32> {
    // SAFETY: an all-zero `statfs` is a valid value of the plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a writable `statfs` borrowed for the call.
    if unsafe { libc::fstatfs(fd, &raw mut st) } < 0 {
        return Err(errno());
    }
    #[allow(
        clippy::cast_sign_loss,
        clippy::cast_possible_truncation,
        clippy::unnecessary_cast,
        reason = "f_type's type differs between C libraries; magics are 32 bits"
    )]
    Ok(st.f_type as u32)
}

/// The file type bits (`S_IFMT`) and device number of `fd` (`fstat`).
pub fn kind_of(fd: RawFd) -> SysResult<(libc::mode_t, libc::dev_t)> {
    // SAFETY: an all-zero `stat` is a valid value of the plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is writable and borrowed for the call; the empty path with
    // AT_EMPTY_PATH names the descriptor itself.
    let ret = unsafe { libc::fstatat(fd, c"".as_ptr(), &raw mut st, libc::AT_EMPTY_PATH) };
    if ret < 0 {
        return Err(errno());
    }
    Ok((st.st_mode & libc::S_IFMT, st.st_rdev))
}

/// The (device, inode) of the file open at `fd`: which file it is, across mount
/// namespaces (a bind source the parent checked, opened again by the child).
#[allow(
    clippy::useless_conversion,
    reason = "dev_t and ino_t are u64 on 64-bit targets, narrower on some 32-bit ones"
)]
pub fn identity(fd: RawFd) -> SysResult<(u64, u64)> {
    // SAFETY: an all-zero `stat` is a valid value of the plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as in `kind_of`.
    let ret = unsafe { libc::fstatat(fd, c"".as_ptr(), &raw mut st, libc::AT_EMPTY_PATH) };
    if ret < 0 {
        return Err(errno());
    }
    Ok((u64::from(st.st_dev), u64::from(st.st_ino)))
}

/// `readlinkat(2)` into `buf`: the link's text (not NUL-terminated), or EINVAL when
/// `name` is not a symbolic link. A text that fills `buf` may be cut: ENAMETOOLONG.
pub fn readlinkat<'a>(dir: RawFd, name: &CStr, buf: &'a mut [u8]) -> SysResult<&'a [u8]> {
    // SAFETY: `name` is NUL-terminated; `buf` is writable for its length; both are
    // borrowed for the call.
    let ret = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let len = usize::try_from(ret).map_err(|_| errno())?;
    if len >= buf.len() {
        return Err(Errno(libc::ENAMETOOLONG));
    }
    buf.get(..len).ok_or(Errno(libc::ENAMETOOLONG))
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

/// Whether the kernel has `mount_setattr(2)` (Linux 5.12): a call with a zero size
/// is refused with EINVAL by a kernel that has it, ENOSYS by one that has not.
pub fn has_mount_setattr() -> bool {
    // SAFETY: a null attribute pointer with size 0 is refused before anything is
    // read; the empty path is NUL-terminated.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            std::ptr::null::<MountAttr>(),
            0usize,
        )
    };
    !(ret < 0 && errno() == Errno(libc::ENOSYS))
}

/// Adds the `MS_RDONLY`, `MS_NOSUID`, `MS_NODEV` and `MS_NOEXEC` of `flags` to the
/// mount open at `fd` and to every mount below it (`mount_setattr` with
/// `AT_RECURSIVE`): a submount of a read-only bind is read-only too. Only sets
/// attributes, so flags the kernel locks (user namespace) are kept.
pub fn restrict_recursive(fd: RawFd, flags: c_ulong) -> SysResult<()> {
    let set = [
        (libc::MS_RDONLY, 0x1),
        (libc::MS_NOSUID, 0x2),
        (libc::MS_NODEV, 0x4),
        (libc::MS_NOEXEC, 0x8),
    ]
    .iter()
    .filter(|(ms, _)| flags & ms != 0)
    .fold(0u64, |acc, (_, attr)| acc | attr);
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `attr` is a valid `mount_attr` of the size passed, borrowed for the
    // call; the empty path with AT_EMPTY_PATH names `fd` itself.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            c_uint::try_from(libc::AT_EMPTY_PATH).unwrap_or(0x1000) | AT_RECURSIVE,
            &raw const attr,
            size_of::<MountAttr>(),
        )
    };
    if ret < 0 { Err(errno()) } else { Ok(()) }
}

/// A detached, recursive copy of the mount tree at `path`, read-only and with its
/// owners shifted through the user namespace open at `userns` (an idmapped mount,
/// Linux 5.12; as overlayfs lower layer, 5.19).
pub fn idmapped_tree(path: &CStr, userns: RawFd) -> SysResult<RawFd> {
    const OPEN_TREE_CLONE: c_uint = 1;
    const AT_RECURSIVE: c_uint = 0x8000;
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    let cloexec = c_uint::try_from(libc::O_CLOEXEC).map_err(|_| Errno(libc::EINVAL))?;
    // SAFETY: `path` is NUL-terminated and borrowed for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | AT_RECURSIVE | cloexec,
        )
    };
    let tree = RawFd::try_from(check_long(ret)?).map_err(|_| Errno(libc::EBADF))?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: u64::try_from(userns).map_err(|_| Errno(libc::EBADF))?,
    };
    let empty: &CStr = c"";
    // SAFETY: `attr` is a valid `mount_attr` of the size passed, borrowed for the call;
    // the empty path with AT_EMPTY_PATH names `tree` itself.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree,
            empty.as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &raw const attr,
            size_of::<MountAttr>(),
        )
    };
    if let Err(e) = check_long(ret) {
        close(tree);
        return Err(e);
    }
    Ok(tree)
}

/// Attaches the detached mount `tree` at `target` (`move_mount(2)`, Linux 5.2).
pub fn attach_tree(tree: RawFd, target: &CStr) -> SysResult<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: c_uint = 0x4;
    let empty: &CStr = c"";
    // SAFETY: both paths are NUL-terminated and borrowed for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree,
            empty.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    check_long(ret).map(drop)
}
