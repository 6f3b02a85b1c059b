//! Closing descriptors in the launched child, without allocating.

use std::os::fd::RawFd;

use libc::c_uint;

/// Closes every descriptor except those in `keep` (any order; negative entries
/// are ignored, and `keep` is sorted in place): `close_range(2)` over each gap
/// (Linux 5.9), else one `close` per possible descriptor of the gap.
pub fn close_except(keep: &mut [RawFd]) {
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
    // and uses none of them again.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0 as c_uint) };
    if ret == 0 {
        return;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a writable `rlimit` borrowed for the call.
    let end = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } == 0 {
        RawFd::try_from(limit.rlim_cur.min(1 << 20)).unwrap_or(1 << 20)
    } else {
        1 << 20
    };
    for fd in first..end.min(last.saturating_add(1)) {
        // SAFETY: plain integer argument; EBADF for a number not open is expected.
        unsafe { libc::close(fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_exactly_what_it_is_told() {
        // In a forked child: closing descriptors of the test harness's threads
        // would break them.
        // SAFETY: the child only makes system calls and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: plain integer arguments.
            let a = unsafe { libc::dup(2) };
            // SAFETY: as above.
            let b = unsafe { libc::dup(2) };
            // SAFETY: as above.
            let c = unsafe { libc::dup(2) };
            close_except(&mut [c, -1, 1, a]);
            // SAFETY: plain integer arguments (F_GETFD only reads).
            let open = |fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
            let ok = !open(0) && open(1) && !open(2) && open(a) && !open(b) && open(c);
            // SAFETY: ends the forked child at once.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: `status` is writable for the call.
        assert_eq!(unsafe { libc::waitpid(pid, &raw mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
