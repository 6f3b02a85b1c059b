//! The loop: every event (a signal, the timer, a readable or writable descriptor)
//! is dispatched here, and only here is app state changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::app::{App, ProbeRun};
use super::event::{self, Epoll, Timer};
use super::logs::Stream;
use super::policy::{self, AfterStop, Decision, ExitKind, State};
use crate::cgroup::{self, Manager};
use crate::config::Config;
use crate::image::store::Store;
use crate::launch::Launcher;
use crate::manifest::{self, Manifest};

/// What an epoll token stands for.
#[derive(Debug, Clone)]
pub(super) enum Source {
    Signals,
    Timer,
    Channel(String),
    Pipe(String, Stream),
    Oom(String),
    Probe(String),
}

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Due {
    Backoff,
    StopDeadline,
    Probe,
    ProbeTimeout,
}

pub struct Supervisor {
    pub(super) config: Config,
    pub(super) apps_dir: PathBuf,
    pub(super) epoll: Epoll,
    pub(super) signals: OwnedFd,
    pub(super) timer: Timer,
    pub(super) launcher: Launcher,
    pub(super) cgroups: Box<dyn Manager>,
    pub(super) store: Store,
    /// Boxed: a B-tree node reserves room for eleven values.
    pub(super) apps: BTreeMap<String, Box<App>>,
    pub(super) sources: HashMap<u64, Source>,
    pub(super) next_token: u64,
    pub(super) deadlines: BTreeSet<(u64, String, Due)>,
    pub(super) shutting_down: bool,
    /// PID 1: what to do once every app is down (set by the signal that asked).
    init: bool,
    action: Option<crate::pid1::Action>,
    /// App cgroups that could not be removed yet (processes still exiting).
    pub(super) to_remove: Vec<Box<dyn cgroup::Group>>,
    /// Keeps apps' signals from the loop ([`super::sender`]).
    pub(super) guard: super::sender::SignalGuard,
}

const SIGNALS_TOKEN: u64 = 0;
const TIMER_TOKEN: u64 = 1;

impl Supervisor {
    /// Sets up the loop: signals blocked and on a signalfd, the timer, cgroups (with
    /// leftovers of an earlier berth cleaned), the image store.
    pub fn new(config: Config, apps_dir: PathBuf) -> Result<Supervisor, String> {
        let epoll = Epoll::new().map_err(|e| e.to_string())?;
        let signals = event::signalfd().map_err(|e| e.to_string())?;
        let timer = Timer::new().map_err(|e| e.to_string())?;
        epoll
            .add(signals.as_raw_fd(), SIGNALS_TOKEN, false)
            .map_err(|e| e.to_string())?;
        epoll
            .add(timer.fd(), TIMER_TOKEN, false)
            .map_err(|e| e.to_string())?;
        if std::process::id() != 1 {
            event::become_subreaper().map_err(|e| e.to_string())?;
        }
        // Before cgroup::system, which may move berth into a cgroup below its own.
        let own = super::sender::read_own(Path::new("/proc")).map_err(|e| e.to_string())?;
        let cgroups =
            cgroup::system(config.cgroup_root.as_str()).map_err(|e| format!("cgroups: {e}"))?;
        let v2 = cgroups.version() == cgroup::Version::V2;
        let root = config.cgroup_root.as_str();
        let guard = super::sender::SignalGuard::new(Path::new("/proc"), &own, root, v2);
        for (name, group) in cgroups.existing().map_err(|e| e.to_string())? {
            log::warn!("removing the leftover cgroup of {name} (an earlier berth did not stop it)");
            if let Err(e) = cgroup::clean(&*group, 5000) {
                log::error!("{name}: {e}");
            }
        }
        super::appstate::prepare(&config)?;
        let store = Store::open(&config.state_dir).map_err(|e| e.to_string())?;
        let launcher = Launcher::new(&config.state_dir, &config.run_dir)
            .with_reserved(config.reserved(&apps_dir));
        let mut sources = HashMap::new();
        sources.insert(SIGNALS_TOKEN, Source::Signals);
        sources.insert(TIMER_TOKEN, Source::Timer);
        Ok(Supervisor {
            config,
            apps_dir,
            epoll,
            signals,
            timer,
            launcher,
            cgroups,
            store,
            apps: BTreeMap::new(),
            sources,
            next_token: 2,
            deadlines: BTreeSet::new(),
            shutting_down: false,
            init: crate::pid1::is_init(),
            action: None,
            to_remove: Vec::new(),
            guard,
        })
    }

