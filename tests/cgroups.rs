//! cgroups on the real kernel, as root: limits that hold, OOM seen and reported, a
//! fork bomb contained, CPU quota and weights, stop kills everything, leftovers
//! cleaned. On this host the v1 controllers (hybrid layout); the cgroup2 hierarchy
//! beside them has no controllers but serves the v2 mechanics (CLONE_INTO_CGROUP,
//! cgroup.kill, freeze). The v2 controllers are tested in the virtual machine.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth::cgroup::{self, Group, Manager, Version, v2};
use berth::launch::{Launcher, Running};
use berth::manifest::Manifest;
use common::launch_world::{Sleeper, World, collect, wait};
use common::probe::Variant;

/// A manager with a root of its own (`berth-test-PID-TAG`), removed with everything
/// in it when dropped, also when the test fails.
struct Cgroups(Box<dyn Manager>);

impl Cgroups {
    fn new(tag: &str) -> Cgroups {
        common::require_root("cgroups need root");
        let root = format!("berth-test-{}-{tag}", std::process::id());
        Cgroups(cgroup::system(&root).unwrap())
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        if let Ok(groups) = self.0.existing() {
            for (_, g) in groups {
                let _ = cgroup::clean(&*g, 2000);
            }
        }
        for root in self.0.roots() {
            let _ = fs::remove_dir(root);
        }
    }
}

/// Launches `m` in `group`.
fn spawn(w: &World, m: &Manifest, group: &mut Box<dyn Group>) -> Running {
    let mut launcher: Launcher = w.launcher();
    w.spawn_with(&mut launcher, m, &mut **group, None).unwrap()
}

/// The next line of the app's stdout.
fn line(out: &mut BufReader<fs::File>) -> String {
    let mut l = String::new();
    out.read_line(&mut l).unwrap();
    l.trim_end().to_owned()
}

/// Waits until `fd` is readable, at most `ms`: true if it is.
fn readable(fd: i32, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the call.
    unsafe { libc::poll(&raw mut p, 1, ms) == 1 }
}

#[test]
fn the_host_is_hybrid_and_berth_uses_v1_here() {
    let c = Cgroups::new("detect");
    assert_eq!(c.0.version(), Version::V1);
    let offer = c.0.offer();
    for controller in ["memory", "cpu", "cpuacct", "pids", "freezer", "cpuset"] {
        assert!(
            offer.controllers.iter().any(|c| c == controller),
            "{controller}"
        );
    }
    assert!(offer.swap, "this host has swap accounting (memory.memsw.*)");
}

#[test]
fn a_memory_hog_is_oom_killed_within_its_cap_and_reported() {
    let c = Cgroups::new("oom");
    let w = World::new("oom", Variant::Plain);
    let m = w.manifest("hog", "command: [probe, hog]\nresources: { memory: 32M }\n");
    let mut group = cgroup::create(&*c.0, "hog", &m.resources).unwrap();
    let watch = group.oom_watch().unwrap();
    let running = spawn(&w, &m, &mut group);
    let (status, out, _) = collect_status(running);
    let usage = group.usage();
    assert_eq!(usage.oom_kills, 1);
    assert!(
        readable(std::os::fd::AsRawFd::as_raw_fd(&watch.fd()), 0),
        "the OOM watch fired"
    );
    assert!(watch.drain());
    let reason = cgroup::exit_reason(status, usage.oom_kills > 0, m.resources.memory);
    assert_eq!(reason, "killed by the kernel: out of memory (limit 32M)");
    let touched: u64 = out.lines().last().unwrap().parse().unwrap();
    assert!(
        (20..32).contains(&touched),
        "touched {touched} MiB before the kill"
    );
    let peak = usage.memory_peak.unwrap();
    assert!(peak <= 32 << 20, "peak {peak} within the cap");
    group.remove().unwrap();
}

