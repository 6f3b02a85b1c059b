//! cgroup v2: one unified hierarchy; controllers are enabled in each parent's
//! `cgroup.subtree_control` along berth's path.

use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::{
    CgroupError, Group, Manager, Offer, OomWatch, Result, Setting, Usage, Version, devices, io_err,
    keyed, kill_each, mkdir, procs, read, read_u64, rmdir, write,
};

/// The controllers berth enables for its apps, where the kernel offers them.
const WANTED: [&str; 5] = ["cpuset", "cpu", "io", "memory", "pids"];

/// Where berth itself goes when its own cgroup must hand its controllers down (v2
/// allows controllers to be enabled only in a cgroup without processes, except at the
/// root). App names cannot start with a dot.
pub const SUPERVISOR: &str = ".supervisor";

/// What confines an app's devices on v2: [`devices::bpf::attach`] on a real kernel,
/// a fake over temp-dir fixtures (which are not cgroups a program can attach to).
pub type DeviceFilter = fn(&str, BorrowedFd, &Path, &[devices::Rule]) -> Result<()>;

pub struct V2 {
    /// `<own>/<cgroup_root>`.
    root: PathBuf,
    offer: Offer,
    devices: DeviceFilter,
}

impl V2 {
    /// Creates berth's root under `own` (berth's own cgroup directory) and enables the
    /// wanted controllers along the way.
    pub fn new(own: &Path, root: &str) -> Result<V2> {
        V2::with_device_filter(own, root, devices::bpf::attach)
    }

    /// As [`V2::new`], with `devices` confining each app's devices.
    pub fn with_device_filter(own: &Path, root: &str, devices: DeviceFilter) -> Result<V2> {
        let available = read(own, "cgroup.controllers")?;
        let enable: Vec<&str> = available
            .split_whitespace()
            .filter(|c| WANTED.contains(c))
            .collect();
        let mut levels = vec![own.to_path_buf()];
        let mut at = own.to_path_buf();
        for part in root.split('/').filter(|p| !p.is_empty()) {
            at.push(part);
            mkdir(&at)?;
            levels.push(at.clone());
        }
        if !enable.is_empty() {
            let line: String = enable.iter().map(|c| format!("+{c} ")).collect();
            let line = line.trim_end();
            for level in &levels {
                match write(level, "cgroup.subtree_control", line) {
                    Err(CgroupError::Io { source, .. })
                        if source.raw_os_error() == Some(libc::EBUSY) && level == own =>
                    {
                        // Our own cgroup has processes (us): move into a leaf below the
                        // root, then try again.
                        let leaf = at.join(SUPERVISOR);
                        mkdir(&leaf)?;
                        write(&leaf, "cgroup.procs", "0")?;
                        write(level, "cgroup.subtree_control", line).map_err(|e| {
                            CgroupError::Refused(format!(
                                "cannot hand the cgroup controllers of {} down to the apps: \
                                 it holds processes other than berth ({e})",
                                own.display()
                            ))
                        })?;
                    }
                    other => other?,
                }
            }
        }
        let offer = Offer {
            controllers: enable.iter().map(|c| (*c).to_owned()).collect(),
            swap: at.join("memory.swap.max").exists(),
            io_weight: at.join("io.weight").exists(),
        };
        Ok(V2 {
            root: at,
            offer,
            devices,
        })
    }
}

impl Manager for V2 {
    fn version(&self) -> Version {
        Version::V2
    }

    fn offer(&self) -> &Offer {
        &self.offer
    }

    fn create(
        &self,
        app: &str,
        settings: &[Setting],
        rules: &[devices::Rule],
    ) -> Result<Box<dyn Group>> {
        let dir = self.root.join(app);
        if dir.exists() {
            super::clean(&V2Group::open(dir.clone())?, 1000)?;
        }
        mkdir(&dir)?;
        for s in settings {
            write(&dir, s.file, &s.value)?;
        }
        let group = V2Group::open(dir)?;
        // Before any process is in it; a cgroup that cannot be confined is not left
        // behind for the next attempt to find.
        if let Err(e) = (self.devices)(app, group.fd.as_fd(), &group.dir, rules) {
            return Err(match rmdir(&group.dir) {
                Ok(()) => e,
                Err(cleanup) => CgroupError::Refused(format!("{e} (and then: {cleanup})")),
            });
        }
        Ok(Box::new(group))
    }

