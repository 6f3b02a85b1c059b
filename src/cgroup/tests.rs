//! The managers against temp-dir fixtures laid out as the kernel lays out v1 and v2
//! trees (files the kernel would create are written by the fixture).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::manifest;

struct Fixture(PathBuf);

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!("berth-cgroup-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Fixture(dir)
    }
    fn file(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.0.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn resources(yaml: &str) -> Resources {
    let text = format!(
        "name: gw\nimage: {{ path: g.tar, sha256: {} }}\nresources: {yaml}\n",
        "ab".repeat(32)
    );
    let mut loaded = manifest::load_texts([("g.yaml".into(), text)]);
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    loaded.apps.pop().unwrap().resources
}

/// A v1 tree: each controller mounted on its own, berth's own cgroup `/svc` in memory
/// and `/` elsewhere.
fn v1_tree(f: &Fixture) -> BTreeMap<String, PathBuf> {
    f.file(
        "memory/svc/memory.memsw.limit_in_bytes",
        "9223372036854771712\n",
    );
    f.file("cpuset/cpuset.cpus", "0-3\n");
    f.file("cpuset/cpuset.mems", "0\n");
    f.file("blkio/blkio.weight", "500\n");
    [
        "cpu", "cpuacct", "pids", "freezer", "devices", "cpuset", "blkio",
    ]
    .iter()
    .map(|c| ((*c).to_owned(), f.0.join(c)))
    .chain([("memory".to_owned(), f.0.join("memory/svc"))])
    .collect()
}

/// Writes the rules it is given into the cgroup directory, as `fake.devices`.
fn fake_filter(
    app: &str,
    _: std::os::fd::BorrowedFd,
    dir: &Path,
    rules: &[devices::Rule],
) -> Result<()> {
    let text: Vec<String> = rules.iter().map(ToString::to_string).collect();
    fs::write(
        dir.join("fake.devices"),
        format!("{app}: {}", text.join(", ")),
    )
    .unwrap();
    Ok(())
}

/// A filter that fails, as a kernel without CONFIG_CGROUP_BPF does.
fn failing_filter(
    app: &str,
    _: std::os::fd::BorrowedFd,
    _: &Path,
    _: &[devices::Rule],
) -> Result<()> {
    Err(CgroupError::Refused(format!("{app}: no bpf here")))
}

#[test]
fn v2_devices_are_the_standard_set_and_the_manifests_and_a_failure_leaves_nothing() {
    let f = Fixture::new("v2-devices");
    f.file("cgroup.controllers", "pids\n");
    let m = v2::V2::with_device_filter(&f.0, "berth", fake_filter).unwrap();
    let ttyusb = devices::Rule::node(false, 188, 0);
    let limit: crate::manifest::model::Count = "1024".parse().unwrap();
    let c = Confinement {
        resources: &Resources::default(),
        devices: &[ttyusb],
        default_pids: Some(limit),
    };
    create_confined(&m, "gw", &c).unwrap();
    assert!(
        f.read("berth/gw/fake.devices")
            .ends_with("c 136:* rwm, c 188:0 rwm")
    );
    // berth.yaml's default_pids where the manifest sets none.
    assert_eq!(f.read("berth/gw/pids.max"), "1024");
    let m = v2::V2::with_device_filter(&f.0, "berth", failing_filter).unwrap();
    // (A fixture keeps the files a setting wrote, which would stop the rmdir.)
    let e = create(&m, "other", &Resources::default()).err().unwrap();
    assert_eq!(e.to_string(), "other: no bpf here");
    assert!(
        !f.0.join("berth/other").exists(),
        "no unconfined cgroup left"
    );
}

#[test]
fn v1_creates_berths_root_in_each_hierarchy_and_writes_the_settings() {
    let f = Fixture::new("v1");
    let own = v1_tree(&f);
    // The memsw file of berth's root is what the kernel would show there.
    f.file("memory/svc/fw/berth/memory.memsw.limit_in_bytes", "0\n");
    let m = v1::V1::new(&own, "fw/berth").unwrap();
    assert_eq!(m.version(), Version::V1);
    assert!(m.offer().swap);
    // A new cpuset level gets its parent's cpus and mems.
    assert_eq!(f.read("cpuset/fw/cpuset.cpus"), "0-3");
    assert_eq!(f.read("cpuset/fw/berth/cpuset.mems"), "0");
    let g = create(
        &m,
        "gw",
        &resources("{ memory: 32M, cpu: 0.2, cpu_weight: 100, pids: 32, cpuset: \"1\" }"),
    )
    .unwrap();
    assert_eq!(
        f.read("memory/svc/fw/berth/gw/memory.limit_in_bytes"),
        "33554432"
    );
    assert_eq!(
        f.read("memory/svc/fw/berth/gw/memory.memsw.limit_in_bytes"),
        "33554432"
    );
    assert_eq!(f.read("cpu/fw/berth/gw/cpu.cfs_period_us"), "100000");
    assert_eq!(f.read("cpu/fw/berth/gw/cpu.cfs_quota_us"), "20000");
    assert_eq!(f.read("cpu/fw/berth/gw/cpu.shares"), "2598");
    assert_eq!(f.read("pids/fw/berth/gw/pids.max"), "32");
    assert_eq!(f.read("cpuset/fw/berth/gw/cpuset.cpus"), "1");
    assert_eq!(f.read("cpuset/fw/berth/gw/cpuset.mems"), "0");
    // Every device denied, then the standard set, one write per rule through one
    // open file (a plain file holds them all).
    assert_eq!(f.read("devices/fw/berth/gw/devices.deny"), "a");
    assert_eq!(
        f.read("devices/fw/berth/gw/devices.allow"),
        "c 1:3 rwmc 1:5 rwmc 1:7 rwmc 1:8 rwmc 1:9 rwmc 5:0 rwmc 5:2 rwmc 136:* rwm"
    );
    let mut dirs = g.dirs();
    dirs.sort();
    let rel: Vec<_> = dirs
        .iter()
        .map(|d| d.strip_prefix(&f.0).unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        rel,
        [
            "cpu/fw/berth/gw",
            "cpuacct/fw/berth/gw",
            "cpuset/fw/berth/gw",
            "devices/fw/berth/gw",
            "freezer/fw/berth/gw",
            "memory/svc/fw/berth/gw",
            "pids/fw/berth/gw"
        ]
    );
    // Usage, from the files the kernel keeps.
    f.file("memory/svc/fw/berth/gw/memory.usage_in_bytes", "4096\n");
    f.file("memory/svc/fw/berth/gw/memory.max_usage_in_bytes", "8192\n");
    f.file(
        "memory/svc/fw/berth/gw/memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    );
    f.file("cpuacct/fw/berth/gw/cpuacct.usage", "123456789\n");
    f.file("pids/fw/berth/gw/pids.current", "3\n");
    assert_eq!(
        g.usage(),
        Usage {
            memory: Some(4096),
            memory_peak: Some(8192),
            cpu_ns: Some(123_456_789),
            pids: Some(3),
            oom_kills: 2
        }
    );
    assert_eq!(g.oom_kills(), 2);
    let names: Vec<_> = m.existing().unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["gw"]);
}

#[test]
fn v1_co_mounted_controllers_share_one_directory() {
    let f = Fixture::new("v1-comount");
    let both = f.0.join("cpu,cpuacct");
    let mut own: BTreeMap<String, PathBuf> = [
        ("cpu".to_owned(), both.clone()),
        ("cpuacct".to_owned(), both),
    ]
    .into();
    // No devices hierarchy: no app starts, whatever it asks for.
    let m = v1::V1::new(&own, "berth").unwrap();
    let e = create(&m, "gw", &Resources::default()).err().unwrap();
    assert_eq!(
        e.to_string(),
        "gw: the cgroup v1 devices controller is not mounted (or not built into this kernel: \
         CONFIG_CGROUP_DEVICE), so the app's access to host devices cannot be confined; berth \
         does not start apps without it"
    );
    assert!(!f.0.join("cpu,cpuacct/berth/gw").exists());
    own.insert("devices".to_owned(), f.0.join("devices"));
    let m = v1::V1::new(&own, "berth").unwrap();
    let g = create(&m, "gw", &resources("{ cpu: 1 }")).unwrap();
    assert_eq!(
        g.dirs(),
        [
            f.0.join("cpu,cpuacct/berth/gw"),
            f.0.join("devices/berth/gw")
        ]
    );
    assert_eq!(f.read("cpu,cpuacct/berth/gw/cpu.cfs_quota_us"), "100000");
    // No memory hierarchy: a memory limit is refused by name.
    let e = create(&m, "gw", &resources("{ memory: 1M }"))
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        "gw: resources.memory needs the memory controller, which this kernel does not provide"
    );
}

