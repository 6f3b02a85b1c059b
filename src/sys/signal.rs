//! Signals: the mask, synchronous waits, the signalfd of the event loop, and the reset
//! a child does before exec. No handlers anywhere: berth takes signals synchronously.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::ptr;

use libc::c_int;

use super::{Result, check, owned};

/// A signal set: the listed signals, or every signal.
#[derive(Clone, Copy)]
pub(crate) struct SigSet(pub(super) libc::sigset_t);

impl SigSet {
    /// Exactly `signals`.
    pub(crate) fn of(signals: &[c_int]) -> SigSet {
        // SAFETY: an all-zero `sigset_t` is a valid value, emptied and filled by the
        // calls, which only write into it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&raw mut set);
            for &sig in signals {
                libc::sigaddset(&raw mut set, sig);
            }
            SigSet(set)
        }
    }

    /// Every signal.
    pub(crate) fn all() -> SigSet {
        // SAFETY: an all-zero `sigset_t` is valid and `sigfillset` fills it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&raw mut set);
            SigSet(set)
        }
    }
}

fn sigprocmask(how: c_int, set: &SigSet) -> Result<()> {
    // SAFETY: `set` is a valid set, read for the call; the old mask is not asked for.
    check("sigprocmask", unsafe {
        libc::sigprocmask(how, &raw const set.0, ptr::null_mut())
    })
    .map(drop)
}

/// Adds `set` to the signal mask.
pub(crate) fn block(set: &SigSet) -> Result<()> {
    sigprocmask(libc::SIG_BLOCK, set)
}

/// Sets the signal mask to exactly `set`.
pub(crate) fn set_mask(set: &SigSet) -> Result<()> {
    sigprocmask(libc::SIG_SETMASK, set)
}

/// Waits for one of `set` (which must be blocked) and takes it: its number.
pub(crate) fn wait(set: &SigSet) -> Result<c_int> {
    // SAFETY: `set` is a valid set borrowed for the call; no siginfo is asked for.
    check("sigwaitinfo", unsafe {
        libc::sigwaitinfo(&raw const set.0, ptr::null_mut())
    })
}

/// Blocks `set` and returns a non-blocking signalfd for it.
pub(crate) fn signalfd(set: &SigSet) -> Result<OwnedFd> {
    block(set)?;
    // SAFETY: `set` is a valid set, read for the call; -1 asks for a new descriptor,
    // which the result owns.
    unsafe {
        owned(
            "signalfd",
            libc::signalfd(-1, &raw const set.0, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK).into(),
        )
    }
}

/// A signal read from a signalfd, with what the kernel says of its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Received {
    pub(crate) signal: i32,
    /// `ssi_code`: how it was sent (`SI_USER` for kill, `SI_KERNEL`, `CLD_*`...).
    pub(crate) code: i32,
    /// `ssi_pid`: the sender, in berth's pid namespace (0 from an ancestor one).
    pub(crate) pid: u32,
}

/// Reads the pending signals from the non-blocking signalfd `fd` into `out`.
pub(crate) fn read_signals(fd: BorrowedFd<'_>, out: &mut Vec<Received>) {
    out.clear();
    loop {
        // SAFETY: an all-zero siginfo is a valid value of the plain C struct.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is writable for `size` bytes for the call.
        let n = unsafe { libc::read(fd.as_raw_fd(), (&raw mut info).cast(), size) };
        if usize::try_from(n).ok() != Some(size) {
            return;
        }
        out.push(Received {
            signal: i32::try_from(info.ssi_signo).unwrap_or(0),
            code: info.ssi_code,
            pid: info.ssi_pid,
        });
    }
}

/// Every catchable signal back to its default disposition, and an empty signal mask:
/// the supervisor blocks signals for its signalfd, and an app must not inherit that.
pub(crate) fn reset_all() -> Result<()> {
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
    set_mask(&SigSet::of(&[]))
}
