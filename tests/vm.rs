//! berth as the init of a virtual machine: a Debian kernel under qemu (TCG) boots an
//! initramfs whose `/init` is the static berth (`tests/vm/build`), so the
//! PID 1 duties, the launch from an initramfs (the MS_MOVE fallback of pivot_root) and
//! the cgroup v2 controllers are tested on a real kernel with a pure cgroup2 hierarchy.
//! This file: the x86_64 guest; `tests/vm_arm.rs`: aarch64 and armv7; the harness
//! (guests, qemu, the console) is `tests/vm/harness.rs`.
//!
//! The test reads the serial console line by line: berth's log (its stderr is the
//! kernel's console) and the answers of `vmctl` (`tests/vm/vmctl.c`), an app that
//! takes commands from the test on the same serial port, reads cgroup files and app
//! logs inside the VM, and runs berth's client commands there (`vmctl run /bin/berth
//! status`: berth's binary and its socket's directory are bound into vmctl's root). Nothing is slept on: each step waits for the line it expects,
//! under one hard deadline per boot, after which qemu is killed and the test fails
//! with the console so far. The VM has no network (`-nic none`). `cargo test --test vm
//! -- --nocapture` shows each boot's console and timings.
//!
//! Debian's kernel has overlayfs as a module, which berth does not load: the
//! initramfs carries it, and `/sbin/modprobe` is a link to berth, which the kernel
//! runs by itself to load it.
//!
//! Needs root, qemu, a Debian kernel and cpio: `apt-get install -y
//! --no-install-recommends qemu-system-x86 qemu-utils- linux-image-amd64 cpio`. A
//! missing piece fails the test with that command; it never skips.
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

use harness::{Vm, X86_64, ms, one_at_a_time};

/// The number in a `KEY N` line of a flat-keyed cgroup file, as vmctl printed it.
fn keyed(answer: &[String], file: &str, key: &str) -> u64 {
    let prefix = format!("{file}: {key} ");
    answer
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {file}: {answer:?}"))
}

/// `DIR=N` of vmctl's `cpu` answer.
fn cpu_ms(answer: &str, dir: &str) -> f64 {
    let key = format!("{dir}=");
    answer
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&key))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {answer:?}"))
}

/// The columns of `berth status`'s table, in order.
const COLUMNS: [&str; 9] = [
    "NAME",
    "STATE",
    "HEALTH",
    "PID",
    "UPTIME",
    "RESTARTS",
    "MEMORY",
    "CPU",
    "LAST EXIT",
];

