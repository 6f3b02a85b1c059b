//! An install off the supervisor's loop: [`InstallJob`] runs berth's own unpack code
//! in a child process, which reports its progress and its result on a pipe the loop
//! watches with epoll.
//!
//! The child is berth's executable started again as [`ARGV0`] (as the exec probe's
//! runner is), not a fork of the supervisor: `posix_spawn` copies neither the
//! supervisor's memory nor its page tables, the child starts single-threaded with
//! nothing of the supervisor's state, and it is the same in tests (whose harness is
//! multi-threaded, where a forked child could only make async-signal-safe calls).
//!
//! - **Descriptors**: the child gets the pipe as its stdout, `/dev/null` as stdin and
//!   the supervisor's stderr (where a panic message goes); it closes every other
//!   descriptor it might have inherited before it does anything (berth opens its
//!   own close-on-exec, but one opened without would reach an image's unpacker).
//! - **Parent death**: the child gets SIGKILL when the thread that spawned it dies
//!   (`PR_SET_PDEATHSIG`, checked against the parent's pid passed in, for a parent
//!   that died before the call). It then leaves only its locked temporary directory,
//!   which the next [`Store::open`] deletes.
//! - **Reports**: frames of a 4-byte little-endian length and a YAML [`Message`]:
//!   progress (bytes read of the image file, and its size) at most once a second and
//!   once at the end, then the result: the [`Unpacked`] report, or the error, whose
//!   text is that of the same error in-process. The exit status is 0 once the result
//!   is written.
//! - **Reaping**: the job never waits; the caller reaps the pid (with its other
//!   children) and hands the wait status to [`InstallJob::finish`].

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use serde::{Deserialize, Serialize};

use super::layout::Platform;
use super::store::{Installed, Store};
use super::{ImageError, Limits, Unpacked};
use crate::manifest::types::Digest;
use crate::manifest::units::Size;

/// `argv[0]` of berth's executable started as an install process.
pub const ARGV0: &str = "berth-install";

/// The executable the supervisor starts: its own (also after the file was replaced
/// on disk by an update: the link names the running program's inode).
pub const SELF_EXE: &str = "/proc/self/exe";

/// Least time between two progress reports.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);

/// The largest frame a job accepts (a result with a long error text is far smaller).
const MAX_FRAME: usize = 1 << 20;

/// Bytes of the image file read so far, of its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub read: u64,
    pub total: u64,
}

impl Progress {
    /// Whole percent read (100 for an empty file).
    pub fn percent(&self) -> u64 {
        match self.total {
            0 => 100,
            total => (u128::from(self.read.min(total)) * 100 / u128::from(total)) as u64,
        }
    }
}

impl fmt::Display for Progress {
    /// `52428800 of 874512384 bytes (5%)`.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{} of {} bytes ({}%)",
            self.read,
            self.total,
            self.percent()
        )
    }
}

/// What [`InstallJob::read_reports`] found on the pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Progress(Progress),
    /// The result arrived; [`InstallJob::finish`] returns it once the pid is reaped.
    Finished,
}

/// One frame on the pipe. (Tagged inside: serde_yaml writes no enum in an enum.)
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "message")]
enum Message {
    Progress(Progress),
    /// Installed by another process meanwhile: nothing was unpacked.
    Already,
    Installed(Box<Unpacked>),
    Failed(WireError),
}

/// An install running in a child process.
#[derive(Debug)]
pub struct InstallJob {
    pid: i32,
    pipe: File,
    /// Bytes of a frame not complete yet.
    partial: Vec<u8>,
    eof: bool,
    result: Option<Result<Installed, ImageError>>,
    rootfs: PathBuf,
}

