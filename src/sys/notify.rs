//! Event descriptors the kernel writes to: an inotify watch (cgroup v2's
//! `memory.events`) and an eventfd (cgroup v1's OOM notification).

use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd};

use super::{Result, check, owned};

/// A non-blocking, close-on-exec inotify instance watching `path` for modification.
pub(crate) fn watch_modify(path: &CStr) -> Result<OwnedFd> {
    // SAFETY: plain integer arguments; the descriptor returned is new.
    let fd = unsafe {
        owned(
            "inotify_init1",
            libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK).into(),
        )
    }?;
    // SAFETY: `path` is NUL-terminated and borrowed for the call.
    check("inotify_add_watch", unsafe {
        libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), libc::IN_MODIFY)
    })?;
    Ok(fd)
}

/// A non-blocking, close-on-exec eventfd counting from 0.
pub(crate) fn eventfd() -> Result<OwnedFd> {
    // SAFETY: plain integer arguments; the descriptor returned is new.
    unsafe {
        owned(
            "eventfd",
            libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK).into(),
        )
    }
}
