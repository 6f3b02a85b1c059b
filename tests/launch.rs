//! Launch, on the real kernel, as root: the probe (tests/probe/probe.c) is packed into
//! an image, launched with manifests that exercise every option, and reports what it
//! sees as JSON; each property is asserted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use berth::launch::{Cgroup, NoCgroup};
use common::launch_world::{Sleeper, World, collect, mount, strings, wait};
use common::probe::Variant;
use serde_json::Value;

const DEFAULT_CAPS: &str = "0000000020000420";

#[test]
fn a_default_app_is_pid_1_in_its_own_namespaces_with_a_small_safe_world() {
    let w = World::new("default", Variant::Plain);
    let r = w.report("plain", "");
    // Namespaces: pid 1 with no parent in view, its own host name and network.
    assert_eq!(r["pid"], 1);
    assert_eq!(r["ppid"], 0);
    assert_eq!(r["hostname"], "plain");
    assert_eq!(strings(&r["interfaces"]), ["lo"]);
    // Process: root with no supplementary groups, the image's command, the default
    // environment, cwd /, stdin /dev/null, only fds 0-2, clean signals, sane limits.
    assert_eq!((r["uid"].as_i64(), r["gid"].as_i64()), (Some(0), Some(0)));
    assert_eq!(r["groups"], serde_json::json!([]));
    assert_eq!(r["pid1_cmdline"], "/bin/probe report");
    assert_eq!(
        strings(&r["env"]),
        [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME=plain"
        ]
    );
    assert_eq!(r["cwd"], "/");
    assert_eq!(r["stdin_is_devnull"], true);
    assert_eq!(r["fds"], serde_json::json!([0, 1, 2]));
    assert_eq!(r["sigmask"], "0000000000000000");
    assert_eq!(r["sigign"], "0000000000000000");
    assert_eq!(r["rlimit_nofile"], serde_json::json!([1024, 4096]));
    assert_eq!(r["rlimit_core"], serde_json::json!([0, 0]));
    assert_eq!(r["zombies"], 0);
    // Privileges: the default three capabilities in every set, no_new_privs, the
    // seccomp filter (mode 2).
    for set in ["cap_inh", "cap_prm", "cap_eff", "cap_bnd", "cap_amb"] {
        assert_eq!(r[set], DEFAULT_CAPS, "{set}");
    }
    assert_eq!(r["no_new_privs"], 1);
    assert_eq!(r["seccomp"], 2);
    // Root: the overlay, writable; /proc with runc's masks; /dev as a small tmpfs;
    // /sys read-only; generated /etc files.
    let (fstype, _) = mount(&r, "/").unwrap();
    assert_eq!(fstype, "overlay");
    assert_eq!(r["root_writable"], true);
    let (fstype, opts) = mount(&r, "/proc").unwrap();
    assert_eq!(fstype, "proc");
    assert!(
        ["nosuid", "nodev", "noexec"]
            .iter()
            .all(|o| opts.contains(o))
    );
    // Of runc's masked paths this kernel has /proc/acpi, /proc/keys, /proc/timer_list
    // and /sys/firmware (no /proc/kcore: the probe reports ENOENT for it).
    assert_eq!(mount(&r, "/proc/acpi").unwrap().0, "tmpfs");
    assert_eq!(mount(&r, "/sys/firmware").unwrap().0, "tmpfs");
    assert!(
        mount(&r, "/dev/null").is_none(),
        "device nodes are made, not mounted"
    );
    for file in ["/proc/keys", "/proc/timer_list"] {
        assert_eq!(
            mount(&r, file).unwrap().0,
            "devtmpfs",
            "{file} is /dev/null"
        );
    }
    assert!(
        r["kcore_masked"] == true || r["kcore_errno"] == "ENOENT",
        "{}",
        r["kcore_masked"]
    );
    for ro in ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/sys"] {
        assert!(mount(&r, ro).unwrap().1.contains(&"ro"), "{ro} read-only");
    }
    assert_eq!(r["proc_sys_writable"], false);
    assert_eq!(r["proc_sys_errno"], "EROFS");
    let (fstype, opts) = mount(&r, "/dev").unwrap();
    assert_eq!(fstype, "tmpfs");
    assert!(opts.contains(&"nosuid") && opts.contains(&"noexec"));
    assert_eq!(
        strings(&r["dev"]),
        [
            "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
            "stdout", "tty", "urandom", "zero"
        ]
    );
    assert_eq!(mount(&r, "/dev/pts").unwrap().0, "devpts");
    assert_eq!(mount(&r, "/dev/shm").unwrap().0, "tmpfs");
    assert_eq!(mount(&r, "/dev/mqueue").unwrap().0, "mqueue");
    assert_eq!(mount(&r, "/sys").unwrap().0, "sysfs");
    assert_eq!(r["etc_hostname"], "plain\n");
    assert_eq!(
        r["etc_hosts"],
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tplain\n"
    );
    assert_eq!(r["etc_resolv"], "# network.mode: none: no name servers\n");
    // Nothing of the host's mount table is left: the old root is detached.
    for m in r["mounts"].as_array().unwrap() {
        let target = m["target"].as_str().unwrap();
        assert!(
            !target.contains("berth-test"),
            "host path visible: {target}"
        );
    }
}

