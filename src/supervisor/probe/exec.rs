//! The exec probe: a command run inside a running app's namespaces, root and cgroup.
//!
//! Two processes, because joining a pid namespace only places the children made
//! afterwards in it:
//! - the *runner*: berth's own executable, spawned by the supervisor with
//!   `posix_spawn` (a `clone(CLONE_VM | CLONE_VFORK)` and an exec: the supervisor's
//!   memory is neither copied nor made copy-on-write, which made a fork of it cost
//!   more than the rest of the probe) and started as [`RUNNER_ARGV0`]; it moves into
//!   the app's cgroup, joins its namespaces and root, forks the command, waits for it
//!   and exits with its status ([`runner_main`]);
//! - the *command*, forked by the runner: the first process of the probe inside the
//!   app's pid namespace, with stdin, stdout and stderr on `/dev/null`.
//!
//! The supervisor sees one pid, the runner's, whose exit status is the probe's result.
//! The runner opens everything of the app itself, after checking through a pidfd the
//! supervisor hands it that the app's pid still names the app. Between its fork and
//! the command's exec both only make raw system calls.

use std::ffi::{CString, OsString};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use libc::{c_char, c_int, pid_t};

use crate::image::process::DEFAULT_PATH;
use crate::launch::child::{EXIT_CANNOT_EXEC, EXIT_NOT_FOUND, EXIT_SETUP};
use crate::launch::plan;
use crate::launch::sys::{self as launch_sys, Errno};

use super::{context, from, sys};

/// The runner's exit status after [`kill_probe`]: 128 + SIGKILL, as a shell reports a
/// command killed by SIGKILL.
pub const EXIT_KILLED: i32 = 128 + libc::SIGKILL;

/// `argv[0]` of berth's executable started as an exec probe's runner.
pub const RUNNER_ARGV0: &str = "berth-probe";

/// The runner the supervisor starts: its own executable (also after the file was
/// replaced on disk by an update: the link names the running program's inode).
pub const SELF_EXE: &str = "/proc/self/exe";

/// The namespaces joined, in this order. The user namespace comes last: until then the
/// runner has the supervisor's privileges, enough to join namespaces that the app's
/// user namespace does not own (a `container:` network); after it, enough to enter the
/// app's root.
const NAMESPACES: [(&str, c_int); 7] = [
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("mnt", libc::CLONE_NEWNS),
    ("user", libc::CLONE_NEWUSER),
];

