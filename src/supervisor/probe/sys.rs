//! The raw system calls of the probes that [`crate::launch::sys`] does not offer, as
//! thin wrappers that allocate nothing: the exec probe's two children call them between
//! fork and exec, where only async-signal-safe work is allowed (the supervisor is
//! single-threaded, the test harness is not).

use std::ffi::CStr;
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

use libc::{c_int, c_uint, pid_t};

use crate::launch::sys::{Errno, SysResult, errno};

fn check(ret: c_int) -> SysResult<c_int> {
    if ret < 0 { Err(errno()) } else { Ok(ret) }
}

/// Takes ownership of a descriptor a call has just returned.
fn owned(fd: c_int) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful call that created it; nobody
    // else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `fork(2)`: 0 in the child, the child's pid in the parent.
///
/// # Safety
///
/// When the calling process has other threads, the child may only make
/// async-signal-safe calls (this module's and [`crate::launch::sys`]'s) until it execs
/// or exits: a lock another thread held at fork time is never released in the child.
pub unsafe fn fork() -> SysResult<pid_t> {
    // SAFETY: the caller keeps the child to async-signal-safe calls (see above).
    check(unsafe { libc::fork() })
}

/// `openat(dir, path, flags | O_CLOEXEC)`.
pub fn openat(dir: BorrowedFd<'_>, path: &CStr, flags: c_int) -> SysResult<OwnedFd> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call; no mode is read
    // because O_CREAT is never among the callers' flags.
    let fd =
        check(unsafe { libc::openat(dir.as_raw_fd(), path.as_ptr(), flags | libc::O_CLOEXEC) })?;
    Ok(owned(fd))
}

/// A non-blocking, close-on-exec IPv4 TCP socket.
pub fn tcp_socket() -> SysResult<OwnedFd> {
    let kind = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: plain integer arguments.
    let fd = check(unsafe { libc::socket(libc::AF_INET, kind, 0) })?;
    Ok(owned(fd))
}

/// `connect(2)` to an IPv4 address.
pub fn connect(fd: BorrowedFd<'_>, addr: SocketAddrV4) -> SysResult<()> {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = libc::socklen_t::try_from(size_of::<libc::sockaddr_in>()).unwrap_or(16);
    // SAFETY: `sin` is a valid `sockaddr_in` of the length passed, read by the kernel
    // during the call.
    let ret = unsafe { libc::connect(fd.as_raw_fd(), (&raw const sin).cast(), len) };
    check(ret).map(drop)
}

/// The pending error of a socket (`SO_ERROR`), which reading clears; 0 for none.
pub fn socket_error(fd: BorrowedFd<'_>) -> SysResult<c_int> {
    let mut value: c_int = 0;
    let mut len = libc::socklen_t::try_from(size_of::<c_int>()).unwrap_or(4);
    // SAFETY: `value` and `len` are writable for the call, `len` holding the size of
    // `value`.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    check(ret).map(|_| value)
}

/// `prctl(PR_SET_PDEATHSIG, sig)`: `sig` when the thread that forked us exits.
pub fn set_parent_death_signal(sig: c_int) -> SysResult<()> {
    let sig = libc::c_ulong::try_from(sig).map_err(|_| Errno(libc::EINVAL))?;
    // SAFETY: plain integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig, 0, 0, 0) }).map(drop)
}

/// `getpid(2)`.
pub fn getpid() -> pid_t {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::getpid() }
}

/// `getppid(2)`: 0 when the parent is outside our pid namespace.
pub fn getppid() -> pid_t {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::getppid() }
}

/// `kill(2)`; a negative `pid` names a process group.
pub fn kill(pid: pid_t, sig: c_int) -> SysResult<()> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// `setsid(2)`.
pub fn setsid() -> SysResult<()> {
    // SAFETY: no arguments.
    check(unsafe { libc::setsid() }).map(drop)
}

/// The signal set holding `signals`.
fn sigset(signals: &[c_int]) -> libc::sigset_t {
    // SAFETY: an all-zero `sigset_t` is a valid value, emptied and filled by the calls,
    // which only write into it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        for &sig in signals {
            libc::sigaddset(&raw mut set, sig);
        }
        set
    }
}

/// Sets the signal mask to exactly `signals`.
pub fn block_only(signals: &[c_int]) -> SysResult<()> {
    let set = sigset(signals);
    // SAFETY: `set` is a valid set borrowed for the call; the old mask is not asked for.
    check(unsafe { libc::sigprocmask(libc::SIG_SETMASK, &raw const set, ptr::null_mut()) })
        .map(drop)
}

/// Waits for one of `signals` (which must be blocked) and takes it: its number.
pub fn wait_signal(signals: &[c_int]) -> SysResult<c_int> {
    let set = sigset(signals);
    // SAFETY: `set` is a valid set borrowed for the call; no siginfo is asked for.
    check(unsafe { libc::sigwaitinfo(&raw const set, ptr::null_mut()) })
}

