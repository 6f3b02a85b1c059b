//! Descriptors: pipes, reads and writes, duplicating, close-on-exec, and closing all
//! but a few in the launched child.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use libc::c_uint;

use super::{Error, Result, check, owned};

/// A close-on-exec pipe: (read end, write end).
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds: [RawFd; 2] = [-1; 2];
    // SAFETY: `fds` is writable for the two descriptors the call stores.
    check("pipe2", unsafe {
        libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC)
    })?;
    let [r, w] = fds;
    // SAFETY: both descriptors were just created by the successful call.
    unsafe { Ok((owned("pipe2", r.into())?, owned("pipe2", w.into())?)) }
}

/// `read(2)` into `buf`: the byte count (0 at end of file); EAGAIN when a
/// non-blocking descriptor has nothing.
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: `buf` is writable for its length for the call.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| Error::last("read"))
}

/// `write(2)` of `bytes`: the count written; EAGAIN when a non-blocking descriptor
/// takes nothing now.
pub(crate) fn write(fd: BorrowedFd<'_>, bytes: &[u8]) -> Result<usize> {
    // SAFETY: `bytes` is readable for its length for the call.
    let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    usize::try_from(n).map_err(|_| Error::last("write"))
}

/// `poll(2)` of `fds` without a time limit (EINTR is retried): how many have events.
/// An entry with a negative descriptor is ignored.
pub(crate) fn poll(fds: &mut [libc::pollfd]) -> Result<usize> {
    let n = libc::nfds_t::try_from(fds.len()).map_err(|_| Error::new("poll", libc::EINVAL))?;
    loop {
        // SAFETY: `fds` is writable for its `n` entries for the call.
        match check("poll", unsafe { libc::poll(fds.as_mut_ptr(), n, -1) }) {
            Ok(ready) => return Ok(usize::try_from(ready).unwrap_or(0)),
            Err(Error {
                errno: libc::EINTR, ..
            }) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes all of `bytes` (a handful: a pid for a cgroup's `cgroup.procs` or `tasks`)
/// to the descriptor number `fd`, retrying on EINTR. For the launched child, which
/// holds its parent's descriptors as numbers.
pub(crate) fn write_all(fd: RawFd, mut bytes: &[u8]) -> Result<()> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is readable for its length for the call.
        let ret = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        match usize::try_from(ret) {
            Ok(0) => return Err(Error::new("write", libc::EIO)),
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(_) if super::errno() == libc::EINTR => {}
            Err(_) => return Err(Error::last("write")),
        }
    }
    Ok(())
}

/// Marks `fd` non-blocking.
pub(crate) fn nonblocking(fd: BorrowedFd<'_>) -> Result<()> {
    set_nonblocking(fd.as_raw_fd(), true)
}

/// Sets or clears `O_NONBLOCK` of the descriptor number `fd` (one inherited by
/// number, as a job's report socket).
pub(crate) fn set_nonblocking(fd: RawFd, on: bool) -> Result<()> {
    // SAFETY: plain integer arguments.
    let flags = check("fcntl F_GETFL", unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let flags = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: plain integer arguments.
    check("fcntl F_SETFL", unsafe {
        libc::fcntl(fd, libc::F_SETFL, flags)
    })
    .map(drop)
}

/// A close-on-exec duplicate of `fd`, numbered `min` or above (`F_DUPFD_CLOEXEC`).
/// `fd` is a number: it may be one the launched child holds from its parent.
pub(crate) fn dup_at_least(fd: RawFd, min: RawFd) -> Result<OwnedFd> {
    // SAFETY: plain integer arguments; the duplicate is new and owned by the result.
    unsafe {
        owned(
            "fcntl F_DUPFD_CLOEXEC",
            libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min).into(),
        )
    }
}

/// `dup3(old, new, 0)`, or clearing close-on-exec when they are the same number: the
/// descriptor `new` survives exec. For a child about to exec.
pub(crate) fn dup_to(old: RawFd, new: RawFd) -> Result<()> {
    if old == new {
        // SAFETY: plain integer arguments.
        return check("fcntl F_SETFD", unsafe {
            libc::fcntl(new, libc::F_SETFD, 0)
        })
        .map(drop);
    }
    // SAFETY: plain integer arguments; `new` is replaced atomically.
    check("dup3", unsafe { libc::dup3(old, new, 0) }).map(drop)
}

/// Marks the descriptor number `fd` close-on-exec.
pub(crate) fn set_cloexec(fd: RawFd) -> Result<()> {
    // SAFETY: plain integer arguments.
    check("fcntl F_SETFD", unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC)
    })
    .map(drop)
}

