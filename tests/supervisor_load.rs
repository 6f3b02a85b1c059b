//! `berth run` under load, as root: an app that writes as fast as it can does not make
//! berth's memory grow, and its log stays within its rotation limits. Waits on
//! berth's output lines (a stream of events, with a deadline), never sleeps.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::fs;
use std::time::Instant;

use common::berth_run::Berth;

/// Lines the app writes, of 100 bytes each (99 characters and a newline).
const LINES: u64 = 1_000_000;
const LINE_BYTES: u64 = 100;
/// The app's `logs.max_size` (1M) and `logs.max_files`.
const MAX_SIZE: u64 = 1024 * 1024;
const MAX_FILES: usize = 2;

/// VmRSS of `pid`, in KiB, from /proc/PID/status.
fn vm_rss_kib(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status:\n{status}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_10_mb_per_s_writer_does_not_grow_berths_rss() {
    let mut b = Berth::start(
        "load",
        &[(
            "chatty",
            &format!(
                "command: [probe, spew, \"{LINES}\"]\n\
                 restart: {{ policy: never }}\n\
                 logs: {{ max_size: 1M, max_files: {MAX_FILES} }}\n"
            ),
        )],
    );
    let pid = b.pid();
    b.expect("chatty: running", 30);
    let started = Instant::now();
    let before = vm_rss_kib(pid);
    let exited = b.expect("chatty exited with status 0", 120);
    let secs = started.elapsed().as_secs_f64();
    let after = vm_rss_kib(pid);
    let mb = (LINES * LINE_BYTES) as f64 / 1e6;
    eprintln!(
        "berth took {mb:.0} MB of app output in {secs:.2} s ({:.1} MB/s); VmRSS {before} KiB \
         when the app was running, {after} KiB after it exited ({:+} KiB)",
        mb / secs,
        i128::from(after) - i128::from(before)
    );
    assert!(exited.contains("not restarted"), "{exited}");
    assert!(
        after < before + 1024,
        "berth's VmRSS grew from {before} KiB to {after} KiB while the app wrote {mb:.0} MB"
    );

    assert_eq!(b.stop(20), 0);
    let dir = b.logs_dir();
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    // The current file and the newest numbered one (`chatty.log.NNNNNN`).
    assert_eq!(names.len(), 2, "{names:?} in {}", dir.display());
    assert_eq!(names[0], "chatty.log");
    assert!(
        names[1]
            .strip_prefix("chatty.log.")
            .is_some_and(|d| d.len() == 6),
        "{names:?}"
    );
    for n in &names {
        let size = fs::metadata(dir.join(n)).unwrap().len();
        assert!(size <= MAX_SIZE, "{n}: {size} bytes, max_size {MAX_SIZE}");
    }
    // What the two files keep is the end of the output, whole and in order: the
    // app's lines numbered one after another up to the last, each line intact.
    let mut numbers = Vec::new();
    for n in [names[1].as_str(), "chatty.log"] {
        let text = fs::read_to_string(dir.join(n)).unwrap();
        for line in text.lines().filter(|l| l.contains(" stdout ")) {
            let body = line.split_once(" stdout ").unwrap().1;
            let (number, xs) = body.split_once(' ').unwrap();
            assert!(
                number.len() == 8 && xs.len() == 90 && xs.bytes().all(|c| c == b'x'),
                "{n}: a damaged line: {line:?}"
            );
            numbers.push(number.parse::<u64>().unwrap());
        }
    }
    assert_eq!(numbers.last(), Some(&(LINES - 1)), "the app's last line");
    let first = numbers[0];
    assert!(
        numbers.iter().zip(first..).all(|(n, want)| *n == want),
        "the kept lines are not consecutive from {first}"
    );
}
