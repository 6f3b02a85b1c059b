//! `berth run` with real processes, as root: restarts and backoff, crash loops,
//! policies, health checks, dependencies, shutdown order, stop timeouts, orphans,
//! log rotation, reload. Each test waits for the line it expects on berth's output
//! (a stream of events, with a deadline), never sleeps to let something happen.
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

/// The timestamps (ms since the epoch) of the app's "started" events in its log.
fn starts(log: &str) -> Vec<i64> {
    log.lines()
        .filter(|l| l.contains(" berth started, pid "))
        .map(|l| {
            let t = l.split(' ').next().unwrap();
            // 2026-11-22T04:40:01.123Z: seconds of the day are enough for gaps.
            let hms = &t[11..23];
            let h: i64 = hms[0..2].parse().unwrap();
            let m: i64 = hms[3..5].parse().unwrap();
            let s: i64 = hms[6..8].parse().unwrap();
            let ms: i64 = hms[9..12].parse().unwrap();
            ((h * 60 + m) * 60 + s) * 1000 + ms
        })
        .collect()
}

#[test]
fn a_crash_restarts_with_doubling_delays_until_the_crash_loop_limit() {
    let mut b = Berth::start(
        "crash",
        &[(
            "crashy",
            "command: [probe, exit, \"3\"]\n\
             restart: { policy: always, backoff: { initial: 100ms, max: 400ms }, max_restarts: 4, window: 1m }\n",
        )],
    );
    for (n, delay) in [(1, 100), (2, 200), (3, 400), (4, 400)] {
        let line = b.expect(&format!("; restart {n} in {delay}ms"), 20);
        assert!(
            line.contains("crashy exited with status 3 after "),
            "{line}"
        );
    }
    let failed = b.expect("crashy exited with status 3", 20);
    assert!(failed.contains("failed after 4 restarts in"), "{failed}");
    assert_eq!(b.stop(20), 0);
    let t = starts(&b.log("crashy"));
    assert_eq!(t.len(), 5, "{}", b.log("crashy"));
    for (i, delay) in [100, 200, 400, 400].iter().enumerate() {
        let gap = t[i + 1] - t[i];
        assert!(
            gap >= *delay && gap < delay + 400,
            "gap {i}: {gap} ms, delay {delay} ms"
        );
    }
}

#[test]
fn restart_policies() {
    let mut b = Berth::start(
        "policies",
        &[
            (
                "okonce",
                "command: [probe, exit, \"0\"]\nrestart: { policy: on-failure }\n",
            ),
            (
                "okalways",
                "command: [probe, exit, \"0\"]\nrestart: { policy: always, backoff: { initial: 50ms, max: 50ms }, max_restarts: 1 }\n",
            ),
            (
                "failnever",
                "command: [probe, exit, \"3\"]\nrestart: { policy: never }\n",
            ),
        ],
    );
    let mut seen = Vec::new();
    for _ in 0..4 {
        let l = b.expect(" after ", 20);
        seen.push(l);
    }
    let has = |app: &str, what: &str| seen.iter().any(|l| l.contains(app) && l.contains(what));
    assert!(
        has("okonce exited with status 0", "not restarted"),
        "{seen:#?}"
    );
    assert!(
        has("failnever exited with status 3", "not restarted"),
        "{seen:#?}"
    );
    assert!(
        has("okalways exited with status 0", "restart 1 in 50ms"),
        "{seen:#?}"
    );
    assert!(
        has("okalways exited with status 0", "failed after 1 restart"),
        "{seen:#?}"
    );
    assert_eq!(b.stop(20), 0);
}

