//! The exec probe: a command run inside a running app's whole sandbox.
//!
//! Two processes, because joining a pid namespace only places the children made
//! afterwards in it:
//! - the *runner*: berth's own executable, spawned by the supervisor with
//!   `posix_spawn` (a `clone(CLONE_VM | CLONE_VFORK)` and an exec: the supervisor's
//!   memory is neither copied nor made copy-on-write, which made a fork of it cost
//!   more than the rest of the probe) and started as [`RUNNER_ARGV0`] with an empty
//!   environment; it moves into the app's cgroup, joins its namespaces and root,
//!   enters the app's [`Sandbox`], forks the command, waits for it and exits with its
//!   status (see `runner.rs`);
//! - the *command*, forked by the runner: the first process of the probe inside the
//!   app's pid namespace, with stdin, stdout and stderr on `/dev/null`.
//!
//! The supervisor sees one pid, the runner's, whose exit status is the probe's result.
//! The runner opens everything of the app itself, after checking through a pidfd the
//! supervisor hands it that the app's pid still names the app. Between its fork and
//! the command's exec both only make raw system calls.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use libc::c_char;

use crate::image::process::DEFAULT_PATH;
use crate::launch::plan;
use crate::launch::sandbox::Sandbox;
use crate::sys::{self, Error, signal::SigSet};

use super::{context, from};

/// The runner's exit status after [`kill_probe`]: 128 + SIGKILL, as a shell reports a
/// command killed by SIGKILL.
pub const EXIT_KILLED: i32 = 128 + libc::SIGKILL;

/// `argv[0]` of berth's executable started as an exec probe's runner.
pub const RUNNER_ARGV0: &str = "berth-probe";

/// `argv[0]` of berth's executable started as the runner of a `berth exec`
/// ([`ExecProbe::spawn_session`]).
pub const EXEC_ARGV0: &str = "berth-exec";

/// The runner the supervisor starts: its own executable (also after the file was
/// replaced on disk by an update: the link names the running program's inode).
pub const SELF_EXE: &str = "/proc/self/exe";

/// An exec probe of one app, prepared once per run of the app: its command,
/// environment, sandbox and cgroup files as the runner's arguments.
/// [`ExecProbe::spawn`] starts one probe.
///
/// - **Result**: the runner exits with the command's exit status, 128 + the signal
///   that killed it, 127 when the program is not found in `PATH`, 126 when it cannot
///   be executed, 125 when joining the app failed (the app died meanwhile, or a
///   namespace, root, cgroup file, id change, capability set or filter was refused).
///   0 is healthy. The caller reaps it with its other children (SIGCHLD); a probe
///   past its timeout is ended with [`kill_probe`].
/// - **Sandbox**: exactly the app's process's (`sandbox`, from
///   [`Running`](crate::launch::Running)): its uid, gid and groups, its capabilities
///   in all five sets, `no_new_privs`, its seccomp filter and resource limits, its
///   working directory. The program a probe runs lives in the app's writable root, so
///   the app can replace it: it must never run with more than the app has.
/// - **Namespaces**: those of the app's process that differ from the runner's, among
///   cgroup, ipc, uts, net, pid, mount and user (a time namespace is not joined). The
///   user namespace comes first, then every namespace it owns, as `runc exec` does;
///   only a namespace the app's user namespace does not own (a `container:` network)
///   is joined before it, while the runner can still enter it.
/// - **Root**: the app's root (`/proc/PID/root`, as `nsenter --root`), also when the
///   mount namespace is shared.
/// - **Cgroup**: the runner writes itself into each of `cgroup_procs` (the app's
///   [`join_files`](crate::cgroup::Group::join_files): `tasks` of each v1
///   hierarchy, or the v2 `cgroup.procs`) before joining anything, so the command is
///   charged to and limited with the app, and a kill of the app's cgroup ends it too.
/// - **Program**: `argv[0]`, looked up in the `PATH` of `env` (else
///   `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`) inside the app's
///   root; `env` is the command's whole environment (`KEY=value` strings), passed to
///   the runner as arguments and applied only by the final `execve`: the runner's own
///   environment is empty, so nothing of the image's `Env` (an `LD_PRELOAD`) reaches
///   it while it still has the host's privileges.
/// - **Process group**: the command leads a new session; when it exits (or is killed),
///   the runner kills what is left of its process group (a `cmd &` it started) before
///   reaping it, so a probe leaves nothing behind.
/// - **Parent death**: the command gets SIGKILL when the runner dies, and the runner
///   when the thread that spawned it exits (`PR_SET_PDEATHSIG`).
pub struct ExecProbe {
    runner: CString,
    /// The runner's arguments after its first four: the number of cgroup files, the
    /// files, the sandbox, the number of environment entries, the entries, the
    /// command.
    tail: Vec<CString>,
}

