//! The transition table, exhaustively: every phase with every event, with numbers
//! standing for processes (runs) and install jobs, and a fake clock.

use super::*;
use crate::manifest::load_texts;

/// Plain numbers for the resources: a run is 7, a job 9 (8 when it comes with an event).
struct Fake;

impl Resources for Fake {
    type Job = u32;
    type Run = u32;
}

const NOW: u64 = 100_000;

fn manifest(extra: &str) -> Manifest {
    let text = format!(
        "name: web\nimage: {{ path: web.tar, sha256: {} }}\n{extra}",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    );
    let loaded = load_texts([(std::path::PathBuf::from("/etc/apps/web.yaml"), text)]);
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    loaded.apps.into_iter().next().unwrap()
}

fn life(extra: &str, phase: Phase<Fake>) -> Life<Fake> {
    let mut l = Life::new(manifest(extra));
    l.phase = phase;
    l.attempt_ms = NOW - 2_000;
    l
}

/// A stop asking for `then`; `receivable`: the process gets its stop signal.
fn stop(then: Then, receivable: bool) -> Event<Fake> {
    Event::Stop {
        then,
        why: None,
        receivable,
    }
}

/// The process ended for `reason`; `success` for exit status 0.
fn exited(reason: &str, success: bool) -> Event<Fake> {
    Event::Exited {
        reason: reason.to_owned(),
        success,
    }
}

/// Running as run 7 since `since`.
fn running(since: u64, health: Health) -> Phase<Fake> {
    Phase::Running {
        run: 7,
        since,
        health,
    }
}

/// Every phase once, each holding what it holds (run 7, job 9).
fn phases() -> Vec<Phase<Fake>> {
    vec![
        Phase::Stopped,
        Phase::Waiting {
            on: "waiting for db to be running (it is starting)".into(),
        },
        Phase::Preparing,
        Phase::Installing { job: 9 },
        Phase::Starting { run: 7 },
        running(NOW - 1_000, Health::None),
        Phase::Stopping {
            run: 7,
            deadline: NOW + 5_000,
            then: Then::Stay,
            why: None,
        },
        Phase::Backoff {
            until: NOW + 500,
            attempt: 1,
        },
        Phase::Failed {
            reasons: vec!["exited with status 1".into()],
        },
        Phase::Exited {
            reason: "exited with status 0".into(),
        },
    ]
}

/// Every kind of event once (runs and jobs that come with an event are 8).
fn events() -> Vec<(&'static str, Event<Fake>)> {
    vec![
        (
            "start-blocked",
            Event::Start {
                blocked: Some("waiting for db to be running (it is backoff)".into()),
                installed: true,
            },
        ),
        (
            "start",
            Event::Start {
                blocked: None,
                installed: true,
            },
        ),
        (
            "start-uninstalled",
            Event::Start {
                blocked: None,
                installed: false,
            },
        ),
        ("install-started", Event::InstallStarted(8)),
        ("install-exited", Event::InstallExited { status: 0 }),
        ("installed", Event::InstallDone(Ok(()))),
        (
            "install-failed",
            Event::InstallDone(Err("bad digest".into())),
        ),
        ("launched", Event::Launched(8)),
        (
            "launch-failed",
            Event::LaunchFailed("no such device".into()),
        ),
        ("execd", Event::Execd { pid: 42 }),
        ("exec-failed", Event::ExecFailed("exec failed".into())),
        ("exited-0", exited("exited with status 0", true)),
        ("exited-1", exited("exited with status 1", false)),
        ("stop", stop(Then::Stay, true)),
        ("restart", stop(Then::Restart, true)),
        ("remove", stop(Then::Remove, true)),
        ("stop-timeout", Event::StopTimeout),
        (
            "probed-ok",
            Event::Probed {
                ok: true,
                why: String::new(),
            },
        ),
    ]
}