/// Marks every descriptor from `first` up close-on-exec: `close_range(2)` (Linux 5.11),
/// else one `fcntl` per possible descriptor.
pub(crate) fn cloexec_from(first: RawFd) -> Result<()> {
    const CLOSE_RANGE_CLOEXEC: c_uint = 1 << 2;
    let lo = c_uint::try_from(first).map_err(|_| Error::new("close_range", libc::EBADF))?;
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, lo, c_uint::MAX, CLOSE_RANGE_CLOEXEC) };
    if ret == 0 {
        return Ok(());
    }
    let last = super::rlimit::open_files_limit()?;
    for fd in first..last {
        // SAFETY: plain integer arguments; EBADF for a closed number is expected.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// Closes every descriptor except those in `keep` (any order; negative entries are
/// ignored, and `keep` is sorted in place): `close_range(2)` over each gap (Linux 5.9),
/// else one `close` per possible descriptor of the gap.
///
/// For a child after fork or clone, which owns its copies of every descriptor and
/// closes them without anything else of the process using them again.
pub(crate) fn close_except(keep: &mut [RawFd]) {
    keep.sort_unstable();
    let mut next: RawFd = 0;
    for &fd in keep.iter().filter(|&&fd| fd >= 0) {
        if fd > next {
            close_range(next, fd - 1);
        }
        next = next.max(fd.saturating_add(1));
    }
    close_range(next, RawFd::MAX);
}

/// Closes `first..=last`.
fn close_range(first: RawFd, last: RawFd) {
    let (Ok(lo), Ok(hi)) = (c_uint::try_from(first), c_uint::try_from(last)) else {
        return;
    };
    // SAFETY: plain integer arguments; the child owns every descriptor of the range
    // and uses none of them again (see `close_except`).
    let ret = unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0 as c_uint) };
    if ret == 0 {
        return;
    }
    let end = super::rlimit::open_files_limit().unwrap_or(1 << 20);
    for fd in first..end.min(last.saturating_add(1)) {
        // SAFETY: plain integer argument; as above. EBADF for a number not open is
        // expected.
        unsafe { libc::close(fd) };
    }
}

/// Writes `fd`'s path in `/proc/self/fd/` into `buf` as a C string, for the calls that
/// take a path but must act on exactly the file already opened.
pub(crate) fn fd_path(fd: RawFd, buf: &mut [u8; 32]) -> &CStr {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    let mut digits = [0u8; 12];
    let mut n = u32::try_from(fd).unwrap_or(0);
    let mut len = 0;
    loop {
        if let Some(d) = digits.get_mut(len) {
            // `n % 10` is below 10, so the cast cannot truncate.
            *d = b'0' + (n % 10) as u8;
        }
        len += 1;
        n /= 10;
        if n == 0 || len == digits.len() {
            break;
        }
    }
    let mut at = 0;
    for &b in PREFIX.iter().chain(digits.iter().take(len).rev()) {
        if let Some(slot) = buf.get_mut(at) {
            *slot = b;
        }
        at += 1;
    }
    if let Some(slot) = buf.get_mut(at) {
        *slot = 0;
    }
    CStr::from_bytes_until_nul(buf).unwrap_or(c"/proc/self/fd/")
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::sys::process;

    #[test]
    fn fd_paths() {
        let mut buf = [0u8; 32];
        assert_eq!(fd_path(0, &mut buf), c"/proc/self/fd/0");
        assert_eq!(fd_path(7, &mut buf), c"/proc/self/fd/7");
        assert_eq!(fd_path(1234, &mut buf), c"/proc/self/fd/1234");
        assert_eq!(fd_path(i32::MAX, &mut buf), c"/proc/self/fd/2147483647");
    }

    #[test]
    fn a_pipe_carries_bytes_and_says_end_of_file() {
        let (r, w) = pipe().unwrap();
        write_all(w.as_raw_fd(), b"abc").unwrap();
        drop(w);
        let mut buf = [0u8; 8];
        assert_eq!(read(r.as_fd(), &mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
        assert_eq!(read(r.as_fd(), &mut buf).unwrap(), 0);
    }

    #[test]
    fn an_empty_nonblocking_pipe_says_eagain_with_the_call() {
        let (r, _w) = pipe().unwrap();
        nonblocking(r.as_fd()).unwrap();
        let e = read(r.as_fd(), &mut [0u8; 4]).unwrap_err();
        assert_eq!(e, Error::new("read", libc::EAGAIN));
        assert_eq!(
            e.to_string(),
            "read: Resource temporarily unavailable (os error 11)"
        );
    }

    #[test]
    fn keeps_exactly_what_it_is_told() {
        // In a forked child: closing descriptors of the test harness's threads
        // would break them.
        // SAFETY: the child only makes system calls and exits.
        let pid = unsafe { process::fork() }.unwrap();
        if pid == 0 {
            let dup = || dup_at_least(2, 3).map(std::os::fd::IntoRawFd::into_raw_fd);
            let (Ok(a), Ok(b), Ok(c)) = (dup(), dup(), dup()) else {
                process::exit(2)
            };
            close_except(&mut [c, -1, 1, a]);
            // SAFETY: plain integer arguments (F_GETFD only reads).
            let open = |fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
            let ok = !open(0) && open(1) && !open(2) && open(a) && !open(b) && open(c);
            process::exit(if ok { 0 } else { 1 });
        }
        assert_eq!(process::wait(pid).unwrap(), 0);
    }
}
