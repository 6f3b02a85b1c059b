//! Processes: fork, clone (with namespaces, into a cgroup), exec, spawn, exit, wait
//! and reap, signals to a process, pidfds, sessions.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::ptr;

use libc::{c_char, c_int, c_uint, c_ulong, pid_t};

use super::signal::SigSet;
use super::{Error, Result, check, check_long, owned};

/// `fork(2)`: 0 in the child, the child's pid in the parent.
///
/// # Safety
///
/// When the calling process has other threads, the child may only make
/// async-signal-safe calls (those of `sys`) until it execs or exits: a lock another
/// thread held at fork time is never released in the child.
pub(crate) unsafe fn fork() -> Result<pid_t> {
    // SAFETY: the caller keeps the child to async-signal-safe calls (see above).
    check("fork", unsafe { libc::fork() })
}

/// `clone(flags | SIGCHLD)` without a new stack: like `fork`, with the new namespaces
/// of `flags`. Returns 0 in the child, the child's pid in the parent.
///
/// # Safety
///
/// The raw system call, not glibc's `fork`: fork handlers do not run, so the child
/// may only make async-signal-safe calls (those of `sys`), allocate nothing and take
/// no lock, until it execs or exits.
pub(crate) unsafe fn clone(flags: c_int) -> Result<pid_t> {
    let flags =
        c_ulong::try_from(flags | libc::SIGCHLD).map_err(|_| Error::new("clone", libc::EINVAL))?;
    let zero: c_ulong = 0;
    // SAFETY: without CLONE_VM the child gets a copy-on-write copy of our memory and
    // stack, as with fork, so a null stack pointer means "use the same stack address in
    // the copy"; the tid and tls pointers are unused because their flags are not set.
    // What the child may do is the caller's promise.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, zero, zero, zero, zero) };
    pid_t::try_from(check_long("clone", ret)?).map_err(|_| Error::new("clone", libc::EOVERFLOW))
}

/// `clone3` with `CLONE_INTO_CGROUP`: like [`clone`], with the child created inside
/// the cgroup v2 directory open at `cgroup` (Linux 5.7; ENOSYS or E2BIG before).
///
/// # Safety
///
/// As for [`clone`].
pub(crate) unsafe fn clone_into(flags: c_int, cgroup: BorrowedFd<'_>) -> Result<pid_t> {
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
    let invalid = |errno| Error::new("clone3", errno);
    let args = CloneArgs {
        flags: u64::try_from(flags).map_err(|_| invalid(libc::EINVAL))? | CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: u64::try_from(libc::SIGCHLD).unwrap_or(17),
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: u64::try_from(cgroup.as_raw_fd()).map_err(|_| invalid(libc::EBADF))?,
    };
    // SAFETY: `args` is a valid `clone_args` of the size passed, read by the kernel
    // during the call. Without CLONE_VM and with no stack, the child runs on a
    // copy-on-write copy of our memory and stack, as with fork. What the child may do
    // is the caller's promise.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, &raw const args, size_of::<CloneArgs>()) };
    pid_t::try_from(check_long("clone3", ret)?).map_err(|_| invalid(libc::EOVERFLOW))
}

