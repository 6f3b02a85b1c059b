//! The transition table itself: [`step`] and the rules it shares between its rows.

use super::{Context, Due, Effect, Event, Health, Life, Phase, Resources, Then};
use crate::supervisor::policy::{self, Decision, ExitKind, HealthChange, HealthTracker};

/// The transition table: what `event` does to `app` at `now` (milliseconds on a
/// monotonic clock), as the new phase (set in `app`) and the effects to carry out, in
/// order.
pub fn step<R: Resources>(
    app: &mut Life<R>,
    event: Event<R>,
    now: u64,
    ctx: Context,
) -> Vec<Effect<R>> {
    let mut fx = Vec::new();
    let phase = std::mem::replace(&mut app.phase, Phase::Stopped);
    app.phase = match (phase, event) {
        // Bringing it up.
        (down, Event::Start { blocked, installed }) if can_start(&down) => {
            if ctx.shutting_down {
                down
            } else if let Some(on) = blocked {
                // Said once per dependency and condition; what the dependency is now
                // (the detail in brackets) is kept for whoever asks.
                let said =
                    matches!(&down, Phase::Waiting { on: before } if gist(before) == gist(&on));
                if !said {
                    fx.push(Effect::Log(
                        log::Level::Info,
                        format!("{}: {on}", app.name()),
                    ));
                }
                fx.push(Effect::Disarm(Due::Backoff));
                Phase::Waiting { on }
            } else {
                fx.push(Effect::Disarm(Due::Backoff));
                app.attempt_ms = now;
                fx.push(if installed {
                    Effect::Launch
                } else {
                    Effect::Install
                });
                Phase::Preparing
            }
        }
        (Phase::Preparing, Event::InstallStarted(job)) => Phase::Installing { job },
        (Phase::Installing { job }, Event::InstallExited { status }) => {
            fx.push(Effect::FinishInstall(job, status));
            Phase::Preparing
        }
        (Phase::Preparing, Event::InstallDone(Ok(()))) => {
            fx.push(Effect::Launch);
            Phase::Preparing
        }
        (Phase::Preparing, Event::InstallDone(Err(why))) => {
            ended(app, &mut fx, ExitKind::Failure, why, now, ctx)
        }
        (Phase::Preparing, Event::LaunchFailed(why)) => {
            let reason = format!("could not start: {why}");
            ended(app, &mut fx, ExitKind::Failure, reason, now, ctx)
        }
        (Phase::Preparing, Event::Launched(run)) => Phase::Starting { run },
        (Phase::Starting { run }, Event::Execd { pid }) => {
            let health = if app.manifest.healthcheck.is_some() {
                Health::Starting
            } else {
                Health::None
            };
            app.health = HealthTracker::default();
            app.probe_error.clear();
            fx.push(Effect::Log(
                log::Level::Info,
                format!("{}: running (pid {pid})", app.name()),
            ));
            fx.push(Effect::Note(format!("started, pid {pid}")));
            if let Some(hc) = &app.manifest.healthcheck {
                fx.push(Effect::Arm(Due::Probe, now + hc.interval.as_millis()));
            }
            fx.push(Effect::WakeDependants);
            Phase::Running {
                run,
                since: now,
                health,
            }
        }
        (Phase::Starting { run }, Event::ExecFailed(why)) => {
            release(&mut fx, run);
            ended(app, &mut fx, ExitKind::Failure, why, now, ctx)
        }
        (
            Phase::Starting { run } | Phase::Running { run, .. },
            Event::Exited { reason, success },
        ) => {
            release(&mut fx, run);
            let kind = if success {
                ExitKind::Success
            } else {
                ExitKind::Failure
            };
            ended(app, &mut fx, kind, reason, now, ctx)
        }
        (Phase::Stopping { run, then, why, .. }, Event::Exited { reason, .. }) => {
            release(&mut fx, run);
            fx.push(Effect::Disarm(Due::StopDeadline));
            match (then, why) {
                // Stopped for failing its health check: a failure like any other,
                // with backoff and the crash-loop limit, reported in one line.
                (Then::Restart, Some(why)) if !ctx.shutting_down => {
                    ended(app, &mut fx, ExitKind::Failure, why, now, ctx)
                }
                (then, _) => {
                    let uptime = now.saturating_sub(app.attempt_ms);
                    fx.push(Effect::Log(
                        log::Level::Info,
                        format!(
                            "{}: stopped ({reason} after {})",
                            app.name(),
                            policy::format_ms(uptime)
                        ),
                    ));
                    after_stop(&mut fx, then, ctx)
                }
            }
        }
        // Stopping it.
        (Phase::Starting { run }, Event::Stop { then, why, .. }) => {
            // Not exec'd yet: nothing of the app's own can handle a signal.
            fx.push(Effect::KillAll);
            stopping(app, &mut fx, run, then, why, now)
        }
        (
            Phase::Running { run, .. },
            Event::Stop {
                then,
                why,
                receivable,
            },
        ) => {
            let signal = app.manifest.stop.signal;
            if receivable {
                fx.push(Effect::Signal(signal.number()));
            } else {
                fx.push(Effect::Log(
                    log::Level::Warn,
                    format!(
                        "{}: its process (a pid-namespace init) does not handle {}; \
                         killing it now rather than after {} (`init: true` gives it an \
                         init that forwards signals)",
                        app.name(),
                        crate::cgroup::signal_name(signal.number()),
                        policy::format_ms(app.manifest.stop.timeout.as_millis())
                    ),
                ));
                fx.push(Effect::KillAll);
            }
            stopping(app, &mut fx, run, then, why, now)
        }
        (
            Phase::Stopping {
                run,
                deadline,
                then: before,
                why: was,
            },
            Event::Stop { then, why, .. },
        ) => Phase::Stopping {
            run,
            deadline,
            // A stop at shutdown or by hand wins over a restart; a manifest that
            // comes back turns a removal into a restart.
            then: match (before, then) {
                (_, Then::Stay) | (Then::Stay, _) => Then::Stay,
                (_, later) => later,
            },
            why: why.or(was),
        },
        (Phase::Installing { job }, Event::Stop { then, .. }) => {
            fx.push(Effect::CancelInstall(job));
            after_stop(&mut fx, then, ctx)
        }
        (down, Event::Stop { then, .. }) if !matches!(down, Phase::Preparing) => {
            fx.push(Effect::Disarm(Due::Backoff));
            after_stop(&mut fx, then, ctx)
        }
        (
            Phase::Stopping {
                run,
                deadline,
                then,
                why,
            },
            Event::StopTimeout,
        ) => {
            fx.push(Effect::Log(
                log::Level::Warn,
                format!(
                    "{}: did not stop within {}; killing it",
                    app.name(),
                    policy::format_ms(app.manifest.stop.timeout.as_millis())
                ),
            ));
            fx.push(Effect::KillAll);
            Phase::Stopping {
                run,
                deadline,
                then,
                why,
            }
        }
        // Health.
        (Phase::Running { run, since, health }, Event::Probed { ok, why }) => {
            probed(app, &mut fx, run, since, health, ok, why, now, ctx)
        }
        // Everything else is the tail of something overtaken: nothing changes.
        (phase, event) => {
            drop_resources(&mut fx, event);
            phase
        }
    };
    fx
}

