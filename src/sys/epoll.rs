//! The event loop's epoll set.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::{Error, Result, check, owned};

/// An epoll set.
pub(crate) struct Epoll(OwnedFd);

impl Epoll {
    /// A new, empty, close-on-exec set.
    pub(crate) fn new() -> Result<Epoll> {
        // SAFETY: plain integer argument; the descriptor returned is new.
        let fd = unsafe {
            owned(
                "epoll_create1",
                libc::epoll_create1(libc::EPOLL_CLOEXEC).into(),
            )
        }?;
        Ok(Epoll(fd))
    }

    /// Watches `fd` for reading (or for writing when `write`), and for the peer's
    /// hang-up, reported with `token`.
    pub(crate) fn add(&self, fd: BorrowedFd<'_>, token: u64, write: bool) -> Result<()> {
        let events = if write { libc::EPOLLOUT } else { libc::EPOLLIN };
        let mut ev = libc::epoll_event {
            events: u32::try_from(events | libc::EPOLLRDHUP).unwrap_or(0),
            u64: token,
        };
        // SAFETY: `ev` is a valid event borrowed for the call.
        check("epoll_ctl add", unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &raw mut ev,
            )
        })
        .map(drop)
    }

    /// Watches `fd`, added already, for reading and also for writing when `write`.
    pub(crate) fn modify(&self, fd: BorrowedFd<'_>, token: u64, write: bool) -> Result<()> {
        let events = libc::EPOLLIN | libc::EPOLLRDHUP | if write { libc::EPOLLOUT } else { 0 };
        let mut ev = libc::epoll_event {
            events: u32::try_from(events).unwrap_or(0),
            u64: token,
        };
        // SAFETY: `ev` is a valid event borrowed for the call.
        check("epoll_ctl mod", unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_MOD,
                fd.as_raw_fd(),
                &raw mut ev,
            )
        })
        .map(drop)
    }

    /// Stops watching `fd` (closing it does too; this is for descriptors kept open).
    pub(crate) fn remove(&self, fd: BorrowedFd<'_>) -> Result<()> {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL since Linux 2.6.9.
        check("epoll_ctl del", unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd.as_raw_fd(),
                std::ptr::null_mut(),
            )
        })
        .map(drop)
    }

    /// Waits without a time limit for events (EINTR is retried); `tokens` gets the
    /// tokens that are ready.
    pub(crate) fn wait(&self, tokens: &mut Vec<u64>) -> Result<()> {
        // SAFETY: an all-zero epoll_event is a valid value of the plain C struct.
        let mut events = [unsafe { std::mem::zeroed::<libc::epoll_event>() }; 32];
        let len = libc::c_int::try_from(events.len()).unwrap_or(32);
        loop {
            // SAFETY: `events` is writable for `len` entries for the call.
            let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), len, -1) };
            match check("epoll_wait", n) {
                Err(Error {
                    errno: libc::EINTR, ..
                }) => {}
                Err(e) => return Err(e),
                Ok(n) => {
                    tokens.clear();
                    tokens.extend(
                        events
                            .iter()
                            .take(usize::try_from(n).unwrap_or(0))
                            .map(|e| e.u64),
                    );
                    return Ok(());
                }
            }
        }
    }
}

impl AsFd for Epoll {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fd;

    #[test]
    fn reports_the_token_of_what_is_ready() {
        let epoll = Epoll::new().unwrap();
        let (r, w) = fd::pipe().unwrap();
        epoll.add(r.as_fd(), 7, false).unwrap();
        assert_eq!(
            epoll.add(r.as_fd(), 7, false).unwrap_err(),
            Error::new("epoll_ctl add", libc::EEXIST)
        );
        fd::write_all(std::os::fd::AsRawFd::as_raw_fd(&w), b"x").unwrap();
        let mut tokens = Vec::new();
        epoll.wait(&mut tokens).unwrap();
        assert_eq!(tokens, [7]);
        epoll.remove(r.as_fd()).unwrap();
    }
}
