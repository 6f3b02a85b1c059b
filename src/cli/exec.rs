//! `berth exec`'s client side: the standard descriptors (or a pseudo-terminal's,
//! with `-t`) go to the supervisor with the request, and the exit status of the
//! command comes back.
//!
//! With `-t` the client opens a pty pair, gives it its terminal's window size, sends
//! the slave as the command's stdin, stdout and stderr, and relays: its stdin to the
//! master, the master to its stdout, each SIGWINCH's window size to the master. Its
//! own terminal is raw meanwhile, so every key, Ctrl-C included, reaches the pty as
//! typed and the pty's line discipline does the rest for the command. Once the master
//! reports that every slave is closed (the command and its runner are gone, or berth
//! refused the request and dropped them), so no output is lost, its terminal is
//! restored and it reads berth's answer: the exit status, or why not.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::sys::{self, signal::SigSet};

/// Exit status when the exec could not be made.
const EXIT_FAILED: u8 = 1;

/// Sends `request` with this process's stdin, stdout and stderr attached (with `tty`,
/// a new pty's slave instead), and waits for the command's exit status.
pub fn run(sock: OwnedFd, request: &str, tty: bool) -> u8 {
    if tty {
        return run_tty(sock, request);
    }
    let stdio = [0, 1, 2].map(borrow_std);
    match send_request(sock.as_fd(), request, &stdio) {
        Ok(()) => super::client::relay(sock, false),
        Err(e) => refused(sock, e),
    }
}

/// The request could not be sent: berth may have answered and closed first (a client
/// that is not root, one too many), and that answer is the one to show.
fn refused(sock: OwnedFd, e: sys::Error) -> u8 {
    if e.errno == libc::EPIPE {
        return super::client::relay(sock, false);
    }
    eprintln!("berth exec: sending the request to berth: {e}");
    EXIT_FAILED
}

/// One of descriptors 0, 1 and 2.
fn borrow_std(fd: i32) -> BorrowedFd<'static> {
    // SAFETY: 0, 1 and 2 stay open for the whole life of the process.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Sends the whole request line, `fds` attached to its first bytes.
fn send_request(sock: BorrowedFd<'_>, request: &str, fds: &[BorrowedFd<'_>]) -> sys::Result<()> {
    let mut rest = request.as_bytes();
    let mut attach = fds;
    while !rest.is_empty() {
        let n = sys::net::send_with_fds(sock, rest, attach)?;
        rest = rest.get(n..).unwrap_or_default();
        attach = &[];
    }
    Ok(())
}

/// `berth exec -t`.
fn run_tty(sock: OwnedFd, request: &str) -> u8 {
    match relay_tty(sock.as_fd(), request) {
        Ok(None) => super::client::relay(sock, false),
        Ok(Some(code)) => code,
        Err(Ok(e)) => refused(sock, e),
        Err(Err(why)) => {
            eprintln!("berth exec: {why}");
            EXIT_FAILED
        }
    }
}

/// Sends the request with a new pty's slave and relays the pty until every slave is
/// closed: `None` then, or the exit status when a signal ended the client. Errors:
/// sending the request, or what else failed.
fn relay_tty(
    sock: BorrowedFd<'_>,
    request: &str,
) -> Result<Option<u8>, Result<sys::Error, String>> {
    let failed = |what: &'static str| move |e: sys::Error| Err(format!("cannot {what}: {e}"));
    let (master, slave) = sys::tty::open_pty().map_err(failed("open a pseudo-terminal"))?;
    let is_terminal = |fd: BorrowedFd<'_>| sys::tty::modes(fd).is_ok();
    let stdin = borrow_std(0);
    // The client's terminal: its stdin's, else its stdout's (`cmd | berth exec -t`).
    let terminal = [stdin, borrow_std(1)]
        .into_iter()
        .find(|&fd| is_terminal(fd));
    if let Some(terminal) = terminal {
        copy_window_size(terminal, master.as_fd());
    }
    sys::fd::nonblocking(master.as_fd()).map_err(failed("open a pseudo-terminal"))?;
    let signals = [
        libc::SIGWINCH,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
    ];
    let signals = sys::signal::signalfd(&SigSet::of(&signals)).map_err(failed("take signals"))?;
    send_request(
        sock,
        request,
        &[slave.as_fd(), slave.as_fd(), slave.as_fd()],
    )
    .map_err(Ok)?;
    // Only the command's copies are left: the master reports their end.
    drop(slave);
    // Raw while relaying; restored when `raw` goes, on every way out.
    let _raw = if is_terminal(stdin) {
        RawMode::enter(stdin)
    } else {
        None
    };
    let mut relay = Relay {
        master,
        signals,
        terminal,
        stdin: true,
        pending: Vec::new(),
    };
    relay.run().map_err(failed("relay the pseudo-terminal"))
}