/// A waiting reason without its detail: `waiting for web to be healthy`.
fn gist(on: &str) -> &str {
    on.split(" (").next().unwrap_or(on)
}

/// Whether a [`Event::Start`] brings the app up from `phase`.
fn can_start<R: Resources>(phase: &Phase<R>) -> bool {
    matches!(
        phase,
        Phase::Stopped
            | Phase::Waiting { .. }
            | Phase::Backoff { .. }
            | Phase::Failed { .. }
            | Phase::Exited { .. }
    )
}

fn release<R: Resources>(fx: &mut Vec<Effect<R>>, run: R::Run) {
    fx.push(Effect::Release(run));
    fx.push(Effect::Disarm(Due::Probe));
    fx.push(Effect::Disarm(Due::ProbeTimeout));
    fx.push(Effect::NetworkGone);
}

/// An event that came with a resource nobody wants any more gives it back.
fn drop_resources<R: Resources>(fx: &mut Vec<Effect<R>>, event: Event<R>) {
    match event {
        Event::Launched(run) => {
            fx.push(Effect::KillAll);
            fx.push(Effect::Release(run));
        }
        Event::InstallStarted(job) => fx.push(Effect::CancelInstall(job)),
        _ => {}
    }
}

fn stopping<R: Resources>(
    app: &Life<R>,
    fx: &mut Vec<Effect<R>>,
    run: R::Run,
    then: Then,
    why: Option<String>,
    now: u64,
) -> Phase<R> {
    let deadline = now + app.manifest.stop.timeout.as_millis();
    fx.push(Effect::Disarm(Due::Probe));
    fx.push(Effect::Disarm(Due::ProbeTimeout));
    fx.push(Effect::Arm(Due::StopDeadline, deadline));
    Phase::Stopping {
        run,
        deadline,
        then,
        why,
    }
}

