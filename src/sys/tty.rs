//! Terminals: a new pseudo-terminal pair, window sizes, terminal modes, and taking a
//! terminal as the controlling one (`berth exec -t`).

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::{Error, Result, check, owned};

/// A new pseudo-terminal: (master, slave), both close-on-exec, neither the caller's
/// controlling terminal. The slave is opened through the master (`TIOCGPTPEER`, Linux
/// 4.13), so it is the master's own peer even where `/dev/pts` is another instance;
/// before 4.13, by its number in `/dev/pts`.
pub(crate) fn open_pty() -> Result<(OwnedFd, OwnedFd)> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: the path is NUL-terminated; the descriptor returned is new.
    let master = unsafe {
        owned(
            "open /dev/ptmx",
            libc::open(c"/dev/ptmx".as_ptr(), flags).into(),
        )?
    };
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int, borrowed for the call.
    check("ioctl TIOCSPTLCK", unsafe {
        libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &raw const unlock)
    })?;
    // SAFETY: TIOCGPTPEER takes the open flags as its integer argument; the descriptor
    // returned is new.
    let peer = unsafe {
        owned(
            "ioctl TIOCGPTPEER",
            libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags).into(),
        )
    };
    let slave = match peer {
        Err(Error {
            errno: libc::EINVAL | libc::ENOTTY,
            ..
        }) => {
            let mut number: libc::c_uint = 0;
            // SAFETY: TIOCGPTN writes one unsigned int, writable for the call.
            check("ioctl TIOCGPTN", unsafe {
                libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &raw mut number)
            })?;
            let path = pts_path(number);
            // SAFETY: the path is NUL-terminated; the descriptor returned is new.
            unsafe {
                owned(
                    "open /dev/pts",
                    libc::open(path.as_ptr().cast(), flags).into(),
                )?
            }
        }
        other => other?,
    };
    Ok((master, slave))
}

/// `/dev/pts/NUMBER`, NUL-terminated (a `u32` has at most 10 digits: 11 NULs leave
/// one).
fn pts_path(number: libc::c_uint) -> [u8; 20] {
    let mut path = *b"/dev/pts/\0\0\0\0\0\0\0\0\0\0\0";
    let digits = number.checked_ilog10().unwrap_or(0) + 1;
    for (i, slot) in (1..=digits).rev().zip(path.iter_mut().skip(9)) {
        *slot = b'0' + u8::try_from(number / 10u32.pow(i - 1) % 10).unwrap_or(0);
    }
    path
}

/// The window size of the terminal `fd`.
pub(crate) fn window_size(fd: BorrowedFd<'_>) -> Result<libc::winsize> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize, writable for the call.
    check("ioctl TIOCGWINSZ", unsafe {
        libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &raw mut size)
    })?;
    Ok(size)
}

/// Sets the window size of the terminal `fd` (its foreground process group gets
/// SIGWINCH).
pub(crate) fn set_window_size(fd: BorrowedFd<'_>, size: &libc::winsize) -> Result<()> {
    // SAFETY: TIOCSWINSZ reads one winsize, borrowed for the call.
    check("ioctl TIOCSWINSZ", unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCSWINSZ,
            size as *const libc::winsize,
        )
    })
    .map(drop)
}

/// The modes of the terminal `fd`.
pub(crate) fn modes(fd: BorrowedFd<'_>) -> Result<libc::termios> {
    // SAFETY: an all-zero termios is a valid value of the plain C struct.
    let mut modes: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `modes` is writable for the call.
    check("tcgetattr", unsafe {
        libc::tcgetattr(fd.as_raw_fd(), &raw mut modes)
    })?;
    Ok(modes)
}

/// Sets the modes of the terminal `fd`, once the output already written has been
/// sent (`TCSADRAIN`).
pub(crate) fn set_modes(fd: BorrowedFd<'_>, modes: &libc::termios) -> Result<()> {
    // SAFETY: `modes` is a valid termios, read for the call.
    check("tcsetattr", unsafe {
        libc::tcsetattr(fd.as_raw_fd(), libc::TCSADRAIN, modes)
    })
    .map(drop)
}

/// `modes` made raw (`cfmakeraw`): no echo, no line editing, no signal keys, no
/// output processing; every byte passes as it is.
pub(crate) fn raw(mut modes: libc::termios) -> libc::termios {
    // SAFETY: `modes` is a valid termios, changed in place.
    unsafe { libc::cfmakeraw(&raw mut modes) };
    modes
}

/// Makes the terminal at the descriptor number `fd` the caller's controlling terminal
/// (`TIOCSCTTY`); the caller must lead a session without one. Its process group
/// becomes the terminal's foreground group. A raw call: for a child between fork and
/// exec.
pub(crate) fn take_controlling(fd: RawFd) -> Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal it from another
    // session).
    check("ioctl TIOCSCTTY", unsafe {
        libc::ioctl(fd, libc::TIOCSCTTY, 0 as libc::c_int)
    })
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn slave_paths_by_number() {
        let text = |n| {
            let p = pts_path(n);
            std::ffi::CStr::from_bytes_until_nul(&p).unwrap().to_owned()
        };
        assert_eq!(text(0), c"/dev/pts/0");
        assert_eq!(text(7), c"/dev/pts/7");
        assert_eq!(text(10), c"/dev/pts/10");
        assert_eq!(text(4_294_967_295), c"/dev/pts/4294967295");
    }

    #[test]
    fn a_pty_passes_bytes_and_carries_its_window_size() {
        let (master, slave) = open_pty().unwrap();
        let size = libc::winsize {
            ws_row: 33,
            ws_col: 101,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        set_window_size(master.as_fd(), &size).unwrap();
        let got = window_size(slave.as_fd()).unwrap();
        assert_eq!((got.ws_row, got.ws_col), (33, 101));
        set_modes(slave.as_fd(), &raw(modes(slave.as_fd()).unwrap())).unwrap();
        assert_eq!(modes(slave.as_fd()).unwrap().c_lflag & libc::ECHO, 0);
        super::super::fd::write_all(master.as_raw_fd(), b"a\x03b").unwrap();
        let mut buf = [0u8; 8];
        let n = super::super::fd::read(slave.as_fd(), &mut buf).unwrap();
        assert_eq!(buf.get(..n), Some(&b"a\x03b"[..]), "raw: ^C is a byte");
        drop(slave);
        assert_eq!(
            super::super::fd::read(master.as_fd(), &mut buf),
            Err(Error::new("read", libc::EIO)),
            "every slave closed"
        );
        let (_, pipe) = super::super::fd::pipe().unwrap();
        assert_eq!(
            take_controlling(pipe.as_raw_fd()),
            Err(Error::new("ioctl TIOCSCTTY", libc::ENOTTY))
        );
    }
}
