//! `berth exec`'s client side: the standard descriptors (or a pseudo-terminal's,
//! with `-t`) go to the supervisor with the request, and the exit status of the
//! command comes back.

use std::os::fd::{AsFd, OwnedFd};

/// Sends `request` with this process's stdin, stdout and stderr attached, and waits for
/// the command's exit status.
pub fn run(sock: OwnedFd, request: &str, tty: bool) -> u8 {
    if tty {
        eprintln!("berth exec: -t is not built yet");
        return 2;
    }
    // SAFETY: 0, 1 and 2 stay open for the whole life of the process.
    let stdio = [0, 1, 2].map(|fd| unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) });
    let mut rest = request.as_bytes();
    let mut first = true;
    while !rest.is_empty() {
        let fds: &[std::os::fd::BorrowedFd<'_>] = if first { &stdio } else { &[] };
        match crate::sys::net::send_with_fds(sock.as_fd(), rest, fds) {
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
            Err(e) => {
                eprintln!("berth exec: sending the request to berth: {e}");
                return 1;
            }
        }
        first = false;
    }
    super::client::relay(sock, false)
}
