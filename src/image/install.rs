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
//! - **Descriptors**: the child gets the pipe as descriptor 3, an empty environment
//!   and berth's stdin, stdout and stderr (where a panic message goes); it closes every
//!   other descriptor it might have inherited before it does anything (berth opens its
//!   own close-on-exec, but one opened without would reach an image's unpacker).
//! - **Parent death**: the child gets SIGKILL when the thread that spawned it dies
//!   (`PR_SET_PDEATHSIG`, checked against the parent's pid passed in, for a parent
//!   that died before the call). It then leaves only its locked temporary directory,
//!   which the next [`Store::open`] deletes.
//! - **Reports**: lines of text. `progress READ TOTAL` (bytes read of the image file,
//!   and its size) at most once a second and once at the end, then the result:
//!   `already`, `installed FORMAT`, or `failed MESSAGE` with the text of the error
//!   (which reads as the same error met in-process). The exit status is 0 once the
//!   result is written. Lines, not a serialised structure: the parent needs no more
//!   than this (the image's defaults are in the store's record), and a format for
//!   structures would cost the board's binary tens of kilobytes.
//! - **Reaping**: the job never waits; the caller reaps the pid (with its other
//!   children) and hands the wait status to [`InstallJob::finish`].

use std::ffi::{CString, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::layout::Platform;
use super::store::{Installed, Store};
use super::{ImageError, Limits};
use crate::manifest::types::Digest;
use crate::manifest::units::Size;
use crate::sys;

/// `argv[0]` of berth's executable started as an install process.
pub const ARGV0: &str = "berth-install";

/// The executable the supervisor starts: its own (also after the file was replaced
/// on disk by an update: the link names the running program's inode).
pub const SELF_EXE: &str = "/proc/self/exe";

/// Least time between two progress reports.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);

/// The longest report line a job accepts (an error's text is far shorter).
const MAX_LINE: usize = 64 * 1024;

/// The descriptor the child writes its reports to.
const REPORT_FD: i32 = 3;

/// Bytes of the image file read so far, of its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// What an install did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// Installed by another process meanwhile: nothing was unpacked.
    Already,
    /// Unpacked now; the image's format as `berth unpack` names it.
    Installed { format: String },
}

