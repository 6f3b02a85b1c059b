//! The raw system calls of a launch, as thin wrappers that allocate nothing.
//!
//! The launched child runs between `clone` and `execve`, where only async-signal-safe
//! work is allowed (the supervisor is single-threaded, but the test harness is not, and
//! a lock held by another thread at clone time would never be released in the child).
//! So everything here takes ready-made `CStr`s and returns the bare errno; the caller
//! turns a failure into a step of the launch protocol.

use std::ffi::CStr;
use std::os::fd::RawFd;
use std::ptr;

use libc::{c_char, c_int, c_long, c_uint, c_ulong};

mod fds;
mod mnt;
pub use fds::close_except;
pub use mnt::*;

/// The errno of a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

pub type SysResult<T> = Result<T, Errno>;

/// The errno of the call that just failed.
pub fn errno() -> Errno {
    // SAFETY: `__errno_location` returns the calling thread's errno slot, valid for the
    // thread's life; reading it has no side effect.
    Errno(unsafe { *libc::__errno_location() })
}

/// A `-1`-on-error result as `Result`.
fn check(ret: c_int) -> SysResult<c_int> {
    if ret < 0 { Err(errno()) } else { Ok(ret) }
}

fn check_long(ret: c_long) -> SysResult<c_long> {
    if ret < 0 { Err(errno()) } else { Ok(ret) }
}

/// `clone(flags | SIGCHLD)` without a new stack: like `fork`, with namespaces. Returns 0
/// in the child, the child's pid in the parent.
///
/// The raw system call, not glibc's `fork`: fork handlers do not run, so the child may
/// only use what this module offers until it execs.
pub fn clone(flags: c_int) -> SysResult<libc::pid_t> {
    let flags = c_ulong::try_from(flags | libc::SIGCHLD).map_err(|_| Errno(libc::EINVAL))?;
    let zero: c_ulong = 0;
    // SAFETY: without CLONE_VM the child gets a copy-on-write copy of our memory and
    // stack, as with fork, so a null stack pointer means "use the same stack address in
    // the copy"; the tid and tls pointers are unused because their flags are not set.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, zero, zero, zero, zero) };
    let pid = check_long(ret)?;
    libc::pid_t::try_from(pid).map_err(|_| Errno(libc::EOVERFLOW))
}

/// `clone3` with `CLONE_INTO_CGROUP`: like [`clone`], with the child created inside
/// the cgroup v2 directory open at `cgroup` (Linux 5.7; ENOSYS or E2BIG before).
pub fn clone_into(flags: c_int, cgroup: RawFd) -> SysResult<libc::pid_t> {
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    /// `struct clone_args` up to `cgroup` (version 2, 88 bytes).
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    let args = CloneArgs {
        flags: u64::try_from(flags).map_err(|_| Errno(libc::EINVAL))? | CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: u64::try_from(libc::SIGCHLD).unwrap_or(17),
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: u64::try_from(cgroup).map_err(|_| Errno(libc::EBADF))?,
    };
    // SAFETY: `args` is a valid `clone_args` of the size passed, read by the kernel
    // during the call. Without CLONE_VM and with no stack, the child runs on a
    // copy-on-write copy of our memory and stack, as with fork.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, &raw const args, size_of::<CloneArgs>()) };
    let pid = check_long(ret)?;
    libc::pid_t::try_from(pid).map_err(|_| Errno(libc::EOVERFLOW))
}

/// `mount(2)`.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: c_ulong,
    data: Option<&CStr>,
) -> SysResult<()> {
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
    check(ret).map(drop)
}

/// `umount2(2)`.
pub fn umount2(target: &CStr, flags: c_int) -> SysResult<()> {
    // SAFETY: `target` is NUL-terminated and borrowed for the call.
    check(unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
}

/// `pivot_root(new_root, put_old)`.
pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> SysResult<()> {
    // SAFETY: both paths are NUL-terminated and borrowed for the call.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
    check_long(ret).map(drop)
}

/// `chdir(2)`.
pub fn chdir(path: &CStr) -> SysResult<()> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call.
    check(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

/// `fchdir(2)`.
pub fn fchdir(fd: RawFd) -> SysResult<()> {
    // SAFETY: plain integer argument.
    check(unsafe { libc::fchdir(fd) }).map(drop)
}

/// `chroot(2)`.
pub fn chroot(path: &CStr) -> SysResult<()> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call.
    check(unsafe { libc::chroot(path.as_ptr()) }).map(drop)
}

/// `openat(2)`.
pub fn openat(dir: RawFd, path: &CStr, flags: c_int, mode: libc::mode_t) -> SysResult<RawFd> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call; `mode` is passed as
    // the variadic argument `openat` reads when O_CREAT is set.
    check(unsafe {
        libc::openat(
            dir,
            path.as_ptr(),
            flags | libc::O_CLOEXEC,
            c_uint::from(mode),
        )
    })
}