/// The phase each event leads to from each phase, in the order of [`phases`] (rows)
/// and [`events`] (columns); `=` is "unchanged".
#[rustfmt::skip]
const TABLE: [(&str, [&str; 18]); 10] = [
    //              blocked    start        uninst       i-start       i-exit       installed    i-failed   launched    l-failed   execd      e-failed   exit0      exit1      stop        restart     remove      timeout     probed
    ("stopped",    ["waiting", "preparing", "preparing", "=",          "=",         "=",         "=",       "=",        "=",       "=",       "=",       "=",       "=",       "stopped",  "stopped",  "stopped",  "=",        "="]),
    ("waiting",    ["waiting", "preparing", "preparing", "=",          "=",         "=",         "=",       "=",        "=",       "=",       "=",       "=",       "=",       "stopped",  "stopped",  "stopped",  "=",        "="]),
    ("preparing",  ["=",       "=",         "=",         "installing", "=",         "preparing", "backoff", "starting", "backoff", "=",       "=",       "=",       "=",       "=",        "=",        "=",        "=",        "="]),
    ("installing", ["=",       "=",         "=",         "=",          "preparing", "=",         "=",       "=",        "=",       "=",       "=",       "=",       "=",       "stopped",  "stopped",  "stopped",  "=",        "="]),
    ("starting",   ["=",       "=",         "=",         "=",          "=",         "=",         "=",       "=",        "=",       "running", "backoff", "backoff", "backoff", "stopping", "stopping", "stopping", "=",        "="]),
    ("running",    ["=",       "=",         "=",         "=",          "=",         "=",         "=",       "=",        "=",       "=",       "=",       "backoff", "backoff", "stopping", "stopping", "stopping", "=",        "="]),
    ("stopping",   ["=",       "=",         "=",         "=",          "=",         "=",         "=",       "=",        "=",       "=",       "=",       "stopped", "stopped", "stopping", "stopping", "stopping", "stopping", "="]),
    ("backoff",    ["waiting", "preparing", "preparing", "=",          "=",         "=",         "=",       "=",        "=",       "=",       "=",       "=",       "=",       "stopped",  "stopped",  "stopped",  "=",        "="]),
    ("failed",     ["waiting", "preparing", "preparing", "=",          "=",         "=",         "=",       "=",        "=",       "=",       "=",       "=",       "=",       "stopped",  "stopped",  "stopped",  "=",        "="]),
    ("exited",     ["waiting", "preparing", "preparing", "=",          "=",         "=",         "=",       "=",        "=",       "=",       "=",       "=",       "=",       "stopped",  "stopped",  "stopped",  "=",        "="]),
];

/// The resources a phase holds.
fn held(phase: &Phase<Fake>) -> Vec<u32> {
    match phase {
        Phase::Installing { job } => vec![*job],
        Phase::Starting { run } | Phase::Running { run, .. } | Phase::Stopping { run, .. } => {
            vec![*run]
        }
        _ => vec![],
    }
}

fn given(event: &Event<Fake>) -> Vec<u32> {
    match event {
        Event::InstallStarted(j) => vec![*j],
        Event::Launched(r) => vec![*r],
        _ => vec![],
    }
}

fn released(effects: &[Effect<Fake>]) -> Vec<u32> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Release(r) => Some(*r),
            Effect::CancelInstall(j) | Effect::FinishInstall(j, _) => Some(*j),
            _ => None,
        })
        .collect()
}

#[test]
fn every_phase_with_every_event() {
    let names: Vec<&str> = phases().iter().map(Phase::name).collect();
    assert_eq!(
        names,
        TABLE.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        "the table's rows"
    );
    for (row, (from, cells)) in TABLE.iter().enumerate() {
        for (col, want) in cells.iter().enumerate() {
            let phase = phases().swap_remove(row);
            let (event_name, event) = events().swap_remove(col);
            let mut app = life("", phase);
            let before: Vec<u32> = held(&app.phase).into_iter().chain(given(&event)).collect();
            let effects = step(&mut app, event, NOW, Context::default());
            let got = app.phase.name();
            let want = if *want == "=" { *from } else { *want };
            assert_eq!(got, want, "{from} + {event_name}");
            // Nothing is lost: whatever was held before is held now or given back.
            let mut after: Vec<u32> = held(&app.phase)
                .into_iter()
                .chain(released(&effects))
                .collect();
            let mut before = before;
            before.sort_unstable();
            after.sort_unstable();
            assert_eq!(before, after, "{from} + {event_name}: resources");
            // An event that changes nothing has no effect, except giving back what
            // came with it.
            if *cells.get(col).unwrap() == "=" && given(&events().swap_remove(col).1).is_empty() {
                let other: Vec<&Effect<Fake>> = effects
                    .iter()
                    .filter(|e| {
                        !matches!(e, Effect::Log(..) | Effect::Disarm(..) | Effect::KillAll)
                    })
                    .collect();
                assert!(
                    other.is_empty() || *from == "stopping",
                    "{from} + {event_name}: {} effects",
                    other.len()
                );
            }
        }
    }
}

