//! An app's lifecycle: one enum per app that owns what the app holds in each phase
//! (an install job, a process with its cgroup), and the transition table as one pure
//! function, [`step`]: `(app, event, now) -> effects`.
//!
//! Nothing here touches the system or reads a clock. The loop ([`super::core`]) turns
//! what happens (a reaped pid, a readable channel, the timer, a signal, a reload) into
//! an [`Event`], calls [`step`], and carries out the [`Effect`]s it returns; some of them
//! (starting an install or a launch) answer with the next event. The resources are type
//! parameters ([`Resources`]), so the table is tested here with plain numbers standing for
//! them, exhaustively, with a fake clock.
//!
//! An event that has no meaning in a phase (a stop timeout for an app that is already
//! down, an exec report for an app that is not starting) changes nothing and returns no
//! effect: such events are the tail of something that was overtaken (the timer fired in
//! the same wake-up as the exit), never an illegal move.

use super::policy::{self, Decision, ExitKind, HealthChange, HealthTracker, History};
use crate::manifest::Manifest;

/// What the shell's resources are: an image install in progress, and a launched
/// process with everything that goes with it (cgroup, channel, probe, ...).
pub trait Resources {
    type Job;
    type Run;
}

/// Where an app is. The variants with a process or a job own it: an app that is not
/// up cannot hold a process, and dropping a phase is the only way to let one go (as an
/// [`Effect::Release`] or [`Effect::CancelInstall`] the shell carries out).
pub enum Phase<R: Resources> {
    /// Not started yet, or stopped by hand or at shutdown.
    Stopped,
    /// To be started, but a dependency does not hold; `on` says which and why.
    Waiting { on: String },
    /// Being brought up by the shell within the current dispatch: the install or the
    /// launch asked for is answered by the next event.
    Preparing,
    /// Its image is being unpacked by a child process.
    Installing { job: R::Job },
    /// Launched; `exec` not confirmed yet.
    Starting { run: R::Run },
    /// Its `exec` succeeded at `since`.
    Running {
        run: R::Run,
        since: u64,
        health: Health,
    },
    /// Its stop signal was sent at `since`; it is killed at `deadline` if still alive, and
    /// `then` says what follows once it is gone. `why`: the reason, when it is stopped
    /// for failing (its health check), which makes its end count as a failure.
    Stopping {
        run: R::Run,
        deadline: u64,
        then: Then,
        why: Option<String>,
    },
    /// Ended; restart number `attempt` (within the window) is due at `until`.
    Backoff { until: u64, attempt: u32 },
    /// Restarted too often within the window: down until started by hand or its
    /// manifest changes. `reasons`: its last exit reasons, oldest first.
    Failed { reasons: Vec<String> },
    /// Ended, and its restart policy says not to restart it.
    Exited { reason: String },
}

pub use super::policy::Health;

/// What follows once a stopping app is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Leave it stopped (by hand, or at shutdown).
    Stay,
    /// Start it again (its definition changed, it was unhealthy, its network owner
    /// restarted, or `berth restart`).
    Restart,
    /// Forget it (its manifest was removed).
    Remove,
}

/// What a deadline of an app is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Due {
    Backoff,
    StopDeadline,
    Probe,
    ProbeTimeout,
}

/// Something that happened to an app.
pub enum Event<R: Resources> {
    /// Bring it up if it is down: at load, when its backoff is over, when a dependency
    /// may now hold, after a stop with [`Then::Restart`]. The shell fills in what the
    /// table needs to know: whether a dependency still blocks it (and why), and whether
    /// its image is installed already.
    Start {
        blocked: Option<String>,
        installed: bool,
    },
    /// Answers [`Effect::Install`]: the job is running.
    InstallStarted(R::Job),
    /// The install job's process ended (it was reaped) with this wait status.
    InstallExited { status: i32 },
    /// The install is over (or could not be started): `Ok` once the image is in the
    /// store, else why not.
    InstallDone(Result<(), String>),
    /// Answers [`Effect::Launch`]: the process exists.
    Launched(R::Run),
    /// Answers [`Effect::Launch`]: nothing was started (image, cgroup, plan), why.
    LaunchFailed(String),
    /// The launch channel reports that the app's program was exec'd, as `pid`.
    Execd { pid: i32 },
    /// The launch channel reports that the child failed before exec.
    ExecFailed(String),
    /// Its process was reaped; `reason` in words (`exited with status 3`, `killed by the
    /// kernel: out of memory (limit 16M)`), `success` for exit status 0.
    Exited { reason: String, success: bool },
    /// Stop it, then do `then`. `why`: it is stopped for failing (the reason its end is
    /// reported with, counted as a failure). `receivable`: its process catches its stop
    /// signal (a pid-namespace init without a handler never gets it, and is killed at
    /// once instead of after the whole timeout).
    Stop {
        then: Then,
        why: Option<String>,
        receivable: bool,
    },
    /// Its stop deadline passed.
    StopTimeout,
    /// A health probe ended: `ok`, else why it failed.
    Probed { ok: bool, why: String },
}

