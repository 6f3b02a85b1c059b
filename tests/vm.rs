//! berth as the init of a virtual machine: a Debian kernel under qemu (TCG) boots an
//! initramfs whose `/init` is the static berth (`tests/vm/build`), so the
//! PID 1 duties, the launch from an initramfs (the MS_MOVE fallback of pivot_root) and
//! the cgroup v2 controllers are tested on a real kernel with a pure cgroup2 hierarchy.
//!
//! The test reads the serial console line by line: berth's log (its stderr is the
//! kernel's console) and the answers of `vmctl` (`tests/vm/vmctl.c`), an app that
//! takes commands from the test on the same serial port and reads cgroup files and app
//! logs inside the VM. Nothing is slept on: each step waits for the line it expects,
//! under one hard deadline per boot, after which qemu is killed and the test fails
//! with the console so far. The VM has no network (`-nic none`). `cargo test --test vm
//! -- --nocapture` shows each boot's console and timings.
//!
//! Debian's kernel has overlayfs as a module, which berth does not load: the
//! initramfs carries it, and `/sbin/modprobe` is a link to berth, which the kernel
//! runs by itself to load it.
//!
//! Two guests: x86_64 (the whole test) and aarch64 (qemu's `virt` machine, a
//! cortex-a57; berth cross-built for aarch64-unknown-linux-musl, the C programs with
//! Debian's cross gcc, Debian's arm64 kernel package downloaded with apt-get and
//! unpacked under `target/vm-arm64/kernel`): a shorter test of berth as PID 1 there,
//! with only the apps it needs.
//!
//! Needs root, qemu, a Debian kernel and cpio: `apt-get install -y
//! --no-install-recommends qemu-system-x86 qemu-utils- linux-image-amd64 cpio`; for
//! aarch64 `dpkg --add-architecture arm64 && apt-get update && apt-get install -y
//! --no-install-recommends qemu-system-arm qemu-utils- gcc-aarch64-linux-gnu
//! libc6-dev-arm64-cross cpio`. A missing piece fails the test with that command; it
//! never skips.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A guest architecture: its qemu, machine, console and what to install for it.
struct Guest {
    /// `ARCH` of `tests/vm/build`.
    arch: &'static str,
    /// The build's output directory, under the crate.
    out: &'static str,
    qemu: &'static str,
    /// qemu's machine and CPU.
    machine: &'static [&'static str],
    /// The serial port's name in the kernel (its console).
    console: &'static str,
    install: &'static str,
    /// The kernel and the initramfs, built once per test process.
    built: OnceLock<Built>,
}

static X86_64: Guest = Guest {
    arch: "x86_64",
    out: "target/vm",
    qemu: "qemu-system-x86_64",
    machine: &[],
    console: "ttyS0",
    install: "apt-get install -y --no-install-recommends qemu-system-x86 qemu-utils- \
              linux-image-amd64 cpio",
    built: OnceLock::new(),
};

static AARCH64: Guest = Guest {
    arch: "aarch64",
    out: "target/vm-arm64",
    qemu: "qemu-system-aarch64",
    machine: &["-M", "virt", "-cpu", "cortex-a57"],
    console: "ttyAMA0",
    install: "dpkg --add-architecture arm64 && apt-get update && apt-get install -y \
              --no-install-recommends qemu-system-arm qemu-utils- gcc-aarch64-linux-gnu \
              libc6-dev-arm64-cross cpio",
    built: OnceLock::new(),
};

struct Built {
    kernel: PathBuf,
    initramfs: PathBuf,
}

impl Guest {
    fn built(&self) -> &Built {
        self.built.get_or_init(|| self.build())
    }

    fn build(&self) -> Built {
        let (qemu, install) = (self.qemu, self.install);
        common::require_root("the initramfs holds a device node, and berth packs as root");
        match Command::new(qemu).arg("--version").output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "{qemu} --version failed ({}): {}; the VM test needs it: {install}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!("cannot run {qemu} ({e}); the VM test needs it: {install}"),
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = root.join(self.out);
        let output = Command::new(root.join("tests/vm/build"))
            .arg(&out)
            .env("ARCH", self.arch)
            .env("BERTH", env!("CARGO_BIN_EXE_berth"))
            .env("CARGO", option_env!("CARGO").unwrap_or("cargo"))
            .stdin(Stdio::null())
            .output()
            .expect("run tests/vm/build");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "tests/vm/build failed ({}); what the VM test needs: {install}\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let value = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(PathBuf::from)
                .unwrap_or_else(|| panic!("tests/vm/build printed no {key}: {stdout}"))
        };
        Built {
            kernel: value("kernel="),
            initramfs: value("initramfs="),
        }
    }
}

/// One boot at a time: two emulated machines on a two-core host slow each other down.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running qemu and its console.
struct Vm {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Receiver<(Duration, String)>,
    /// Every console line so far, with the time since qemu started.
    seen: Vec<(Duration, String)>,
    started: Instant,
    deadline: Instant,
    limit: Duration,
}