#[test]
fn the_walk_without_openat2_gives_the_same_world() {
    let w = World::new("no-openat2", Variant::Plain);
    let m = w.manifest("walk", "");
    let running = w.spawn(&mut w.launcher().without_openat2(), &m).unwrap();
    let (code, out, err) = collect(running);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["pid"], 1);
    assert_eq!(
        mount(&r, "/etc/hosts").unwrap().0,
        mount(&r, "/etc/hostname").unwrap().0
    );
    assert_eq!(mount(&r, "/proc/acpi").unwrap().0, "tmpfs");
}

#[test]
fn the_initramfs_fallback_moves_the_root_and_hides_the_host() {
    let w = World::new("move-root", Variant::Plain);
    let m = w.manifest("moved", "");
    let running = w.spawn(&mut w.launcher().with_move_root(), &m).unwrap();
    let (code, out, err) = collect(running);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["pid"], 1);
    assert_eq!(mount(&r, "/").unwrap().0, "overlay");
    assert_eq!(mount(&r, "/proc").unwrap().0, "proc");
    for m in r["mounts"].as_array().unwrap() {
        let target = m["target"].as_str().unwrap();
        assert!(
            !target.contains("berth-test"),
            "host path visible: {target}"
        );
    }
}

#[test]
fn manifest_options_reach_the_process() {
    let w = World::new("options", Variant::Plain);
    let r = w.report(
        "opts",
        "hostname: box\nenv: { GREETING: hello, PATH: /bin }\nworkdir: /tmp\nuser: \"1000:1000\"\n\
         command: [probe, report]\ncapabilities: { add: [NET_ADMIN], drop: [KILL] }\n",
    );
    assert_eq!(r["hostname"], "box");
    assert_eq!(r["etc_hostname"], "box\n");
    assert_eq!(
        strings(&r["env"]),
        ["PATH=/bin", "HOSTNAME=box", "GREETING=hello"]
    );
    assert_eq!(r["cwd"], "/tmp");
    assert_eq!(
        (
            r["uid"].as_i64(),
            r["euid"].as_i64(),
            r["gid"].as_i64(),
            r["egid"].as_i64()
        ),
        (Some(1000), Some(1000), Some(1000), Some(1000))
    );
    assert_eq!(r["groups"], serde_json::json!([]));
    // AUDIT_WRITE (29) + NET_BIND_SERVICE (10) + NET_ADMIN (12), without KILL (5);
    // as uid 1000 the set is kept by the ambient set.
    let caps = format!("{:016x}", (1u64 << 29) | (1 << 10) | (1 << 12));
    for set in ["cap_inh", "cap_prm", "cap_eff", "cap_bnd", "cap_amb"] {
        assert_eq!(r[set], caps.as_str(), "{set}");
    }
    assert_eq!(r["root_writable"], false, "uid 1000 may not write /");
}

