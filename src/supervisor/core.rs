//! The shell around the lifecycle table: one epoll loop turns what happens (a signal,
//! the timer, a readable descriptor) into [`Event`]s, feeds them to
//! [`lifecycle::step`], and carries out the [`Effect`]s it returns. Only here is app
//! state changed, and only through the table.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::app::{self, App, AppId, Source};
use super::error::{SupervisorError, sys_err};
use super::lifecycle::{self, Context, Due, Effect, Event, Phase, Then};
use super::policy::{self, Seen};
use crate::cgroup::{self, Manager};
use crate::config::Config;
use crate::image::ImageDefaults;
use crate::image::store::Store;
use crate::launch::Launcher;
use crate::manifest::types::{Digest, NetworkMode};
use crate::sys;
use crate::sys::epoll::Epoll;
use crate::sys::timer::{Timer, now_ms};

/// The loop's own tokens (an app's are 256 and up, see [`app::token`]).
const SIGNALS_TOKEN: u64 = 0;
const TIMER_TOKEN: u64 = 1;
/// The `metrics_listen` socket; its clients are `(serial << 8) | http::CLIENT`.
const METRICS_TOKEN: u64 = 3;
/// A pidfd of a process left in a leftover cgroup: `(serial << 8) | LEFTOVER`.
const LEFTOVER: u64 = 0xff;

/// Work for the dispatcher: an event for an app, or a start whose facts (dependencies,
/// image) are read when it is its turn, not when it was queued.
#[allow(
    clippy::large_enum_variant,
    reason = "a few at a time, short-lived: a box each would cost more"
)]
pub(super) enum Todo {
    Start(AppId),
    Event(AppId, Event<app::Real>),
}

pub struct Supervisor {
    pub(super) config: Config,
    pub(super) apps_dir: PathBuf,
    pub(super) epoll: Epoll,
    signals: OwnedFd,
    timer: Timer,
    pub(super) launcher: Launcher,
    pub(super) cgroups: Box<dyn Manager>,
    pub(super) store: Store,
    pub(super) apps: app::Apps,
    pub(super) next_id: u32,
    deadlines: app::Deadlines,
    pub(super) shutting_down: bool,
    /// PID 1: what to do once every app is down (set by the signal that asked).
    pub(super) init: bool,
    pub(super) action: Option<crate::pid1::Action>,
    /// App cgroups that could not be removed yet (their processes are still
    /// exiting), by app name: the app starts again only once it is gone, so that making
    /// its new cgroup never waits.
    pub(super) to_remove: Vec<(String, Box<dyn cgroup::Group>)>,
    /// pidfds of processes in leftover cgroups, by token: when one is readable its
    /// process is gone, and the removals are retried.
    leftovers: Vec<(u64, OwnedFd)>,
    /// Keeps apps' signals from the loop ([`super::sender`]).
    pub(super) guard: super::sender::SignalGuard,
    /// What the store recorded about each image used so far (read once).
    pub(super) images: Vec<(Digest, ImageDefaults)>,
    /// Pids of install jobs and launches given up on, reaped when they end.
    pub(super) abandoned: Vec<i32>,
    /// The host paths no bind source may reach, worked out at each (re)load.
    pub(super) reserved: crate::manifest::Reserved,
    /// The control socket and its clients (none if it could not be made).
    pub(super) control: Option<super::control::ControlPlane>,
    /// When the loop started (for berth's uptime).
    pub(super) started_ms: u64,
    /// The HTTP metrics endpoint (`metrics_listen`).
    pub(super) metrics: Option<crate::control::http::HttpServer>,
}

