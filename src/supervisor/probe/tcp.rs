//! The TCP probe, and the connection of the HTTP probe: a non-blocking connect made
//! from inside the app's network namespace.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sys::{self, Error};

use super::{context, from};

/// The calling thread's own network namespace.
const OWN_NETNS: &str = "/proc/thread-self/ns/net";

/// Starts a TCP connection to `127.0.0.1:port` inside the network namespace `netns`
/// (an open `/proc/PID/ns/net`; `None` is the calling thread's own): the tcp probe.
///
/// See [`tcp_connect_addr_in`].
pub fn tcp_connect_in(netns: Option<BorrowedFd<'_>>, port: u16) -> io::Result<OwnedFd> {
    tcp_connect_addr_in(netns, SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// Starts a TCP connection to `addr` inside the network namespace `netns` (an open
/// `/proc/PID/ns/net`; `None` is the calling thread's own), without waiting.
///
/// The socket is made in the app's namespace, so the connection is routed there, and
/// the thread goes back to its own namespace before `connect`: it joins (`setns`), makes
/// the socket, returns. The socket is non-blocking and close-on-exec. Wait until it is
/// writable (epoll `EPOLLOUT`; an error or hang-up also wakes), then read the outcome
/// with [`tcp_result`]. A connection that fails at once (`ENETUNREACH` when the
/// namespace's loopback is down) is an error here already.
///
/// If the thread cannot return to its own namespace, the socket is closed and the error
/// says so: the thread is then still in the app's namespace, and everything it makes
/// afterwards would be made there, so the caller must treat that error as fatal. (It
/// needs the failure of a `setns` into a namespace the thread was just in, holding an
/// open descriptor of it and every capability.)
pub fn tcp_connect_addr_in(
    netns: Option<BorrowedFd<'_>>,
    addr: SocketAddrV4,
) -> io::Result<OwnedFd> {
    let socket = match netns {
        None => sys::net::tcp_socket().map_err(|e| context("create a tcp socket", from(e)))?,
        Some(netns) => socket_in(netns)?,
    };
    match sys::net::connect(socket.as_fd(), addr) {
        // EINTR: a non-blocking connect goes on asynchronously, as for EINPROGRESS.
        Ok(())
        | Err(Error {
            errno: libc::EINPROGRESS | libc::EINTR,
            ..
        }) => Ok(socket),
        Err(e) => Err(from(e)),
    }
}

/// A TCP socket made in `netns`, the thread back in its own namespace.
fn socket_in(netns: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let own = File::open(OWN_NETNS).map_err(|e| context(&format!("open {OWN_NETNS}"), e))?;
    sys::ns::setns(netns.as_fd(), libc::CLONE_NEWNET)
        .map_err(|e| context("enter the app's network namespace", from(e)))?;
    let socket = sys::net::tcp_socket();
    if let Err(e) = sys::ns::setns(own.as_fd(), libc::CLONE_NEWNET) {
        drop(socket);
        return Err(context(
            "return to the supervisor's network namespace (this thread is still in the app's)",
            from(e),
        ));
    }
    socket.map_err(|e| {
        context(
            "create a tcp socket in the app's network namespace",
            from(e),
        )
    })
}

/// The outcome of a connection started by [`tcp_connect_in`], once its socket became
/// writable: `Ok` when connected, else the connect error (`ECONNREFUSED` when nothing
/// listens, `ETIMEDOUT`...), as a raw OS error. Read once: the kernel clears the error
/// it reports. Called before the socket is writable, it answers `Ok` for a connection
/// still in progress.
pub fn tcp_result(fd: BorrowedFd<'_>) -> io::Result<()> {
    match sys::net::socket_error(fd).map_err(from)? {
        0 => Ok(()),
        err => Err(io::Error::from_raw_os_error(err)),
    }
}
