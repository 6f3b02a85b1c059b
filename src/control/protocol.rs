//! The control protocol's messages (version 1): a request is one line, a JSON array of
//! strings, [`VERSION`] first and then the command line after `berth`; the answer is a
//! sequence of [`Frame`] lines.

use std::fmt;

use super::json;

/// The protocol version, the first string of every request.
pub const VERSION: &str = "berth/1";

/// The longest request line accepted, newline included (an `exec` command line with
/// its arguments fits many times over).
pub const MAX_REQUEST: usize = 16 * 1024;

/// A request line: `args` (the command line after `berth`) with the version first,
/// newline-terminated.
pub fn encode_request<S: AsRef<str>>(args: &[S]) -> String {
    let mut line = json::array(
        std::iter::once(json::string(VERSION)).chain(args.iter().map(|a| json::string(a.as_ref()))),
    );
    line.push('\n');
    line
}

/// Why a request line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    TooLong,
    NotText,
    /// Not a JSON array of strings (the parser's words).
    Syntax(String),
    Empty,
    /// Another version than [`VERSION`]: what it said.
    Version(String),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            RequestError::TooLong => {
                write!(f, "request longer than {MAX_REQUEST} bytes")
            }
            RequestError::NotText => f.write_str("request is not UTF-8 text"),
            RequestError::Syntax(e) => write!(f, "request is not a JSON array of strings: {e}"),
            RequestError::Empty => f.write_str("request names no protocol version"),
            RequestError::Version(v) => write!(
                f,
                "request speaks protocol {v:?}, this berth speaks {VERSION:?} (client and \
                 supervisor are different versions of berth)"
            ),
        }
    }
}

/// The command line of a request line (without its newline): the strings after the
/// version.
pub fn decode_request(line: &[u8]) -> Result<Vec<String>, RequestError> {
    if line.len() >= MAX_REQUEST {
        return Err(RequestError::TooLong);
    }
    let text = std::str::from_utf8(line).map_err(|_| RequestError::NotText)?;
    let trimmed = text.trim();
    // Only an array: a bare YAML scalar or mapping would parse as something else.
    if !(trimmed.starts_with('[') && trimmed.ends_with(']')) {
        return Err(RequestError::Syntax(
            "it does not start with [ and end with ]".into(),
        ));
    }
    let mut args: Vec<String> =
        serde_yaml::from_str(trimmed).map_err(|e| RequestError::Syntax(e.to_string()))?;
    if args.is_empty() {
        return Err(RequestError::Empty);
    }
    let version = args.remove(0);
    if version != VERSION {
        return Err(RequestError::Version(version));
    }
    Ok(args)
}

/// One line of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A line for the client's stdout.
    Out(String),
    /// A line for the client's stderr.
    Err(String),
    /// The client's exit status; the last frame.
    Exit(i32),
}

impl Frame {
    /// The frame as a line, newline included. A text with newlines becomes one frame
    /// per line; control characters other than tab are the sender's to escape.
    pub fn encode(&self) -> String {
        let (tag, text) = match self {
            Frame::Out(t) => ('o', t.as_str()),
            Frame::Err(t) => ('e', t.as_str()),
            Frame::Exit(code) => return format!("x {code}\n"),
        };
        let mut out = String::with_capacity(text.len() + 3);
        for line in text.split('\n') {
            out.push(tag);
            out.push(' ');
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// A frame line (without its newline); `None` when it is none.
    pub fn decode(line: &str) -> Option<Frame> {
        let (tag, text) = line.split_at_checked(2)?;
        match tag {
            "o " => Some(Frame::Out(text.to_owned())),
            "e " => Some(Frame::Err(text.to_owned())),
            "x " => text.parse().ok().map(Frame::Exit),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let args = ["exec", "web", "--", "sh", "-c", "echo \"a\tb\"\n\\ é"];
        let line = encode_request(&args);
        assert!(line.ends_with("]\n"));
        assert_eq!(line.matches('\n').count(), 1);
        assert_eq!(decode_request(line.trim_end().as_bytes()).unwrap(), args);
        assert_eq!(
            decode_request(b"[\"berth/1\"]").unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn bad_requests_say_why() {
        assert_eq!(decode_request(b"[]"), Err(RequestError::Empty));
        assert_eq!(
            decode_request(b"[\"berth/2\", \"status\"]"),
            Err(RequestError::Version("berth/2".into()))
        );
        assert_eq!(
            decode_request(&[b'['; MAX_REQUEST]),
            Err(RequestError::TooLong)
        );
        assert_eq!(decode_request(b"[\"\xff\"]"), Err(RequestError::NotText));
        for bad in [
            &b"status"[..],
            b"{\"a\": 1}",
            b"[\"berth/1\", [1]]",
            b"[\"berth/1\", {a: 1}]",
        ] {
            assert!(
                matches!(decode_request(bad), Err(RequestError::Syntax(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn frames_round_trip_a_line_each() {
        assert_eq!(Frame::Out("a\nb".into()).encode(), "o a\no b\n");
        assert_eq!(Frame::Err(String::new()).encode(), "e \n");
        assert_eq!(Frame::Exit(3).encode(), "x 3\n");
        for f in [
            Frame::Out("x y".into()),
            Frame::Err("".into()),
            Frame::Exit(-1),
        ] {
            let line = f.encode();
            assert_eq!(Frame::decode(line.trim_end_matches('\n')), Some(f));
        }
        assert_eq!(Frame::decode("q hi"), None);
        assert_eq!(Frame::decode("x"), None);
        assert_eq!(Frame::decode("x nan"), None);
    }
}
