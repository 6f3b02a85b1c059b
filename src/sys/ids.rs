//! User and group ids: `setgroups`, `setresgid`, `setresuid`.
//!
//! Raw system calls: the C library's wrappers apply an id change to every thread of
//! the process they believe exists (glibc's and musl's "setxid" broadcast), and in a
//! child cloned from a multi-threaded process they wait forever for threads that were
//! not copied. On 32-bit ARM the 32-bit-id variants are the ones to call.

use std::ptr;

use libc::{c_long, gid_t, uid_t};

use super::{Result, check_long};

/// The id-changing system calls: (setgroups, setresgid, setresuid).
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

/// No supplementary groups, then `gid` and `uid` as real, effective and saved ids.
pub(crate) fn set_ids(uid: uid_t, gid: gid_t) -> Result<()> {
    clear_groups()?;
    set_gid_uid(uid, gid)
}

/// `setgroups(0, NULL)`: no supplementary groups.
pub(crate) fn clear_groups() -> Result<()> {
    // SAFETY: a zero-length list with a null pointer is the documented way to clear
    // the supplementary groups.
    check_long("setgroups", unsafe {
        libc::syscall(ID_CALLS.0, 0, ptr::null::<gid_t>())
    })
    .map(drop)
}

/// `setgroups(groups)`: exactly these supplementary groups, none when empty.
pub(crate) fn set_groups(groups: &[gid_t]) -> Result<()> {
    // SAFETY: `groups` is readable for its length for the call (a dangling pointer
    // with a zero length is not read).
    check_long("setgroups", unsafe {
        libc::syscall(ID_CALLS.0, groups.len(), groups.as_ptr())
    })
    .map(drop)
}

/// `setresgid(gid, gid, gid)` then `setresuid(uid, uid, uid)`.
pub(crate) fn set_gid_uid(uid: uid_t, gid: gid_t) -> Result<()> {
    // SAFETY: plain integer arguments.
    check_long("setresgid", unsafe {
        libc::syscall(ID_CALLS.1, gid, gid, gid)
    })?;
    // SAFETY: plain integer arguments.
    check_long("setresuid", unsafe {
        libc::syscall(ID_CALLS.2, uid, uid, uid)
    })
    .map(drop)
}
