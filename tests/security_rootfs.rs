//! Issue 16, items 2, 3, 7, 8, 12 and 16: the app's root, attacked through the real
//! launch path (`Launcher::spawn` over an image packed and installed with the real
//! `berth pack` and `berth unpack`), as root.
//!
//! - an image whose `/proc`, `/sys` or `/dev` is a symlink to `/` (procfs on the
//!   app's root, unmasked and writable before the fix) is refused, and the child
//!   refuses such a mount point by itself too;
//! - the masks hold (runc's, Docker's `/proc/interrupts`, powercap and the per-CPU
//!   thermal_throttle directories) and `/proc/sys` is read-only;
//! - a workdir through `/proc/self/fd` is refused; the app sees no descriptor above 2;
//! - a tmpfs mounted under a read-only bind's source is read-only in the app;
//! - systemd-resolved's dangling `/etc/resolv.conf` link gets the generated file;
//! - the generated /etc files are `nosuid,nodev,noexec`, and read-only with the root.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth::launch::rootfs::{self, Op};
use berth::launch::{Cgroup, LaunchError};
use common::TempDir;
use common::launch_world::{World, collect, mount};
use common::probe::{ProbeImage, Variant, probe_binary};
use serde_json::Value;

// ---------------------------------------------------------------- images

/// A world over a probe image whose rootfs `tweak` has changed (the hostile part),
/// with the image's WorkingDir `workdir` when given.
fn hostile_world(tag: &str, workdir: Option<&str>, tweak: impl Fn(&Path)) -> World {
    common::require_root("launch needs namespaces, mounts and pivot_root");
    let tmp = TempDir::new(tag);
    let src = tmp.join("rootfs-src");
    fs::create_dir_all(src.join("bin")).unwrap();
    fs::create_dir_all(src.join("etc")).unwrap();
    tweak(&src);
    for dir in ["proc", "sys", "dev", "tmp"] {
        if fs::symlink_metadata(src.join(dir)).is_err() {
            fs::create_dir(src.join(dir)).unwrap();
        }
    }
    fs::set_permissions(src.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::write(src.join("etc/passwd"), "root:x:0:0:root:/:/bin/probe\n").unwrap();
    fs::write(src.join("etc/group"), "root:x:0:\n").unwrap();
    fs::copy(probe_binary(), src.join("bin/probe")).unwrap();
    fs::set_permissions(src.join("bin/probe"), fs::Permissions::from_mode(0o755)).unwrap();

    let image_file = tmp.join("image.tar");
    let state_dir = tmp.join("state");
    let mut pack = berth();
    pack.arg("pack").arg(&src).arg("-o").arg(&image_file);
    if let Some(dir) = workdir {
        pack.args(["--workdir", dir]);
    }
    let out = pack
        .args(["--entrypoint", "/bin/probe", "report"])
        .output()
        .unwrap();
    assert!(out.status.success(), "pack: {out:?}");
    let digest = String::from_utf8(out.stdout).unwrap();
    let digest = digest.lines().next().unwrap().trim().to_owned();
    let out = berth()
        .arg("unpack")
        .arg(&image_file)
        .args(["--sha256", &digest, "--state-dir"])
        .arg(&state_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "unpack: {out:?}");
    let rootfs = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim_end());
    let image = ProbeImage {
        state_dir,
        digest,
        rootfs,
        image_file,
        probe: "/bin/probe",
    };
    World { tmp, image }
}

fn berth() -> Command {
    Command::new(env!("CARGO_BIN_EXE_berth"))
}

fn plan_error(e: LaunchError) -> String {
    match e {
        LaunchError::Plan { message, .. } => message,
        other => panic!("not refused before clone: {other}"),
    }
}

// ---------------------------------------------------------------- item 2

#[test]
fn an_image_with_proc_sys_or_dev_linked_to_the_root_is_refused() {
    for (name, fs) in [("proc", "procfs"), ("sys", "sysfs"), ("dev", "/dev")] {
        let w = hostile_world(&format!("{name}-link"), None, |root| {
            std::os::unix::fs::symlink("/", root.join(name)).unwrap();
        });
        let e = w.fail("linked", "");
        assert_eq!(
            plan_error(e),
            format!(
                "linked: the image's /{name} is a symbolic link: berth mounts {fs} only on a real directory"
            )
        );
    }
}

