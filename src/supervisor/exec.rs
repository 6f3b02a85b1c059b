//! `berth exec`: a command started inside a running app's whole sandbox, through the
//! same runner as its exec health checks (`probe/runner.rs`), with the client's
//! descriptors as its stdin, stdout and stderr.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use super::app::AppId;
use super::core::Supervisor;
use super::lifecycle::Phase;
use super::probe::{self, ExecProbe};

/// The environment a command with a pty gets when the app's sets no `TERM` (what
/// `docker exec -t` sets).
const TERM: &str = "TERM=xterm";

impl Supervisor {
    /// Starts `argv` in the app `id`, as `user` (a name or `uid[:gid]` of the app's
    /// own `/etc/passwd` and `/etc/group`) when given, with `stdio` (the three
    /// descriptors the client sent: stdin, stdout, stderr; with `tty`, a pty's slave
    /// three times, which becomes the command's controlling terminal).
    ///
    /// Returns the runner's pid, a child of the supervisor: its exit status is the
    /// command's (126 cannot execute, 127 not found, 125 could not enter the app or
    /// become the user, which the runner explains on the command's stderr, 128+N killed
    /// by signal N). `kill_probe` ends it with the command and its process group.
    /// `stdio` is closed here once the runner holds it, so the client sees the end of
    /// its pty when the command and the runner are gone.
    pub(super) fn start_exec(
        &mut self,
        id: AppId,
        argv: &[String],
        user: Option<&str>,
        tty: bool,
        stdio: Vec<OwnedFd>,
    ) -> Result<i32, String> {
        let app = self
            .apps
            .get(&id)
            .ok_or_else(|| "the app is gone".to_owned())?;
        let name = app.name();
        let [stdin, stdout, stderr] = stdio.as_slice() else {
            return Err(format!(
                "exec {name}: the request carries {} descriptors, not 3 (stdin, stdout, \
                 stderr)",
                stdio.len()
            ));
        };
        let run = match &app.life.phase {
            Phase::Running { run, .. } => run,
            other => {
                return Err(format!(
                    "{name} is not running (state: {}); start it with `berth start {name}`",
                    other.name()
                ));
            }
        };
        let (sandbox, env) = run
            .sandbox
            .as_ref()
            .ok_or_else(|| format!("{name} is not running (its process has not started)"))?;
        let mut env = env.clone();
        if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push(TERM.to_owned());
        }
        let runner = Path::new(probe::SELF_EXE);
        ExecProbe::new(runner, argv, &env, &run.group.join_files(), sandbox)
            .and_then(|exec| {
                exec.spawn_session(
                    run.pid,
                    tty,
                    user,
                    [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()],
                )
            })
            .map_err(|e| format!("exec in {name}: {e}"))
    }
}
