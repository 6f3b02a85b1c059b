//! The runner of an exec probe and of `berth exec`: berth's own executable, started by
//! the supervisor as [`RUNNER_ARGV0`](super::exec::RUNNER_ARGV0) or
//! [`EXEC_ARGV0`](super::exec::EXEC_ARGV0) with an empty environment. It joins the app
//! (cgroup, namespaces, root), enters the app's [`Sandbox`], forks the command and
//! reports its status as its own exit status. A probe's command gets `/dev/null` as
//! stdin, stdout and stderr; `berth exec`'s keeps the runner's (the client's, passed
//! over the control socket), and with `-t` takes them (a pty's slave) as its
//! controlling terminal.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use libc::{c_char, c_int, pid_t};

use crate::launch::child::{EXIT_CANNOT_EXEC, EXIT_NOT_FOUND, EXIT_SETUP};
use crate::launch::sandbox::{self, Sandbox};
use crate::launch::{plan, rootfs};
use crate::sys::{self, Error, signal::SigSet};

use super::exec::{Command, open_write};
use super::{context, from};

/// The namespaces that may be joined. The user namespace is joined before every
/// namespace it owns (see [`App::open`] for the order).
const NAMESPACES: [(&str, c_int); 7] = [
    ("user", libc::CLONE_NEWUSER),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("mnt", libc::CLONE_NEWNS),
];

/// What the runner was started for, by its `argv[0]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An exec health check ([`RUNNER_ARGV0`](super::exec::RUNNER_ARGV0)).
    Probe,
    /// `berth exec` ([`EXEC_ARGV0`](super::exec::EXEC_ARGV0)).
    Exec,
}

impl Mode {
    /// The mode of a runner started as `argv0`; `None` for another program.
    pub fn of(argv0: &OsStr) -> Option<Mode> {
        if argv0 == super::exec::RUNNER_ARGV0 {
            Some(Mode::Probe)
        } else if argv0 == super::exec::EXEC_ARGV0 {
            Some(Mode::Exec)
        } else {
            None
        }
    }
}

/// The runner's whole life, from its `main` when started in `mode` with `args` (those
/// after `argv[0]`): `SUPERVISOR APP PIDFD N CGROUP_PROCS... SANDBOX(6) M ENV...
/// COMMAND...`, after `TTY USER` for `berth exec` (`-t` or `-`; a user, or empty for
/// the app's). Exits with the command's status.
pub fn runner_main(mode: Mode, args: Vec<OsString>) -> ! {
    let Some(job) = Job::parse(mode, &args) else {
        fail(mode, &"malformed arguments");
    };
    let command = Command::new(&job.argv, &job.env).unwrap_or_else(|e| fail(mode, &e));
    let app = App::open(job.app, &job.cgroup_procs).unwrap_or_else(|e| fail(mode, &e));
    // /proc/APP was opened above: if the app is still there now, it was then, so what
    // was opened is the app's and not a process that got its pid since.
    if let Some(fd) = job.pidfd {
        if sys::process::pidfd_alive(fd) != Ok(true) {
            fail(mode, &"the app's process is gone");
        }
    }
    let argv_ptrs = plan::pointers(&command.argv);
    let envp = plan::pointers(&command.env);
    let mut keep: Vec<RawFd> = [0, 1, 2, app.root.as_raw_fd(), app.devnull.as_raw_fd()]
        .into_iter()
        .chain(app.namespaces.iter().map(|(fd, _)| fd.as_raw_fd()))
        .chain(app.cgroups.iter().map(AsRawFd::as_raw_fd))
        .collect();
    keep.sort_unstable();
    keep.dedup();
    Runner {
        command: &command,
        argv: &argv_ptrs,
        envp: &envp,
        app: &app,
        sandbox: job.sandbox,
        session: job.session,
        keep: &mut keep,
        supervisor: job.supervisor,
    }
    .run()
}

/// Ends a runner that could not start the command: 125, as a shell says it could not
/// run one. `berth exec`'s runner first says why on its stderr, the client's (a
/// probe's has nowhere to say it: its failure is its result).
fn fail(mode: Mode, why: &dyn std::fmt::Display) -> ! {
    if mode == Mode::Exec {
        let line = format!("berth exec: cannot run the command in the app: {why}\n");
        let _ = sys::fd::write_all(2, line.as_bytes());
    }
    sys::process::exit(EXIT_SETUP)
}