/// `struct open_how` of `openat2(2)`.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// `openat2(2)` (Linux 5.6); `ENOSYS` on older kernels.
pub fn openat2(dir: RawFd, path: &CStr, flags: c_int, resolve: u64) -> SysResult<RawFd> {
    let how = OpenHow {
        flags: u64::try_from(flags | libc::O_CLOEXEC).map_err(|_| Errno(libc::EINVAL))?,
        mode: 0,
        resolve,
    };
    // EAGAIN: a `..` was resolved while a rename or mount somewhere in the system may
    // have moved things, so the kernel could not prove it stayed inside; it asks the
    // caller to retry. Bounded, so an attacker racing forever gets an error, not a hang.
    let mut tries = 0;
    loop {
        // SAFETY: `path` is NUL-terminated, `how` is a valid `open_how` of the size
        // passed; both are borrowed for the call and only read by the kernel.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                path.as_ptr(),
                &raw const how,
                size_of::<OpenHow>(),
            )
        };
        match check_long(ret) {
            Err(Errno(libc::EAGAIN)) if tries < 1000 => tries += 1,
            other => {
                return other.and_then(|fd| RawFd::try_from(fd).map_err(|_| Errno(libc::EBADF)));
            }
        }
    }
}

/// `mkdirat(2)`.
pub fn mkdirat(dir: RawFd, name: &CStr, mode: libc::mode_t) -> SysResult<()> {
    // SAFETY: `name` is NUL-terminated and borrowed for the call.
    check(unsafe { libc::mkdirat(dir, name.as_ptr(), mode) }).map(drop)
}

/// `symlinkat(2)`.
pub fn symlinkat(target: &CStr, dir: RawFd, name: &CStr) -> SysResult<()> {
    // SAFETY: both strings are NUL-terminated and borrowed for the call.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) }).map(drop)
}

/// Writes all of `bytes` (a handful: a pid for a cgroup's `cgroup.procs` or `tasks`).
pub fn write_all(fd: RawFd, mut bytes: &[u8]) -> SysResult<()> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is readable for its length for the call.
        let ret = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        match usize::try_from(ret) {
            Ok(0) => return Err(Errno(libc::EIO)),
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(_) if errno() == Errno(libc::EINTR) => {}
            Err(_) => return Err(errno()),
        }
    }
    Ok(())
}

/// `close(2)`, ignoring the result: the descriptor is gone either way.
pub fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and does not use it again.
    unsafe { libc::close(fd) };
}

/// `fstatvfs(3)`'s mount flags (`f_flag`, `ST_*`).
pub fn mount_flags(fd: RawFd) -> SysResult<c_ulong> {
    // SAFETY: an all-zero `statvfs` is a valid value of the plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a writable `statvfs` borrowed for the call.
    check(unsafe { libc::fstatvfs(fd, &raw mut st) })?;
    #[allow(
        clippy::useless_conversion,
        reason = "the field's type differs between C libraries"
    )]
    c_ulong::try_from(st.f_flag).map_err(|_| Errno(libc::EOVERFLOW))
}

/// `dup3(old, new, 0)`, or clearing close-on-exec when they are the same number.
pub fn dup_to(old: RawFd, new: RawFd) -> SysResult<()> {
    if old == new {
        // SAFETY: plain integer arguments.
        return check(unsafe { libc::fcntl(new, libc::F_SETFD, 0) }).map(drop);
    }
    // SAFETY: plain integer arguments; `new` is replaced atomically.
    check(unsafe { libc::dup3(old, new, 0) }).map(drop)
}

