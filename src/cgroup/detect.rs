//! What the running kernel offers: cgroup v1, v2 or both (hybrid), which controllers,
//! and where berth's own cgroup is in each hierarchy. Pure: it reads the texts of
//! `/proc/self/mountinfo` and `/proc/self/cgroup` and, through `read`, the v2 root's
//! `cgroup.controllers`, so every layout is tested from fixtures.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// Which hierarchies are mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only v1 controller hierarchies.
    V1,
    /// v1 controllers, and a cgroup2 mount beside them (berth uses the v1 controllers,
    /// and the cgroup2 hierarchy only for what needs no controller).
    Hybrid,
    /// Only the unified hierarchy.
    V2,
}

/// The cgroup layout of this system, as seen by this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub kind: Kind,
    /// v1: each controller, and berth's own cgroup directory in its hierarchy.
    pub v1: BTreeMap<String, PathBuf>,
    /// The cgroup2 hierarchy: berth's own cgroup directory, and the controllers the
    /// hierarchy's root offers (`cgroup.controllers`).
    pub v2: Option<(PathBuf, Vec<String>)>,
    /// The mount point of the cgroup2 hierarchy.
    pub v2_mount: Option<PathBuf>,
}

/// One mount of a cgroup filesystem: (mount point, root of the mount inside the
/// hierarchy, v2?, super options).
struct CgroupMount<'a> {
    point: PathBuf,
    root: &'a str,
    v2: bool,
    options: &'a str,
}

/// Reads the mount table: `ID PARENT MAJ:MIN ROOT POINT OPTS [OPTIONAL...] - FSTYPE
/// SOURCE SUPER_OPTS`. Mount points escape space, tab, newline and backslash as
/// octal (`\040`).
fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount<'_>> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mut fields = before.split(' ');
            let root = fields.nth(3)?;
            let point = unescape(fields.next()?);
            let mut after = after.split(' ');
            let fstype = after.next()?;
            let options = after.nth(1).unwrap_or("");
            match fstype {
                "cgroup" => Some(CgroupMount {
                    point,
                    root,
                    v2: false,
                    options,
                }),
                "cgroup2" => Some(CgroupMount {
                    point,
                    root,
                    v2: true,
                    options,
                }),
                _ => None,
            }
        })
        .collect()
}

fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| b == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    PathBuf::from(String::from_utf8_lossy(&out).into_owned())
}

/// The controllers a v1 mount carries (its super options less the flags).
fn v1_controllers(options: &str) -> impl Iterator<Item = &str> {
    options.split(',').filter(|o| {
        !matches!(*o, "rw" | "ro" | "xattr" | "noprefix" | "clone_children")
            && !o.starts_with("name=")
            && !o.starts_with("release_agent=")
            && !o.starts_with("cpuset_v2_mode")
    })
}

/// Finds the layout. `read` reads a file (the v2 root's `cgroup.controllers`).
pub fn detect(
    mountinfo: &str,
    self_cgroup: &str,
    read: &dyn Fn(&Path) -> io::Result<String>,
) -> Result<Hierarchy, String> {
    // /proc/self/cgroup: `ID:CONTROLLERS:PATH`; v2 is `0::PATH`.
    let mut own_v1: BTreeMap<&str, &str> = BTreeMap::new();
    let mut own_v2 = None;
    for line in self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            own_v2 = Some(path);
        } else {
            for c in controllers.split(',') {
                own_v1.insert(c, path);
            }
        }
    }
    let mut v1 = BTreeMap::new();
    let mut v2 = None;
    let mut v2_mount = None;
    for m in cgroup_mounts(mountinfo) {
        if m.v2 {
            let Some(own) = own_v2 else { continue };
            let dir = join_own(&m.point, m.root, own);
            let controllers = read(&m.point.join("cgroup.controllers")).map_err(|e| {
                format!("cannot read {}/cgroup.controllers: {e}", m.point.display())
            })?;
            v2 = Some((
                dir,
                controllers.split_whitespace().map(str::to_owned).collect(),
            ));
            v2_mount = Some(m.point.clone());
        } else {
            for controller in v1_controllers(m.options) {
                if let Some(own) = own_v1.get(controller) {
                    v1.entry(controller.to_owned())
                        .or_insert_with(|| join_own(&m.point, m.root, own));
                }
            }
        }
    }
    let kind = match (v1.is_empty(), &v2) {
        (false, None) => Kind::V1,
        (false, Some(_)) => Kind::Hybrid,
        (true, Some(_)) => Kind::V2,
        (true, None) => return Err("no cgroup filesystem is mounted".into()),
    };
    Ok(Hierarchy {
        kind,
        v1,
        v2,
        v2_mount,
    })
}