#[test]
fn v2_enables_controllers_along_the_path_and_writes_the_settings() {
    let f = Fixture::new("v2");
    f.file(
        "cgroup.controllers",
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    );
    f.file("berth/memory.swap.max", "max\n");
    let m = v2::V2::with_device_filter(&f.0, "berth", fake_filter).unwrap();
    assert_eq!(m.version(), Version::V2);
    assert_eq!(
        f.read("cgroup.subtree_control"),
        "+cpuset +cpu +io +memory +pids"
    );
    assert_eq!(
        f.read("berth/cgroup.subtree_control"),
        "+cpuset +cpu +io +memory +pids"
    );
    assert!(m.offer().swap && !m.offer().io_weight);
    let g = create(
        &m,
        "gw",
        &resources("{ memory: 64M, cpu: 0.5, cpu_weight: 300, pids: 10 }"),
    )
    .unwrap();
    assert_eq!(f.read("berth/gw/memory.max"), "67108864");
    assert_eq!(f.read("berth/gw/memory.oom.group"), "1");
    assert_eq!(f.read("berth/gw/memory.swap.max"), "0");
    assert_eq!(f.read("berth/gw/cpu.max"), "50000 100000");
    assert_eq!(f.read("berth/gw/cpu.weight"), "300");
    assert_eq!(f.read("berth/gw/pids.max"), "10");
    assert_eq!(
        f.read("berth/gw/fake.devices"),
        "gw: c 1:3 rwm, c 1:5 rwm, c 1:7 rwm, c 1:8 rwm, c 1:9 rwm, c 5:0 rwm, c 5:2 rwm, c 136:* rwm"
    );
    assert!(g.clone_into().is_some());
    f.file("berth/gw/memory.current", "100\n");
    f.file("berth/gw/memory.peak", "200\n");
    f.file(
        "berth/gw/cpu.stat",
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
    );
    f.file("berth/gw/pids.current", "1\n");
    f.file(
        "berth/gw/memory.events",
        "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
    );
    assert_eq!(
        g.usage(),
        Usage {
            memory: Some(100),
            memory_peak: Some(200),
            cpu_ns: Some(1_500_000),
            pids: Some(1),
            oom_kills: 1
        }
    );
    assert_eq!(g.oom_kills(), 1);
    // The supervisor's leaf is not an app.
    fs::create_dir_all(f.0.join("berth/.supervisor")).unwrap();
    let names: Vec<_> = m.existing().unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["gw"]);
}

