//! The control socket end to end, as root, against a real running supervisor: status
//! of every state, start/stop/restart (stop kept across a reload and a restart of
//! berth), logs (history, -n, -f latency), events, reload, shutdown, the socket's
//! guards (root only, not running, a burst of clients, a client that never reads).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use common::berth_run::Berth;

/// The line of `app` in `berth status`'s table, split into its cells (two spaces or
/// more apart).
fn row(table: &str, app: &str) -> Vec<String> {
    let line = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(app))
        .unwrap_or_else(|| panic!("no row for {app} in:\n{table}"));
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

fn pid_of(line: &str) -> i32 {
    line.rsplit("pid ")
        .next()
        .unwrap()
        .trim_end_matches(')')
        .parse()
        .unwrap()
}

#[test]
fn status_tells_every_state() {
    let mut b = Berth::start(
        "ctl-states",
        &[
            ("up", "command: [probe, sleep]\n"),
            (
                "fine",
                "command: [probe, sleep]\n\
                 healthcheck: { exec: [probe, exit, \"0\"], interval: 100ms, timeout: 90ms }\n",
            ),
            (
                "sick",
                "command: [probe, sleep]\n\
                 healthcheck: { exec: [probe, exit, \"1\"], interval: 100ms, timeout: 90ms, retries: 1, on_unhealthy: none }\n",
            ),
            (
                "waiter",
                "command: [probe, sleep]\ndepends_on: [{ app: sick, condition: healthy }]\n",
            ),
            (
                "crashy",
                "command: [probe, exit, \"3\"]\n\
                 restart: { policy: always, backoff: { initial: 1h, max: 1h }, max_restarts: 10 }\n",
            ),
            (
                "doomed",
                "command: [probe, exit, \"4\"]\nrestart: { policy: always, max_restarts: 0 }\n",
            ),
            (
                "deaf",
                "command: [probe, stubborn]\nstop: { timeout: 30s }\nnamespaces: [mount, uts, ipc, net]\n",
            ),
        ],
    );
    b.expect_all(
        &[
            "up: running",
            "fine: healthy",
            "sick: unhealthy",
            "crashy exited with status 3",
            "doomed exited with status 4",
            "deaf: running",
        ],
        20,
    );
    // `deaf` ignores SIGTERM: its stop keeps it stopping for 30 s.
    let mut stopper = b
        .client_command("stop", &["deaf"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    b.expect("deaf: stop asked by berth stop", 20);
    let (code, _, err) = b.client("stop", &["up"]);
    assert_eq!(code, 0, "{err}");
    let (code, table, err) = b.client("status", &[]);
    assert_eq!(code, 0, "{err}");
    let header = table.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "NAME", "STATE", "HEALTH", "PID", "UPTIME", "RESTARTS", "MEMORY", "CPU", "LAST", "EXIT"
        ]
    );
    assert_eq!(row(&table, "up")[1], "stopped (by berth stop)");
    assert_eq!(row(&table, "fine")[1..3], ["running", "healthy"]);
    assert_eq!(row(&table, "sick")[1..3], ["running", "unhealthy"]);
    assert!(row(&table, "sick")[6].ends_with("iB"), "{table}");
    assert_eq!(
        row(&table, "waiter")[1],
        "waiting (for sick to be healthy (it is unhealthy))"
    );
    assert_eq!(row(&table, "crashy")[1], "backoff");
    assert_eq!(row(&table, "crashy")[8], "exited with status 3");
    assert!(row(&table, "doomed")[1].starts_with("failed ("), "{table}");
    assert_eq!(row(&table, "deaf")[1], "stopping");
    // The same as JSON, with stable names.
    let (code, json, _) = b.client("ps", &["--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    let apps = v["apps"].as_array().unwrap();
    let fine = apps.iter().find(|a| a["name"] == "fine").unwrap();
    assert_eq!(fine["state"], "running");
    assert_eq!(fine["health"], "healthy");
    assert!(fine["pid"].as_i64().unwrap() > 0);
    assert!(fine["memory_bytes"].as_u64().unwrap() > 0);
    let crashy = apps.iter().find(|a| a["name"] == "crashy").unwrap();
    assert_eq!(crashy["last_exit"], "exited with status 3");
    assert_eq!(crashy["restarts"], 0);
    // One app, everything known.
    let (code, one, _) = b.client("status", &["fine"]);
    assert_eq!(code, 0);
    for key in [
        "name:",
        "state:",
        "health:",
        "pid:",
        "manifest:",
        "image:",
        "namespaces:",
        "cgroup:",
        "last exits:",
    ] {
        assert!(one.lines().any(|l| l.starts_with(key)), "{key} in\n{one}");
    }
    let (code, _, err) = b.client("status", &["nosuch"]);
    assert_eq!((code, err.trim()), (1, "berth: no app named \"nosuch\""));
    // The stop of `deaf` answers once it is killed at its timeout... not waited for
    // here: berth's own stop kills it.
    let _ = stopper.kill();
    let _ = stopper.wait();
    assert_eq!(b.stop(40), 0);
}

#[test]
fn stop_is_kept_across_reload_and_restart_of_berth_until_start() {
    let mut b = Berth::start("ctl-stop", &[("web", "command: [probe, sleep]\n")]);
    let first = pid_of(&b.expect("web: running (pid ", 20));
    let (code, out, err) = b.client("stop", &["web"]);
    assert_eq!((code, out.trim(), err.as_str()), (0, "web: stopped", ""));
    assert!(std::fs::metadata(format!("/proc/{first}")).is_err());
    // A reload leaves it stopped, and says so.
    let (code, out, _) = b.client("reload", &[]);
    assert_eq!((code, out.trim()), (0, "nothing changed"));
    b.write_app("web", "command: [probe, sleep]\nenv: { V: \"2\" }\n");
    let (code, out, _) = b.client("reload", &[]);
    assert_eq!((code, out.trim()), (0, "left stopped (berth stop): web"));
    // A new berth (as after a reboot) does not start it.
    assert_eq!(b.stop(20), 0);
    b.seen.clear();
    b.spawn(&[]);
    b.expect(
        "web: stopped by berth stop; it stays stopped until berth start web",
        20,
    );
    let (_, table, _) = b.client("status", &[]);
    assert_eq!(row(&table, "web")[1], "stopped (by berth stop)");
    let (code, out, err) = b.client("start", &["web"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("web: running (pid "), "{out}");
    let (code, out, _) = b.client("start", &["web"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("web: running already (pid "), "{out}");
    // Restart: a new process.
    let before = pid_of(out.trim());
    let (code, out, err) = b.client("restart", &["web"]);
    assert_eq!(code, 0, "{err}");
    let after = pid_of(out.trim());
    assert_ne!(before, after);
    assert!(std::fs::metadata(format!("/proc/{before}")).is_err());
    assert_eq!(b.stop(20), 0);
}

#[test]
fn start_gives_a_failed_app_a_fresh_try_and_says_how_it_went() {
    let mut b = Berth::start(
        "ctl-start",
        &[(
            "doomed",
            "command: [/nosuch]\nrestart: { policy: always, max_restarts: 0 }\n",
        )],
    );
    b.expect("doomed launch failed at exec \"/nosuch\"", 20);
    let (code, _, err) = b.client("start", &["doomed"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("doomed: failed: launch failed at exec \"/nosuch\": No such file"),
        "{err}"
    );
    b.expect("doomed: start asked by berth start", 20);
    let (code, _, err) = b.client("stop", &["nosuch"]);
    assert_eq!((code, err.trim()), (1, "berth: no app named \"nosuch\""));
    let (code, _, err) = b.client("stop", &[]);
    assert_eq!(code, 2);
    assert_eq!(
        err.lines().take(2).collect::<Vec<_>>(),
        ["berth: stop: needs an APP", "usage: berth stop APP"]
    );
    assert_eq!(b.stop(20), 0);
}

#[test]
fn logs_history_tail_and_follow_within_100ms() {
    let mut b = Berth::start(
        "ctl-logs",
        &[
            (
                "chatty",
                "command: [probe, spew, \"5\"]\nrestart: { policy: never }\n",
            ),
            (
                "ticker",
                "command: [probe, live, \"50\", \"0\"]\nrestart: { policy: always, backoff: { initial: 10ms, max: 10ms } }\n",
            ),
        ],
    );
    b.expect("chatty exited with status 0", 20);
    // A stopped app's whole log, and its last lines.
    let (code, out, _) = b.client("logs", &["chatty"]);
    assert_eq!(code, 0);
    let stdout: Vec<&str> = out.lines().filter(|l| l.contains(" stdout ")).collect();
    assert_eq!(stdout.len(), 5, "{out}");
    assert!(stdout[0].contains(" stdout 00000000 "), "{out}");
    let (code, out, _) = b.client("logs", &["chatty", "-n", "2"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert_eq!(
        out,
        b.log("chatty")
            .lines()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    let (code, out, _) = b.client("logs", &["chatty", "--since", "1h"]);
    assert_eq!(code, 0);
    assert_eq!(out, b.log("chatty"));
    let (code, _, err) = b.client("logs", &["nosuch"]);
    assert_eq!(
        (code, err.trim()),
        (1, "berth: no app named \"nosuch\", and no log of one")
    );
    // -f: each new line of the ticker arrives within 100 ms of its stamp.
    let mut follow = b
        .client_command("logs", &["ticker", "-f", "-n", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let line = lines.next().unwrap().unwrap();
        let got = SystemTime::now();
        let stamp = parse_time(&line[..24]);
        let late = got.duration_since(stamp).unwrap_or_default();
        worst = worst.max(late);
        assert!(
            line.contains(" stdout up ")
                || line.contains(" stdout down ")
                || line.contains(" berth "),
            "{line}"
        );
    }
    assert!(
        worst < Duration::from_millis(100),
        "a line arrived {worst:?} after it was written"
    );
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(b.stop(20), 0);
}

/// The lines of `out`, read by a thread, as a channel (to wait on with a deadline).
fn lines_of(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// `2026-12-08T00:35:35.617Z` as a time.
fn parse_time(s: &str) -> SystemTime {
    let n = |a: usize, b: usize| s[a..b].parse::<u64>().unwrap();
    let (y, mo, d) = (n(0, 4), n(5, 7), n(8, 10));
    // Days from 1970-01-01 (civil calendar).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2 / 400;
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19);
    SystemTime::UNIX_EPOCH + Duration::from_millis(secs * 1000 + n(20, 23))
}

#[test]
fn events_stream_state_changes_as_text_and_json() {
    let mut b = Berth::start("ctl-events", &[("web", "command: [probe, sleep]\n")]);
    let pid = pid_of(&b.expect("web: running (pid ", 20));
    let mut text = b
        .client_command("events", &[])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut json = b
        .client_command("events", &["--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let text_lines = lines_of(text.stdout.take().unwrap());
    let json_lines = lines_of(json.stdout.take().unwrap());
    // A client is subscribed once its request is read, which the test cannot see:
    // reloads are asked for until each stream has its first event (each reload is one).
    let mut first_text = None;
    let mut first_json = None;
    for _ in 0..50 {
        let (code, _, _) = b.client("reload", &[]);
        assert_eq!(code, 0);
        first_text =
            first_text.or_else(|| text_lines.recv_timeout(Duration::from_millis(200)).ok());
        first_json =
            first_json.or_else(|| json_lines.recv_timeout(Duration::from_millis(200)).ok());
        if first_text.is_some() && first_json.is_some() {
            break;
        }
    }
    let first = first_text.expect("no reloaded event");
    assert!(first.ends_with(" reloaded: nothing changed"), "{first}");
    let first: serde_json::Value = serde_json::from_str(&first_json.unwrap()).unwrap();
    assert_eq!(
        (first["event"].as_str(), first["app"].is_null()),
        (Some("reloaded"), true)
    );
    // The other reloads' events, if any, are passed over.
    let next = |rx: &std::sync::mpsc::Receiver<String>| loop {
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        if !line.contains("reloaded") {
            return line;
        }
    };
    // SAFETY: plain integer arguments.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let mut seen = Vec::new();
    for _ in 0..3 {
        let line = next(&text_lines);
        seen.push(line.split_once(' ').unwrap().1.to_owned());
    }
    assert_eq!(
        seen[0],
        format!("web exited (pid {pid}): killed by SIGKILL")
    );
    assert!(seen[1].starts_with("web restarting: in "), "{seen:?}");
    assert!(seen[2].starts_with("web started (pid "), "{seen:?}");
    let exited: serde_json::Value = serde_json::from_str(&next(&json_lines)).unwrap();
    assert_eq!(exited["app"], "web");
    assert_eq!(exited["event"], "exited");
    assert_eq!(exited["pid"], pid);
    assert_eq!(exited["detail"], "killed by SIGKILL");
    for child in [&mut text, &mut json] {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(b.stop(20), 0);
}

#[test]
fn reload_says_what_changed_and_what_is_invalid() {
    let mut b = Berth::start(
        "ctl-reload",
        &[
            ("keep", "command: [probe, sleep]\n"),
            ("gone", "command: [probe, sleep]\n"),
        ],
    );
    b.expect_all(&["keep: running", "gone: running"], 20);
    std::fs::remove_file(b.tmp.join("apps/gone.yaml")).unwrap();
    b.write_app("new", "command: [probe, sleep]\n");
    b.write_app("keep", "command: [probe, sleep]\nenv: { A: \"1\" }\n");
    std::fs::write(b.tmp.join("apps/bad.yaml"), "name: bad\nimage: [oops\n").unwrap();
    let (code, out, _) = b.client("reload", &[]);
    assert_eq!(code, 1, "an invalid manifest makes the exit status 1");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..3],
        ["started: new", "stopped: gone", "restarted: keep"]
    );
    assert!(lines[3].starts_with("invalid: "), "{out}");
    assert!(lines[3].contains("bad.yaml:3:1"), "{out}");
    assert_eq!(b.stop(20), 0);
}

#[test]
fn shutdown_stops_every_app_and_says_so() {
    let mut b = Berth::start("ctl-shutdown", &[("web", "command: [probe, sleep]\n")]);
    b.expect("web: running", 20);
    let (code, out, err) = b.client("shutdown", &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "berth: stopping every app\nberth: every app is stopped; berth exits\n"
    );
    assert_eq!(b.wait_exit(20).code(), Some(0));
}

#[test]
fn clients_need_root_and_a_running_berth() {
    let b = Berth::prepare("ctl-guard", &[], "");
    // No berth yet.
    let (code, _, err) = b.client("status", &[]);
    let socket = b.tmp.join("run/berth.sock");
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        format!("berth is not running (no socket at {})", socket.display())
    );
    let mut b = b;
    b.spawn(&[]);
    b.expect("supervising", 20);
    // The socket is root's alone; opened up, berth still checks who connects.
    let mode = std::fs::metadata(&socket).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    for dir in [b.tmp.path().to_owned(), b.tmp.join("run")] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut c = b.client_command("status", &[]);
    use std::os::unix::process::CommandExt as _;
    c.uid(65534).gid(65534);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.trim()
            .ends_with("permission denied: berth's control socket is root-only"),
        "{err}"
    );
    assert_eq!(b.stop(20), 0);
}

#[test]
fn a_burst_of_clients_and_one_that_never_reads_do_not_hold_up_a_probe() {
    let flag = common::TempDir::new("ctl-burst-flag");
    let mut b = Berth::start(
        "ctl-burst",
        &[(
            "web",
            &format!(
                "command: [probe, spew, \"1000000\"]\nrestart: {{ policy: never }}\n\
                 mounts: [{{ type: bind, source: {}, target: /flag, readonly: true }}]\n\
                 healthcheck: {{ exec: [probe, cat, /flag/ok], interval: 100ms, timeout: 90ms, retries: 1, on_unhealthy: none }}\n",
                flag.path().display()
            ),
        )],
    );
    b.expect("web: unhealthy", 20);
    let socket = b.tmp.join("run/berth.sock");
    // 200 clients that connect and say nothing, and one that follows the chatty log
    // and never reads.
    let mut idle = Vec::new();
    for _ in 0..200 {
        if let Ok(s) = UnixStream::connect(&socket) {
            idle.push(s);
        }
    }
    let mut deaf = UnixStream::connect(&socket).unwrap();
    deaf.write_all(b"[\"berth/1\",\"logs\",\"web\",\"-f\"]\n")
        .unwrap();
    // The probe still runs on time: healthy within a few intervals of the flag.
    std::fs::write(flag.join("ok"), "ok").unwrap();
    let t = Instant::now();
    b.expect("web: healthy", 20);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the probe waited {:?}",
        t.elapsed()
    );
    // And a status asked meanwhile is answered.
    let t = Instant::now();
    drop(idle);
    let (code, _, _) = b.client("status", &[]);
    assert_eq!(code, 0);
    assert!(t.elapsed() < Duration::from_secs(2));
    drop(deaf);
    assert_eq!(b.stop(20), 0);
}

#[test]
fn gc_through_berth_keeps_the_image_of_what_it_runs() {
    let mut b = Berth::prepare(
        "ctl-gc",
        &[(
            "crashy",
            "command: [probe, exit, \"3\"]\n\
             restart: { policy: always, backoff: { initial: 1h, max: 1h }, max_restarts: 10 }\n",
        )],
        "",
    );
    // gc reads the manifests of the configured apps directory.
    let config = b.tmp.join("berth.yaml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("apps_dir: {}\n", b.tmp.join("apps").display()));
    std::fs::write(&config, text).unwrap();
    b.spawn(&[]);
    b.expect("crashy exited with status 3", 20);
    let running = b.image.digest.clone();
    // Its manifest names another image now, not reloaded yet: berth still runs the
    // old definition, with no process holding the old image while it backs off.
    let other = common::probe::probe_image(&b.tmp, common::probe::Variant::NoBin);
    std::fs::write(
        b.tmp.join("apps/crashy.yaml"),
        format!(
            "name: crashy\nimage: {{ path: {}, sha256: {} }}\ncommand: [probe, exit, \"3\"]\n",
            other.image_file.display(),
            other.digest
        ),
    )
    .unwrap();
    // Without berth's knowledge (the store alone) the running image looks unused...
    let state = b.image.state_dir.display().to_string();
    let (code, alone, err) = b.client("gc", &["--dry-run", "--state-dir", &state]);
    assert_eq!(code, 0, "{alone}{err}");
    assert!(
        alone.contains(&format!("would remove {running}")),
        "{alone}"
    );
    // ...through berth it is kept, and the answer comes from berth's gc job.
    let (code, through, err) = b.client("gc", &["--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(!through.contains(&running), "{through}");
    let (code, through, err) = b.client("gc", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!through.contains(&running), "{through}");
    assert_eq!(b.stop(20), 0);
}

#[test]
fn inspect_shows_the_configuration_as_berth_runs_it() {
    let mut b = Berth::start(
        "ctl-inspect",
        &[("web", "command: [probe, sleep]\nenv: { A: \"1\" }\n")],
    );
    b.expect("web: running", 20);
    let (code, out, err) = b.client("inspect", &["web"]);
    assert_eq!(code, 0, "{err}");
    // The resolved configuration: defaults filled in, as YAML a manifest loads from.
    let v: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
    assert_eq!(v["name"].as_str(), Some("web"));
    assert_eq!(v["image"]["sha256"].as_str(), Some(b.image.digest.as_str()));
    assert!(v["restart"]["policy"].is_string(), "{out}");
    assert!(v["stop"]["timeout"].is_string(), "{out}");
    assert_eq!(v["env"]["A"].as_str(), Some("1"), "{out}");
    let (code, _, err) = b.client("inspect", &["nosuch"]);
    assert_eq!((code, err.trim()), (1, "berth: no app named \"nosuch\""));
    assert_eq!(b.stop(20), 0);
}