/// Marks every descriptor from `first` up close-on-exec: `close_range(2)` (Linux 5.11),
/// else one `fcntl` per possible descriptor.
pub fn cloexec_from(first: RawFd) -> SysResult<()> {
    const CLOSE_RANGE_CLOEXEC: c_uint = 1 << 2;
    let first = c_uint::try_from(first).map_err(|_| Errno(libc::EBADF))?;
    // SAFETY: plain integer arguments.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a writable `rlimit` borrowed for the call.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) })?;
    let last = RawFd::try_from(limit.rlim_cur.min(1 << 20)).unwrap_or(1 << 20);
    for fd in RawFd::try_from(first).unwrap_or(RawFd::MAX)..last {
        // SAFETY: plain integer arguments; EBADF for a closed number is expected.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// `setrlimit(2)`.
#[allow(
    clippy::useless_conversion,
    clippy::unnecessary_fallible_conversions,
    reason = "rlim_t is u64 on musl and 64-bit glibc, u32 on 32-bit glibc"
)]
pub fn setrlimit(resource: c_int, soft: u64, hard: u64) -> SysResult<()> {
    let limit = libc::rlimit {
        rlim_cur: soft.try_into().unwrap_or(libc::RLIM_INFINITY),
        rlim_max: hard.try_into().unwrap_or(libc::RLIM_INFINITY),
    };
    // The resource argument's type differs between glibc and musl.
    #[allow(
        clippy::useless_conversion,
        reason = "c_int on musl, __rlimit_resource_t on glibc"
    )]
    let resource = resource.try_into().map_err(|_| Errno(libc::EINVAL))?;
    // SAFETY: `limit` is a valid `rlimit` borrowed for the call.
    check(unsafe { libc::setrlimit(resource, &raw const limit) }).map(drop)
}

/// `setsid(2)`: a new session and process group.
pub fn setsid() -> SysResult<()> {
    // SAFETY: no arguments; the raw call takes no lock of the C library.
    check_long(unsafe { libc::syscall(libc::SYS_setsid) }).map(drop)
}

/// `sethostname(2)`.
pub fn sethostname(name: &[u8]) -> SysResult<()> {
    // SAFETY: `name` is valid for `name.len()` bytes for the call.
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(drop)
}

/// `setns(2)`.
pub fn setns(fd: RawFd, nstype: c_int) -> SysResult<()> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::setns(fd, nstype) }).map(drop)
}

/// `setgroups(0, NULL)`, `setresgid`, `setresuid`: the app's ids, with no
/// supplementary groups.
///
/// Raw system calls: the C library's wrappers apply an id change to every thread of
/// the process they believe exists (glibc's and musl's "setxid" broadcast), and in a
/// child cloned from a multi-threaded process they wait forever for threads that were
/// not copied. On 32-bit ARM the 32-bit-id variants are the ones to call.
pub fn set_ids(uid: libc::uid_t, gid: libc::gid_t) -> SysResult<()> {
    clear_groups()?;
    set_gid_uid(uid, gid)
}

/// The id-changing system calls: (setgroups, setresgid, setresuid), the 32-bit-id
/// variants on 32-bit ARM.
#[cfg(target_arch = "arm")]
const ID_CALLS: (c_long, c_long, c_long) = (
    libc::SYS_setgroups32,
    libc::SYS_setresgid32,
    libc::SYS_setresuid32,
);
#[cfg(not(target_arch = "arm"))]
const ID_CALLS: (c_long, c_long, c_long) = (
    libc::SYS_setgroups,
    libc::SYS_setresgid,
    libc::SYS_setresuid,
);

/// `setgroups(0, NULL)` as a raw call (see [`set_ids`]).
pub fn clear_groups() -> SysResult<()> {
    // SAFETY: a zero-length list with a null pointer is the documented way to clear
    // the supplementary groups.
    check_long(unsafe { libc::syscall(ID_CALLS.0, 0, ptr::null::<libc::gid_t>()) }).map(drop)
}

/// `setgroups(groups)` as a raw call (see [`set_ids`]): exactly these supplementary
/// groups, none when the slice is empty.
pub fn set_groups(groups: &[libc::gid_t]) -> SysResult<()> {
    // SAFETY: `groups` is readable for its length for the call (a null pointer with a
    // zero length clears the list).
    check_long(unsafe { libc::syscall(ID_CALLS.0, groups.len(), groups.as_ptr()) }).map(drop)
}

/// `unshare(2)`.
pub fn unshare(flags: c_int) -> SysResult<()> {
    // SAFETY: plain integer argument.
    check(unsafe { libc::unshare(flags) }).map(drop)
}

/// `setresgid(gid, gid, gid)` then `setresuid(uid, uid, uid)` as raw calls (see
/// [`set_ids`]).
pub fn set_gid_uid(uid: libc::uid_t, gid: libc::gid_t) -> SysResult<()> {
    // SAFETY: plain integer arguments.
    check_long(unsafe { libc::syscall(ID_CALLS.1, gid, gid, gid) })?;
    // SAFETY: plain integer arguments.
    check_long(unsafe { libc::syscall(ID_CALLS.2, uid, uid, uid) }).map(drop)
}

