//! Sockets: the launch channel's `SOCK_SEQPACKET` pair (with a descriptor passed
//! along), the TCP probe's non-blocking connect, and the loopback interface of a new
//! network namespace; the TCP listener of `metrics_listen`.

use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use libc::{c_char, c_int};

use super::{Error, Result, check, owned};

/// A close-on-exec `AF_UNIX` `SOCK_SEQPACKET` pair.
pub(crate) fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds: [RawFd; 2] = [-1; 2];
    // SAFETY: `fds` is writable for the two descriptors the call stores.
    check("socketpair", unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    let [a, b] = fds;
    // SAFETY: both descriptors were just created by the successful call.
    unsafe {
        Ok((
            owned("socketpair", a.into())?,
            owned("socketpair", b.into())?,
        ))
    }
}

/// The most descriptors one message carries (`berth exec`'s stdin, stdout, stderr).
pub(crate) const MAX_FDS: usize = 3;

/// Room for [`MAX_FDS`] descriptors in a control message, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct Control([u8; 64]);

/// Sends `bytes` on `sock` with `fds` attached (`SCM_RIGHTS`; at most [`MAX_FDS`],
/// more are refused with EINVAL); never raises SIGPIPE, never waits when `sock` is
/// non-blocking. The count of bytes sent.
pub(crate) fn send_with_fds(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<usize> {
    if fds.len() > MAX_FDS {
        return Err(Error::new("sendmsg", libc::EINVAL));
    }
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    let mut control = Control([0; 64]);
    // SAFETY: an all-zero `msghdr` is a valid empty header of the plain C struct.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let data = (fds.len() * size_of::<RawFd>()) as u32;
        // SAFETY: CMSG_SPACE of at most three ints is at most 32 on every 64- and
        // 32-bit target, within the 64 bytes of `control`; CMSG_FIRSTHDR of a header
        // whose control length fits one cmsghdr is non-null and points into `control`;
        // its data area holds `fds.len()` ints.
        unsafe {
            msg.msg_control = control.0.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(data) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(data) as _;
            let slots = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                slots.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    // SAFETY: `msg` points at `iov` (over `bytes`, only read) and `control`, both
    // alive for the call.
    let ret = unsafe { libc::sendmsg(sock.as_raw_fd(), &raw const msg, libc::MSG_NOSIGNAL) };
    usize::try_from(ret).map_err(|_| Error::last("sendmsg"))
}

/// Sends the one byte `byte` on `sock`, with the descriptor `fd` attached
/// (`SCM_RIGHTS`) when given.
pub(crate) fn send_with_fd(
    sock: BorrowedFd<'_>,
    byte: u8,
    fd: Option<BorrowedFd<'_>>,
) -> Result<()> {
    send_with_fds(sock, &[byte], fd.as_slice()).map(drop)
}

/// Receives into `buf` from the descriptor number `sock` (EINTR is retried), with
/// the descriptors attached (close-on-exec) added to `fds`: the count of bytes, 0 at
/// end of file. Descriptors beyond [`MAX_FDS`] are closed by the kernel
/// (`MSG_CTRUNC`).
pub(crate) fn recv_with_fds(sock: RawFd, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> Result<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = Control([0; 64]);
    // SAFETY: an all-zero `msghdr` is a valid empty header of the plain C struct.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    let ret = loop {
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control.0.len() as _;
        // SAFETY: `msg` points at `iov` and `control`, writable and alive for the call.
        let ret = unsafe { libc::recvmsg(sock, &raw mut msg, libc::MSG_CMSG_CLOEXEC) };
        match usize::try_from(ret) {
            Ok(n) => break n,
            Err(_) if super::errno() == libc::EINTR => {}
            Err(_) => return Err(Error::last("recvmsg")),
        }
    };
    // SAFETY: the kernel filled `msg`'s control area; CMSG_FIRSTHDR and CMSG_NXTHDR
    // return null or a header inside it; an SCM_RIGHTS header's data holds
    // (cmsg_len - CMSG_LEN(0)) / 4 ints, each a descriptor the kernel has just
    // installed in this process, owned by nobody else.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let len = ((*cmsg).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
                let slots = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..len / size_of::<RawFd>() {
                    let fd = slots.add(i).read_unaligned();
                    fds.push(owned("recvmsg", fd.into())?);
                }
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    Ok(ret)
}

/// Receives one byte from the descriptor number `sock` (the launched child's end),
/// with the descriptor attached to it, if any (close-on-exec): `Ok(None)` at end of
/// file, else the byte and the descriptor.
pub(crate) fn recv_with_fd(sock: RawFd) -> Result<Option<(u8, Option<OwnedFd>)>> {
    let mut byte = [0u8];
    let mut fds = Vec::new();
    if recv_with_fds(sock, &mut byte, &mut fds)? == 0 {
        return Ok(None);
    }
    let [byte] = byte;
    Ok(Some((byte, fds.pop())))
}

/// A `sockaddr_un` for `path` and its length; ENAMETOOLONG when it does not fit.
fn unix_address(call: &'static str, path: &[u8]) -> Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: an all-zero `sockaddr_un` is a valid value of the plain C struct.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    // One byte stays zero: the terminating NUL.
    if path.is_empty() || path.len() >= addr.sun_path.len() || path.contains(&0) {
        return Err(Error::new(call, libc::ENAMETOOLONG));
    }
    for (slot, byte) in addr.sun_path.iter_mut().zip(path) {
        *slot = *byte as c_char;
    }
    let len = size_of::<libc::sa_family_t>() + path.len() + 1;
    Ok((addr, libc::socklen_t::try_from(len).unwrap_or(0)))
}

/// A close-on-exec `AF_UNIX` stream socket (non-blocking when `nonblocking`).
fn unix_socket(nonblocking: bool) -> Result<OwnedFd> {
    let mut kind = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    if nonblocking {
        kind |= libc::SOCK_NONBLOCK;
    }
    // SAFETY: plain integer arguments; the descriptor returned is new.
    unsafe { owned("socket", libc::socket(libc::AF_UNIX, kind, 0).into()) }
}

/// A non-blocking, close-on-exec `AF_UNIX` stream socket listening at `path`, made
/// with mode `0600` (the umask is set for the `bind`: berth is single-threaded when it
/// calls this).
pub(crate) fn unix_listen(path: &[u8], backlog: c_int) -> Result<OwnedFd> {
    let (addr, len) = unix_address("bind", path)?;
    let sock = unix_socket(true)?;
    // SAFETY: plain integer argument.
    let old = unsafe { libc::umask(0o177) };
    // SAFETY: `addr` is a valid `sockaddr_un` of the length passed, read by the kernel
    // during the call.
    let ret = unsafe { libc::bind(sock.as_raw_fd(), (&raw const addr).cast(), len) };
    // SAFETY: plain integer argument.
    unsafe { libc::umask(old) };
    check("bind", ret)?;
    // SAFETY: plain integer arguments.
    check("listen", unsafe { libc::listen(sock.as_raw_fd(), backlog) })?;
    Ok(sock)
}

/// A blocking, close-on-exec `AF_UNIX` stream socket connected to `path`.
pub(crate) fn unix_connect(path: &[u8]) -> Result<OwnedFd> {
    let (addr, len) = unix_address("connect", path)?;
    let sock = unix_socket(false)?;
    let ret = loop {
        // SAFETY: `addr` is a valid `sockaddr_un` of the length passed, read by the
        // kernel during the call.
        let ret = unsafe { libc::connect(sock.as_raw_fd(), (&raw const addr).cast(), len) };
        if ret == 0 || super::errno() != libc::EINTR {
            break ret;
        }
    };
    check("connect", ret)?;
    Ok(sock)
}

/// Accepts a connection on `listener` (a Unix or a TCP one): a non-blocking,
/// close-on-exec socket, or EAGAIN when none is waiting.
pub(crate) fn accept(listener: BorrowedFd<'_>) -> Result<OwnedFd> {
    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: null address arguments are allowed; the descriptor returned is new.
    unsafe {
        owned(
            "accept4",
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                flags,
            )
            .into(),
        )
    }
}

