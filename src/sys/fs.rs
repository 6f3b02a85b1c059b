//! Files and paths: opening (also inside a root, with `openat2`), creating nodes and
//! links, the current and root directory, what a descriptor is, sealed memory files,
//! and flushing to disk.
//!
//! Directory arguments are descriptor numbers: the kernel's `AT_FDCWD` is one, and the
//! launched child walks its new root with the numbers it holds.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use libc::{c_uint, c_ulong};

use super::{Error, Result, check, check_long, owned};

/// `openat(dir, path, flags | O_CLOEXEC, mode)`.
pub(crate) fn openat(
    dir: RawFd,
    path: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> Result<OwnedFd> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call; `mode` is passed as
    // the variadic argument `openat` reads when O_CREAT is set. The descriptor is new.
    unsafe {
        owned(
            "openat",
            libc::openat(
                dir,
                path.as_ptr(),
                flags | libc::O_CLOEXEC,
                c_uint::from(mode),
            )
            .into(),
        )
    }
}

/// `struct open_how` of `openat2(2)`.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2` resolve flags (see `openat2(2)`).
pub(crate) const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub(crate) const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub(crate) const RESOLVE_BENEATH: u64 = 0x08;
pub(crate) const RESOLVE_IN_ROOT: u64 = 0x10;

/// `openat2(2)` with `flags | O_CLOEXEC` (Linux 5.6; ENOSYS on older kernels).
pub(crate) fn openat2(
    dir: RawFd,
    path: &CStr,
    flags: libc::c_int,
    resolve: u64,
) -> Result<OwnedFd> {
    let how = OpenHow {
        flags: u64::try_from(flags | libc::O_CLOEXEC)
            .map_err(|_| Error::new("openat2", libc::EINVAL))?,
        mode: 0,
        resolve,
    };
    // EAGAIN: a `..` was resolved while a rename or mount somewhere in the system may
    // have moved things, so the kernel could not prove it stayed inside; it asks the
    // caller to retry. Bounded, so an attacker racing forever gets an error, not a hang.
    let mut tries = 0;
    loop {
        // SAFETY: `path` is NUL-terminated, `how` is a valid `open_how` of the size
        // passed; both are borrowed for the call and only read by the kernel. The
        // descriptor returned is new.
        let ret = unsafe {
            owned(
                "openat2",
                libc::syscall(
                    libc::SYS_openat2,
                    dir,
                    path.as_ptr(),
                    &raw const how,
                    size_of::<OpenHow>(),
                ),
            )
        };
        match ret {
            Err(Error {
                errno: libc::EAGAIN,
                ..
            }) if tries < 1000 => tries += 1,
            other => return other,
        }
    }
}

/// `mkdirat(2)`.
pub(crate) fn mkdirat(dir: RawFd, name: &CStr, mode: libc::mode_t) -> Result<()> {
    // SAFETY: `name` is NUL-terminated and borrowed for the call.
    check("mkdirat", unsafe {
        libc::mkdirat(dir, name.as_ptr(), mode)
    })
    .map(drop)
}

/// `symlinkat(2)`.
pub(crate) fn symlinkat(target: &CStr, dir: RawFd, name: &CStr) -> Result<()> {
    // SAFETY: both strings are NUL-terminated and borrowed for the call.
    check("symlinkat", unsafe {
        libc::symlinkat(target.as_ptr(), dir, name.as_ptr())
    })
    .map(drop)
}

/// `mknodat(2)` then `fchmodat(2)`: the node with exactly `mode` (mknod applies the
/// umask).
pub(crate) fn mknodat(
    dir: RawFd,
    name: &CStr,
    mode: libc::mode_t,
    rdev: libc::dev_t,
) -> Result<()> {
    // SAFETY: `name` is NUL-terminated and borrowed for the call.
    check("mknodat", unsafe {
        libc::mknodat(dir, name.as_ptr(), mode, rdev)
    })?;
    // SAFETY: as above; plain integer mode.
    check("fchmodat", unsafe {
        libc::fchmodat(dir, name.as_ptr(), mode & 0o7777, 0)
    })
    .map(drop)
}

/// `readlinkat(2)` into `buf`: the link's text (not NUL-terminated), or EINVAL when
/// `name` is not a symbolic link. A text that fills `buf` may be cut: ENAMETOOLONG.
pub(crate) fn readlinkat<'a>(dir: RawFd, name: &CStr, buf: &'a mut [u8]) -> Result<&'a [u8]> {
    // SAFETY: `name` is NUL-terminated; `buf` is writable for its length; both are
    // borrowed for the call.
    let ret = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let len = usize::try_from(ret).map_err(|_| Error::last("readlinkat"))?;
    if len >= buf.len() {
        return Err(Error::new("readlinkat", libc::ENAMETOOLONG));
    }
    buf.get(..len)
        .ok_or(Error::new("readlinkat", libc::ENAMETOOLONG))
}

/// `chdir(2)`.
pub(crate) fn chdir(path: &CStr) -> Result<()> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call.
    check("chdir", unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

/// `fchdir(2)`.
pub(crate) fn fchdir(fd: RawFd) -> Result<()> {
    // SAFETY: plain integer argument.
    check("fchdir", unsafe { libc::fchdir(fd) }).map(drop)
}

/// `chroot(2)`.
pub(crate) fn chroot(path: &CStr) -> Result<()> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call.
    check("chroot", unsafe { libc::chroot(path.as_ptr()) }).map(drop)
}

