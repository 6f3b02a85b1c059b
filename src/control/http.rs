//! `metrics_listen`: the loop answers `GET /metrics` over HTTP/1.x itself, so that an
//! existing Prometheus scrapes a device with no agent on it. Only that: one request a
//! connection, answered with `Connection: close` and closed; `HEAD` as `GET` without
//! the body; another path is 404, another method 405. No keep-alive, no request body,
//! no TLS: bind it to an address only the scraper reaches.
//!
//! As with the control socket ([`super::server`]), no client can make the loop wait:
//! sockets are non-blocking, a request head is bounded ([`MAX_HEAD`]), so are clients
//! ([`MAX_CLIENTS`]), and a client whose exchange is not over within [`TIMEOUT_MS`]
//! (it sends nothing, or reads nothing) is closed. A client that shuts down its
//! sending side before it has its answer is taken as gone.

use std::net::SocketAddrV4;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use crate::sys::{self, epoll::Epoll};

/// Clients served at once; one more gets a 503 and is closed.
pub const MAX_CLIENTS: usize = 16;
/// The longest request head read; a longer one gets a 431.
pub const MAX_HEAD: usize = 4096;
/// Time a client has from connecting to having its whole answer.
pub const TIMEOUT_MS: u64 = 5_000;
/// The low byte of a client's epoll token: `(serial << 8) | CLIENT`.
pub const CLIENT: u64 = 0xfd;

/// A request the loop answers with [`HttpServer::respond`]: `GET` or `HEAD` of
/// `/metrics` (the server answers every other one itself).
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub token: u64,
}

struct Client {
    token: u64,
    fd: OwnedFd,
    input: Vec<u8>,
    output: Vec<u8>,
    /// When it is closed, answered or not.
    deadline: u64,
    /// Its request head is complete: what it sends after is ignored.
    requested: bool,
    /// `HEAD`: the answer has no body.
    head: bool,
    /// Its answer is queued: closed once written.
    closing: bool,
    /// Watched for writing too (output is waiting).
    writing: bool,
}

/// The listening socket and its clients.
pub struct HttpServer {
    listener: OwnedFd,
    clients: Vec<Client>,
    serial: u64,
}

impl HttpServer {
    /// Listens on `addr` and adds the socket to `epoll` with `token`.
    pub fn bind(addr: SocketAddrV4, epoll: &Epoll, token: u64) -> sys::Result<HttpServer> {
        let listener = sys::net::tcp_listen(addr, MAX_CLIENTS as libc::c_int)?;
        epoll.add(listener.as_fd(), token, false)?;
        Ok(HttpServer {
            listener,
            clients: Vec::new(),
            serial: 0,
        })
    }

    /// Accepts every waiting client; one too many gets a 503 (as far as its socket
    /// takes it at once) and is closed.
    pub fn accept(&mut self, epoll: &Epoll, now: u64) {
        loop {
            let fd = match sys::net::accept(self.listener.as_fd()) {
                Ok(fd) => fd,
                Err(e) if e.errno == libc::EAGAIN => return,
                // A client that gave up while queued, or no descriptor left: the next
                // one may succeed; the loop is not stopped for it.
                Err(e) => {
                    log::warn!("metrics_listen: {e}");
                    return;
                }
            };
            if self.clients.len() >= MAX_CLIENTS {
                let _ = sys::net::send(fd.as_raw_fd(), &refusal(BUSY));
                continue;
            }
            self.serial += 1;
            let token = (self.serial << 8) | CLIENT;
            if epoll.add(fd.as_fd(), token, false).is_err() {
                continue;
            }
            self.clients.push(Client {
                token,
                fd,
                input: Vec::new(),
                output: Vec::new(),
                deadline: now + TIMEOUT_MS,
                requested: false,
                head: false,
                closing: false,
                writing: false,
            });
        }
    }

    fn find(&self, token: u64) -> Option<usize> {
        self.clients.iter().position(|c| c.token == token)
    }