    /// Loads the apps and runs until shut down; as PID 1, returns what the device
    /// should do next.
    pub fn run(mut self) -> Result<Option<crate::pid1::Action>, String> {
        log::info!(
            "berth {}: supervising {} (cgroup {:?}{})",
            env!("CARGO_PKG_VERSION"),
            self.apps_dir.display(),
            self.cgroups.version(),
            if self.init { ", as PID 1" } else { "" }
        );
        self.reload();
        let mut tokens = Vec::new();
        let mut signals = Vec::new();
        loop {
            if self.shutting_down {
                self.advance_shutdown();
                if self.apps.values().all(|a| !a.is_up()) {
                    log::info!("all apps stopped; exiting");
                    self.retry_removals();
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
                .map_err(|e| format!("epoll_wait: {e}"))?;
            for &token in &tokens {
                let Some(source) = self.sources.get(&token).cloned() else {
                    continue;
                };
                match source {
                    Source::Signals => {
                        event::read_signals(&self.signals, &mut signals);
                        for s in &signals {
                            if self.admits(s) {
                                self.on_signal(s.signal);
                            }
                        }
                    }
                    Source::Timer => {
                        self.timer.clear();
                        self.on_timer();
                    }
                    Source::Channel(app) => self.on_launched(&app),
                    Source::Pipe(app, stream) => self.on_output(&app, stream, token),
                    Source::Oom(app) => {
                        if let Some(a) = self.apps.get(&app) {
                            if let Some((watch, _)) = &a.oom {
                                watch.drain();
                            }
                        }
                    }
                    Source::Probe(app) => self.on_probe_io(&app, token),
                }
            }
        }
    }

    pub(super) fn token(&mut self, source: Source) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        self.sources.insert(t, source);
        t
    }

    fn arm_timer(&mut self) {
        let next = self.deadlines.first().map(|(ms, _, _)| *ms);
        if let Err(e) = self.timer.arm(next) {
            log::error!("{e}");
        }
    }

    pub(super) fn schedule(&mut self, app: &str, due: Due, at_ms: u64) {
        self.cancel(app, due);
        self.deadlines.insert((at_ms, app.to_owned(), due));
    }

    pub(super) fn cancel(&mut self, app: &str, due: Due) {
        self.deadlines.retain(|(_, a, d)| !(a == app && *d == due));
    }

    fn on_signal(&mut self, signal: i32) {
        match signal {
            libc::SIGCHLD => {
                while let Some((pid, status)) = event::reap() {
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
                if !self.shutting_down {
                    log::info!("{}: stopping every app", cgroup::signal_name(signal));
                    self.shutting_down = true;
                    self.deadlines.retain(|(_, _, d)| *d == Due::StopDeadline);
                }
            }
            libc::SIGHUP => {
                log::info!("SIGHUP: reloading {}", self.apps_dir.display());
                self.reload();
            }
            other => log::info!("ignoring {}", cgroup::signal_name(other)),
        }
    }

    fn on_timer(&mut self) {
        let now = event::now_ms();
        while let Some(first) = self.deadlines.first().cloned() {
            if first.0 > now {
                break;
            }
            self.deadlines.remove(&first);
            let (_, app, due) = first;
            match due {
                Due::Backoff => self.start(&app),
                Due::StopDeadline => self.kill_now(&app),
                Due::Probe => self.start_probe(&app),
                Due::ProbeTimeout => self.probe_done(&app, false, "timed out".into()),
            }
        }
    }

    /// Re-reads the apps directory: starts new apps, stops removed ones, restarts
    /// changed ones; a manifest that is now broken leaves its running app alone.
    fn reload(&mut self) {
        let reserved = self.config.reserved(&self.apps_dir);
        let loaded = manifest::load_with(std::slice::from_ref(&self.apps_dir), &reserved);
        for p in &loaded.problems {
            log::error!("{p}");
        }
        let broken: Vec<PathBuf> = loaded.problems.iter().map(|p| p.file.clone()).collect();
        let mut next: BTreeMap<String, Manifest> = loaded
            .apps
            .into_iter()
            .map(|m| (m.name.as_str().to_owned(), m))
            .collect();
        // Apps whose file is broken now keep their running definition.
        for (name, app) in &self.apps {
            if !next.contains_key(name) && broken.contains(&app.manifest.file) {
                log::warn!("{name}: its manifest is invalid now; the running version stays");
                next.insert(name.clone(), app.manifest.clone());
            }
        }
        let old: Vec<(String, u64)> = self
            .apps
            .iter()
            .map(|(n, a)| (n.clone(), a.fingerprint))
            .collect();
        let new: Vec<(String, u64)> = next
            .iter()
            .map(|(n, m)| (n.clone(), super::app::fingerprint(m)))
            .collect();
        let change = policy::diff(&old, &new);
        for name in &change.stop {
            self.stop(name, AfterStop::Remove, None);
        }
        for name in &change.restart {
            if let (Some(app), Some(m)) = (self.apps.get_mut(name), next.get(name)) {
                log::info!("{name}: its definition changed; restarting");
                super::sender::warn_if_sharing(m);
                app.fingerprint = super::app::fingerprint(m);
                app.manifest = m.clone();
            }
            self.stop(name, AfterStop::Restart, None);
        }
        for name in &change.start {
            if let Some(m) = next.remove(name) {
                super::sender::warn_if_sharing(&m);
                self.apps.insert(name.clone(), Box::new(App::new(m)));
            }
        }
        for name in &change.start {
            self.start(name);
        }
    }

    /// Starts `name` if its dependencies allow, else marks it waiting.
    fn start(&mut self, name: &str) {
        if self.shutting_down {
            return;
        }
        let blocked = {
            let Some(app) = self.apps.get(name) else {
                return;
            };
            if app.is_up() {
                return;
            }
            let apps = &self.apps;
            let lookup = |dep: &str| apps.get(dep).map(|a| &a.state);
            policy::blocked_by(&app.manifest.depends_on, &lookup)
        };
        if let Some(why) = blocked {
            self.set_state(name, State::Waiting { why });
            return;
        }
        self.set_state(name, State::Starting);
        if let Err(e) = self.launch(name) {
            log::error!("{e}");
            let now = event::now_ms();
            self.after_exit(name, ExitKind::Failure, &e, now);
        }
    }

    pub(super) fn set_state(&mut self, name: &str, state: State) {
        if let Some(app) = self.apps.get_mut(name) {
            if let Err(e) = policy::transition(&app.state, &state) {
                log::debug!("{name}: {e}");
            }
            app.state = state;
        }
    }

    /// A child was reaped: an app, a probe, or an orphan.
    fn on_reaped(&mut self, pid: i32, status: i32) {
        let app = self
            .apps
            .iter()
            .find(|(_, a)| a.pid == Some(pid))
            .map(|(n, _)| n.clone());
        if let Some(name) = app {
            self.on_app_exit(&name, status);
            return;
        }
        let probe = self
            .apps
            .iter()
            .find(|(_, a)| matches!(a.probe, Some(ProbeRun::Exec { pid: p }) if p == pid))
            .map(|(n, _)| n.clone());
        if let Some(name) = probe {
            // Reaped: it must not be signalled any more (its pid may be reused).
            if let Some(app) = self.apps.get_mut(&name) {
                app.probe = None;
            }
            let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
            let why = cgroup::exit_reason(status, false, None);
            self.probe_done(&name, ok, why);
            return;
        }
        log::debug!("reaped orphan {pid}");
    }

    fn on_app_exit(&mut self, name: &str, status: i32) {
        // An app that ended before its launch channel was read (at start, every launch
        // happens before the first wait): take the launch's outcome first, so its
        // output pipes are registered and nothing it wrote is lost.
        if self.apps.get(name).is_some_and(|a| a.launching.is_some()) {
            self.on_launched(name);
            if self.apps.get(name).is_none_or(|a| a.pid.is_none()) {
                return;
            }
        }
        let now = event::now_ms();
        let Some(app) = self.apps.get_mut(name) else {
            return;
        };
        app.pid = None;
        if let Some((launching, token)) = app.launching.take() {
            self.sources.remove(&token);
            self.epoll.remove(launching.channel().as_raw_fd());
        }
        let oom_now = app.group.as_ref().map_or(0, |g| g.usage().oom_kills);
        let oom_before = app.oom.as_ref().map_or(oom_now, |(_, b)| *b);
        let mut reason =
            cgroup::exit_reason(status, oom_now > oom_before, app.manifest.resources.memory);
        let asked = app.stop_reason.take();
        let for_health = asked.is_some();
        if let Some(why) = asked {
            reason = why;
        }
        let uptime = now.saturating_sub(app.started_ms);
        let kind = if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            ExitKind::Success
        } else {
            ExitKind::Failure
        };
        self.cancel(name, Due::Probe);
        self.cancel(name, Due::ProbeTimeout);
        self.cancel(name, Due::StopDeadline);
        self.end_probe(name);
        self.cleanup_group(name);
        let stopping = matches!(
            self.apps.get(name).map(|a| &a.state),
            Some(State::Stopping { .. })
        );
        if stopping {
            let after = self
                .apps
                .get(name)
                .map_or(AfterStop::Stay, |a| a.after_stop);
            log::info!(
                "{name}: stopped ({reason} after {})",
                policy::format_ms(uptime)
            );
            match after {
                AfterStop::Remove => self.forget(name),
                // Restarted for failing its health check: a failure like any
                // other, with backoff and the crash-loop limit.
                AfterStop::Restart if for_health => {
                    self.after_exit(name, ExitKind::Failure, &reason, now);
                }
                AfterStop::Restart => {
                    self.set_state(name, State::Stopped);
                    self.start(name);
                }
                AfterStop::Stay => self.set_state(name, State::Stopped),
            }
            return;
        }
        self.after_exit(name, kind, &reason, now);
    }

    /// The policy's answer to an exit (or a failed start).
    pub(super) fn after_exit(&mut self, name: &str, kind: ExitKind, reason: &str, now: u64) {
        let Some(app) = self.apps.get_mut(name) else {
            return;
        };
        if self.shutting_down {
            log::info!("{name}: {reason} while stopping every app");
            app.state = State::Stopped;
            return;
        }
        let uptime = now.saturating_sub(app.started_ms);
        let decision = policy::on_exit(
            &app.manifest.restart,
            &mut app.history,
            app.started_ms,
            now,
            kind,
            reason,
        );
        let message = policy::restart_message(name, reason, uptime, &decision);
        log::warn!("{message}");
        if let Some(log) = &mut app.log {
            let _ = log.event(&message, std::time::SystemTime::now());
        }
        match decision {
            Decision::Restart { delay_ms, attempt } => {
                self.set_state(
                    name,
                    State::Backoff {
                        until_ms: now + delay_ms,
                        attempt,
                    },
                );
                self.schedule(name, Due::Backoff, now + delay_ms);
            }
            Decision::Fail { reasons, .. } => self.set_state(name, State::Failed { reasons }),
            Decision::Stay { .. } => self.set_state(
                name,
                State::Exited {
                    reason: reason.to_owned(),
                },
            ),
        }
        self.start_waiting();
    }

    /// Kills what is left in the app's cgroup and removes it.
    pub(super) fn cleanup_group(&mut self, name: &str) {
        let Some(app) = self.apps.get_mut(name) else {
            return;
        };
        if let Some((watch, _)) = app.oom.take() {
            self.epoll.remove(watch.fd());
        }
        if let Some(group) = app.group.take() {
            if let Err(e) = group.kill_all() {
                log::warn!("{name}: {e}");
            }
            if group.remove().is_err() {
                self.to_remove.push(group);
            }
        }
    }

    fn retry_removals(&mut self) {
        self.to_remove.retain(|g| g.remove().is_err());
    }

    /// Starts the apps that were waiting for a dependency, where they may now.
    pub(super) fn start_waiting(&mut self) {
        let waiting: Vec<String> = self
            .apps
            .iter()
            .filter(|(_, a)| matches!(a.state, State::Waiting { .. }))
            .map(|(n, _)| n.clone())
            .collect();
        for name in waiting {
            self.start(&name);
        }
    }

    /// Asks an app to stop: its stop signal, SIGKILL to the whole cgroup after the
    /// timeout.
    pub fn stop(&mut self, name: &str, after: AfterStop, reason: Option<String>) {
        let now = event::now_ms();
        let Some(app) = self.apps.get_mut(name) else {
            return;
        };
        app.after_stop = after;
        app.stop_reason = reason;
        match app.pid {
            Some(pid) => {
                let deadline = now + app.manifest.stop.timeout.as_millis();
                event::signal(pid, app.manifest.stop.signal.number());
                self.set_state(
                    name,
                    State::Stopping {
                        deadline_ms: deadline,
                        then: after,
                    },
                );
                self.schedule(name, Due::StopDeadline, deadline);
            }
            None => {
                self.cancel(name, Due::Backoff);
                match after {
                    AfterStop::Remove => self.forget(name),
                    AfterStop::Restart => {
                        self.set_state(name, State::Stopped);
                        self.start(name);
                    }
                    AfterStop::Stay => self.set_state(name, State::Stopped),
                }
            }
        }
    }

    fn kill_now(&mut self, name: &str) {
        if let Some(app) = self.apps.get(name) {
            log::warn!(
                "{name}: did not stop within {}; killing it",
                policy::format_ms(app.manifest.stop.timeout.as_millis())
            );
            if let Some(g) = &app.group {
                if let Err(e) = g.kill_all() {
                    log::error!("{name}: {e}");
                }
            } else if let Some(pid) = app.pid {
                event::signal(pid, libc::SIGKILL);
            }
        }
    }

    /// Shutdown: stop every app whose dependants are all down.
    fn advance_shutdown(&mut self) {
        let graph: Vec<(String, Vec<String>)> = self
            .apps
            .iter()
            .map(|(n, a)| {
                (
                    n.clone(),
                    a.manifest
                        .depends_on
                        .iter()
                        .map(|d| d.app.as_str().to_owned())
                        .collect(),
                )
            })
            .collect();
        for name in policy::stop_order(&graph) {
            let Some(app) = self.apps.get(&name) else {
                continue;
            };
            if matches!(app.state, State::Stopping { .. }) || !app.is_up() {
                if !app.is_up() && !matches!(app.state, State::Stopped) {
                    self.cancel(&name, Due::Backoff);
                    self.set_state(&name, State::Stopped);
                }
                continue;
            }
            let dependants_up = graph.iter().any(|(other, deps)| {
                deps.contains(&name) && self.apps.get(other).is_some_and(|a| a.is_up())
            });
            if !dependants_up {
                self.stop(&name, AfterStop::Stay, None);
            }
        }
    }
}