/// `execve(2)`; returns only on failure, with its error.
pub(crate) fn execve(path: &CStr, argv: &[*const c_char], envp: &[*const c_char]) -> Error {
    if argv.last().is_some_and(|p| !p.is_null()) || envp.last().is_some_and(|p| !p.is_null()) {
        return Error::new("execve", libc::EINVAL);
    }
    // SAFETY: `argv` and `envp` are null-terminated (checked above) arrays of pointers
    // to NUL-terminated strings, all owned by the caller for the call.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Error::last("execve")
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: runs the program open at the
/// descriptor number `fd` (one the launched child holds from its parent); returns only
/// on failure.
pub(crate) fn execve_fd(fd: RawFd, argv: &[*const c_char], envp: &[*const c_char]) -> Error {
    if argv.last().is_some_and(|p| !p.is_null()) || envp.last().is_some_and(|p| !p.is_null()) {
        return Error::new("execveat", libc::EINVAL);
    }
    // SAFETY: as for `execve`; the empty path with AT_EMPTY_PATH names `fd` itself.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Error::last("execveat")
}

/// `posix_spawn(3)` of `path` with `argv` and `envp` (null-terminated pointer arrays),
/// `fd` given to the child as descriptor 3 when there is one, and the child's signal
/// mask set to `mask`: the new process's pid. Its 0, 1 and 2 are the caller's.
///
/// The C library makes the child with `clone(CLONE_VM | CLONE_VFORK)` (glibc 2.24+,
/// musl): no copy of the caller's page tables and no copy-on-write faults afterwards,
/// which is what a fork of the supervisor costs; the caller is suspended until the
/// child has exec'd.
pub(crate) fn spawn(
    path: &CStr,
    argv: &[*const c_char],
    envp: &[*const c_char],
    fd: Option<BorrowedFd<'_>>,
    mask: &SigSet,
) -> Result<pid_t> {
    spawn_with(path, argv, envp, fd, None, mask)
}

/// [`spawn`], with `stdio` (when given) as the child's descriptors 0, 1 and 2.
pub(crate) fn spawn_with(
    path: &CStr,
    argv: &[*const c_char],
    envp: &[*const c_char],
    fd: Option<BorrowedFd<'_>>,
    stdio: Option<[BorrowedFd<'_>; 3]>,
    mask: &SigSet,
) -> Result<pid_t> {
    let call = "posix_spawn";
    if argv.last().is_some_and(|p| !p.is_null()) || envp.last().is_some_and(|p| !p.is_null()) {
        return Err(Error::new(call, libc::EINVAL));
    }
    // The descriptors to place, by target: 0, 1, 2, then 3. The actions run in
    // order, so a source numbered 0 to 3 could be overwritten by an earlier one:
    // such a source is first copied above 3 (close-on-exec; the child's dup2 clears
    // it on the target). That also avoids a dup2 onto its own number, which would
    // leave close-on-exec set (before glibc 2.36).
    let [a, b, c] = stdio.map_or([None; 3], |s| s.map(Some));
    let mut moved: [Option<OwnedFd>; 4] = [None, None, None, None];
    let mut places: [RawFd; 4] = [-1; 4];
    for ((source, place), copy) in [a, b, c, fd].iter().zip(&mut places).zip(&mut moved) {
        if let Some(source) = source {
            *place = source.as_raw_fd();
            if *place <= 3 {
                let dup = super::fd::dup_at_least(*place, 4)?;
                *place = dup.as_raw_fd();
                *copy = Some(dup);
            }
        }
    }
    // SAFETY: the actions and attributes are initialised before use and destroyed
    // after; every pointer passed is valid for the call (`path` NUL-terminated, `argv`
    // and `envp` null-terminated arrays of NUL-terminated strings owned by the caller).
    // The sources in `places` stay open until after the call (`moved` lives on).
    let result = unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        let ret = libc::posix_spawn_file_actions_init(&raw mut actions);
        if ret != 0 {
            return Err(Error::new(call, ret));
        }
        let ret = libc::posix_spawnattr_init(&raw mut attr);
        if ret != 0 {
            libc::posix_spawn_file_actions_destroy(&raw mut actions);
            return Err(Error::new(call, ret));
        }
        let mut pid: pid_t = 0;
        let mut ret = 0;
        for (target, &source) in (0..).zip(&places) {
            if ret == 0 && source >= 0 {
                ret = libc::posix_spawn_file_actions_adddup2(&raw mut actions, source, target);
            }
        }
        if ret == 0 {
            ret = libc::posix_spawnattr_setsigmask(&raw mut attr, &raw const mask.0);
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
        if ret == 0 {
            Ok(pid)
        } else {
            Err(Error::new(call, ret))
        }
    };
    drop(moved);
    result
}

/// `_exit(2)`: ends the process without running anything of the parent's copy.
pub(crate) fn exit(code: c_int) -> ! {
    // SAFETY: `_exit` never returns and touches no user memory.
    unsafe { libc::_exit(code) }
}

/// Waits for the child `pid` and reaps it (EINTR is retried): its wait status.
/// Blocks: for a child that is known to have exited, or outside the event loop.
pub(crate) fn wait(pid: pid_t) -> Result<c_int> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is writable for the call.
        let ret = unsafe { libc::waitpid(pid, &raw mut status, 0) };
        match check("waitpid", ret) {
            Ok(_) => return Ok(status),
            Err(Error {
                errno: libc::EINTR, ..
            }) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reaps one exited child, any of them, without waiting: `Some((pid, status))`, or
/// `None` when none has exited (or there are no children).
pub(crate) fn reap_any() -> Option<(pid_t, c_int)> {
    let mut status = 0;
    // SAFETY: `status` is writable for the call.
    let pid = unsafe { libc::waitpid(-1, &raw mut status, libc::WNOHANG) };
    (pid > 0).then_some((pid, status))
}

/// Whether the child `pid` has exited, without reaping it: its zombie keeps the pid
/// (and the process group of that number) from being reused until it is reaped.
pub(crate) fn has_exited(pid: pid_t) -> Result<bool> {
    let id = libc::id_t::try_from(pid).map_err(|_| Error::new("waitid", libc::EINVAL))?;
    // SAFETY: an all-zero `siginfo_t` is a valid value of the plain C struct.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: `info` is writable for the call.
        let ret = unsafe { libc::waitid(libc::P_PID, id, &raw mut info, flags) };
        match check("waitid", ret) {
            // With WNOHANG and no change, the kernel leaves `si_signo` at 0.
            Ok(_) => return Ok(info.si_signo != 0),
            Err(Error {
                errno: libc::EINTR, ..
            }) => {}
            Err(e) => return Err(e),
        }
    }
}

/// The shell's number for a wait status: the exit code, or 128 + the signal that
/// killed it; `None` for a stop or continue.
pub(crate) fn exit_code(status: c_int) -> Option<i32> {
    if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Some(128 + libc::WTERMSIG(status))
    } else {
        None
    }
}

/// `kill(2)`: `sig` to `pid`; a negative `pid` names a process group, -1 every
/// process this one may signal.
pub(crate) fn kill(pid: pid_t, sig: c_int) -> Result<()> {
    // SAFETY: plain integer arguments.
    check("kill", unsafe { libc::kill(pid, sig) }).map(drop)
}

/// `getpid(2)`.
pub(crate) fn getpid() -> pid_t {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::getpid() }
}

