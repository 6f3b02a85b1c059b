//! cgroups: every app gets its own, its `resources:` are enforced by the kernel, an
//! OOM is seen without polling, usage is measured, and stopping an app kills every
//! process in it.
//!
//! Detection ([`detect`]) reads the mount table and `/proc/self/cgroup` once; then one
//! [`Manager`] is chosen: [`v1::V1`] (v1 or hybrid: the v1 controllers) or [`v2::V2`]
//! (only the unified hierarchy). Both put the apps under berth's own cgroup, in
//! `cgroup_root` (default `berth`): `<own>/berth/<app>`, so berth works as PID 1 at the
//! root of the hierarchy and as a service inside someone else's cgroup. Every function
//! that touches files takes its directory as a parameter, so unit tests run against
//! temp-dir fixtures of both layouts; the real paths come from [`Manager::system`].

pub mod detect;
pub mod devices;
pub mod settings;
pub mod v1;
pub mod v2;

use std::fmt;
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::manifest::model::Resources;
use crate::sys;
pub use detect::{Hierarchy, Kind};
pub use settings::{Offer, Setting, Version};

/// A cgroup operation that failed: what was attempted on which file.
#[derive(Debug)]
pub enum CgroupError {
    /// The kernel cannot enforce what the manifest asks for.
    Refused(String),
    Io {
        what: String,
        source: io::Error,
    },
}

impl fmt::Display for CgroupError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            CgroupError::Refused(message) => f.write_str(message),
            CgroupError::Io { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for CgroupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CgroupError::Refused(_) => None,
            CgroupError::Io { source, .. } => Some(source),
        }
    }
}

pub type Result<T> = std::result::Result<T, CgroupError>;

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> CgroupError {
    let what = what.into();
    move |source| CgroupError::Io { what, source }
}

/// Writes `value` to `dir/file`.
pub fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    fs::write(&path, value).map_err(io_err(format!("write {value:?} to {}", path.display())))
}

/// Reads `dir/file`.
pub fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    fs::read_to_string(&path).map_err(io_err(format!("read {}", path.display())))
}

/// The number in `dir/file`, or `None` when it is absent or not a number.
fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    fs::read_to_string(dir.join(file)).ok()?.trim().parse().ok()
}

/// The value of `key` in a flat-keyed file (`memory.events`, `cpu.stat`,
/// `memory.oom_control`: `key value` lines).
fn keyed(dir: &Path, file: &str, key: &str) -> Option<u64> {
    let text = fs::read_to_string(dir.join(file)).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        if k == key {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}

/// Creates `dir` (and its parents); an existing one is fine.
fn mkdir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_err(format!("create cgroup {}", dir.display())))
}

/// The pids in `dir/cgroup.procs`.
pub fn procs(dir: &Path) -> Result<Vec<i32>> {
    Ok(read(dir, "cgroup.procs")?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

/// SIGKILL to each of `pids` (ESRCH, already gone, is fine).
fn kill_each(pids: &[i32]) {
    for &pid in pids {
        // A pid that exited meanwhile gives ESRCH: nothing left to kill.
        let _ = sys::process::kill(pid, libc::SIGKILL);
    }
}

/// Removes the cgroup directory `dir` (it must have no processes).
fn rmdir(dir: &Path) -> Result<()> {
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CgroupError::Io {
            what: format!("remove cgroup {}", dir.display()),
            source: e,
        }),
    }
}

/// What an app's cgroup has used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub memory: Option<u64>,
    /// Highest memory use since the cgroup was made (v2: Linux 5.19).
    pub memory_peak: Option<u64>,
    pub cpu_ns: Option<u64>,
    pub pids: Option<u64>,
    pub oom_kills: u64,
}

/// A descriptor that becomes readable when the kernel reports an OOM in the app's
/// cgroup (v2: inotify on `memory.events`; v1: an eventfd registered on
/// `memory.oom_control`). For the event loop; [`OomWatch::drain`] consumes the event,
/// then [`Group::usage`] tells the count.
pub struct OomWatch {
    fd: OwnedFd,
    /// v1: the `memory.oom_control` descriptor the registration refers to.
    _control: Option<fs::File>,
}

impl OomWatch {
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    /// Reads what is pending (non-blocking): true if there was an event.
    pub fn drain(&self) -> bool {
        let mut buf = [0u8; 512];
        let mut any = false;
        loop {
            // Nothing more to read (EAGAIN), or end of file: drained.
            if !matches!(sys::fd::read(self.fd.as_fd(), &mut buf), Ok(1..)) {
                return any;
            }
            any = true;
        }
    }
}