#[test]
fn all_capabilities_dropped_and_seccomp_unconfined() {
    let w = World::new("caps", Variant::Plain);
    let r = w.report(
        "bare",
        "capabilities: { drop: [ALL] }\nseccomp: unconfined\n",
    );
    for set in ["cap_inh", "cap_prm", "cap_eff", "cap_bnd", "cap_amb"] {
        assert_eq!(r[set], "0000000000000000", "{set}");
    }
    assert_eq!(r["seccomp"], 0);
    assert_eq!(r["no_new_privs"], 1, "no_new_privs is always set");
}

#[test]
fn readonly_rootfs_refuses_writes_to_the_root() {
    let w = World::new("readonly", Variant::Plain);
    let r = w.report("ro", "readonly_rootfs: true\n");
    assert_eq!(r["root_writable"], false);
    assert_eq!(r["root_errno"], "EROFS");
    assert!(mount(&r, "/").unwrap().1.contains(&"ro"));
}

#[test]
fn bind_tmpfs_and_volume_mounts_with_nosuid_nodev() {
    let w = World::new("mounts", Variant::Plain);
    let host = w.tmp.mkdir("host-data");
    fs::write(host.join("file"), "from the host").unwrap();
    let extra = format!(
        "mounts:\n  - {{ type: bind, source: {}, target: /data, readonly: true }}\n  \
         - {{ type: tmpfs, target: /scratch, size: 1M }}\n  \
         - {{ type: volume, name: keep, target: /keep }}\n",
        host.display()
    );
    let r = w.report("mounts", &extra);
    let (_, data) = mount(&r, "/data").unwrap();
    assert!(
        ["ro", "nosuid", "nodev"].iter().all(|o| data.contains(o)),
        "{data:?}"
    );
    let (fstype, scratch) = mount(&r, "/scratch").unwrap();
    assert_eq!(fstype, "tmpfs");
    assert!(
        ["rw", "nosuid", "nodev", "size=1024k"]
            .iter()
            .all(|o| scratch.contains(o)),
        "{scratch:?}"
    );
    let (_, keep) = mount(&r, "/keep").unwrap();
    assert!(
        ["rw", "nosuid", "nodev"].iter().all(|o| keep.contains(o)),
        "{keep:?}"
    );

    let volume = w.image.state_dir.join("volumes/keep");
    let (code, out, _) = w.run(
        "mounts",
        &format!("{extra}command: [probe, write, /keep/f, kept]\n"),
    );
    assert_eq!((code, out.trim()), (0, "ok"));
    assert_eq!(fs::read_to_string(volume.join("f")).unwrap(), "kept");
    let (code, out, _) = w.run(
        "mounts",
        &format!("{extra}command: [probe, cat, /keep/f]\n"),
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "kept"),
        "the volume survives a restart"
    );
    let (code, out, _) = w.run(
        "mounts",
        &format!("{extra}command: [probe, cat, /data/file]\n"),
    );
    assert_eq!((code, out.as_str()), (0, "from the host"));
    let (code, out, _) = w.run(
        "mounts",
        &format!("{extra}command: [probe, write, /data/x, no]\n"),
    );
    assert_eq!(code, 1);
    assert!(out.starts_with("EROFS"), "{out}");
}

