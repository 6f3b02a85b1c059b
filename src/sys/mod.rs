//! berth's one syscall layer: every raw call to the kernel, one module per mechanism.
//!
//! Nothing outside this module calls `libc` functions or holds `unsafe` for a system
//! call; the rest of berth uses these wrappers. They follow three rules:
//!
//! - One error type, [`Error`]: the call's name and its errno. Callers add what was
//!   attempted on what (the app, the path, the step of a launch).
//! - Descriptors berth owns travel as [`OwnedFd`](std::os::fd::OwnedFd) and
//!   [`BorrowedFd`](std::os::fd::BorrowedFd); a [`RawFd`](std::os::fd::RawFd) appears
//!   only where the kernel's interface needs a number (`AT_FDCWD`, a descriptor passed
//!   across exec, the launched child between `clone` and `close_except`).
//! - A wrapper whose correct use depends on more than its types (the fork and clone
//!   family) is an `unsafe fn` with a `# Safety` section.
//!
//! The launched child and the probes' children run between fork and exec, where only
//! async-signal-safe work is allowed (the supervisor is single-threaded, the test
//! harness is not): so the wrappers allocate nothing and take ready-made `CStr`s.

use std::fmt;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use libc::{c_int, c_long};

pub(crate) mod caps;
pub(crate) mod epoll;
pub(crate) mod fd;
pub(crate) mod fs;
pub(crate) mod ids;
pub(crate) mod module;
pub(crate) mod mount;
pub(crate) mod net;
pub(crate) mod notify;
pub(crate) mod ns;
pub(crate) mod power;
pub(crate) mod process;
pub(crate) mod rlimit;
pub(crate) mod signal;
#[cfg(all(berth_no_unwinder, panic = "abort"))]
mod threadname;
pub(crate) mod timer;
pub(crate) mod tty;
#[cfg(all(berth_no_unwinder, panic = "abort"))]
mod unwind;

/// A failed system call: its name and errno.
///
/// `pub` (not `pub(crate)`) only because public functions of the mechanisms return it
/// (`launch::rootfs::apply`); nothing else of `sys` is reachable from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    pub(crate) call: &'static str,
    pub(crate) errno: i32,
}

impl Error {
    pub(crate) const fn new(call: &'static str, errno: i32) -> Error {
        Error { call, errno }
    }

    /// The error of `call`, which has just failed (errno read now).
    pub(crate) fn last(call: &'static str) -> Error {
        Error::new(call, errno())
    }

    /// The name of the call that failed.
    pub fn call(&self) -> &'static str {
        self.call
    }

    /// The errno it failed with.
    pub fn errno(&self) -> i32 {
        self.errno
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.call,
            io::Error::from_raw_os_error(self.errno)
        )
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    /// The errno alone (`raw_os_error` and `kind` work as for any OS error): for
    /// callers whose message already names what was attempted, call included.
    fn from(e: Error) -> io::Error {
        io::Error::from_raw_os_error(e.errno)
    }
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

/// The calling thread's errno.
pub(crate) fn errno() -> i32 {
    // SAFETY: `__errno_location` returns the calling thread's errno slot, valid for the
    // thread's life; reading it has no side effect.
    unsafe { *libc::__errno_location() }
}

/// A `-1`-on-error result of `call` as `Result`.
fn check(call: &'static str, ret: c_int) -> Result<c_int> {
    if ret < 0 {
        Err(Error::last(call))
    } else {
        Ok(ret)
    }
}

/// As [`check`], for `syscall(2)`'s `long`.
fn check_long(call: &'static str, ret: c_long) -> Result<c_long> {
    if ret < 0 {
        Err(Error::last(call))
    } else {
        Ok(ret)
    }
}

/// Takes ownership of the descriptor `call` has just returned (or its error).
///
/// # Safety
///
/// A non-negative `ret` must be a descriptor the call has just created, owned by
/// nobody else.
unsafe fn owned(call: &'static str, ret: c_long) -> Result<OwnedFd> {
    let fd = c_int::try_from(check_long(call, ret)?).map_err(|_| Error::new(call, libc::EBADF))?;
    // SAFETY: by the caller's promise, `fd` is new and unowned.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