#[test]
fn v2_without_controllers_refuses_limits() {
    let f = Fixture::new("v2-bare");
    f.file("cgroup.controllers", "\n");
    let m = v2::V2::with_device_filter(&f.0, "berth", fake_filter).unwrap();
    assert!(
        !f.0.join("cgroup.subtree_control").exists(),
        "nothing to enable"
    );
    let e = create(&m, "gw", &resources("{ pids: 5 }")).err().unwrap();
    assert_eq!(
        e.to_string(),
        "gw: resources.pids needs the pids controller, which this kernel does not provide"
    );
    create(&m, "gw", &Resources::default()).unwrap();
    assert!(f.0.join("berth/gw").is_dir());
}

#[test]
fn manager_follows_the_detected_kind() {
    let f = Fixture::new("kind");
    f.file("cgroup.controllers", "memory pids\n");
    let h = Hierarchy {
        kind: Kind::V2,
        v1: BTreeMap::new(),
        v2: Some((f.0.clone(), vec!["memory".into(), "pids".into()])),
        v2_mount: Some(f.0.clone()),
    };
    assert_eq!(manager(&h, "berth").unwrap().version(), Version::V2);
    let h = Hierarchy {
        kind: Kind::Hybrid,
        v1: [("pids".to_owned(), f.0.join("pids"))].into(),
        v2: Some((f.0.join("unified"), vec![])),
        v2_mount: Some(f.0.join("unified")),
    };
    let m = manager(&h, "berth").unwrap();
    assert_eq!(m.version(), Version::V1);
    assert_eq!(m.offer().controllers, ["pids"]);
    assert!(Path::new(&f.0.join("pids/berth")).is_dir());
}

#[test]
fn exit_reasons() {
    let limit = Some(crate::manifest::units::Size::from_bytes(64 << 20));
    // Status words as waitpid gives them.
    let exited = |code: i32| code << 8;
    let killed = |sig: i32| sig;
    assert_eq!(exit_reason(exited(3), false, limit), "exited with status 3");
    assert_eq!(
        exit_reason(killed(libc::SIGSEGV), false, limit),
        "killed by SIGSEGV"
    );
    assert_eq!(
        exit_reason(killed(libc::SIGKILL), true, limit),
        "killed by the kernel: out of memory (limit 64M)"
    );
    assert_eq!(
        exit_reason(killed(libc::SIGKILL), false, limit),
        "killed by SIGKILL"
    );
    assert_eq!(exit_reason(killed(40), false, None), "killed by signal 40");
}

#[test]
fn the_config_can_force_a_version() {
    use crate::config::CgroupMode;
    assert_eq!(
        forced(Kind::Hybrid, CgroupMode::Auto, true).unwrap(),
        Kind::Hybrid
    );
    assert_eq!(
        forced(Kind::Hybrid, CgroupMode::V2, true).unwrap(),
        Kind::V2
    );
    assert_eq!(
        forced(Kind::Hybrid, CgroupMode::V1, true).unwrap(),
        Kind::V1
    );
    assert_eq!(
        forced(Kind::V1, CgroupMode::V2, false)
            .err()
            .unwrap()
            .to_string(),
        "cgroup: v2 is set, but no cgroup2 hierarchy is mounted"
    );
    assert_eq!(
        forced(Kind::V2, CgroupMode::V1, true)
            .err()
            .unwrap()
            .to_string(),
        "cgroup: v1 is set, but only the cgroup2 hierarchy is mounted"
    );
}