#[test]
fn devices_are_made_from_the_host_ones() {
    let w = World::new("devices", Variant::Plain);
    for dev in ["/dev/loop-control", "/dev/net/tun"] {
        assert!(
            std::path::Path::new(dev).exists(),
            "this test needs {dev}, which this host lacks"
        );
    }
    let r = w.report(
        "dev",
        "devices: [\"/dev/loop-control\", \"/dev/net/tun\"]\n",
    );
    assert!(strings(&r["dev"]).contains(&"loop-control".to_owned()));
    assert!(strings(&r["dev"]).contains(&"net".to_owned()));
    // Made with mknod: no mount of their own.
    assert!(mount(&r, "/dev/loop-control").is_none());
    let (code, _, err) = w.run(
        "dev",
        "devices: [\"/dev/net/tun\"]\ncommand: [probe, cat, /dev/net/tun]\n",
    );
    // It opens (a read then fails: no interface is attached), so it is there.
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("ENOENT"), "{err}");
    // In a user namespace, where mknod is refused, they are bound from the host.
    let r = w.report(
        "devns",
        "devices: [\"/dev/loop-control\"]\nnamespaces: [pid, mount, uts, ipc, net, user]\n\
         user_namespace: { uid_map: \"0:100000:65536\", gid_map: \"0:100000:65536\" }\n",
    );
    let (_, opts) = mount(&r, "/dev/loop-control").unwrap();
    assert!(
        opts.contains(&"nosuid") && opts.contains(&"noexec"),
        "{opts:?}"
    );
}

#[test]
fn the_upper_layer_survives_a_restart_and_is_reset_by_a_new_image() {
    let w = World::new("upper", Variant::Plain);
    let (code, out, _) = w.run("keeper", "command: [probe, write, /state, one]\n");
    assert_eq!((code, out.trim()), (0, "ok"));
    let (code, out, _) = w.run("keeper", "command: [probe, cat, /state]\n");
    assert_eq!((code, out.as_str()), (0, "one"));
    // Another image digest for the same app: a fresh upper layer.
    let marker = w.image.state_dir.join("apps/keeper/image");
    fs::write(&marker, "another image\n").unwrap();
    let (code, _, err) = w.run("keeper", "command: [probe, cat, /state]\n");
    assert_eq!(code, 1, "{err}");
}

#[test]
fn network_host_shares_the_hosts_interfaces() {
    let w = World::new("net-host", Variant::Plain);
    let r = w.report(
        "hostnet",
        "network: { mode: host }\nnamespaces: [pid, mount, uts, ipc]\n",
    );
    let mut host: Vec<String> = fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    host.sort();
    assert_eq!(strings(&r["interfaces"]), host);
    assert_eq!(
        r["etc_resolv"],
        fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
    );
}

#[test]
fn network_container_joins_the_other_apps_namespace() {
    let w = World::new("net-join", Variant::Plain);
    let mut launcher = w.launcher();
    let own = || fs::read_link("/proc/thread-self/ns/net").unwrap();
    let before = own();
    let apps = w.manifests(&[
        ("first", "command: [probe, sleep]\n"),
        (
            "second",
            "command: [probe, sleep]\nnetwork: { mode: \"container:first\" }\n\
             namespaces: [pid, mount, uts, ipc]\n",
        ),
    ]);
    let (first, second) = (&apps[0], &apps[1]);
    let a = w.spawn(&mut launcher, first).unwrap();
    let a = Sleeper(a.pid);
    let ns = fs::File::open(format!("/proc/{}/ns/net", a.0)).unwrap();
    use std::os::fd::AsFd;
    let b = w
        .spawn_with(&mut launcher, second, &mut NoCgroup, Some(ns.as_fd()))
        .unwrap();
    let b = Sleeper(b.pid);
    let link = |pid: i32, ns: &str| fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
    assert_eq!(link(a.0, "net"), link(b.0, "net"));
    assert_ne!(link(a.0, "pid"), link(b.0, "pid"));
    assert_ne!(link(b.0, "net"), before);
    // berth itself is back in its own namespace.
    assert_eq!(own(), before);
}

#[test]
fn a_missing_command_exits_127_with_a_clear_message() {
    let w = World::new("missing", Variant::Plain);
    let e = w.fail("ghost", "command: [/bin/ghost]\n");
    assert_eq!(e.status(), Some(127));
    assert_eq!(
        e.to_string(),
        "ghost: launch failed at exec \"/bin/ghost\": No such file or directory (os error 2)"
    );
    let e = w.fail("ghost", "command: [ghost, --flag]\n");
    assert_eq!(e.status(), Some(127));
    assert_eq!(
        e.to_string(),
        "ghost: launch failed at exec \"ghost\" (searched the app's PATH): No such file or directory (os error 2)"
    );
    // Not executable: 126.
    let e = w.fail("ghost", "command: [/etc/passwd]\n");
    assert_eq!(e.status(), Some(126));
    assert_eq!(
        e.to_string(),
        "ghost: launch failed at exec \"/etc/passwd\": Permission denied (os error 13)"
    );
}

