//! What `/proc/PID/status` says about a process's signals: which it blocks, ignores
//! and catches.
//!
//! The supervisor needs it to stop an app. Its process is the init of its own pid
//! namespace, and the kernel drops a signal sent to such an init from outside (as
//! berth sends it) unless the init has a handler for it, or blocks it (a blocked
//! signal is queued, and an init such as tini, or berth's own `init: true` reaper,
//! takes it with `sigwaitinfo`). SIGKILL is the exception: it always arrives. So an
//! app whose init is `sh -c ...` or `sleep` cannot be stopped with SIGTERM at all,
//! and waiting out the stop timeout for it is waiting for nothing.
//!
//! The proc root is a parameter (`/proc` in [`PROC`]), so tests read fixture files.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The real proc root.
pub const PROC: &str = "/proc";

/// The signal masks of a process (of its main thread, for the blocked ones: the
/// thread a signal sent to the process is checked against), and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signals {
    /// `Name:`, the command name (at most 15 bytes, as the kernel keeps it).
    pub name: String,
    /// `SigBlk:`, bit `n - 1` for signal `n`.
    pub blocked: u64,
    /// `SigIgn:`.
    pub ignored: u64,
    /// `SigCgt:`: signals with a handler.
    pub caught: u64,
}

/// What a process does with a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Blocked: it waits, queued, until the process takes it or unblocks it.
    Blocked,
    /// A handler runs.
    Caught,
    /// `SIG_IGN`: dropped.
    Ignored,
    /// `SIG_DFL`: the kernel's default action, which a pid-namespace init does not
    /// get for a signal sent from outside its namespace (it is dropped).
    Default,
}

impl Signals {
    /// What the process does with signal `sig` (1 to 64); a number out of that range
    /// is no signal the process can have, and reads as [`Disposition::Default`].
    pub fn disposition(&self, sig: libc::c_int) -> Disposition {
        let Some(bit) = bit(sig) else {
            return Disposition::Default;
        };
        if self.blocked & bit != 0 {
            Disposition::Blocked
        } else if self.caught & bit != 0 {
            Disposition::Caught
        } else if self.ignored & bit != 0 {
            Disposition::Ignored
        } else {
            Disposition::Default
        }
    }

    /// Whether `sig` sent from outside reaches the process when it is the init of its
    /// pid namespace: it catches or blocks it, or `sig` is SIGKILL (or SIGSTOP).
    pub fn init_receives(&self, sig: libc::c_int) -> bool {
        sig == libc::SIGKILL
            || sig == libc::SIGSTOP
            || matches!(
                self.disposition(sig),
                Disposition::Blocked | Disposition::Caught
            )
    }
}

/// The mask bit of signal `sig`, if it is one (1 to 64).
fn bit(sig: libc::c_int) -> Option<u64> {
    let n = u32::try_from(sig).ok().filter(|n| (1..=64).contains(n))?;
    Some(1u64 << (n - 1))
}

/// Why the signal masks of a process could not be read.
#[derive(Debug)]
pub enum ProcfsError {
    /// The status file could not be read (`ENOENT`: the process is gone).
    Read { path: PathBuf, source: io::Error },
    /// A field the kernel always writes is not there.
    Missing { path: PathBuf, field: &'static str },
    /// A mask is not 16 hex digits or less.
    Malformed {
        path: PathBuf,
        field: &'static str,
        value: String,
    },
}

impl fmt::Display for ProcfsError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ProcfsError::Read { path, .. } => write!(f, "read {}", path.display()),
            ProcfsError::Missing { path, field } => {
                write!(f, "{} has no {field} line", path.display())
            }
            ProcfsError::Malformed { path, field, value } => write!(
                f,
                "{} has {field} {value:?}, not a hexadecimal mask",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ProcfsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProcfsError::Read { source, .. } => Some(source),
            ProcfsError::Missing { .. } | ProcfsError::Malformed { .. } => None,
        }
    }
}

