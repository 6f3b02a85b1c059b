//! Namespaces: leaving (`unshare`), joining (`setns`), the user namespace that owns
//! one, and the host name of a UTS namespace. (Creating them is `clone`'s, in
//! [`process`](super::process).)

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use libc::c_int;

use super::{Result, check, owned};

/// `unshare(2)`: new namespaces of the kinds in `flags` (`CLONE_NEW*`).
pub(crate) fn unshare(flags: c_int) -> Result<()> {
    // SAFETY: plain integer argument.
    check("unshare", unsafe { libc::unshare(flags) }).map(drop)
}

/// `setns(2)`: joins the namespace open at `fd` (of kind `nstype`, or 0 for any).
pub(crate) fn setns(fd: BorrowedFd<'_>, nstype: c_int) -> Result<()> {
    // SAFETY: plain integer arguments.
    check("setns", unsafe { libc::setns(fd.as_raw_fd(), nstype) }).map(drop)
}

/// The user namespace that owns the namespace open at `ns` (`NS_GET_USERNS`, Linux
/// 4.9; ENOTTY before).
pub(crate) fn owning_user_namespace(ns: BorrowedFd<'_>) -> Result<OwnedFd> {
    const NS_GET_USERNS: libc::c_ulong = 0xb701; // _IO(0xb7, 0x1)
    // SAFETY: the request takes no argument and returns a new descriptor.
    unsafe {
        owned(
            "ioctl NS_GET_USERNS",
            libc::ioctl(ns.as_raw_fd(), NS_GET_USERNS as _).into(),
        )
    }
}

/// `sethostname(2)`: the host name of the current UTS namespace.
pub(crate) fn sethostname(name: &[u8]) -> Result<()> {
    // SAFETY: `name` is valid for `name.len()` bytes for the call.
    check("sethostname", unsafe {
        libc::sethostname(name.as_ptr().cast(), name.len())
    })
    .map(drop)
}