/// Every catchable signal back to its default disposition, and an empty signal mask:
/// the supervisor blocks signals for its signalfd, and an app must not inherit that.
pub fn reset_signals() -> SysResult<()> {
    // The raw call: the C library's `sigaction` refuses the numbers it reserves for
    // itself (32 and 33 in glibc), which an app must not inherit ignored either. An
    // all-zero kernel `struct sigaction` (handler, flags, restorer, mask: at most 32
    // bytes on every architecture) is SIG_DFL with no flags and an empty mask.
    let default = [0u64; 4];
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: `default` is readable for more than the kernel's struct size; no old
        // action is asked for; the signal set size is the kernel's (64 bits).
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                default.as_ptr(),
                ptr::null_mut::<u64>(),
                8usize,
            )
        };
    }
    // SAFETY: an all-zero `sigset_t` is a valid set, emptied by `sigemptyset`;
    // `sigprocmask` reads it for the call.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut empty);
        check(libc::sigprocmask(
            libc::SIG_SETMASK,
            &raw const empty,
            ptr::null_mut(),
        ))
        .map(drop)
    }
}

/// Brings the loopback interface of the current network namespace up
/// (`SIOCSIFFLAGS` with `IFF_UP`).
pub fn loopback_up() -> SysResult<()> {
    // SAFETY: plain integer arguments.
    let sock =
        check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: an all-zero `ifreq` is a valid value of the plain C struct.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as c_char;
    }
    // SAFETY: `req` is a valid `ifreq` naming "lo", borrowed for both calls, which read
    // and write its flags field only.
    let ret = unsafe {
        let got = libc::ioctl(sock, libc::SIOCGIFFLAGS as _, &raw mut req);
        if got < 0 {
            got
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(sock, libc::SIOCSIFFLAGS as _, &raw const req)
        }
    };
    let result = check(ret).map(drop);
    close(sock);
    result
}

/// `execve(2)`; returns only on failure.
pub fn execve(path: &CStr, argv: &[*const c_char], envp: &[*const c_char]) -> Errno {
    // SAFETY: `argv` and `envp` are null-terminated arrays of pointers to
    // NUL-terminated strings, all owned by the caller's plan for the call.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    errno()
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: runs the program open at `fd`;
/// returns only on failure.
pub fn execve_fd(fd: RawFd, argv: &[*const c_char], envp: &[*const c_char]) -> Errno {
    let empty: &CStr = c"";
    // SAFETY: as for `execve`; the empty path with AT_EMPTY_PATH names `fd` itself.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            empty.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    errno()
}

/// `_exit(2)`: ends the child without running anything of the parent's copy.
pub fn exit(code: c_int) -> ! {
    // SAFETY: `_exit` never returns and touches no user memory.
    unsafe { libc::_exit(code) }
}

/// The current directory as the kernel sees it, into `buf`; `Ok(len)` without the NUL.
/// Linux prefixes an unreachable directory (one outside the root) with
/// `(unreachable)`, which callers must refuse.
pub fn getcwd(buf: &mut [u8]) -> SysResult<usize> {
    // SAFETY: `buf` is writable for `buf.len()` bytes for the call.
    let ret = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    let len = check_long(ret)?;
    // The raw call returns the length including the NUL.
    usize::try_from(len)
        .map(|n| n.saturating_sub(1))
        .map_err(|_| Errno(libc::ERANGE))
}

/// Writes `fd`'s path in `/proc/self/fd/` into `buf` as a C string, for the calls that
/// take a path but must act on exactly the file already opened.
pub fn fd_path(fd: RawFd, buf: &mut [u8; 32]) -> &CStr {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    let mut digits = [0u8; 12];
    let mut n = u32::try_from(fd).unwrap_or(0);
    let mut len = 0;
    loop {
        if let Some(d) = digits.get_mut(len) {
            // `n % 10` is below 10, so the cast cannot truncate.
            *d = b'0' + (n % 10) as u8;
        }
        len += 1;
        n /= 10;
        if n == 0 || len == digits.len() {
            break;
        }
    }
    let mut at = 0;
    for &b in PREFIX.iter().chain(digits.iter().take(len).rev()) {
        if let Some(slot) = buf.get_mut(at) {
            *slot = b;
        }
        at += 1;
    }
    if let Some(slot) = buf.get_mut(at) {
        *slot = 0;
    }
    CStr::from_bytes_until_nul(buf).unwrap_or(c"/proc/self/fd/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_paths() {
        let mut buf = [0u8; 32];
        assert_eq!(fd_path(0, &mut buf), c"/proc/self/fd/0");
        assert_eq!(fd_path(7, &mut buf), c"/proc/self/fd/7");
        assert_eq!(fd_path(1234, &mut buf), c"/proc/self/fd/1234");
        assert_eq!(fd_path(i32::MAX, &mut buf), c"/proc/self/fd/2147483647");
    }
}
