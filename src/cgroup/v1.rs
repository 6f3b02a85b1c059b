//! cgroup v1 (also used on hybrid systems): one hierarchy per controller, the app's
//! cgroup is one directory in each.

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::{
    CgroupError, Group, Manager, Offer, OomWatch, Result, Setting, Usage, Version, io_err, keyed,
    kill_each, mkdir, procs, read, read_u64, rmdir, write,
};

/// The controllers berth uses.
const USED: [&str; 8] = [
    "memory", "cpu", "cpuacct", "pids", "freezer", "devices", "cpuset", "blkio",
];

/// The controllers every app joins, for usage, for stopping and (devices) for its
/// device allow list; cpuset and blkio only when the app sets them (a cpuset cgroup
/// must be given cpus and mems first).
const ALWAYS: [&str; 6] = ["memory", "cpu", "cpuacct", "pids", "freezer", "devices"];

pub struct V1 {
    /// Each controller and berth's root in its hierarchy (`<own>/<cgroup_root>`).
    roots: BTreeMap<String, PathBuf>,
    offer: Offer,
}

impl V1 {
    /// Creates berth's root in each hierarchy of `own` (controller → berth's own
    /// cgroup directory there).
    pub fn new(own: &BTreeMap<String, PathBuf>, root: &str) -> Result<V1> {
        let mut roots = BTreeMap::new();
        for (controller, dir) in own.iter().filter(|(c, _)| USED.contains(&c.as_str())) {
            let mut at = dir.clone();
            for part in root.split('/').filter(|p| !p.is_empty()) {
                at.push(part);
                mkdir(&at)?;
                if controller == "cpuset" {
                    inherit_cpuset(&at, false)?;
                }
            }
            roots.insert(controller.clone(), at);
        }
        let offer = Offer {
            controllers: roots.keys().cloned().collect(),
            swap: roots
                .get("memory")
                .is_some_and(|d| d.join("memory.memsw.limit_in_bytes").exists()),
            io_weight: roots
                .get("blkio")
                .is_some_and(|d| d.join("blkio.weight").exists()),
        };
        Ok(V1 { roots, offer })
    }

    fn group(&self, app: &str, controllers: &[&str]) -> V1Group {
        V1Group {
            dirs: controllers
                .iter()
                .filter_map(|c| Some(((*c).to_owned(), self.roots.get(*c)?.join(app))))
                .collect(),
            oom_control: None,
        }
    }
}

/// Creates each of `dirs` (their parent exists); false, after the first, if it is
/// there already.
fn make_new(dirs: &[PathBuf]) -> Result<bool> {
    for dir in dirs {
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(io_err(format!("create cgroup {}", dir.display()))(e)),
        }
    }
    Ok(true)
}

/// A new cpuset cgroup has no cpus and no mems, and no process can join it: copy the
/// parent's (the cpus only when `keep_cpus` is false).
fn inherit_cpuset(dir: &Path, keep_cpus: bool) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if keep_cpus && file == "cpuset.cpus" {
            continue;
        }
        // (A missing file reads as empty: temp-dir fixtures have none until written.)
        let current = fs::read_to_string(dir.join(file)).unwrap_or_default();
        if current.trim().is_empty() {
            write(dir, file, read(parent, file)?.trim())?;
        }
    }
    Ok(())
}

impl Manager for V1 {
    fn version(&self) -> Version {
        Version::V1
    }

    fn offer(&self) -> &Offer {
        &self.offer
    }

    fn create(
        &self,
        app: &str,
        settings: &[Setting],
        devices: &[super::devices::Rule],
    ) -> Result<Box<dyn Group>> {
        if !self.roots.contains_key("devices") {
            // Without it every host device is open to an app that can mknod: refuse
            // rather than run the app unconfined.
            return Err(CgroupError::Refused(format!(
                "{app}: the cgroup v1 devices controller is not mounted (or not built into \
                 this kernel: CONFIG_CGROUP_DEVICE), so the app's access to host devices \
                 cannot be confined; berth does not start apps without it"
            )));
        }
        let mut controllers: Vec<&str> = ALWAYS.to_vec();
        for s in settings {
            if !controllers.contains(&s.controller) {
                controllers.push(s.controller);
            }
        }
        let mut group = self.group(app, &controllers);
        // A leftover of a berth that died: empty it and start afresh. Found by a
        // mkdir that meets it rather than by looking first, so that a fresh app pays
        // no extra call per hierarchy (its processes are in every hierarchy of
        // `ALWAYS`, so a leftover that holds any is met).
        if !make_new(&group.distinct())? {
            super::clean(&self.group(app, &USED), 1000)?;
            for dir in group.distinct() {
                mkdir(&dir)?;
            }
        }
        if let Some(dir) = group.dir("cpuset") {
            inherit_cpuset(dir, false)?;
        }
        for s in settings {
            let dir = group.dir(s.controller).ok_or_else(|| {
                CgroupError::Refused(format!("{app}: no {} hierarchy", s.controller))
            })?;
            write(dir, s.file, &s.value)?;
        }
        if let Some(dir) = group.dir("devices") {
            super::devices::apply_v1(app, dir, devices)?;
        }
        group.oom_control = None;
        Ok(Box::new(group))
    }