impl InstallJob {
    /// Starts installing the image `file` (which must hash to `digest`) into `store`,
    /// by the berth executable `exe` ([`SELF_EXE`] in the supervisor). The caller has
    /// checked that the image is not installed yet ([`Store::is_installed`]).
    pub fn spawn(
        exe: &Path,
        store: &Store,
        file: &Path,
        digest: &Digest,
        limits: &Limits,
        platform: &Platform,
    ) -> Result<InstallJob, ImageError> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| ImageError::Io {
            action: "make a pipe for the install of".into(),
            path: file.to_owned(),
            source: e.into(),
        })?;
        set_nonblocking(read.as_fd()).map_err(|source| ImageError::Io {
            action: "make a pipe for the install of".into(),
            path: file.to_owned(),
            source,
        })?;
        let flag = |on: bool| if on { "1" } else { "0" };
        let args: Vec<OsString> = vec![
            std::process::id().to_string().into(),
            store.dir().into(),
            file.into(),
            digest.as_str().into(),
            limits.max_size.bytes().to_string().into(),
            limits.max_entries.to_string().into(),
            flag(limits.allow_devices).into(),
            flag(limits.allow_setuid).into(),
            platform.os.clone().into(),
            platform.architecture.clone().into(),
            platform.variant.clone().unwrap_or_default().into(),
        ];
        let child = Command::new(exe)
            .arg0(ARGV0)
            .args(args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::from(write))
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| ImageError::Io {
                action: format!("start {} to install", exe.display()).into(),
                path: file.to_owned(),
                source,
            })?;
        // The Command (and with it the write end) is gone: end of file on the pipe
        // means the child and only it has closed it. The child is not waited for here.
        let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        Ok(InstallJob {
            pid,
            pipe: File::from(read),
            partial: Vec::new(),
            eof: false,
            result: None,
            rootfs: store.rootfs(digest),
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The pipe's read end (non-blocking, close-on-exec), to watch for input.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.pipe.as_fd()
    }

    /// Whether the child has closed its end (it has exited, or is about to).
    pub fn at_eof(&self) -> bool {
        self.eof
    }

    /// Reads what the pipe holds now, without blocking: the whole reports in it, in
    /// order. A report cut short stays buffered for the next call.
    pub fn read_reports(&mut self) -> Vec<Report> {
        let mut buf = [0u8; 4096];
        while !self.eof {
            match self.pipe.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self
                    .partial
                    .extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.fail(format!("cannot read its reports: {e}"));
                    self.eof = true;
                }
            }
        }
        let mut reports = Vec::new();
        loop {
            match take_frame(&mut self.partial) {
                Ok(None) => break,
                Ok(Some(Message::Progress(p))) => reports.push(Report::Progress(p)),
                Ok(Some(message)) => {
                    let result = match message {
                        Message::Already => Ok(Installed::Already(self.rootfs.clone())),
                        Message::Installed(unpacked) => {
                            Ok(Installed::Fresh(self.rootfs.clone(), unpacked))
                        }
                        Message::Failed(e) => Err(e.into()),
                        Message::Progress(_) => continue,
                    };
                    if self.result.is_none() {
                        self.result = Some(result);
                        reports.push(Report::Finished);
                    }
                }
                Err(why) => {
                    if self.result.is_none() {
                        reports.push(Report::Finished);
                    }
                    self.fail(why);
                    self.partial.clear();
                    break;
                }
            }
        }
        reports
    }

    fn fail(&mut self, why: String) {
        if self.result.is_none() {
            self.result = Some(Err(ImageError::InstallFailed { why }));
        }
    }

    /// The install's result, once the caller has reaped [`pid`](Self::pid) with
    /// `wait_status` (as `waitpid` gives it). Reads what is left on the pipe first.
    pub fn finish(mut self, wait_status: i32) -> Result<Installed, ImageError> {
        self.read_reports();
        if let Some(result) = self.result.take() {
            return result;
        }
        if libc::WIFSIGNALED(wait_status) {
            return Err(ImageError::InstallKilled {
                signal: libc::WTERMSIG(wait_status),
            });
        }
        let why = match libc::WIFEXITED(wait_status) {
            true => format!(
                "it exited with status {} and no result",
                libc::WEXITSTATUS(wait_status)
            ),
            false => format!("it ended (wait status {wait_status:#x}) with no result"),
        };
        Err(ImageError::InstallFailed { why })
    }
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// The first whole frame of `buf`, removed from it.
fn take_frame(buf: &mut Vec<u8>) -> Result<Option<Message>, String> {
    let Some(head) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = u32::from_le_bytes(*head) as usize;
    if len > MAX_FRAME {
        return Err(format!("a report of {len} bytes, more than {MAX_FRAME}"));
    }
    let Some(body) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    let message = std::str::from_utf8(body)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_yaml::from_str(text).map_err(|e| e.to_string()))
        .map_err(|e| format!("an unreadable report: {e}"));
    buf.drain(..4 + len);
    message.map(Some)
}

