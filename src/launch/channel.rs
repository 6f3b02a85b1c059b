//! The parent ↔ child channel of a launch: a close-on-exec `SOCK_SEQPACKET` socket
//! pair.
//!
//! 1. The parent sets the child up from outside (uid/gid maps, cgroup), then sends
//!    one "go" message, carrying a descriptor when the child needs one (the idmapped
//!    image of a user namespace app).
//! 2. The child either execs, which closes its end (end-of-file: success), or sends
//!    one [`Report`] (the step that failed and its errno) and exits.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::sys::{self, Errno, SysResult};

/// A step of the child's setup, in the order it runs (see `child.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Waiting for the parent's go.
    Wait,
    Signals,
    Stdio,
    Loopback,
    Propagation,
    /// Attaching the idmapped image (user namespace).
    Lower,
    Overlay,
    OpenRoot,
    /// The `n`th mount of the plan.
    Mount(u32),
    PivotRoot,
    ReadOnlyRoot,
    Hostname,
    Rlimits,
    KeepCaps,
    Ids,
    Capabilities,
    Workdir,
    CloseFds,
    NoNewPrivs,
    Seccomp,
    Exec,
    /// `init: true`: the reaper could not fork the app.
    Fork,
    /// Joining the app's cgroup v1 hierarchies.
    Cgroup,
    /// The app's own cgroup namespace, rooted at its cgroup.
    CgroupNamespace,
}

impl Step {
    fn code(self) -> (u32, u32) {
        let code = match self {
            Step::Wait => 0,
            Step::Signals => 1,
            Step::Stdio => 2,
            Step::Loopback => 3,
            Step::Propagation => 4,
            Step::Lower => 5,
            Step::Overlay => 6,
            Step::OpenRoot => 7,
            Step::Mount(n) => return (8, n),
            Step::PivotRoot => 9,
            Step::ReadOnlyRoot => 10,
            Step::Hostname => 11,
            Step::Rlimits => 12,
            Step::KeepCaps => 13,
            Step::Ids => 14,
            Step::Capabilities => 15,
            Step::Workdir => 16,
            Step::CloseFds => 17,
            Step::NoNewPrivs => 18,
            Step::Seccomp => 19,
            Step::Exec => 20,
            Step::Fork => 21,
            Step::Cgroup => 22,
            Step::CgroupNamespace => 23,
        };
        (code, 0)
    }

    fn from_code(code: u32, index: u32) -> Option<Step> {
        Some(match code {
            0 => Step::Wait,
            1 => Step::Signals,
            2 => Step::Stdio,
            3 => Step::Loopback,
            4 => Step::Propagation,
            5 => Step::Lower,
            6 => Step::Overlay,
            7 => Step::OpenRoot,
            8 => Step::Mount(index),
            9 => Step::PivotRoot,
            10 => Step::ReadOnlyRoot,
            11 => Step::Hostname,
            12 => Step::Rlimits,
            13 => Step::KeepCaps,
            14 => Step::Ids,
            15 => Step::Capabilities,
            16 => Step::Workdir,
            17 => Step::CloseFds,
            18 => Step::NoNewPrivs,
            19 => Step::Seccomp,
            20 => Step::Exec,
            21 => Step::Fork,
            22 => Step::Cgroup,
            23 => Step::CgroupNamespace,
            _ => return None,
        })
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Step::Wait => "waiting for the supervisor",
            Step::Signals => "resetting signals",
            Step::Stdio => "stdio",
            Step::Loopback => "loopback up",
            Step::Propagation => "making mounts private",
            Step::Lower => "attaching the idmapped image",
            Step::Overlay => "mount overlay",
            Step::OpenRoot => "open the new root",
            Step::Mount(n) => return write!(f, "mount #{n}"),
            Step::PivotRoot => "pivot_root",
            Step::ReadOnlyRoot => "remount the root read-only",
            Step::Hostname => "sethostname",
            Step::Rlimits => "setrlimit",
            Step::KeepCaps => "keep capabilities",
            Step::Ids => "setgroups/setgid/setuid",
            Step::Capabilities => "capabilities",
            Step::Workdir => "chdir to the workdir",
            Step::CloseFds => "closing descriptors",
            Step::NoNewPrivs => "no_new_privs",
            Step::Seccomp => "seccomp",
            Step::Exec => "exec",
            Step::Fork => "fork the app",
            Step::Cgroup => "join the cgroup",
            Step::CgroupNamespace => "unshare the cgroup namespace",
        })
    }
}

/// What a child sends when a step fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub step: Step,
    pub errno: i32,
}

const REPORT_LEN: usize = 12;

