//! Issue 16, items 4, 14 and 11b, as an attacker tries them through the real `berth
//! run`, as root, on this host's cgroup v1 controllers (the v2 device program is proven
//! in the VM, tests/vm_security.rs): an app with CAP_MKNOD makes the host's /dev/kmsg
//! (c 1:11) and writes into it; `devices:` names /proc; a fork bomb without
//! `resources.pids`. The attacks are `tests/attack/devices.c`, bound into the probe
//! image; each app prints one line of outcomes and exits 0, and the test reads it
//! after berth reports the exit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::fs;
use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::berth_run::Berth;

/// The attack program, compiled once per test process.
fn attack() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("berth-attack-{}", std::process::id()));
            common::attack_program("devices", &dir)
        })
        .clone()
}

/// A manifest body that runs the attack program (bound read-only at /attack) with
/// `args`, plus `extra`.
fn app(args: &[&str], extra: &str) -> String {
    let argv: Vec<String> = std::iter::once("/attack".to_owned())
        .chain(args.iter().map(|a| format!("{a:?}")))
        .collect();
    format!(
        "command: [{}]\nrestart: {{ policy: never }}\n\
         mounts:\n  - {{ type: bind, source: {}, target: /attack, readonly: true }}\n{extra}",
        argv.join(", "),
        attack().display()
    )
}

/// The host's kernel log from now on: records written after `open`.
struct Kmsg(fs::File);

impl Kmsg {
    fn open() -> Kmsg {
        let f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .expect("open the host's /dev/kmsg");
        // SAFETY: plain integer arguments on an open descriptor.
        let at = unsafe { libc::lseek(std::os::fd::AsRawFd::as_raw_fd(&f), 0, libc::SEEK_END) };
        assert!(at >= 0, "seek to the end of /dev/kmsg");
        Kmsg(f)
    }

    /// Every record since `open` (one read per record; EAGAIN at the end).
    fn records(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("read /dev/kmsg: {e}"),
            }
        }
        out
    }
}

/// A directory of device nodes under the host's /dev, removed on drop (also when the
/// test fails).
struct DevDir(PathBuf);