impl Supervisor {
    /// Sets up the loop: signals blocked and on a signalfd, the timer, cgroups (with
    /// leftovers of an earlier berth killed), the image store.
    pub fn new(config: Config, apps_dir: PathBuf) -> Result<Supervisor, SupervisorError> {
        let epoll = Epoll::new().map_err(sys_err("create the epoll set"))?;
        let signals = sys::signal::signalfd(&sys::signal::SigSet::of(&super::SIGNALS))
            .map_err(sys_err("create the signalfd"))?;
        let timer = Timer::new().map_err(sys_err("create the timerfd"))?;
        epoll
            .add(signals.as_fd(), SIGNALS_TOKEN, false)
            .map_err(sys_err("add the signalfd to epoll"))?;
        epoll
            .add(timer.as_fd(), TIMER_TOKEN, false)
            .map_err(sys_err("add the timerfd to epoll"))?;
        if std::process::id() != 1 {
            sys::caps::become_subreaper().map_err(sys_err("become a child subreaper"))?;
        }
        // Before cgroup::system, which may move berth into a cgroup below its own.
        let own =
            super::sender::read_own(Path::new("/proc")).map_err(SupervisorError::OwnCgroup)?;
        let cgroups = cgroup::system_with(config.cgroup_root.as_str(), config.cgroup)
            .map_err(SupervisorError::Cgroups)?;
        let v2 = cgroups.version() == cgroup::Version::V2;
        let root = config.cgroup_root.as_str();
        let guard = super::sender::SignalGuard::new(Path::new("/proc"), &own, root, v2);
        super::appstate::prepare(&config).map_err(SupervisorError::State)?;
        let store = Store::open(&config.state_dir).map_err(SupervisorError::Store)?;
        let reserved = config.reserved(&apps_dir);
        let launcher =
            Launcher::new(&config.state_dir, &config.run_dir).with_reserved(reserved.clone());
        let metrics = super::metrics::listen(&config, &epoll, METRICS_TOKEN);
        let mut s = Supervisor {
            config,
            apps_dir,
            epoll,
            signals,
            timer,
            launcher,
            cgroups,
            store,
            apps: app::Apps::default(),
            next_id: 1,
            deadlines: app::Deadlines::default(),
            shutting_down: false,
            init: crate::pid1::is_init(),
            action: None,
            to_remove: Vec::new(),
            leftovers: Vec::new(),
            guard,
            images: Vec::new(),
            abandoned: Vec::new(),
            reserved,
            control: None,
            started_ms: now_ms(),
            metrics,
        };
        s.kill_leftovers()?;
        s.open_control()?;
        Ok(s)
    }

    /// The control socket, `run_dir/berth.sock`. Another berth answering on it stops
    /// this one (two supervisors would fight over the same cgroups); any other failure
    /// leaves berth running without it, and says so.
    fn open_control(&mut self) -> Result<(), SupervisorError> {
        let path = crate::control::socket_path(&self.config.run_dir);
        match crate::control::server::Server::bind(&path, &self.epoll, super::control::LISTENER) {
            Ok(server) => {
                self.control = Some(super::control::ControlPlane::new(server));
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                Err(SupervisorError::State(format!("the control socket: {e}")))
            }
            Err(e) => {
                log::error!(
                    "the control socket: {e}; berth runs without it (no status, logs, exec)"
                );
                Ok(())
            }
        }
    }

    /// The cgroups an earlier berth left: everything in them is killed now, and each
    /// is removed once its processes are gone (their pidfds are in the loop; they are
    /// not berth's children, so no SIGCHLD tells).
    fn kill_leftovers(&mut self) -> Result<(), SupervisorError> {
        let existing = self.cgroups.existing().map_err(SupervisorError::Cgroups)?;
        for (name, group) in existing {
            log::warn!("removing the leftover cgroup of {name} (an earlier berth did not stop it)");
            if let Err(e) = group.kill_all() {
                log::error!("leftover cgroup of {name}: {e}");
            }
            for pid in group.procs().unwrap_or_default() {
                let Ok(fd) = crate::sys::process::pidfd_open(pid) else {
                    continue;
                };
                let token = ((self.leftovers.len() as u64 + 1) << 8) | LEFTOVER;
                if let Err(e) = self.epoll.add(fd.as_fd(), token, false) {
                    log::error!("leftover cgroup of {name}: epoll add pidfd of {pid}: {e}");
                    continue;
                }
                self.leftovers.push((token, fd));
            }
            if group.remove().is_err() {
                self.to_remove.push((name, group));
            }
        }
        Ok(())
    }