/// An exec probe of one app, prepared once per run of the app: its command,
/// environment and cgroup files as the runner's arguments. [`ExecProbe::spawn`] starts
/// one probe.
///
/// - **Result**: the runner exits with the command's exit status, 128 + the signal
///   that killed it, 127 when the program is not found in `PATH`, 126 when it cannot
///   be executed, 125 when joining the app failed (the app died meanwhile, or a
///   namespace, root, cgroup file or id change was refused). 0 is healthy. The caller
///   reaps it with its other children (SIGCHLD); a probe past its timeout is ended
///   with [`kill_probe`].
/// - **Namespaces**: those of the app's process that differ from the runner's, among
///   cgroup, ipc, uts, net, pid, mount and user (a time namespace is not joined). When
///   the user namespace differs, the command runs as root of it (uid and gid 0, no
///   supplementary groups where the namespace allows `setgroups`; 125 if it maps no
///   uid or gid 0), with every capability there; otherwise with the supervisor's ids
///   and capabilities. No seccomp filter, no capability bounding: the probe is the
///   operator's command.
/// - **Root**: the app's root (`/proc/PID/root`, as `nsenter --root`), also when the
///   mount namespace is shared; the working directory is `/`.
/// - **Cgroup**: the runner writes itself into each of `cgroup_procs` (the app's
///   [`join_files`](crate::cgroup::Group::join_files): `tasks` of each v1
///   hierarchy, or the v2 `cgroup.procs`) before joining
///   anything, so the command is charged to and limited with the app, and a kill of
///   the app's cgroup ends it too.
/// - **Program**: `argv[0]`, looked up in the `PATH` of `env` (else
///   `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`) inside the app's
///   root; `env` is the whole environment (`KEY=value` strings).
/// - **Process group**: the command leads a new session; when it exits (or is killed),
///   the runner kills what is left of its process group (a `cmd &` it started) before
///   reaping it, so a probe leaves nothing behind.
/// - **Parent death**: the command gets SIGKILL when the runner dies, and the runner
///   when the thread that spawned it exits (`PR_SET_PDEATHSIG`).
pub struct ExecProbe {
    runner: CString,
    /// The runner's arguments after its first four: the number of cgroup files, the
    /// files, the command.
    tail: Vec<CString>,
    env: Vec<CString>,
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
        tail.extend(command.argv);
        Ok(ExecProbe {
            runner: path(runner)?,
            tail,
            env: command.env,
        })
    }

    /// Starts one probe in the app whose process is `pid`: the runner's pid, a child
    /// of the caller. Fails when `pid` is not a process id (`InvalidInput`) or names
    /// no process, or when the runner cannot be started.
    pub fn spawn(&self, pid: i32) -> io::Result<i32> {
        if pid <= 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("exec probe: {pid} is not a process id"),
            ));
        }
        let pidfd = match sys::pidfd_open(pid) {
            Ok(fd) => Some(fd),
            // Before Linux 5.3: the runner checks nothing more than the pid.
            Err(Errno(libc::ENOSYS)) => match sys::kill(pid, 0) {
                Ok(()) => None,
                Err(e) => return Err(context(&format!("exec probe: signal 0 to {pid}"), from(e))),
            },
            Err(e) => return Err(context(&format!("exec probe: pidfd_open {pid}"), from(e))),
        };
        let head = [
            c_number(RUNNER_ARGV0),
            c_number(sys::getpid()),
            c_number(pid),
            c_number(if pidfd.is_some() { "3" } else { "-" }),
        ];
        let argv: Vec<*const c_char> = head
            .iter()
            .chain(&self.tail)
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let envp = plan::pointers(&self.env);
        let fd = pidfd.as_ref().map(AsRawFd::as_raw_fd);
        // SIGTERM (kill_probe) and SIGCHLD blocked from the start: the runner takes
        // them synchronously (`supervise`).
        sys::spawn(
            &self.runner,
            &argv,
            &envp,
            fd,
            &[libc::SIGTERM, libc::SIGCHLD],
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

/// Starts `argv` inside the namespaces, root and cgroup of the running process `pid`
/// (the app's), through the runner program `runner`: [`ExecProbe::new`] and
/// [`ExecProbe::spawn`] in one.
pub fn spawn_exec(
    runner: &Path,
    pid: i32,
    argv: &[String],
    env: &[String],
    cgroup_procs: &[PathBuf],
) -> io::Result<i32> {
    ExecProbe::new(runner, argv, env, cgroup_procs)?.spawn(pid)
}

/// A number (or any `Display`) as a C string; cannot hold a NUL.
fn c_number(n: impl std::fmt::Display) -> CString {
    CString::new(n.to_string()).unwrap_or_default()
}

/// The runner's whole life, from its `main` when started as [`RUNNER_ARGV0`] with
/// `args` (those after `argv[0]`): `SUPERVISOR APP PIDFD N CGROUP_PROCS... COMMAND...`
/// and the command's environment as its own. Exits with the probe's result.
pub fn runner_main(args: Vec<OsString>) -> ! {
    let Some(job) = Job::parse(&args) else {
        launch_sys::exit(EXIT_SETUP);
    };
    let env: Vec<String> = std::env::vars_os()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    let (Ok(command), Ok(app)) = (
        Command::new(&job.argv, &env),
        App::open(job.app, &job.cgroup_procs),
    ) else {
        launch_sys::exit(EXIT_SETUP);
    };
    // /proc/APP was opened above: if the app is still there now, it was then, so what
    // was opened is the app's and not a process that got its pid since.
    if let Some(fd) = job.pidfd {
        if sys::pidfd_alive(fd) != Ok(true) {
            launch_sys::exit(EXIT_SETUP);
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
        keep: &keep,
        supervisor: job.supervisor,
    }
    .run()
}

/// The runner's arguments.
struct Job {
    supervisor: pid_t,
    app: pid_t,
    pidfd: Option<RawFd>,
    cgroup_procs: Vec<PathBuf>,
    argv: Vec<String>,
}

impl Job {
    fn parse(args: &[OsString]) -> Option<Job> {
        let text = |a: &OsString| a.to_str().map(str::to_owned);
        let mut it = args.iter();
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
        let argv = it.map(text).collect::<Option<Vec<_>>>()?;
        Some(Job {
            supervisor,
            app,
            pidfd,
            cgroup_procs,
            argv,
        })
    }
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
    sys::kill(pid, libc::SIGTERM).map_err(|e| context(&format!("signal exec probe {pid}"), from(e)))
}

/// The command, as C strings.
struct Command {
    /// Where the program may be (`PATH` lookup as `execvp`).
    candidates: Vec<CString>,
    argv: Vec<CString>,
    env: Vec<CString>,
}

impl Command {
    fn new(argv: &[String], env: &[String]) -> io::Result<Command> {
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

/// The app's side, opened by the supervisor.
struct App {
    /// The namespaces to join, in the order of [`NAMESPACES`].
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
            move |e: Errno| context(&what, from(e))
        };
        // Everything of the app is opened relative to one descriptor of its /proc
        // directory: if the app dies and its pid is reused, these opens fail instead
        // of reaching the new process.
        let dir = File::open(format!("/proc/{pid}"))
            .map_err(|e| context(&format!("exec probe: open /proc/{pid}"), e))?;
        let mut namespaces = Vec::new();
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
                sys::openat(dir.as_fd(), &path, libc::O_RDONLY)
                    .map_err(opened(&format!("/proc/{pid}/ns/{name}")))?,
            );
            if !same_file(&own, &theirs)? {
                namespaces.push((OwnedFd::from(theirs), flag));
            }
        }
        let root = sys::openat(dir.as_fd(), c"root", libc::O_PATH | libc::O_DIRECTORY)
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

    fn joins_user_namespace(&self) -> bool {
        self.namespaces
            .iter()
            .any(|&(_, flag)| flag == libc::CLONE_NEWUSER)
    }
}

fn open_write(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| context(&format!("exec probe: open {}", path.display()), e))
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
    /// The descriptors the runner keeps from the supervisor's (sorted).
    keep: &'a [RawFd],
    supervisor: pid_t,
}