/// What `berth exec` asks for beyond a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Session {
    /// Its stdin is a pty's slave, to become the command's controlling terminal.
    tty: bool,
    /// `-u USER`: another user than the app's, looked up in the app's root.
    user: Option<String>,
}

/// The runner's arguments.
struct Job {
    /// `None` for a probe.
    session: Option<Session>,
    supervisor: pid_t,
    app: pid_t,
    pidfd: Option<RawFd>,
    cgroup_procs: Vec<PathBuf>,
    sandbox: Sandbox,
    env: Vec<String>,
    argv: Vec<String>,
}

impl Job {
    fn parse(mode: Mode, args: &[OsString]) -> Option<Job> {
        let text = |a: &OsString| a.to_str().map(str::to_owned);
        let mut it = args.iter();
        let session = match mode {
            Mode::Probe => None,
            Mode::Exec => Some(Session {
                tty: match it.next()?.to_str()? {
                    "-t" => true,
                    "-" => false,
                    _ => return None,
                },
                user: Some(it.next()?.to_str()?)
                    .filter(|u| !u.is_empty())
                    .map(str::to_owned),
            }),
        };
        let supervisor = it.next()?.to_str()?.parse().ok()?;
        let app = it.next()?.to_str()?.parse().ok()?;
        let pidfd = match it.next()?.to_str()? {
            "-" => None,
            n => Some(n.parse().ok()?),
        };
        let n: usize = it.next()?.to_str()?.parse().ok()?;
        let cgroup_procs = it.by_ref().take(n).map(PathBuf::from).collect::<Vec<_>>();
        if cgroup_procs.len() != n {
            return None;
        }
        let fields = it
            .by_ref()
            .take(sandbox::ARGS)
            .map(|a| a.to_str())
            .collect::<Option<Vec<&str>>>()?;
        let sandbox = Sandbox::from_args(&fields)?;
        let n: usize = it.next()?.to_str()?.parse().ok()?;
        let env = it.by_ref().take(n).map(text).collect::<Option<Vec<_>>>()?;
        if env.len() != n {
            return None;
        }
        let argv = it.map(text).collect::<Option<Vec<_>>>()?;
        Some(Job {
            session,
            supervisor,
            app,
            pidfd,
            cgroup_procs,
            sandbox,
            env,
            argv,
        })
    }
}

/// The app's side, opened by the runner while it is still the supervisor's child in
/// the host's namespaces.
struct App {
    /// The namespaces to join, in order: those the app's user namespace does not own,
    /// the user namespace, then those it owns.
    namespaces: Vec<(OwnedFd, c_int)>,
    /// The app's root directory (`O_PATH`).
    root: OwnedFd,
    /// The `cgroup.procs` files, open for writing.
    cgroups: Vec<File>,
    devnull: File,
}

impl App {
    fn open(pid: i32, cgroup_procs: &[PathBuf]) -> io::Result<App> {
        if pid <= 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("exec probe: {pid} is not a process id"),
            ));
        }
        let opened = |what: &str| {
            let what = format!("exec probe: open {what}");
            move |e: Error| context(&what, from(e))
        };
        // Everything of the app is opened relative to one descriptor of its /proc
        // directory: if the app dies and its pid is reused, these opens fail instead
        // of reaching the new process.
        let dir = File::open(format!("/proc/{pid}"))
            .map_err(|e| context(&format!("exec probe: open /proc/{pid}"), e))?;
        let mut differ = Vec::new();
        for (name, flag) in NAMESPACES {
            let own = match File::open(format!("/proc/thread-self/ns/{name}")) {
                Ok(own) => own,
                // A kernel without this kind of namespace.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(context(
                        &format!("exec probe: open /proc/thread-self/ns/{name}"),
                        e,
                    ));
                }
            };
            let path = CString::new(format!("ns/{name}"))
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            let theirs = File::from(
                sys::fs::openat(dir.as_raw_fd(), &path, libc::O_RDONLY, 0)
                    .map_err(opened(&format!("/proc/{pid}/ns/{name}")))?,
            );
            if !same_file(&own, &theirs)? {
                differ.push((theirs, flag));
            }
        }
        let namespaces = join_order(differ)?;
        let root = sys::fs::openat(
            dir.as_raw_fd(),
            c"root",
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )
        .map_err(opened(&format!("/proc/{pid}/root")))?;
        let cgroups = cgroup_procs
            .iter()
            .map(|p| open_write(p))
            .collect::<io::Result<_>>()?;
        let devnull = open_write(Path::new("/dev/null"))?;
        Ok(App {
            namespaces,
            root,
            cgroups,
            devnull,
        })
    }

    /// Whether the command is forked into another pid namespace than the runner's.
    fn joins_pid_namespace(&self) -> bool {
        self.namespaces
            .iter()
            .any(|&(_, flag)| flag == libc::CLONE_NEWPID)
    }
}