/// An app's cgroup, in one hierarchy (v2) or several (v1).
pub trait Group: crate::launch::Cgroup {
    /// The directories it consists of (for messages and tests).
    fn dirs(&self) -> Vec<PathBuf>;
    /// The files a single-threaded process writes `0` to, to join it: v1's `tasks`
    /// of each hierarchy (a thread moving itself, which spares the kernel's global
    /// lock, see [`crate::launch::Cgroup::tasks`]), v2's `cgroup.procs`.
    fn join_files(&self) -> Vec<PathBuf>;
    /// The processes in it.
    fn procs(&self) -> Result<Vec<i32>>;
    /// Kills every process in it: v2 `cgroup.kill`, otherwise freeze, SIGKILL each,
    /// thaw (always thaw). Returns once every listed process was sent SIGKILL; they
    /// are gone when they have been reaped (or, in the app's pid namespace, when its
    /// init has exited).
    fn kill_all(&self) -> Result<()>;
    /// Removes it (it must be empty).
    fn remove(&self) -> Result<()>;
    fn usage(&self) -> Usage;
    /// The OOM kills counted so far ([`Usage::oom_kills`]), reading that one file
    /// only: what the supervisor needs right after a launch, where the whole
    /// [`usage`](Group::usage) reads five.
    fn oom_kills(&self) -> u64 {
        self.usage().oom_kills
    }
    fn oom_watch(&self) -> Result<OomWatch>;
}

/// The manager: creates app cgroups the one way this kernel offers.
pub trait Manager {
    fn version(&self) -> Version;
    /// What the kernel offers (for [`settings::settings`]).
    fn offer(&self) -> &Offer;
    /// Creates the cgroup of `app` with `settings` written in order and access to
    /// the devices of `devices` only (refused when this kernel cannot confine the
    /// app's devices). A leftover of the same name (a berth that died) is emptied and
    /// replaced.
    fn create(
        &self,
        app: &str,
        settings: &[Setting],
        devices: &[devices::Rule],
    ) -> Result<Box<dyn Group>>;
    /// The app cgroups found under berth's root (leftovers at start).
    fn existing(&self) -> Result<Vec<(String, Box<dyn Group>)>>;
    /// berth's root directories (one per hierarchy on v1).
    fn roots(&self) -> Vec<PathBuf>;
}

/// Detects the system's layout and returns its manager, with `root` (the config's
/// `cgroup_root`) under berth's own cgroup.
pub fn system(root: &str) -> Result<Box<dyn Manager>> {
    system_with(root, crate::config::CgroupMode::Auto)
}

/// As [`system`], with the config's `cgroup:` choice: `v2` uses the unified hierarchy
/// also on a hybrid system, `v1` refuses a system without v1 controllers.
pub fn system_with(root: &str, mode: crate::config::CgroupMode) -> Result<Box<dyn Manager>> {
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").map_err(io_err("read /proc/self/mountinfo"))?;
    let own = fs::read_to_string("/proc/self/cgroup").map_err(io_err("read /proc/self/cgroup"))?;
    let read = |p: &Path| fs::read_to_string(p);
    let mut hierarchy = detect::detect(&mountinfo, &own, &read).map_err(CgroupError::Refused)?;
    hierarchy.kind = forced(hierarchy.kind, mode, hierarchy.v2.is_some())?;
    manager(&hierarchy, root)
}

/// The kind to use under `mode`.
pub fn forced(detected: Kind, mode: crate::config::CgroupMode, has_v2: bool) -> Result<Kind> {
    use crate::config::CgroupMode;
    match (mode, detected) {
        (CgroupMode::Auto, kind) => Ok(kind),
        (CgroupMode::V2, _) if has_v2 => Ok(Kind::V2),
        (CgroupMode::V2, _) => Err(CgroupError::Refused(
            "cgroup: v2 is set, but no cgroup2 hierarchy is mounted".into(),
        )),
        (CgroupMode::V1, Kind::V1 | Kind::Hybrid) => Ok(Kind::V1),
        (CgroupMode::V1, Kind::V2) => Err(CgroupError::Refused(
            "cgroup: v1 is set, but only the cgroup2 hierarchy is mounted".into(),
        )),
    }
}