impl Runner<'_> {
    /// The runner's whole life: join the app, fork the command, wait for it.
    fn run(&self) -> ! {
        if self.join().is_err() {
            launch_sys::exit(EXIT_SETUP);
        }
        // Read before the fork: the pid the command must see as its parent's.
        let expected_parent = if self.app.joins_pid_namespace() {
            // The runner is outside the command's pid namespace.
            0
        } else {
            sys::getpid()
        };
        // SAFETY: the runner is single-threaded (a fork's child); the command only
        // makes raw calls until it execs or exits.
        match unsafe { sys::fork() } {
            Ok(0) => self.command(expected_parent),
            Ok(command) => launch_sys::exit(supervise(command)),
            Err(_) => launch_sys::exit(EXIT_SETUP),
        }
    }

    /// Into the app's cgroup, namespaces and root, in that order: the cgroup first,
    /// while `cgroup.procs` is still reached from the supervisor's cgroup namespace.
    fn join(&self) -> Result<(), Errno> {
        let devnull = self.app.devnull.as_raw_fd();
        for fd in 0..3 {
            launch_sys::dup_to(devnull, fd)?;
        }
        // Copies of the supervisor's descriptors must not live on here: an epoll
        // registration lasts while any copy of its file is open, a pipe's reader
        // sees end-of-file only when every copy of its writer is closed.
        sys::close_all_except(self.keep);
        // Default dispositions, and SIGTERM (kill_probe) and SIGCHLD (the command's
        // end) blocked, to be taken in `supervise`.
        launch_sys::reset_signals()?;
        sys::block_only(&[libc::SIGTERM, libc::SIGCHLD])?;
        for cgroup in &self.app.cgroups {
            // "0" is the writer, the runner's only thread: no pid to format without
            // allocating, and on v1 no global lock for the kernel to take.
            launch_sys::write_all(cgroup.as_raw_fd(), b"0")?;
        }
        for (fd, flag) in &self.app.namespaces {
            launch_sys::setns(fd.as_raw_fd(), *flag)?;
        }
        // Joining the mount namespace moved the root to the namespace's; this is the
        // app's own root (the same after pivot_root, also right after a chroot or with
        // a shared mount namespace).
        launch_sys::fchdir(self.app.root.as_raw_fd())?;
        launch_sys::chroot(c".")?;
        if self.app.joins_user_namespace() {
            sys::become_namespace_root()?;
        }
        // After the id changes, which clear it. If the supervisor died before, stop.
        sys::set_parent_death_signal(libc::SIGKILL)?;
        if sys::getppid() != self.supervisor {
            return Err(Errno(libc::ESRCH));
        }
        sys::close_all_except(&[0, 1, 2]);
        Ok(())
    }

    /// The command's life: tie it to the runner, a session of its own, clean signals,
    /// exec.
    fn command(&self, expected_parent: pid_t) -> ! {
        // If the runner died before the parent-death signal was set, stop.
        if sys::set_parent_death_signal(libc::SIGKILL).is_err()
            || sys::getppid() != expected_parent
            || sys::setsid().is_err()
            || launch_sys::reset_signals().is_err()
        {
            launch_sys::exit(EXIT_SETUP);
        }
        let mut failure = EXIT_NOT_FOUND;
        for candidate in &self.command.candidates {
            match launch_sys::execve(candidate, self.argv, self.envp) {
                Errno(libc::ENOENT | libc::ENOTDIR) => {}
                Errno(libc::EACCES) => failure = EXIT_CANNOT_EXEC,
                _ => launch_sys::exit(EXIT_CANNOT_EXEC),
            }
        }
        launch_sys::exit(failure)
    }
}

