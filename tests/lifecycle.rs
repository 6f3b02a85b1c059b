//! `berth run`, as root: the lifecycle bugs of the old loop, each through the real
//! supervisor (a launch that fails before its process, a manifest that comes back while
//! its app stops, a failed app whose manifest is touched, `container:` guests of a
//! restarted owner, waiting said once, an init that cannot get its stop signal). Each
//! test waits for the lines it expects, never sleeps.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::fs;
use std::time::{Duration, SystemTime};

use common::berth_run::Berth;

/// The pid in a `NAME: running (pid N)` line.
fn pid_of(line: &str) -> i32 {
    let tail = line.rsplit("(pid ").next().unwrap();
    tail.trim_end_matches(')').parse().unwrap()
}

#[test]
fn a_launch_that_fails_before_its_process_backs_off_doubling_from_zero_uptime() {
    let mut b = Berth::prepare("prelaunch", &[], "");
    let missing = b.tmp.join("missing.tar");
    fs::write(
        b.tmp.join("apps/ghost.yaml"),
        format!(
            "name: ghost\nimage: {{ path: {}, sha256: {} }}\n\
             restart: {{ policy: always, backoff: {{ initial: 100ms, max: 10s }}, max_restarts: 10 }}\n",
            missing.display(),
            // Not installed (the probe image is): the install is what fails.
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        ),
    )
    .unwrap();
    b.spawn(&[]);
    for (n, delay) in [(1, "100ms"), (2, "200ms"), (3, "400ms")] {
        let line = b.expect(&format!("; restart {n} in {delay}"), 20);
        assert!(
            line.contains("ghost could not install its image: cannot open image "),
            "{line}"
        );
        assert!(!line.contains("ghost ghost"), "{line}");
    }
    assert_eq!(b.stop(20), 0);
}

#[test]
fn a_manifest_back_while_its_app_stops_starts_it_again() {
    let deaf =
        "command: [probe, stubborn]\nnamespaces: [mount, uts, ipc, net]\nstop: { timeout: 1s }\n";
    // Its output on berth's console: it ignores SIGTERM once it says "ready".
    let mut b = Berth::start_in(
        "comeback",
        &[("deaf", deaf)],
        &[],
        "app_logs_to_console: true\n",
    );
    b.expect(" deaf stdout ready ", 20);
    fs::remove_file(b.tmp.join("apps/deaf.yaml")).unwrap();
    b.signal(libc::SIGHUP);
    b.expect("deaf: its manifest is gone; stopping it", 20);
    b.write_app("deaf", deaf);
    b.signal(libc::SIGHUP);
    b.expect(
        "deaf: its manifest is back; starting it again once stopped",
        20,
    );
    b.expect("deaf: did not stop within 1.0s; killing it", 20);
    b.expect("deaf: stopped (killed by SIGKILL after ", 20);
    b.expect("deaf: running", 20);
    assert!(
        !b.seen.iter().any(|l| l.contains("deaf: removed")),
        "{:#?}",
        b.seen
    );
    assert_eq!(b.stop(20), 0);
}

#[test]
fn a_failed_app_whose_manifest_is_touched_starts_afresh() {
    let crashy = "command: [probe, exit, \"3\"]\nrestart: { policy: always, max_restarts: 0 }\n";
    let mut b = Berth::start("touched", &[("crashy", crashy)]);
    let line = b.expect("crashy exited with status 3", 20);
    assert!(line.contains("failed after 0 restarts in 0ms"), "{line}");
    // Same content, newer time: a person touched it to say "try again".
    let file = fs::File::options()
        .append(true)
        .open(b.tmp.join("apps/crashy.yaml"))
        .unwrap();
    file.set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    drop(file);
    b.signal(libc::SIGHUP);
    b.expect("crashy: its manifest changed; starting it afresh", 20);
    let again = b.expect("crashy exited with status 3", 20);
    assert!(again.contains("failed after 0 restarts"), "{again}");
    assert_eq!(b.stop(20), 0);
}

