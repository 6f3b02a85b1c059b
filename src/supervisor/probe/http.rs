//! The HTTP probe's request and its incremental reading of the answer: only the status
//! line matters, so the probe is done as soon as it is complete.

use std::fmt;
use std::net::SocketAddrV4;

use crate::manifest::types::HttpUrl;

/// The longest status line accepted, line end included.
pub const MAX_STATUS_LINE: usize = 1024;

/// Where an HTTP probe connects and what it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// The address to connect to (inside the app's network namespace).
    pub addr: SocketAddrV4,
    /// The `Host` header: the URL's authority as written (`localhost:8080`).
    pub host: String,
    /// The request target: the URL's path and query, without a `#fragment`.
    pub path: String,
}

impl HttpTarget {
    /// The request to send once connected.
    pub fn request(&self) -> Vec<u8> {
        http_request(&self.host, &self.path)
    }
}

/// The target of a manifest's `healthcheck.http` URL.
pub fn http_target(url: &HttpUrl) -> HttpTarget {
    let authority = url
        .as_str()
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .filter(|a| !a.is_empty())
        .map_or_else(|| format!("{}:{}", url.host, url.port), str::to_owned);
    let path = url.path.split('#').next().unwrap_or_default();
    HttpTarget {
        addr: SocketAddrV4::new(url.host, url.port),
        host: authority,
        path: if path.is_empty() {
            "/".to_owned()
        } else {
            path.to_owned()
        },
    }
}

/// `GET path HTTP/1.0` with `Host`, `Connection: close` and `User-Agent: berth`.
///
/// HTTP/1.0 and `Connection: close`, so the server neither chunks nor keeps the
/// connection open. `host` and `path` are sent as given: they come from a validated
/// [`HttpUrl`], which holds no spaces or control characters. A `path` without its
/// leading `/` gets one.
pub fn http_request(host: &str, path: &str) -> Vec<u8> {
    let slash = if path.starts_with('/') { "" } else { "/" };
    format!(
        "GET {slash}{path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: berth\r\n\r\n"
    )
    .into_bytes()
}

/// Whether a status is healthy: 2xx and 3xx (a redirect is not followed, and it
/// proves the server answers).
pub fn verdict(status: u16) -> bool {
    (200..400).contains(&status)
}

/// Why an answer has no usable status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// No line end within [`MAX_STATUS_LINE`] bytes.
    TooLong,
    /// Not `HTTP/1.x NNN ...` (shown escaped, at most 64 bytes).
    Malformed(String),
    /// The connection ended before the status line did.
    Closed,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            HttpError::TooLong => write!(
                f,
                "the http status line is longer than {MAX_STATUS_LINE} bytes"
            ),
            HttpError::Malformed(line) => {
                write!(f, "the answer is not http: status line \"{line}\"")
            }
            HttpError::Closed => f.write_str("the connection closed before the http status line"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Reads an HTTP answer as it arrives, up to its status line.
///
/// Feed it every chunk read from the socket; it keeps at most [`MAX_STATUS_LINE`] bytes.
/// Garbage is refused as soon as it cannot be the start of `HTTP/1.x`, so a server that
/// speaks another protocol fails the probe without waiting for a line end.
#[derive(Debug, Default)]
pub struct HttpResponse {
    line: Vec<u8>,
    state: State,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Reading,
    Done(u16),
    Failed(HttpError),
}

impl HttpResponse {
    pub fn new() -> HttpResponse {
        HttpResponse::default()
    }

    /// Takes the next bytes of the answer: `Ok(Some(status))` once the status line is
    /// complete (and for every call after), `Ok(None)` while more is needed, the error
    /// when the answer cannot be HTTP (and for every call after). The bytes after the
    /// status line are ignored: close the connection.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<u16>, HttpError> {
        if let State::Reading = self.state {
            self.state = self.read(bytes);
        }
        self.outcome()
    }

    /// The outcome when the connection has ended: the status, or why there is none.
    pub fn finish(&self) -> Result<u16, HttpError> {
        match self.outcome()? {
            Some(status) => Ok(status),
            None => Err(HttpError::Closed),
        }
    }

    fn outcome(&self) -> Result<Option<u16>, HttpError> {
        match &self.state {
            State::Reading => Ok(None),
            State::Done(status) => Ok(Some(*status)),
            State::Failed(e) => Err(e.clone()),
        }
    }

    fn read(&mut self, bytes: &[u8]) -> State {
        let end = bytes.iter().position(|&b| b == b'\n');
        let take = end.map_or(bytes.len(), |i| i + 1);
        // Without its line end, a line of MAX_STATUS_LINE bytes can only grow past it.
        let too_long = match end {
            Some(_) => self.line.len() + take > MAX_STATUS_LINE,
            None => self.line.len() + take >= MAX_STATUS_LINE,
        };
        if too_long {
            return State::Failed(HttpError::TooLong);
        }
        self.line
            .extend_from_slice(bytes.get(..take).unwrap_or(bytes));
        let result = match end {
            Some(_) => status(&self.line).map(State::Done),
            None if plausible_start(&self.line) => Some(State::Reading),
            None => None,
        };
        result.unwrap_or_else(|| State::Failed(HttpError::Malformed(shown(&self.line))))
    }
}

