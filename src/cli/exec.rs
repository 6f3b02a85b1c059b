//! `berth exec`'s client side: the standard descriptors (or a pseudo-terminal's,
//! with `-t`) go to the supervisor with the request, and the exit status of the
//! command comes back.
//!
//! With `-t` the client opens a pty pair, gives it its terminal's window size, sends
//! the slave as the command's stdin, stdout and stderr, and relays: its stdin to the
//! master, the master to its stdout, each SIGWINCH's window size to the master. Its
//! own terminal is raw meanwhile (restored on every way out), so every key, Ctrl-C
//! included, reaches the pty as typed and the pty's line discipline does the rest for
//! the command. It exits with the status the supervisor sends once the master also
//! reports that every slave is closed, so no output is lost.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::control::protocol::Frame;
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
    let (master, slave) = match sys::tty::open_pty() {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("berth exec: cannot open a pseudo-terminal (/dev/ptmx): {e}");
            return EXIT_FAILED;
        }
    };
    let is_terminal = |fd: BorrowedFd<'_>| sys::tty::modes(fd).is_ok();
    let stdin = borrow_std(0);
    // The client's terminal: its stdin's, else its stdout's (`cmd | berth exec -t`).
    let terminal = [stdin, borrow_std(1)]
        .into_iter()
        .find(|&fd| is_terminal(fd));
    if let Some(terminal) = terminal {
        copy_window_size(terminal, master.as_fd());
    }
    let signals = [
        libc::SIGWINCH,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
    ];
    let signals = match sys::signal::signalfd(&SigSet::of(&signals)) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("berth exec: cannot take signals: {e}");
            return EXIT_FAILED;
        }
    };
    let slaves = [slave.as_fd(), slave.as_fd(), slave.as_fd()];
    if let Err(e) = send_request(sock.as_fd(), request, &slaves) {
        return refused(sock, e);
    }
    // Only the command's copies are left: the master reports their end.
    drop(slave);
    // Raw from here on; restored when `raw` goes, on every way out below.
    let raw = if is_terminal(stdin) {
        RawMode::enter(stdin)
    } else {
        None
    };
    let mut relay = Relay {
        master: Some(master),
        sock: Some(sock),
        signals,
        terminal,
        newline: if raw.is_some() { "\r\n" } else { "\n" },
        stdin: true,
        pending: Vec::new(),
        frames: Vec::new(),
        exit: None,
    };
    let status = relay.run();
    drop(raw);
    status.unwrap_or_else(|why| {
        eprintln!("berth exec: {why}");
        EXIT_FAILED
    })
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
    /// Until every slave is closed.
    master: Option<OwnedFd>,
    /// Until the exit status came.
    sock: Option<OwnedFd>,
    signals: OwnedFd,
    terminal: Option<BorrowedFd<'static>>,
    /// The end of a line of the client's own on its terminal (`\r\n` when raw).
    newline: &'static str,
    /// Until stdin's end.
    stdin: bool,
    /// Read from stdin, not yet taken by the master.
    pending: Vec<u8>,
    /// The start of a frame line not complete yet.
    frames: Vec<u8>,
    exit: Option<u8>,
}

/// A `poll` entry for `fd` (none: ignored) and `events`.
fn entry(fd: Option<BorrowedFd<'_>>, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd: fd.map_or(-1, |fd| fd.as_raw_fd()),
        events,
        revents: 0,
    }
}