/// The cell of `app`'s row under `column` in `berth status`'s table (its first line
/// the header): each column starts where its header does.
fn cell(table: &[String], app: &str, column: &str) -> String {
    let header = &table[0];
    let starts: Vec<usize> = COLUMNS
        .iter()
        .map(|c| {
            header
                .find(c)
                .unwrap_or_else(|| panic!("no {c} in {header:?}"))
        })
        .collect();
    let at = COLUMNS.iter().position(|c| *c == column).unwrap();
    let (start, end) = (
        starts[at],
        starts.get(at + 1).copied().unwrap_or(usize::MAX),
    );
    let row = table[1..]
        .iter()
        .find(|r| r.split_whitespace().next() == Some(app))
        .unwrap_or_else(|| panic!("no row of {app} in {table:#?}"));
    row.chars()
        .skip(start)
        .take(end.saturating_sub(start))
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The whole life of the device: boot, every app of `tests/vm/apps.d` doing what its
/// cgroup and restart policy say, `berth status` and `berth logs` run by a process on
/// the device (vmctl), then a power-off through `berth shutdown --poweroff` that stops
/// the apps in order and ends with qemu exiting by itself. (The power-off through
/// SIGUSR2, sent by an app, is the ARM tests' and the blocked-signals test's.)
#[test]
fn boots_runs_the_apps_under_cgroup2_and_powers_off() {
    let _one = one_at_a_time();
    let mut vm = Vm::boot(&X86_64, "", Duration::from_secs(120));

    // PID 1 duties seen by an app in the host's namespaces: the host name, and the
    // early mounts (cgroup2 at /sys/fs/cgroup).
    let ready = vm.wait_for(&["vmctl: ready hostname="]);
    assert!(
        vm.line(ready).contains("vmctl: ready hostname=vm-berth "),
        "{}",
        vm.line(ready)
    );
    let first_berth = vm.wait_for(&[": supervising "]);
    let mounts = vm.vmctl("cat /proc/1/mounts");
    assert!(
        mounts
            .iter()
            .any(|l| l.contains(" /sys/fs/cgroup cgroup2 ")),
        "no cgroup2 at /sys/fs/cgroup in berth's mounts: {mounts:#?}"
    );
    for dir in ["/dev devtmpfs", "/proc proc", "/sys sysfs", "/run tmpfs"] {
        assert!(
            mounts.iter().any(|l| l.contains(dir)),
            "no {dir} in {mounts:#?}"
        );
    }
    // Controllers handed down to the apps' cgroups.
    let subtree = vm.cat("/cg/berth/cgroup.subtree_control");
    for c in ["cpuset", "cpu", "memory", "pids"] {
        assert!(
            subtree.split_whitespace().any(|w| w == c),
            "{c} not enabled for the apps: {subtree:?}"
        );
    }

    // Memory: the hog is OOM-killed at its cap, restarted once, then failed.
    vm.wait_for(&[
        "hog killed by the kernel: out of memory (limit 32M) after ",
        "; restart 1 in 100ms",
    ]);
    vm.wait_for(&[
        "hog killed by the kernel: out of memory (limit 32M) after ",
        "; failed after 1 restart",
    ]);
    let hog = vm.vmctl("cat /logs/hog.log");
    let touched: Vec<u64> = hog
        .iter()
        .filter_map(|l| {
            l.split_once(" stdout ")
                .and_then(|(_, n)| n.trim().parse().ok())
        })
        .collect();
    assert!(
        touched.iter().any(|&m| m >= 16) && touched.iter().all(|&m| m <= 32),
        "the hog's MiB touched, seen by itself, must reach past half its cap and stay \
         under it: {touched:?}"
    );

    // kmsg: true: berth's lines are in the kernel's log as well (user-space records of
    // /dev/kmsg), the first and later ones: as init berth lifted the kernel's rate
    // limit on /dev/kmsg writers (10 lines in 5 s), which its start alone passes.
    assert_eq!(vm.cat("/proc/sys/kernel/printk_devkmsg"), "on");
    vm.vmctl(&format!(
        "find /dev/kmsg ;berth: berth {}: supervising",
        env!("CARGO_PKG_VERSION")
    ));
    vm.vmctl("find /dev/kmsg ;berth: hog killed by the kernel: out of memory (limit 32M) after");

    // 512K is enough for a small static program.
    vm.wait_for(&["tiny exited with status 0"]);
    vm.vmctl("find /logs/tiny.log stdout ok");

    // The device attack of issue 16 on cgroup v2: an app with CAP_MKNOD tries to make
    // the kernel log's node (c 1 11); berth's eBPF device program on its cgroup refuses.
    vm.wait_for(&["devices exited with status 1"]);
    vm.vmctl("find /logs/devices.log stdout mknod EPERM");

    // init: true from the initramfs: the sealed reaper runs the app and reaps orphans.
    vm.wait_for(&["reaped exited with status 0"]);
    vm.wait_for(&["orphans exited with status 0"]);
    vm.vmctl("find /logs/orphans.log \"grandchild_gone\":true");
    vm.vmctl("find /logs/orphans.log \"orphan_ppid\":1,");

    // A crash restarts with a doubling backoff, then the crash loop stops it.
    vm.wait_for(&["crashy exited with status 3 after ", "; restart 1 in 200ms"]);
    vm.wait_for(&["crashy exited with status 3 after ", "; restart 2 in 400ms"]);
    vm.wait_for(&[
        "crashy exited with status 3 after ",
        "; failed after 2 restarts",
    ]);

    // The fork bomb fills its pids cap and no more, and berth goes on: it starts the
    // app that depends on the bomb, and that app goes healthy.
    let bomb = vm.wait_for(&["bomb: running"]);
    let after = vm.wait_for(&["after: running"]);
    assert!(
        bomb < after,
        "after depends on bomb; console:\n{}",
        vm.console()
    );
    let healthy = vm.wait_for(&["after: healthy"]);
    vm.vmctl("find /logs/bomb.log stdout limited");
    assert_eq!(vm.cat("/cg/berth/bomb/pids.max"), "32");
    let current: u64 = vm.cat("/cg/berth/bomb/pids.current").parse().unwrap();
    assert!((1..=32).contains(&current), "pids.current {current}");
    let events = vm.vmctl("cat /cg/berth/bomb/pids.events");
    let refused = keyed(&events, "/cg/berth/bomb/pids.events", "max");
    assert!(refused > 0, "no fork was refused: {events:?}");

    // CPU: a quota of 0.2, and weights 100 and 300 sharing CPU 1.
    assert_eq!(vm.cat("/cg/berth/spin/cpu.max"), "20000 100000");
    assert_eq!(vm.cat("/cg/berth/w100/cpu.weight"), "100");
    assert_eq!(vm.cat("/cg/berth/w300/cpu.weight"), "300");
    assert_eq!(vm.cat("/cg/berth/w300/cpuset.cpus"), "1");
    let cpu = vm.vmctl("cpu 3000 /cg/berth/spin /cg/berth/w100 /cg/berth/w300");
    let cpu = cpu
        .iter()
        .find(|l| l.starts_with("cpu wall_ms="))
        .unwrap()
        .clone();
    let wall = cpu_ms(&cpu, "wall_ms");
    let spin = cpu_ms(&cpu, "/cg/berth/spin");
    let (w100, w300) = (
        cpu_ms(&cpu, "/cg/berth/w100"),
        cpu_ms(&cpu, "/cg/berth/w300"),
    );
    assert!(
        spin <= 0.2 * wall * 1.1 && spin > 0.0,
        "cpu: 0.2 used {spin} ms of CPU in {wall} ms"
    );
    let ratio = w300 / w100;
    assert!(
        (3.0 * 0.85..=3.0 * 1.15).contains(&ratio),
        "weights 300:100 shared CPU 1 as {w300}:{w100} ms ({ratio:.2}, want 3 ± 15 %)"
    );

    // The control commands on cgroup v2, run by a root process of the device (vmctl,
    // with berth's binary and its socket's directory bound in). The table: every app,
    // memory use over the cap where one is set, CPU time.
    let status_at = vm.now();
    let (table, code) = vm.run("/bin/berth status");
    let status_took = vm.now() - status_at;
    assert_eq!(code, 0, "berth status: {table:#?}");
    assert!(table[0].starts_with("NAME "), "{table:#?}");
    let mut names: Vec<&str> = table[1..]
        .iter()
        .filter_map(|r| r.split_whitespace().next())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "after", "bomb", "crashy", "devices", "hog", "orphans", "reaped", "spin", "tiny",
            "vmctl", "w100", "w300"
        ],
        "{table:#?}"
    );
    assert_eq!(cell(&table, "after", "STATE"), "running", "{table:#?}");
    assert_eq!(cell(&table, "after", "HEALTH"), "healthy", "{table:#?}");
    let memory = cell(&table, "after", "MEMORY");
    let (used, cap) = memory
        .split_once(" / ")
        .unwrap_or_else(|| panic!("after's memory is not USED / CAP: {memory:?}; {table:#?}"));
    assert_eq!(cap, "16.0MiB", "{table:#?}");
    assert!(
        used.ends_with("KiB") || used.ends_with("MiB"),
        "after's memory use {used:?}; {table:#?}"
    );
    for app in ["after", "spin", "vmctl", "bomb"] {
        assert_eq!(cell(&table, app, "STATE"), "running", "{table:#?}");
        let pid = cell(&table, app, "PID");
        assert!(
            pid.parse::<u32>().is_ok(),
            "{app}'s pid {pid:?}; {table:#?}"
        );
        for column in ["MEMORY", "CPU", "UPTIME"] {
            assert_ne!(cell(&table, app, column), "-", "{app}: {table:#?}");
        }
    }
    // No cap, no " / ".
    assert!(!cell(&table, "spin", "MEMORY").contains('/'), "{table:#?}");
    assert!(
        cell(&table, "hog", "STATE").starts_with("failed (killed by the kernel: out of memory"),
        "{table:#?}"
    );
    for column in ["PID", "MEMORY", "CPU"] {
        assert_eq!(cell(&table, "hog", column), "-", "{table:#?}");
    }

    // --json: memory in bytes (memory.current counts pages: a multiple of the page
    // size, no more than the cgroup's memory.peak), CPU in ns (cpu.stat's usage_usec
    // × 1000, read just before and just after).
    let usage_usec = |vm: &mut Vm| {
        keyed(
            &vm.vmctl("cat /cg/berth/spin/cpu.stat"),
            "/cg/berth/spin/cpu.stat",
            "usage_usec",
        )
    };
    let spin_before = usage_usec(&mut vm);
    let (json, code) = vm.run("/bin/berth status --json");
    let spin_after = usage_usec(&mut vm);
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
    let after_app = app("after");
    assert_eq!(after_app["state"], "running", "{after_app}");
    assert_eq!(after_app["health"], "healthy", "{after_app}");
    assert_eq!(after_app["memory_limit_bytes"], 16 << 20, "{after_app}");
    let after_memory = after_app["memory_bytes"].as_u64().unwrap();
    let after_peak: u64 = vm.cat("/cg/berth/after/memory.peak").parse().unwrap();
    assert!(
        after_memory > 0 && after_memory % 4096 == 0 && after_memory <= after_peak,
        "after's memory_bytes {after_memory}, memory.peak {after_peak}"
    );
    assert!(after_app["cpu_ns"].as_u64().unwrap() > 0, "{after_app}");
    let spin_app = app("spin");
    let spin_ns = spin_app["cpu_ns"].as_u64().unwrap();
    assert!(
        (spin_before * 1000..=spin_after * 1000).contains(&spin_ns),
        "spin's cpu_ns {spin_ns}, usage_usec {spin_before} before and {spin_after} after"
    );
    assert!(spin_app["memory_bytes"].as_u64().unwrap() > 0, "{spin_app}");
    assert!(spin_app["memory_limit_bytes"].is_null(), "{spin_app}");
    let hog_app = app("hog");
    assert_eq!(hog_app["state"], "failed", "{hog_app}");
    assert_eq!(hog_app["oom_kills"], 2, "{hog_app}");
    assert!(hog_app["memory_bytes"].is_null(), "{hog_app}");

    // logs -n 1: the last line of the app's log file.
    let (last, code) = vm.run("/bin/berth logs tiny -n 1");
    assert_eq!(code, 0, "berth logs: {last:#?}");
    let file = vm.vmctl("cat /logs/tiny.log");
    let file_last = file
        .last()
        .unwrap()
        .strip_prefix("/logs/tiny.log: ")
        .unwrap();
    assert_eq!(
        last,
        [file_last],
        "berth logs tiny -n 1; the file: {file:#?}"
    );

    // Power-off through `berth shutdown`: the client says so, dependants stop first,
    // the kernel powers the machine off, qemu exits 0 by itself. (vmctl, stopped with
    // the rest, lives until the client's line is on the console.)
    let poweroff_at = vm.seen.len();
    let asked = vm.now();
    vm.send("run /bin/berth shutdown --poweroff");
    vm.wait_from(poweroff_at, &["vmctl: out berth: stopping every app"]);
    vm.wait_from(poweroff_at, &["berth shutdown: stopping every app"]);
    let after_stopped = vm.wait_from(poweroff_at, &["after: stopped"]);
    let bomb_stopped = vm.wait_from(poweroff_at, &["bomb: stopped"]);
    assert!(
        after_stopped < bomb_stopped,
        "after depends on bomb and must stop first; console:\n{}",
        vm.console()
    );
    vm.wait_from(poweroff_at, &["all apps stopped"]);
    vm.wait_from(poweroff_at, &["PowerOff"]);
    let down = vm.wait_from(poweroff_at, &["reboot: Power down"]);
    let status = vm.wait_exit();
    assert!(
        status.success(),
        "qemu {status}; console:\n{}",
        vm.console()
    );
    vm.assert_clean();
    // Shown by `cargo test -- --nocapture` (and with a failure).
    eprintln!("console:\n{}", vm.console());
    let ready_uptime = vm
        .line(ready)
        .split_once("uptime_ms=")
        .and_then(|(_, v)| v.split_whitespace().next())
        .unwrap_or("?")
        .to_owned();
    eprintln!(
        "vm timings (host clock since qemu started): first berth line {} ms, vmctl ready {} \
         ms (guest uptime {ready_uptime} ms), after healthy {} ms, berth status answered in \
         {} ms, power-off asked {} ms, powered off {} ms; cpu over {wall} ms: spin {spin} \
         ms, w100 {w100} ms, w300 {w300} ms; bomb refused {refused} forks",
        ms(vm.at(first_berth)),
        ms(vm.at(ready)),
        ms(vm.at(healthy)),
        ms(status_took),
        ms(asked),
        ms(vm.at(down)),
    );
}