/// The user id of the process at the other end of a connected `AF_UNIX` socket, as
/// it was when it connected (`SO_PEERCRED`).
pub(crate) fn peer_uid(sock: BorrowedFd<'_>) -> Result<libc::uid_t> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: libc::uid_t::MAX,
        gid: libc::gid_t::MAX,
    };
    let mut len = libc::socklen_t::try_from(size_of::<libc::ucred>()).unwrap_or(0);
    // SAFETY: `cred` and `len` are writable for the call, `len` holding the size of
    // `cred`.
    let ret = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &raw mut len,
        )
    };
    check("getsockopt SO_PEERCRED", ret).map(|_| cred.uid)
}

/// `send(2)` of `bytes` on the descriptor number `sock` (the launched child's end);
/// never raises SIGPIPE.
pub(crate) fn send(sock: RawFd, bytes: &[u8]) -> Result<usize> {
    // SAFETY: `bytes` is readable for its length for the call.
    let n = unsafe { libc::send(sock, bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL) };
    usize::try_from(n).map_err(|_| Error::last("send"))
}

/// `recv(2)` into `buf` (EINTR is retried): the byte count, 0 at end of file.
pub(crate) fn recv(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize> {
    loop {
        // SAFETY: `buf` is writable for its length for the call.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        match usize::try_from(n) {
            Ok(n) => return Ok(n),
            Err(_) if super::errno() == libc::EINTR => {}
            Err(_) => return Err(Error::last("recv")),
        }
    }
}