    fn roots(&self) -> Vec<PathBuf> {
        vec![self.root.clone()]
    }

    fn existing(&self) -> Result<Vec<(String, Box<dyn Group>)>> {
        let entries =
            fs::read_dir(&self.root).map_err(io_err(format!("list {}", self.root.display())))?;
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let group: Box<dyn Group> = Box::new(V2Group::open(entry.path())?);
            found.push((name, group));
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }
}

/// An app's cgroup: one directory, and a descriptor of it for `CLONE_INTO_CGROUP`.
pub struct V2Group {
    dir: PathBuf,
    fd: OwnedFd,
}

impl V2Group {
    pub fn open(dir: PathBuf) -> Result<V2Group> {
        let file = fs::File::open(&dir).map_err(io_err(format!("open {}", dir.display())))?;
        Ok(V2Group {
            dir,
            fd: file.into(),
        })
    }
}

impl crate::launch::Cgroup for V2Group {
    fn join(&mut self, pid: i32) -> io::Result<()> {
        fs::write(self.dir.join("cgroup.procs"), pid.to_string()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("write {pid} to {}/cgroup.procs: {e}", self.dir.display()),
            )
        })
    }

    fn clone_into(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }
}

impl Group for V2Group {
    fn dirs(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }

    fn join_files(&self) -> Vec<PathBuf> {
        vec![self.dir.join("cgroup.procs")]
    }

    fn procs(&self) -> Result<Vec<i32>> {
        procs(&self.dir)
    }

    fn kill_all(&self) -> Result<()> {
        if self.dir.join("cgroup.kill").exists() {
            // Linux 5.14: the kernel kills every process, also those forking meanwhile.
            return write(&self.dir, "cgroup.kill", "1");
        }
        self.kill_frozen()
    }

    fn remove(&self) -> Result<()> {
        rmdir(&self.dir)
    }

    fn usage(&self) -> Usage {
        usage(&self.dir)
    }

    fn oom_kills(&self) -> u64 {
        keyed(&self.dir, "memory.events", "oom_kill").unwrap_or(0)
    }

    fn oom_watch(&self) -> Result<OomWatch> {
        oom_watch(&self.dir)
    }
}

impl V2Group {
    /// Kills every process without `cgroup.kill` (before Linux 5.14): freeze, SIGKILL
    /// each listed process, thaw, until a listing shows nothing new.
    pub fn kill_frozen(&self) -> Result<()> {
        let mut killed: Vec<i32> = Vec::new();
        for _ in 0..64 {
            write(&self.dir, "cgroup.freeze", "1")?;
            let listed = self.procs();
            if let Ok(pids) = &listed {
                kill_each(pids);
            }
            // Always thaw: a frozen process cannot act on its SIGKILL.
            write(&self.dir, "cgroup.freeze", "0")?;
            let pids = listed?;
            if pids.iter().all(|p| killed.contains(p)) {
                return Ok(());
            }
            killed.extend(pids);
        }
        Ok(())
    }
}

fn usage(d: &Path) -> Usage {
    Usage {
        memory: read_u64(d, "memory.current"),
        memory_peak: read_u64(d, "memory.peak"),
        cpu_ns: keyed(d, "cpu.stat", "usage_usec").map(|us| us.saturating_mul(1000)),
        pids: read_u64(d, "pids.current"),
        oom_kills: keyed(d, "memory.events", "oom_kill").unwrap_or(0),
    }
}

fn oom_watch(dir: &Path) -> Result<OomWatch> {
    let events = dir.join("memory.events");
    let path = std::ffi::CString::new(events.to_string_lossy().as_bytes())
        .map_err(|_| CgroupError::Refused(format!("{} holds a NUL byte", events.display())))?;
    let fd = crate::sys::notify::watch_modify(&path).map_err(|e| CgroupError::Io {
        what: format!("watch {}", events.display()),
        source: e.into(),
    })?;
    Ok(OomWatch { fd, _control: None })
}
