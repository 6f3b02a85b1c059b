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

use std::ffi::CString;
use std::fs;
use std::io;

use crate::config::Config;

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

    fn cmd(self) -> libc::c_int {
        match self {
            Action::Reboot => libc::RB_AUTOBOOT,
            Action::PowerOff => libc::RB_POWER_OFF,
            Action::Halt => libc::RB_HALT_SYSTEM,
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

fn mount(
    source: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let c = |s: &str| CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let (source, target_c, fstype, data) = (c(source)?, c(target)?, c(fstype)?, c(data)?);
    fs::create_dir_all(target)?;
    // SAFETY: every pointer is a NUL-terminated string alive for the call.
    let ret = unsafe {
        libc::mount(
            source.as_ptr(),
            target_c.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if ret < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("mount {target}: {e}")));
    }
    Ok(())
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
    if let Ok(null) = fs::File::open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: plain integer arguments.
        unsafe { libc::dup2(null.as_raw_fd(), 0) };
    }
    if let Some(name) = &config.hostname {
        let name = name.as_str();
        // SAFETY: `name` is valid for its length for the call.
        if unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) } < 0 {
            log::error!("sethostname {name}: {}", io::Error::last_os_error());
        }
    }
    if let Err(e) = crate::launch::sys::loopback_up() {
        log::error!("loopback up: errno {}", e.0);
    }
    // Ctrl-Alt-Del: a SIGINT to us instead of an immediate reboot by the kernel.
    // SAFETY: plain integer argument.
    unsafe { libc::reboot(libc::RB_DISABLE_CAD) };
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
    // SAFETY: plain integer arguments; -1 is every process we may signal but us.
    unsafe { libc::kill(-1, libc::SIGKILL) };
    // Reap them (as init, every orphan is ours).
    while crate::supervisor::event::reap().is_some() {}
    // SAFETY: no arguments.
    unsafe { libc::sync() };
    for target in mounted_here.iter().rev() {
        let c = CString::new(target.as_str()).unwrap_or_default();
        // SAFETY: `c` is a NUL-terminated path alive for the call.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } < 0 {
            log::warn!("umount {target}: {}", io::Error::last_os_error());
        }
    }
    // The root filesystem read-only, so a power cut after this loses nothing. Only
    // as the device's real init: as init of a pid namespace (tests, containers) the
    // root's superblock is the host's.
    if in_initial_pid_namespace() {
        let root = c"/";
        // SAFETY: all pointers are NUL-terminated strings or null, alive for the call.
        unsafe {
            libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT | libc::MS_RDONLY,
                std::ptr::null(),
            )
        };
    }
    // SAFETY: no arguments.
    unsafe { libc::sync() };
    log::info!("{action:?}");
    // SAFETY: plain integer argument.
    unsafe { libc::reboot(action.cmd()) };
    // Only reached if reboot(2) failed: PID 1 must not exit, so halt here for good.
    log::error!("reboot(2) failed: {}", io::Error::last_os_error());
    loop {
        // SAFETY: no arguments; pause returns only on a signal.
        unsafe { libc::pause() };
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