impl DevDir {
    fn new(nodes: &[(&str, u32, u32)]) -> DevDir {
        let dir = PathBuf::from(format!("/dev/berth-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("notes"), "not a device\n").unwrap();
        for (name, major, minor) in nodes {
            let path = std::ffi::CString::new(dir.join(name).to_str().unwrap()).unwrap();
            // SAFETY: `path` is NUL-terminated and borrowed for the call.
            let ret = unsafe {
                libc::mknod(
                    path.as_ptr(),
                    libc::S_IFCHR | 0o666,
                    libc::makedev(*major, *minor),
                )
            };
            assert_eq!(
                ret,
                0,
                "mknod {path:?}: {}",
                std::io::Error::last_os_error()
            );
        }
        DevDir(dir)
    }
}

impl Drop for DevDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What the app itself printed on stdout (its log file holds `TIME stdout TEXT`
/// lines, and berth's own lines about it, `TIME berth ...`).
fn printed(b: &Berth, name: &str) -> Vec<String> {
    b.log(name)
        .lines()
        .filter_map(|l| l.split_once(" stdout ").map(|(_, text)| text.to_owned()))
        .collect()
}

/// Every line `name` printed up to the first that starts with `last`, as berth
/// copies them to its console (`app_logs_to_console`): the stream is the event (the
/// log file may lag behind it), so this waits for it.
fn said_until(b: &mut Berth, name: &str, last: &str) -> Vec<String> {
    let needle = format!(" {name} stdout ");
    let mut at = 0;
    let mut out = Vec::new();
    loop {
        while let Some(line) = b.seen.get(at) {
            at += 1;
            if let Some((_, text)) = line.split_once(&needle) {
                out.push(text.to_owned());
                if text.starts_with(last) {
                    return out;
                }
            }
        }
        b.expect(&needle, 30);
    }
}

/// The one line `name` printed.
fn said(b: &mut Berth, name: &str) -> String {
    let lines = said_until(b, name, "");
    lines.concat()
}

/// `berth run` over `apps`, each line they print also on berth's console.
fn start(tag: &str, apps: &[(&str, &str)]) -> Berth {
    Berth::start_in(tag, apps, &[], "app_logs_to_console: true\n")
}

#[test]
fn mknod_of_the_host_kmsg_is_refused_and_only_listed_devices_open() {
    let marker = format!("berth-attack-{}", std::process::id());
    let allowed_marker = format!("berth-allowed-{}", std::process::id());
    let mknod = "capabilities: { add: [MKNOD] }\n";
    let mut kmsg = Kmsg::open();
    let attack_args = ["mknod-write", "/dev/k", "1", "11", marker.as_str()];
    let allowed_args = [
        "mknod-write",
        "/dev/kmsg",
        "1",
        "11",
        allowed_marker.as_str(),
    ];
    let apps = [
        // The attack: mknod c 1 11 and a write to it.
        ("attacker", app(&attack_args, mknod)),
        // The same write, with the node given by the manifest: it works (the rule is
        // what changed, nothing else).
        (
            "listed",
            app(&allowed_args, &format!("{mknod}devices: [/dev/kmsg]\n")),
        ),
        // The standard set and a listed /dev/null-style node open.
        (
            "null",
            app(&["open", "/dev/null"], "devices: [/dev/null]\n"),
        ),
        ("zero", app(&["open", "/dev/zero"], "")),
    ];
    let apps: Vec<(&str, &str)> = apps.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let mut b = start("devices", &apps);
    b.expect_all(
        &[
            "attacker exited with status 0",
            "listed exited with status 0",
            "null exited with status 0",
            "zero exited with status 0",
        ],
        30,
    );
    assert_eq!(said(&mut b, "attacker"), "mknod=EPERM open=ENOENT write=-");
    assert_eq!(said(&mut b, "listed"), "mknod=EEXIST open=ok write=ok");
    assert_eq!(said(&mut b, "null"), "/dev/null open=ok write=ok read=ok");
    assert_eq!(said(&mut b, "zero"), "/dev/zero open=ok write=ok read=ok");
    let records = kmsg.records();
    assert!(
        !records.iter().any(|r| r.contains(&marker)),
        "the attacker reached the host's kernel log: {records:?}"
    );
    assert!(
        records.iter().any(|r| r.contains(&allowed_marker)),
        "the listed /dev/kmsg did not reach the kernel log: {records:?}"
    );
    assert_eq!(b.stop(20), 0);
}

#[test]
fn a_directory_of_devices_expands_to_its_nodes() {
    let dir = DevDir::new(&[("null", 1, 3), ("kmsg", 1, 11)]);
    let shown = dir.0.to_str().unwrap().to_owned();
    let mut b = start(
        "devices-dir",
        &[
            (
                "lister",
                &app(&["nodes", &shown], &format!("devices: [{shown}]\n")),
            ),
            (
                "reader",
                &app(
                    &["open", &format!("{shown}/null")],
                    &format!("devices: [{shown}]\n"),
                ),
            ),
        ],
    );
    b.expect_all(
        &["lister exited with status 0", "reader exited with status 0"],
        30,
    );
    let lines = said_until(&mut b, "lister", "end of");
    // The nodes only: not the plain file, not the subdirectory.
    assert_eq!(
        lines,
        [
            "kmsg c 1:11",
            "null c 1:3",
            format!("end of {shown}").as_str()
        ]
    );
    assert_eq!(
        said(&mut b, "reader"),
        format!("{shown}/null open=ok write=ok read=ok")
    );
    assert_eq!(b.stop(20), 0);
}

#[test]
fn devices_outside_dev_are_refused_by_run_and_by_check() {
    let mut b = start(
        "devices-proc",
        &[
            (
                "procfs",
                &app(&["nodes", "/proc"], "devices: [\"/proc\"]\n"),
            ),
            ("fine", &app(&["open", "/dev/null"], "")),
        ],
    );
    let file = b.tmp.join("apps/procfs.yaml");
    let expected = format!(
        "{}:7:11: procfs: device /proc is not under /dev: only character and block device \
         nodes (or a directory of them) under /dev can be given to an app",
        file.display()
    );
    let line = b.expect("device /proc is not under /dev", 30);
    assert!(line.ends_with(&expected), "{line}");
    // A bad manifest never stops the good ones.
    b.expect("fine exited with status 0", 30);
    assert!(
        b.log("procfs").is_empty(),
        "procfs ran: {}",
        b.log("procfs")
    );
    assert_eq!(b.stop(20), 0);

    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("check")
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(&expected), "{text}");
}

#[test]
fn a_link_out_of_dev_is_refused_at_launch() {
    // /dev/fd -> /proc/self/fd passes the manifest's check (it is under /dev by name)
    // and is refused where it resolves, before the app starts.
    let mut b = start(
        "devices-link",
        &[(
            "linker",
            &app(&["open", "/dev/null"], "devices: [/dev/fd]\n"),
        )],
    );
    let line = b.expect(
        "linker could not start: device /dev/fd resolves to /proc/",
        30,
    );
    assert!(line.contains(", which is not under /dev"), "{line}");
    assert_eq!(printed(&b, "linker"), Vec::<String>::new(), "linker ran");
    assert_eq!(b.stop(20), 0);
}

#[test]
fn apps_without_a_pids_limit_get_the_default() {
    let mut b = Berth::start_in(
        "devices-pids",
        &[
            ("bomb", "command: [probe, forkbomb]\n"),
            ("own", "command: [probe, sleep]\nresources: { pids: 7 }\n"),
        ],
        &[],
        "default_pids: 40\napp_logs_to_console: true\n",
    );
    b.expect_all(&["bomb: running", "own: running"], 30);
    let manager = berth::cgroup::system(&b.cgroup_root).unwrap();
    let groups = manager.existing().unwrap();
    let pids_dir = |app: &str| {
        let (_, g) = groups.iter().find(|(n, _)| n == app).unwrap();
        g.dirs()
            .into_iter()
            .find(|d| d.join("pids.max").exists())
            .unwrap_or_else(|| panic!("{app}: no pids cgroup among {:?}", g.dirs()))
    };
    let read = |d: &Path, f: &str| fs::read_to_string(d.join(f)).unwrap().trim().to_owned();
    assert_eq!(read(&pids_dir("bomb"), "pids.max"), "40");
    assert_eq!(read(&pids_dir("own"), "pids.max"), "7");
    // The bomb hits its own limit: its first process says so when a fork fails.
    assert_eq!(said_until(&mut b, "bomb", "limited"), ["start", "limited"]);
    let current: u64 = read(&pids_dir("bomb"), "pids.current").parse().unwrap();
    assert!(current <= 40, "pids.current {current}");
    assert_eq!(b.stop(30), 0);
}
