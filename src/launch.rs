//! Launch: start an app's process in its own namespaces, root filesystem and
//! privileges, as its validated manifest says.
//!
//! The parent side, in order ([`Launcher::spawn`]):
//! 1. work out the [`plan`] (everything the child needs, allocated now);
//! 2. prepare the host side: the overlay's upper/work directories, volume
//!    directories, the generated `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`;
//! 3. `clone` with only the pid and user namespace flags (from this, the single
//!    supervisor thread): the child makes its other namespaces itself, on its own
//!    core, once it is in its cgroup;
//! 4. from outside: write the uid/gid maps, idmap the image (user namespace), move
//!    the child into its cgroup ([`Cgroup`], the seam the cgroup module fills);
//! 5. send "go" over the [`channel`]; the child runs [`child::run`], a linear setup
//!    that ends in `execve`.
//!
//! [`Launching::finish`] then reads the channel: end-of-file means the exec worked;
//! otherwise the child says which step failed with which errno, and the error reads
//! `gateway: launch failed at pivot_root: Invalid argument (os error 22)`.

mod binds;
pub mod channel;
pub mod child;
pub mod devices;
mod host;
pub use host::{ORIGIN_FILE, origin};
pub mod plan;
pub mod reaper;
pub mod rootfs;
pub mod sandbox;

use std::fmt;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::caps;
use crate::image::ImageDefaults;
use crate::manifest::Manifest;
use crate::sys;
use channel::{Report, Step};
use plan::Dirs;

/// The cgroup seam: the parent moves the child into the app's cgroup before it is
/// released, so nothing it does is charged elsewhere.
pub trait Cgroup {
    fn join(&mut self, pid: i32) -> io::Result<()>;

    /// A cgroup v2 directory descriptor to create the child in directly
    /// (`clone3(CLONE_INTO_CGROUP)`, Linux 5.7), so it never runs a moment outside
    /// it; `join` is then not called. Where the kernel lacks it, `join` is used.
    fn clone_into(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// cgroup v1: each hierarchy's `tasks` file, open for writing, for the child to
    /// join by itself (it writes `0`, its only thread) before it does anything else;
    /// `join` is then not called. Moving a pid, or a whole process, makes the kernel
    /// take a global lock for writing, and that waits for an RCU grace period (1 to
    /// 20 ms here) unless another move came just before; a thread moving itself
    /// does not take it.
    fn tasks(&self) -> io::Result<Vec<OwnedFd>> {
        Ok(Vec::new())
    }
}

/// No cgroup of its own: the app stays in the supervisor's.
pub struct NoCgroup;

impl Cgroup for NoCgroup {
    fn join(&mut self, _pid: i32) -> io::Result<()> {
        Ok(())
    }
}

/// What to launch.
pub struct App<'a> {
    pub manifest: &'a Manifest,
    /// The unpacked image (`.../rootfs`).
    pub image_root: &'a Path,
    pub defaults: &'a ImageDefaults,
    /// `network.mode: container:<app>`: that app's network namespace.
    pub join_net: Option<BorrowedFd<'a>>,
    /// Extra `/etc/hosts` lines (address, name).
    pub hosts: &'a [(String, String)],
}

/// A failed launch.
#[derive(Debug)]
pub enum LaunchError {
    /// The manifest and image do not make a launchable process.
    Plan { app: String, message: String },
    /// Something on the host side failed (before or while releasing the child).
    Host {
        app: String,
        what: String,
        source: io::Error,
    },
    /// The child failed at `step` and exited with `status`.
    Child {
        app: String,
        step: String,
        source: io::Error,
        status: i32,
    },
}