/// The app's namespaces (those that differ from the runner's, the user namespace
/// first if it is among them) in the order to join them: the user namespace before
/// every namespace it owns, so the runner enters them with the capabilities it has
/// there and not the host's (`runc exec`'s order); a namespace it does not own (a
/// `container:` network made by another app or the host) before it, while the
/// runner still has the privileges to enter that one.
fn join_order(differ: Vec<(File, c_int)>) -> io::Result<Vec<(OwnedFd, c_int)>> {
    let mut differ = differ.into_iter().peekable();
    let user = match differ.peek() {
        Some((_, flag)) if *flag == libc::CLONE_NEWUSER => differ.next(),
        _ => None,
    };
    let Some((user, user_flag)) = user else {
        return Ok(differ.map(|(f, flag)| (OwnedFd::from(f), flag)).collect());
    };
    let mut before = Vec::new();
    let mut after = Vec::new();
    for (ns, flag) in differ {
        // Before Linux 4.9 the kernel cannot say (ENOTTY): join after, as runc does.
        let owned = match sys::ns::owning_user_namespace(ns.as_fd()) {
            Ok(owner) => same_file(&File::from(owner), &user)?,
            Err(_) => true,
        };
        if owned {
            after.push((OwnedFd::from(ns), flag));
        } else {
            before.push((OwnedFd::from(ns), flag));
        }
    }
    before.push((OwnedFd::from(user), user_flag));
    before.extend(after);
    Ok(before)
}

/// Whether two open namespace files are the same namespace.
fn same_file(a: &File, b: &File) -> io::Result<bool> {
    let (a, b) = (a.metadata()?, b.metadata()?);
    Ok((a.dev(), a.ino()) == (b.dev(), b.ino()))
}

/// What the runner works with, all made before the fork.
struct Runner<'a> {
    command: &'a Command,
    argv: &'a [*const c_char],
    envp: &'a [*const c_char],
    app: &'a App,
    /// The app's, with `-u`'s ids once they are looked up.
    sandbox: Sandbox,
    session: Option<Session>,
    /// The descriptors the runner keeps from the supervisor's.
    keep: &'a mut [RawFd],
    supervisor: pid_t,
}