/// What the shell must do for an app.
pub enum Effect<R: Resources> {
    /// Start the install job of the app's image; answer with
    /// [`Event::InstallStarted`] or [`Event::InstallDone`] (an error).
    Install,
    /// Prepare and launch the app; answer with [`Event::Launched`] or
    /// [`Event::LaunchFailed`].
    Launch,
    /// Kill an install job that is no longer wanted.
    CancelInstall(R::Job),
    /// The install job's process ended with this wait status: read its result, and
    /// answer with [`Event::InstallDone`].
    FinishInstall(R::Job, i32),
    /// Send this signal to the app's process.
    Signal(i32),
    /// SIGKILL everything in the app's cgroup.
    KillAll,
    /// The process is gone (or abandoned): remove its cgroup (killing what is left),
    /// stop its probe; its output pipes drain to their end.
    Release(R::Run),
    /// Call [`Event::Start`] again, with fresh facts.
    StartAgain,
    /// (Re)arm this deadline of the app.
    Arm(Due, u64),
    /// Cancel this deadline of the app.
    Disarm(Due),
    /// A line for berth's log: the level and the whole line.
    Log(log::Level, String),
    /// A line for the app's own log (its lifecycle events).
    Note(String),
    /// The app is running or healthy now: apps waiting for it may start.
    WakeDependants,
    /// The app's process is gone: apps in its network namespace (`container:` it) are
    /// restarted with it.
    NetworkGone,
    /// Forget the app: its manifest is gone and so is its process.
    Forget,
    /// Stop the app (answered with [`Event::Stop`], which says whether its process can
    /// receive its stop signal).
    Stop { then: Then, why: Option<String> },
}

/// One app as the table sees it. The manifest is the definition it runs with now.
pub struct Life<R: Resources> {
    pub manifest: Manifest,
    pub phase: Phase<R>,
    pub history: History,
    pub health: HealthTracker,
    /// When the current (or last) attempt to bring it up began: the time its uptime
    /// counts from, whether it got as far as a process or not.
    pub attempt_ms: u64,
    /// Why the last probe failed, for the unhealthy message.
    pub probe_error: String,
}

/// What the whole supervisor is doing, as far as one app's table needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Context {
    /// Every app is being stopped: nothing restarts or starts.
    pub shutting_down: bool,
}

impl<R: Resources> Life<R> {
    pub fn new(manifest: Manifest) -> Life<R> {
        Life {
            manifest,
            phase: Phase::Stopped,
            history: History::default(),
            health: HealthTracker::default(),
            attempt_ms: 0,
            probe_error: String::new(),
        }
    }

    pub fn name(&self) -> &str {
        self.manifest.name.as_str()
    }

    /// Whether it holds a process or a job (or is being brought up right now).
    pub fn is_up(&self) -> bool {
        matches!(
            self.phase,
            Phase::Preparing
                | Phase::Installing { .. }
                | Phase::Starting { .. }
                | Phase::Running { .. }
                | Phase::Stopping { .. }
        )
    }

    /// The process of this run, if there is one.
    pub fn run(&self) -> Option<&R::Run> {
        match &self.phase {
            Phase::Starting { run } | Phase::Running { run, .. } | Phase::Stopping { run, .. } => {
                Some(run)
            }
            _ => None,
        }
    }

    pub fn run_mut(&mut self) -> Option<&mut R::Run> {
        match &mut self.phase {
            Phase::Starting { run } | Phase::Running { run, .. } | Phase::Stopping { run, .. } => {
                Some(run)
            }
            _ => None,
        }
    }

    pub fn job(&self) -> Option<&R::Job> {
        match &self.phase {
            Phase::Installing { job } => Some(job),
            _ => None,
        }
    }

    pub fn job_mut(&mut self) -> Option<&mut R::Job> {
        match &mut self.phase {
            Phase::Installing { job } => Some(job),
            _ => None,
        }
    }
}

impl<R: Resources> Phase<R> {
    /// The phase's name for status output and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Stopped => "stopped",
            Phase::Waiting { .. } => "waiting",
            Phase::Preparing => "preparing",
            Phase::Installing { .. } => "installing",
            Phase::Starting { .. } => "starting",
            Phase::Running { .. } => "running",
            Phase::Stopping { .. } => "stopping",
            Phase::Backoff { .. } => "backoff",
            Phase::Failed { .. } => "failed",
            Phase::Exited { .. } => "exited",
        }
    }

    /// Its health, when it is running.
    pub fn health(&self) -> Option<Health> {
        match self {
            Phase::Running { health, .. } => Some(*health),
            _ => None,
        }
    }
}

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

#[cfg(test)]
mod tests;
