//! PID 1 duties: what berth does when it is the init of the device (or of a pid
//! namespace, which is how the tests run it).
//!
//! At start ([`boot`]): mount what is missing (/proc, /sys, /dev as devtmpfs,
//! /dev/pts, /dev/shm, /run, and the cgroup filesystem: cgroup2 at /sys/fs/cgroup when
//! the kernel has it, else the v1 hierarchies under a tmpfs there), stdin from
//! /dev/null, the host name from the global config, loopback up, and Ctrl-Alt-Del
//! turned into SIGINT for berth.
//!
//! Signals, as busybox init: SIGTERM and SIGINT (Ctrl-Alt-Del) reboot, SIGUSR2 powers
//! off, SIGUSR1 halts. The supervisor stops every app in reverse dependency order with
//! their timeouts, then [`finish`] kills what is left, syncs, unmounts (or remounts
//! read-only) what berth mounted and calls reboot(2). PID 1 never returns from main.

use std::ffi::{CString, NulError};
use std::fmt;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;

use crate::config::Config;
use crate::sys;
use crate::sys::power::Reboot;

/// What the device does once every app is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Reboot,
    PowerOff,
    Halt,
}

impl Action {
    /// The action a signal to PID 1 asks for.
    pub fn for_signal(signal: i32) -> Option<Action> {
        match signal {
            libc::SIGTERM | libc::SIGINT => Some(Action::Reboot),
            libc::SIGUSR2 => Some(Action::PowerOff),
            libc::SIGUSR1 => Some(Action::Halt),
            _ => None,
        }
    }

    fn cmd(self) -> Reboot {
        match self {
            Action::Reboot => Reboot::Restart,
            Action::PowerOff => Reboot::PowerOff,
            Action::Halt => Reboot::Halt,
        }
    }
}

/// Whether this process is an init (PID 1 of its pid namespace).
pub fn is_init() -> bool {
    std::process::id() == 1
}

/// Whether this process is in the initial pid namespace (its `NSpid` has one pid):
/// the init of the device, not of a container or a test's namespace.
pub fn in_initial_pid_namespace() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .map(|v| v.split_whitespace().count() == 1)
        })
        .unwrap_or(false)
}

/// One early mount: (source, target, fstype, flags, data).
type Early = (
    &'static str,
    &'static str,
    &'static str,
    libc::c_ulong,
    &'static str,
);

const EARLY: [Early; 6] = [
    (
        "proc",
        "/proc",
        "proc",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "",
    ),
    (
        "sysfs",
        "/sys",
        "sysfs",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "",
    ),
    ("devtmpfs", "/dev", "devtmpfs", libc::MS_NOSUID, "mode=0755"),
    (
        "devpts",
        "/dev/pts",
        "devpts",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "mode=0620,ptmxmode=0666",
    ),
    (
        "tmpfs",
        "/dev/shm",
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NODEV,
        "mode=1777",
    ),
    (
        "tmpfs",
        "/run",
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NODEV,
        "mode=0755",
    ),
];

/// Whether `target` is a mount point (its device differs from its parent's, or it is
/// listed in the mount table).
fn mounted(target: &str, table: &str) -> bool {
    table.lines().any(|l| l.split(' ').nth(1) == Some(target))
}

/// A boot or shutdown duty that failed.
#[derive(Debug)]
pub enum Pid1Error {
    /// A mount target or option held a NUL byte.
    Nul { target: String, source: NulError },
    /// The mount point could not be created.
    MountPoint { target: String, source: io::Error },
    /// `mount(2)` of `fstype` on `target`.
    Mount {
        fstype: String,
        target: String,
        source: sys::Error,
    },
}

impl fmt::Display for Pid1Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Pid1Error::Nul { target, .. } => write!(f, "mount on {target}: a NUL byte"),
            Pid1Error::MountPoint { target, source } => {
                write!(f, "create mount point {target}: {source}")
            }
            Pid1Error::Mount {
                fstype,
                target,
                source,
            } => write!(
                f,
                "mount {fstype} on {target}: {}",
                io::Error::from_raw_os_error(source.errno())
            ),
        }
    }
}

impl std::error::Error for Pid1Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Pid1Error::Nul { source, .. } => Some(source),
            Pid1Error::MountPoint { source, .. } => Some(source),
            Pid1Error::Mount { source, .. } => Some(source),
        }
    }
}