impl Runner<'_> {
    /// The runner's whole life: join the app, fork the command, wait for it.
    fn run(&mut self) -> ! {
        let mode = match self.session {
            Some(_) => Mode::Exec,
            None => Mode::Probe,
        };
        if let Err(e) = self.join() {
            fail(mode, &e);
        }
        // Read before the fork: the pid the command must see as its parent's.
        let expected_parent = if self.app.joins_pid_namespace() {
            // The runner is outside the command's pid namespace.
            0
        } else {
            sys::process::getpid()
        };
        // SAFETY: the runner is single-threaded (a fresh program); the command only
        // makes raw calls until it execs or exits.
        match unsafe { sys::process::fork() } {
            Ok(0) => self.command(expected_parent),
            Ok(command) => sys::process::exit(supervise(command)),
            Err(e) => fail(mode, &e),
        }
    }

    /// Into the app's cgroup, namespaces, root and sandbox, in that order: the cgroup
    /// first, while `cgroup.procs` is still reached from the supervisor's cgroup
    /// namespace; the sandbox last, once nothing of the host is left to reach.
    fn join(&mut self) -> Result<(), Error> {
        if self.session.is_none() {
            let devnull = self.app.devnull.as_raw_fd();
            for fd in 0..3 {
                sys::fd::dup_to(devnull, fd)?;
            }
        }
        // Copies of the supervisor's descriptors must not live on here: an epoll
        // registration lasts while any copy of its file is open, a pipe's reader
        // sees end-of-file only when every copy of its writer is closed.
        sys::fd::close_except(self.keep);
        // Default dispositions, and SIGTERM (kill_probe) and SIGCHLD (the command's
        // end) blocked, to be taken in `supervise`.
        sys::signal::reset_all()?;
        sys::signal::set_mask(&SigSet::of(&[libc::SIGTERM, libc::SIGCHLD]))?;
        for cgroup in &self.app.cgroups {
            // "0" is the writer, the runner's only thread: no pid to format without
            // allocating, and on v1 no global lock for the kernel to take.
            sys::fd::write_all(cgroup.as_raw_fd(), b"0")?;
        }
        for (fd, flag) in &self.app.namespaces {
            sys::ns::setns(fd.as_fd(), *flag)?;
        }
        // Joining the mount namespace moved the root to the namespace's; this is the
        // app's own root (the same after pivot_root, also right after a chroot or with
        // a shared mount namespace).
        sys::fs::fchdir(self.app.root.as_raw_fd())?;
        sys::fs::chroot(c".")?;
        // Nothing of the host stays open: from here on only the app's root is
        // reachable, and what follows resolves paths the app controls.
        sys::fd::close_except(&mut [0, 1, 2]);
        if let Some(user) = self.session.as_ref().and_then(|s| s.user.as_deref()) {
            // The app's own files, read inside its root: no symbolic link followed,
            // regular files of bounded size only (what the image's `User` gets).
            let (uid, gid, groups) =
                crate::image::process::user_and_groups(user, Path::new("/"), sandbox::MAX_GROUPS)
                    .unwrap_or_else(|why| fail(Mode::Exec, &format_args!("user {user:?}: {why}")));
            // Only who it is changes: the capabilities stay the app's, never more.
            self.sandbox.uid = uid;
            self.sandbox.gid = gid;
            self.sandbox.groups = groups;
        }
        self.sandbox.become_app().map_err(|(_, e)| e)?;
        // After the id changes, which clear it. If the supervisor died before, stop.
        sys::caps::set_parent_death_signal(libc::SIGKILL)?;
        if sys::process::getppid() != self.supervisor {
            // The supervisor is gone: nobody to probe for.
            return Err(Error::new("getppid", libc::ESRCH));
        }
        // As the app's user, the way its own process entered it: resolved in the
        // root, no magic link followed, checked to be inside.
        match rootfs::enter_workdir(&self.sandbox.workdir, true) {
            Err(Error {
                errno: libc::ENOSYS,
                ..
            }) => rootfs::enter_workdir(&self.sandbox.workdir, false)?,
            other => other?,
        }
        self.sandbox.confine().map_err(|(_, e)| e)
    }

    /// The command's life: tie it to the runner, a session of its own, clean signals,
    /// exec.
    fn command(&self, expected_parent: pid_t) -> ! {
        let tty = self.session.as_ref().is_some_and(|s| s.tty);
        // If the runner died before the parent-death signal was set, stop.
        // A session of its own always: without `-t` that leaves the command with no
        // controlling terminal, though its stdin may be the user's terminal, so it
        // cannot push input into it with TIOCSTI (which needs the terminal to be the
        // caller's controlling one) for the user's shell to run once `berth exec`
        // ends: CVE-2017-5226, fixed in bubblewrap by this same setsid, and why runc
        // gives a process without `--tty` no terminal of its own. With `-t` the
        // command takes the pty's slave on its stdin as its controlling terminal, in
        // the foreground: Ctrl-C and the window size reach it.
        if sys::caps::set_parent_death_signal(libc::SIGKILL).is_err()
            || sys::process::getppid() != expected_parent
            || sys::process::setsid().is_err()
            || (tty && sys::tty::take_controlling(0).is_err())
            || sys::signal::reset_all().is_err()
        {
            sys::process::exit(EXIT_SETUP);
        }
        let mut failure = EXIT_NOT_FOUND;
        for candidate in &self.command.candidates {
            match sys::process::execve(candidate, self.argv, self.envp) {
                Error {
                    errno: libc::ENOENT | libc::ENOTDIR,
                    ..
                } => {}
                Error {
                    errno: libc::EACCES,
                    ..
                } => failure = EXIT_CANNOT_EXEC,
                _ => sys::process::exit(EXIT_CANNOT_EXEC),
            }
        }
        sys::process::exit(failure)
    }
}

