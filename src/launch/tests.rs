//! Unit tests of the launch plan: pure, no root.

use std::path::Path;

use super::plan::{self, Dirs, Plan};
use super::rootfs::{Kind, Op};
use crate::caps;
use crate::image::ImageDefaults;
use crate::manifest::{self, Manifest};

fn manifest(extra: &str) -> Manifest {
    let command = if extra.contains("command:") {
        ""
    } else {
        "command: [/bin/gw, --port, \"80\"]\n"
    };
    let text = format!(
        "name: gateway\nimage: {{ path: g.tar, sha256: {} }}\n{command}{extra}",
        "ab".repeat(32)
    );
    let mut loaded = manifest::load_texts([("/etc/berth/apps.d/gateway.yaml".into(), text)]);
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    loaded.apps.pop().unwrap()
}

fn build(extra: &str) -> Plan {
    let dirs = Dirs::new(
        Path::new("/var/lib/berth"),
        Path::new("/run/berth"),
        "gateway",
    );
    plan::build(
        &manifest(extra),
        &ImageDefaults::default(),
        Path::new("/var/lib/berth/images/sha256/x/rootfs"),
        &dirs,
        &plan::Host::of(caps::CapSet::up_to(caps::LAST)),
    )
    .unwrap()
}

fn targets(plan: &Plan) -> Vec<String> {
    plan.ops
        .iter()
        .map(|op| match op {
            Op::Fs { target, .. } | Op::Bind { target, .. } | Op::Checked { target, .. } => {
                target.to_string_lossy().into_owned()
            }
            Op::Mask { fs, path, .. } | Op::ReadOnly { fs, path, .. } => {
                format!("{}/{}", fs.to_string_lossy(), path.to_string_lossy())
            }
            Op::Symlink { dir, name, .. } | Op::Node { dir, name, .. } => {
                format!("{}/{}", dir.to_string_lossy(), name.to_string_lossy())
            }
        })
        .collect()
}

#[test]
fn clone_makes_the_pid_and_user_namespaces_and_the_child_unshares_the_rest() {
    let p = build("");
    assert_eq!(p.clone_flags, libc::CLONE_NEWPID);
    assert_eq!(
        p.unshare_flags,
        libc::CLONE_NEWNS
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWNET
            | libc::CLONE_NEWCGROUP
    );
    assert!(p.net_ns && p.uts_ns && !p.user_ns && !p.init && !p.readonly_root);
    let p = build("network: { mode: host }\nnamespaces: [pid, mount]\n");
    assert_eq!(p.clone_flags, libc::CLONE_NEWPID);
    assert_eq!(p.unshare_flags, libc::CLONE_NEWNS | libc::CLONE_NEWCGROUP);
    assert!(!p.net_ns && !p.uts_ns);
    let p = build(
        "network: { mode: host }\nnamespaces: [pid, mount, user]\nuser_namespace: { uid_map: \"0:100000:65536\", gid_map: \"0:100000:65536\" }\n",
    );
    assert_eq!(p.clone_flags, libc::CLONE_NEWPID | libc::CLONE_NEWUSER);
    assert_eq!(p.unshare_flags, libc::CLONE_NEWNS | libc::CLONE_NEWCGROUP);
}

#[test]
fn the_overlay_uses_the_state_dirs_and_userxattr_in_a_user_namespace() {
    let p = build("");
    assert_eq!(
        p.overlay.to_str().unwrap(),
        "lowerdir=/var/lib/berth/images/sha256/x/rootfs,upperdir=/var/lib/berth/apps/gateway/upper,workdir=/var/lib/berth/apps/gateway/work"
    );
    assert_eq!(p.root.to_str().unwrap(), "/run/berth/apps/gateway/rootfs");
    let p = build(
        "namespaces: [pid, mount, uts, ipc, net, user]\nuser_namespace: { uid_map: \"0:100000:65536\", gid_map: \"0:100000:65536\" }\n",
    );
    assert_eq!(
        p.overlay.to_str().unwrap(),
        "lowerdir=/run/berth/apps/gateway/lower,upperdir=/var/lib/berth/apps/gateway/upper,workdir=/var/lib/berth/apps/gateway/work,userxattr"
    );
    assert!(p.user_ns);
}