/// A non-blocking, close-on-exec IPv4 TCP socket.
pub(crate) fn tcp_socket() -> Result<OwnedFd> {
    let kind = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: plain integer arguments; the descriptor returned is new.
    unsafe { owned("socket", libc::socket(libc::AF_INET, kind, 0).into()) }
}

/// `addr` as a C socket address.
fn sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

const SOCKADDR_IN_LEN: libc::socklen_t = size_of::<libc::sockaddr_in>() as libc::socklen_t;

/// `connect(2)` to an IPv4 address (EINPROGRESS on a non-blocking socket).
pub(crate) fn connect(fd: BorrowedFd<'_>, addr: SocketAddrV4) -> Result<()> {
    let sin = sockaddr_in(addr);
    // SAFETY: `sin` is a valid `sockaddr_in` of the length passed, read by the kernel
    // during the call.
    let ret = unsafe { libc::connect(fd.as_raw_fd(), (&raw const sin).cast(), SOCKADDR_IN_LEN) };
    check("connect", ret).map(drop)
}

/// A non-blocking, close-on-exec TCP socket listening on `addr`, with `SO_REUSEADDR`
/// so that a restarted berth binds again while old connections linger in TIME_WAIT.
pub(crate) fn tcp_listen(addr: SocketAddrV4, backlog: c_int) -> Result<OwnedFd> {
    let sock = tcp_socket()?;
    let one: c_int = 1;
    // SAFETY: `one` is a readable int of the length passed, for the call.
    check("setsockopt SO_REUSEADDR", unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&raw const one).cast(),
            size_of::<c_int>() as libc::socklen_t,
        )
    })?;
    let sin = sockaddr_in(addr);
    // SAFETY: `sin` is a valid `sockaddr_in` of the length passed, read by the kernel
    // during the call.
    let ret = unsafe { libc::bind(sock.as_raw_fd(), (&raw const sin).cast(), SOCKADDR_IN_LEN) };
    check("bind", ret)?;
    // SAFETY: plain integer arguments.
    check("listen", unsafe { libc::listen(sock.as_raw_fd(), backlog) })?;
    Ok(sock)
}

/// The pending error of a socket (`SO_ERROR`), which reading clears; 0 for none.
pub(crate) fn socket_error(fd: BorrowedFd<'_>) -> Result<c_int> {
    let mut value: c_int = 0;
    let mut len = libc::socklen_t::try_from(size_of::<c_int>()).unwrap_or(4);
    // SAFETY: `value` and `len` are writable for the call, `len` holding the size of
    // `value`.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    check("getsockopt SO_ERROR", ret).map(|_| value)
}

/// Brings the loopback interface of the current network namespace up
/// (`SIOCSIFFLAGS` with `IFF_UP`).
pub(crate) fn loopback_up() -> Result<()> {
    // SAFETY: plain integer arguments; the descriptor returned is new.
    let sock = unsafe {
        owned(
            "socket",
            libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0).into(),
        )
    }?;
    // SAFETY: an all-zero `ifreq` is a valid value of the plain C struct.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as c_char;
    }
    // SAFETY: `req` is a valid `ifreq` naming "lo", borrowed for the call, which
    // writes its flags field only.
    let got = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &raw mut req) };
    check("ioctl SIOCGIFFLAGS", got)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union, which is read here.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above; the call reads the flags field only.
    let set = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &raw const req) };
    check("ioctl SIOCSIFFLAGS", set).map(drop)
}