fn mount(
    source: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> Result<(), Pid1Error> {
    let c = |s: &str| {
        CString::new(s).map_err(|source| Pid1Error::Nul {
            target: target.to_owned(),
            source,
        })
    };
    let (source, target_c, fstype_c, data) = (c(source)?, c(target)?, c(fstype)?, c(data)?);
    fs::create_dir_all(target).map_err(|source| Pid1Error::MountPoint {
        target: target.to_owned(),
        source,
    })?;
    sys::mount::mount(
        Some(&source),
        &target_c,
        Some(&fstype_c),
        flags,
        Some(&data),
    )
    .map_err(|source| Pid1Error::Mount {
        fstype: fstype.to_owned(),
        target: target.to_owned(),
        source,
    })
}

/// The boot duties. Returns the targets berth mounted (to unmount at the end).
/// Failures are logged and the boot goes on: a device with a missing /sys still runs
/// its apps.
pub fn boot(config: &Config) -> Vec<String> {
    let mut mounted_here = Vec::new();
    let table = fs::read_to_string("/proc/mounts").unwrap_or_default();
    for (source, target, fstype, flags, data) in EARLY {
        let table = if target == "/proc" {
            table.clone()
        } else {
            fs::read_to_string("/proc/mounts").unwrap_or_default()
        };
        if mounted(target, &table) {
            continue;
        }
        match mount(source, target, fstype, flags, data) {
            Ok(()) => mounted_here.push(target.to_owned()),
            Err(e) => log::error!("{e}"),
        }
    }
    mounted_here.extend(mount_cgroups(config.cgroup));
    // stdin from /dev/null; stdout and stderr to the console if they are closed.
    match fs::File::open("/dev/null") {
        Ok(null) => {
            if let Err(e) = sys::fd::dup_to(null.as_raw_fd(), 0) {
                log::error!("stdin from /dev/null: {e}");
            }
        }
        Err(e) => log::error!("open /dev/null for stdin: {e}"),
    }
    if let Some(name) = &config.hostname {
        let name = name.as_str();
        if let Err(e) = sys::ns::sethostname(name.as_bytes()) {
            log::error!("set the host name to {name}: {e}");
        }
    }
    if let Err(e) = sys::net::loopback_up() {
        log::error!("bring the loopback interface up: {e}");
    }
    // Ctrl-Alt-Del: a SIGINT to us instead of an immediate reboot by the kernel.
    if let Err(e) = sys::power::reboot(Reboot::DisableCtrlAltDel) {
        log::error!("turn Ctrl-Alt-Del into SIGINT: {e}");
    }
    mounted_here
}

/// cgroup2 at /sys/fs/cgroup when the kernel has it (unless `cgroup: v1`), else a
/// tmpfs there with each v1 controller mounted in its own directory.
fn mount_cgroups(mode: crate::config::CgroupMode) -> Vec<String> {
    let table = fs::read_to_string("/proc/mounts").unwrap_or_default();
    if table.lines().any(|l| {
        let mut f = l.split(' ');
        matches!(f.nth(2), Some("cgroup" | "cgroup2"))
    }) {
        return Vec::new();
    }
    let filesystems = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let root = "/sys/fs/cgroup";
    let has_v2 = filesystems
        .lines()
        .any(|l| l.trim_end().ends_with("\tcgroup2"));
    if has_v2 && mode != crate::config::CgroupMode::V1 {
        return match mount(
            "cgroup2",
            root,
            "cgroup2",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            "",
        ) {
            Ok(()) => vec![root.to_owned()],
            Err(e) => {
                log::error!("{e}");
                Vec::new()
            }
        };
    }
    let mut done = Vec::new();
    if let Err(e) = mount(
        "tmpfs",
        root,
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "mode=0755",
    ) {
        log::error!("{e}");
        return done;
    }
    done.push(root.to_owned());
    let controllers = fs::read_to_string("/proc/cgroups").unwrap_or_default();
    for line in controllers.lines().filter(|l| !l.starts_with('#')) {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(enabled)) = (fields.next(), fields.nth(2)) else {
            continue;
        };
        if enabled != "1" {
            continue;
        }
        let target = format!("{root}/{name}");
        let target_static: &str = &target;
        match mount(
            "cgroup",
            target_static,
            "cgroup",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            name,
        ) {
            Ok(()) => done.insert(0, target),
            Err(e) => log::error!("{e}"),
        }
    }
    done
}

/// The end of the device's life: every process is asked to stop, then killed;
/// the disks are synced; what berth mounted is unmounted (or remounted read-only);
/// then reboot(2). Never returns.
pub fn finish(action: Action, mounted_here: &[String]) -> ! {
    log::info!("{action:?}: terminating every process left");
    // -1 is every process we may signal but us; ESRCH when there is none.
    let _ = sys::process::kill(-1, libc::SIGKILL);
    // Reap them (as init, every orphan is ours).
    while sys::process::reap_any().is_some() {}
    sys::fs::sync();
    for target in mounted_here.iter().rev() {
        let c = CString::new(target.as_str()).unwrap_or_default();
        if let Err(e) = sys::mount::umount2(&c, libc::MNT_DETACH) {
            log::warn!("unmount {target}: {e}");
        }
    }
    // The root filesystem read-only, so a power cut after this loses nothing. Only
    // as the device's real init: as init of a pid namespace (tests, containers) the
    // root's superblock is the host's.
    if in_initial_pid_namespace() {
        let flags = libc::MS_REMOUNT | libc::MS_RDONLY;
        if let Err(e) = sys::mount::mount(None, c"/", None, flags, None) {
            log::warn!("remount / read-only: {e}");
        }
    }
    sys::fs::sync();
    log::info!("{action:?}");
    // Returns only if reboot(2) failed: PID 1 must not exit, so halt here for good.
    if let Err(e) = sys::power::reboot(action.cmd()) {
        log::error!("{action:?}: {e}");
    }
    loop {
        sys::power::pause();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_map_like_busybox_init() {
        assert_eq!(Action::for_signal(libc::SIGTERM), Some(Action::Reboot));
        assert_eq!(Action::for_signal(libc::SIGINT), Some(Action::Reboot));
        assert_eq!(Action::for_signal(libc::SIGUSR2), Some(Action::PowerOff));
        assert_eq!(Action::for_signal(libc::SIGUSR1), Some(Action::Halt));
        assert_eq!(Action::for_signal(libc::SIGHUP), None);
    }

    #[test]
    fn mount_table_lookup() {
        let table = "proc /proc proc rw 0 0\nsysfs /sys sysfs rw 0 0\n";
        assert!(mounted("/proc", table));
        assert!(!mounted("/run", table));
    }
}
