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
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};

use crate::sys;

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
    /// The namespaces the child makes itself (mount, UTS, IPC, network, and its own
    /// cgroup namespace rooted at its cgroup).
    Namespaces,
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
            Step::Namespaces => 23,
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
            23 => Step::Namespaces,
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
            Step::Namespaces => "unshare the namespaces",
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
    Ok(sys::net::seqpacket_pair()?)
}

/// Parent: releases the child, passing `fd` along when given.
pub fn send_go(channel: &OwnedFd, fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    Ok(sys::net::send_with_fd(channel.as_fd(), b'G', fd)?)
}

/// Child: waits for the go; returns the descriptor sent with it, if any. ECANCELED
/// when the parent went away or gave up on us.
pub fn wait_go(channel: RawFd) -> sys::Result<Option<OwnedFd>> {
    match sys::net::recv_with_fd(channel)? {
        Some((b'G', fd)) => Ok(fd),
        _ => Err(sys::Error::new("recvmsg", libc::ECANCELED)),
    }
}

/// Child: tells the parent which step failed. Best effort: if the parent is gone
/// there is nobody to tell.
pub fn report(channel: RawFd, step: Step, error: sys::Error) {
    let buf = Report {
        step,
        errno: error.errno,
    }
    .encode();
    let _ = sys::net::send(channel, &buf);
}

/// Parent: the child's outcome. `Ok(None)` is end-of-file: the child exec'd.
pub fn read_report(channel: &OwnedFd) -> io::Result<Option<Report>> {
    let mut buf = [0u8; REPORT_LEN + 1];
    let n = sys::net::recv(channel.as_fd(), &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    Report::decode(buf.get(..n).unwrap_or_default())
        .map(Some)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed launch report"))
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

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
        report(
            child.as_raw_fd(),
            Step::PivotRoot,
            sys::Error::new("pivot_root", libc::EINVAL),
        );
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
        send_go(&parent, Some(a.as_fd())).unwrap();
        let got = wait_go(child.as_raw_fd()).unwrap().unwrap();
        assert_ne!(got.as_raw_fd(), a.as_raw_fd());
        send_go(&parent, None).unwrap();
        assert!(wait_go(child.as_raw_fd()).unwrap().is_none());
        drop(parent);
        assert_eq!(
            wait_go(child.as_raw_fd()).unwrap_err(),
            sys::Error::new("recvmsg", libc::ECANCELED)
        );
    }
}