impl Relay {
    /// Relays until the command's exit status has come and every slave is closed:
    /// that status.
    fn run(&mut self) -> Result<u8, String> {
        if let Some(master) = &self.master {
            sys::fd::nonblocking(master.as_fd()).map_err(|e| e.to_string())?;
        }
        loop {
            if let (Some(code), None) = (self.exit, &self.master) {
                return Ok(code);
            }
            // Stdin is read only once the master has taken what came before (a
            // regular file or /dev/null is always ready); the master is watched for
            // room only while something waits for it.
            let waiting = !self.pending.is_empty();
            let mut fds = [
                entry(
                    (self.stdin && !waiting).then(|| borrow_std(0)),
                    libc::POLLIN,
                ),
                entry(
                    self.master.as_ref().map(AsFd::as_fd),
                    libc::POLLIN | if waiting { libc::POLLOUT } else { 0 },
                ),
                entry(self.sock.as_ref().map(AsFd::as_fd), libc::POLLIN),
                entry(Some(self.signals.as_fd()), libc::POLLIN),
            ];
            sys::fd::poll(&mut fds).map_err(|e| e.to_string())?;
            let [stdin, master, sock, signals] = fds.map(|p| p.revents != 0);
            if signals {
                if let Some(signal) = self.on_signals() {
                    return Ok(u8::try_from(128 + signal).unwrap_or(EXIT_FAILED));
                }
            }
            if stdin {
                self.read_stdin();
            }
            if master {
                self.on_master();
            }
            if sock {
                self.on_socket()?;
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

    /// The master is readable (or has room, or every slave is closed).
    fn on_master(&mut self) {
        let Some(master) = &self.master else { return };
        if !self.pending.is_empty() {
            match sys::fd::write(master.as_fd(), &self.pending) {
                Ok(n) => drop(self.pending.drain(..n.min(self.pending.len()))),
                Err(e) if e.errno == libc::EAGAIN => {}
                // Nobody reads the pty any more: what was typed has nowhere to go.
                Err(_) => self.pending.clear(),
            }
        }
        let mut buf = [0u8; 4096];
        match sys::fd::read(master.as_fd(), &mut buf) {
            Ok(n) if n > 0 => {
                // A reader that went away (`| head`): the output has nowhere to go.
                let _ = sys::fd::write_all(1, buf.get(..n).unwrap_or_default());
            }
            Err(e) if e.errno == libc::EAGAIN => {}
            // EIO: every slave is closed (the command and the runner are gone).
            _ => {
                self.master = None;
                self.pending.clear();
            }
        }
    }

    /// The socket is readable: frames, at last the exit status.
    fn on_socket(&mut self) -> Result<(), String> {
        let Some(sock) = &self.sock else {
            return Ok(());
        };
        let mut buf = [0u8; 4096];
        let n = sys::net::recv(sock.as_fd(), &mut buf)
            .map_err(|e| format!("reading berth's answer: {e}"))?;
        if n == 0 {
            return Err("berth closed the connection without an answer".to_owned());
        }
        self.frames
            .extend_from_slice(buf.get(..n).unwrap_or_default());
        while let Some(end) = self.frames.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(self.frames.get(..end).unwrap_or_default());
            let frame = Frame::decode(&line);
            let (fd, text) = match frame {
                Some(Frame::Out(text)) => (1, text),
                Some(Frame::Err(text)) => (2, text),
                Some(Frame::Exit(code)) => {
                    self.exit = Some(u8::try_from(code).unwrap_or(EXIT_FAILED));
                    // The connection is done: closed, and no longer watched.
                    self.sock = None;
                    return Ok(());
                }
                None => return Err(format!("unexpected answer from berth: {line:?}")),
            };
            let _ = sys::fd::write_all(fd, text.as_bytes());
            let _ = sys::fd::write_all(fd, self.newline.as_bytes());
            self.frames.drain(..=end);
        }
        Ok(())
    }

    /// Signals: a window size to pass on; any other ends the client (its number).
    fn on_signals(&mut self) -> Option<i32> {
        let mut received = Vec::new();
        sys::signal::read_signals(self.signals.as_fd(), &mut received);
        for r in received {
            if r.signal != libc::SIGWINCH {
                return Some(r.signal);
            }
            if let (Some(terminal), Some(master)) = (self.terminal, &self.master) {
                copy_window_size(terminal, master.as_fd());
            }
        }
        None
    }
}
