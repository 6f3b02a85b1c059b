//! The README's main job, end to end: `demo/run` builds the demo apps, packs their
//! images and runs `berth run` on them; the test waits for each thing the README says
//! it shows, then stops berth with SIGTERM and expects exit status 0.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

#[test]
fn the_demo_shows_health_dependencies_restarts_and_an_oom() {
    common::require_root("the demo launches containers");
    let tmp = common::TempDir::new("demo");
    let cgroup_root = format!("berth-test-{}-demo", std::process::id());
    let mut child = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/demo/run"))
        .env("BERTH_BIN", env!("CARGO_BIN_EXE_berth"))
        .env("BERTH_DEMO_DIR", tmp.path())
        .env("BERTH_DEMO_CGROUP", &cgroup_root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen: Vec<String> = Vec::new();
    let mut expect = |needle: &str, secs: u64| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        if seen.iter().any(|l| l.contains(needle)) {
            return;
        }
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!("no {needle:?} within {secs} s; seen:\n{}", seen.join("\n"))
                }
            }
        }
    };
    expect("web: running", 120);
    expect("web: healthy", 30);
    expect("client: running", 30);
    expect("hog killed by the kernel: out of memory (limit 16M)", 30);
    expect("; restart 1 in 500ms", 30);
    // SIGTERM: every app stopped, exit 0.
    // SAFETY: plain integer arguments; demo/run exec'd berth, so this is berth.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM) };
    expect("all apps stopped; exiting", 30);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let left = std::fs::read_dir("/sys/fs/cgroup/memory")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(&cgroup_root))
        .count();
    assert!(left <= 1, "cgroups left behind");
    if let Ok(m) = berth::cgroup::system(&cgroup_root) {
        for root in m.roots() {
            let _ = std::fs::remove_dir(root);
        }
    }
}