/// The child's own barrier, past the plan's check (as if the link appeared between
/// the two): `rootfs::apply` of the system mount, in a forked child with its own
/// mount namespace, refuses the link and mounts nothing on the root.
#[test]
fn the_child_refuses_a_linked_system_mount_point_by_itself() {
    common::require_root("mounts need CAP_SYS_ADMIN");
    for (name, fstype) in [("proc", c"proc"), ("sys", c"sysfs"), ("dev", c"tmpfs")] {
        for openat2 in [true, false] {
            let tmp = TempDir::new(&format!("child-{name}"));
            let root = tmp.mkdir("root");
            std::os::unix::fs::symlink("/", root.join(name)).unwrap();
            let op = Op::Fs {
                fstype,
                target: CString::new(name).unwrap(),
                flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                data: None,
                fallback: None,
                system: true,
            };
            let errno = common::in_private_namespace(&root, |root_fd| {
                match rootfs::apply(root_fd, &op, openat2) {
                    Ok(()) => 0,
                    // Nothing landed on the root either.
                    Err(e) if magic_of(root_fd) != magic_of_path(c"/") => 100 + e.errno(),
                    Err(e) => e.errno(),
                }
            });
            // openat2's RESOLVE_NO_SYMLINKS says ELOOP; the O_NOFOLLOW walk, which
            // opens the link itself as a directory, ENOTDIR.
            let expected = if openat2 { libc::ELOOP } else { libc::ENOTDIR };
            assert!(
                errno == libc::ENOTDIR || errno == expected,
                "{name} openat2={openat2}: exit {errno}"
            );
        }
    }
}

fn magic_of(fd: RawFd) -> i64 {
    // SAFETY: an all-zero statfs is valid; it is written by the call.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is writable for the call.
    unsafe { libc::fstatfs(fd, &raw mut st) };
    st.f_type as i64
}

fn magic_of_path(path: &std::ffi::CStr) -> i64 {
    // SAFETY: as in `magic_of`.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated; `st` is writable for the call.
    unsafe { libc::statfs(path.as_ptr(), &raw mut st) };
    st.f_type as i64
}

// ---------------------------------------------------------------- items 2 and 8

#[test]
fn the_masks_hold_and_proc_sys_is_read_only() {
    let w = World::new("masks", Variant::Plain);
    let r = w.report("masked", "");
    // Files behind the host's /dev/null, directories behind an empty tmpfs; every
    // path this kernel has is masked (a path it lacks cannot be read either).
    for file in [
        "keys",
        "interrupts",
        "kcore",
        "latency_stats",
        "timer_list",
        "timer_stats",
        "sched_debug",
    ] {
        let host = Path::new("/proc").join(file);
        match mount(&r, &format!("/proc/{file}")) {
            Some((fstype, _)) => assert_eq!(fstype, "devtmpfs", "/proc/{file}"),
            None => assert!(
                !host.exists(),
                "/proc/{file} is on this host but not masked"
            ),
        }
    }
    let mut dirs = vec![
        "/proc/acpi".to_owned(),
        "/proc/asound".to_owned(),
        "/proc/scsi".to_owned(),
        "/sys/firmware".to_owned(),
        "/sys/devices/virtual/powercap".to_owned(),
    ];
    for cpu in fs::read_dir("/sys/devices/system/cpu").unwrap().flatten() {
        let throttle = cpu.path().join("thermal_throttle");
        if throttle.is_dir() {
            dirs.push(throttle.to_str().unwrap().to_owned());
        }
    }
    for dir in &dirs {
        match mount(&r, dir) {
            Some((fstype, opts)) => {
                assert_eq!(fstype, "tmpfs", "{dir}");
                assert!(opts.contains(&"ro"), "{dir}: {opts:?}");
            }
            None => assert!(
                !Path::new(dir).exists(),
                "{dir} is on this host but not masked"
            ),
        }
    }
    assert!(
        mount(&r, "/proc/interrupts").is_some(),
        "this host has /proc/interrupts"
    );
    // What an attacker read and wrote through the unmasked procfs: nothing now.
    let (code, out, err) = w.run("keys", "command: [probe, cat, /proc/keys]\n");
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    let (code, out, _) = w.run(
        "sysctl",
        "command: [probe, write, /proc/sys/kernel/core_pattern, \"|/tmp/x\"]\n",
    );
    assert_eq!((code, out.as_str()), (1, "EROFS: Read-only file system\n"));
    assert_eq!(r["proc_sys_errno"], "EROFS");
    for ro in [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ] {
        match mount(&r, ro) {
            Some((fstype, opts)) => {
                assert_eq!(fstype, "proc", "{ro}");
                assert!(opts.contains(&"ro"), "{ro}: {opts:?}");
            }
            None => assert!(!Path::new(ro).exists(), "{ro} is on this host but writable"),
        }
    }
    assert!(
        mount(&r, "/proc/sys").is_some(),
        "every kernel has /proc/sys"
    );
}