fn logs(effects: &[Effect<Fake>]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Log(level, line) => Some(format!("{level} {line}")),
            _ => None,
        })
        .collect()
}

fn arms(effects: &[Effect<Fake>]) -> Vec<(Due, u64)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Arm(d, at) => Some((*d, *at)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_launch_that_fails_before_spawn_counts_from_its_own_attempt() {
    // The app last ran long ago: its attempt time is now, so the uptime is 0 and
    // the backoff doubles (it is not "a long run that resets the count").
    let m =
        "restart: { policy: always, backoff: { initial: 100ms, max: 10s }, max_restarts: 10 }\n";
    let mut app = life(m, Phase::Stopped);
    app.attempt_ms = 0;
    let mut delays = Vec::new();
    let mut now = NOW;
    for _ in 0..3 {
        let fx = step(
            &mut app,
            Event::Start {
                blocked: None,
                installed: true,
            },
            now,
            Context::default(),
        );
        assert!(matches!(fx.last(), Some(Effect::Launch)));
        let fx = step(
            &mut app,
            Event::LaunchFailed("no /dev/ttyX".into()),
            now,
            Context::default(),
        );
        assert_eq!(
            logs(&fx)
                .last()
                .map(String::as_str)
                .unwrap_or_default()
                .split("; ")
                .next(),
            Some("WARN web could not start: no /dev/ttyX after 0ms")
        );
        let Phase::Backoff { until, .. } = app.phase else {
            panic!("{}", app.phase.name());
        };
        delays.push(until - now);
        now = until;
    }
    assert_eq!(delays, [100, 200, 400]);
}

#[test]
fn waiting_is_said_once_per_reason() {
    let mut app = life("", Phase::Stopped);
    let blocked = |why: &str| Event::Start {
        blocked: Some(why.to_owned()),
        installed: true,
    };
    let fx = step(
        &mut app,
        blocked("waiting for db to be healthy"),
        NOW,
        Context::default(),
    );
    assert_eq!(logs(&fx), ["INFO web: waiting for db to be healthy"]);
    let fx = step(
        &mut app,
        blocked("waiting for db to be healthy"),
        NOW,
        Context::default(),
    );
    assert_eq!(logs(&fx), Vec::<String>::new());
    // What db is now changes; what web waits for does not.
    let fx = step(
        &mut app,
        blocked("waiting for db to be healthy (it is backoff)"),
        NOW,
        Context::default(),
    );
    assert_eq!(logs(&fx), Vec::<String>::new());
    assert!(matches!(&app.phase, Phase::Waiting { on } if on.ends_with("(it is backoff)")));
    let fx = step(
        &mut app,
        blocked("waiting for cache to be running (it is failed)"),
        NOW,
        Context::default(),
    );
    assert_eq!(
        logs(&fx),
        ["INFO web: waiting for cache to be running (it is failed)"]
    );
}

#[test]
fn a_clean_exit_of_a_never_app_is_information() {
    let mut app = life(
        "restart: { policy: never }\n",
        running(NOW - 1_000, Health::None),
    );
    let fx = step(
        &mut app,
        exited("exited with status 0", true),
        NOW,
        Context::default(),
    );
    assert_eq!(
        logs(&fx),
        ["INFO web exited with status 0 after 2.0s; not restarted (restart: never)"]
    );
    assert_eq!(app.phase.name(), "exited");
}

#[test]
fn unhealthy_restarts_in_one_line() {
    let hc = "healthcheck: { exec: [check], interval: 1s, timeout: 500ms, retries: 2 }\n\
              restart: { policy: always, backoff: { initial: 100ms, max: 1s } }\n";
    let mut app = life(hc, running(NOW - 60_000, Health::Healthy));
    let failed = || Event::Probed {
        ok: false,
        why: "exited with status 1".into(),
    };
    let fx = step(&mut app, failed(), NOW, Context::default());
    assert!(logs(&fx).is_empty());
    let fx = step(&mut app, failed(), NOW + 1_000, Context::default());
    assert!(logs(&fx).is_empty(), "{:?}", logs(&fx));
    let Some(Effect::Stop { then, why }) = fx.last() else {
        panic!("no stop");
    };
    assert_eq!(*then, Then::Restart);
    let why = why.clone();
    assert_eq!(
        why.as_deref(),
        Some("unhealthy: exec [\"check\"] exited with status 1 (2 times in a row)")
    );
    let fx = step(
        &mut app,
        Event::Stop {
            then: Then::Restart,
            why,
            receivable: true,
        },
        NOW + 1_000,
        Context::default(),
    );
    assert!(matches!(fx.first(), Some(Effect::Signal(libc::SIGTERM))));
    assert!(logs(&fx).is_empty());
    let fx = step(
        &mut app,
        exited("killed by SIGTERM", false),
        NOW + 1_200,
        Context::default(),
    );
    assert_eq!(
        logs(&fx),
        [
            "WARN web unhealthy: exec [\"check\"] exited with status 1 (2 times in a row) \
          after 3.2s; restart 1 in 100ms"
        ]
    );
    assert_eq!(arms(&fx), [(Due::Backoff, NOW + 1_300)]);
}

#[test]
fn an_init_that_cannot_get_its_stop_signal_is_killed_at_once() {
    let mut app = life("", running(NOW, Health::None));
    let fx = step(&mut app, stop(Then::Stay, false), NOW, Context::default());
    assert!(fx.iter().any(|e| matches!(e, Effect::KillAll)));
    assert!(!fx.iter().any(|e| matches!(e, Effect::Signal(_))));
    assert_eq!(
        logs(&fx),
        [
            "WARN web: its process (a pid-namespace init) does not handle SIGTERM; killing it \
          now rather than after 10.0s (`init: true` gives it an init that forwards signals)"
        ]
    );
}

#[test]
fn a_manifest_back_while_stopping_turns_the_removal_into_a_restart() {
    let mut app = life(
        "",
        Phase::Stopping {
            run: 7,
            deadline: NOW + 10_000,
            then: Then::Remove,
            why: None,
        },
    );
    let fx = step(&mut app, stop(Then::Restart, true), NOW, Context::default());
    assert!(fx.is_empty());
    let fx = step(
        &mut app,
        exited("killed by SIGTERM", false),
        NOW + 50,
        Context::default(),
    );
    assert!(fx.iter().any(|e| matches!(e, Effect::StartAgain)));
    assert!(!fx.iter().any(|e| matches!(e, Effect::Forget)));
    // A stop at shutdown, though, wins over any restart.
    let mut app = life(
        "",
        Phase::Stopping {
            run: 7,
            deadline: NOW + 10_000,
            then: Then::Restart,
            why: None,
        },
    );
    step(&mut app, stop(Then::Stay, true), NOW, Context::default());
    assert!(matches!(
        app.phase,
        Phase::Stopping {
            then: Then::Stay,
            ..
        }
    ));
}

#[test]
fn nothing_starts_or_restarts_while_shutting_down() {
    let ctx = Context {
        shutting_down: true,
    };
    let mut app = life(
        "",
        Phase::Backoff {
            until: NOW,
            attempt: 1,
        },
    );
    let fx = step(
        &mut app,
        Event::Start {
            blocked: None,
            installed: true,
        },
        NOW,
        ctx,
    );
    assert!(fx.is_empty());
    assert_eq!(app.phase.name(), "backoff");
    let mut app = life("", running(NOW, Health::None));
    let fx = step(&mut app, exited("exited with status 1", false), NOW, ctx);
    assert_eq!(app.phase.name(), "stopped");
    assert_eq!(
        logs(&fx),
        ["INFO web: exited with status 1 after 2.0s while stopping every app"]
    );
}

#[test]
fn running_arms_the_first_probe_and_wakes_dependants() {
    let mut app = life(
        "healthcheck: { exec: [check], interval: 2s }\n",
        Phase::Starting { run: 7 },
    );
    let fx = step(&mut app, Event::Execd { pid: 42 }, NOW, Context::default());
    assert_eq!(logs(&fx), ["INFO web: running (pid 42)"]);
    assert_eq!(arms(&fx), [(Due::Probe, NOW + 2_000)]);
    assert!(fx.iter().any(|e| matches!(e, Effect::WakeDependants)));
    assert_eq!(app.phase.health(), Some(Health::Starting));
}
