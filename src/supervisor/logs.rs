//! An app's captured output: `<log_dir>/<app>.log`, rotated by size.
//!
//! The event loop reads the app's stdout and stderr pipes and hands the bytes to
//! [`AppLog::feed`]. Each stream is split into lines on its own (a partial line waits, per
//! stream, for the rest), and each complete line is written at once as
//!
//! ```text
//! 2025-11-22T04:40:01.123Z stdout listening on :8080
//! ```
//!
//! with the time the line was completed (UTC, milliseconds), the stream (`stdout`,
//! `stderr`, or `berth` for the supervisor's own [`AppLog::event`] lines) and the text.
//! Invalid UTF-8 is replaced lossily and a `\r` before the newline is dropped; every
//! other control character but tab is written as `\xHH` ([`escape`]), so no app can
//! forge a line of berth's or drive the terminal of whoever reads its log. A line
//! longer than [`MAX_LINE`] bytes is cut there and ends with [`CUT_MARK`]; the rest of it,
//! up to its newline, is dropped. So memory stays bounded whatever the app prints: one
//! partial line of at most `MAX_LINE + 1` bytes per stream, and the last [`RING_LINES`]
//! lines (each cut to [`RING_LINE_BYTES`]) kept for `berth logs` and status reports.
//!
//! Lines go straight to the file, one `write` each, with no buffer in between: what the
//! app printed before a power cut is in the page cache, not in berth's memory. When a
//! line would take the file past `max_size`, the file is rotated first: `<app>.log`
//! becomes `<app>.log.NNNNNN`, the next number of a sequence (higher is newer), the
//! oldest numbered file goes when more than `max_files - 1` are kept, and writing goes
//! on in a fresh `<app>.log` ([`rotate`]: one rename, one removal, one open, however
//! many files are kept). A single line longer than `max_size` still goes whole into a
//! file of its own. [`AppLog::set_limits`] applies changed `logs:` settings to an open
//! log.
//!
//! With the global `app_logs_to_console: true`, [`AppLog::echo_to`] also copies each
//! line of the app's (not berth's `berth` lines, which berth logs itself) to the
//! console as `2025-11-22T04:40:01.123Z web stdout listening on :8080`. A console is
//! slow (a serial line at 115200 baud carries about 11 KB/s) and the copy is written
//! as the line comes, so this is for development boards, not for a chatty app in the
//! field.

mod escape;
pub mod history;
mod rotate;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::hostfs::Dir;
pub use crate::timefmt::format_time;
use crate::timefmt::push_time;
use rotate::Numbered;

/// The longest line kept whole, in bytes of the app's output (without the newline).
pub const MAX_LINE: usize = 4096;
/// What ends a line that was cut at [`MAX_LINE`].
pub const CUT_MARK: &str = " [cut]";
/// How many of the last lines are kept in memory.
pub const RING_LINES: usize = 32;
/// The longest line kept in memory, in bytes of the formatted line; longer ones are
/// truncated there (in memory only: the file has them up to [`MAX_LINE`]).
pub const RING_LINE_BYTES: usize = 160;

/// Mode of the log files berth creates (before the umask).
const FILE_MODE: u32 = 0o640;
/// Mode of the log directory when berth creates it (before the umask).
const DIR_MODE: u32 = 0o750;

/// Which pipe of the app the bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// The name written in each line.
    pub fn label(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The name written in the lines of [`AppLog::event`].
const BERTH_LABEL: &str = "berth";

/// The log of one app: its current file, the partial line of each stream, and the
/// last lines in memory.
pub struct AppLog {
    sink: Sink,
    stdout: Partial,
    stderr: Partial,
}

impl fmt::Debug for AppLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppLog")
            .field("path", &self.sink.path)
            .field("size", &self.sink.size)
            .field("max_size", &self.sink.max_size)
            .field("files", &self.sink.files)
            .finish_non_exhaustive()
    }
}

