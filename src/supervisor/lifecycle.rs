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

use super::policy::{HealthTracker, History};
use crate::manifest::Manifest;

mod table;
pub use table::step;

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

#[cfg(test)]
mod tests;