/// The signal masks of process `pid`, from `<proc_root>/<pid>/status`.
pub fn signals(proc_root: &Path, pid: i32) -> Result<Signals, ProcfsError> {
    let path = proc_root.join(pid.to_string()).join("status");
    // A status file is a couple of KiB; procfs makes it at the read, without waiting.
    let text = std::fs::read_to_string(&path).map_err(|source| ProcfsError::Read {
        path: path.clone(),
        source,
    })?;
    parse(&text, &path)
}

/// Whether signal `sig` sent from outside reaches `pid` as the init of its pid
/// namespace ([`Signals::init_receives`]), read from `<proc_root>/<pid>/status`.
pub fn init_receives(proc_root: &Path, pid: i32, sig: libc::c_int) -> Result<bool, ProcfsError> {
    signals(proc_root, pid).map(|s| s.init_receives(sig))
}

fn parse(text: &str, path: &Path) -> Result<Signals, ProcfsError> {
    let field = |field: &'static str| {
        text.lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .map(str::trim)
            .ok_or_else(|| ProcfsError::Missing {
                path: path.to_owned(),
                field,
            })
    };
    let mask = |name: &'static str| {
        let value = field(name)?;
        Some(value)
            .filter(|v| !v.is_empty() && v.len() <= 16)
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .ok_or_else(|| ProcfsError::Malformed {
                path: path.to_owned(),
                field: name,
                value: value.to_owned(),
            })
    };
    Ok(Signals {
        name: field("Name")?.to_owned(),
        blocked: mask("SigBlk")?,
        ignored: mask("SigIgn")?,
        caught: mask("SigCgt")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TempDir;
    use std::fs;

    /// A status file as the kernel writes it (6.1), with the given name and masks.
    fn status(name: &str, blk: &str, ign: &str, cgt: &str) -> String {
        format!(
            "Name:\t{name}\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t1\nNgid:\t0\n\
             Pid:\t1\nPPid:\t0\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n\
             FDSize:\t64\nGroups:\t\nNStgid:\t4242\t1\nNSpid:\t4242\t1\nNSpgid:\t4242\t1\n\
             NSsid:\t4242\t1\nThreads:\t1\nSigQ:\t0/31204\nSigPnd:\t0000000000000000\n\
             ShdPnd:\t0000000000000000\nSigBlk:\t{blk}\nSigIgn:\t{ign}\nSigCgt:\t{cgt}\n\
             CapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\n\
             CapEff:\t00000000a80425fb\nNoNewPrivs:\t1\nSeccomp:\t2\n"
        )
    }

    /// A proc root holding `files` as `<pid>/status`.
    fn proc_root(files: &[(i32, String)]) -> TempDir {
        let root = TempDir::new("procfs", "status");
        for (pid, text) in files {
            let dir = root.0.join(pid.to_string());
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("status"), text).unwrap();
        }
        root
    }

    const NONE: &str = "0000000000000000";

    #[test]
    fn a_shell_or_sleep_as_init_receives_only_sigkill() {
        // `sleep`: nothing caught. `sh -c` (dash, non-interactive): SIGINT and SIGQUIT
        // ignored while it waits, nothing caught.
        let root = proc_root(&[
            (10, status("sleep", NONE, NONE, NONE)),
            (
                11,
                status("sh", NONE, "0000000000000006", "0000000000010000"),
            ),
        ]);
        for pid in [10, 11] {
            for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP] {
                assert!(!init_receives(&root.0, pid, sig).unwrap(), "{pid} {sig}");
            }
            assert!(init_receives(&root.0, pid, libc::SIGKILL).unwrap());
        }
        let sh = signals(&root.0, 11).unwrap();
        assert_eq!(sh.name, "sh");
        assert_eq!(sh.disposition(libc::SIGINT), Disposition::Ignored);
        assert_eq!(sh.disposition(libc::SIGTERM), Disposition::Default);
        // dash catches SIGCHLD (bit 16): caught, and only that one.
        assert_eq!(sh.disposition(libc::SIGCHLD), Disposition::Caught);
    }

    #[test]
    fn a_handler_or_a_blocked_signal_reaches_the_init() {
        let root = proc_root(&[
            // A server with handlers for SIGHUP, SIGINT, SIGQUIT and SIGTERM.
            (
                20,
                status("nginx", NONE, "0000000000001000", "0000000000004007"),
            ),
            // tini and berth's reaper: every signal blocked, taken with sigwaitinfo.
            (21, status("berth-init", "fffffffe7ffbfeff", NONE, NONE)),
        ]);
        let nginx = signals(&root.0, 20).unwrap();
        assert_eq!(
            nginx,
            Signals {
                name: "nginx".into(),
                blocked: 0,
                ignored: 0x1000,
                caught: 0x4007,
            }
        );
        assert_eq!(nginx.disposition(libc::SIGTERM), Disposition::Caught);
        assert!(nginx.init_receives(libc::SIGTERM));
        assert!(nginx.init_receives(libc::SIGHUP));
        // SIGPIPE (13) ignored; SIGUSR1 (10) default: neither arrives.
        assert_eq!(nginx.disposition(libc::SIGPIPE), Disposition::Ignored);
        assert!(!nginx.init_receives(libc::SIGPIPE));
        assert!(!nginx.init_receives(libc::SIGUSR1));
        let reaper = signals(&root.0, 21).unwrap();
        assert_eq!(reaper.disposition(libc::SIGTERM), Disposition::Blocked);
        assert!(reaper.init_receives(libc::SIGTERM));
        assert!(reaper.init_receives(libc::SIGUSR2));
        assert!(reaper.init_receives(64));
    }

    #[test]
    fn blocked_wins_over_ignored() {
        // A blocked signal is queued even when ignored: the handler may change first.
        let s = Signals {
            name: "x".into(),
            blocked: 1 << (libc::SIGTERM - 1),
            ignored: 1 << (libc::SIGTERM - 1),
            caught: 0,
        };
        assert_eq!(s.disposition(libc::SIGTERM), Disposition::Blocked);
    }

    #[test]
    fn numbers_that_are_no_signal_read_as_default() {
        let all = Signals {
            name: "x".into(),
            blocked: 0,
            ignored: 0,
            caught: u64::MAX,
        };
        assert_eq!(all.disposition(1), Disposition::Caught);
        assert_eq!(all.disposition(64), Disposition::Caught);
        for sig in [0, 65, -1, libc::c_int::MAX] {
            assert_eq!(all.disposition(sig), Disposition::Default, "{sig}");
            assert!(!all.init_receives(sig), "{sig}");
        }
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let root = proc_root(&[
            (30, "Name:\tx\nSigBlk:\t0\nSigIgn:\t0\n".into()),
            (31, status("x", NONE, "zz", NONE)),
            (32, status("x", NONE, "00000000000000000", NONE)),
        ]);
        let at = |pid: i32| root.0.join(format!("{pid}/status")).display().to_string();
        assert_eq!(
            signals(&root.0, 30).unwrap_err().to_string(),
            format!("{} has no SigCgt line", at(30))
        );
        assert_eq!(
            signals(&root.0, 31).unwrap_err().to_string(),
            format!("{} has SigIgn \"zz\", not a hexadecimal mask", at(31))
        );
        assert_eq!(
            signals(&root.0, 32).unwrap_err().to_string(),
            format!(
                "{} has SigIgn \"00000000000000000\", not a hexadecimal mask",
                at(32)
            )
        );
        let gone = signals(&root.0, 33).unwrap_err();
        assert_eq!(gone.to_string(), format!("read {}", at(33)));
        let ProcfsError::Read { source, .. } = gone else {
            panic!("{gone:?}")
        };
        assert_eq!(source.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn the_real_proc_has_the_fields() {
        // This test's own process: nothing blocked on its main thread but what the
        // harness blocks, and a name.
        let own = signals(Path::new(PROC), std::process::id() as i32).unwrap();
        assert!(!own.name.is_empty());
        assert!(own.init_receives(libc::SIGKILL));
    }
}
