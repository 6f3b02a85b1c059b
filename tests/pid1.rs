//! berth as PID 1, in a pid namespace of its own (where it is init, and where
//! reboot(2) ends the namespace: its init is killed by SIGHUP for a restart and by
//! SIGINT for a power-off or halt, so the test sees which one berth asked for).
//! The boot on a real kernel is tested in the virtual machine.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use common::berth_run::Berth;

/// An app that stops on SIGTERM, healthy once its handler is in place (before, as
/// the init of its pid namespace, it would ignore SIGTERM).
const READY: &str = "command: [probe, signals]\n\
    healthcheck: { exec: [probe, cat, /tmp/signals-ready], interval: 100ms, timeout: 90ms }\n";

const WRAPPER: [&str; 6] = [
    "unshare",
    "--pid",
    "--fork",
    "--mount",
    "--uts",
    "--mount-proc",
];

/// The signal that ended berth as a namespace's init, through unshare (which passes
/// a child's death by a signal on by dying of it, or as 128 + signal).
fn ended_by(status: std::process::ExitStatus) -> i32 {
    status
        .signal()
        .or_else(|| status.code().map(|c| c - 128))
        .unwrap()
}

#[test]
fn sigterm_to_init_stops_the_apps_then_reboots() {
    let mut b = Berth::start_in(
        "pid1-term",
        &[("app", READY)],
        &WRAPPER,
        "hostname: device-7\n",
    );
    b.expect("app: healthy", 30);
    b.signal(libc::SIGTERM);
    let status = b.wait_exit(30);
    assert_eq!(
        ended_by(status),
        libc::SIGHUP,
        "reboot; seen:\n{}",
        b.seen.join("\n")
    );
    assert!(
        b.seen.iter().any(|l| l.contains("app: stopped")),
        "{:#?}",
        b.seen
    );
    assert!(b.seen.iter().any(|l| l.contains("Reboot")), "{:#?}", b.seen);
    assert!(b.log("app").contains("stdout term"));
}

#[test]
fn sigusr2_powers_off_and_sigusr1_halts() {
    for (signal, tag) in [(libc::SIGUSR2, "pid1-usr2"), (libc::SIGUSR1, "pid1-usr1")] {
        let mut b = Berth::start_in(tag, &[("app", READY)], &WRAPPER, "");
        b.expect("app: healthy", 30);
        b.signal(signal);
        let status = b.wait_exit(30);
        assert_eq!(
            ended_by(status),
            libc::SIGINT,
            "seen:\n{}",
            b.seen.join("\n")
        );
        let word = if signal == libc::SIGUSR2 {
            "PowerOff"
        } else {
            "Halt"
        };
        assert!(b.seen.iter().any(|l| l.contains(word)), "{:#?}", b.seen);
    }
}

#[test]
fn a_panic_as_init_reboots_instead_of_aborting() {
    common::require_root("unshare --pid needs root");
    let out = Command::new("unshare")
        .args(&WRAPPER[1..])
        .arg(env!("CARGO_BIN_EXE_berth"))
        .arg("version")
        .env("BERTH_TEST_PANIC", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("berth: internal error"), "{stderr}");
    assert_eq!(
        ended_by(out.status),
        libc::SIGHUP,
        "a reboot, not SIGABRT: {stderr}"
    );
    // Not as init: the same panic aborts.
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("version")
        .env("BERTH_TEST_PANIC", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGABRT));
}
