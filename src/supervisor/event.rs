//! The kernel side of the event loop, as the supervisor core calls it today: one epoll
//! set, a signalfd for the signals the supervisor handles, and one timerfd armed for
//! the earliest deadline. No threads, no polling.
//!
//! A thin adapter over `crate::sys` (`epoll`, `timer`, `signal`, `process`, `fd`),
//! kept only so the current core compiles unchanged while it is rewritten: it takes
//! descriptor numbers where the core passes them and turns `sys::Error` into
//! `io::Error`. The new core calls `crate::sys` directly and this module goes.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::sys;
pub(crate) use crate::sys::signal::Received;
pub(crate) use crate::sys::timer::now_ms;

/// The signals the supervisor takes through its signalfd (blocked for the whole
/// process before any app is started; every launched child resets its mask).
pub(crate) const SIGNALS: [i32; 7] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGPWR,
];

/// The descriptor number `fd`, borrowed for one call.
fn borrow<'a>(fd: RawFd) -> BorrowedFd<'a> {
    // SAFETY: the core passes only descriptors it owns and keeps open across the call
    // (the `as_raw_fd()` of a pipe, pidfd, socket or timer it holds); the borrow does
    // not outlive the call that uses it.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// The epoll set.
pub(crate) struct Epoll(sys::epoll::Epoll);

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        Ok(Epoll(sys::epoll::Epoll::new()?))
    }

    /// Watches `fd` for reading (and writing when `write`), reported with `token`.
    pub(crate) fn add(&self, fd: RawFd, token: u64, write: bool) -> io::Result<()> {
        Ok(self.0.add(borrow(fd), token, write)?)
    }

    /// Stops watching `fd` (closing it does too; this is for descriptors kept open).
    pub(crate) fn remove(&self, fd: RawFd) {
        // Not watched (already removed, or never added): nothing to do.
        let _ = self.0.remove(borrow(fd));
    }

    /// Waits for events (EINTR is retried); returns the tokens that are ready.
    pub(crate) fn wait(&self, tokens: &mut Vec<u64>) -> io::Result<()> {
        Ok(self.0.wait(tokens)?)
    }
}

/// Blocks [`SIGNALS`] (before anything else as PID 1, so none is lost during the
/// boot).
pub(crate) fn block_signals() -> io::Result<()> {
    Ok(sys::signal::block(&sys::signal::SigSet::of(&SIGNALS))?)
}

/// Blocks [`SIGNALS`] and returns a signalfd for them.
pub(crate) fn signalfd() -> io::Result<OwnedFd> {
    Ok(sys::signal::signalfd(&sys::signal::SigSet::of(&SIGNALS))?)
}

/// Reads the pending signals from a signalfd.
pub(crate) fn read_signals(fd: &OwnedFd, out: &mut Vec<Received>) {
    sys::signal::read_signals(fd.as_fd(), out);
}

/// A monotonic timerfd, armed for one absolute deadline at a time.
pub(crate) struct Timer(sys::timer::Timer);

impl Timer {
    pub(crate) fn new() -> io::Result<Timer> {
        Ok(Timer(sys::timer::Timer::new()?))
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }

    /// Arms for `deadline_ms` on the monotonic clock, or disarms with `None`.
    pub(crate) fn arm(&self, deadline_ms: Option<u64>) -> io::Result<()> {
        Ok(self.0.arm(deadline_ms)?)
    }

    /// Consumes an expiry.
    pub(crate) fn clear(&self) {
        self.0.clear();
    }
}

/// Marks `fd` non-blocking.
pub(crate) fn nonblocking(fd: RawFd) -> io::Result<()> {
    Ok(sys::fd::nonblocking(borrow(fd))?)
}

/// Reaps one exited child: `Some((pid, status))`, or `None` when nothing is left.
pub(crate) fn reap() -> Option<(i32, i32)> {
    sys::process::reap_any()
}

/// Makes this process the reaper of its orphaned descendants when it is not PID 1.
pub(crate) fn become_subreaper() -> io::Result<()> {
    Ok(sys::caps::become_subreaper()?)
}

/// Sends `signal` to `pid` (one that is already gone is no error here).
pub(crate) fn signal(pid: i32, signal: i32) {
    let _ = sys::process::kill(pid, signal);
}

/// `read(2)` into `buf`: the byte count (0 at end of file), or the error
/// (`WouldBlock` when a non-blocking descriptor has nothing).
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    Ok(sys::fd::read(borrow(fd), buf)?)
}

/// `write(2)` of `bytes`: how many were written.
pub(crate) fn write(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    Ok(sys::fd::write(borrow(fd), bytes)?)
}