/// Like `collect`, with the raw wait status.
fn collect_status(running: Running) -> (i32, String, String) {
    let pid = running.pid;
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut fs::File::from(running.stdout), &mut s).unwrap();
        s
    });
    let mut err = String::new();
    std::io::Read::read_to_string(&mut fs::File::from(running.stderr), &mut err).unwrap();
    let mut status = 0;
    // SAFETY: `status` is writable; `pid` is our child.
    assert_eq!(unsafe { libc::waitpid(pid, &raw mut status, 0) }, pid);
    (status, out.join().unwrap(), err)
}

#[test]
fn a_fork_bomb_stays_within_its_pids_limit_and_is_stopped_cleanly() {
    let c = Cgroups::new("forkbomb");
    let w = World::new("forkbomb", Variant::Plain);
    let m = w.manifest(
        "bomb",
        "command: [probe, forkbomb]\nresources: { pids: 32 }\n",
    );
    let mut group = cgroup::create(&*c.0, "bomb", &m.resources).unwrap();
    let running = spawn(&w, &m, &mut group);
    let mut out = BufReader::new(fs::File::from(running.stdout));
    assert_eq!(line(&mut out), "start");
    assert_eq!(line(&mut out), "limited");
    let pids = group.usage().pids.unwrap();
    assert!(pids <= 32, "{pids} processes");
    let pids_dir = group
        .dirs()
        .into_iter()
        .find(|d| d.starts_with("/sys/fs/cgroup/pids"))
        .unwrap();
    let events = fs::read_to_string(pids_dir.join("pids.events")).unwrap();
    assert!(!events.contains("max 0"), "the limit was hit: {events}");
    // berth keeps working: another app launches meanwhile.
    let r = w.report("bystander", "");
    assert_eq!(r["pid"], 1);
    // Stop: everything goes.
    group.kill_all().unwrap();
    assert_eq!(wait(running.pid), 128 + libc::SIGKILL);
    assert_eq!(group.procs().unwrap(), Vec::<i32>::new());
    group.remove().unwrap();
    assert!(!pids_dir.exists());
}

/// The CPU time of a spinning app over `secs` seconds of wall time.
fn spin_for(w: &World, group: &mut Box<dyn Group>, m: &Manifest, secs: f64) -> (u64, Running) {
    let running = spawn(w, m, group);
    let stdout = running.stdout.try_clone().unwrap();
    let mut out = BufReader::new(fs::File::from(stdout));
    assert_eq!(line(&mut out), "spinning");
    let start_cpu = group.usage().cpu_ns.unwrap();
    let start = Instant::now();
    // A measurement window, not a wait for an event.
    std::thread::sleep(Duration::from_secs_f64(secs));
    let cpu = group.usage().cpu_ns.unwrap() - start_cpu;
    let wall = start.elapsed().as_secs_f64();
    ((cpu as f64 * secs / wall) as u64, running)
}

#[test]
fn a_cpu_quota_holds() {
    let c = Cgroups::new("quota");
    let w = World::new("quota", Variant::Plain);
    let m = w.manifest("spin", "command: [probe, spin]\nresources: { cpu: 0.2 }\n");
    let mut group = cgroup::create(&*c.0, "spin", &m.resources).unwrap();
    let (cpu, running) = spin_for(&w, &mut group, &m, 3.0);
    group.kill_all().unwrap();
    wait(running.pid);
    group.remove().unwrap();
    let limit = (0.2 * 3.0 * 1.1 * 1e9) as u64;
    assert!(cpu <= limit, "{cpu} ns of cpu in 3 s, limit {limit}");
    assert!(cpu >= 300_000_000, "{cpu} ns: it ran");
}

