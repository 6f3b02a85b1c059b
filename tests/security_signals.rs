//! Attacks of an app on its supervisor through `berth run` (issue 16, items 9 and 17),
//! as root: an app printing terminal controls and a forged line of berth's, and an app
//! without a pid namespace signalling berth. Each test waits for the line it expects
//! on berth's output (a stream of events, with a deadline) and for exit codes, never
//! sleeps; `Berth` kills berth and cleans its cgroups also when a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::TempDir;
use common::berth_run::Berth;

/// Builds `tests/attack/signal.c` statically into `dir` (the directory the apps get
/// bound at `/attack`). Panics when gcc cannot: `.ci/run` installs gcc and libc6-dev.
fn build_signal(dir: &Path) -> PathBuf {
    common::attack_program("signal", dir)
}

/// The text of the lines of `stream` in an app's log file, without their time.
fn texts<'a>(log: &'a str, stream: &str) -> Vec<&'a str> {
    log.lines()
        .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest))
        .filter_map(|rest| rest.strip_prefix(stream)?.strip_prefix(' '))
        .collect()
}

/// No raw control character but tab and the newlines between lines, no C1 control.
fn assert_no_raw_controls(what: &str, bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| c.is_control() && c != '\t' && c != '\n')
        .collect();
    assert!(bad.is_empty(), "{what} holds raw {bad:?}:\n{text:?}");
}

#[test]
fn an_apps_control_characters_reach_the_log_and_the_console_escaped() {
    // Clears the screen, homes the cursor, returns to the line's start and writes what
    // looks like berth's error; then a C1 CSI, and a second line that starts over a
    // forged time stamp. The probe writes it to its stdout, then "ok\n".
    let attack = r#""\e[2J\e[H\rberth: ERROR all apps stopped\x7f\tend é \u009b31m\n\r2025-01-01T00:00:00.000Z forger stdout fake""#;
    let mut b = Berth::start_in(
        "escape",
        &[(
            "forger",
            &format!(
                "command: [probe, write, /proc/self/fd/1, {attack}]\nrestart: {{ policy: never }}\n"
            ),
        )],
        &[],
        "app_logs_to_console: true\n",
    );
    b.expect("forger exited with status 0", 20);
    assert_eq!(b.stop(20), 0);

    let want = [
        r"\x1b[2J\x1b[H\x0dberth: ERROR all apps stopped\x7f	end é \xc2\x9b31m",
        r"\x0d2025-01-01T00:00:00.000Z forger stdout fakeok",
    ];
    let bytes = fs::read(b.logs_dir().join("forger.log")).unwrap();
    assert_no_raw_controls("forger.log", &bytes);
    let log = String::from_utf8(bytes).unwrap();
    assert_eq!(texts(&log, "stdout"), want, "{log}");

    // The console copy: `TIME forger stdout TEXT`, each line once, escaped the same.
    let echoed: Vec<&str> = b
        .seen
        .iter()
        .filter_map(|l| l.split_once(" forger stdout ").map(|(_, text)| text))
        .collect();
    assert_eq!(echoed, want, "{:#?}", b.seen);
    for line in &b.seen {
        assert_no_raw_controls("berth's stderr", line.as_bytes());
    }
}