#[test]
fn health_gates_dependants_and_restarts_an_unhealthy_app() {
    let flag = common::TempDir::new("flag");
    let web = format!(
        "command: [probe, sleep]\n\
         mounts: [{{ type: bind, source: {}, target: /flag, readonly: true }}]\n\
         healthcheck: {{ exec: [probe, cat, /flag/ok], interval: 200ms, timeout: 100ms, retries: 2 }}\n\
         restart: {{ policy: always, backoff: {{ initial: 100ms, max: 100ms }} }}\n",
        flag.path().display()
    );
    let mut b = Berth::start(
        "health",
        &[
            ("web", &web),
            (
                "front",
                "command: [probe, sleep]\ndepends_on: [{ app: web, condition: healthy }]\n",
            ),
        ],
    );
    b.expect("web: running", 20);
    // No flag: web is not healthy yet, front waits.
    fs::write(flag.join("ok"), "yes").unwrap();
    b.expect("web: healthy", 20);
    b.expect("front: running", 20);
    let order: Vec<_> = b
        .seen
        .iter()
        .filter(|l| l.contains("web: healthy") || l.contains("front: running"))
        .collect();
    assert!(order[0].contains("web: healthy"), "{order:?}");
    // The endpoint starts failing: after `retries` failures web is restarted.
    fs::remove_file(flag.join("ok")).unwrap();
    // One line says it: why, after how long, and what follows.
    let line = b.expect("unhealthy", 20);
    assert!(line.contains("web unhealthy: exec"), "{line}");
    assert!(line.contains("(2 times in a row) after "), "{line}");
    assert!(line.contains("; restart 1 in 100ms"), "{line}");
    assert_eq!(b.stop(20), 0);
}

#[test]
fn a_hanging_probe_is_timed_out_and_start_period_is_honoured() {
    let mut b = Berth::start(
        "probe-timeout",
        &[(
            "slow",
            "command: [probe, sleep]\n\
             healthcheck: { exec: [probe, sleep], interval: 300ms, timeout: 100ms, retries: 1, start_period: 1s, on_unhealthy: none }\n",
        )],
    );
    b.expect("slow: running", 20);
    let started = Instant::now();
    let line = b.expect("slow: unhealthy", 20);
    assert!(line.contains("timed out"), "{line}");
    let after = started.elapsed().as_millis();
    assert!(
        after >= 900,
        "unhealthy after {after} ms, inside the 1 s start period"
    );
    assert_eq!(b.stop(20), 0);
}

/// A health check that passes once `probe signals` has its handler.
const READY: &str =
    "healthcheck: { exec: [probe, cat, /tmp/signals-ready], interval: 100ms, timeout: 90ms }\n";

#[test]
fn sigterm_stops_dependants_first_and_berth_exits_0() {
    let mut b = Berth::start(
        "shutdown",
        &[
            ("base", &format!("command: [probe, signals]\n{READY}")),
            (
                "top",
                &format!("command: [probe, signals]\ndepends_on: [{{ app: base }}]\n{READY}"),
            ),
        ],
    );
    // Healthy once each has its SIGTERM handler: a pid-namespace init without one
    // ignores SIGTERM (and would be killed only after its stop timeout).
    b.expect_all(&["base: healthy", "top: healthy"], 20);
    assert_eq!(b.stop(20), 0);
    let top = b
        .seen
        .iter()
        .position(|l| l.contains("top: stopped"))
        .unwrap();
    let base = b
        .seen
        .iter()
        .position(|l| l.contains("base: stopped"))
        .unwrap();
    assert!(top < base, "{:#?}", b.seen);
    assert!(
        b.seen[top].contains("exited with status 0"),
        "{}",
        b.seen[top]
    );
    // Each got its stop signal and said so.
    assert!(b.log("top").contains("stdout term"));
    assert!(b.log("base").contains("stdout term"));
}

#[test]
fn an_app_ignoring_its_stop_signal_is_killed_after_the_timeout() {
    // Its output on berth's console: it ignores SIGTERM once it says "ready".
    let mut b = Berth::start_in(
        "stop-timeout",
        &[(
            "deaf",
            // Not a pid namespace's init (which would not get the signal at all, and
            // is killed at once): it ignores SIGTERM itself.
            "command: [probe, stubborn]\nnamespaces: [mount, uts, ipc, net]\nstop: { timeout: 300ms }\n",
        )],
        &[],
        "app_logs_to_console: true\n",
    );
    b.expect(" deaf stdout ready ", 20);
    assert_eq!(b.stop(20), 0);
    assert!(
        b.seen
            .iter()
            .any(|l| l.contains("deaf: did not stop within 300ms; killing it")),
        "{:#?}",
        b.seen
    );
}

#[test]
fn orphans_are_reaped() {
    let mut b = Berth::start(
        "orphans",
        &[(
            "parent",
            "command: [probe, doublefork]\nnamespaces: [mount, uts, ipc, net]\nrestart: { policy: never }\n",
        )],
    );
    b.expect("parent exited with status 0", 20);
    let pid = b.pid();
    let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    for child in children.split_whitespace() {
        let stat = fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        assert!(!state.starts_with('Z'), "zombie child {child}: {stat}");
    }
    assert!(
        b.log("parent").contains("\"grandchild_gone\":true"),
        "{}",
        b.log("parent")
    );
    assert_eq!(b.stop(20), 0);
}