/// Whether `line` can still become `HTTP/1.x `.
fn plausible_start(line: &[u8]) -> bool {
    line.iter().zip(b"HTTP/1.").all(|(a, b)| a == b)
        && line.get(7).is_none_or(u8::is_ascii_digit)
        && line.get(8).is_none_or(|&b| b == b' ')
}

/// The status of a complete status line `HTTP/1.x NNN[ reason]`, line end included.
fn status(line: &[u8]) -> Option<u16> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let (minor, rest) = rest.split_first()?;
    let rest = rest.strip_prefix(b" ").filter(|_| minor.is_ascii_digit())?;
    let (code, reason) = rest.split_at_checked(3)?;
    if !(reason.is_empty() || reason.starts_with(b" ")) {
        return None;
    }
    let status = std::str::from_utf8(code)
        .ok()
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()?;
    (100..=599).contains(&status).then_some(status)
}

/// `line` for an error message: escaped, without its line end, at most 64 bytes.
fn shown(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let cut = line.get(..64).unwrap_or(line);
    let mut text = cut.escape_ascii().to_string();
    if cut.len() < line.len() {
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(chunks: &[&[u8]]) -> Result<Option<u16>, HttpError> {
        let mut r = HttpResponse::new();
        let mut last = Ok(None);
        for chunk in chunks {
            last = r.feed(chunk);
        }
        last
    }

    #[test]
    fn a_whole_answer_gives_its_status() {
        let answer = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(fed(&[answer]), Ok(Some(200)));
        assert_eq!(
            fed(&[b"HTTP/1.1 503 Service Unavailable\r\n"]),
            Ok(Some(503))
        );
        assert_eq!(fed(&[b"HTTP/1.1 204\r\n"]), Ok(Some(204)), "no reason");
        assert_eq!(fed(&[b"HTTP/1.1 301 Moved\n"]), Ok(Some(301)), "bare LF");
    }

    #[test]
    fn byte_by_byte_the_status_comes_with_the_line_end_and_stays() {
        let mut r = HttpResponse::new();
        let line = b"HTTP/1.1 302 Found\r\n";
        for (i, b) in line.iter().enumerate() {
            let got = r.feed(std::slice::from_ref(b));
            if i + 1 < line.len() {
                assert_eq!(got, Ok(None), "after {i} bytes");
            } else {
                assert_eq!(got, Ok(Some(302)));
            }
        }
        assert_eq!(r.feed(b"Location: /x\r\n\r\n garbage \0"), Ok(Some(302)));
        assert_eq!(r.finish(), Ok(302));
    }

    #[test]
    fn a_line_split_anywhere_parses_the_same() {
        let answer = b"HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\n";
        for cut in 0..=answer.len() {
            let (a, b) = answer.split_at(cut);
            assert_eq!(fed(&[a, b]), Ok(Some(404)), "cut at {cut}");
        }
    }

    #[test]
    fn garbage_is_refused_before_any_line_end() {
        assert_eq!(
            fed(&[b"SSH-2.0-OpenSSH_9.2"]),
            Err(HttpError::Malformed("SSH-2.0-OpenSSH_9.2".into()))
        );
        assert_eq!(
            fed(&[b"HTTP/2 200\r\n"]),
            Err(HttpError::Malformed("HTTP/2 200".into()))
        );
        assert_eq!(
            fed(&[b"HTTP/1.x"]),
            Err(HttpError::Malformed("HTTP/1.x".into()))
        );
        assert_eq!(
            fed(&[b"HTTP/1.10"]),
            Err(HttpError::Malformed("HTTP/1.10".into()))
        );
        assert_eq!(
            fed(&[b"\x16\x03\x01"]),
            Err(HttpError::Malformed("\\x16\\x03\\x01".into()))
        );
        // An error sticks.
        let mut r = HttpResponse::new();
        assert!(r.feed(b"hello").is_err());
        assert_eq!(
            r.feed(b"HTTP/1.0 200 OK\r\n"),
            Err(HttpError::Malformed("hello".into()))
        );
        assert_eq!(r.finish(), Err(HttpError::Malformed("hello".into())));
    }

    #[test]
    fn bad_status_codes_are_malformed() {
        for line in [
            &b"HTTP/1.1 20 OK\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n",
            b"HTTP/1.1 2x0 OK\r\n",
            b"HTTP/1.1 +20 OK\r\n",
            b"HTTP/1.1 099 Low\r\n",
            b"HTTP/1.1 600 High\r\n",
            b"HTTP/1.1\r\n",
            b"HTTP/1.1  200 OK\r\n",
            b"\r\n",
        ] {
            assert!(
                matches!(fed(&[line]), Err(HttpError::Malformed(_))),
                "{}",
                line.escape_ascii()
            );
        }
    }

    #[test]
    fn the_status_line_is_bounded() {
        let line = |len: usize| {
            let mut l = b"HTTP/1.1 200 ".to_vec();
            l.resize(len - 2, b'x');
            l.extend_from_slice(b"\r\n");
            l
        };
        assert_eq!(fed(&[&line(MAX_STATUS_LINE)]), Ok(Some(200)));
        assert_eq!(fed(&[&line(MAX_STATUS_LINE + 1)]), Err(HttpError::TooLong));
        // Without a line end, the limit is known to be passed as soon as it is reached,
        // whether the bytes come at once or one at a time.
        let long = line(MAX_STATUS_LINE + 1);
        let (head, _) = long.split_at(MAX_STATUS_LINE);
        assert_eq!(fed(&[head]), Err(HttpError::TooLong));
        let mut r = HttpResponse::new();
        for (i, b) in head.iter().enumerate() {
            let got = r.feed(std::slice::from_ref(b));
            assert_eq!(
                got.is_err(),
                i + 1 == MAX_STATUS_LINE,
                "after {} bytes",
                i + 1
            );
        }
        assert_eq!(r.finish(), Err(HttpError::TooLong));
    }

    #[test]
    fn an_answer_cut_short_is_closed() {
        let mut r = HttpResponse::new();
        assert_eq!(r.finish(), Err(HttpError::Closed));
        assert_eq!(r.feed(b"HTTP/1.0 200"), Ok(None));
        assert_eq!(r.finish(), Err(HttpError::Closed));
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            HttpError::Malformed("SSH-2.0".into()).to_string(),
            "the answer is not http: status line \"SSH-2.0\""
        );
        assert_eq!(
            HttpError::TooLong.to_string(),
            "the http status line is longer than 1024 bytes"
        );
        let long = [b'x'; 100];
        assert_eq!(shown(&long), format!("{}...", "x".repeat(64)));
    }

    #[test]
    fn healthy_is_2xx_and_3xx() {
        let healthy: Vec<u16> = [100, 199, 200, 204, 299, 301, 399, 400, 404, 500, 503]
            .into_iter()
            .filter(|&s| verdict(s))
            .collect();
        assert_eq!(healthy, [200, 204, 299, 301, 399]);
    }

    #[test]
    fn the_request_is_http_1_0_and_closes() {
        assert_eq!(
            http_request("127.0.0.1:8080", "/healthz"),
            b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\nUser-Agent: berth\r\n\r\n"
        );
        assert!(http_request("localhost", "status").starts_with(b"GET /status HTTP/1.0\r\n"));
    }

    #[test]
    fn targets_come_from_the_manifest_url() {
        let t = |u: &str| http_target(&u.parse().unwrap());
        assert_eq!(
            t("http://127.0.0.1:8080/healthz?full=1"),
            HttpTarget {
                addr: "127.0.0.1:8080".parse().unwrap(),
                host: "127.0.0.1:8080".into(),
                path: "/healthz?full=1".into(),
            }
        );
        let local = t("http://localhost");
        assert_eq!(
            (
                local.addr.to_string().as_str(),
                local.host.as_str(),
                local.path.as_str()
            ),
            ("127.0.0.1:80", "localhost", "/")
        );
        assert_eq!(t("http://10.0.0.2:81/a#frag").path, "/a");
        assert_eq!(
            t("http://localhost:9/x").request(),
            http_request("localhost:9", "/x")
        );
    }
}
