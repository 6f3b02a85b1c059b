//! The control socket as the supervisor's loop serves it: accepting, reading request
//! lines, writing answers, all without waiting for a client. A client that is slow,
//! silent or gone costs the loop nothing: requests are bounded ([`MAX_REQUEST`]), so
//! are clients ([`MAX_CLIENTS`]) and what waits to be written to each
//! ([`MAX_PENDING`]); one that has not sent its request within [`REQUEST_TIMEOUT_MS`]
//! is dropped, and so is one that does not read what it asked for.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::protocol::{self, Frame, MAX_REQUEST};
use crate::sys::{self, epoll::Epoll};

/// Clients served at once; one more is told to try again and closed.
pub const MAX_CLIENTS: usize = 64;
/// Bytes of answer waiting for one client; past this it is dropped (a `logs -f` or
/// `events` reader that stopped reading).
pub const MAX_PENDING: usize = 256 * 1024;
/// Time a client has to send its request after connecting.
pub const REQUEST_TIMEOUT_MS: u64 = 5_000;
/// The low byte of a client's epoll token: `(serial << 8) | CLIENT`.
pub const CLIENT: u64 = 0xfe;

/// Below this many bytes waiting, a client's [`Feed`] is asked for more.
const FEED_LOW: usize = 64 * 1024;

/// A long answer produced as the client reads it (a log's history), so that it never
/// sits whole in berth's memory.
pub trait Feed {
    /// Appends the next part (whole frame lines) to `out`; `false` once there is no
    /// more.
    fn fill(&mut self, out: &mut Vec<u8>) -> bool;
}

/// The words a client that is not root gets.
pub const ROOT_ONLY: &str = "permission denied: berth's control socket is root-only";

/// One connected client.
struct Client {
    token: u64,
    fd: OwnedFd,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Until its request arrived: when it is dropped.
    deadline: Option<u64>,
    /// Close once `output` is written (its answer is complete).
    closing: bool,
    /// Watched for writing too (output is waiting).
    writing: bool,
    /// Descriptors received with the request so far (they may come with any of its
    /// parts), at most [`sys::net::MAX_FDS`].
    fds: Vec<OwnedFd>,
    /// The long answer being written, and what was sent meanwhile (written after it).
    feed: Option<Box<dyn Feed>>,
    after_feed: Vec<u8>,
}

/// What a client did.
pub enum Happening {
    /// A whole request: its command line and the descriptors sent with it.
    Request {
        token: u64,
        args: Vec<String>,
        fds: Vec<OwnedFd>,
    },
    /// It hung up (or was dropped): whatever it was waiting for or following ends.
    Gone(u64),
}

/// The listening socket and its clients.
pub struct Server {
    listener: OwnedFd,
    path: PathBuf,
    clients: Vec<Client>,
    serial: u64,
}