    /// Loads the apps and runs until shut down; as PID 1, returns what the device
    /// should do next.
    pub fn run(mut self) -> Result<Option<crate::pid1::Action>, SupervisorError> {
        log::info!(
            "berth {}: supervising {} (cgroup {:?}{})",
            env!("CARGO_PKG_VERSION"),
            self.apps_dir.display(),
            self.cgroups.version(),
            if self.init { ", as PID 1" } else { "" }
        );
        if self.config.bridge != crate::config::Bridge::default() {
            log::warn!(
                "bridge: is set in the settings, but no app network uses a bridge yet: it \
                 has no effect"
            );
        }
        drop(self.reload());
        let mut tokens = Vec::new();
        let mut signals = Vec::new();
        loop {
            if self.shutting_down {
                self.advance_shutdown();
                if self.apps.values().all(|a| !a.life.is_up()) {
                    log::info!("all apps stopped; exiting");
                    self.farewell();
                    self.to_remove.retain(|(_, g)| g.remove().is_err());
                    for root in self.cgroups.roots() {
                        if let Err(e) = std::fs::remove_dir(&root) {
                            log::debug!("remove {}: {e}", root.display());
                        }
                    }
                    return Ok(self.action);
                }
            }
            self.arm_timer();
            self.epoll
                .wait(&mut tokens)
                .map_err(sys_err("wait for events (epoll_wait)"))?;
            for &token in &tokens {
                match token {
                    SIGNALS_TOKEN => {
                        sys::signal::read_signals(self.signals.as_fd(), &mut signals);
                        for s in &signals {
                            if self.admits(s) {
                                self.on_signal(s.signal);
                            }
                        }
                    }
                    TIMER_TOKEN => {
                        self.timer.clear();
                        self.on_timer();
                    }
                    super::control::LISTENER => self.on_listener(),
                    t if t & 0xff == crate::control::server::CLIENT => self.on_client(t),
                    METRICS_TOKEN => self.metrics_accept(),
                    t if t & 0xff == crate::control::http::CLIENT => self.metrics_ready(t),
                    t if t & 0xff == LEFTOVER => {
                        if let Some(at) = self.leftovers.iter().position(|(k, _)| *k == t) {
                            let (_, fd) = self.leftovers.swap_remove(at);
                            unwatch(&self.epoll, &fd);
                        }
                        self.retry_removals();
                    }
                    t => {
                        if let Some((id, source)) = app::untoken(t) {
                            self.on_ready(id, source);
                        }
                    }
                }
            }
            self.settle_clients(now_ms());
        }
    }

    /// A descriptor of an app is ready.
    fn on_ready(&mut self, id: AppId, source: Source) {
        match source {
            Source::Channel => self.on_channel(id),
            Source::Output(stream) => self.on_output(id, stream),
            Source::Oom => {
                if let Some((watch, _)) = self
                    .apps
                    .get(&id)
                    .and_then(|a| a.life.run())
                    .and_then(|r| r.oom.as_ref())
                {
                    watch.drain();
                }
            }
            Source::Probe => self.on_probe_io(id),
            Source::Install => self.on_install_output(id),
        }
    }

    fn arm_timer(&mut self) {
        let apps = self.deadlines.first().map(|(ms, _, _)| *ms);
        let metrics = self.metrics.as_ref().and_then(|m| m.next_deadline());
        let next = apps
            .into_iter()
            .chain(self.control_deadline())
            .chain(metrics)
            .min();
        if let Err(e) = self.timer.arm(next) {
            log::error!("timerfd_settime: {e}");
        }
    }

    pub(super) fn schedule(&mut self, id: AppId, due: Due, at_ms: u64) {
        self.cancel(id, due);
        self.deadlines.insert((at_ms, id, due));
    }

    pub(super) fn cancel(&mut self, id: AppId, due: Due) {
        self.deadlines.retain(|(_, a, d)| !(*a == id && *d == due));
    }

    fn on_signal(&mut self, signal: i32) {
        match signal {
            libc::SIGCHLD => {
                while let Some((pid, status)) = sys::process::reap_any() {
                    self.on_reaped(pid, status);
                }
                self.retry_removals();
            }
            libc::SIGTERM | libc::SIGINT | libc::SIGUSR1 | libc::SIGUSR2
                if self.init || matches!(signal, libc::SIGTERM | libc::SIGINT) =>
            {
                if self.init && self.action.is_none() {
                    self.action = crate::pid1::Action::for_signal(signal);
                }
                self.begin_shutdown(&cgroup::signal_name(signal));
            }
            libc::SIGHUP => {
                log::info!("SIGHUP: reloading {}", self.apps_dir.display());
                drop(self.reload());
            }
            other => log::info!("ignoring {}", cgroup::signal_name(other)),
        }
    }

    /// Stops every app (once): `why` says who asked.
    pub(super) fn begin_shutdown(&mut self, why: &str) {
        if !self.shutting_down {
            log::info!("{why}: stopping every app");
            self.shutting_down = true;
            self.deadlines
                .retain(|(_, _, d)| matches!(d, Due::StopDeadline));
        }
    }

