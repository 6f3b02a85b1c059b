//! `berth check` as a build pipeline runs it: the binary, its output and exit codes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;
use berth::manifest::reserve::STATIC_BERTH;
use common::TempDir;
use common::berth_run::Berth;
use common::static_berth::static_berth;

use std::process::{Command, Output};

fn berth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env_remove("BERTH_TEST_PANIC")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

const TEST_SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"; // sha256("test")

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/examples");

/// The refusal of `init: true` by a dynamically linked berth, at `file:line:column`.
fn init_refused(at: &str, app: &str) -> String {
    format!(
        "{at}: {app}: init: true needs a statically linked berth, and this one is dynamically \
         linked: its copy, run as the app's pid 1, would need a dynamic loader that the app's \
         root does not have (build berth for a *-linux-musl target)"
    )
}

#[test]
fn examples_are_valid() {
    // log-upload has init: true: a board's (static) berth takes all four; a dynamically
    // linked one, such as this test's debug build, refuses that one when it checks.
    let o = berth(&["check", EXAMPLES]);
    if STATIC_BERTH {
        assert_eq!(stdout(&o), "4 apps ok, 0 invalid\n");
        assert_eq!(o.status.code(), Some(0));
    } else {
        assert_eq!(
            stdout(&o),
            format!(
                "{}\n3 apps ok, 1 invalid\n",
                init_refused(&format!("{EXAMPLES}/log-upload.yaml:7:7"), "log-upload")
            )
        );
        assert_eq!(o.status.code(), Some(1));
    }
}

#[test]
fn a_static_berth_takes_init_true() {
    let o = Command::new(static_berth())
        .args(["check", EXAMPLES])
        .output()
        .unwrap();
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("4 apps ok, 0 invalid\n", Some(0))
    );
}

#[test]
fn berth_run_refuses_init_true_at_load_when_it_cannot_run_it() {
    let mut b = Berth::start(
        "init-load",
        &[
            ("reaped", "init: true\ncommand: [probe, sleep]\n"),
            ("plain", "command: [probe, sleep]\n"),
        ],
    );
    if STATIC_BERTH {
        b.expect_all(&["reaped: running", "plain: running"], 30);
    } else {
        let file = b.tmp.join("apps/reaped.yaml");
        let line = b.expect("reaped.yaml:", 30);
        assert!(
            line.ends_with(&init_refused(&format!("{}:3:7", file.display()), "reaped")),
            "{line}"
        );
        // The other app runs; the refused one is never launched.
        b.expect("plain: running", 30);
    }
    assert_eq!(b.stop(20), 0);
    if !STATIC_BERTH {
        assert!(
            !b.seen.iter().any(|l| l.contains("reaped: running")),
            "{:#?}",
            b.seen
        );
    }
}