impl AppLog {
    /// Opens `dir/<app>.log` for appending (creating `dir` and the file if missing), and
    /// takes its current size as the start for rotation. `max_files` counts the current
    /// file; 0 is taken as 1. The numbered files of the log found in `dir` go on in
    /// sequence; those of berth's older naming are renamed into it, and the oldest beyond
    /// `max_files` are removed ([`rotate`]).
    pub fn open(dir: &Path, app: &str, max_size: u64, max_files: u32) -> io::Result<AppLog> {
        if app.is_empty() || app.contains('/') || app == "." || app == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid app name {app:?} for a log file"),
            ));
        }
        // Files are reached through the directory's descriptor, never followed as
        // links: an app given a bind of the log directory may plant anything in it.
        crate::hostfs::ensure_dir(dir, DIR_MODE)?;
        let dir = Dir::open(dir)?;
        let name = format!("{app}.log");
        let (file, size) = dir.open_append(&name, FILE_MODE)?;
        let files = Numbered::scan(&dir, &name, max_files)?;
        Ok(AppLog {
            sink: Sink {
                path: dir.join(&name),
                dir,
                name,
                file,
                size,
                max_size,
                files,
                ring: VecDeque::new(),
                line: String::new(),
                echo: None,
                tap: None,
            },
            stdout: Partial::new(),
            stderr: Partial::new(),
        })
    }

    /// Also writes each of the app's lines to `out` (berth's console), as
    /// `TIME APP STREAM TEXT`, one write per line.
    pub fn echo_to(&mut self, app: &str, out: Box<dyn io::Write>) {
        self.sink.echo = Some(Echo {
            app: app.into(),
            out,
            line: String::new(),
        });
    }

    /// Keeps (`on`) or stops keeping the lines written from now on, for
    /// [`AppLog::take_tapped`].
    pub fn tap(&mut self, on: bool) {
        match (on, &self.sink.tap) {
            (true, None) => self.sink.tap = Some(Vec::new()),
            (false, Some(_)) => self.sink.tap = None,
            _ => {}
        }
    }

    /// Whether lines are being kept for a follower.
    pub fn tapped(&self) -> bool {
        self.sink.tap.is_some()
    }

    /// The lines written since the last call (formatted as in the file, without the
    /// newline), while tapped.
    pub fn take_tapped(&mut self) -> Vec<String> {
        self.sink
            .tap
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The current file, `<dir>/<app>.log`.
    pub fn path(&self) -> &Path {
        &self.sink.path
    }

    /// Applies changed `logs:` settings (at a reload): the next line rotates if the
    /// current file is past the new `max_size`, and the oldest numbered files beyond
    /// the new `max_files` are removed at once (a larger `max_files` keeps more from
    /// the next rotation on). `max_files` counts the current file; 0 is taken as 1.
    pub fn set_limits(&mut self, max_size: u64, max_files: u32) -> io::Result<()> {
        self.sink.max_size = max_size;
        self.sink.files.set_max_files(&self.sink.dir, max_files)
    }

    /// The numbered files kept, oldest first (`<app>.log.NNNNNN`).
    pub fn rotated(&self) -> Vec<PathBuf> {
        let sink = &self.sink;
        sink.files.kept().map(|name| sink.dir.join(&name)).collect()
    }

    /// Takes bytes read from one of the app's pipes: writes every line they complete,
    /// stamped with `now`, and keeps the rest for the next call. All the bytes are
    /// taken even when a write fails; the first error is returned.
    pub fn feed(&mut self, stream: Stream, bytes: &[u8], now: SystemTime) -> io::Result<()> {
        let partial = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        let mut result = Ok(());
        let mut rest = bytes;
        while !rest.is_empty() {
            let (segment, newline, after) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (
                    rest.get(..i).unwrap_or_default(),
                    true,
                    rest.get(i + 1..).unwrap_or_default(),
                ),
                None => (rest, false, &[][..]),
            };
            rest = after;
            let written = match partial.push(segment, newline) {
                Ready::Nothing => continue,
                Ready::Line => sink_line(&mut self.sink, stream.label(), &partial.buf, now),
                Ready::Overlong => self.sink.write(stream.label(), &partial.buf, true, now),
            };
            partial.buf.clear();
            keep_first(&mut result, written);
        }
        result
    }

    /// Writes the partial line of each stream, if any, as a line of its own: for when
    /// the app exited or its pipes reached end-of-file.
    pub fn flush_partial(&mut self, now: SystemTime) -> io::Result<()> {
        let mut result = Ok(());
        for (stream, partial) in [
            (Stream::Stdout, &mut self.stdout),
            (Stream::Stderr, &mut self.stderr),
        ] {
            if !partial.buf.is_empty() && !partial.dropping {
                keep_first(
                    &mut result,
                    sink_line(&mut self.sink, stream.label(), &partial.buf, now),
                );
            }
            partial.buf.clear();
            partial.dropping = false;
        }
        result
    }

    /// Writes a line of berth's own about the app (stream `berth`), such as
    /// `restart 3 in 800ms`. Line breaks in `text` become spaces; it is cut at
    /// [`MAX_LINE`] like the app's lines.
    pub fn event(&mut self, text: &str, now: SystemTime) -> io::Result<()> {
        let text = if text.contains(['\n', '\r']) {
            Cow::Owned(text.replace(['\n', '\r'], " "))
        } else {
            Cow::Borrowed(text)
        };
        let bytes = text.as_bytes();
        self.sink
            .write(BERTH_LABEL, bytes, bytes.len() > MAX_LINE, now)
    }

    /// The last `n` lines (at most [`RING_LINES`]), oldest first, formatted as in the
    /// file without the newline; lines longer than [`RING_LINE_BYTES`] are truncated.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let ring = &self.sink.ring;
        ring.iter()
            .skip(ring.len().saturating_sub(n))
            .map(|line| line.as_str().to_owned())
            .collect()
    }
}