#[test]
fn container_guests_restart_with_their_network_owner() {
    let mut b = Berth::start(
        "netowner",
        &[
            (
                "owner",
                "command: [probe, sleep]\nrestart: { policy: always, backoff: { initial: 100ms, max: 100ms } }\n",
            ),
            (
                "guest",
                "command: [probe, sleep]\nnetwork: { mode: \"container:owner\" }\n",
            ),
        ],
    );
    b.expect_all(&["owner: running", "guest: running"], 20);
    let owner = b
        .seen
        .iter()
        .find(|l| l.contains("owner: running"))
        .map(|l| pid_of(l))
        .unwrap();
    // SAFETY: a plain kill of the owner's process, which berth supervises.
    unsafe { libc::kill(owner, libc::SIGKILL) };
    b.expect(
        "guest: restarting with owner, whose network namespace it shares",
        20,
    );
    let owner = pid_of(&b.expect("owner: running", 20));
    let guest = pid_of(&b.expect("guest: running", 20));
    let ns = |pid: i32| fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_eq!(ns(guest), ns(owner));
    assert_eq!(b.stop(20), 0);
}

#[test]
fn an_app_waiting_for_a_dependency_says_so_once() {
    let flag = common::TempDir::new("waitflag");
    let web = format!(
        "command: [probe, sleep]\n\
         mounts: [{{ type: bind, source: {}, target: /flag, readonly: true }}]\n\
         healthcheck: {{ exec: [probe, cat, /flag/ok], interval: 200ms, timeout: 100ms, retries: 3, on_unhealthy: none }}\n",
        flag.path().display()
    );
    let mut b = Berth::start(
        "waitonce",
        &[
            ("web", &web),
            (
                "front",
                "command: [probe, sleep]\ndepends_on: [{ app: web, condition: healthy }]\n",
            ),
        ],
    );
    b.expect("front: waiting for web to be healthy", 20);
    b.expect("web: unhealthy", 20);
    fs::write(flag.join("ok"), "yes").unwrap();
    b.expect("web: healthy", 20);
    b.expect("front: running", 20);
    let said = b
        .seen
        .iter()
        .filter(|l| l.contains("front: waiting for web"))
        .count();
    assert_eq!(said, 1, "{:#?}", b.seen);
    assert_eq!(b.stop(20), 0);
}

#[test]
fn an_init_that_cannot_get_its_stop_signal_is_killed_at_once() {
    // `probe sleep` is its pid namespace's init and has no handler for SIGTERM: the
    // kernel drops the signal, so waiting the 30 s timeout would be for nothing.
    let mut b = Berth::start(
        "deafinit",
        &[(
            "sleeper",
            "command: [probe, sleep]\nstop: { timeout: 30s }\n",
        )],
    );
    b.expect("sleeper: running", 20);
    b.signal(libc::SIGTERM);
    b.expect(
        "sleeper: its process (a pid-namespace init) does not handle SIGTERM; killing it now \
         rather than after 30.0s (`init: true` gives it an init that forwards signals)",
        20,
    );
    assert_eq!(b.wait_exit(5).code(), Some(0));
}

#[test]
fn a_fifo_manifest_and_a_device_image_never_stop_the_loop() {
    let mut b = Berth::prepare("badpaths", &[("good", "command: [probe, sleep]\n")], "");
    // A FIFO among the manifests: opening it would wait for a writer forever.
    let fifo = b.tmp.join("apps/fifo.yaml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a plain mkfifo of a path in the test's own directory.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    // An image that is /dev/zero: read, it never ends.
    fs::write(
        b.tmp.join("apps/zero.yaml"),
        format!(
            "name: zero\nimage: {{ path: /dev/zero, sha256: {} }}\nrestart: {{ policy: never }}\n",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        ),
    )
    .unwrap();
    b.spawn(&[]);
    let line = b.expect("fifo.yaml", 20);
    assert!(line.contains("not a regular file (a FIFO)"), "{line}");
    // The good app and the bad image go on side by side: their lines come in either
    // order.
    b.expect_all(&["zero could not install its image: ", "good: running"], 20);
    let zero = b
        .seen
        .iter()
        .find(|l| l.contains("zero could not install its image: "))
        .unwrap();
    assert!(
        zero.contains("/dev/zero is not a regular file (a character device)"),
        "{zero}"
    );
    // And it still answers SIGTERM.
    assert_eq!(b.stop(20), 0);
}

#[test]
fn exit_lines_name_the_app_once_and_a_clean_never_exit_is_information() {
    let mut b = Berth::start(
        "wording",
        &[(
            "once",
            "command: [probe, exit, \"0\"]\nrestart: { policy: never }\n",
        )],
    );
    let line = b.expect("once exited with status 0", 20);
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.ends_with("; not restarted (restart: never)"), "{line}");
    assert!(
        !b.seen.iter().any(|l| l.contains("once once")),
        "{:#?}",
        b.seen
    );
    assert_eq!(b.stop(20), 0);
}