/// `getppid(2)`: 0 when the parent is outside our pid namespace.
pub(crate) fn getppid() -> pid_t {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::getppid() }
}

/// `setsid(2)`: a new session and process group. The raw call, which takes no lock of
/// the C library (the launched child may make it).
pub(crate) fn setsid() -> Result<()> {
    // SAFETY: no arguments.
    check_long("setsid", unsafe { libc::syscall(libc::SYS_setsid) }).map(drop)
}

/// `pidfd_open(2)` (Linux 5.3): a descriptor that names the process `pid` and no
/// other, even once its number is reused; readable once it has exited.
pub(crate) fn pidfd_open(pid: pid_t) -> Result<OwnedFd> {
    // SAFETY: plain integer arguments; the descriptor returned is new.
    unsafe {
        owned(
            "pidfd_open",
            libc::syscall(libc::SYS_pidfd_open, pid, 0 as c_uint),
        )
    }
}

/// Whether the kernel has `clone3(2)` (Linux 5.3), and no seccomp filter hides it:
/// called with no arguments it fails EINVAL where it exists, ENOSYS where not.
pub(crate) fn clone3_exists() -> bool {
    // SAFETY: a null argument of size 0 is refused before the kernel reads or creates
    // anything; nothing is cloned.
    let r = unsafe { libc::syscall(libc::SYS_clone3, ptr::null::<u8>(), 0usize) };
    r == -1 && Error::last("clone3").errno != libc::ENOSYS
}

/// Whether the process of a pidfd is still there (not yet reaped): signal 0 through
/// `pidfd_send_signal(2)`. The pidfd is a number: the probe runner receives it
/// across exec.
pub(crate) fn pidfd_alive(pidfd: RawFd) -> Result<bool> {
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
    match check_long("pidfd_send_signal", ret) {
        Ok(_) => Ok(true),
        Err(Error {
            errno: libc::ESRCH, ..
        }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits up to `timeout_ms` (-1: without limit) for `fd` to become readable (a pidfd:
/// its process has exited): whether it did.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout_ms: c_int) -> Result<bool> {
    let mut one = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `one` is one valid pollfd, writable for the call.
    let n = check("poll", unsafe { libc::poll(&raw mut one, 1, timeout_ms) })?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        // SAFETY: the child only exits.
        let pid = unsafe { fork() }.unwrap();
        if pid == 0 {
            exit(3);
        }
        assert_eq!(exit_code(wait(pid).unwrap()), Some(3));
        // SAFETY: the child only waits to be killed.
        let pid = unsafe { fork() }.unwrap();
        if pid == 0 {
            loop {
                // SAFETY: no arguments; returns only on a signal.
                unsafe { libc::pause() };
            }
        }
        let pidfd = pidfd_open(pid).unwrap();
        use std::os::fd::AsFd;
        use std::os::fd::AsRawFd;
        assert!(pidfd_alive(pidfd.as_raw_fd()).unwrap());
        kill(pid, libc::SIGKILL).unwrap();
        assert!(wait_readable(pidfd.as_fd(), -1).unwrap());
        assert!(has_exited(pid).unwrap());
        assert_eq!(exit_code(wait(pid).unwrap()), Some(128 + libc::SIGKILL));
        assert!(!pidfd_alive(pidfd.as_raw_fd()).unwrap());
        assert_eq!(
            wait(pid).unwrap_err().to_string(),
            "waitpid: No child processes (os error 10)"
        );
    }

    #[test]
    fn spawn_places_the_given_descriptors() {
        use std::os::fd::AsFd;
        let (in_r, in_w) = super::super::fd::pipe().unwrap();
        let (out_r, out_w) = super::super::fd::pipe().unwrap();
        let (three_r, three_w) = super::super::fd::pipe().unwrap();
        // stdout and stderr on one pipe; fd 3 another; stdin a third.
        let script = c"read line; echo \"out $line\"; echo err >&2; echo three >&3";
        let argv = [c"sh".as_ptr(), c"-c".as_ptr(), script.as_ptr(), ptr::null()];
        let envp = [ptr::null()];
        let pid = spawn_with(
            c"/bin/sh",
            &argv,
            &envp,
            Some(three_w.as_fd()),
            Some([in_r.as_fd(), out_w.as_fd(), out_w.as_fd()]),
            &SigSet::of(&[]),
        )
        .unwrap();
        drop((in_r, out_w, three_w));
        super::super::fd::write_all(in_w.as_raw_fd(), b"x\n").unwrap();
        assert_eq!(exit_code(wait(pid).unwrap()), Some(0));
        let read_all = |fd: OwnedFd| {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut s).unwrap();
            s
        };
        assert_eq!(read_all(out_r), "out x\nerr\n");
        assert_eq!(read_all(three_r), "three\n");
    }
}