#[test]
fn cpu_weights_share_one_cpu_one_to_three() {
    let c = Cgroups::new("weights");
    let w = World::new("weights", Variant::Plain);
    let light = w.manifest(
        "light",
        "command: [probe, spin]\nresources: { cpu_weight: 100, cpuset: \"0\" }\n",
    );
    let heavy = w.manifest(
        "heavy",
        "command: [probe, spin]\nresources: { cpu_weight: 300, cpuset: \"0\" }\n",
    );
    let mut a = cgroup::create(&*c.0, "light", &light.resources).unwrap();
    let mut b = cgroup::create(&*c.0, "heavy", &heavy.resources).unwrap();
    let ra = spawn(&w, &light, &mut a);
    let rb = spawn(&w, &heavy, &mut b);
    for r in [&ra, &rb] {
        let out = r.stdout.try_clone().unwrap();
        assert_eq!(line(&mut BufReader::new(fs::File::from(out))), "spinning");
    }
    let (a0, b0) = (a.usage().cpu_ns.unwrap(), b.usage().cpu_ns.unwrap());
    std::thread::sleep(Duration::from_secs(3));
    let (a1, b1) = (a.usage().cpu_ns.unwrap(), b.usage().cpu_ns.unwrap());
    for (g, r) in [(&a, ra), (&b, rb)] {
        g.kill_all().unwrap();
        wait(r.pid);
        g.remove().unwrap();
    }
    let ratio = (b1 - b0) as f64 / (a1 - a0) as f64;
    assert!((2.55..=3.45).contains(&ratio), "heavy/light = {ratio:.2}");
}

#[test]
fn stop_kills_a_tree_that_ignores_sigterm_and_double_forks() {
    let c = Cgroups::new("stop");
    let w = World::new("stop", Variant::Plain);
    // No pid namespace: the orphaned grandchild leaves the app's process tree, and
    // only the cgroup still holds it.
    let m = w.manifest(
        "tree",
        "command: [probe, stubborn]\nnamespaces: [mount, uts, ipc, net]\n",
    );
    let mut group = cgroup::create(&*c.0, "tree", &m.resources).unwrap();
    let running = spawn(&w, &m, &mut group);
    let mut out = BufReader::new(fs::File::from(running.stdout));
    let ready = line(&mut out);
    let grandchild: i32 = ready.strip_prefix("ready ").unwrap().parse().unwrap();
    // SAFETY: plain integer arguments.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, grandchild, 0) };
    assert!(pidfd >= 0);
    // SAFETY: just created, owned here.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    assert_eq!(group.procs().unwrap().len(), 2);
    // SIGTERM is ignored.
    // SAFETY: plain integer arguments.
    unsafe { libc::kill(running.pid, libc::SIGTERM) };
    assert!(!readable(pidfd.as_raw_fd(), 100));
    group.kill_all().unwrap();
    assert_eq!(wait(running.pid), 128 + libc::SIGKILL);
    assert!(readable(pidfd.as_raw_fd(), 5000), "the grandchild is gone");
    let dirs = group.dirs();
    cgroup::clean(&*group, 5000).unwrap();
    assert!(dirs.iter().all(|d| !d.exists()), "cgroup removed");
}

#[test]
fn an_app_runs_in_512k() {
    let c = Cgroups::new("small");
    let w = World::new("small", Variant::Plain);
    let m = w.manifest(
        "small",
        "command: [probe, alloc, \"64\"]\nresources: { memory: 512K }\n",
    );
    let mut group = cgroup::create(&*c.0, "small", &m.resources).unwrap();
    let running = spawn(&w, &m, &mut group);
    let (code, out, err) = collect(running);
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");
    assert_eq!(group.usage().oom_kills, 0);
    group.remove().unwrap();
}

#[test]
fn leftovers_of_a_berth_that_died_are_killed_and_removed() {
    let c = Cgroups::new("leftover");
    let w = World::new("leftover", Variant::Plain);
    let m = w.manifest("old", "command: [probe, sleep]\n");
    let mut group = cgroup::create(&*c.0, "old", &m.resources).unwrap();
    let running = spawn(&w, &m, &mut group);
    let dirs = group.dirs();
    drop(group);
    // A new berth with the same root finds it...
    let root = format!("berth-test-{}-leftover", std::process::id());
    let again = cgroup::system(&root).unwrap();
    let found = again.existing().unwrap();
    assert_eq!(
        found.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["old"]
    );
    // ... and cleans it up.
    for (_, g) in &found {
        cgroup::clean(&**g, 5000).unwrap();
    }
    assert_eq!(wait(running.pid), 128 + libc::SIGKILL);
    assert!(dirs.iter().all(|d| !d.exists()));
    // Creating a cgroup over a leftover of the same name replaces it.
    let mut g = cgroup::create(&*again, "old", &m.resources).unwrap();
    let r2 = spawn(&w, &m, &mut g);
    let g2 = cgroup::create(&*again, "old", &m.resources).unwrap();
    assert_eq!(wait(r2.pid), 128 + libc::SIGKILL);
    assert!(g2.procs().unwrap().is_empty());
}