/// Gives the pty `to` the window size of the terminal `from` (nothing if it has none).
fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    if let Ok(size) = sys::tty::window_size(from) {
        let _ = sys::tty::set_window_size(to, &size);
    }
}

/// The client's terminal in raw mode; its modes come back when this is dropped.
struct RawMode {
    fd: BorrowedFd<'static>,
    saved: libc::termios,
}

impl RawMode {
    fn enter(fd: BorrowedFd<'static>) -> Option<RawMode> {
        let saved = sys::tty::modes(fd).ok()?;
        sys::tty::set_modes(fd, &sys::tty::raw(saved)).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = sys::tty::set_modes(self.fd, &self.saved);
    }
}

/// What the relay holds.
struct Relay {
    master: OwnedFd,
    signals: OwnedFd,
    terminal: Option<BorrowedFd<'static>>,
    /// Until stdin's end.
    stdin: bool,
    /// Read from stdin, not yet taken by the master.
    pending: Vec<u8>,
}

/// A `poll` entry for `fd` and `events`.
fn entry(fd: BorrowedFd<'_>, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    }
}

impl Relay {
    /// Relays until every slave is closed (`None`), or a signal other than SIGWINCH
    /// ends the client (128 + its number).
    fn run(&mut self) -> sys::Result<Option<u8>> {
        loop {
            // Stdin is read only once the master has taken what came before (a
            // regular file or /dev/null is always ready); the master is watched for
            // room only while something waits for it.
            let waiting = !self.pending.is_empty();
            let room = if waiting { libc::POLLOUT } else { 0 };
            let mut fds = [
                entry(self.master.as_fd(), libc::POLLIN | room),
                entry(self.signals.as_fd(), libc::POLLIN),
                entry(borrow_std(0), libc::POLLIN),
            ];
            let watched = if self.stdin && !waiting { 3 } else { 2 };
            sys::fd::poll(fds.get_mut(..watched).unwrap_or_default())?;
            let [master, signals, stdin] = fds.map(|p| p.revents != 0);
            if signals {
                if let Some(signal) = self.on_signals() {
                    return Ok(Some(u8::try_from(128 + signal).unwrap_or(EXIT_FAILED)));
                }
            }
            if stdin && watched == 3 {
                self.read_stdin();
            }
            if master && self.on_master() {
                return Ok(None);
            }
        }
    }

    /// A read of stdin into `pending`; at its end, an end-of-file key (Ctrl-D) for
    /// the command, as a person would type it.
    fn read_stdin(&mut self) {
        let mut buf = [0u8; 4096];
        match sys::fd::read(borrow_std(0), &mut buf) {
            Ok(n) if n > 0 => self
                .pending
                .extend_from_slice(buf.get(..n).unwrap_or_default()),
            _ => {
                self.stdin = false;
                self.pending.push(0x04);
            }
        }
    }

    /// The master is readable (or has room, or every slave is closed): whether every
    /// slave is closed (the command and the runner are gone).
    fn on_master(&mut self) -> bool {
        let master = self.master.as_fd();
        if !self.pending.is_empty() {
            match sys::fd::write(master, &self.pending) {
                Ok(n) => drop(self.pending.drain(..n.min(self.pending.len()))),
                Err(e) if e.errno == libc::EAGAIN => {}
                // Nobody reads the pty any more: what was typed has nowhere to go.
                Err(_) => self.pending.clear(),
            }
        }
        let mut buf = [0u8; 4096];
        match sys::fd::read(master, &mut buf) {
            Ok(n) if n > 0 => {
                // A reader that went away (`| head`): the output has nowhere to go.
                let _ = sys::fd::write_all(1, buf.get(..n).unwrap_or_default());
                false
            }
            Err(e) if e.errno == libc::EAGAIN => false,
            // EIO: every slave is closed.
            _ => true,
        }
    }

    /// Signals: a window size to pass on; any other ends the client (its number).
    fn on_signals(&mut self) -> Option<i32> {
        let mut received = Vec::new();
        sys::signal::read_signals(self.signals.as_fd(), &mut received);
        for r in received {
            if r.signal != libc::SIGWINCH {
                return Some(r.signal);
            }
            if let Some(terminal) = self.terminal {
                copy_window_size(terminal, self.master.as_fd());
            }
        }
        None
    }
}