impl LaunchError {
    /// The exit status of a child that failed (125 setup, 126 cannot exec, 127 not
    /// found), if it got that far.
    pub fn status(&self) -> Option<i32> {
        match self {
            LaunchError::Child { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            LaunchError::Plan { message, .. } => f.write_str(message),
            LaunchError::Host { app, what, source } => {
                write!(f, "{app}: launch failed: {what}: {source}")
            }
            LaunchError::Child {
                app, step, source, ..
            } => write!(f, "{app}: launch failed at {step}: {source}"),
        }
    }
}

impl std::error::Error for LaunchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LaunchError::Plan { .. } => None,
            LaunchError::Host { source, .. } | LaunchError::Child { source, .. } => Some(source),
        }
    }
}

/// Launches apps; holds what is worked out once per supervisor.
pub struct Launcher {
    state_dir: PathBuf,
    run_dir: PathBuf,
    /// What every plan takes from the host, looked up once.
    host: plan::Host,
    /// The host's `/etc/resolv.conf`, read again only when it changed.
    resolv: host::Resolv,
    openat2: bool,
    move_root: bool,
    reaper_exe: PathBuf,
    reaper: Option<OwnedFd>,
    own_net: Option<OwnedFd>,
    /// The host paths a bind source may not reach (checked again on the opened
    /// source, see `binds.rs`).
    reserved: crate::manifest::Reserved,
}

impl Launcher {
    pub fn new(state_dir: &Path, run_dir: &Path) -> Launcher {
        let probe = sys::fs::openat2(libc::AT_FDCWD, c"/", libc::O_PATH, 0);
        Launcher {
            state_dir: state_dir.to_path_buf(),
            run_dir: run_dir.to_path_buf(),
            host: plan::Host::of(caps::known(Path::new("/proc"))),
            resolv: host::Resolv::default(),
            openat2: probe.is_ok(),
            move_root: false,
            reaper_exe: PathBuf::from("/proc/self/exe"),
            reaper: None,
            own_net: None,
            reserved: crate::manifest::Reserved::system(),
        }
    }

    /// The berth executable whose sealed copy is the `init: true` reaper (default:
    /// this process's own; tests, which are not berth, name the built binary).
    pub fn with_reaper_exe(mut self, exe: &Path) -> Launcher {
        self.reaper_exe = exe.to_path_buf();
        self
    }

    /// The host paths bind sources may not reach besides `/proc` and `/sys`:
    /// berth's own directories (the supervisor passes its configuration's).
    pub fn with_reserved(mut self, reserved: crate::manifest::Reserved) -> Launcher {
        self.reserved = reserved;
        self
    }

    /// As on a kernel without `openat2` (tests of the fallback walk).
    pub fn without_openat2(mut self) -> Launcher {
        self.openat2 = false;
        self
    }

    /// Enters app roots the way it is done from an initramfs (move the new root over
    /// `/` and chroot), as a test of that path on an ordinary root.
    pub fn with_move_root(mut self) -> Launcher {
        self.move_root = true;
        self
    }