impl ExecProbe {
    /// Checks the command (`InvalidInput`: `argv` empty or a NUL byte anywhere) and
    /// the cgroup files (each must open for writing), with `runner` the berth
    /// executable to start ([`SELF_EXE`] in the supervisor).
    pub fn new(
        runner: &Path,
        argv: &[String],
        env: &[String],
        cgroup_procs: &[PathBuf],
        sandbox: &Sandbox,
    ) -> io::Result<ExecProbe> {
        let command = Command::new(argv, env)?;
        for p in cgroup_procs {
            drop(open_write(p)?);
        }
        let invalid = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("exec probe: {what} holds a NUL byte"),
            )
        };
        let path = |p: &Path| {
            CString::new(p.as_os_str().as_bytes()).map_err(|_| invalid(&p.display().to_string()))
        };
        let mut tail = vec![c_number(cgroup_procs.len())];
        for p in cgroup_procs {
            tail.push(path(p)?);
        }
        for arg in sandbox.to_args() {
            tail.push(CString::new(arg).map_err(|_| invalid("the workdir"))?);
        }
        tail.push(c_number(command.env.len()));
        tail.extend(command.env);
        tail.extend(command.argv);
        Ok(ExecProbe {
            runner: path(runner)?,
            tail,
        })
    }

    /// Starts one probe in the app whose process is `pid`: the runner's pid, a child
    /// of the caller. Fails when `pid` is not a process id (`InvalidInput`) or names
    /// no process, or when the runner cannot be started.
    pub fn spawn(&self, pid: i32) -> io::Result<i32> {
        self.start(pid, &[c_number(RUNNER_ARGV0)], None)
    }

    /// Starts the command as `berth exec` does, in the app whose process is `pid`:
    /// as [`spawn`](Self::spawn), with `stdio` as the command's stdin, stdout and
    /// stderr (the client's, or the slave of its pty when `tty`: then also the
    /// command's controlling terminal), and as `user` (a name or `uid[:gid]`, looked
    /// up in the app's own `/etc/passwd` and `/etc/group`) instead of the app's
    /// user when given. The runner says on `stdio`'s stderr why it could not run the
    /// command (and exits with 125).
    pub fn spawn_session(
        &self,
        pid: i32,
        tty: bool,
        user: Option<&str>,
        stdio: [std::os::fd::BorrowedFd<'_>; 3],
    ) -> io::Result<i32> {
        let user = CString::new(user.unwrap_or_default()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "exec: the user holds a NUL byte",
            )
        })?;
        let mode = [
            c_number(EXEC_ARGV0),
            c_number(if tty { "-t" } else { "-" }),
            user,
        ];
        self.start(pid, &mode, Some(stdio))
    }

    /// Spawns the runner: `mode` is its `argv[0]` and what its mode adds before the
    /// common arguments.
    fn start(
        &self,
        pid: i32,
        mode: &[CString],
        stdio: Option<[std::os::fd::BorrowedFd<'_>; 3]>,
    ) -> io::Result<i32> {
        if pid <= 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("exec probe: {pid} is not a process id"),
            ));
        }
        let pidfd = match sys::process::pidfd_open(pid) {
            Ok(fd) => Some(fd),
            // Before Linux 5.3: the runner checks nothing more than the pid.
            Err(Error {
                errno: libc::ENOSYS,
                ..
            }) => match sys::process::kill(pid, 0) {
                Ok(()) => None,
                Err(e) => return Err(context(&format!("exec probe: signal 0 to {pid}"), from(e))),
            },
            Err(e) => return Err(context(&format!("exec probe: pidfd_open {pid}"), from(e))),
        };
        let head = [
            c_number(sys::process::getpid()),
            c_number(pid),
            c_number(if pidfd.is_some() { "3" } else { "-" }),
        ];
        let argv: Vec<*const c_char> = mode
            .iter()
            .chain(&head)
            .chain(&self.tail)
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        // The runner starts with no environment at all (see the type's doc).
        let envp: [*const c_char; 1] = [std::ptr::null()];
        let fd = pidfd.as_ref().map(AsFd::as_fd);
        // SIGTERM (kill_probe) and SIGCHLD blocked from the start: the runner takes
        // them synchronously (`supervise`).
        sys::process::spawn_with(
            &self.runner,
            &argv,
            &envp,
            fd,
            stdio,
            &SigSet::of(&[libc::SIGTERM, libc::SIGCHLD]),
        )
        .map_err(|e| {
            context(
                &format!(
                    "exec probe: start {} for process {pid}",
                    self.runner.to_string_lossy()
                ),
                from(e),
            )
        })
    }
}