/// The current directory as the kernel sees it, into `buf`; `Ok(len)` without the NUL.
/// Linux prefixes an unreachable directory (one outside the root) with
/// `(unreachable)`, which callers must refuse.
pub(crate) fn getcwd(buf: &mut [u8]) -> Result<usize> {
    // SAFETY: `buf` is writable for `buf.len()` bytes for the call.
    let ret = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    let len = check_long("getcwd", ret)?;
    // The raw call returns the length including the NUL.
    usize::try_from(len)
        .map(|n| n.saturating_sub(1))
        .map_err(|_| Error::new("getcwd", libc::ERANGE))
}

/// Superblock magic numbers (`linux/magic.h`), as [`fs_magic`] returns them.
pub(crate) const PROC_SUPER_MAGIC: u32 = 0x9fa0;
pub(crate) const SYSFS_MAGIC: u32 = 0x6265_6572;
pub(crate) const TMPFS_MAGIC: u32 = 0x0102_1994;
pub(crate) const DEVPTS_SUPER_MAGIC: u32 = 0x1cd1;
pub(crate) const MQUEUE_MAGIC: u32 = 0x1980_0202;

/// The magic number of the filesystem `fd` is on (`fstatfs(2)`'s `f_type`).
///
/// Every magic number is 32 bits wide; `f_type` is a signed or unsigned word
/// depending on the C library and architecture, so it is narrowed here.
pub(crate) fn fs_magic(fd: RawFd) -> Result<u32> {
    // SAFETY: an all-zero `statfs` is a valid value of the plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a writable `statfs` borrowed for the call.
    check("fstatfs", unsafe { libc::fstatfs(fd, &raw mut st) })?;
    #[allow(
        clippy::cast_sign_loss,
        clippy::cast_possible_truncation,
        clippy::unnecessary_cast,
        reason = "f_type's type differs between C libraries; magics are 32 bits"
    )]
    Ok(st.f_type as u32)
}

/// `fstatvfs(3)`'s mount flags (`f_flag`, `ST_*`) of the filesystem `fd` is on.
pub(crate) fn mount_flags(fd: RawFd) -> Result<c_ulong> {
    // SAFETY: an all-zero `statvfs` is a valid value of the plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a writable `statvfs` borrowed for the call.
    check("fstatvfs", unsafe { libc::fstatvfs(fd, &raw mut st) })?;
    #[allow(
        clippy::useless_conversion,
        reason = "the field's type differs between C libraries"
    )]
    c_ulong::try_from(st.f_flag).map_err(|_| Error::new("fstatvfs", libc::EOVERFLOW))
}

/// `fstat` of the descriptor itself (`fstatat` with `AT_EMPTY_PATH`, which also works
/// on an `O_PATH` descriptor).
fn stat(fd: RawFd) -> Result<libc::stat> {
    // SAFETY: an all-zero `stat` is a valid value of the plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is writable and borrowed for the call; the empty path with
    // AT_EMPTY_PATH names the descriptor itself.
    check("fstatat", unsafe {
        libc::fstatat(fd, c"".as_ptr(), &raw mut st, libc::AT_EMPTY_PATH)
    })?;
    Ok(st)
}

/// The file type bits (`S_IFMT`) and device number of `fd`.
pub(crate) fn kind_of(fd: RawFd) -> Result<(libc::mode_t, libc::dev_t)> {
    let st = stat(fd)?;
    Ok((st.st_mode & libc::S_IFMT, st.st_rdev))
}

/// The (device, inode) of the file open at `fd`: which file it is, across mount
/// namespaces (a bind source the parent checked, opened again by the child).
#[allow(
    clippy::useless_conversion,
    reason = "dev_t and ino_t are u64 on 64-bit targets, narrower on some 32-bit ones"
)]
pub(crate) fn identity(fd: RawFd) -> Result<(u64, u64)> {
    let st = stat(fd)?;
    Ok((u64::from(st.st_dev), u64::from(st.st_ino)))
}

/// A new close-on-exec memory file named `name` that accepts seals
/// (`memfd_create(2)`).
pub(crate) fn memfd_sealable(name: &CStr) -> Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated; the flags are plain integers. The descriptor
    // is new.
    unsafe {
        owned(
            "memfd_create",
            libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING).into(),
        )
    }
}

/// Seals the memory file `fd` for good: no write, grow, shrink or further seal.
pub(crate) fn seal_all(fd: BorrowedFd<'_>) -> Result<()> {
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: plain integer arguments.
    check("fcntl F_ADD_SEALS", unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals)
    })
    .map(drop)
}

/// `sync(2)`: every filesystem's dirty data to disk.
pub(crate) fn sync() {
    // SAFETY: no arguments; cannot fail.
    unsafe { libc::sync() };
}

/// `sync_file_range(2)` of `len` bytes at `offset` of `fd`; EINVAL for a range the
/// platform's offset type cannot hold.
pub(crate) fn sync_file_range(
    fd: BorrowedFd<'_>,
    offset: u64,
    len: u64,
    flags: c_uint,
) -> Result<()> {
    let invalid = |_| Error::new("sync_file_range", libc::EINVAL);
    // off64_t with glibc, off_t with musl: both inferred from the call.
    let (offset, len) = (
        offset.try_into().map_err(invalid)?,
        len.try_into().map_err(invalid)?,
    );
    // SAFETY: plain integer arguments; the borrow keeps `fd` open for the call.
    check("sync_file_range", unsafe {
        libc::sync_file_range(fd.as_raw_fd(), offset, len, flags)
    })
    .map(drop)
}