fn frame(message: &Message) -> Vec<u8> {
    // Serialising these plain types cannot fail; an empty frame would be refused by
    // the reader as unreadable, and the job reports that.
    let text = serde_yaml::to_string(message).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + text.len());
    out.extend_from_slice(&u32::try_from(text.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

/// Whether a progress report is due at `now`: at most one per [`REPORT_EVERY`].
#[derive(Debug)]
struct Throttle {
    last: Instant,
}

impl Throttle {
    fn due(&mut self, now: Instant) -> bool {
        if now.duration_since(self.last) < REPORT_EVERY {
            return false;
        }
        self.last = now;
        true
    }
}

/// Exit status of an install process that could not start its work (bad arguments,
/// its parent gone) or write its result.
pub const EXIT_SETUP: i32 = 125;

/// The install process's whole life, from `main` when started as [`ARGV0`] with
/// `args` (those after `argv[0]`): `PARENT STORE_DIR FILE DIGEST MAX_SIZE MAX_ENTRIES
/// DEVICES SETUID OS ARCH VARIANT`.
pub fn install_main(args: Vec<OsString>) -> ! {
    let Some(job) = ChildArgs::parse(&args) else {
        std::process::exit(EXIT_SETUP);
    };
    // Dies with the supervisor; if it died already, this process is an orphan.
    if nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).is_err()
        || nix::unistd::getppid().as_raw() != job.parent
    {
        std::process::exit(EXIT_SETUP);
    }
    close_inherited();
    let store = Store::at(job.store);
    let mut out = io::stdout().lock();
    let mut throttle = Throttle {
        last: Instant::now(),
    };
    let mut last = Progress { read: 0, total: 0 };
    let mut report = |read, total| {
        last = Progress { read, total };
        if throttle.due(Instant::now()) {
            // A report that cannot be written (the parent gone) ends this process
            // with the pipe's SIGPIPE; an error here changes nothing.
            let _ = out.write_all(&frame(&Message::Progress(last)));
            let _ = out.flush();
        }
    };
    let result = store.install_with(
        &job.file,
        &job.digest,
        &job.limits,
        &job.platform,
        &mut report,
    );
    let message = match result {
        Ok(Installed::Already(_)) => Message::Already,
        Ok(Installed::Fresh(_, unpacked)) => Message::Installed(unpacked),
        Err(e) => Message::Failed(WireError::from(&e)),
    };
    let mut bytes = Vec::new();
    if last.total > 0 || last.read > 0 {
        bytes = frame(&Message::Progress(last));
    }
    bytes.extend(frame(&message));
    let mut out = io::stdout().lock();
    match out.write_all(&bytes).and_then(|()| out.flush()) {
        Ok(()) => std::process::exit(0),
        Err(_) => std::process::exit(EXIT_SETUP),
    }
}

/// Closes every descriptor above stderr.
fn close_inherited() {
    // Nothing in this process uses a descriptor above 2 yet (Rust's std opens none of
    // its own before main).
    crate::sys::fd::close_except(&mut [0, 1, 2]);
}

/// The install process's arguments.
struct ChildArgs {
    parent: i32,
    store: PathBuf,
    file: PathBuf,
    digest: Digest,
    limits: Limits,
    platform: Platform,
}

impl ChildArgs {
    fn parse(args: &[OsString]) -> Option<ChildArgs> {
        let [
            parent,
            store,
            file,
            digest,
            size,
            entries,
            devices,
            setuid,
            os,
            arch,
            variant,
        ] = args
        else {
            return None;
        };
        let text = |a: &OsString| a.to_str().map(str::to_owned);
        let flag = |a: &OsString| match a.to_str() {
            Some("1") => Some(true),
            Some("0") => Some(false),
            _ => None,
        };
        let variant = text(variant)?;
        Some(ChildArgs {
            parent: text(parent)?.parse().ok()?,
            store: store.into(),
            file: file.into(),
            digest: text(digest)?.parse().ok()?,
            limits: Limits {
                max_size: Size::from_bytes(text(size)?.parse().ok()?),
                max_entries: text(entries)?.parse().ok()?,
                allow_devices: flag(devices)?,
                allow_setuid: flag(setuid)?,
            },
            platform: Platform {
                os: text(os)?,
                architecture: text(arch)?,
                variant: (!variant.is_empty()).then_some(variant),
            },
        })
    }
}

/// An [`ImageError`] on the pipe: every field that its message shows, so the error
/// made again in the parent reads exactly as in the child.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "error")]
enum WireError {
    Io {
        action: String,
        path: PathBuf,
        source: WireIo,
    },
    Entry {
        path: String,
        offset: u64,
        why: String,
    },
    Corrupt {
        last: Option<String>,
        offset: u64,
        source: WireIo,
    },
    TooLarge {
        limit: u64,
    },
    TooManyEntries {
        limit: u64,
    },
    DigestMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    BlobMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    Format {
        why: String,
    },
    NoPlatform {
        wanted: String,
        available: Vec<String>,
    },
    NotRegular {
        path: PathBuf,
        kind: String,
    },
    Held {
        digest: String,
    },
    InstallKilled {
        signal: i32,
    },
    InstallFailed {
        why: String,
    },
}

/// An `io::Error`: its errno if it has one (made again, it reads the same), else its
/// message.
#[derive(Debug, Serialize, Deserialize)]
struct WireIo {
    errno: Option<i32>,
    message: String,
}

impl From<&io::Error> for WireIo {
    fn from(e: &io::Error) -> Self {
        WireIo {
            errno: e.raw_os_error(),
            message: e.to_string(),
        }
    }
}

impl From<WireIo> for io::Error {
    fn from(e: WireIo) -> Self {
        match e.errno {
            Some(errno) => io::Error::from_raw_os_error(errno),
            None => io::Error::other(e.message),
        }
    }
}

impl From<&ImageError> for WireError {
    fn from(e: &ImageError) -> Self {
        match e {
            ImageError::Io {
                action,
                path,
                source,
            } => WireError::Io {
                action: action.to_string(),
                path: path.clone(),
                source: source.into(),
            },
            ImageError::Entry { path, offset, why } => WireError::Entry {
                path: path.clone(),
                offset: *offset,
                why: why.clone(),
            },
            ImageError::Corrupt {
                last,
                offset,
                source,
            } => WireError::Corrupt {
                last: last.clone(),
                offset: *offset,
                source: source.into(),
            },
            ImageError::TooLarge { limit } => WireError::TooLarge {
                limit: limit.bytes(),
            },
            ImageError::TooManyEntries { limit } => WireError::TooManyEntries { limit: *limit },
            ImageError::DigestMismatch {
                path,
                expected,
                actual,
            } => WireError::DigestMismatch {
                path: path.clone(),
                expected: expected.clone(),
                actual: actual.clone(),
            },
            ImageError::BlobMismatch {
                what,
                expected,
                actual,
            } => WireError::BlobMismatch {
                what: what.clone(),
                expected: expected.clone(),
                actual: actual.clone(),
            },
            ImageError::Format(why) => WireError::Format { why: why.clone() },
            ImageError::NoPlatform { wanted, available } => WireError::NoPlatform {
                wanted: wanted.clone(),
                available: available.clone(),
            },
            ImageError::NotRegular { path, kind } => WireError::NotRegular {
                path: path.clone(),
                kind: (*kind).to_owned(),
            },
            ImageError::Held { digest } => WireError::Held {
                digest: digest.clone(),
            },
            ImageError::InstallKilled { signal } => WireError::InstallKilled { signal: *signal },
            ImageError::InstallFailed { why } => WireError::InstallFailed { why: why.clone() },
        }
    }
}

impl From<WireError> for ImageError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Io {
                action,
                path,
                source,
            } => ImageError::Io {
                action: action.into(),
                path,
                source: source.into(),
            },
            WireError::Entry { path, offset, why } => ImageError::Entry { path, offset, why },
            WireError::Corrupt {
                last,
                offset,
                source,
            } => ImageError::Corrupt {
                last,
                offset,
                source: source.into(),
            },
            WireError::TooLarge { limit } => ImageError::TooLarge {
                limit: Size::from_bytes(limit),
            },
            WireError::TooManyEntries { limit } => ImageError::TooManyEntries { limit },
            WireError::DigestMismatch {
                path,
                expected,
                actual,
            } => ImageError::DigestMismatch {
                path,
                expected,
                actual,
            },
            WireError::BlobMismatch {
                what,
                expected,
                actual,
            } => ImageError::BlobMismatch {
                what,
                expected,
                actual,
            },
            WireError::Format { why } => ImageError::Format(why),
            WireError::NoPlatform { wanted, available } => {
                ImageError::NoPlatform { wanted, available }
            }
            WireError::NotRegular { path, kind } => ImageError::NotRegular {
                path,
                kind: crate::input::KINDS
                    .into_iter()
                    .find(|k| *k == kind)
                    .unwrap_or("of an unknown type"),
            },
            WireError::Held { digest } => ImageError::Held { digest },
            WireError::InstallKilled { signal } => ImageError::InstallKilled { signal },
            WireError::InstallFailed { why } => ImageError::InstallFailed { why },
        }
    }
}

#[cfg(test)]
mod tests;
