//! The VM tests' harness (`tests/vm.rs`, `tests/vm_arm.rs`): the guests, their build by
//! `tests/vm/build`, and a running qemu whose serial console is read line by line.
//!
//! Nothing is slept on: each step waits for the console line it expects, under one hard
//! deadline per boot, after which qemu is killed and the test fails with the console
//! so far. qemu is also killed when a [`Vm`] is dropped, so a failing test leaves no
//! machine behind. The VM has no network (`-nic none`).
#![allow(
    dead_code,
    reason = "each VM test crate uses only some of these helpers"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::common;

/// A guest architecture: its qemu, machine, console and what to install for it.
pub struct Guest {
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
    /// `PROFILE` of `tests/vm/build` for the guest's berth (aarch64: `small`, the
    /// binary `targets/build` makes for a board).
    profile: &'static str,
    /// The kernel and the initramfs, built once per test process.
    built: OnceLock<Built>,
}

pub static X86_64: Guest = Guest {
    arch: "x86_64",
    out: "target/vm",
    qemu: "qemu-system-x86_64",
    machine: &[],
    console: "ttyS0",
    install: "apt-get install -y --no-install-recommends qemu-system-x86 qemu-utils- \
              linux-image-amd64 cpio",
    profile: "dev",
    built: OnceLock::new(),
};

pub static AARCH64: Guest = Guest {
    arch: "aarch64",
    out: "target/vm-arm64",
    qemu: "qemu-system-aarch64",
    machine: &["-M", "virt", "-cpu", "cortex-a57"],
    console: "ttyAMA0",
    install: "dpkg --add-architecture arm64 && apt-get update && apt-get install -y \
              --no-install-recommends qemu-system-arm qemu-utils- gcc-aarch64-linux-gnu \
              libc6-dev-arm64-cross cpio; rustup target add aarch64-unknown-linux-musl; \
              rustup component add rust-src",
    profile: "small",
    built: OnceLock::new(),
};

/// 32-bit ARMv7 (qemu's `virt` with a cortex-a15; Debian's armmp kernel has no LPAE,
/// so the machine keeps everything below 4 GiB: `highmem=off`).
pub static ARMV7: Guest = Guest {
    arch: "armv7",
    out: "target/vm-armhf",
    qemu: "qemu-system-arm",
    machine: &["-M", "virt,highmem=off", "-cpu", "cortex-a15"],
    console: "ttyAMA0",
    install: "dpkg --add-architecture armhf && apt-get update && apt-get install -y \
              --no-install-recommends qemu-system-arm qemu-utils- gcc-arm-linux-gnueabihf \
              libc6-dev-armhf-cross cpio; rustup target add armv7-unknown-linux-gnueabihf",
    profile: "dev",
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
            .env("PROFILE", self.profile)
            // No BERTH: the build packs and checks with a static berth for this
            // machine, as a firmware build would (a dynamically linked berth refuses
            // the guest's `init: true` apps).
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
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running qemu and its console.
pub struct Vm {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Receiver<(Duration, String)>,
    /// Every console line so far, with the time since qemu started.
    pub seen: Vec<(Duration, String)>,
    started: Instant,
    deadline: Instant,
    limit: Duration,
}

impl Vm {
    /// Boots the test's kernel and initramfs with `extra` on the kernel command line.
    /// After `limit` qemu is killed, whatever the test is waiting for.
    pub fn boot(guest: &'static Guest, extra: &str, limit: Duration) -> Vm {
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
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// The console so far, for failure messages.
    pub fn console(&self) -> String {
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
    pub fn wait_from(&mut self, from: usize, parts: &[&str]) -> usize {
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
    pub fn wait_for(&mut self, parts: &[&str]) -> usize {
        self.wait_from(0, parts)
    }

    pub fn line(&self, i: usize) -> &str {
        &self.seen[i].1
    }

    pub fn at(&self, i: usize) -> Duration {
        self.seen[i].0
    }

    /// Writes one line to the serial port (qemu's stdin).
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("qemu's stdin");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("write {line:?} to qemu: {e}"));
    }

    /// Sends a command to vmctl and returns its answer lines (without the `vmctl: `
    /// prefix and the final `ok`); fails on `vmctl: error`.
    pub fn vmctl(&mut self, command: &str) -> Vec<String> {
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
    pub fn cat(&mut self, file: &str) -> String {
        let answer = self.vmctl(&format!("cat {file}"));
        let prefix = format!("{file}: ");
        let values: Vec<&str> = answer
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix))
            .collect();
        assert_eq!(values.len(), 1, "cat {file}: {answer:?}");
        values[0].to_owned()
    }

    /// Runs a program in the VM through vmctl's `run` (`command`: an absolute path and
    /// its arguments, without spaces in any): its lines of output (stdout and stderr
    /// together) and its exit status.
    pub fn run(&mut self, command: &str) -> (Vec<String>, i32) {
        let answer = self.vmctl(&format!("run {command}"));
        let out = answer
            .iter()
            .filter_map(|l| l.strip_prefix("out ").map(str::to_owned))
            .collect();
        let code = answer
            .iter()
            .find_map(|l| l.strip_prefix("exit "))
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("vmctl ran {command:?} but gave no exit: {answer:?}"));
        (out, code)
    }

    /// Waits until qemu exits by itself (before the deadline); its exit status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        while self.next_line("qemu's exit") {}
        let mut child = self.child.take().expect("qemu");
        // Its output is closed; the process follows at once.
        child.wait().expect("wait for qemu")
    }

    /// From console line `from` on: berth stops every app on SIGUSR2, powers the
    /// machine off, and qemu exits 0 by itself, with no kernel panic and no error of
    /// berth on the whole console. Returns the index of the kernel's power-down line.
    pub fn expect_power_off(&mut self, from: usize) -> usize {
        self.wait_from(from, &["SIGUSR2: stopping every app"]);
        self.wait_from(from, &["all apps stopped"]);
        self.wait_from(from, &["PowerOff"]);
        let down = self.wait_from(from, &["reboot: Power down"]);
        let status = self.wait_exit();
        assert!(
            status.success(),
            "qemu {status}; console:\n{}",
            self.console()
        );
        self.assert_clean();
        down
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Fails if the kernel panicked or berth logged an error.
    pub fn assert_clean(&self) {
        for (_, line) in &self.seen {
            assert!(
                !line.contains("Kernel panic"),
                "the kernel panicked: {line}; console:\n{}",
                self.console()
            );
            // berth's lines: `TIMESTAMP LEVEL TEXT`.
            assert!(
                line.split_whitespace().nth(1) != Some("ERROR"),
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

pub fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// A panic of berth as the machine's init reboots it (qemu, with `-no-reboot`, exits
/// by itself) instead of becoming a kernel panic. The kernel hands `VAR=value` words
/// of its command line to init's environment: `BERTH_TEST_PANIC=1` makes berth panic.
pub fn a_panic_reboots(guest: &'static Guest, name: &str) {
    let _one = one_at_a_time();
    let mut vm = Vm::boot(guest, "BERTH_TEST_PANIC=1", Duration::from_secs(60));
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
        "vm timings {name}: panic boot reset after {} ms (host clock)",
        ms(vm.at(reset))
    );
}