/// Whether the child `pid` has exited, without reaping it: its zombie keeps the pid
/// (and the process group of that number) from being reused until [`reap`].
pub fn has_exited(pid: pid_t) -> SysResult<bool> {
    let id = libc::id_t::try_from(pid).map_err(|_| Errno(libc::EINVAL))?;
    // SAFETY: an all-zero `siginfo_t` is a valid value of the plain C struct.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: `info` is writable for the call.
        let ret = unsafe { libc::waitid(libc::P_PID, id, &raw mut info, flags) };
        match check(ret) {
            // With WNOHANG and no change, the kernel leaves `si_signo` at 0.
            Ok(_) => return Ok(info.si_signo != 0),
            Err(Errno(libc::EINTR)) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reaps the child `pid`, waiting for it: its wait status.
pub fn reap(pid: pid_t) -> SysResult<c_int> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is writable for the call.
        let ret = unsafe { libc::waitpid(pid, &raw mut status, 0) };
        match check(ret) {
            Ok(_) => return Ok(status),
            Err(Errno(libc::EINTR)) => {}
            Err(e) => return Err(e),
        }
    }
}

/// The user namespace that owns the namespace open at `ns` (`NS_GET_USERNS`, Linux
/// 4.9; ENOTTY before).
pub fn owning_user_namespace(ns: BorrowedFd<'_>) -> SysResult<OwnedFd> {
    const NS_GET_USERNS: libc::c_ulong = 0xb701; // _IO(0xb7, 0x1)
    // SAFETY: the request takes no argument and returns a new descriptor.
    let fd = check(unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_USERNS as _) })?;
    Ok(owned(fd))
}

/// `pidfd_open(2)` (Linux 5.3): a descriptor that names the process `pid` and no
/// other, even once its number is reused.
pub fn pidfd_open(pid: pid_t) -> SysResult<OwnedFd> {
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as c_uint) };
    let fd = c_int::try_from(ret).map_err(|_| Errno(libc::EOVERFLOW))?;
    Ok(owned(check(fd)?))
}

/// Whether the process of a pidfd is still there (not yet reaped): signal 0 through
/// `pidfd_send_signal(2)`.
pub fn pidfd_alive(pidfd: RawFd) -> SysResult<bool> {
    // SAFETY: plain integer arguments and a null siginfo, which the call allows.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            0 as c_int,
            ptr::null::<libc::siginfo_t>(),
            0 as c_uint,
        )
    };
    match ret {
        0 => Ok(true),
        _ if errno() == Errno(libc::ESRCH) => Ok(false),
        _ => Err(errno()),
    }
}

/// `posix_spawn(3)` of `path` with `argv` and `envp` (null-terminated pointer arrays),
/// `fd` given to the child as descriptor 3 when there is one, and the child's signal
/// mask set to exactly `blocked`: the new process's pid.
///
/// The C library makes the child with `clone(CLONE_VM | CLONE_VFORK)` (glibc 2.24+,
/// musl): no copy of the caller's page tables and no copy-on-write faults afterwards,
/// which is what a fork of the supervisor costs; the caller is suspended until the
/// child has exec'd.
pub fn spawn(
    path: &CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    fd: Option<RawFd>,
    blocked: &[c_int],
) -> SysResult<pid_t> {
    // dup2 onto the same number would leave close-on-exec set (before glibc 2.36).
    let moved = match fd {
        Some(3) => Some(owned(check(
            // SAFETY: plain integer arguments; the copy is owned below.
            unsafe { libc::fcntl(3, libc::F_DUPFD_CLOEXEC, 4) },
        )?)),
        _ => None,
    };
    let fd = moved.as_ref().map(AsRawFd::as_raw_fd).or(fd);
    let mask = sigset(blocked);
    // SAFETY: the actions and attributes are initialised before use and destroyed
    // after; every pointer passed is valid for the call (`path` NUL-terminated, `argv`
    // and `envp` null-terminated arrays of NUL-terminated strings owned by the caller).
    unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        let ret = libc::posix_spawn_file_actions_init(&raw mut actions);
        if ret != 0 {
            return Err(Errno(ret));
        }
        let ret = libc::posix_spawnattr_init(&raw mut attr);
        if ret != 0 {
            libc::posix_spawn_file_actions_destroy(&raw mut actions);
            return Err(Errno(ret));
        }
        let mut pid: pid_t = 0;
        let mut ret = match fd {
            Some(fd) => libc::posix_spawn_file_actions_adddup2(&raw mut actions, fd, 3),
            None => 0,
        };
        if ret == 0 {
            ret = libc::posix_spawnattr_setsigmask(&raw mut attr, &raw const mask);
        }
        if ret == 0 {
            let flags = libc::c_short::try_from(libc::POSIX_SPAWN_SETSIGMASK).unwrap_or(0);
            ret = libc::posix_spawnattr_setflags(&raw mut attr, flags);
        }
        if ret == 0 {
            ret = libc::posix_spawn(
                &raw mut pid,
                path.as_ptr(),
                &raw const actions,
                &raw const attr,
                argv.as_ptr().cast(),
                envp.as_ptr().cast(),
            );
        }
        libc::posix_spawnattr_destroy(&raw mut attr);
        libc::posix_spawn_file_actions_destroy(&raw mut actions);
        if ret == 0 { Ok(pid) } else { Err(Errno(ret)) }
    }
}