/// The runner waits for the command, or for [`kill_probe`]'s SIGTERM: the command's exit
/// status, once it and its process group are gone.
fn supervise(command: pid_t) -> c_int {
    loop {
        if let Ok(libc::SIGTERM) = sys::wait_signal(&[libc::SIGTERM, libc::SIGCHLD]) {
            // The group, and the command itself in case it has no group yet (the
            // signal came before its setsid).
            let _ = sys::kill(-command, libc::SIGKILL);
            let _ = sys::kill(command, libc::SIGKILL);
        }
        match sys::has_exited(command) {
            Ok(true) => break,
            Ok(false) => {}
            Err(_) => return EXIT_SETUP,
        }
    }
    // The command's zombie still holds its pid, so the group number names its group
    // and nothing else: whatever it left running there goes too.
    let _ = sys::kill(-command, libc::SIGKILL);
    match sys::reap(command) {
        Ok(status) => exit_code(status),
        Err(_) => EXIT_SETUP,
    }
}

/// A wait status as a shell reports it: the exit code, or 128 + the signal.
fn exit_code(status: c_int) -> c_int {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        EXIT_SETUP
    }
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
    fn exit_codes_follow_the_shell() {
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(libc::SIGKILL), EXIT_KILLED);
        assert_eq!(exit_code(libc::SIGTERM), 143);
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