#[test]
fn logs_rotate_at_their_size() {
    let mut b = Berth::start(
        "rotate",
        &[(
            "chatty",
            "command: [probe, spew, \"2000\"]\nrestart: { policy: never }\nlogs: { max_size: 10K, max_files: 3 }\n",
        )],
    );
    b.expect("chatty exited with status 0", 20);
    assert_eq!(b.stop(20), 0);
    let dir = b.logs_dir();
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    // The current file and the two newest numbered ones, by sequence (higher newer).
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(names[0], "chatty.log");
    let number = |name: &str| -> u32 {
        let digits = name.strip_prefix("chatty.log.").unwrap();
        assert_eq!(digits.len(), 6, "{name}");
        digits.parse().unwrap()
    };
    assert_eq!(number(&names[2]), number(&names[1]) + 1, "{names:?}");
    for n in &names {
        let size = fs::metadata(dir.join(n)).unwrap().len();
        assert!(size <= 10 * 1024, "{n}: {size} bytes");
    }
    // The newest lines are in the current file.
    assert!(b.log("chatty").contains("00001999 xxx"));
}

#[test]
fn reload_starts_stops_restarts_and_keeps() {
    let mut b = Berth::start(
        "reload",
        &[
            ("keep", "command: [probe, sleep]\n"),
            ("change", "command: [probe, sleep]\n"),
            ("gone", "command: [probe, sleep]\n"),
            ("broken", "command: [probe, sleep]\n"),
        ],
    );
    let mut pids = std::collections::BTreeMap::new();
    for _ in 0..4 {
        let l = b.expect(": running (pid ", 20);
        let name = l
            .split(": running")
            .next()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned();
        let pid: i32 = l
            .rsplit("pid ")
            .next()
            .unwrap()
            .trim_end_matches(')')
            .parse()
            .unwrap();
        pids.insert(name, pid);
    }
    b.write_app("change", "command: [probe, sleep]\nenv: { V: \"2\" }\n");
    fs::remove_file(b.tmp.join("apps/gone.yaml")).unwrap();
    b.write_app("new", "command: [probe, sleep]\n");
    fs::write(
        b.tmp.join("apps/broken.yaml"),
        "name: broken\nimage: [oops\n",
    )
    .unwrap();
    let mark = b.seen.len();
    b.signal(libc::SIGHUP);
    // The new app and the changed one start in either order.
    b.expect_all_after(mark, &["new: running", "change: running"], 20);
    let text = b.seen.join("\n");
    assert!(
        text.contains("broken: its manifest is invalid now; the running version stays"),
        "{text}"
    );
    assert!(text.contains("gone: stopped"), "{text}");
    assert!(
        text.contains("change: its definition changed; restarting"),
        "{text}"
    );
    // The unchanged and the broken one keep their processes.
    for app in ["keep", "broken"] {
        assert!(
            fs::metadata(format!("/proc/{}", pids[app])).is_ok(),
            "{app} was restarted"
        );
    }
    assert!(!text.contains("keep: stopped"), "{text}");
    assert_eq!(b.stop(20), 0);
}

#[test]
fn app_logs_to_console_copies_the_apps_lines_to_berths_stderr() {
    let mut b = Berth::start_in(
        "echo",
        &[(
            "chatty",
            "command: [probe, spew, \"3\"]\nrestart: { policy: never }\n",
        )],
        &[],
        "app_logs_to_console: true\n",
    );
    let line = b.expect(" chatty stdout 00000002 ", 20);
    assert!(
        line.ends_with(&format!(" chatty stdout 00000002 {}", "x".repeat(90))),
        "{line}"
    );
    b.expect("chatty exited with status 0", 20);
    assert_eq!(b.stop(20), 0);
    // Each line once on the console, in order, and in the file as well.
    let echoed: Vec<&String> = b
        .seen
        .iter()
        .filter(|l| l.contains(" chatty stdout "))
        .collect();
    assert_eq!(echoed.len(), 3, "{:#?}", b.seen);
    assert!(echoed[0].contains(" chatty stdout 00000000 "));
    assert_eq!(
        b.log("chatty")
            .lines()
            .filter(|l| l.contains(" stdout "))
            .count(),
        3
    );
}