#[test]
fn an_app_in_the_hosts_pid_namespace_cannot_signal_berth() {
    let tmp = TempDir::new("signals-attack");
    let attack_dir = tmp.join("attack");
    build_signal(&attack_dir);
    let host_pid = format!(
        "namespaces: [mount, uts, ipc, net]\n\
         mounts: [{{ type: bind, source: {}, target: /attack, readonly: true }}]\n",
        attack_dir.display()
    );
    let mut b = Berth::start(
        "signals",
        &[
            // Stays after signalling: berth finds it in its cgroup.
            (
                "attacker",
                &format!("command: [/attack/signal, stay, TERM, INT, HUP, USR2]\n{host_pid}"),
            ),
            // Signals and exits at once, again and again: it may be gone (and reaped)
            // before berth looks.
            (
                "hitandrun",
                &format!(
                    "command: [/attack/signal, exit, TERM]\n{host_pid}\
                     restart: {{ policy: always, backoff: {{ initial: 20ms, max: 20ms }}, max_restarts: 3 }}\n"
                ),
            ),
            // An app with its own pid namespace, which must run on undisturbed.
            ("bystander", "command: [probe, signals]\n"),
        ],
    );
    let berth_pid = b.pid();
    b.expect_all(
        &[
            "attacker: ignoring SIGTERM from its process",
            "attacker: ignoring SIGINT from its process",
            "attacker: ignoring SIGHUP from its process",
            "attacker: ignoring SIGUSR2 from its process",
            "bystander: running",
        ],
        20,
    );
    // Supervision goes on: the app that exits is restarted as its policy says.
    b.expect("hitandrun exited with status 0", 20);
    let last = b.expect("failed after 3 restarts", 20);
    assert!(last.contains("hitandrun"), "{last}");

    // The signals did reach berth: the kernel let them through.
    let attacker = b.log("attacker");
    for sig in ["TERM", "INT", "HUP", "USR2"] {
        assert!(
            attacker.contains(&format!(" stdout sent {sig} to {berth_pid}\n")),
            "{sig}: {attacker}"
        );
    }
    let hitandrun = b.log("hitandrun");
    assert_eq!(
        hitandrun
            .matches(&format!(" stdout sent TERM to {berth_pid}\n"))
            .count(),
        4,
        "{hitandrun}"
    );
    // Each of its SIGTERMs was ignored, placed in its app or not placed at all: the
    // warning comes once for each kind, later ones at debug level.
    assert!(
        b.seen.iter().any(|l| {
            l.contains("hitandrun: ignoring SIGTERM from its process")
                || l.contains("ignoring SIGTERM from pid ") && l.contains("hitandrun")
        }),
        "{:#?}",
        b.seen
    );
    for acted in [
        "stopping every app",
        "reloading",
        "bystander: stopped",
        "attacker: stopped",
    ] {
        assert!(
            !b.seen.iter().any(|l| l.contains(acted)),
            "berth acted on an app's signal ({acted}):\n{:#?}",
            b.seen
        );
    }
    assert!(
        b.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "berth exited"
    );

    // The test's own SIGTERM still stops berth, cleanly.
    assert_eq!(b.stop(20), 0);
    let stopping: Vec<&String> = b
        .seen
        .iter()
        .filter(|l| l.contains("SIGTERM: stopping every app"))
        .collect();
    assert_eq!(stopping.len(), 1, "{:#?}", b.seen);
    assert!(b.seen.iter().any(|l| l.contains("bystander: stopped")));
}

#[test]
fn an_app_allowed_to_signal_berth_is_heard() {
    let tmp = TempDir::new("signals-allowed");
    let attack_dir = tmp.join("attack");
    build_signal(&attack_dir);
    let mut b = Berth::start(
        "signals-allowed",
        &[(
            "agent",
            &format!(
                "command: [/attack/signal, stay, HUP]
namespaces: [mount, uts, ipc, net]
\
                 mounts: [{{ type: bind, source: {}, target: /attack, readonly: true }}]
\
                 allow_signals_to_berth: true
",
                attack_dir.display()
            ),
        )],
    );
    b.expect("agent: sent SIGHUP to berth (allow_signals_to_berth)", 20);
    b.expect("SIGHUP: reloading", 20);
    assert!(
        !b.seen.iter().any(|l| l.contains("ignoring")),
        "{:#?}",
        b.seen
    );
    assert_eq!(b.stop(20), 0);
}

#[test]
fn berth_check_warns_about_an_app_in_the_hosts_pid_namespace() {
    let tmp = TempDir::new("signals-check");
    let image = tmp.write("image.tar", b"not checked without --images");
    let digest = "0".repeat(64);
    let manifest = |name: &str, extra: &str| {
        format!(
            "name: {name}\nimage: {{ path: {}, sha256: {digest} }}\n{extra}",
            image.display()
        )
    };
    tmp.write(
        "apps/host.yaml",
        manifest("host", "namespaces: [mount, net]\n").as_bytes(),
    );
    tmp.write("apps/own.yaml", manifest("own", "").as_bytes());
    let output = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("check")
        .arg(tmp.join("apps"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}: {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let file = tmp.join("apps/host.yaml");
    assert_eq!(
        stdout,
        format!(
            "{}:3:13: host: warning: {}\n2 apps ok, 0 invalid\n",
            file.display(),
            berth::check::pid_namespace_warning(&only_app(&file)).unwrap()
        )
    );
}

/// The manifest of `file`, loaded as berth does.
fn only_app(file: &Path) -> berth::manifest::Manifest {
    let mut loaded = berth::manifest::load(&[file.to_path_buf()]);
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    loaded.apps.pop().unwrap()
}