/// A panic of berth as the machine's init reboots it instead of becoming a kernel
/// panic (`harness::a_panic_reboots`).
#[test]
fn a_panic_as_init_reboots_the_machine() {
    harness::a_panic_reboots(&X86_64, "x86_64");
}

/// The blocked-signals pitfall: the kernel discards a signal sent to the machine's
/// init while that signal is unblocked and at its default disposition (init is
/// unkillable: `sig_task_ignored` drops it when it is sent, it is never queued), so
/// berth as PID 1 blocks its signals before anything else. Here `/sbin/early`
/// (`tests/vm/early.c`, started by the kernel as `rdinit=`) execs berth and sends it
/// SIGUSR2 the moment berth makes its first mount, the first thing of its boot duties,
/// which come right after it blocks its signals (so the signal is never sent before
/// that, and the test does not depend on timing to pass). berth must still power
/// off: the signal stays pending until the supervisor's signalfd reads it.
///
/// Why this fails if berth did not block first: the supervisor's signalfd blocks the
/// signals too, but only after the mounts, the host name and loopback. A berth that
/// blocked them only there would get the SIGUSR2 unblocked and at SIG_DFL; the kernel
/// would drop it, berth would run its apps and never power off, so the wait for
/// "SIGUSR2: stopping every app" would time out. The watcher reports what it saw just
/// after the kill: `signalfd=no` proves the signal came before the signalfd existed,
/// in the window this test is about (the test fails, naming it, if it did not), and
/// `blocked=yes` that berth had SIGUSR2 blocked when it came. (Checked with a berth
/// built without the early block: the watcher saw `blocked=no pending=no`, and the
/// machine ran its apps and never powered off.)
#[test]
fn a_signal_sent_to_pid_1_during_its_boot_is_not_lost() {
    let _one = one_at_a_time();
    let mut vm = Vm::boot(&X86_64, "rdinit=/sbin/early", Duration::from_secs(60));
    let sent = vm.wait_for(&["early: SIGUSR2 sent to PID 1 at its first mount"]);
    let report = vm.line(sent).to_owned();
    assert!(
        !vm.seen.iter().any(|(_, l)| l.starts_with("early: error")),
        "/sbin/early failed; console:\n{}",
        vm.console()
    );
    assert!(
        report.contains(" signalfd=no "),
        "the signal reached berth only after its signalfd existed, so this boot did not \
         test the window before it ({report}); console:\n{}",
        vm.console()
    );
    assert!(
        report.contains(" blocked=yes "),
        "berth as PID 1 had SIGUSR2 unblocked during its boot, and the kernel drops such \
         a signal ({report}); console:\n{}",
        vm.console()
    );
    let first_berth = vm.wait_for(&[": supervising ", "as PID 1"]);
    let down = vm.expect_power_off(0);
    eprintln!("console:\n{}", vm.console());
    eprintln!(
        "vm timings: early SIGUSR2 sent {} ms, first berth line {} ms, powered off {} ms \
         (host clock since qemu started)",
        ms(vm.at(sent)),
        ms(vm.at(first_berth)),
        ms(vm.at(down))
    );
}