// ---------------------------------------------------------------- item 3

#[test]
fn a_workdir_or_program_through_proc_is_refused() {
    let w = hostile_world("proc-workdir", Some("/proc/self/fd/7"), |_| {});
    assert_eq!(
        plan_error(w.fail("imaged", "")),
        "imaged: workdir \"/proc/self/fd/7\" is under /proc, which berth refuses from images and manifests"
    );
    assert_eq!(
        plan_error(w.fail("manifested", "workdir: /proc/self/cwd\n")),
        "manifested: workdir \"/proc/self/cwd\" is under /proc, which berth refuses from images and manifests"
    );
    let w = World::new("proc-program", Variant::Plain);
    assert_eq!(
        plan_error(w.fail("program", "command: [/proc/self/fd/3]\n")),
        "program: program \"/proc/self/fd/3\" is under /proc, which berth refuses from images and manifests"
    );
}

/// CVE-2024-21626: a host directory descriptor open in the child, and an image
/// whose WorkingDir is a link to `/proc/self/fd/N`. Before the fix the child chdir'd
/// through the link into the host directory, and the cwd check let it pass because
/// the path did not fit its 256-byte buffer (ERANGE counted as success).
#[test]
fn a_workdir_linked_to_a_host_descriptor_is_refused() {
    let outside = TempDir::new("outside");
    let deep = outside.path().join("d".repeat(200)).join("e".repeat(200));
    fs::create_dir_all(&deep).unwrap();
    let leaked = nix::fcntl::open(
        &deep,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    let n = leaked.as_raw_fd();
    let w = hostile_world("fd-workdir", Some("/work"), |root| {
        std::os::unix::fs::symlink(format!("/proc/self/fd/{n}"), root.join("work")).unwrap();
    });
    for openat2 in [true, false] {
        let m = w.manifest("escape", "command: [probe, write, planted, x]\n");
        let launcher = w.launcher();
        let mut launcher = if openat2 {
            launcher
        } else {
            launcher.without_openat2()
        };
        let e = match w.spawn(&mut launcher, &m) {
            Ok(running) => panic!("launched: {:?}", collect(running)),
            Err(e) => e,
        };
        // Refused at the workdir step either way: ENOENT where the kernel finds fd N
        // already closed by the child (it closes every host descriptor before it
        // touches the image), ELOOP where the magic link (openat2) or the symlink
        // (the walk) is refused first.
        let text = e.to_string();
        assert!(
            [
                "escape: launch failed at chdir to the workdir: No such file or directory (os error 2)",
                "escape: launch failed at chdir to the workdir: Too many levels of symbolic links (os error 40)",
            ]
            .contains(&text.as_str()),
            "openat2: {openat2}: {text}"
        );
        assert_eq!(e.status(), Some(125));
    }
    assert!(!deep.join("planted").exists());
    drop(leaked);
}

/// A cgroup v2 directory the child is cloned into (clone3's `CLONE_INTO_CGROUP`): the
/// supervisor's descriptor of it is in the child while it mounts and execs.
struct V2Cgroup {
    dir: PathBuf,
    fd: OwnedFd,
}

impl V2Cgroup {
    fn new(tag: &str) -> V2Cgroup {
        let root = Path::new("/sys/fs/cgroup/unified");
        let root = if root.join("cgroup.procs").exists() {
            root
        } else {
            Path::new("/sys/fs/cgroup")
        };
        assert!(
            root.join("cgroup.controllers").exists(),
            "this test needs a cgroup v2 hierarchy at /sys/fs/cgroup(/unified)"
        );
        let dir = root.join(format!("berth-{tag}-{}", std::process::id()));
        fs::create_dir(&dir).unwrap();
        let fd = fs::File::open(&dir).unwrap().into();
        V2Cgroup { dir, fd }
    }
}

impl Cgroup for V2Cgroup {
    fn join(&mut self, pid: i32) -> std::io::Result<()> {
        fs::write(self.dir.join("cgroup.procs"), pid.to_string())
    }
    fn clone_into(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(std::os::fd::AsFd::as_fd(&self.fd))
    }
}

impl Drop for V2Cgroup {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.dir);
    }
}