/// The manager for `hierarchy`.
pub fn manager(hierarchy: &Hierarchy, root: &str) -> Result<Box<dyn Manager>> {
    match hierarchy.kind {
        Kind::V1 | Kind::Hybrid => Ok(Box::new(v1::V1::new(&hierarchy.v1, root)?)),
        Kind::V2 => {
            let (own, _) = hierarchy
                .v2
                .as_ref()
                .ok_or_else(|| CgroupError::Refused("no cgroup2 hierarchy".into()))?;
            Ok(Box::new(v2::V2::new(own, root)?))
        }
    }
}

/// Creates the cgroup of an app with `resources` and the standard devices only,
/// refusing what the kernel cannot enforce.
pub fn create(manager: &dyn Manager, app: &str, resources: &Resources) -> Result<Box<dyn Group>> {
    create_confined(
        manager,
        app,
        &Confinement {
            resources,
            devices: &[],
            default_pids: None,
        },
    )
}

/// What an app's cgroup enforces.
#[derive(Debug, Clone, Copy)]
pub struct Confinement<'a> {
    /// The manifest's `resources:`.
    pub resources: &'a Resources,
    /// The rules of the manifest's `devices:` (the standard set is always added).
    pub devices: &'a [devices::Rule],
    /// berth.yaml's `default_pids`: the pids limit where `resources.pids` is unset.
    pub default_pids: Option<crate::manifest::model::Count>,
}

/// Creates the cgroup of an app confined by `c`, refusing what the kernel cannot
/// enforce.
pub fn create_confined(
    manager: &dyn Manager,
    app: &str,
    c: &Confinement,
) -> Result<Box<dyn Group>> {
    let mut settings = settings::settings(app, manager.version(), c.resources, manager.offer())
        .map_err(CgroupError::Refused)?;
    settings.extend(settings::default_pids(
        c.resources,
        c.default_pids,
        manager.offer(),
    ));
    manager.create(app, &settings, &devices::rules(c.devices))
}

/// Kills what is left in `group`, waits (up to `timeout_ms`) until its processes have
/// exited, and removes it: for the leftovers of a berth that died, whose processes are
/// not berth's children. Waits on pidfds (Linux 5.3), not by polling.
pub fn clean(group: &dyn Group, timeout_ms: i32) -> Result<()> {
    for _ in 0..8 {
        group.kill_all()?;
        let pids = group.procs()?;
        if pids.is_empty() {
            break;
        }
        // Where pidfds are missing (before Linux 5.3) the next round's kill_all and
        // procs take their place.
        let owned: Vec<_> = pids
            .into_iter()
            .filter_map(|pid| sys::process::pidfd_open(pid).ok())
            .collect();
        for fd in &owned {
            // Gone, not gone within the timeout, or EINTR: the next round checks
            // `procs` again either way.
            let _ = sys::process::wait_readable(fd.as_fd(), timeout_ms);
        }
        drop(owned);
    }
    group.remove()
}

/// The exit reason of an app, as berth reports it: `exited with status 3`, `killed by
/// SIGSEGV`, or, when its cgroup counted a new OOM kill, `killed by the kernel: out of
/// memory (limit 64M)`.
pub fn exit_reason(
    status: i32,
    oom_killed: bool,
    limit: Option<crate::manifest::units::Size>,
) -> String {
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        if oom_killed && signal == libc::SIGKILL {
            return match limit {
                Some(limit) => format!("killed by the kernel: out of memory (limit {limit})"),
                None => "killed by the kernel: out of memory".to_owned(),
            };
        }
        return format!("killed by {}", signal_name(signal));
    }
    format!("exited with status {}", libc::WEXITSTATUS(status))
}

/// `SIGSEGV` for 11, `signal 40` for a number without a name.
pub fn signal_name(signal: i32) -> String {
    const NAMES: [(i32, &str); 22] = [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGTRAP, "SIGTRAP"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGXCPU, "SIGXCPU"),
        (libc::SIGXFSZ, "SIGXFSZ"),
        (libc::SIGVTALRM, "SIGVTALRM"),
        (libc::SIGPROF, "SIGPROF"),
        (libc::SIGSYS, "SIGSYS"),
        (libc::SIGPWR, "SIGPWR"),
        (libc::SIGWINCH, "SIGWINCH"),
    ];
    NAMES.iter().find(|(n, _)| *n == signal).map_or_else(
        || format!("signal {signal}"),
        |(_, name)| (*name).to_owned(),
    )
}

#[cfg(test)]
mod tests;