/// The runner waits for the command, or for [`kill_probe`](super::kill_probe)'s
/// SIGTERM: the command's exit status, once it and its process group are gone.
fn supervise(command: pid_t) -> c_int {
    loop {
        if let Ok(libc::SIGTERM) = sys::signal::wait(&SigSet::of(&[libc::SIGTERM, libc::SIGCHLD])) {
            // The group, and the command itself in case it has no group yet (the
            // signal came before its setsid).
            let _ = sys::process::kill(-command, libc::SIGKILL);
            let _ = sys::process::kill(command, libc::SIGKILL);
        }
        match sys::process::has_exited(command) {
            Ok(true) => break,
            Ok(false) => {}
            Err(_) => return EXIT_SETUP,
        }
    }
    // The command's zombie still holds its pid, so the group number names its group
    // and nothing else: whatever it left running there goes too.
    let _ = sys::process::kill(-command, libc::SIGKILL);
    match sys::process::wait(command) {
        Ok(status) => exit_code(status),
        Err(_) => EXIT_SETUP,
    }
}

/// A wait status as a shell reports it: the exit code, or 128 + the signal.
fn exit_code(status: c_int) -> c_int {
    sys::process::exit_code(status).unwrap_or(EXIT_SETUP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::probe::EXIT_KILLED;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(libc::SIGKILL), EXIT_KILLED);
        assert_eq!(exit_code(libc::SIGTERM), 143);
    }

    #[test]
    fn arguments_carry_the_sandbox_environment_and_command() {
        let sandbox = Sandbox {
            uid: 7,
            gid: 8,
            groups: vec![],
            caps: crate::caps::DEFAULT,
            seccomp: crate::manifest::model::Seccomp::Unconfined,
            workdir: c"/".to_owned(),
        };
        let mut args: Vec<OsString> = ["1", "2", "-", "1", "/cg/procs"]
            .iter()
            .map(OsString::from)
            .collect();
        args.extend(sandbox.to_args().into_iter().map(OsString::from));
        args.extend(["2", "A=1", "LD_PRELOAD=/x", "sh", "-c", "true"].map(OsString::from));
        let job = Job::parse(Mode::Probe, &args).unwrap();
        assert_eq!(job.session, None);
        assert_eq!(job.sandbox, sandbox);
        assert_eq!(job.env, ["A=1", "LD_PRELOAD=/x"]);
        assert_eq!(job.argv, ["sh", "-c", "true"]);
        assert_eq!(job.cgroup_procs, [PathBuf::from("/cg/procs")]);
        let mut exec: Vec<OsString> = vec!["-t".into(), "app:1".into()];
        exec.extend(args.iter().cloned());
        let job = Job::parse(Mode::Exec, &exec).unwrap();
        let session = |tty, user: Option<&str>| {
            Some(Session {
                tty,
                user: user.map(str::to_owned),
            })
        };
        assert_eq!(job.session, session(true, Some("app:1")));
        assert_eq!(job.argv, ["sh", "-c", "true"]);
        exec[0] = "-".into();
        exec[1] = "".into();
        assert_eq!(
            Job::parse(Mode::Exec, &exec).unwrap().session,
            session(false, None)
        );
        exec[0] = "tty".into();
        assert!(Job::parse(Mode::Exec, &exec).is_none());
        assert!(Job::parse(Mode::Exec, &args).is_none(), "no TTY USER");
        args.truncate(8);
        assert!(Job::parse(Mode::Probe, &args).is_none());
    }

    #[test]
    fn modes_by_argv0() {
        assert_eq!(Mode::of(OsStr::new("berth-probe")), Some(Mode::Probe));
        assert_eq!(Mode::of(OsStr::new("berth-exec")), Some(Mode::Exec));
        assert_eq!(Mode::of(OsStr::new("berth")), None);
    }
}