    /// The client of `token` is ready: writes what waits for it, reads its request
    /// head, answers a bad one itself, and returns a good one.
    pub fn on_ready(&mut self, epoll: &Epoll, token: u64) -> Option<Request> {
        self.flush(epoll, token);
        let at = self.find(token)?;
        let client = self.clients.get_mut(at)?;
        let mut buf = [0u8; 1024];
        match sys::net::recv(client.fd.as_fd(), &mut buf) {
            Ok(0) => {
                self.drop_at(epoll, at);
                return None;
            }
            Ok(_) if client.requested => return None,
            Ok(n) => client
                .input
                .extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if e.errno == libc::EAGAIN => return None,
            Err(_) => {
                self.drop_at(epoll, at);
                return None;
            }
        }
        let input = &client.input;
        let complete =
            input.windows(4).any(|w| w == b"\r\n\r\n") || input.windows(2).any(|w| w == b"\n\n");
        if !complete && input.len() < MAX_HEAD {
            return None;
        }
        client.requested = true;
        let parsed = if complete {
            parse(input)
        } else {
            Err(TOO_LONG)
        };
        client.input = Vec::new();
        match parsed {
            Ok(method) => {
                client.head = method == Method::Head;
                Some(Request { token })
            }
            Err(status) => {
                client.output = refusal(status);
                client.closing = true;
                self.flush(epoll, token);
                None
            }
        }
    }

    /// Answers the client of `token` with `200 OK` and `body` (only the head for a
    /// `HEAD` request), writes what its socket takes now, and closes it once it has
    /// all of it.
    pub fn respond(&mut self, epoll: &Epoll, token: u64, content_type: &str, body: &str) {
        let Some(client) = self.find(token).and_then(|at| self.clients.get_mut(at)) else {
            return;
        };
        client.output = answer("200 OK", content_type, body, client.head);
        client.closing = true;
        self.flush(epoll, token);
    }