    /// Starts `app`: returns once the child is released; [`Launching::finish`] tells
    /// whether it reached exec.
    pub fn spawn(&mut self, app: &App, cgroup: &mut dyn Cgroup) -> Result<Launching, LaunchError> {
        let name = app.manifest.name.as_str().to_owned();
        let host = |what: &str| {
            let what = what.to_owned();
            let app = name.clone();
            move |source| LaunchError::Host { app, what, source }
        };
        let dirs = Dirs::new(&self.state_dir, &self.run_dir, &name);
        let mut plan = plan::build(
            app.manifest,
            app.defaults,
            app.image_root,
            &dirs,
            &self.host,
        )
        .map_err(|message| LaunchError::Plan {
            app: name.clone(),
            message,
        })?;
        binds::check_sources(&name, &mut plan, &self.reserved).map_err(|message| {
            LaunchError::Plan {
                app: name.clone(),
                message,
            }
        })?;
        let resolv = match app.manifest.network.mode {
            crate::manifest::types::NetworkMode::None => "",
            _ => self.resolv.current(Path::new("/etc/resolv.conf")),
        };
        host::prepare_host(app, &dirs, resolv).map_err(|(what, e)| host(&what)(e))?;
        if plan.init && self.reaper.is_none() {
            let copy = reaper::sealed_copy(&self.reaper_exe).map_err(host(&format!(
                "copy {} for the init reaper",
                self.reaper_exe.display()
            )))?;
            self.reaper = Some(copy);
        }
        if app.join_net.is_some() && self.own_net.is_none() {
            let own =
                fs::File::open("/proc/self/ns/net").map_err(host("open /proc/self/ns/net"))?;
            self.own_net = Some(own.into());
        }

        let stdin = fs::File::open("/dev/null").map_err(host("open /dev/null"))?;
        let (out_r, out_w) = pipe().map_err(host("create the stdout pipe"))?;
        let (err_r, err_w) = pipe().map_err(host("create the stderr pipe"))?;
        let (parent_end, child_end) =
            channel::pair().map_err(host("create the launch socket pair"))?;
        let tasks = cgroup
            .tasks()
            .map_err(host("open the cgroup's tasks files"))?;
        let tasks_fds: Vec<RawFd> = tasks.iter().map(AsRawFd::as_raw_fd).collect();
        let argv = plan::pointers(&plan.exec.argv);
        let envp = plan::pointers(&plan.exec.env);
        let reaper_args = reaper::argv(child_end.as_raw_fd(), &plan.exec.argv);
        let reaper_argv = plan::pointers(&reaper_args);
        let inputs = child::Inputs {
            plan: &plan,
            channel: child_end.as_raw_fd(),
            stdio: [stdin.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
            argv: &argv,
            envp: &envp,
            reaper: match (&self.reaper, plan.init) {
                (Some(fd), true) => Some((fd.as_raw_fd(), reaper_argv.as_slice())),
                _ => None,
            },
            openat2: self.openat2,
            move_root: self.move_root,
            cgroup_tasks: &tasks_fds,
        };

        // `container:<app>`: clone from inside the other app's network namespace
        // (a child in a new user namespace could not join it itself), then return.
        if let Some(net) = app.join_net {
            sys::ns::setns(net.as_fd(), libc::CLONE_NEWNET)
                .map_err(|e| host("join the network namespace")(from(e)))?;
        }
        let into = cgroup.clone_into();
        // SAFETY: (both clones) the supervisor is single-threaded, and the child runs
        // only `child::run`, which allocates nothing, takes no lock and makes only
        // `sys` calls until it execs or exits.
        let clone_into = |fd| unsafe { sys::process::clone_into(plan.clone_flags, fd) };
        let (cloned, joined) = match into.map(clone_into) {
            Some(Err(sys::Error {
                errno: libc::ENOSYS | libc::E2BIG | libc::EINVAL,
                ..
            }))
            | None => {
                // SAFETY: as above.
                (unsafe { sys::process::clone(plan.clone_flags) }, false)
            }
            Some(result) => (result, true),
        };
        if cloned == Ok(0) {
            child::run(&inputs);
        }
        if let (Some(_), Some(own)) = (app.join_net, &self.own_net) {
            if let Err(e) = sys::ns::setns(own.as_fd(), libc::CLONE_NEWNET) {
                // Still in the other app's namespace: nothing more may be launched.
                if let Ok(pid) = cloned {
                    kill_and_reap(pid);
                }
                return Err(host("return to berth's network namespace")(from(e)));
            }
        }
        let pid = cloned.map_err(|e| host("clone")(from(e)))?;
        let joined = joined || !tasks.is_empty();
        drop((stdin, out_w, err_w, child_end, tasks));

        let mut release = || -> Result<(), LaunchError> {
            let lower = if plan.user_ns {
                Some(host::idmap(pid, app).map_err(|(what, e)| host(&what)(e))?)
            } else {
                None
            };
            if !joined {
                cgroup
                    .join(pid)
                    .map_err(host(&format!("move pid {pid} into its cgroup")))?;
            }
            channel::send_go(&parent_end, lower.as_ref().map(AsFd::as_fd))
                .map_err(host("release the child"))
        };
        if let Err(e) = release() {
            kill_and_reap(pid);
            return Err(e);
        }
        Ok(Launching {
            app: name,
            pid,
            channel: parent_end,
            stdout: out_r,
            stderr: err_r,
            steps: plan.ops.iter().map(rootfs::Op::describe).collect(),
            program: plan.process.argv.first().cloned().unwrap_or_default(),
            sandbox: plan.sandbox.clone(),
            env: plan.process.env.clone(),
        })
    }
}

/// A child released and on its way to exec.
pub struct Launching {
    pub app: String,
    pub pid: i32,
    channel: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    steps: Vec<String>,
    program: String,
    sandbox: sandbox::Sandbox,
    env: Vec<String>,
}

/// A child that exec'd its program.
#[derive(Debug)]
pub struct Running {
    pub pid: i32,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// The sandbox the app's process entered: every process berth later starts
    /// inside the app (an exec probe) enters the same.
    pub sandbox: sandbox::Sandbox,
    /// The app's environment (`KEY=value`), for those processes too.
    pub env: Vec<String>,
}

impl Launching {
    /// The channel, readable when the child exec'd (end-of-file) or failed (a report):
    /// for an event loop that waits before calling [`finish`](Self::finish).
    pub fn channel(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.channel.as_fd()
    }

