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

use std::io::IsTerminal;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::control::protocol::Frame;
use crate::sys::{self, Error, epoll::Epoll, signal::SigSet};

/// Exit status when the exec could not be made.
const EXIT_FAILED: u8 = 1;

/// Sends `request` with this process's stdin, stdout and stderr attached (with `tty`,
/// a new pty's slave instead), and waits for the command's exit status.
pub fn run(sock: OwnedFd, request: &str, tty: bool) -> u8 {
    if tty {
        return run_tty(sock, request);
    }
    let stdio = [0, 1, 2].map(borrow_std);
    if let Err(e) = send_request(sock.as_fd(), request, &stdio) {
        eprintln!("berth exec: sending the request to berth: {e}");
        return EXIT_FAILED;
    }
    super::client::relay(sock, false)
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
    let stdin = borrow_std(0);
    // The client's terminal: its stdin's, else its stdout's (`cmd | berth exec -t`).
    let terminal = [stdin, borrow_std(1)]
        .into_iter()
        .find(|fd| fd.is_terminal());
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
        eprintln!("berth exec: sending the request to berth: {e}");
        return EXIT_FAILED;
    }
    // Only the command's copies are left: the master reports their end.
    drop(slave);
    // Raw from here on; restored when `raw` goes, on every way out below.
    let raw = stdin.is_terminal().then(|| RawMode::enter(stdin)).flatten();
    let mut relay = Relay {
        master: Some(master),
        sock: Some(sock),
        signals,
        terminal,
        newline: if raw.is_some() { "\r\n" } else { "\n" },
        stdin: Input::Watched,
        pending: Vec::new(),
        frames: Vec::new(),
        exit: None,
    };
    let status = relay.run();
    drop(raw);
    if let Err(why) = &status {
        eprintln!("berth exec: {why}");
    }
    status.unwrap_or(EXIT_FAILED)
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

/// How the client's stdin is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// Through epoll (a terminal, a pipe, a socket).
    Watched,
    /// A file epoll refuses (a regular file, `/dev/null`), which never makes a read
    /// wait: read whenever the master has taken what came before.
    File,
    /// At its end.
    Done,
}

const STDIN: u64 = 0;
const MASTER: u64 = 1;
const SOCKET: u64 = 2;
const SIGNALS: u64 = 3;

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
    stdin: Input,
    /// Read from stdin, not yet taken by the master.
    pending: Vec<u8>,
    /// The start of a frame line not complete yet.
    frames: Vec<u8>,
    exit: Option<u8>,
}

impl Relay {
    /// Relays until the command's exit status has come and every slave is closed:
    /// that status.
    fn run(&mut self) -> Result<u8, String> {
        let epoll = Epoll::new().map_err(|e| e.to_string())?;
        let add = |fd: BorrowedFd<'_>, token| epoll.add(fd, token, false);
        let (Some(master), Some(sock)) = (&self.master, &self.sock) else {
            return Err("nothing to relay".to_owned());
        };
        sys::fd::nonblocking(master.as_fd()).map_err(|e| e.to_string())?;
        add(master.as_fd(), MASTER)
            .and_then(|()| add(sock.as_fd(), SOCKET))
            .and_then(|()| add(self.signals.as_fd(), SIGNALS))
            .map_err(|e| e.to_string())?;
        match add(borrow_std(0), STDIN) {
            Ok(()) => {}
            Err(Error {
                errno: libc::EPERM, ..
            }) => self.stdin = Input::File,
            Err(e) => return Err(format!("watching stdin: {e}")),
        }
        let mut tokens = Vec::new();
        let mut watching_stdin = self.stdin == Input::Watched;
        let mut writing = false;
        loop {
            if let (Some(code), None) = (self.exit, &self.master) {
                return Ok(code);
            }
            if self.stdin == Input::File && self.pending.is_empty() {
                self.read_stdin();
            }
            // Stdin is read only once the master has taken what came before; the
            // master is watched for room only while something waits for it.
            let want_stdin = self.stdin == Input::Watched && self.pending.is_empty();
            if want_stdin != watching_stdin {
                let _ = if want_stdin {
                    add(borrow_std(0), STDIN)
                } else {
                    epoll.remove(borrow_std(0))
                };
                watching_stdin = want_stdin;
            }
            if let Some(master) = &self.master {
                let want_room = !self.pending.is_empty();
                if want_room != writing {
                    let _ = epoll.modify(master.as_fd(), MASTER, want_room);
                    writing = want_room;
                }
            }
            epoll.wait(&mut tokens).map_err(|e| e.to_string())?;
            for &token in &tokens {
                match token {
                    STDIN => self.read_stdin(),
                    MASTER => self.on_master(),
                    SOCKET => self.on_socket()?,
                    _ => {
                        if let Some(signal) = self.on_signals() {
                            return Ok(u8::try_from(128 + signal).unwrap_or(EXIT_FAILED));
                        }
                    }
                }
            }
        }
    }

    /// A read of stdin into `pending`; at its end, an end-of-file key (Ctrl-D) for
    /// the command, as a person would type it.
    fn read_stdin(&mut self) {
        let mut buf = [0u8; 4096];
        match sys::fd::read(borrow_std(0), &mut buf) {
            Ok(0) | Err(_) => {
                self.stdin = Input::Done;
                self.pending.push(0x04);
            }
            Ok(n) => self
                .pending
                .extend_from_slice(buf.get(..n).unwrap_or_default()),
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
                let out = buf.get(..n).unwrap_or_default();
                // A reader that went away (`| head`): the output has nowhere to go.
                let _ = sys::fd::write_all(1, out);
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
        let n = match sys::net::recv(sock.as_fd(), &mut buf) {
            Ok(n) => n,
            Err(e) if e.errno == libc::EAGAIN => return Ok(()),
            Err(e) => return Err(format!("reading berth's answer: {e}")),
        };
        if n == 0 {
            return Err("berth closed the connection without an answer".to_owned());
        }
        self.frames
            .extend_from_slice(buf.get(..n).unwrap_or_default());
        while let Some(end) = self.frames.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.frames.drain(..=end).collect();
            let line = String::from_utf8_lossy(line.get(..end).unwrap_or_default());
            let (fd, text) = match Frame::decode(&line) {
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
            let _ = sys::fd::write_all(fd, format!("{text}{}", self.newline).as_bytes());
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
