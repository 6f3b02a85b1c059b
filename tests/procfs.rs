//! `berth::procfs` against the real kernel, as root: what `/proc/PID/status` says about a
//! pid-namespace init is what happens to a signal sent to it from outside. Every wait
//! is on an exit status: of the init, a child of the test, or of util-linux `unshare
//! --fork --pid`, which exits with its child's code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

use berth::procfs::{self, Disposition, PROC};

/// `unshare --fork --pid` running `script` as the init of a new pid namespace; killed
/// and reaped on drop unless waited for.
struct Init {
    unshare: Child,
    /// The init's pid, as this (the parent) namespace sees it.
    pid: i32,
}

impl Init {
    /// Starts `script`, which prints `ready` once it is set up.
    fn start(script: &str) -> Init {
        let mut unshare = Command::new("unshare")
            .args(["--fork", "--pid", "--kill-child", "sh", "-c", script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(unshare.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n");
        let id = unshare.id();
        let children = fs::read_to_string(format!("/proc/{id}/task/{id}/children")).unwrap();
        let pid = children.trim().parse().unwrap();
        Init { unshare, pid }
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: plain integer arguments.
        assert_eq!(unsafe { libc::kill(self.pid, sig) }, 0);
    }

    fn wait(&mut self) -> ExitStatus {
        self.unshare.wait().unwrap()
    }
}

impl Drop for Init {
    fn drop(&mut self) {
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// `sleep 1000` as the init of a new pid namespace, a child of this process (so its
/// exit status is ours to read); killed and reaped on drop unless waited for.
struct SleepInit(Option<i32>);

impl SleepInit {
    fn start() -> SleepInit {
        let path = c"/bin/sleep";
        let argv = [c"sleep".as_ptr(), c"1000".as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null::<libc::c_char>()];
        let flags = (libc::CLONE_NEWPID | libc::SIGCHLD) as libc::c_ulong;
        // SAFETY: clone without a new stack, as fork; the child (the test harness has
        // threads) only calls execve and _exit, with arguments made before.
        let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
        assert!(pid >= 0, "clone: {}", std::io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: NUL-terminated strings and null-terminated arrays, built above.
            unsafe {
                libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127);
            }
        }
        SleepInit(Some(i32::try_from(pid).unwrap()))
    }

    fn pid(&self) -> i32 {
        self.0.unwrap()
    }

    /// The signal that ended it.
    fn wait(&mut self) -> Option<i32> {
        let pid = self.0.take().unwrap();
        let mut status = 0;
        // SAFETY: `status` is writable for the call; `pid` is our unreaped child.
        assert_eq!(unsafe { libc::waitpid(pid, &raw mut status, 0) }, pid);
        libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status))
    }
}

impl Drop for SleepInit {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: plain integer arguments; `pid` is our unreaped child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

#[test]
fn an_init_without_a_handler_never_receives_sigterm() {
    common::require_root("a new pid namespace needs CAP_SYS_ADMIN");
    let mut init = SleepInit::start();
    // Before or after its exec, it has no handler for SIGTERM.
    let signals = procfs::signals(Path::new(PROC), init.pid()).unwrap();
    assert_eq!(signals.disposition(libc::SIGTERM), Disposition::Default);
    assert!(!procfs::init_receives(Path::new(PROC), init.pid(), libc::SIGTERM).unwrap());
    // The kernel drops SIGTERM as it is sent; had it been delivered, its default action
    // would have ended the process with SIGTERM before SIGKILL came.
    for sig in [libc::SIGTERM, libc::SIGKILL] {
        // SAFETY: plain integer arguments.
        assert_eq!(unsafe { libc::kill(init.pid(), sig) }, 0);
    }
    assert_eq!(init.wait(), Some(libc::SIGKILL));
}

#[test]
fn an_init_with_a_handler_receives_sigterm() {
    common::require_root("a new pid namespace needs CAP_SYS_ADMIN");
    let mut init = Init::start("trap 'exit 7' TERM; echo ready; sleep 1000 & wait");
    let signals = procfs::signals(Path::new(PROC), init.pid).unwrap();
    assert_eq!(signals.disposition(libc::SIGTERM), Disposition::Caught);
    assert!(procfs::init_receives(Path::new(PROC), init.pid, libc::SIGTERM).unwrap());
    // Its handler says so by its exit code.
    init.signal(libc::SIGTERM);
    assert_eq!(init.wait().code(), Some(7));
}