#[test]
fn the_app_sees_no_descriptor_above_2() {
    let w = World::new("fds", Variant::Plain);
    // A descriptor without close-on-exec, as a careless library would leave one.
    let leaked = nix::fcntl::open(
        "/",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    for init in ["", "init: true\n"] {
        let mut cgroup = V2Cgroup::new("fds");
        let m = w.manifest("fds", init);
        let running = w
            .spawn_with(&mut w.launcher(), &m, &mut cgroup, None)
            .unwrap();
        let (code, out, err) = collect(running);
        assert_eq!(code, 0, "{err}");
        let r: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(r["fds"], serde_json::json!([0, 1, 2]), "{init}");
    }
    drop(leaked);
}

// ---------------------------------------------------------------- item 7

/// A tmpfs mounted on the host, unmounted on drop (also when the test fails).
struct HostMount(PathBuf);

impl HostMount {
    fn tmpfs(at: &Path) -> HostMount {
        fs::create_dir_all(at).unwrap();
        let target = CString::new(at.to_str().unwrap()).unwrap();
        // SAFETY: NUL-terminated strings borrowed for the call.
        let ret = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                c"size=1m".as_ptr().cast(),
            )
        };
        assert_eq!(ret, 0, "mount tmpfs on {}", at.display());
        HostMount(at.to_path_buf())
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let target = CString::new(self.0.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated string borrowed for the call.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

#[test]
fn a_submount_of_a_readonly_bind_is_read_only() {
    let w = World::new("ro-bind", Variant::Plain);
    let source = w.tmp.mkdir("shared");
    fs::write(source.join("file"), "host").unwrap();
    // What the attack needs: a writable filesystem under the bound directory.
    let _sub = HostMount::tmpfs(&source.join("sub"));
    let bind = format!(
        "mounts:\n  - {{ type: bind, source: {}, target: /shared, readonly: true }}\n",
        source.display()
    );
    for file in ["/shared/sub/planted", "/shared/planted"] {
        let (code, out, _) = w.run("rw", &format!("{bind}command: [probe, write, {file}, x]\n"));
        assert_eq!(
            (code, out.as_str()),
            (1, "EROFS: Read-only file system\n"),
            "{file}"
        );
    }
    assert!(!source.join("sub/planted").exists());
    let r = w.report("rw", &bind);
    let (fstype, opts) = mount(&r, "/shared/sub").unwrap();
    assert_eq!(fstype, "tmpfs");
    for opt in ["ro", "nosuid", "nodev"] {
        assert!(opts.contains(&opt), "/shared/sub: {opts:?}");
    }
}

// ---------------------------------------------------------------- item 12

#[test]
fn a_dangling_resolv_conf_link_gets_the_generated_file() {
    let w = hostile_world("dangling", None, |root| {
        // systemd-resolved's link, and one absolute dangling link.
        std::os::unix::fs::symlink(
            "../run/systemd/resolve/stub-resolv.conf",
            root.join("etc/resolv.conf"),
        )
        .unwrap();
        std::os::unix::fs::symlink("/run/hosts", root.join("etc/hosts")).unwrap();
    });
    let r = w.report("resolved", "");
    assert_eq!(r["etc_resolv"], "# network.mode: none: no name servers\n");
    assert_eq!(
        r["etc_hosts"],
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tresolved\n"
    );
    // Mounted where the links lead, inside the app's root, as runc does.
    assert!(mount(&r, "/run/systemd/resolve/stub-resolv.conf").is_some());
    assert!(mount(&r, "/run/hosts").is_some());
    // Without openat2 a symlink in a mount target is refused, with the step named.
    let m = w.manifest("resolved", "");
    let e = w
        .spawn(&mut w.launcher().without_openat2(), &m)
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "resolved: launch failed at bind {} on /etc/hosts: Too many levels of symbolic links (os error 40)",
            w.run_dir().join("apps/resolved/etc/hosts").display()
        )
    );
}

// ---------------------------------------------------------------- item 16

#[test]
fn generated_etc_files_are_never_exec_and_read_only_with_the_root() {
    let w = World::new("etc-ro", Variant::Plain);
    for (extra, ro) in [("", false), ("readonly_rootfs: true\n", true)] {
        let r = w.report("etc", extra);
        for file in ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"] {
            let (_, opts) = mount(&r, file).unwrap();
            for opt in ["nosuid", "nodev", "noexec"] {
                assert!(opts.contains(&opt), "{file}: {opts:?}");
            }
            assert_eq!(opts.contains(&"ro"), ro, "{file}: {opts:?}");
        }
        let (code, out, _) = w.run(
            "etc",
            &format!("{extra}command: [probe, write, /etc/hosts, x]\n"),
        );
        if ro {
            assert_eq!((code, out.as_str()), (1, "EROFS: Read-only file system\n"));
        } else {
            assert_eq!((code, out.as_str()), (0, "ok\n"));
        }
    }
}