#[test]
fn a_rootfs_without_bin_gives_a_clear_error() {
    let w = World::new("no-bin", Variant::NoBin);
    let e = w.fail("nobin", "command: [probe, report]\n");
    assert_eq!(e.status(), Some(127));
    assert_eq!(
        e.to_string(),
        "nobin: launch failed at exec \"probe\" (searched the app's PATH): No such file or directory (os error 2)"
    );
    // With the path spelt out it runs.
    let r = w.report("nobin", "command: [/probe, report]\n");
    assert_eq!(r["pid"], 1);
}

#[test]
fn a_failing_mount_names_the_step_and_the_target() {
    let w = World::new("bad-mount", Variant::Plain);
    let e = w.fail(
        "badmount",
        "mounts:\n  - { type: tmpfs, target: /etc/passwd/inner }\n",
    );
    assert_eq!(e.status(), Some(125));
    assert_eq!(
        e.to_string(),
        "badmount: launch failed at mount tmpfs on /etc/passwd/inner: Not a directory (os error 20)"
    );
}

#[test]
fn a_symlink_in_the_image_cannot_point_a_mount_at_the_host() {
    let w = World::new("symlink", Variant::Plain);
    // Put a symlink into the app's upper layer, as an image could ship it.
    let (code, _, _) = w.run("escape", "command: [probe, exit, 0]\n");
    assert_eq!(code, 0);
    // `evil -> ../../../../../../tmp`: read on the host from the upper directory, it
    // would climb to the host's /tmp.
    let upper = w.image.state_dir.join("apps/escape/upper");
    std::os::unix::fs::symlink("../../../../../../../../tmp", upper.join("evil")).unwrap();
    let inner = format!("berth-escape-{}", std::process::id());
    let extra = format!(
        "mounts:\n  - {{ type: tmpfs, target: /evil/{inner} }}\ncommand: [probe, report]\n"
    );
    let r = w.report("escape", &extra);
    // The mount landed inside the app's root: `..` stops at the app's `/`.
    assert_eq!(mount(&r, &format!("/tmp/{inner}")).unwrap().0, "tmpfs");
    assert!(
        !std::path::Path::new("/tmp").join(&inner).exists(),
        "nothing was created on the host"
    );
    let extra = extra.as_str();
    // Without openat2 a symlink in a mount target is refused.
    let m = w.manifest("escape", extra);
    let e = w
        .spawn(&mut w.launcher().without_openat2(), &m)
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "escape: launch failed at mount tmpfs on /evil/{inner}: Not a directory (os error 20)"
        )
    );
}

#[test]
fn a_leaked_descriptor_does_not_reach_the_app() {
    let w = World::new("fds", Variant::Plain);
    // A descriptor without close-on-exec, as a careless library would leave one.
    let leaked = nix::fcntl::open(
        "/etc/hostname",
        nix::fcntl::OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    let r = w.report("fds", "");
    drop(leaked);
    assert_eq!(r["fds"], serde_json::json!([0, 1, 2]));
}

#[test]
fn a_user_namespace_app_is_root_inside_and_unprivileged_outside() {
    let w = World::new("userns", Variant::Plain);
    let userns = "namespaces: [pid, mount, uts, ipc, net, user]\n\
                  user_namespace: { uid_map: \"0:100000:65536\", gid_map: \"0:100000:65536\" }\n";
    let r = w.report("userns", userns);
    assert_eq!((r["uid"].as_i64(), r["gid"].as_i64()), (Some(0), Some(0)));
    assert_eq!(
        r["root_writable"], true,
        "the idmapped image is writable through the overlay"
    );
    assert_eq!(r["cap_eff"], DEFAULT_CAPS);
    let upper = w.image.state_dir.join("apps/userns/upper");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(&upper).unwrap().uid(), 100_000);

    let m = w.manifest("userns", &format!("{userns}command: [probe, sleep]\n"));
    let app = Sleeper(w.spawn(&mut w.launcher(), &m).unwrap().pid);
    let status = fs::read_to_string(format!("/proc/{}/status", app.0)).unwrap();
    let line = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap()
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
    };
    assert_eq!(line("Uid:"), ["100000"; 4]);
    assert_eq!(line("Gid:"), ["100000"; 4]);
}

