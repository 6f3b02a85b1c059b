//! The probe and its image build: the probe runs on the host and reports valid JSON,
//! and `probe_image` installs an image that holds it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::TempDir;
use common::probe::{Variant, probe_binary, probe_image};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

const KEYS: &[&str] = &[
    "pid",
    "ppid",
    "hostname",
    "uid",
    "euid",
    "gid",
    "egid",
    "groups",
    "cap_inh",
    "cap_prm",
    "cap_eff",
    "cap_bnd",
    "cap_amb",
    "no_new_privs",
    "seccomp",
    "sigmask",
    "sigign",
    "mounts",
    "fds",
    "cgroup",
    "env",
    "cwd",
    "kcore_masked",
    "kcore_errno",
    "proc_sys_writable",
    "proc_sys_errno",
    "interfaces",
    "rlimit_nofile",
    "rlimit_core",
    "stdin_is_devnull",
    "root_writable",
    "root_errno",
    "dev",
    "etc_hostname",
    "etc_hosts",
    "etc_resolv",
    "pid1_cmdline",
    "zombies",
];

fn run_probe(args: &[&str]) -> (Value, u32) {
    let child = Command::new(probe_binary())
        .args(args)
        .env("PROBE_SMOKE", "a \"quoted\"\tvalue\n")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "probe {args:?}: {}", out.status);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "one line of JSON: {text}");
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (json, pid)
}

#[test]
fn probe_reports_valid_json_about_itself() {
    let (report, pid) = run_probe(&["report"]);
    for key in KEYS {
        assert!(report.get(key).is_some(), "no {key:?} in {report}");
    }
    assert_eq!(report["pid"], u64::from(pid));
    assert_eq!(report["ppid"], u64::from(std::process::id()));
    assert_eq!(report["stdin_is_devnull"], true);
    assert_eq!(report["uid"], u64::from(nix::unistd::getuid().as_raw()));
    assert!(
        report["env"]
            .as_array()
            .unwrap()
            .contains(&Value::from("PROBE_SMOKE=a \"quoted\"\tvalue\n")),
        "{}",
        report["env"]
    );
    let mounts = report["mounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["target"] == "/proc" && m["fstype"] == "proc"),
        "{mounts:?}"
    );
    for fd in [0, 1, 2] {
        assert!(report["fds"].as_array().unwrap().contains(&fd.into()));
    }
    assert_eq!(report["cap_eff"].as_str().unwrap().len(), 16);
    // The default subcommand is report.
    let (default, _) = run_probe(&[]);
    assert!(default.get("zombies").is_some());
}

#[test]
fn probe_doublefork_waits_for_the_orphan() {
    let (report, _) = run_probe(&["doublefork"]);
    assert!(report["grandchild_pid"].as_u64().unwrap() > 0, "{report}");
    assert!(report["orphan_ppid"].as_u64().is_some(), "{report}");
    assert_eq!(report["grandchild_gone"], true, "{report}");
}

#[test]
fn probe_small_subcommands() {
    let probe = probe_binary();
    let status = Command::new(&probe).args(["exit", "7"]).status().unwrap();
    assert_eq!(status.code(), Some(7));
    let d = TempDir::new("probe-cmds");
    let file = d.s("f");
    let out = Command::new(&probe)
        .args(["write", &file, "hello"])
        .output()
        .unwrap();
    assert_eq!(
        (out.status.code(), &out.stdout[..]),
        (Some(0), &b"ok\n"[..])
    );
    let out = Command::new(&probe).args(["cat", &file]).output().unwrap();
    assert_eq!(
        (out.status.code(), &out.stdout[..]),
        (Some(0), &b"hello"[..])
    );
    let out = Command::new(&probe)
        .args(["cat", &d.s("missing")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// A probe running on the host, its stdout read line by line on a thread (so a probe
/// that never prints fails the test instead of hanging it). Dropping it kills and reaps
/// the probe, so a failed assertion leaves no spinning process behind.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn spawn(args: &[&str]) -> Running {
        let mut child = Command::new(probe_binary())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a line from the probe within 10 s")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn probe_cgroup_subcommands_on_the_host() {
    let spin = Running::spawn(&["spin"]);
    assert_eq!(spin.line(), "spinning");
    drop(spin);

    let hog = Running::spawn(&["hog"]);
    for mib in ["1", "2", "3"] {
        assert_eq!(hog.line(), mib);
    }
    drop(hog);

    let out = Command::new(probe_binary())
        .args(["alloc", "1024"])
        .output()
        .unwrap();
    assert_eq!(
        (out.status.code(), &out.stdout[..]),
        (Some(0), &b"ok\n"[..])
    );

    // stubborn ignores SIGTERM and orphans a grandchild that does too.
    let stubborn = Running::spawn(&["stubborn"]);
    let line = stubborn.line();
    let grandchild: i32 = line
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not \"ready PID\": {line:?}"));
    let grandchild = Pid::from_raw(grandchild);
    assert!(grandchild.as_raw() > 0 && grandchild != stubborn.pid());
    kill(stubborn.pid(), Signal::SIGTERM).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let main_alive = kill(stubborn.pid(), None);
    let grandchild_alive = kill(grandchild, None);
    // Kill both before asserting, so a failure leaves neither behind; the grandchild
    // was orphaned, so whoever adopted it reaps it.
    let _ = kill(grandchild, Signal::SIGKILL);
    drop(stubborn);
    assert_eq!(main_alive, Ok(()), "stubborn died of SIGTERM");
    assert_eq!(grandchild_alive, Ok(()), "the grandchild is gone");
}

#[test]
fn probe_image_installs_a_rootfs_with_the_probe() {
    let tmp = TempDir::new("probe-image");
    let plain = probe_image(&tmp, Variant::Plain);
    assert_eq!(plain.digest.len(), 64);
    let probe = plain.rootfs.join("bin/probe");
    assert!(probe.is_file(), "{}", plain.rootfs.display());
    assert_eq!(
        probe.metadata().unwrap().permissions().mode() & 0o7777,
        0o755
    );
    assert_eq!(
        plain
            .rootfs
            .join("tmp")
            .metadata()
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o1777
    );
    assert!(plain.rootfs.join("etc/passwd").is_file());
    assert!(plain.rootfs.starts_with(&plain.state_dir));
    assert!(plain.image_file.is_file());

    let nobin = probe_image(&tmp, Variant::NoBin);
    assert!(nobin.rootfs.join("probe").is_file());
    assert!(!nobin.rootfs.join("bin").exists());
    assert_eq!(nobin.probe, "/probe");
    assert_ne!(nobin.digest, plain.digest);
}