/// The directory of the cgroup `own` (a path from the hierarchy's root) in a mount
/// whose root is `mount_root` (not `/` inside a container that bind-mounted a
/// sub-tree; the part above the mount is not reachable, so it is cut off).
fn join_own(point: &Path, mount_root: &str, own: &str) -> PathBuf {
    let rel = own
        .strip_prefix(mount_root)
        .filter(|rest| mount_root == "/" || rest.is_empty() || rest.starts_with('/'))
        .unwrap_or(own);
    let rel = if mount_root == "/" { own } else { rel };
    match rel.trim_start_matches('/') {
        "" => point.to_path_buf(),
        rel => point.join(rel),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_SELF: &str = "\
9:name=systemd:/
8:pids:/
6:freezer:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
0::/
";

    fn no_read(_: &Path) -> io::Result<String> {
        Ok(String::new())
    }

    #[test]
    fn hybrid_like_this_host() {
        let h = detect(HYBRID_MOUNTS, HYBRID_SELF, &no_read).unwrap();
        assert_eq!(h.kind, Kind::Hybrid);
        let v1: Vec<_> =
            h.v1.iter()
                .map(|(c, p)| (c.as_str(), p.to_str().unwrap()))
                .collect();
        assert_eq!(
            v1,
            [
                ("cpu", "/sys/fs/cgroup/cpu"),
                ("cpuacct", "/sys/fs/cgroup/cpuacct"),
                ("freezer", "/sys/fs/cgroup/freezer"),
                ("memory", "/sys/fs/cgroup/memory/process_api/abc"),
                ("pids", "/sys/fs/cgroup/pids"),
            ]
        );
        assert_eq!(
            h.v2,
            Some((PathBuf::from("/sys/fs/cgroup/unified"), vec![]))
        );
    }

    #[test]
    fn v1_with_comounted_cpu_and_cpuacct() {
        let mounts = "\
25 20 0:22 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
26 20 0:23 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
        let own =
            "3:cpu,cpuacct:/system.slice/berth.service\n2:memory:/system.slice/berth.service\n";
        let h = detect(mounts, own, &no_read).unwrap();
        assert_eq!(h.kind, Kind::V1);
        assert_eq!(
            h.v1["cpuacct"],
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/system.slice/berth.service")
        );
        assert_eq!(h.v2, None);
    }

    #[test]
    fn pure_v2_reads_the_roots_controllers() {
        let mounts = "24 19 0:21 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let read = |p: &Path| {
            assert_eq!(p, Path::new("/sys/fs/cgroup/cgroup.controllers"));
            Ok("cpuset cpu io memory pids\n".to_owned())
        };
        let h = detect(mounts, "0::/init.scope\n", &read).unwrap();
        assert_eq!(h.kind, Kind::V2);
        let (dir, controllers) = h.v2.unwrap();
        assert_eq!(dir, PathBuf::from("/sys/fs/cgroup/init.scope"));
        assert_eq!(controllers, ["cpuset", "cpu", "io", "memory", "pids"]);
        // As PID 1 at the root:
        let h = detect(mounts, "0::/\n", &read).unwrap();
        assert_eq!(h.v2.unwrap().0, PathBuf::from("/sys/fs/cgroup"));
    }

    #[test]
    fn a_mount_of_a_subtree_and_escaped_mount_points() {
        let mounts = "24 19 0:21 /lxc/box /sys/fs/cgroup\\040x rw - cgroup2 cgroup2 rw\n";
        let h = detect(mounts, "0::/lxc/box/app\n", &no_read).unwrap();
        assert_eq!(h.v2.unwrap().0, PathBuf::from("/sys/fs/cgroup x/app"));
        assert_eq!(
            detect("", "0::/\n", &no_read).unwrap_err(),
            "no cgroup filesystem is mounted"
        );
    }
}