#[test]
fn init_reaps_orphans_and_the_app_is_its_child() {
    let w = World::new("init", Variant::Plain);
    let r = w.report("reaped", "init: true\ncommand: [probe, doublefork]\n");
    assert_eq!(r["pid"], 2);
    assert_eq!(r["ppid"], 1);
    assert_eq!(r["grandchild_gone"], true);
    assert_eq!(r["orphan_ppid"], 1, "the orphan went to the reaper");
    assert_eq!(r["zombies"], 0);
    assert!(
        r["pid1_cmdline"]
            .as_str()
            .unwrap()
            .starts_with("berth-init "),
        "{}",
        r["pid1_cmdline"]
    );
    // Without the reaper the app is pid 1 and the orphan stays its zombie.
    let r = w.report("unreaped", "command: [probe, doublefork]\n");
    assert_eq!(r["pid"], 1);
    assert_eq!(r["zombies"], 1);
}

#[test]
fn init_is_a_sealed_copy_and_forwards_signals_and_exit_codes() {
    let w = World::new("init-signals", Variant::Plain);
    let m = w.manifest("sig", "init: true\ncommand: [probe, signals]\n");
    let running = w.spawn(&mut w.launcher(), &m).unwrap();
    let exe = fs::read_link(format!("/proc/{}/exe", running.pid)).unwrap();
    assert!(
        exe.to_string_lossy().starts_with("/memfd:berth-init"),
        "{}",
        exe.display()
    );
    let mut out = fs::File::from(running.stdout);
    let mut ready = [0u8; 6];
    out.read_exact(&mut ready).unwrap();
    assert_eq!(&ready, b"ready\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(running.pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "term\n");
    assert_eq!(wait(running.pid), 0);
    // The app's exit code comes through the reaper; a missing app is still 127.
    assert_eq!(w.run("sig", "init: true\ncommand: [probe, exit, 3]\n").0, 3);
    let e = w.fail("sig", "init: true\ncommand: [ghost]\n");
    assert_eq!(e.status(), Some(127));
    assert_eq!(
        e.to_string(),
        "sig: launch failed at exec \"ghost\" (searched the app's PATH): No such file or directory (os error 2)"
    );
}

#[test]
fn exit_codes_and_stderr_come_through() {
    let w = World::new("exit", Variant::Plain);
    assert_eq!(w.run("code", "command: [probe, exit, 42]\n").0, 42);
    let (code, out, err) = w.run("code", "command: [probe, cat, /absent]\n");
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.starts_with("probe cat: /absent: ENOENT"), "{err}");
}

/// A v1 `pids` cgroup of the test's own, removed on drop; joined by the supervisor
/// (the child's pid to `cgroup.procs`) or, with `itself`, by the child (`0` to the
/// `tasks` file given to it), as berth's own v1 cgroups are.
struct TestCgroup {
    dir: PathBuf,
    itself: bool,
}

impl TestCgroup {
    fn new(test: &str, itself: bool) -> TestCgroup {
        let root = PathBuf::from("/sys/fs/cgroup/pids");
        assert!(
            root.join("cgroup.procs").exists(),
            "this test needs the v1 pids controller at {}",
            root.display()
        );
        let dir = root.join(format!("berth-{test}-{}", std::process::id()));
        fs::create_dir(&dir).unwrap();
        TestCgroup { dir, itself }
    }

