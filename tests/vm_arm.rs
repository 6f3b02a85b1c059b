//! berth as the init of ARM virtual machines (qemu's `virt` machine under TCG): the
//! same initramfs as `tests/vm.rs` (harness: `tests/vm/harness.rs`), with only the
//! apps these tests need (vmctl, tiny, hog), on
//! - aarch64: a cortex-a57, the berth a board ships (`targets/build
//!   aarch64-unknown-linux-musl`: release, the standard library rebuilt, rust-lld),
//!   Debian's arm64 kernel;
//! - armv7: a cortex-a15, berth for armv7-unknown-linux-gnueabihf linked statically
//!   (+crt-static, Debian's cross gcc), Debian's armmp kernel (32-bit, no LPAE).
//!
//! The C programs are built with Debian's cross gcc; each kernel package is downloaded
//! with apt-get and unpacked under `target/vm-*/kernel`, never installed.
//!
//! Needs root, `dpkg --add-architecture arm64 && dpkg --add-architecture armhf && apt-get
//! update && apt-get install -y --no-install-recommends qemu-system-arm qemu-utils-
//! gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf
//! libc6-dev-armhf-cross cpio` and `rustup target add aarch64-unknown-linux-musl
//! armv7-unknown-linux-gnueabihf` and `rustup component add rust-src`. A missing piece fails the test with its command; it
//! never skips.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;
#[path = "vm/harness.rs"]
mod harness;

use std::time::Duration;

use harness::{AARCH64, ARMV7, Guest, Vm, ms, one_at_a_time};

/// berth as PID 1 of `guest`: the kernel's cgroup2 hierarchy, overlayfs loaded through
/// berth's modprobe, an app that exits 0 in 512K, one OOM-killed at its memory cap
/// (restarted once, then failed), `berth status --json` run in the guest, and the
/// power-off through SIGUSR2 (sent by an app) that stops the apps and ends with qemu
/// exiting by itself.
fn boots_runs_apps_under_cgroup2_and_powers_off(guest: &'static Guest, name: &str) {
    let _one = one_at_a_time();
    let mut vm = Vm::boot(guest, "", Duration::from_secs(90));
    let first_berth = vm.wait_for(&[": supervising ", "(cgroup V2, as PID 1)"]);
    let ready = vm.wait_for(&["vmctl: ready hostname=vm-berth "]);
    let subtree = vm.cat("/cg/berth/cgroup.subtree_control");
    for c in ["cpu", "memory", "pids"] {
        assert!(
            subtree.split_whitespace().any(|w| w == c),
            "{c} not enabled for the apps: {subtree:?}"
        );
    }
    let tiny = vm.wait_for(&["tiny exited with status 0"]);
    vm.vmctl("find /logs/tiny.log stdout ok");
    let oom = vm.wait_for(&[
        "hog killed by the kernel: out of memory (limit 32M) after ",
        "; restart 1 in 100ms",
    ]);
    vm.wait_for(&[
        "hog killed by the kernel: out of memory (limit 32M) after ",
        "; failed after 1 restart",
    ]);

    // `berth status --json` through the control socket (the client is this guest's
    // berth, run by vmctl): memory in bytes (whole pages of memory.current) and CPU
    // time of a running app, the hog's two OOM kills.
    let (json, code) = vm.run("/bin/berth status --json");
    assert_eq!((code, json.len()), (0, 1), "berth status --json: {json:#?}");
    let parsed: serde_json::Value = serde_json::from_str(&json[0])
        .unwrap_or_else(|e| panic!("berth status --json: {e}: {}", json[0]));
    let app = |name: &str| {
        parsed["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {parsed}"))
            .clone()
    };
    let vmctl = app("vmctl");
    assert_eq!(vmctl["state"], "running", "{vmctl}");
    let memory = vmctl["memory_bytes"].as_u64().unwrap();
    assert!(memory > 0 && memory % 4096 == 0, "{vmctl}");
    assert!(vmctl["cpu_ns"].as_u64().unwrap() > 0, "{vmctl}");
    let hog = app("hog");
    assert_eq!(hog["state"], "failed", "{hog}");
    assert_eq!(hog["oom_kills"], 2, "{hog}");
    assert_eq!(hog["memory_limit_bytes"], 32 << 20, "{hog}");

    let poweroff_at = vm.seen.len();
    let asked = vm.now();
    vm.send("poweroff");
    let down = vm.expect_power_off(poweroff_at);
    eprintln!("console:\n{}", vm.console());
    eprintln!(
        "vm timings {name} (host clock since qemu started): first berth line {} ms, vmctl \
         ready {} ms, tiny exited {} ms, hog OOM-killed {} ms, power-off asked {} ms, \
         powered off {} ms",
        ms(vm.at(first_berth)),
        ms(vm.at(ready)),
        ms(vm.at(tiny)),
        ms(vm.at(oom)),
        ms(asked),
        ms(vm.at(down)),
    );
}

#[test]
fn aarch64_boots_runs_apps_under_cgroup2_and_powers_off() {
    boots_runs_apps_under_cgroup2_and_powers_off(&AARCH64, "aarch64");
}

#[test]
fn armv7_boots_runs_apps_under_cgroup2_and_powers_off() {
    boots_runs_apps_under_cgroup2_and_powers_off(&ARMV7, "armv7");
}

/// The aarch64 guest boots the berth a board ships (`targets/build`: the standard
/// library rebuilt without its backtrace printer): a panic there must still go through
/// berth's panic hook and restart the machine.
#[test]
fn aarch64_a_panic_as_init_reboots_the_machine() {
    harness::a_panic_reboots(&AARCH64, "aarch64");
}