impl Server {
    /// Listens at `path` (mode 0600) and adds the socket to `epoll` with `token`. A
    /// socket file left by an earlier berth is replaced; one a running berth answers
    /// on is not (`AddrInUse`).
    pub fn bind(path: &Path, epoll: &Epoll, token: u64) -> io::Result<Server> {
        let bytes = path.as_os_str().as_bytes();
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if sys::net::unix_connect(bytes).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another berth answers on {}", path.display()),
                ));
            }
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            std::fs::remove_file(path).map_err(|e| {
                io::Error::new(e.kind(), format!("remove the old {}: {e}", path.display()))
            })?;
        }
        let listener = sys::net::unix_listen(bytes, 64).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("listen on {}: {e}", path.display()),
            )
        })?;
        epoll.add(listener.as_fd(), token, false).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("watch {}: {e}", path.display()),
            )
        })?;
        Ok(Server {
            listener,
            path: path.to_owned(),
            clients: Vec::new(),
            serial: 0,
        })
    }

    /// Accepts every waiting client. One that is not root, or one too many, gets its
    /// refusal (as far as its socket takes it at once) and is closed.
    pub fn accept(&mut self, epoll: &Epoll, now: u64) {
        loop {
            let fd = match sys::net::accept(self.listener.as_fd()) {
                Ok(fd) => fd,
                Err(e) if e.errno == libc::EAGAIN => return,
                // A client that gave up while queued, or no descriptor left: the next
                // one may succeed; the loop is not stopped for it.
                Err(e) => {
                    log::warn!("control socket {}: {e}", self.path.display());
                    return;
                }
            };
            let refusal = match sys::net::peer_uid(fd.as_fd()) {
                Ok(0) => None,
                Ok(_) => Some(ROOT_ONLY.to_owned()),
                Err(e) => Some(format!("berth cannot tell who is asking: {e}")),
            };
            let refusal = refusal.or_else(|| {
                (self.clients.len() >= MAX_CLIENTS)
                    .then(|| format!("berth serves {MAX_CLIENTS} clients at once; try again"))
            });
            if let Some(why) = refusal {
                let answer = Frame::Err(why).encode() + &Frame::Exit(1).encode();
                let _ = sys::net::send(fd.as_raw_fd(), answer.as_bytes());
                continue;
            }
            self.adopt(epoll, fd, now);
        }
    }

    /// Serves the connected socket `fd` (accepted and admitted): its token.
    fn adopt(&mut self, epoll: &Epoll, fd: OwnedFd, now: u64) -> Option<u64> {
        self.serial += 1;
        let token = (self.serial << 8) | CLIENT;
        if let Err(e) = epoll.add(fd.as_fd(), token, false) {
            log::warn!("control socket: watch a client: {e}");
            return None;
        }
        self.clients.push(Client {
            token,
            fd,
            input: Vec::new(),
            output: Vec::new(),
            deadline: Some(now + REQUEST_TIMEOUT_MS),
            closing: false,
            writing: false,
            fds: Vec::new(),
            feed: None,
            after_feed: Vec::new(),
        });
        Some(token)
    }

    fn find(&self, token: u64) -> Option<usize> {
        self.clients.iter().position(|c| c.token == token)
    }

    /// The client of `token` is ready: writes what waits for it, reads its request
    /// (once) or notices that it hung up.
    pub fn on_ready(&mut self, epoll: &Epoll, token: u64) -> Option<Happening> {
        let at = self.find(token)?;
        if !self.flush(epoll, at) {
            self.drop_at(epoll, at);
            return Some(Happening::Gone(token));
        }
        // The flush may have closed a finished client (and moved another to `at`).
        let at = self.find(token)?;
        let client = self.clients.get_mut(at)?;
        let mut buf = [0u8; 4096];
        match sys::net::recv_with_fds(client.fd.as_raw_fd(), &mut buf, &mut client.fds) {
            Ok(0) => {
                self.drop_at(epoll, at);
                return Some(Happening::Gone(token));
            }
            Ok(n) if client.deadline.is_some() => {
                client
                    .input
                    .extend_from_slice(buf.get(..n).unwrap_or_default());
            }
            // After its request a client has nothing more to say: ignored.
            Ok(_) => return None,
            Err(e) if e.errno == libc::EAGAIN => return None,
            Err(_) => {
                self.drop_at(epoll, at);
                return Some(Happening::Gone(token));
            }
        }
        if client.fds.len() > sys::net::MAX_FDS {
            self.refuse(epoll, token, "more descriptors than a request takes");
            return None;
        }
        let Some(end) = client.input.iter().position(|&b| b == b'\n') else {
            if client.input.len() >= MAX_REQUEST {
                self.refuse(epoll, token, &protocol::RequestError::TooLong.to_string());
            }
            return None;
        };
        client.deadline = None;
        let line = client.input.get(..end).unwrap_or_default().to_vec();
        client.input = Vec::new();
        let fds = std::mem::take(&mut client.fds);
        match protocol::decode_request(&line) {
            Ok(args) => Some(Happening::Request { token, args, fds }),
            Err(e) => {
                self.refuse(epoll, token, &e.to_string());
                None
            }
        }
    }

    fn refuse(&mut self, epoll: &Epoll, token: u64, why: &str) {
        self.send(epoll, token, &Frame::Err(format!("berth: {why}")));
        self.finish(epoll, token, 2);
    }

    /// Queues `frame` for the client and writes what it takes now. `false` when the
    /// client is gone or dropped for not reading (the caller forgets it).
    pub fn send(&mut self, epoll: &Epoll, token: u64, frame: &Frame) -> bool {
        let Some(at) = self.find(token) else {
            return false;
        };
        let Some(client) = self.clients.get_mut(at) else {
            return false;
        };
        let queue = if client.feed.is_some() {
            &mut client.after_feed
        } else {
            &mut client.output
        };
        queue.extend_from_slice(frame.encode().as_bytes());
        if queue.len() > MAX_PENDING || !self.flush(epoll, at) {
            self.drop_at(epoll, at);
            return false;
        }
        true
    }

    /// Starts a long answer for the client: `feed` is written as the client reads it,
    /// before anything sent afterwards.
    pub fn attach(&mut self, epoll: &Epoll, token: u64, feed: Box<dyn Feed>) -> bool {
        let Some(at) = self.find(token) else {
            return false;
        };
        if let Some(c) = self.clients.get_mut(at) {
            c.feed = Some(feed);
        }
        if self.flush(epoll, at) {
            return true;
        }
        self.drop_at(epoll, at);
        false
    }

    /// Ends the answer with the exit status `code`; the client is closed once it
    /// has all of it.
    pub fn finish(&mut self, epoll: &Epoll, token: u64, code: i32) {
        if self.send(epoll, token, &Frame::Exit(code)) {
            if let Some(at) = self.find(token) {
                if let Some(c) = self.clients.get_mut(at) {
                    c.closing = true;
                }
                if self
                    .clients
                    .get(at)
                    .is_some_and(|c| c.output.is_empty() && c.feed.is_none())
                {
                    self.drop_at(epoll, at);
                }
            }
        }
    }

    /// Writes what the client at `at` takes; watches for writability while some is
    /// left. `false` when its socket failed (it hung up).
    fn flush(&mut self, epoll: &Epoll, at: usize) -> bool {
        let Some(c) = self.clients.get_mut(at) else {
            return false;
        };
        loop {
            if c.output.len() < FEED_LOW {
                // Until it gives something (a part may be all filtered out) or ends.
                while let Some(feed) = &mut c.feed {
                    if !feed.fill(&mut c.output) {
                        c.feed = None;
                        let after = std::mem::take(&mut c.after_feed);
                        c.output.extend_from_slice(&after);
                        break;
                    }
                    if !c.output.is_empty() {
                        break;
                    }
                }
            }
            if c.output.is_empty() {
                break;
            }
            match sys::net::send(c.fd.as_raw_fd(), &c.output) {
                Ok(n) => {
                    c.output.drain(..n.min(c.output.len()));
                }
                Err(e) if e.errno == libc::EAGAIN => break,
                Err(e) if e.errno == libc::EINTR => {}
                Err(_) => return false,
            }
        }
        let want = !c.output.is_empty();
        if want != c.writing {
            if epoll.modify(c.fd.as_fd(), c.token, want).is_err() {
                return false;
            }
            c.writing = want;
        }
        if c.closing && c.output.is_empty() && c.feed.is_none() {
            self.drop_at(epoll, at);
        }
        true
    }

    fn drop_at(&mut self, epoll: &Epoll, at: usize) {
        if at < self.clients.len() {
            let c = self.clients.swap_remove(at);
            let _ = epoll.remove(c.fd.as_fd());
        }
    }

    /// Hands the client's socket over (to a job that answers it itself): it is no
    /// longer watched or written by the server.
    pub fn take(&mut self, epoll: &Epoll, token: u64) -> Option<OwnedFd> {
        let at = self.find(token)?;
        if at >= self.clients.len() {
            return None;
        }
        let c = self.clients.swap_remove(at);
        let _ = epoll.remove(c.fd.as_fd());
        Some(c.fd)
    }

    /// The earliest time a client is due to have sent its request.
    pub fn next_deadline(&self) -> Option<u64> {
        self.clients.iter().filter_map(|c| c.deadline).min()
    }

    /// Drops the clients whose request is overdue.
    pub fn expire(&mut self, epoll: &Epoll, now: u64) {
        let late: Vec<u64> = self
            .clients
            .iter()
            .filter(|c| c.deadline.is_some_and(|d| d <= now))
            .map(|c| c.token)
            .collect();
        for token in late {
            self.refuse(epoll, token, "no request within 5 s; closing");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TempDir;

    #[test]
    fn a_request_in_parts_keeps_the_descriptors_of_its_first_part() {
        let dir = TempDir::new("control", "parts");
        let epoll = Epoll::new().unwrap();
        let mut server = Server::bind(&dir.0.join("berth.sock"), &epoll, 2).unwrap();
        let (client, served) = sys::net::seqpacket_pair().unwrap();
        let token = server.adopt(&epoll, served, 0).unwrap();
        let (r, _w) = sys::fd::pipe().unwrap();
        let line = crate::control::protocol::encode_request(&["exec", "web", "--", "id"]);
        let (first, second) = line.as_bytes().split_at(10);
        sys::net::send_with_fds(client.as_fd(), first, &[r.as_fd()]).unwrap();
        assert!(server.on_ready(&epoll, token).is_none());
        sys::net::send_with_fds(client.as_fd(), second, &[]).unwrap();
        let Some(Happening::Request { args, fds, .. }) = server.on_ready(&epoll, token) else {
            panic!("no request");
        };
        assert_eq!(args, ["exec", "web", "--", "id"]);
        assert_eq!(fds.len(), 1);
        // Too many descriptors: refused with a usage error.
        let (client, served) = sys::net::seqpacket_pair().unwrap();
        let token = server.adopt(&epoll, served, 0).unwrap();
        let four = [r.as_fd(), r.as_fd(), r.as_fd()];
        sys::net::send_with_fds(client.as_fd(), b"[", &four).unwrap();
        sys::net::send_with_fds(client.as_fd(), b"\"", &four[..1]).unwrap();
        assert!(server.on_ready(&epoll, token).is_none());
        assert!(server.on_ready(&epoll, token).is_none());
        let mut answer = [0u8; 256];
        let n = sys::net::recv(client.as_fd(), &mut answer).unwrap();
        assert_eq!(
            std::str::from_utf8(&answer[..n]).unwrap(),
            "e berth: more descriptors than a request takes\n"
        );
    }
}
