//! `berth run` as a child process over probe images, with its log lines readable as
//! a stream of events: a test waits for the line it expects (blocking on the stream,
//! with a deadline), never polls.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use super::TempDir;
use super::probe::{ProbeImage, Variant, probe_image};

pub struct Berth {
    pub tmp: TempDir,
    pub image: ProbeImage,
    pub child: Option<Child>,
    lines: Receiver<String>,
    /// Every line seen so far (for failure messages and order checks).
    pub seen: Vec<String>,
    pub cgroup_root: String,
}

impl Berth {
    /// Writes `apps` (name, extra YAML) as manifests over the probe image and starts
    /// `berth run` on them.
    pub fn start(tag: &str, apps: &[(&str, &str)]) -> Berth {
        Berth::start_in(tag, apps, &[], "")
    }

    /// As [`start`](Self::start), with berth run by `wrapper` (e.g. `unshare ...`) and
    /// `config` added to its global settings.
    pub fn start_in(tag: &str, apps: &[(&str, &str)], wrapper: &[&str], config: &str) -> Berth {
        let mut b = Berth::prepare(tag, apps, config);
        b.spawn(wrapper);
        b
    }

    /// As [`start_in`](Self::start_in) without starting berth: the test can set up
    /// its directories first, then [`spawn`](Self::spawn) it.
    pub fn prepare(tag: &str, apps: &[(&str, &str)], config: &str) -> Berth {
        super::require_root("berth run launches containers");
        let tmp = TempDir::new(tag);
        let image = probe_image(&tmp, Variant::Plain);
        let cgroup_root = format!("berth-test-{}-{tag}", std::process::id());
        let config = format!(
            "state_dir: {s}\nrun_dir: {r}\nlog_dir: {l}\ncgroup_root: {cgroup_root}\n{config}",
            s = image.state_dir.display(),
            r = tmp.join("run").display(),
            l = tmp.join("logs").display(),
        );
        tmp.write("berth.yaml", config.as_bytes());
        fs::create_dir_all(tmp.join("apps")).unwrap();
        let b = Berth {
            tmp,
            image,
            child: None,
            lines: channel().1,
            seen: Vec::new(),
            cgroup_root,
        };
        for (name, extra) in apps {
            b.write_app(name, extra);
        }
        b
    }

    /// Starts `berth run` (by `wrapper`, if not empty) on the prepared directories.
    pub fn spawn(&mut self, wrapper: &[&str]) {
        let b = self;
        let berth = env!("CARGO_BIN_EXE_berth");
        let mut command = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(berth);
                c
            }
            None => Command::new(berth),
        };
        let mut child = command
            .args(["run", "--config"])
            .arg(b.tmp.join("berth.yaml"))
            .arg("--apps")
            .arg(b.tmp.join("apps"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        b.lines = rx;
        b.child = Some(child);
    }

    /// (Re)writes the manifest of `name`.
    pub fn write_app(&self, name: &str, extra: &str) {
        let text = format!(
            "name: {name}\nimage: {{ path: {}, sha256: {} }}\n{extra}",
            self.image.image_file.display(),
            self.image.digest
        );
        fs::write(self.tmp.join(&format!("apps/{name}.yaml")), text).unwrap();
    }

    /// berth's pid (the child's, or with a wrapper that forks, the wrapper's child).
    pub fn pid(&self) -> i32 {
        let child = i32::try_from(self.child.as_ref().unwrap().id()).unwrap();
        let exe = fs::read_link(format!("/proc/{child}/exe")).unwrap_or_default();
        if exe.file_name().is_some_and(|n| n == "berth") {
            return child;
        }
        let children = fs::read_to_string(format!("/proc/{child}/task/{child}/children")).unwrap();
        children.split_whitespace().next().unwrap().parse().unwrap()
    }

    /// Waits (at most `secs`) for a line containing `needle`; returns it.
    pub fn expect(&mut self, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no line with {needle:?} within {secs} s; seen:\n{}",
                    self.seen.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "berth ended before a line with {needle:?}; seen:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits until a line with each of `needles` has been seen (in any order).
    pub fn expect_all(&mut self, needles: &[&str], secs: u64) {
        for needle in needles {
            if !self.seen.iter().any(|l| l.contains(needle)) {
                self.expect(needle, secs);
            }
        }
    }

    /// Waits until a line with each of `needles` has been seen (in any order) among
    /// the lines after the first `mark` seen ones.
    pub fn expect_all_after(&mut self, mark: usize, needles: &[&str], secs: u64) {
        for needle in needles {
            if !self.seen.iter().skip(mark).any(|l| l.contains(needle)) {
                self.expect(needle, secs);
            }
        }
    }

    /// Runs `berth COMMAND --config <this berth's settings> ARGS...` (a control
    /// command, the client side) to its end: exit code, stdout, stderr.
    pub fn client(&self, command: &str, args: &[&str]) -> (i32, String, String) {
        let out = self.client_command(command, args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The client command of [`client`](Self::client), to spawn.
    pub fn client_command(&self, command: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
        c.arg(command)
            .arg("--config")
            .arg(self.tmp.join("berth.yaml"))
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Sends `signal` to berth.
    pub fn signal(&self, signal: i32) {
        // SAFETY: plain integer arguments.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// SIGTERM, then waits (at most `secs`) for berth to exit; its exit code. The rest
    /// of its output is collected into `seen`.
    pub fn stop(&mut self, secs: u64) -> i32 {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit(secs);
        status.code().unwrap_or(-1)
    }

    /// Waits (at most `secs`) for the child (berth or its wrapper) to exit.
    pub fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "berth did not exit within {secs} s; seen:\n{}",
                        self.seen.join("\n")
                    )
                }
            }
        }
        self.child.take().unwrap().wait().unwrap()
    }

    /// The app's log file.
    pub fn log(&self, app: &str) -> String {
        fs::read_to_string(self.tmp.join(&format!("logs/{app}.log"))).unwrap_or_default()
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.tmp.join("logs")
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Whatever a killed berth left behind.
        if let Ok(m) = berth::cgroup::system(&self.cgroup_root) {
            if let Ok(groups) = m.existing() {
                for (_, g) in groups {
                    let _ = berth::cgroup::clean(&*g, 2000);
                }
            }
            for root in m.roots() {
                let _ = fs::remove_dir(root);
            }
        }
    }
}
