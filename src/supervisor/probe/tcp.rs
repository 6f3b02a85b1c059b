//! The TCP probe, and the connection of the HTTP probe: a non-blocking connect made
//! from inside the app's network namespace, to the address the probe names
//! ([`SocketTarget`]), and the whole exchange as the loop drives it ([`SocketProbe`]).

use std::fmt;
use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::manifest::model::Probe;
use crate::sys::{self, Error};

use super::http::{HttpError, HttpResponse, HttpTarget, http_target, verdict};
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

/// Where a socket probe connects, and what it asks once connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketTarget {
    /// `healthcheck.tcp: PORT`: connected means healthy.
    Tcp(SocketAddrV4),
    /// `healthcheck.http: URL`: the status of the answer tells.
    Http(HttpTarget),
}

impl SocketTarget {
    /// The socket probe of a manifest's healthcheck; `None` for an exec probe.
    ///
    /// A tcp probe names only a port, of the app's loopback: `127.0.0.1:PORT`. An http
    /// probe connects to the host its URL names (an IPv4 address, or `localhost` for
    /// 127.0.0.1; names are not resolved), as Docker's HEALTHCHECK would from inside
    /// the container: the connection is made in the app's network namespace, so any
    /// address the app can reach is fair, and one nobody answers on is unhealthy.
    pub fn of(probe: &Probe) -> Option<SocketTarget> {
        match probe {
            Probe::Exec(_) => None,
            Probe::Tcp(port) => Some(SocketTarget::Tcp(SocketAddrV4::new(
                Ipv4Addr::LOCALHOST,
                port.0,
            ))),
            Probe::Http(url) => Some(SocketTarget::Http(http_target(url))),
        }
    }

    /// The address connected to.
    pub fn addr(&self) -> SocketAddrV4 {
        match self {
            SocketTarget::Tcp(addr) => *addr,
            SocketTarget::Http(target) => target.addr,
        }
    }
}

/// What a socket probe waits for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The socket to be writable (`EPOLLOUT`): connecting, or sending the request.
    Writable,
    /// The socket to be readable (`EPOLLIN`): the answer.
    Readable,
}

/// How a socket probe ended, when it got an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketOutcome {
    /// The tcp probe connected.
    Connected,
    /// The http probe's status ([`verdict`]: 2xx and 3xx are healthy).
    Status(u16),
}

impl SocketOutcome {
    pub fn healthy(self) -> bool {
        match self {
            SocketOutcome::Connected => true,
            SocketOutcome::Status(status) => verdict(status),
        }
    }
}

impl fmt::Display for SocketOutcome {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            SocketOutcome::Connected => f.write_str("connected"),
            SocketOutcome::Status(status) => write!(f, "returned {status}"),
        }
    }
}

/// Why a socket probe got no answer.
#[derive(Debug)]
pub enum SocketError {
    /// The connection failed (`ECONNREFUSED`: nobody listens there).
    Connect {
        addr: SocketAddrV4,
        source: io::Error,
    },
    Send {
        addr: SocketAddrV4,
        source: io::Error,
    },
    Receive {
        addr: SocketAddrV4,
        source: io::Error,
    },
    /// The answer is not HTTP, or ended before its status line.
    Http {
        addr: SocketAddrV4,
        source: HttpError,
    },
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            SocketError::Connect { addr, source } => write!(f, "connect to {addr}: {source}"),
            SocketError::Send { addr, source } => {
                write!(f, "send the http request to {addr}: {source}")
            }
            SocketError::Receive { addr, source } => {
                write!(f, "read the answer of {addr}: {source}")
            }
            SocketError::Http { addr, source } => write!(f, "{addr}: {source}"),
        }
    }
}

impl std::error::Error for SocketError {}

/// A tcp or http probe under way, driven by the loop: [`start`](Self::start) it, wait
/// on [`fd`](Self::fd) for what [`wait`](Self::wait) says, and call
/// [`on_ready`](Self::on_ready) each time the socket is ready, until it gives the
/// outcome. Nothing blocks; the loop owns the timeout (drop the probe at it: that
/// closes the socket).
#[derive(Debug)]
pub struct SocketProbe {
    addr: SocketAddrV4,
    stream: TcpStream,
    stage: Stage,
}

#[derive(Debug)]
enum Stage {
    /// Waiting for the connection; `request` to send once connected, if http.
    Connecting {
        request: Option<Vec<u8>>,
    },
    /// Sending what is left of the request.
    Sending(Vec<u8>),
    Reading(HttpResponse),
}