    /// Whether `cgroups` (a `/proc/PID/cgroup` read from the host: the app sees its
    /// own cgroup as `/`, in its cgroup namespace) places the process in this cgroup.
    fn holds(&self, cgroups: &str) -> bool {
        let name = self.dir.file_name().unwrap().to_str().unwrap();
        cgroups
            .lines()
            .any(|l| l.ends_with(&format!("pids:/{name}")))
    }
}

impl Cgroup for TestCgroup {
    fn join(&mut self, pid: i32) -> std::io::Result<()> {
        assert!(!self.itself, "the child was to join by itself");
        fs::write(self.dir.join("cgroup.procs"), pid.to_string())
    }

    fn tasks(&self) -> std::io::Result<Vec<OwnedFd>> {
        if !self.itself {
            return Ok(Vec::new());
        }
        let tasks = fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("tasks"))?;
        Ok(vec![tasks.into()])
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.dir);
    }
}

/// Launches `probe sleep` as app `name` with `extra` in `cgroup`: its cgroups and
/// its uid, both as the host sees them.
fn launched_in(w: &World, cgroup: &mut TestCgroup, name: &str, extra: &str) -> (String, u32) {
    let m = w.manifest(name, &format!("{extra}command: [probe, sleep]\n"));
    let running = w.spawn_with(&mut w.launcher(), &m, cgroup, None).unwrap();
    let app = Sleeper(running.pid);
    let cgroups = fs::read_to_string(format!("/proc/{}/cgroup", app.0)).unwrap();
    let uid =
        std::os::unix::fs::MetadataExt::uid(&fs::metadata(format!("/proc/{}", app.0)).unwrap());
    (cgroups, uid)
}

#[test]
fn the_cgroup_is_joined_before_the_app_runs() {
    let w = World::new("cgroup", Variant::Plain);
    let mut cgroup = TestCgroup::new("launch-test", false);
    let (cgroups, _) = launched_in(&w, &mut cgroup, "grouped", "");
    assert!(cgroup.holds(&cgroups), "{cgroups}");
}

#[test]
fn the_child_joins_its_v1_cgroup_itself_also_from_a_user_namespace() {
    let w = World::new("selfjoin", Variant::Plain);
    let mut cgroup = TestCgroup::new("selfjoin-test", true);
    let (cgroups, _) = launched_in(&w, &mut cgroup, "grouped", "");
    assert!(cgroup.holds(&cgroups), "{cgroups}");
    // Not yet mapped to any id when it writes: the opener's credentials count.
    let userns = "namespaces: [pid, mount, uts, ipc, net, user]\n\
                  user_namespace: { uid_map: \"0:100000:65536\", gid_map: \"0:100000:65536\" }\n";
    let (cgroups, uid) = launched_in(&w, &mut cgroup, "mapped", userns);
    assert!(cgroup.holds(&cgroups), "{cgroups}");
    assert_eq!(uid, 100_000, "root of its user namespace");
}

#[test]
fn a_child_that_cannot_join_its_cgroup_fails_at_that_step() {
    let w = World::new("nojoin", Variant::Plain);
    let cgroup = TestCgroup::new("nojoin-test", true);
    // A `tasks` file open while its cgroup goes away: the kernel refuses the write.
    let tasks = cgroup.tasks().unwrap();
    fs::remove_dir(&cgroup.dir).unwrap();
    struct Gone(Vec<OwnedFd>);
    impl Cgroup for Gone {
        fn join(&mut self, _: i32) -> std::io::Result<()> {
            panic!("the child was to join by itself")
        }
        fn tasks(&self) -> std::io::Result<Vec<OwnedFd>> {
            self.0.iter().map(|fd| fd.try_clone()).collect()
        }
    }
    let m = w.manifest("lost", "");
    let e = match w.spawn_with(&mut w.launcher(), &m, &mut Gone(tasks), None) {
        Ok(running) => panic!("launched: {:?}", collect(running)),
        Err(e) => e,
    };
    assert_eq!(e.status(), Some(125));
    assert_eq!(
        e.to_string(),
        "lost: launch failed at join the cgroup: No such device (os error 19)"
    );
    drop(cgroup);
}