/// Starts `argv` inside the sandbox, namespaces, root and cgroup of the running
/// process `pid` (the app's), through the runner program `runner`:
/// [`ExecProbe::new`] and [`ExecProbe::spawn`] in one.
pub fn spawn_exec(
    runner: &Path,
    pid: i32,
    argv: &[String],
    env: &[String],
    cgroup_procs: &[PathBuf],
    sandbox: &Sandbox,
) -> io::Result<i32> {
    ExecProbe::new(runner, argv, env, cgroup_procs, sandbox)?.spawn(pid)
}

/// A number (or any `Display`) as a C string; cannot hold a NUL.
fn c_number(n: impl std::fmt::Display) -> CString {
    CString::new(n.to_string()).unwrap_or_default()
}

/// Ends a probe started by [`spawn_exec`] (one past its timeout): asks the runner
/// `pid`, with SIGTERM, to SIGKILL the command and its process group, reap it and exit
/// with [`EXIT_KILLED`] (or the command's own status, had it just ended). The caller
/// then reaps the runner as usual.
///
/// Why not SIGKILL the runner itself: the command would die too (its parent-death
/// signal), but as an orphan in the app's pid namespace, left for the app's PID 1 to
/// reap, and an app that is not an init never does: every timed-out probe would leave
/// a zombie holding one of the app's pids. SIGKILL of the runner remains the last
/// resort, should it not exit.
///
/// Only call it while the runner is not yet reaped: until then its pid cannot name
/// another process; after, it may. `pid` must be positive (`InvalidInput` otherwise: 0 and negative numbers name process
/// groups).
pub fn kill_probe(pid: i32) -> io::Result<()> {
    if pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("kill the exec probe: {pid} is not a process id"),
        ));
    }
    sys::process::kill(pid, libc::SIGTERM)
        .map_err(|e| context(&format!("signal exec probe {pid}"), from(e)))
}

/// The command, as C strings.
pub(super) struct Command {
    /// Where the program may be (`PATH` lookup as `execvp`).
    pub(super) candidates: Vec<CString>,
    pub(super) argv: Vec<CString>,
    pub(super) env: Vec<CString>,
}

impl Command {
    pub(super) fn new(argv: &[String], env: &[String]) -> io::Result<Command> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
        let c = |s: &String| {
            CString::new(s.as_bytes())
                .map_err(|_| invalid(format!("exec probe: {s:?} holds a NUL byte")))
        };
        let program = argv
            .first()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| invalid("exec probe: no program to run".to_owned()))?;
        let path_var = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        Ok(Command {
            candidates: plan::candidates(program, path_var)
                .iter()
                .map(c)
                .collect::<Result<_, _>>()?,
            argv: argv.iter().map(c).collect::<Result<_, _>>()?,
            env: env.iter().map(c).collect::<Result<_, _>>()?,
        })
    }
}

/// Opens `path` for writing (a cgroup file, `/dev/null`).
pub(super) fn open_write(path: &Path) -> io::Result<std::fs::File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| context(&format!("exec probe: open {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_checked_and_looked_up_in_their_path() {
        let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let c = Command::new(&s(&["sh", "-c", "true"]), &s(&["PATH=/bin:/x/"])).unwrap();
        assert_eq!(c.candidates, [c"/bin/sh".to_owned(), c"/x/sh".to_owned()]);
        let c = Command::new(&s(&["sh"]), &[]).unwrap();
        assert_eq!(c.candidates.len(), DEFAULT_PATH.split(':').count());
        assert_eq!(
            c.candidates.first().unwrap().as_c_str(),
            c"/usr/local/sbin/sh"
        );
        let c = Command::new(&s(&["/bin/true"]), &[]).unwrap();
        assert_eq!(c.candidates, [c"/bin/true".to_owned()]);
        for (argv, env) in [
            (s(&[]), s(&[])),
            (s(&[""]), s(&[])),
            (s(&["a\0b"]), s(&[])),
            (s(&["sh"]), s(&["X=\0"])),
        ] {
            let e = Command::new(&argv, &env).err().unwrap();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{argv:?} {env:?}");
        }
    }

    #[test]
    fn kill_refuses_process_groups() {
        for pid in [0, -1, -42] {
            assert_eq!(
                kill_probe(pid).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
    }
}