    /// Waits for the outcome. A child that failed is reaped here, and its exit status
    /// is in the error.
    pub fn finish(self) -> Result<Running, LaunchError> {
        let pid = self.pid;
        match self.settle() {
            Ok(running) => Ok(running),
            Err(LaunchError::Child {
                app,
                step,
                source,
                status,
            }) => Err(LaunchError::Child {
                status: reap(pid).unwrap_or(status),
                app,
                step,
                source,
            }),
            Err(e) => {
                reap(pid);
                Err(e)
            }
        }
    }

    /// The outcome, for an event loop, once the channel is readable: like
    /// [`finish`](Self::finish) but it never waits. A child that failed is left for the
    /// caller to reap (its status in the error is the one it exits with); one whose
    /// report cannot be read is killed, and left to reap too.
    pub fn settle(self) -> Result<Running, LaunchError> {
        let report = match channel::read_report(&self.channel) {
            Ok(None) => {
                return Ok(Running {
                    pid: self.pid,
                    stdout: self.stdout,
                    stderr: self.stderr,
                    sandbox: self.sandbox,
                    env: self.env,
                });
            }
            Ok(Some(report)) => report,
            Err(source) => {
                if let Err(e) = sys::process::kill(self.pid, libc::SIGKILL) {
                    log::debug!("kill launch child {}: {e}", self.pid);
                }
                return Err(LaunchError::Host {
                    app: self.app,
                    what: "read the launch report".into(),
                    source,
                });
            }
        };
        Err(LaunchError::Child {
            step: self.describe(report),
            app: self.app,
            source: io::Error::from_raw_os_error(report.errno),
            status: child::exit_status(report.step, report.errno),
        })
    }

    fn describe(&self, report: Report) -> String {
        match report.step {
            Step::Mount(n) => usize::try_from(n)
                .ok()
                .and_then(|n| self.steps.get(n))
                .cloned()
                .unwrap_or_else(|| report.step.to_string()),
            Step::Exec if self.program.contains('/') => format!("exec {:?}", self.program),
            Step::Exec => format!("exec {:?} (searched the app's PATH)", self.program),
            step => step.to_string(),
        }
    }
}

fn from(e: sys::Error) -> io::Error {
    e.into()
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(sys::fd::pipe()?)
}

/// Waits for `pid`; its exit code, or 128 + the signal that killed it.
fn reap(pid: i32) -> Option<i32> {
    sys::process::wait(pid)
        .ok()
        .and_then(sys::process::exit_code)
}

fn kill_and_reap(pid: i32) {
    // `pid` is our own child, not yet reaped: the signal cannot fail.
    let _ = sys::process::kill(pid, libc::SIGKILL);
    reap(pid);
}

#[cfg(test)]
mod tests;