    fn roots(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for d in self.roots.values() {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    }

    fn existing(&self) -> Result<Vec<(String, Box<dyn Group>)>> {
        let mut names = std::collections::BTreeSet::new();
        for root in self.roots.values() {
            let Ok(entries) = fs::read_dir(root) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    names.insert(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        Ok(names
            .into_iter()
            .map(|name| {
                let mut g = self.group(&name, &USED);
                g.dirs.retain(|_, d| d.exists());
                (name, Box::new(g) as Box<dyn Group>)
            })
            .collect())
    }
}

/// An app's cgroup: its directory in each hierarchy.
pub struct V1Group {
    dirs: BTreeMap<String, PathBuf>,
    oom_control: Option<fs::File>,
}

impl V1Group {
    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs.get(controller).map(PathBuf::as_path)
    }

    /// The directories, each once (co-mounted controllers share one).
    fn distinct(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for d in self.dirs.values() {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    }

    /// The directory whose `cgroup.procs` lists the app's processes.
    fn listing(&self) -> Option<&Path> {
        ["freezer", "pids", "memory", "cpu", "cpuacct"]
            .iter()
            .find_map(|c| self.dir(c))
            .or_else(|| self.dirs.values().next().map(PathBuf::as_path))
    }
}

impl crate::launch::Cgroup for V1Group {
    fn tasks(&self) -> std::io::Result<Vec<std::os::fd::OwnedFd>> {
        use std::os::unix::fs::OpenOptionsExt;
        self.join_files()
            .into_iter()
            .map(|path| {
                fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(&path)
                    .map(std::os::fd::OwnedFd::from)
                    .map_err(|e| {
                        std::io::Error::new(e.kind(), format!("open {}: {e}", path.display()))
                    })
            })
            .collect()
    }

    fn join(&mut self, pid: i32) -> std::io::Result<()> {
        for dir in self.distinct() {
            fs::write(dir.join("cgroup.procs"), pid.to_string()).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("write {pid} to {}/cgroup.procs: {e}", dir.display()),
                )
            })?;
        }
        Ok(())
    }
}

impl Group for V1Group {
    fn dirs(&self) -> Vec<PathBuf> {
        self.distinct()
    }

    fn join_files(&self) -> Vec<PathBuf> {
        self.distinct().iter().map(|d| d.join("tasks")).collect()
    }

    fn procs(&self) -> Result<Vec<i32>> {
        match self.listing() {
            Some(dir) => procs(dir),
            None => Ok(Vec::new()),
        }
    }

    fn kill_all(&self) -> Result<()> {
        let freezer = self.dir("freezer");
        let mut killed: Vec<i32> = Vec::new();
        // Rounds until a listing shows nothing new: with the freezer, processes cannot
        // fork between the listing and the kill; without it, each round kills what a
        // fork bomb made meanwhile, and killed processes cannot fork again.
        for _ in 0..64 {
            if let Some(f) = freezer {
                write(f, "freezer.state", "FROZEN")?;
            }
            let listed = self.procs();
            if let Ok(pids) = &listed {
                kill_each(pids);
            }
            if let Some(f) = freezer {
                // Always thaw: a frozen process cannot act on its SIGKILL.
                write(f, "freezer.state", "THAWED")?;
            }
            let pids = listed?;
            if pids.iter().all(|p| killed.contains(p)) {
                return Ok(());
            }
            killed.extend(pids);
        }
        Ok(())
    }

    fn remove(&self) -> Result<()> {
        for dir in self.distinct() {
            rmdir(&dir)?;
        }
        Ok(())
    }

    fn usage(&self) -> Usage {
        let memory = self.dir("memory");
        Usage {
            memory: memory.and_then(|d| read_u64(d, "memory.usage_in_bytes")),
            memory_peak: memory.and_then(|d| read_u64(d, "memory.max_usage_in_bytes")),
            cpu_ns: self
                .dir("cpuacct")
                .and_then(|d| read_u64(d, "cpuacct.usage")),
            pids: self.dir("pids").and_then(|d| read_u64(d, "pids.current")),
            oom_kills: memory
                .and_then(|d| keyed(d, "memory.oom_control", "oom_kill"))
                .unwrap_or(0),
        }
    }

    fn oom_kills(&self) -> u64 {
        self.dir("memory")
            .and_then(|d| keyed(d, "memory.oom_control", "oom_kill"))
            .unwrap_or(0)
    }

    fn oom_watch(&self) -> Result<OomWatch> {
        let dir = self
            .dir("memory")
            .ok_or_else(|| CgroupError::Refused("no memory cgroup to watch".into()))?;
        let efd = crate::sys::notify::eventfd().map_err(|e| CgroupError::Io {
            what: "create an eventfd".into(),
            source: e.into(),
        })?;
        let path = dir.join("memory.oom_control");
        let control = fs::File::open(&path).map_err(io_err(format!("open {}", path.display())))?;
        write(
            dir,
            "cgroup.event_control",
            &format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()),
        )?;
        Ok(OomWatch {
            fd: efd,
            _control: Some(control),
        })
    }
}