    fn on_timer(&mut self) {
        let now = now_ms();
        self.expire_clients(now);
        if let Some(http) = &mut self.metrics {
            http.expire(&self.epoll, now);
        }
        while let Some(&first) = self.deadlines.first() {
            if first.0 > now {
                break;
            }
            self.deadlines.remove(&first);
            let (_, id, due) = first;
            match due {
                Due::Backoff => self.dispatch(Todo::Start(id)),
                Due::StopDeadline => self.dispatch(Todo::Event(id, Event::StopTimeout)),
                Due::Probe => self.start_probe(id),
                Due::ProbeTimeout => self.probe_done(id, false, "timed out".into()),
            }
        }
    }

    /// Forgets `pid` as given up on: whether it was.
    fn take_abandoned(&mut self, pid: i32) -> bool {
        match self.abandoned.iter().position(|&p| p == pid) {
            Some(at) => {
                self.abandoned.swap_remove(at);
                true
            }
            None => false,
        }
    }

    /// A child was reaped: an app's process, a probe, an install job, or an orphan.
    fn on_reaped(&mut self, pid: i32, status: i32) {
        if self.take_abandoned(pid) || self.exec_ended(pid, status) {
            return;
        }
        let owner = self.apps.values().find_map(|a| {
            if a.pid() == Some(pid) {
                Some((a.id, 0))
            } else if a.life.run().is_some_and(
                |r| matches!(r.probe, Some(app::ProbeRun::Exec { pid: p }) if p == pid),
            ) {
                Some((a.id, 1))
            } else if a.life.job().is_some_and(|j| j.pid() == pid) {
                Some((a.id, 2))
            } else {
                None
            }
        });
        match owner {
            Some((id, 0)) => self.on_app_exit(id, pid, status),
            Some((id, 1)) => {
                // Reaped: it must not be signalled any more (its pid may be reused).
                if let Some(run) = self.apps.get_mut(&id).and_then(|a| a.life.run_mut()) {
                    run.probe = None;
                }
                let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
                let why = cgroup::exit_reason(status, false, None);
                self.probe_done(id, ok, why);
            }
            Some((id, _)) => self.on_install_exit(id, status),
            None => log::debug!("reaped orphan {pid}"),
        }
    }

    fn on_app_exit(&mut self, id: AppId, pid: i32, status: i32) {
        // An app that ended before its launch channel was read: its outcome first, so
        // its output pipes are registered and nothing it wrote is lost.
        if self
            .apps
            .get(&id)
            .and_then(|a| a.life.run())
            .is_some_and(|r| r.launching.is_some())
        {
            self.on_channel(id);
            // Reaped already: a failed launch must not wait for it.
            self.take_abandoned(pid);
        }
        let Some(app) = self.apps.get(&id) else {
            return;
        };
        let Some(run) = app.life.run() else {
            return;
        };
        let oom_now = run.group.oom_kills();
        let oom_before = run.oom.as_ref().map_or(oom_now, |(_, b)| *b);
        let oom = oom_now > oom_before;
        let reason = cgroup::exit_reason(status, oom, app.manifest().resources.memory);
        let success = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        if let Some(app) = self.apps.get_mut(&id) {
            app.stats.exited(&reason, oom);
        }
        self.emit(super::control::Change {
            app: &self
                .apps
                .get(&id)
                .map_or(String::new(), |a| a.name().to_owned()),
            event: if oom { "oom" } else { "exited" },
            pid: Some(pid),
            detail: Some(reason.clone()),
        });
        self.dispatch(Todo::Event(id, Event::Exited { reason, success }));
    }

    /// Runs `event` for app `id`, and everything it leads to, through the table.
    pub(super) fn dispatch_event(&mut self, id: AppId, event: Event<app::Real>) {
        self.dispatch(Todo::Event(id, event));
    }

    /// Runs `first` and everything it leads to through the table, in order.
    pub(super) fn dispatch(&mut self, first: Todo) {
        let mut queue = VecDeque::from([first]);
        while let Some(todo) = queue.pop_front() {
            let (id, event) = match todo {
                Todo::Start(id) => match self.start_facts(id) {
                    Some(event) => (id, event),
                    None => continue,
                },
                Todo::Event(id, event) => (id, event),
            };
            let ctx = Context {
                shutting_down: self.shutting_down,
            };
            let now = now_ms();
            let Some(app) = self.apps.get_mut(&id) else {
                continue;
            };
            let before = (app.life.phase.name(), app.life.phase.health());
            let effects = lifecycle::step(&mut app.life, event, now, ctx);
            self.observe(id, before);
            for effect in effects {
                self.apply(id, effect, &mut queue);
            }
        }
    }

