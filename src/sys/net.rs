//! Sockets: the launch channel's `SOCK_SEQPACKET` pair (with a descriptor passed
//! along), the TCP probe's non-blocking connect, and the loopback interface of a new
//! network namespace.

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

/// Room for one descriptor in a control message, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct Control([u8; 32]);

/// Sends the one byte `byte` on `sock`, with the descriptor `fd` attached
/// (`SCM_RIGHTS`) when given.
pub(crate) fn send_with_fd(
    sock: BorrowedFd<'_>,
    byte: u8,
    fd: Option<BorrowedFd<'_>>,
) -> Result<()> {
    let mut byte = [byte];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = Control([0; 32]);
    // SAFETY: an all-zero `msghdr` is a valid empty header of the plain C struct.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: CMSG_SPACE of one int is 24 on every 64- and 32-bit target, within
        // the 32 bytes of `control`; CMSG_FIRSTHDR of a header whose control length
        // fits one cmsghdr is non-null and points into `control`; the data area holds
        // one int.
        unsafe {
            let space = libc::CMSG_SPACE(size_of::<RawFd>() as u32);
            msg.msg_control = control.0.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as _;
            libc::CMSG_DATA(cmsg)
                .cast::<RawFd>()
                .write_unaligned(fd.as_raw_fd());
        }
    }
    // SAFETY: `msg` points at `iov` and `control`, both alive for the call.
    let ret = unsafe { libc::sendmsg(sock.as_raw_fd(), &raw const msg, libc::MSG_NOSIGNAL) };
    if ret < 0 {
        return Err(Error::last("sendmsg"));
    }
    Ok(())
}

/// Receives one byte from the descriptor number `sock` (the launched child's end),
/// with the descriptor attached to it, if any (close-on-exec): `Ok(None)` at end of
/// file, else the byte and the descriptor.
pub(crate) fn recv_with_fd(sock: RawFd) -> Result<Option<(u8, Option<OwnedFd>)>> {
    let mut byte = [0u8];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = Control([0; 32]);
    // SAFETY: an all-zero `msghdr` is a valid empty header of the plain C struct.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = control.0.len() as _;
    // SAFETY: `msg` points at `iov` and `control`, writable and alive for the call.
    let ret = unsafe { libc::recvmsg(sock, &raw mut msg, libc::MSG_CMSG_CLOEXEC) };
    if ret < 0 {
        return Err(Error::last("recvmsg"));
    }
    if ret == 0 {
        return Ok(None);
    }
    let [byte] = byte;
    // SAFETY: the kernel filled `msg`'s control area; CMSG_FIRSTHDR returns null or a
    // header inside it, whose data holds one int when it is SCM_RIGHTS: a descriptor
    // the kernel has just installed in this process, owned by nobody else.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        if !cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS
        {
            let fd = libc::CMSG_DATA(cmsg).cast::<RawFd>().read_unaligned();
            return Ok(Some((byte, Some(owned("recvmsg", fd.into())?))));
        }
    }
    Ok(Some((byte, None)))
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

/// `connect(2)` to an IPv4 address (EINPROGRESS on a non-blocking socket).
pub(crate) fn connect(fd: BorrowedFd<'_>, addr: SocketAddrV4) -> Result<()> {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = libc::socklen_t::try_from(size_of::<libc::sockaddr_in>()).unwrap_or(16);
    // SAFETY: `sin` is a valid `sockaddr_in` of the length passed, read by the kernel
    // during the call.
    let ret = unsafe { libc::connect(fd.as_raw_fd(), (&raw const sin).cast(), len) };
    check("connect", ret).map(drop)
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