    /// Writes what the client of `token` takes; watches for writability while some
    /// is left. Closes it when its socket failed or its answer is all written.
    fn flush(&mut self, epoll: &Epoll, token: u64) {
        let Some(at) = self.find(token) else {
            return;
        };
        let Some(c) = self.clients.get_mut(at) else {
            return;
        };
        let mut failed = false;
        while !c.output.is_empty() {
            match sys::net::send(c.fd.as_raw_fd(), &c.output) {
                Ok(n) => {
                    c.output.drain(..n.min(c.output.len()));
                }
                Err(e) if e.errno == libc::EAGAIN => break,
                Err(e) if e.errno == libc::EINTR => {}
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        let want = !c.output.is_empty();
        if !failed && want != c.writing {
            failed = epoll.modify(c.fd.as_fd(), c.token, want).is_err();
            c.writing = want;
        }
        if failed || (c.closing && !want) {
            self.drop_at(epoll, at);
        }
    }

    fn drop_at(&mut self, epoll: &Epoll, at: usize) {
        if at < self.clients.len() {
            let c = self.clients.swap_remove(at);
            let _ = epoll.remove(c.fd.as_fd());
        }
    }

    /// The earliest time a client is due to be closed.
    pub fn next_deadline(&self) -> Option<u64> {
        self.clients.iter().map(|c| c.deadline).min()
    }

    /// Closes the clients whose time is up.
    pub fn expire(&mut self, epoll: &Epoll, now: u64) {
        while let Some(at) = self.clients.iter().position(|c| c.deadline <= now) {
            self.drop_at(epoll, at);
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Method {
    Get,
    Head,
}

// The status lines of the requests the server refuses itself (405's with the header
// that names the methods it serves).
const BAD_REQUEST: &str = "400 Bad Request";
const NOT_FOUND: &str = "404 Not Found";
const NOT_ALLOWED: &str = "405 Method Not Allowed\r\nAllow: GET, HEAD";
const TOO_LONG: &str = "431 Request Header Fields Too Large";
const BUSY: &str = "503 Service Unavailable";

/// What a request head (its request line is all that is read) asks for: `GET` or
/// `HEAD` of `/metrics` (a query is ignored), else the status line that refuses it.
fn parse(head: &[u8]) -> Result<Method, &'static str> {
    let end = head.iter().position(|&b| b == b'\r' || b == b'\n');
    let line = head.get(..end.unwrap_or(head.len())).unwrap_or_default();
    let line = std::str::from_utf8(line).map_err(|_| BAD_REQUEST)?;
    let mut words = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(BAD_REQUEST);
    };
    if !version.starts_with("HTTP/1.") {
        return Err(BAD_REQUEST);
    }
    if target.split('?').next() != Some("/metrics") {
        return Err(NOT_FOUND);
    }
    match method {
        "GET" => Ok(Method::Get),
        "HEAD" => Ok(Method::Head),
        _ => Err(NOT_ALLOWED),
    }
}

/// A whole HTTP/1.1 answer with the `status` line (code and reason), without the
/// body when `head`.
fn answer(status: &str, content_type: &str, body: &str, head: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    if !head {
        out.push_str(body);
    }
    out.into_bytes()
}

/// The answer to a request that is not served: its status line, no body.
fn refusal(status: &str) -> Vec<u8> {
    answer(status, "text/plain", "", false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_and_head_of_metrics_are_served() {
        let ok = |head: &str| parse(head.as_bytes());
        assert_eq!(
            ok("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Method::Get)
        );
        assert_eq!(ok("HEAD /metrics HTTP/1.0\r\n\r\n"), Ok(Method::Head));
        assert_eq!(ok("GET /metrics?x=1 HTTP/1.1\n\n"), Ok(Method::Get));
        assert_eq!(ok("GET / HTTP/1.1\r\n\r\n"), Err(NOT_FOUND));
        assert_eq!(ok("GET /metrics/ HTTP/1.1\r\n\r\n"), Err(NOT_FOUND));
        assert_eq!(ok("POST /metrics HTTP/1.1\r\n\r\n"), Err(NOT_ALLOWED));
        assert_eq!(ok("get /metrics HTTP/1.1\r\n\r\n"), Err(NOT_ALLOWED));
        assert_eq!(ok("GET /metrics HTTP/2\r\n\r\n"), Err(BAD_REQUEST));
        assert_eq!(ok("GET /metrics\r\n\r\n"), Err(BAD_REQUEST));
        assert_eq!(ok("GET  /metrics HTTP/1.1\r\n\r\n"), Err(BAD_REQUEST));
        assert_eq!(ok("\r\n\r\n"), Err(BAD_REQUEST));
    }

    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};

    /// A server on a free loopback port, and that port's address.
    fn server(epoll: &Epoll) -> (HttpServer, SocketAddr) {
        let server = HttpServer::bind("127.0.0.1:0".parse().unwrap(), epoll, 3).unwrap();
        let listener = std::net::TcpListener::from(server.listener.try_clone().unwrap());
        let addr = listener.local_addr().unwrap();
        (server, addr)
    }

    /// A client that has sent `request` and is accepted (loopback: the connection is
    /// queued and the bytes are in its socket when the calls return).
    fn client(
        http: &mut HttpServer,
        epoll: &Epoll,
        addr: SocketAddr,
        request: &[u8],
    ) -> (TcpStream, u64) {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        stream.write_all(request).unwrap();
        http.accept(epoll, 0);
        let token = http.clients.last().unwrap().token;
        (stream, token)
    }

    fn read_all(stream: &mut TcpStream) -> String {
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn a_scrape_is_handed_to_the_loop_and_answered_then_closed() {
        let epoll = Epoll::new().unwrap();
        let (mut http, addr) = server(&epoll);
        let (mut stream, token) = client(
            &mut http,
            &epoll,
            addr,
            b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
        );
        assert_eq!(token & 0xff, CLIENT);
        assert_eq!(http.on_ready(&epoll, token), Some(Request { token }));
        http.respond(&epoll, token, "text/plain", "up 1\n");
        assert_eq!(http.clients.len(), 0);
        assert_eq!(
            read_all(&mut stream),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nup 1\n"
        );
        // A head in pieces is read to its end first.
        let (mut stream, token) = client(&mut http, &epoll, addr, b"HEAD /metrics HTTP/1.0\r\n");
        assert_eq!(http.on_ready(&epoll, token), None);
        stream.write_all(b"\r\n").unwrap();
        assert_eq!(http.on_ready(&epoll, token), Some(Request { token }));
        http.respond(&epoll, token, "text/plain", "up 1\n");
        assert!(read_all(&mut stream).ends_with("Content-Length: 5\r\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn bad_requests_are_answered_by_the_server() {
        let epoll = Epoll::new().unwrap();
        let (mut http, addr) = server(&epoll);
        for (request, status) in [
            (&b"GET /other HTTP/1.1\r\n\r\n"[..], "404 Not Found"),
            (
                b"DELETE /metrics HTTP/1.1\r\n\r\n",
                "405 Method Not Allowed",
            ),
            (b"hello\n\n", "400 Bad Request"),
            (&[b'x'; MAX_HEAD][..], "431 Request Header Fields Too Large"),
        ] {
            let (mut stream, token) = client(&mut http, &epoll, addr, request);
            // The longest head takes several reads.
            while http.find(token).is_some() {
                assert_eq!(http.on_ready(&epoll, token), None);
            }
            let text = read_all(&mut stream);
            assert!(
                text.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{text}"
            );
        }
        assert_eq!(http.clients.len(), 0);
    }

    #[test]
    fn silent_clients_time_out_and_extra_ones_are_turned_away() {
        let epoll = Epoll::new().unwrap();
        let (mut http, addr) = server(&epoll);
        let mut streams: Vec<TcpStream> = (0..MAX_CLIENTS)
            .map(|_| client(&mut http, &epoll, addr, b"").0)
            .collect();
        let mut extra = TcpStream::connect(addr).unwrap();
        http.accept(&epoll, 0);
        assert_eq!(http.clients.len(), MAX_CLIENTS);
        assert!(read_all(&mut extra).starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert_eq!(http.next_deadline(), Some(TIMEOUT_MS));
        http.expire(&epoll, TIMEOUT_MS - 1);
        assert_eq!(http.clients.len(), MAX_CLIENTS);
        http.expire(&epoll, TIMEOUT_MS);
        assert_eq!(http.clients.len(), 0);
        assert_eq!(http.next_deadline(), None);
        assert_eq!(read_all(&mut streams[0]), "");
        streams.clear();
    }

    #[test]
    fn a_slow_reader_gets_the_whole_answer_in_parts() {
        let epoll = Epoll::new().unwrap();
        let (mut http, addr) = server(&epoll);
        let (mut stream, token) = client(&mut http, &epoll, addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(http.on_ready(&epoll, token).is_some());
        let body = "x".repeat(8 << 20);
        http.respond(&epoll, token, "text/plain", &body);
        // More than the socket takes at once: the rest waits, watched for writing.
        assert!(http.clients.first().unwrap().writing);
        stream.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0; 1 << 16];
        for _ in 0..1_000_000 {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert_eq!(http.on_ready(&epoll, token), None);
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(http.clients.len(), 0);
        assert!(got == answer("200 OK", "text/plain", &body, false));
    }

    #[test]
    fn answers_are_whole_and_head_has_no_body() {
        let text = |head| String::from_utf8(answer("200 OK", "text/plain", "hi\n", head)).unwrap();
        assert_eq!(
            text(false),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nhi\n"
        );
        assert_eq!(
            text(true),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            String::from_utf8(refusal(NOT_ALLOWED)).unwrap(),
            "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Type: text/plain\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
}
