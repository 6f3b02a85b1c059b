//! Kernel modules and BPF programs: code berth hands to the kernel.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use libc::{c_int, c_long};

use super::{Result, check_long, owned};

/// `finit_module(2)` of the module file open at `file`, with no parameters.
pub(crate) fn finit_module(file: BorrowedFd<'_>, flags: c_int) -> Result<()> {
    // SAFETY: the descriptor is open for the call; the empty parameter string is a
    // NUL-terminated literal.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            file.as_raw_fd(),
            c"".as_ptr(),
            flags,
        )
    };
    check_long("finit_module", ret).map(drop)
}

/// The `bpf(2)` commands berth uses, each with its `union bpf_attr` prefix.
///
/// # Safety
///
/// `attr` must be a fully initialised `repr(C)` prefix of `union bpf_attr` for `cmd`,
/// and every pointer inside it must point to memory valid for what the command does
/// with it (read a program, write a log) for the duration of the call.
pub(crate) unsafe fn bpf<T>(cmd: c_long, attr: &mut T) -> Result<c_long> {
    // SAFETY: by the caller's promise; the size passed is `attr`'s own.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            std::mem::size_of::<T>(),
        )
    };
    check_long("bpf", ret)
}

/// [`bpf`] for a command that returns a new descriptor (`BPF_PROG_LOAD`).
///
/// # Safety
///
/// As for [`bpf`].
pub(crate) unsafe fn bpf_fd<T>(cmd: c_long, attr: &mut T) -> Result<OwnedFd> {
    // SAFETY: by the caller's promise; the size passed is `attr`'s own; the command
    // returns a new descriptor (close-on-exec, as every bpf descriptor is).
    unsafe {
        owned(
            "bpf",
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                std::ptr::from_mut(attr),
                std::mem::size_of::<T>(),
            ),
        )
    }
}