/// The cgroup2 hierarchy of this host (no controllers): the v2 mechanics.
fn unified() -> PathBuf {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let path = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap()
        .to_owned();
    PathBuf::from("/sys/fs/cgroup/unified").join(path.trim_start_matches('/'))
}

struct V2Root(PathBuf);

impl Drop for V2Root {
    fn drop(&mut self) {
        if let Ok(entries) = fs::read_dir(&self.0) {
            for e in entries.flatten() {
                if let Ok(g) = v2::V2Group::open(e.path()) {
                    let _ = cgroup::clean(&g, 2000);
                }
            }
        }
        let _ = fs::remove_dir(&self.0);
    }
}

#[test]
fn v2_clone_into_cgroup_and_cgroup_kill() {
    common::require_root("cgroups need root");
    let own = unified();
    assert!(
        own.join("cgroup.procs").exists(),
        "this test needs the cgroup2 hierarchy at {}",
        own.display()
    );
    let name = format!("berth-test-{}-v2", std::process::id());
    let m2 = v2::V2::new(&own, &name).unwrap();
    let _root = V2Root(own.join(&name));
    let w = World::new("v2", Variant::Plain);
    let m = w.manifest("v2app", "command: [probe, sleep]\n");
    let mut group = cgroup::create(&m2, "v2app", &m.resources).unwrap();
    assert!(group.clone_into().is_some());
    let running = spawn(&w, &m, &mut group);
    // Seen from the host: its own cgroup namespace shows the app its cgroup as `/`.
    let app = Sleeper(running.pid);
    let host_view = fs::read_to_string(format!("/proc/{}/cgroup", app.0)).unwrap();
    let expected = format!(
        "0::/{}/v2app",
        own.strip_prefix("/sys/fs/cgroup/unified")
            .unwrap()
            .join(&name)
            .display()
    )
    .replace("//", "/");
    assert!(host_view.lines().any(|l| l == expected), "{host_view}");
    drop(app);
    // cgroup.kill, then the freezer way, on a process tree outside a pid namespace.
    for freeze in [false, true] {
        let tree = w.manifest(
            "tree2",
            "command: [probe, stubborn]\nnamespaces: [mount, uts, ipc, net]\n",
        );
        let g = v2::V2Group::open(group.dirs()[0].clone()).unwrap();
        let running = spawn(&w, &tree, &mut group);
        let mut out = BufReader::new(fs::File::from(running.stdout));
        assert!(line(&mut out).starts_with("ready "));
        assert_eq!(g.procs().unwrap().len(), 2);
        if freeze {
            g.kill_frozen().unwrap()
        } else {
            group.kill_all().unwrap()
        }
        assert_eq!(wait(running.pid), 128 + libc::SIGKILL);
        cgroup::clean(&g, 5000).map(drop).unwrap_or_default();
        group = cgroup::create(&m2, "v2app", &m.resources).unwrap();
    }
    group.remove().unwrap();
}

#[test]
fn the_config_can_force_the_unified_hierarchy_on_this_hybrid_host() {
    common::require_root("cgroups need root");
    let root = format!("berth-test-{}-forced", std::process::id());
    // Removed on drop, also when an assertion fails.
    let m = Cgroups(cgroup::system_with(&root, berth::config::CgroupMode::V2).unwrap());
    assert_eq!(m.0.version(), Version::V2);
    // This host's cgroup2 has no controllers: limits would be refused by name.
    assert!(m.0.offer().controllers.is_empty());
    let roots = m.0.roots();
    assert!(roots[0].starts_with("/sys/fs/cgroup/unified"), "{roots:?}");
}
