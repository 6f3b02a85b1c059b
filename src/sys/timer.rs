//! The monotonic clock and the loop's timerfd.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::{Result, check, owned};

/// A monotonic, non-blocking timerfd, armed for one absolute deadline at a time.
pub(crate) struct Timer(OwnedFd);

impl Timer {
    pub(crate) fn new() -> Result<Timer> {
        // SAFETY: plain integer arguments; the descriptor returned is new.
        let fd = unsafe {
            owned(
                "timerfd_create",
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_CLOEXEC | libc::TFD_NONBLOCK,
                )
                .into(),
            )
        }?;
        Ok(Timer(fd))
    }

    /// Arms for `deadline_ms` on the monotonic clock ([`now_ms`]), or disarms with
    /// `None`.
    pub(crate) fn arm(&self, deadline_ms: Option<u64>) -> Result<()> {
        // SAFETY: an all-zero itimerspec (disarmed) is a valid value.
        let mut spec: libc::itimerspec = unsafe { std::mem::zeroed() };
        if let Some(ms) = deadline_ms {
            // A zero it_value disarms: the earliest deadline is at least 1 ns.
            let ms = ms.max(1);
            // time_t is 32 bits on some 32-bit targets: the deadline saturates there.
            spec.it_value.tv_sec = (ms / 1000).try_into().unwrap_or(libc::c_long::MAX as _);
            spec.it_value.tv_nsec = ((ms % 1000) * 1_000_000).try_into().unwrap_or(0);
        }
        // SAFETY: `spec` is valid and read for the call; no old value is asked for.
        check("timerfd_settime", unsafe {
            libc::timerfd_settime(
                self.0.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &raw const spec,
                std::ptr::null_mut(),
            )
        })
        .map(drop)
    }

    /// Consumes an expiry, if there is one.
    pub(crate) fn clear(&self) {
        let mut buf = [0u8; 8];
        // Nothing to read (EAGAIN) means nothing expired: nothing to consume.
        let _ = super::fd::read(self.0.as_fd(), &mut buf);
    }
}

impl AsFd for Timer {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Milliseconds on the monotonic clock (the timers' clock).
pub(crate) fn now_ms() -> u64 {
    // SAFETY: an all-zero timespec is valid; clock_gettime fills it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is writable for the call. CLOCK_MONOTONIC always exists, so the
    // call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1000
        + u64::try_from(ts.tv_nsec).unwrap_or(0) / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::epoll::Epoll;

    #[test]
    fn a_deadline_in_the_past_fires_at_once() {
        let timer = Timer::new().unwrap();
        let epoll = Epoll::new().unwrap();
        epoll.add(timer.as_fd(), 1, false).unwrap();
        timer.arm(Some(now_ms().saturating_sub(1))).unwrap();
        let mut tokens = Vec::new();
        epoll.wait(&mut tokens).unwrap();
        assert_eq!(tokens, [1]);
        timer.clear();
        timer.arm(None).unwrap();
    }
}