impl SocketProbe {
    /// Starts the connection to `target` inside the network namespace `netns` (an open
    /// `/proc/PID/ns/net` of the app; `None`: the caller's own), see
    /// [`tcp_connect_addr_in`]. An error here (the namespace cannot be joined, or the
    /// address cannot be reached at all: `ENETUNREACH`) means the probe failed.
    pub fn start(netns: Option<BorrowedFd<'_>>, target: &SocketTarget) -> io::Result<SocketProbe> {
        let addr = target.addr();
        let fd = tcp_connect_addr_in(netns, addr)?;
        let request = match target {
            SocketTarget::Tcp(_) => None,
            SocketTarget::Http(http) => Some(http.request()),
        };
        Ok(SocketProbe {
            addr,
            stream: TcpStream::from(fd),
            stage: Stage::Connecting { request },
        })
    }

    /// The socket, to watch.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// What to wait for before the next [`on_ready`](Self::on_ready).
    pub fn wait(&self) -> Wait {
        match self.stage {
            Stage::Connecting { .. } | Stage::Sending(_) => Wait::Writable,
            Stage::Reading(_) => Wait::Readable,
        }
    }

    /// The socket is ready (or in error): goes as far as it can without waiting. `None`
    /// while the probe needs more (wait again, for what [`wait`](Self::wait) says now);
    /// the outcome, or why there is none, once it is over.
    pub fn on_ready(&mut self) -> Option<Result<SocketOutcome, SocketError>> {
        let addr = self.addr;
        if let Stage::Connecting { request } = &mut self.stage {
            if let Err(source) = tcp_result(self.stream.as_fd()) {
                return Some(Err(SocketError::Connect { addr, source }));
            }
            match request.take() {
                None => return Some(Ok(SocketOutcome::Connected)),
                Some(request) => self.stage = Stage::Sending(request),
            }
        }
        if let Stage::Sending(unsent) = &mut self.stage {
            while !unsent.is_empty() {
                match self.stream.write(unsent) {
                    Ok(0) => {
                        let source = io::Error::from(io::ErrorKind::WriteZero);
                        return Some(Err(SocketError::Send { addr, source }));
                    }
                    Ok(n) => {
                        unsent.drain(..n.min(unsent.len()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                    Err(source) => return Some(Err(SocketError::Send { addr, source })),
                }
            }
            self.stage = Stage::Reading(HttpResponse::new());
        }
        let Stage::Reading(response) = &mut self.stage else {
            return None;
        };
        let mut buf = [0u8; 512];
        loop {
            let fed = match self.stream.read(&mut buf) {
                Ok(0) => {
                    return Some(
                        response
                            .finish()
                            .map(SocketOutcome::Status)
                            .map_err(|source| SocketError::Http { addr, source }),
                    );
                }
                Ok(n) => response.feed(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(source) => return Some(Err(SocketError::Receive { addr, source })),
            };
            match fed {
                Ok(Some(status)) => return Some(Ok(SocketOutcome::Status(status))),
                Ok(None) => {}
                Err(source) => return Some(Err(SocketError::Http { addr, source })),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_the_address_each_probe_names() {
        let http = |u: &str| SocketTarget::of(&Probe::Http(u.parse().unwrap())).unwrap();
        let t = http("http://10.9.9.9:8080/healthz");
        assert_eq!(t.addr(), "10.9.9.9:8080".parse().unwrap());
        let SocketTarget::Http(target) = &t else {
            panic!("{t:?}")
        };
        assert_eq!(
            target.request(),
            b"GET /healthz HTTP/1.0\r\nHost: 10.9.9.9:8080\r\nConnection: close\r\nUser-Agent: berth\r\n\r\n"
        );
        assert_eq!(
            http("http://localhost:81/").addr(),
            "127.0.0.1:81".parse().unwrap()
        );
        assert_eq!(
            SocketTarget::of(&Probe::Tcp(crate::manifest::types::Port(1883))),
            Some(SocketTarget::Tcp("127.0.0.1:1883".parse().unwrap()))
        );
        let exec = Probe::Exec(serde_yaml::from_str("[true]").unwrap());
        assert_eq!(SocketTarget::of(&exec), None);
    }

    #[test]
    fn outcomes_and_errors_read_well() {
        assert_eq!(SocketOutcome::Connected.to_string(), "connected");
        assert_eq!(SocketOutcome::Status(503).to_string(), "returned 503");
        assert!(SocketOutcome::Status(301).healthy());
        assert!(!SocketOutcome::Status(503).healthy());
        let e = SocketError::Connect {
            addr: "10.9.9.9:8080".parse().unwrap(),
            source: io::Error::from_raw_os_error(libc::ECONNREFUSED),
        };
        assert_eq!(
            e.to_string(),
            "connect to 10.9.9.9:8080: Connection refused (os error 111)"
        );
    }
}