#[test]
fn mounts_come_in_order_system_first_then_the_manifests() {
    let p = build(
        "mounts:\n  - { type: tmpfs, target: /run, size: 4M, readonly: true }\n  - { type: volume, name: data, target: /data }\n",
    );
    // The per-CPU thermal_throttle masks depend on this host's CPUs.
    let (thermal, t): (Vec<String>, Vec<String>) = targets(&p)
        .into_iter()
        .partition(|t| t.ends_with("/thermal_throttle"));
    for path in &thermal {
        assert!(Path::new("/").join(path).is_dir(), "{path}");
    }
    let expected_start = [
        "proc",
        "proc/acpi",
        "proc/asound",
        "proc/interrupts",
        "proc/kcore",
        "proc/keys",
        "proc/latency_stats",
        "proc/timer_list",
        "proc/timer_stats",
        "proc/sched_debug",
        "proc/scsi",
        "proc/bus",
        "proc/fs",
        "proc/irq",
        "proc/sys",
        "proc/sysrq-trigger",
        "dev",
        "dev/null",
        "dev/zero",
        "dev/full",
        "dev/random",
        "dev/urandom",
        "dev/tty",
        "dev/pts",
        "dev/shm",
        "dev/mqueue",
        "dev/ptmx",
        "dev/fd",
        "dev/stdin",
        "dev/stdout",
        "dev/stderr",
        "sys",
        "sys/firmware",
        "sys/devices/virtual/powercap",
        "etc/hostname",
        "etc/hosts",
        "etc/resolv.conf",
        "run",
        "data",
    ];
    assert_eq!(t, expected_start);
    match p.ops.iter().rev().nth(1).unwrap() {
        Op::Fs { flags, data, .. } => {
            assert_eq!(*flags, libc::MS_NOSUID | libc::MS_NODEV | libc::MS_RDONLY);
            assert_eq!(
                data.as_deref().unwrap().to_str().unwrap(),
                "mode=1777,size=4194304"
            );
        }
        other => panic!("{other:?}"),
    }
    match p.ops.last().unwrap() {
        Op::Bind {
            source,
            kind,
            flags,
            ..
        } => {
            assert_eq!(source.to_str().unwrap(), "/var/lib/berth/volumes/data");
            assert_eq!(*kind, Kind::Dir);
            assert_eq!(*flags, libc::MS_NOSUID | libc::MS_NODEV);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn devices_are_nodes_outside_a_user_namespace_and_binds_inside() {
    let p = build("devices: [/dev/null]\n");
    match p
        .ops
        .iter()
        .find(|op| matches!(op, Op::Node { name, .. } if name.to_str() == Ok("null")))
    {
        Some(Op::Node {
            dir, mode, rdev, ..
        }) => {
            assert_eq!(dir.to_str().unwrap(), "dev");
            assert_eq!(*mode & libc::S_IFMT, libc::S_IFCHR);
            assert_eq!((libc::major(*rdev), libc::minor(*rdev)), (1, 3));
        }
        other => panic!("{other:?}"),
    }
    let p = build(
        "namespaces: [pid, mount, uts, ipc, net, user]\nuser_namespace: { uid_map: \"0:100000:65536\", gid_map: \"0:100000:65536\" }\n",
    );
    assert!(
        p.ops
            .iter()
            .any(|op| matches!(op, Op::Bind { target, flags, .. }
        if target.to_str() == Ok("dev/null") && *flags == libc::MS_NOSUID | libc::MS_NOEXEC))
    );
    assert!(!p.ops.iter().any(|op| matches!(op, Op::Node { .. })));
}

#[test]
fn a_missing_bind_source_or_device_is_refused_before_clone() {
    let dirs = Dirs::new(
        Path::new("/var/lib/berth"),
        Path::new("/run/berth"),
        "gateway",
    );
    let try_build = |extra: &str| {
        plan::build(
            &manifest(extra),
            &ImageDefaults::default(),
            Path::new("/nonexistent"),
            &dirs,
            &plan::Host::of(caps::CapSet::up_to(caps::LAST)),
        )
        .err()
        .unwrap()
    };
    assert_eq!(
        try_build("mounts:\n  - { type: bind, source: /no/such/dir, target: /x }\n"),
        "gateway: bind mount source /no/such/dir does not exist on this host"
    );
    assert_eq!(
        try_build("devices: [/dev/no-such-device]\n"),
        "gateway: device /dev/no-such-device does not exist on this host"
    );
    // Under /dev by name, but a link out of it (/dev/fd -> /proc/self/fd).
    let e = try_build("devices: [/dev/fd]\n");
    assert!(
        e.starts_with("gateway: device /dev/fd resolves to /proc/")
            && e.ends_with(", which is not under /dev"),
        "{e}"
    );
}

#[test]
fn exec_candidates_follow_the_apps_path() {
    assert_eq!(plan::candidates("/bin/gw", "/usr/bin:/bin"), ["/bin/gw"]);
    assert_eq!(plan::candidates("./gw", "/usr/bin"), ["./gw"]);
    assert_eq!(
        plan::candidates("gw", "/usr/bin:/bin/:"),
        ["/usr/bin/gw", "/bin/gw", "gw"]
    );
    let p = build("env: { PATH: \"/opt/gw/bin:/bin\" }\ncommand: [gw]\n");
    let tried: Vec<_> = p
        .exec
        .candidates
        .iter()
        .map(|c| c.to_str().unwrap())
        .collect();
    assert_eq!(tried, ["/opt/gw/bin/gw", "/bin/gw"]);
    assert_eq!(p.exec.argv.len(), 1);
    let env: Vec<_> = p.exec.env.iter().map(|c| c.to_str().unwrap()).collect();
    assert_eq!(env, ["PATH=/opt/gw/bin:/bin", "HOSTNAME=gateway"]);
}

#[test]
fn capabilities_default_to_the_safe_three() {
    assert_eq!(build("").sandbox.caps, caps::DEFAULT);
    assert_eq!(
        build("capabilities: { drop: [ALL] }\n").sandbox.caps,
        caps::CapSet::EMPTY
    );
}

#[test]
fn generated_etc_files() {
    assert_eq!(
        plan::hosts("gw", &[("10.88.0.3".into(), "broker".into())]),
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tgw\n10.88.0.3\tbroker\n"
    );
    use crate::manifest::types::NetworkMode;
    let host = "search lan\nnameserver 127.0.0.53\nnameserver 192.168.1.1\nnameserver ::1\n";
    assert_eq!(plan::resolv_conf(&NetworkMode::Host, host), host);
    assert_eq!(
        plan::resolv_conf(&NetworkMode::Bridge, host),
        "search lan\nnameserver 192.168.1.1\n"
    );
    assert_eq!(
        plan::resolv_conf(&NetworkMode::None, host),
        "# network.mode: none: no name servers\n"
    );
}

#[test]
fn child_exit_statuses_follow_the_shell() {
    use super::channel::Step;
    use super::child::exit_status;
    assert_eq!(exit_status(Step::Exec, libc::ENOENT), 127);
    assert_eq!(exit_status(Step::Exec, libc::ENOTDIR), 127);
    assert_eq!(exit_status(Step::Exec, libc::EACCES), 126);
    assert_eq!(exit_status(Step::PivotRoot, libc::EINVAL), 125);
}

#[test]
fn generated_etc_files_are_never_exec_and_read_only_with_the_root() {
    let etc_flags = |p: &Plan| -> Vec<libc::c_ulong> {
        p.ops
            .iter()
            .filter_map(|op| match op {
                Op::Bind { target, flags, .. } if target.to_bytes().starts_with(b"etc/") => {
                    Some(*flags)
                }
                _ => None,
            })
            .collect()
    };
    let always = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    assert_eq!(etc_flags(&build("")), [always; 3]);
    assert_eq!(
        etc_flags(&build("readonly_rootfs: true\n")),
        [always | libc::MS_RDONLY; 3]
    );
}

#[test]
fn system_mounts_are_strict_and_masks_name_their_filesystem() {
    let p = build("mounts:\n  - { type: tmpfs, target: /run }\n");
    let strict: Vec<_> = p
        .ops
        .iter()
        .filter_map(|op| match op {
            Op::Fs { target, system, .. } => Some((target.to_str().unwrap(), *system)),
            _ => None,
        })
        .collect();
    assert_eq!(
        strict,
        [
            ("proc", true),
            ("dev", true),
            ("dev/pts", true),
            ("dev/shm", true),
            ("dev/mqueue", true),
            ("sys", true),
            ("run", false)
        ]
    );
    for op in &p.ops {
        if let Op::Mask { fs, magic, .. } | Op::ReadOnly { fs, magic, .. } = op {
            let expected = match fs.to_bytes() {
                b"proc" => crate::sys::fs::PROC_SUPER_MAGIC,
                b"sys" => crate::sys::fs::SYSFS_MAGIC,
                other => panic!("{other:?}"),
            };
            assert_eq!(*magic, expected, "{}", op.describe());
        }
    }
    assert_eq!(
        p.ops
            .iter()
            .find(|op| matches!(op, Op::Mask { .. }))
            .unwrap()
            .describe(),
        "mask /proc/acpi"
    );
}

#[test]
fn a_proc_symlink_in_the_image_is_refused_before_clone() {
    let image = std::env::temp_dir().join(format!("berth-plan-proc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&image);
    std::fs::create_dir_all(&image).unwrap();
    std::os::unix::fs::symlink("/", image.join("proc")).unwrap();
    let dirs = Dirs::new(
        Path::new("/nonexistent"),
        Path::new("/run/berth"),
        "gateway",
    );
    let e = plan::build(
        &manifest(""),
        &ImageDefaults::default(),
        &image,
        &dirs,
        &plan::Host::of(caps::CapSet::up_to(caps::LAST)),
    )
    .err();
    std::fs::remove_dir_all(&image).unwrap();
    assert_eq!(
        e.as_deref(),
        Some(
            "gateway: the image's /proc is a symbolic link: berth mounts procfs only on a real directory"
        )
    );
}

#[test]
fn the_hosts_resolv_conf_is_read_again_only_when_it_changed() {
    let dir = crate::testdir::TempDir::new("launch", "resolv");
    let path = dir.0.join("resolv.conf");
    let mut resolv = super::host::Resolv::default();
    // None yet: no name servers.
    assert_eq!(resolv.current(&path), "");
    std::fs::write(&path, "nameserver 10.0.0.1\n").unwrap();
    assert_eq!(resolv.current(&path), "nameserver 10.0.0.1\n");
    // A new file moved into place, as DHCP clients do: another inode, read again
    // (the same length, so only the file's identity tells).
    let next = dir.0.join("resolv.conf.new");
    std::fs::write(&next, "nameserver 10.0.0.2\n").unwrap();
    std::fs::rename(&next, &path).unwrap();
    assert_eq!(resolv.current(&path), "nameserver 10.0.0.2\n");
    // Rewritten in place with another length: read again.
    std::fs::write(&path, "nameserver 192.168.1.1\n").unwrap();
    assert_eq!(resolv.current(&path), "nameserver 192.168.1.1\n");
    // Unchanged: the text kept is the file's.
    assert_eq!(resolv.current(&path), "nameserver 192.168.1.1\n");
    std::fs::remove_file(&path).unwrap();
    assert_eq!(resolv.current(&path), "");
}