/// An install running in a child process.
#[derive(Debug)]
pub struct InstallJob {
    pid: i32,
    pipe: File,
    /// Bytes of a line not complete yet.
    partial: Vec<u8>,
    eof: bool,
    result: Option<Result<Done, ImageError>>,
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
        let io = |action: &'static str| {
            move |e: sys::Error| ImageError::Io {
                action: action.into(),
                path: file.to_owned(),
                source: e.into(),
            }
        };
        let (read, write) = sys::fd::pipe().map_err(io("make a pipe for the install of"))?;
        sys::fd::nonblocking(read.as_fd()).map_err(io("make a pipe for the install of"))?;
        let flag = |on: bool| if on { "1" } else { "0" };
        let text = |s: &str| CString::new(s).unwrap_or_default();
        let path = |p: &Path| CString::new(p.as_os_str().as_bytes()).unwrap_or_default();
        let args: Vec<CString> = vec![
            text(ARGV0),
            text(&std::process::id().to_string()),
            path(store.dir()),
            path(file),
            text(digest.as_str()),
            text(&limits.max_size.bytes().to_string()),
            text(&limits.max_entries.to_string()),
            text(flag(limits.allow_devices)),
            text(flag(limits.allow_setuid)),
            text(&platform.os),
            text(&platform.architecture),
            text(platform.variant.as_deref().unwrap_or_default()),
        ];
        let argv: Vec<*const libc::c_char> = args
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        let pid = sys::process::spawn(
            &path(exe),
            &argv,
            &envp,
            Some(write.as_fd()),
            &sys::signal::SigSet::of(&[]),
        )
        .map_err(|e| ImageError::Io {
            action: format!("start {} to install", exe.display()).into(),
            path: file.to_owned(),
            source: e.into(),
        })?;
        // The write end is closed here: end of file on the pipe means the child and
        // only it has closed it. The child is not waited for here.
        drop(write);
        Ok(InstallJob {
            pid,
            pipe: File::from(read),
            partial: Vec::new(),
            eof: false,
            result: None,
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
    /// order. A line cut short stays buffered for the next call.
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
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let line = String::from_utf8_lossy(line.get(..end).unwrap_or_default());
            match parse(&line) {
                Some(Line::Progress(p)) => reports.push(Report::Progress(p)),
                Some(Line::Result(result)) => {
                    if self.result.is_none() {
                        self.result = Some(result);
                        reports.push(Report::Finished);
                    }
                }
                None => {
                    if self.result.is_none() {
                        reports.push(Report::Finished);
                    }
                    self.fail(format!("an unreadable report: {line:?}"));
                }
            }
        }
        if self.partial.len() > MAX_LINE {
            if self.result.is_none() {
                reports.push(Report::Finished);
            }
            self.fail(format!("a report longer than {MAX_LINE} bytes"));
            self.partial.clear();
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
    pub fn finish(mut self, wait_status: i32) -> Result<Done, ImageError> {
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

/// One report line, read.
enum Line {
    Progress(Progress),
    Result(Result<Done, ImageError>),
}

fn parse(line: &str) -> Option<Line> {
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    Some(match word {
        "progress" => {
            let (read, total) = rest.split_once(' ')?;
            Line::Progress(Progress {
                read: read.parse().ok()?,
                total: total.parse().ok()?,
            })
        }
        "already" if rest.is_empty() => Line::Result(Ok(Done::Already)),
        "installed" if !rest.is_empty() => Line::Result(Ok(Done::Installed {
            format: rest.to_owned(),
        })),
        "failed" => Line::Result(Err(ImageError::Reported {
            message: rest.to_owned(),
        })),
        _ => return None,
    })
}

/// The report line of `progress`.
fn progress_line(p: Progress) -> String {
    format!("progress {} {}\n", p.read, p.total)
}

/// The report line of a result (an error's text on one line).
fn result_line(result: &Result<Installed, ImageError>) -> String {
    match result {
        Ok(Installed::Already(_)) => "already\n".to_owned(),
        Ok(Installed::Fresh(_, unpacked)) => format!("installed {}\n", unpacked.format),
        Err(e) => format!("failed {}\n", e.to_string().replace('\n', " ")),
    }
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
/// DEVICES SETUID OS ARCH VARIANT`, and its report pipe as descriptor 3.
pub fn install_main(args: Vec<OsString>) -> ! {
    let Some(job) = ChildArgs::parse(&args) else {
        std::process::exit(EXIT_SETUP);
    };
    // Dies with the supervisor; if it died already, this process is an orphan.
    if sys::caps::set_parent_death_signal(libc::SIGKILL).is_err()
        || sys::process::getppid() != job.parent
    {
        std::process::exit(EXIT_SETUP);
    }
    // Nothing in this process uses a descriptor above 3 yet (Rust's std opens none of
    // its own before main).
    sys::fd::close_except(&mut [0, 1, 2, REPORT_FD]);
    let store = Store::at(job.store);
    let mut throttle = Throttle {
        last: Instant::now(),
    };
    let mut last = Progress { read: 0, total: 0 };
    let mut report = |read, total| {
        last = Progress { read, total };
        if throttle.due(Instant::now()) {
            // A report that cannot be written (the parent gone) ends this process
            // with the pipe's SIGPIPE; an error here changes nothing.
            let _ = sys::fd::write_all(REPORT_FD, progress_line(last).as_bytes());
        }
    };
    let result = store.install_with(
        &job.file,
        &job.digest,
        &job.limits,
        &job.platform,
        &mut report,
    );
    let mut text = String::new();
    if last.total > 0 || last.read > 0 {
        text = progress_line(last);
    }
    text.push_str(&result_line(&result));
    match sys::fd::write_all(REPORT_FD, text.as_bytes()) {
        Ok(()) => std::process::exit(0),
        Err(_) => std::process::exit(EXIT_SETUP),
    }
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

#[cfg(test)]
mod tests;