    /// The facts a start needs: what blocks it, and whether its image is installed.
    fn start_facts(&self, id: AppId) -> Option<Event<app::Real>> {
        let app = self.apps.get(&id)?;
        let m = app.manifest();
        let lookup = |name: &str| -> Option<Seen> {
            let other = self.by_name(name)?;
            Some(match other.life.phase.health() {
                Some(health) => Seen::Running(health),
                None => Seen::Down(other.life.phase.name()),
            })
        };
        let deps = super::load::dependencies(m);
        let blocked = if self.to_remove.iter().any(|(n, _)| n == app.name()) {
            Some("waiting for the processes left in its cgroup to end".to_owned())
        } else {
            policy::blocked_by(&deps, &lookup)
        };
        let installed = self.store.is_installed(&m.image.sha256);
        Some(Event::Start { blocked, installed })
    }

    pub(super) fn by_name(&self, name: &str) -> Option<&App> {
        self.apps.values().find(|a| a.name() == name)
    }

    pub(super) fn by_name_mut(&mut self, name: &str) -> Option<&mut App> {
        self.apps.values_mut().find(|a| a.name() == name)
    }

    /// After a step of app `id` from `before` (its phase and health): counts a
    /// launch, and tells `events` followers of a new phase or health.
    fn observe(&mut self, id: AppId, before: (&'static str, Option<lifecycle::Health>)) {
        let Some(app) = self.apps.get_mut(&id) else {
            return;
        };
        let phase = app.life.phase.name();
        let health = app.life.phase.health();
        if phase == "starting" && before.0 != "starting" {
            app.stats.starts += 1;
        }
        let (event, detail) = if phase != before.0 {
            let detail = match &app.life.phase {
                Phase::Waiting { on } => Some(on.clone()),
                Phase::Failed { reasons } => reasons.last().cloned(),
                Phase::Backoff { until, .. } => Some(format!(
                    "in {}",
                    policy::format_ms(until.saturating_sub(now_ms()))
                )),
                _ => None,
            };
            (super::control::event_of(phase), detail)
        } else if health != before.1 {
            match health {
                Some(lifecycle::Health::Healthy) => (Some("healthy"), None),
                Some(lifecycle::Health::Unhealthy) => {
                    (Some("unhealthy"), Some(app.life.probe_error.clone()))
                }
                _ => (None, None),
            }
        } else {
            (None, None)
        };
        let Some(event) = event else {
            return;
        };
        let name = app.name().to_owned();
        let pid = app.pid();
        self.emit(super::control::Change {
            app: &name,
            event,
            pid,
            detail,
        });
    }

    /// Carries out one effect of the table for app `id`; effects that answer with an
    /// event queue it.
    fn apply(&mut self, id: AppId, effect: Effect<app::Real>, queue: &mut VecDeque<Todo>) {
        match effect {
            Effect::Install => {
                let event = self.install(id);
                queue.push_front(Todo::Event(id, event));
            }
            Effect::Launch => {
                let event = match self.launch(id) {
                    Ok(run) => Event::Launched(run),
                    Err(e) => {
                        let name = self.apps.get(&id).map_or("", |a| a.name());
                        Event::LaunchFailed(super::run::strip_name(name, &e.to_string()))
                    }
                };
                queue.push_front(Todo::Event(id, event));
            }
            Effect::CancelInstall(job) => self.cancel_install(job),
            Effect::FinishInstall(job, status) => {
                let event = self.finish_install(id, job, status);
                queue.push_front(Todo::Event(id, event));
            }
            Effect::Signal(signal) => {
                if let Some(pid) = self.apps.get(&id).and_then(App::pid) {
                    if let Err(e) = sys::process::kill(pid, signal) {
                        log::debug!("signal {signal} to {pid}: {e}");
                    }
                }
            }
            Effect::KillAll => self.kill_all(id),
            Effect::Release(run) => self.release(id, run),
            Effect::StartAgain => queue.push_back(Todo::Start(id)),
            Effect::Arm(due, at) => self.schedule(id, due, at),
            Effect::Disarm(due) => self.cancel(id, due),
            Effect::Log(level, line) => log::log!(level, "{line}"),
            Effect::Note(line) => {
                if let Some(log) = self.apps.get_mut(&id).and_then(|a| a.log.as_mut()) {
                    let _ = log.event(&line, std::time::SystemTime::now());
                }
            }
            Effect::WakeDependants => {
                for other in self.apps.values() {
                    if matches!(other.life.phase, Phase::Waiting { .. }) {
                        queue.push_back(Todo::Start(other.id));
                    }
                }
            }
            Effect::NetworkGone => self.restart_network_guests(id, queue),
            Effect::Forget => self.forget(id),
            Effect::Stop { then, why } => {
                let receivable = self.receivable(id);
                queue.push_front(Todo::Event(
                    id,
                    Event::Stop {
                        then,
                        why,
                        receivable,
                    },
                ));
            }
        }
    }

    /// Apps in the network namespace of `id` (`container:` it) that are up lose it with
    /// its process: they are restarted, and start again once it runs.
    fn restart_network_guests(&mut self, id: AppId, queue: &mut VecDeque<Todo>) {
        if self.shutting_down {
            return;
        }
        let Some(owner) = self.apps.get(&id).map(|a| a.name().to_owned()) else {
            return;
        };
        for guest in self.apps.values() {
            let NetworkMode::Container(of) = &guest.manifest().network.mode else {
                continue;
            };
            if of.as_str() != owner || guest.life.run().is_none() {
                continue;
            }
            if matches!(guest.life.phase, Phase::Stopping { .. }) {
                continue;
            }
            log::info!(
                "{}: restarting with {owner}, whose network namespace it shares",
                guest.name()
            );
            queue.push_back(Todo::Event(
                guest.id,
                Event::Stop {
                    then: Then::Restart,
                    why: None,
                    receivable: true,
                },
            ));
        }
    }

    /// Whether the app's process gets its stop signal: a process that is not a pid
    /// namespace's init always does (the default action applies), an init only when it
    /// catches it; SIGKILL from outside its namespace always reaches it.
    pub(super) fn receivable(&self, id: AppId) -> bool {
        let Some(app) = self.apps.get(&id) else {
            return true;
        };
        let Some(pid) = app.pid() else {
            return true;
        };
        let m = app.manifest();
        let signal = m.stop.signal.number();
        let own_pid_ns = m
            .namespaces
            .contains(&crate::manifest::model::Namespace::Pid);
        if !own_pid_ns || signal == libc::SIGKILL {
            return true;
        }
        match crate::procfs::init_receives(Path::new(crate::procfs::PROC), pid, signal) {
            Ok(receives) => receives,
            Err(e) => {
                log::debug!("{}: {e}", app.name());
                true
            }
        }
    }

    fn kill_all(&mut self, id: AppId) {
        let Some(app) = self.apps.get(&id) else {
            return;
        };
        if let Some(run) = app.life.run() {
            if let Err(e) = run.group.kill_all() {
                log::error!("{}: {e}", app.name());
            }
        }
    }

    /// Forgets an app whose manifest is gone (its process is gone too).
    fn forget(&mut self, id: AppId) {
        self.deadlines.retain(|(_, a, _)| *a != id);
        if let Some(mut app) = self.apps.remove(&id) {
            for pipe in app.pipes.drain(..) {
                unwatch(&self.epoll, &pipe.fd);
            }
            if let Some(log) = &mut app.log {
                let _ = log.flush_partial(std::time::SystemTime::now());
            }
            self.forget_state(app.name(), &app.manifest().file);
        }
    }

    /// Retries removing the cgroups whose processes were still exiting; an app that
    /// waited for its old cgroup to go may start now.
    fn retry_removals(&mut self) {
        let before = self.to_remove.len();
        self.to_remove.retain(|(_, g)| g.remove().is_err());
        if self.to_remove.len() < before {
            let waiting: Vec<AppId> = self
                .apps
                .values()
                .filter(|a| matches!(a.life.phase, Phase::Waiting { .. }))
                .map(|a| a.id)
                .collect();
            for id in waiting {
                self.dispatch(Todo::Start(id));
            }
        }
    }
}

/// Adds `fd` to the loop's epoll set with its token.
pub(super) fn watch(epoll: &Epoll, fd: impl AsFd, token: u64, write: bool) -> sys::Result<()> {
    epoll.add(fd.as_fd(), token, write)
}

/// Takes `fd` out of the loop's epoll set (before it is closed, so that no event of it
/// is already queued for a descriptor number used again). One never added is fine.
pub(super) fn unwatch(epoll: &Epoll, fd: impl AsFd) {
    if let Err(e) = epoll.remove(fd.as_fd()) {
        if e.errno != libc::ENOENT {
            log::debug!("epoll remove: {e}");
        }
    }
}