/// Writes a complete line: without its `\r`, cut if still longer than [`MAX_LINE`].
fn sink_line(sink: &mut Sink, label: &str, line: &[u8], now: SystemTime) -> io::Result<()> {
    let text = line.strip_suffix(b"\r").unwrap_or(line);
    sink.write(label, text, text.len() > MAX_LINE, now)
}

fn keep_first(result: &mut io::Result<()>, next: io::Result<()>) {
    if result.is_ok() {
        *result = next;
    }
}

/// What [`Partial::push`] completed.
enum Ready {
    Nothing,
    /// `buf` holds a whole line (with its `\r`, if any).
    Line,
    /// `buf` holds the first `MAX_LINE + 1` bytes of a line known to be longer than
    /// [`MAX_LINE`] even without a final `\r`.
    Overlong,
}

/// The unfinished line of one stream.
struct Partial {
    /// At most `MAX_LINE + 1` bytes: one more than a line may have, for a `\r` that a
    /// newline may follow in the next read.
    buf: Vec<u8>,
    /// The rest of a line that was cut is being dropped, up to its newline.
    dropping: bool,
}

impl Partial {
    fn new() -> Partial {
        Partial {
            // Grown as lines arrive (bounded by MAX_LINE + 1): idle apps cost nothing.
            buf: Vec::new(),
            dropping: false,
        }
    }

    /// Adds the bytes of one line up to its newline (`newline`) or up to the end of
    /// the read. `buf` is to be cleared after a line is written.
    fn push(&mut self, segment: &[u8], newline: bool) -> Ready {
        if self.dropping {
            self.dropping = !newline;
            return Ready::Nothing;
        }
        let room = (MAX_LINE + 1).saturating_sub(self.buf.len());
        match segment.get(..room) {
            Some(part) if segment.len() > room => {
                self.buf.extend_from_slice(part);
                self.dropping = !newline;
                Ready::Overlong
            }
            _ => {
                self.buf.extend_from_slice(segment);
                if newline { Ready::Line } else { Ready::Nothing }
            }
        }
    }
}

/// The file being written, its rotation, and the ring of last lines.
struct Sink {
    /// `<dir>/<app>.log`.
    path: PathBuf,
    /// The log directory, open.
    dir: Dir,
    /// `<app>.log`.
    name: String,
    file: File,
    size: u64,
    max_size: u64,
    /// The numbered files, and how many are kept.
    files: Numbered,
    /// At most [`RING_LINES`] entries; it grows with the lines an app prints (most
    /// print a few), so an idle app holds a few hundred bytes, not the whole ring.
    ring: VecDeque<heapless::String<RING_LINE_BYTES>>,
    /// The line being formatted, kept to spare an allocation per line.
    line: String,
    /// Where the app's lines are copied to, if anywhere.
    echo: Option<Echo>,
    /// The lines written since the loop last took them, while someone follows the
    /// log (`berth logs -f`).
    tap: Option<Vec<String>>,
}