impl Report {
    fn encode(self) -> [u8; REPORT_LEN] {
        let (code, index) = self.step.code();
        let mut buf = [0u8; REPORT_LEN];
        for (dst, src) in buf.iter_mut().zip(
            code.to_ne_bytes()
                .into_iter()
                .chain(index.to_ne_bytes())
                .chain(self.errno.to_ne_bytes()),
        ) {
            *dst = src;
        }
        buf
    }

    fn decode(buf: &[u8]) -> Option<Report> {
        let word = |at: usize| -> Option<[u8; 4]> { buf.get(at..at + 4)?.try_into().ok() };
        if buf.len() != REPORT_LEN {
            return None;
        }
        Some(Report {
            step: Step::from_code(u32::from_ne_bytes(word(0)?), u32::from_ne_bytes(word(4)?))?,
            errno: i32::from_ne_bytes(word(8)?),
        })
    }
}

/// Creates the pair: (parent's end, child's end), both close-on-exec.
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is writable for the two descriptors the call stores.
    let ret = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let [a, b] = fds;
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(a), OwnedFd::from_raw_fd(b)) })
}

/// Room for one descriptor in a control message, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct Control([u8; 32]);

/// Parent: releases the child, passing `fd` along when given.
pub fn send_go(channel: &OwnedFd, fd: Option<RawFd>) -> io::Result<()> {
    let mut byte = [b'G'];
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
            libc::CMSG_DATA(cmsg).cast::<RawFd>().write_unaligned(fd);
        }
    }
    // SAFETY: `msg` points at `iov` and `control`, both alive for the call.
    let ret = unsafe { libc::sendmsg(channel.as_raw_fd(), &raw const msg, libc::MSG_NOSIGNAL) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Child: waits for the go; returns the descriptor sent with it, or -1.
pub fn wait_go(channel: RawFd) -> SysResult<RawFd> {
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
    let ret = unsafe { libc::recvmsg(channel, &raw mut msg, libc::MSG_CMSG_CLOEXEC) };
    if ret < 0 {
        return Err(sys::errno());
    }
    if ret == 0 || byte != [b'G'] {
        // The parent went away or gave up on us.
        return Err(Errno(libc::ECANCELED));
    }
    // SAFETY: the kernel filled `msg`'s control area; CMSG_FIRSTHDR returns null or a
    // header inside it, whose data holds one int when it is SCM_RIGHTS.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        if !cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS
        {
            return Ok(libc::CMSG_DATA(cmsg).cast::<RawFd>().read_unaligned());
        }
    }
    Ok(-1)
}

/// Child: tells the parent which step failed. Best effort: if the parent is gone
/// there is nobody to tell.
pub fn report(channel: RawFd, step: Step, errno: Errno) {
    let buf = Report {
        step,
        errno: errno.0,
    }
    .encode();
    // SAFETY: `buf` is readable for its length for the call.
    unsafe { libc::send(channel, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
}

/// Parent: the child's outcome. `Ok(None)` is end-of-file: the child exec'd.
pub fn read_report(channel: &OwnedFd) -> io::Result<Option<Report>> {
    let mut buf = [0u8; REPORT_LEN + 1];
    loop {
        // SAFETY: `buf` is writable for its length for the call.
        let n = unsafe { libc::recv(channel.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = usize::try_from(n).unwrap_or(0);
        if n == 0 {
            return Ok(None);
        }
        return Report::decode(buf.get(..n).unwrap_or_default())
            .map(Some)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed launch report"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip() {
        for step in [
            Step::Wait,
            Step::Mount(17),
            Step::PivotRoot,
            Step::Exec,
            Step::Fork,
        ] {
            let r = Report { step, errno: 22 };
            assert_eq!(Report::decode(&r.encode()), Some(r));
        }
        assert_eq!(Report::decode(&[0; 5]), None);
    }

    #[test]
    fn end_of_file_is_success_and_a_report_is_a_failure() {
        let (parent, child) = pair().unwrap();
        report(child.as_raw_fd(), Step::PivotRoot, Errno(libc::EINVAL));
        drop(child);
        assert_eq!(
            read_report(&parent).unwrap(),
            Some(Report {
                step: Step::PivotRoot,
                errno: libc::EINVAL
            })
        );
        assert_eq!(read_report(&parent).unwrap(), None);
    }

    #[test]
    fn go_carries_a_descriptor() {
        let (parent, child) = pair().unwrap();
        let (a, _b) = pair().unwrap();
        send_go(&parent, Some(a.as_raw_fd())).unwrap();
        let got = wait_go(child.as_raw_fd()).unwrap();
        assert!(got >= 0 && got != a.as_raw_fd());
        sys::close(got);
        send_go(&parent, None).unwrap();
        assert_eq!(wait_go(child.as_raw_fd()), Ok(-1));
        drop(parent);
        assert_eq!(wait_go(child.as_raw_fd()), Err(Errno(libc::ECANCELED)));
    }
}