/// Down after a stop: what `then` says.
fn after_stop<R: Resources>(fx: &mut Vec<Effect<R>>, then: Then, ctx: Context) -> Phase<R> {
    match then {
        Then::Remove => fx.push(Effect::Forget),
        Then::Restart if !ctx.shutting_down => fx.push(Effect::StartAgain),
        Then::Restart | Then::Stay => {}
    }
    Phase::Stopped
}

/// It ended (or never got as far as a process): the restart policy decides, and one
/// line says what happened and what follows.
fn ended<R: Resources>(
    app: &mut Life<R>,
    fx: &mut Vec<Effect<R>>,
    kind: ExitKind,
    reason: String,
    now: u64,
    ctx: Context,
) -> Phase<R> {
    let uptime = now.saturating_sub(app.attempt_ms);
    if ctx.shutting_down {
        fx.push(Effect::Log(
            log::Level::Info,
            format!(
                "{}: {reason} after {} while stopping every app",
                app.name(),
                policy::format_ms(uptime)
            ),
        ));
        return Phase::Stopped;
    }
    let decision = policy::on_exit(
        &app.manifest.restart,
        &mut app.history,
        app.attempt_ms,
        now,
        kind,
        &reason,
    );
    let line = policy::restart_message(app.name(), &reason, uptime, &decision);
    // A clean exit that stays down is information; every other exit a warning (a
    // crash loop too: the line says it failed, and a device's log watcher keys on
    // that, not on the level).
    let level = match (&decision, kind) {
        (Decision::Stay { .. }, ExitKind::Success) => log::Level::Info,
        _ => log::Level::Warn,
    };
    fx.push(Effect::Note(line.clone()));
    fx.push(Effect::Log(level, line));
    match decision {
        Decision::Restart { delay_ms, attempt } => {
            fx.push(Effect::Arm(Due::Backoff, now + delay_ms));
            Phase::Backoff {
                until: now + delay_ms,
                attempt,
            }
        }
        Decision::Fail { reasons, .. } => Phase::Failed { reasons },
        Decision::Stay { .. } => Phase::Exited { reason },
    }
}

#[allow(clippy::too_many_arguments, reason = "the parts of a running phase")]
fn probed<R: Resources>(
    app: &mut Life<R>,
    fx: &mut Vec<Effect<R>>,
    run: R::Run,
    since: u64,
    health: Health,
    ok: bool,
    why: String,
    now: u64,
    ctx: Context,
) -> Phase<R> {
    fx.push(Effect::Disarm(Due::ProbeTimeout));
    let Some(hc) = &app.manifest.healthcheck else {
        return Phase::Running { run, since, health };
    };
    if !ok {
        app.probe_error = why;
    }
    match policy::on_probe(hc, &mut app.health, since, now, ok) {
        Some(HealthChange::Healthy) => {
            fx.push(Effect::Log(
                log::Level::Info,
                format!("{}: healthy", app.name()),
            ));
            fx.push(Effect::WakeDependants);
            Phase::Running {
                run,
                since,
                health: Health::Healthy,
            }
        }
        Some(HealthChange::Unhealthy { restart }) => {
            let reason = format!(
                "unhealthy: {} {} ({} times in a row)",
                policy::probe_name(&hc.probe),
                app.probe_error,
                hc.retries.get()
            );
            if restart && !ctx.shutting_down {
                // Said in one line once it is down: `web unhealthy: ... after 36.2s;
                // restart 1 in 500ms`.
                fx.push(Effect::Stop {
                    then: Then::Restart,
                    why: Some(reason),
                });
                Phase::Running {
                    run,
                    since,
                    health: Health::Unhealthy,
                }
            } else {
                fx.push(Effect::Log(
                    log::Level::Warn,
                    format!("{}: {reason}", app.name()),
                ));
                Phase::Running {
                    run,
                    since,
                    health: Health::Unhealthy,
                }
            }
        }
        None => Phase::Running { run, since, health },
    }
}