/// The console copy of an app's lines.
struct Echo {
    app: Box<str>,
    out: Box<dyn io::Write>,
    /// The line being formatted (as [`Sink::line`]).
    line: String,
}

impl Echo {
    /// Writes `line` (`TIME LABEL TEXT\n`) as `TIME APP LABEL TEXT\n`. A console that
    /// fails is not an error of the app's log: the file has the line.
    fn write(&mut self, line: &str) {
        let (time, rest) = line.split_once(' ').unwrap_or(("", line));
        self.line.clear();
        self.line.push_str(time);
        self.line.push(' ');
        self.line.push_str(&self.app);
        self.line.push(' ');
        self.line.push_str(rest);
        let _ = self.out.write_all(self.line.as_bytes());
    }
}

impl Sink {
    /// Formats one line, keeps it in the ring and appends it to the file, rotating
    /// first if it would not fit. When `cut`, the text is cut to [`MAX_LINE`] bytes
    /// (back to a character boundary) and marked. Its control characters are escaped
    /// here, for the file, the console copy and the ring alike (an escape takes four
    /// bytes, so a formatted line holds at most `4 * MAX_LINE` bytes of text).
    fn write(&mut self, label: &str, text: &[u8], cut: bool, now: SystemTime) -> io::Result<()> {
        let text = if cut {
            utf8_floor(text.get(..MAX_LINE).unwrap_or(text))
        } else {
            text
        };
        self.line.clear();
        push_time(&mut self.line, now);
        self.line.push(' ');
        self.line.push_str(label);
        self.line.push(' ');
        escape::push_escaped(&mut self.line, text);
        if cut {
            self.line.push_str(CUT_MARK);
        }
        self.remember();
        if let Some(tap) = &mut self.tap {
            tap.push(self.line.clone());
        }
        self.line.push('\n');
        if let Some(echo) = self.echo.as_mut().filter(|_| label != BERTH_LABEL) {
            echo.write(&self.line);
        }

        let len = self.line.len() as u64;
        let rotated = if self.size > 0 && self.size.saturating_add(len) > self.max_size {
            self.rotate()
        } else {
            Ok(())
        };
        // Written even when the rotation failed: into the file still open.
        let written = match self.file.write_all(self.line.as_bytes()) {
            Ok(()) => {
                self.size = self.size.saturating_add(len);
                Ok(())
            }
            Err(e) => {
                // Part of the line may have gone in: ask the file.
                if let Ok(meta) = self.file.metadata() {
                    self.size = meta.len();
                }
                Err(with_path(&self.path, e))
            }
        };
        rotated.and(written)
    }

    /// Keeps the formatted line in the ring, truncated to what an entry holds.
    fn remember(&mut self) {
        let mut end = self.line.len().min(RING_LINE_BYTES);
        while !self.line.is_char_boundary(end) {
            end -= 1;
        }
        let mut entry = heapless::String::new();
        // Cannot fail: `end` is at most the capacity.
        let _ = entry.push_str(self.line.get(..end).unwrap_or_default());
        if self.ring.len() >= RING_LINES {
            self.ring.pop_front();
        }
        self.ring.push_back(entry);
    }

    /// Numbers the current file (or, with `max_files: 1`, removes it) and opens a
    /// fresh `<app>.log`. When the rename fails, the file that was open stays open, so
    /// the line being written is not lost, and the next line tries again; a failed
    /// removal of the oldest file is tried again at the next rotation.
    fn rotate(&mut self) -> io::Result<()> {
        let rotated = self.files.rotate(&self.dir);
        if rotated.is_err() && self.dir.exists(&self.name) {
            return rotated; // nothing was renamed
        }
        let (file, size) = self.dir.open_append(&self.name, FILE_MODE)?;
        self.file = file;
        self.size = size;
        rotated
    }
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// `bytes` without a multi-byte UTF-8 sequence cut off at its end, so that cutting a
/// line does not leave a replacement character behind.
fn utf8_floor(bytes: &[u8]) -> &[u8] {
    let len = bytes.len();
    for back in 1..=len.min(3) {
        let at = len - back;
        let Some(&byte) = bytes.get(at) else { break };
        if byte & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back for the lead
        }
        let width = match byte {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if width > back {
            bytes.get(..at).unwrap_or(bytes)
        } else {
            bytes
        };
    }
    bytes
}

#[cfg(test)]
mod tests;