impl Vm {
    /// Boots the test's kernel and initramfs with `extra` on the kernel command line.
    /// After `limit` qemu is killed, whatever the test is waiting for.
    fn boot(guest: &'static Guest, extra: &str, limit: Duration) -> Vm {
        let b = guest.built();
        let (qemu, install) = (guest.qemu, guest.install);
        // loglevel=3: only the kernel's emergencies, alerts and critical messages
        // (a panic, "reboot: Power down") reach the console, so its OOM reports and
        // the like do not cut berth's lines in two. panic=-1 with -no-reboot: a
        // kernel panic ends qemu at once.
        let append = format!("console={} panic=-1 loglevel=3 {extra}", guest.console);
        let started = Instant::now();
        let mut child = Command::new(qemu)
            .args(guest.machine)
            .args(["-accel", "tcg", "-m", "512", "-smp", "2"])
            .args(["-display", "none", "-monitor", "none", "-parallel", "none"])
            .args(["-serial", "stdio", "-no-reboot", "-nic", "none"])
            .arg("-kernel")
            .arg(&b.kernel)
            .arg("-initrd")
            .arg(&b.initramfs)
            .args(["-append", append.trim_end()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {qemu} ({e}); install it: {install}"));
        let (tx, rx) = channel();
        forward(child.stdout.take().unwrap(), "", started, tx.clone());
        forward(child.stderr.take().unwrap(), "[qemu stderr] ", started, tx);
        Vm {
            stdin: child.stdin.take(),
            child: Some(child),
            lines: rx,
            seen: Vec::new(),
            started,
            deadline: started + limit,
            limit,
        }
    }

    /// The time since qemu started.
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// The console so far, for failure messages.
    fn console(&self) -> String {
        let mut s = String::new();
        for (t, line) in &self.seen {
            s.push_str(&format!("{:7.2} {line}\n", t.as_secs_f64()));
        }
        s
    }

    /// Reads the next console line into `seen`; `false` once qemu has closed its
    /// output. Kills qemu and fails when the boot's deadline passes.
    fn next_line(&mut self, waiting_for: &str) -> bool {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.seen.push(line);
                true
            }
            Err(RecvTimeoutError::Disconnected) => false,
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                panic!(
                    "the VM did not show {waiting_for} within {:?}; qemu killed; console:\n{}",
                    self.limit,
                    self.console()
                )
            }
        }
    }

    /// The index of the first line from `from` on that contains every one of `parts`,
    /// waiting for it if it has not been seen yet.
    fn wait_from(&mut self, from: usize, parts: &[&str]) -> usize {
        let mut i = from;
        loop {
            while i < self.seen.len() {
                if parts.iter().all(|p| self.seen[i].1.contains(p)) {
                    return i;
                }
                i += 1;
            }
            if !self.next_line(&format!("a line with {parts:?}")) {
                panic!(
                    "qemu exited before a line with {parts:?}; console:\n{}",
                    self.console()
                );
            }
        }
    }

    /// The first line (in any order with the others) that contains all of `parts`.
    fn wait_for(&mut self, parts: &[&str]) -> usize {
        self.wait_from(0, parts)
    }

    fn line(&self, i: usize) -> &str {
        &self.seen[i].1
    }

    fn at(&self, i: usize) -> Duration {
        self.seen[i].0
    }

    /// Writes one line to the serial port (qemu's stdin).
    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("qemu's stdin");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("write {line:?} to qemu: {e}"));
    }

    /// Sends a command to vmctl and returns its answer lines (without the `vmctl: `
    /// prefix and the final `ok`); fails on `vmctl: error`.
    fn vmctl(&mut self, command: &str) -> Vec<String> {
        let from = self.seen.len();
        let name = command.split_whitespace().next().unwrap_or_default();
        self.send(command);
        let (ok, error) = (format!("vmctl: ok {name}"), format!("vmctl: error {name}"));
        let mut i = from;
        loop {
            while i < self.seen.len() {
                let line = &self.seen[i].1;
                if line.contains(&error) {
                    panic!("vmctl {command:?}: {line}; console:\n{}", self.console());
                }
                if line.ends_with(&ok) {
                    return self.seen[from..i]
                        .iter()
                        .filter_map(|(_, l)| l.strip_prefix("vmctl: ").map(str::to_owned))
                        .collect();
                }
                i += 1;
            }
            if !self.next_line(&format!("vmctl's answer to {command:?}")) {
                panic!(
                    "qemu exited before vmctl answered {command:?}; console:\n{}",
                    self.console()
                );
            }
        }
    }

    /// The value vmctl's `cat FILE` printed for a one-line file.
    fn cat(&mut self, file: &str) -> String {
        let answer = self.vmctl(&format!("cat {file}"));
        let prefix = format!("{file}: ");
        let values: Vec<&str> = answer
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix))
            .collect();
        assert_eq!(values.len(), 1, "cat {file}: {answer:?}");
        values[0].to_owned()
    }

    /// Waits until qemu exits by itself (before the deadline); its exit status.
    fn wait_exit(&mut self) -> ExitStatus {
        while self.next_line("qemu's exit") {}
        let mut child = self.child.take().expect("qemu");
        // Its output is closed; the process follows at once.
        child.wait().expect("wait for qemu")
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Fails if the kernel panicked or berth logged an error.
    fn assert_clean(&self) {
        for (_, line) in &self.seen {
            assert!(
                !line.contains("Kernel panic"),
                "the kernel panicked: {line}; console:\n{}",
                self.console()
            );
            assert!(
                !line.starts_with("ERROR"),
                "berth logged an error: {line}; console:\n{}",
                self.console()
            );
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Forwards `stream`'s lines (without `\r`) to `tx`, with the time since `started`.
fn forward(
    stream: impl Read + Send + 'static,
    prefix: &'static str,
    started: Instant,
    tx: Sender<(Duration, String)>,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    let line = text.trim_end_matches(['\n', '\r']).replace('\r', "");
                    if tx
                        .send((started.elapsed(), format!("{prefix}{line}")))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

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

/// The whole life of the device: boot, every app of `tests/vm/apps.d` doing what its
/// cgroup and restart policy say, then a power-off through SIGUSR2 that stops the apps
/// in order and ends with qemu exiting by itself.
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

    // 512K is enough for a small static program.
    vm.wait_for(&["tiny exited with status 0"]);
    vm.vmctl("find /logs/tiny.log stdout ok");

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

    // Power-off through the documented signal: dependants stop first, the kernel
    // powers the machine off, qemu exits 0 by itself.
    let poweroff_at = vm.seen.len();
    let asked = vm.now();
    vm.send("poweroff");
    vm.wait_from(poweroff_at, &["SIGUSR2: stopping every app"]);
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
        .map_or("?", |(_, v)| v)
        .to_owned();
    eprintln!(
        "vm timings (host clock since qemu started): first berth line {} ms, vmctl ready {} \
         ms (guest uptime {ready_uptime} ms), after healthy {} ms, power-off asked {} ms, \
         powered off {} ms; cpu over {wall} ms: spin {spin} ms, w100 {w100} ms, w300 {w300} \
         ms; bomb refused {refused} forks",
        ms(vm.at(first_berth)),
        ms(vm.at(ready)),
        ms(vm.at(healthy)),
        ms(asked),
        ms(vm.at(down)),
    );
}

/// A panic of berth as the machine's init reboots it (qemu, with `-no-reboot`, exits
/// by itself) instead of becoming a kernel panic. The kernel hands `VAR=value` words
/// of its command line to init's environment: `BERTH_TEST_PANIC=1` makes berth panic.
#[test]
fn a_panic_as_init_reboots_the_machine() {
    let _one = one_at_a_time();
    let mut vm = Vm::boot(&X86_64, "BERTH_TEST_PANIC=1", Duration::from_secs(60));
    // The hook's report (stderr and /dev/console: both are the serial port here); the
    // panic message follows on the next line.
    let report = vm.wait_for(&["berth: internal error: panicked at src/main.rs"]);
    vm.wait_from(report, &["forced by BERTH_TEST_PANIC"]);
    let reset = vm.wait_for(&["reboot: Restarting system"]);
    let status = vm.wait_exit();
    assert!(
        status.success(),
        "qemu {status}; console:\n{}",
        vm.console()
    );
    vm.assert_clean();
    eprintln!("console:\n{}", vm.console());
    eprintln!(
        "vm timings: panic boot reset after {} ms (host clock)",
        ms(vm.at(reset))
    );
}

/// berth as PID 1 of an aarch64 machine (qemu's `virt`, a cortex-a57): the kernel's
/// cgroup2 hierarchy, overlayfs loaded through berth's modprobe, an app that exits 0,
/// one OOM-killed at its memory cap, and the power-off through SIGUSR2 that ends with
/// qemu exiting by itself. The initramfs holds only vmctl, tiny and hog.
#[test]
fn aarch64_boots_runs_apps_under_cgroup2_and_powers_off() {
    let _one = one_at_a_time();
    let mut vm = Vm::boot(&AARCH64, "", Duration::from_secs(60));
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

    let poweroff_at = vm.seen.len();
    let asked = vm.now();
    vm.send("poweroff");
    vm.wait_from(poweroff_at, &["SIGUSR2: stopping every app"]);
    vm.wait_from(poweroff_at, &["all apps stopped"]);
    let down = vm.wait_from(poweroff_at, &["reboot: Power down"]);
    let status = vm.wait_exit();
    assert!(
        status.success(),
        "qemu {status}; console:\n{}",
        vm.console()
    );
    vm.assert_clean();
    eprintln!("console:\n{}", vm.console());
    eprintln!(
        "vm timings aarch64 (host clock since qemu started): first berth line {} ms, vmctl \
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