#[test]
fn every_problem_then_a_summary_and_exit_1() {
    let d = TempDir::new("problems");
    d.write(
        "a.yaml",
        format!(
            "name: a\nimage: {{ path: a.tar, sha256: {TEST_SHA} }}\nresources:\n  memroy: 64M\n"
        )
        .as_bytes(),
    );
    d.write(
        "b.yaml",
        format!(
            "name: b\nimage: {{ path: a.tar, sha256: {TEST_SHA} }}\ndepends_on: [{{ app: zz }}]\n"
        )
        .as_bytes(),
    );
    d.write(
        "c.yaml",
        format!("name: c\nimage: {{ path: a.tar, sha256: {TEST_SHA} }}\n").as_bytes(),
    );
    // Three problems in one file: all three, in file order.
    d.write(
        "d.yaml",
        format!(
            "name: d\nimage: {{ path: a.tar, sha256: {TEST_SHA} }}\ninit: yes\n\
             restart: {{ policy: sometimes }}\nstop:\n  timeout: 10\n"
        )
        .as_bytes(),
    );
    d.write("notes.txt", b"not a manifest");
    let o = berth(&["check", d.path().to_str().unwrap()]);
    let dir = d.path().display();
    assert_eq!(
        stdout(&o),
        format!(
            "{dir}/a.yaml:4:3: a: resources: unknown field `memroy`, expected one of `memory`, `memory_swap`, `cpu`, `cpu_weight`, `pids`, `cpuset`, `io_weight`\n\
             {dir}/b.yaml:3:21: b: depends_on names zz, but there is no app zz\n\
             {dir}/d.yaml:3:7: d: init: invalid type: string \"yes\", expected a boolean\n\
             {dir}/d.yaml:4:20: d: restart.policy: unknown variant `sometimes`, expected one of `always`, `on-failure`, `never`\n\
             {dir}/d.yaml:6:12: d: stop.timeout: invalid duration \"10\": use a whole number with ms, s, m or h, e.g. 500ms or 10s\n\
             1 app ok, 3 invalid\n"
        )
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn images_are_hashed_and_mismatches_show_both_digests() {
    let d = TempDir::new("images");
    d.write("images/good.tar", b"test");
    d.write("images/bad.tar", b"tampered");
    let m = |name: &str, image: &str| {
        format!("name: {name}\nimage:\n  path: {image}\n  sha256: {TEST_SHA}\n")
    };
    d.write("apps/good.yaml", m("good", "../images/good.tar").as_bytes());
    d.write(
        "apps/also-good.yaml",
        m(
            "also-good",
            &format!("{}/images/good.tar", d.path().display()),
        )
        .as_bytes(),
    );
    d.write("apps/bad.yaml", m("bad", "../images/bad.tar").as_bytes());
    d.write("apps/gone.yaml", m("gone", "../images/gone.tar").as_bytes());
    let apps = d.path().join("apps");
    // Without --images the files are not opened.
    assert_eq!(
        berth(&["check", apps.to_str().unwrap()]).status.code(),
        Some(0)
    );
    let o = berth(&["check", "--images", apps.to_str().unwrap()]);
    let dir = apps.display();
    assert_eq!(
        stdout(&o),
        format!(
            "{dir}/bad.yaml:4:11: bad: image digest mismatch for ../images/bad.tar: expected {TEST_SHA}, got \
             a2a5ac4a2b1a1e3b0d4e11f5dc5d8e2a76c3c6e14d1a31c5e9c4b3d68a5d3a7e\n\
             {dir}/gone.yaml:3:9: gone: cannot read image ../images/gone.tar: No such file or directory (os error 2)\n\
             2 apps ok, 2 invalid\n"
        )
        .replace(
            "a2a5ac4a2b1a1e3b0d4e11f5dc5d8e2a76c3c6e14d1a31c5e9c4b3d68a5d3a7e",
            &berth::digest::sha256_reader(&b"tampered"[..]).unwrap().to_string()
        )
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn apps_dir_from_the_config_when_no_path_is_given() {
    let d = TempDir::new("config");
    d.write(
        "apps/x.yaml",
        format!("name: x\nimage: {{ path: a.tar, sha256: {TEST_SHA} }}\n").as_bytes(),
    );
    let config = d.write("berth.yaml", b"apps_dir: apps\n");
    let o = berth(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("1 app ok, 0 invalid\n", Some(0))
    );
    let bad = d.write("bad.yaml", b"apps_dir: [apps]\n");
    let o = berth(&["check", "--config", bad.to_str().unwrap()]);
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!(
            "{}:1:11: apps_dir: invalid type: sequence, expected a string\n",
            bad.display()
        )
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn missing_paths_and_usage_errors() {
    // One clear line, not an invalid app.
    let o = berth(&["check", "/nonexistent/apps.d"]);
    assert_eq!(stdout(&o), "");
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "berth check: no such file or directory /nonexistent/apps.d\n"
    );
    assert_eq!(o.status.code(), Some(1));
    let d = TempDir::new("no-apps");
    let config = d.write("berth.yaml", b"apps_dir: /nonexistent/apps.d\n");
    let o = berth(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(
        (String::from_utf8_lossy(&o.stderr).as_ref(), o.status.code()),
        (
            "berth check: no such directory /nonexistent/apps.d\n",
            Some(1)
        )
    );
    // A usage error: the problem and the one usage line of the command.
    const CHECK: &str = "usage: berth check [PATH...] [--images]\n";
    const ANY: &str =
        "usage: berth COMMAND [--config FILE] [ARGS] (`berth help` lists the commands)\n";
    for (args, want) in [
        (
            &["check", "--bogus"][..],
            format!("berth: check: unknown option \"--bogus\"\n{CHECK}"),
        ),
        (
            &["check", "--config"],
            format!("berth: check: --config needs a value\n{CHECK}"),
        ),
        (&[], format!("berth: no command given\n{ANY}")),
        (
            &["frobnicate"],
            format!("berth: unknown command \"frobnicate\"\n{ANY}"),
        ),
        (
            &["stop"],
            "berth: stop: needs an APP\nusage: berth stop APP\n".to_owned(),
        ),
    ] {
        let o = berth(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&o.stderr), want, "{args:?}");
    }
    // Help: per command, or every command; exit 0.
    let o = berth(&["logs", "--help"]);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        (
            "usage: berth logs APP [-f] [-n N] [--since DURATION]\n\
             an app's captured output, running or not; -f follows it\n",
            Some(0)
        )
    );
    let o = berth(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("usage: berth COMMAND [--config FILE] [ARGS]\n\ncommands:\n"));
    assert!(stdout(&o).ends_with(
        "exit status: 0 ok, 1 failed (an error, or an invalid manifest), 2 usage error\n"
    ));
    // `run` on an apps directory that does not exist: a clear error, not an idle
    // supervisor.
    let o = berth(&["run", "--apps", "/nonexistent/apps.d"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "berth run: the apps directory /nonexistent/apps.d does not exist\n"
    );
    assert_eq!(
        stdout(&berth(&["--version"])),
        format!(
            "berth {} ({})\n",
            env!("CARGO_PKG_VERSION"),
            berth::info::target()
        )
    );
}

#[test]
fn the_panic_hook_reports_and_aborts_when_not_pid_1() {
    let o = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--version")
        .env("BERTH_TEST_PANIC", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.starts_with("berth: internal error: panicked at src/main.rs:"),
        "{stderr}"
    );
    assert!(stderr.contains("forced by BERTH_TEST_PANIC"), "{stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        o.status.signal(),
        Some(libc::SIGABRT),
        "the hook aborts; {:?}",
        o.status
    );
}
