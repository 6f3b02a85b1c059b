//! The loop: every event (a signal, the timer, a readable or writable descriptor)
//! is dispatched here, and only here is app state changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use super::app::{App, ProbeRun};
use super::event::{self, Epoll, Timer};
use super::logs::{AppLog, Stream};
use super::policy::{self, AfterStop, Decision, ExitKind, Health, HealthChange, State};
use super::probe;
use crate::cgroup::{self, Manager};
use crate::config::Config;
use crate::image::Limits;
use crate::image::layout::Platform;
use crate::image::store::Store;
use crate::launch::{App as LaunchApp, Launcher};
use crate::manifest::model::Probe;
use crate::manifest::types::NetworkMode;
use crate::manifest::{self, Manifest};

/// What an epoll token stands for.
#[derive(Debug, Clone)]
enum Source {
    Signals,
    Timer,
    Channel(String),
    Pipe(String, Stream),
    Oom(String),
    Probe(String),
}

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Backoff,
    StopDeadline,
    Probe,
    ProbeTimeout,
}

pub struct Supervisor {
    config: Config,
    apps_dir: PathBuf,
    epoll: Epoll,
    signals: OwnedFd,
    timer: Timer,
    launcher: Launcher,
    cgroups: Box<dyn Manager>,
    store: Store,
    apps: BTreeMap<String, App>,
    sources: HashMap<u64, Source>,
    next_token: u64,
    deadlines: BTreeSet<(u64, String, Due)>,
    shutting_down: bool,
    /// App cgroups that could not be removed yet (processes still exiting).
    to_remove: Vec<Box<dyn cgroup::Group>>,
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
        let cgroups =
            cgroup::system(config.cgroup_root.as_str()).map_err(|e| format!("cgroups: {e}"))?;
        for (name, group) in cgroups.existing().map_err(|e| e.to_string())? {
            log::warn!("removing the leftover cgroup of {name} (an earlier berth did not stop it)");
            if let Err(e) = cgroup::clean(&*group, 5000) {
                log::error!("{name}: {e}");
            }
        }
        let store = Store::open(&config.state_dir).map_err(|e| e.to_string())?;
        let launcher = Launcher::new(&config.state_dir, &config.run_dir);
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
            to_remove: Vec::new(),
        })
    }

    /// Loads the apps and runs until shut down.
    pub fn run(mut self) -> Result<(), String> {
        self.reload();
        let mut tokens = Vec::new();
        let mut signals = Vec::new();
        loop {
            if self.shutting_down {
                self.advance_shutdown();
                if self.apps.values().all(|a| !a.is_up()) {
                    log::info!("all apps stopped; exiting");
                    return Ok(());
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
                        for &s in &signals {
                            self.on_signal(s);
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

    fn token(&mut self, source: Source) -> u64 {
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

    fn schedule(&mut self, app: &str, due: Due, at_ms: u64) {
        self.cancel(app, due);
        self.deadlines.insert((at_ms, app.to_owned(), due));
    }

    fn cancel(&mut self, app: &str, due: Due) {
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
            libc::SIGTERM | libc::SIGINT => {
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
        let loaded = manifest::load(std::slice::from_ref(&self.apps_dir));
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
                app.fingerprint = super::app::fingerprint(m);
                app.manifest = m.clone();
            }
            self.stop(name, AfterStop::Restart, None);
        }
        for name in &change.start {
            if let Some(m) = next.remove(name) {
                self.apps.insert(name.clone(), App::new(m));
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

    fn set_state(&mut self, name: &str, state: State) {
        if let Some(app) = self.apps.get_mut(name) {
            if let Err(e) = policy::transition(&app.state, &state) {
                log::debug!("{name}: {e}");
            }
            app.state = state;
        }
    }

    /// Image, cgroup, launch; the outcome arrives on the launch channel.
    fn launch(&mut self, name: &str) -> Result<(), String> {
        let join_net = self.network_of(name)?;
        let Some(app) = self.apps.get_mut(name) else {
            return Ok(());
        };
        let m = &app.manifest;
        let installed = self
            .store
            .install(
                &m.image.resolved,
                &m.image.sha256,
                &Limits::default(),
                &Platform::current(),
            )
            .map_err(|e| format!("{name}: image {}: {e}", m.image.resolved.display()))?;
        app.image_root = installed.rootfs().to_path_buf();
        app.defaults = self
            .store
            .info(&m.image.sha256)
            .map_err(|e| format!("{name}: {e}"))?
            .defaults;
        if app.log.is_none() {
            app.log = Some(
                AppLog::open(
                    &self.config.log_dir,
                    name,
                    m.logs.max_size.bytes(),
                    m.logs.max_files.get(),
                )
                .map_err(|e| format!("{name}: log in {}: {e}", self.config.log_dir.display()))?,
            );
        }
        let mut group = cgroup::create(&*self.cgroups, name, &m.resources)
            .map_err(|e| format!("{name}: {e}"))?;
        let oom = match group.oom_watch() {
            Ok(w) => Some(w),
            Err(e) => {
                log::debug!("{name}: no OOM watch: {e}");
                None
            }
        };
        let netns = join_net.as_ref().map(AsFd::as_fd);
        let launching = self
            .launcher
            .spawn(
                &LaunchApp {
                    manifest: &app.manifest,
                    image_root: &app.image_root,
                    defaults: &app.defaults,
                    join_net: netns,
                    hosts: &[],
                },
                &mut *group,
            )
            .map_err(|e| {
                let _ = group.remove();
                e.to_string()
            })?;
        let before = group.usage().oom_kills;
        let channel = launching.channel().as_raw_fd();
        app.group = Some(group);
        app.started_ms = event::now_ms();
        let pid = launching.pid;
        let token = self.token(Source::Channel(name.to_owned()));
        if let Some(app) = self.apps.get_mut(name) {
            app.launching = Some((launching, token));
            app.pid = Some(pid);
            if let Some(w) = oom {
                let fd = w.fd();
                app.oom = Some((w, before));
                let t = self.next_token;
                self.next_token += 1;
                self.sources.insert(t, Source::Oom(name.to_owned()));
                let _ = self.epoll.add(fd, t, false);
            }
        }
        self.epoll
            .add(channel, token, false)
            .map_err(|e| format!("{name}: {e}"))?;
        Ok(())
    }

    /// `container:<app>`: that app's network namespace, if it is running.
    fn network_of(&self, name: &str) -> Result<Option<OwnedFd>, String> {
        let Some(app) = self.apps.get(name) else {
            return Ok(None);
        };
        let NetworkMode::Container(other) = &app.manifest.network.mode else {
            return Ok(None);
        };
        let pid = self
            .apps
            .get(other.as_str())
            .and_then(|o| o.pid)
            .ok_or_else(|| {
                format!("{name}: {other} is not running, and {name} uses its network")
            })?;
        let path = format!("/proc/{pid}/ns/net");
        fs::File::open(&path)
            .map(|f| Some(f.into()))
            .map_err(|e| format!("{name}: open {path}: {e}"))
    }

    /// The launch channel is readable: exec'd, or failed.
    fn on_launched(&mut self, name: &str) {
        let Some((launching, token)) = self.apps.get_mut(name).and_then(|a| a.launching.take())
        else {
            return;
        };
        self.sources.remove(&token);
        self.epoll.remove(launching.channel().as_raw_fd());
        match launching.finish() {
            Ok(running) => {
                let now = event::now_ms();
                let mut pipes = Vec::new();
                for (fd, stream) in [
                    (running.stdout, Stream::Stdout),
                    (running.stderr, Stream::Stderr),
                ] {
                    let _ = event::nonblocking(fd.as_raw_fd());
                    let t = self.token(Source::Pipe(name.to_owned(), stream));
                    if let Err(e) = self.epoll.add(fd.as_raw_fd(), t, false) {
                        log::error!("{name}: {e}");
                    }
                    pipes.push((fd, t, stream));
                }
                let health = match self
                    .apps
                    .get(name)
                    .map(|a| a.manifest.healthcheck.is_some())
                {
                    Some(true) => Health::Starting,
                    _ => Health::None,
                };
                let probe_at = self.apps.get_mut(name).and_then(|app| {
                    app.pipes = pipes;
                    app.health = policy::HealthTracker::default();
                    app.manifest
                        .healthcheck
                        .as_ref()
                        .map(|hc| now + hc.interval.as_millis())
                });
                log::info!("{name}: running (pid {})", running.pid);
                if let Some(app) = self.apps.get_mut(name) {
                    if let Some(log) = &mut app.log {
                        let _ = log.event(
                            &format!("started, pid {}", running.pid),
                            std::time::SystemTime::now(),
                        );
                    }
                }
                self.set_state(
                    name,
                    State::Running {
                        since_ms: now,
                        health,
                    },
                );
                if let Some(at) = probe_at {
                    self.schedule(name, Due::Probe, at);
                }
                self.start_waiting();
            }
            Err(e) => {
                log::error!("{e}");
                let status = e.status().unwrap_or(125);
                if let Some(app) = self.apps.get_mut(name) {
                    app.pid = None;
                }
                self.cleanup_group(name);
                let now = event::now_ms();
                let _ = status;
                self.after_exit(name, ExitKind::Failure, &e.to_string(), now);
            }
        }
    }

    /// Output of an app: into its log.
    fn on_output(&mut self, name: &str, stream: Stream, token: u64) {
        let Some(app) = self.apps.get_mut(name) else {
            return;
        };
        let Some(at) = app.pipes.iter().position(|(_, t, _)| *t == token) else {
            return;
        };
        let mut buf = [0u8; 16384];
        let mut closed = false;
        if let Some((fd, _, _)) = app.pipes.get(at) {
            let mut file = fs::File::from(match fd.try_clone() {
                Ok(f) => f,
                Err(_) => return,
            });
            // Up to 16 reads per wake-up, so a fast writer cannot starve the loop.
            for _ in 0..16 {
                match file.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => {
                        if let (Some(log), Some(bytes)) = (&mut app.log, buf.get(..n)) {
                            if let Err(e) = log.feed(stream, bytes, std::time::SystemTime::now()) {
                                log::error!("{name}: log: {e}");
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        if closed {
            let (fd, t, _) = app.pipes.remove(at);
            self.epoll.remove(fd.as_raw_fd());
            self.sources.remove(&t);
            if app.pipes.is_empty() {
                if let Some(log) = &mut app.log {
                    let _ = log.flush_partial(std::time::SystemTime::now());
                }
            }
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
            let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
            let why = cgroup::exit_reason(status, false, None);
            self.probe_done(&name, ok, why);
            return;
        }
        log::debug!("reaped orphan {pid}");
    }

    fn on_app_exit(&mut self, name: &str, status: i32) {
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
                AfterStop::Remove => {
                    self.apps.remove(name);
                }
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
    fn after_exit(&mut self, name: &str, kind: ExitKind, reason: &str, now: u64) {
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
    fn cleanup_group(&mut self, name: &str) {
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
    fn start_waiting(&mut self) {
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
                    AfterStop::Remove => {
                        self.apps.remove(name);
                    }
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
                deps.contains(&name) && self.apps.get(other).is_some_and(App::is_up)
            });
            if !dependants_up {
                self.stop(&name, AfterStop::Stay, None);
            }
        }
    }

    // ----- health -----

    fn start_probe(&mut self, name: &str) {
        let now = event::now_ms();
        let Some(app) = self.apps.get(name) else {
            return;
        };
        let (Some(hc), Some(pid)) = (app.manifest.healthcheck.clone(), app.pid) else {
            return;
        };
        if app.probe.is_some() {
            return;
        }
        let started = match &hc.probe {
            Probe::Exec(args) => {
                let argv: Vec<String> = args
                    .as_slice()
                    .iter()
                    .map(|a| a.as_str().to_owned())
                    .collect();
                let procs: Vec<PathBuf> = app
                    .group
                    .as_ref()
                    .map(|g| {
                        g.dirs()
                            .into_iter()
                            .map(|d| d.join("cgroup.procs"))
                            .collect()
                    })
                    .unwrap_or_default();
                let env =
                    crate::image::process::resolve(&app.manifest, &app.defaults, &app.image_root)
                        .map(|p| p.env)
                        .unwrap_or_default();
                probe::spawn_exec(pid, &argv, &env, &procs).map(|p| ProbeRun::Exec { pid: p })
            }
            Probe::Tcp(port) => self.probe_socket(pid, port.0, name, None),
            Probe::Http(url) => self.probe_socket(pid, url.port, name, Some(())),
        };
        match started {
            Ok(run) => {
                if let Some(app) = self.apps.get_mut(name) {
                    app.probe = Some(run);
                }
                self.schedule(name, Due::ProbeTimeout, now + hc.timeout.as_millis());
            }
            Err(e) => self.probe_done(name, false, format!("could not start: {e}")),
        }
        self.schedule(name, Due::Probe, now + hc.interval.as_millis());
    }

    fn probe_socket(
        &mut self,
        pid: i32,
        port: u16,
        name: &str,
        http: Option<()>,
    ) -> io::Result<ProbeRun> {
        let ns = fs::File::open(format!("/proc/{pid}/ns/net"))?;
        let fd = probe::tcp_connect_in(Some(ns.as_fd()), port)?;
        let token = self.token(Source::Probe(name.to_owned()));
        self.epoll.add(fd.as_raw_fd(), token, true)?;
        Ok(match http {
            None => ProbeRun::Tcp { fd, token },
            Some(()) => ProbeRun::Http {
                fd,
                token,
                sent: false,
                response: probe::HttpResponse::new(),
            },
        })
    }

    /// A probe socket is ready.
    fn on_probe_io(&mut self, name: &str, token: u64) {
        let Some(app) = self.apps.get_mut(name) else {
            return;
        };
        let url = match &app.manifest.healthcheck {
            Some(hc) => match &hc.probe {
                Probe::Http(url) => Some(url.clone()),
                _ => None,
            },
            None => None,
        };
        let verdict: Option<(bool, String)> = match &mut app.probe {
            Some(ProbeRun::Tcp { fd, token: t }) if *t == token => {
                Some(match probe::tcp_result(fd.as_fd()) {
                    Ok(()) => (true, String::new()),
                    Err(e) => (false, format!("failed: {e}")),
                })
            }
            Some(ProbeRun::Http {
                fd,
                token: t,
                sent,
                response,
            }) if *t == token => {
                if !*sent {
                    match probe::tcp_result(fd.as_fd()) {
                        Err(e) => Some((false, format!("failed: {e}"))),
                        Ok(()) => {
                            let req = url
                                .as_ref()
                                .map(|u| probe::http_request(&u.host.to_string(), &u.path))
                                .unwrap_or_default();
                            // SAFETY: `req` is readable for its length for the call.
                            let n = unsafe {
                                libc::write(fd.as_raw_fd(), req.as_ptr().cast(), req.len())
                            };
                            if usize::try_from(n).ok() != Some(req.len()) {
                                Some((false, "could not send the request".to_owned()))
                            } else {
                                *sent = true;
                                self.epoll.remove(fd.as_raw_fd());
                                let _ = self.epoll.add(fd.as_raw_fd(), token, false);
                                None
                            }
                        }
                    }
                } else {
                    let mut buf = [0u8; 1024];
                    // SAFETY: `buf` is writable for its length for the call.
                    let n =
                        unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                    match usize::try_from(n) {
                        Ok(0) => Some((false, "closed without a status line".into())),
                        Ok(n) => match response.feed(buf.get(..n).unwrap_or_default()) {
                            Ok(Some(code)) => {
                                Some((probe::verdict(code), format!("returned {code}")))
                            }
                            Ok(None) => None,
                            Err(e) => Some((false, format!("failed: {e}"))),
                        },
                        Err(_) => None,
                    }
                }
            }
            _ => None,
        };
        if let Some((ok, why)) = verdict {
            self.probe_done(name, ok, why);
        }
    }

    fn end_probe(&mut self, name: &str) {
        let Some(app) = self.apps.get_mut(name) else {
            return;
        };
        match app.probe.take() {
            Some(ProbeRun::Tcp { fd, token } | ProbeRun::Http { fd, token, .. }) => {
                self.epoll.remove(fd.as_raw_fd());
                self.sources.remove(&token);
            }
            Some(ProbeRun::Exec { pid }) => {
                if let Err(e) = probe::kill_probe(pid) {
                    log::debug!("{name}: kill probe {pid}: {e}");
                }
            }
            None => {}
        }
    }

    fn probe_done(&mut self, name: &str, ok: bool, why: String) {
        self.cancel(name, Due::ProbeTimeout);
        self.end_probe(name);
        let now = event::now_ms();
        let Some(app) = self.apps.get_mut(name) else {
            return;
        };
        let Some(hc) = app.manifest.healthcheck.clone() else {
            return;
        };
        if !ok {
            app.last_probe_error = why;
        }
        let change = policy::on_probe(&hc, &mut app.health, app.started_ms, now, ok);
        let State::Running { since_ms, .. } = app.state else {
            return;
        };
        match change {
            Some(HealthChange::Healthy) => {
                log::info!("{name}: healthy");
                app.state = State::Running {
                    since_ms,
                    health: Health::Healthy,
                };
                self.start_waiting();
            }
            Some(HealthChange::Unhealthy { restart }) => {
                let what = match &hc.probe {
                    Probe::Exec(a) => format!(
                        "exec {:?}",
                        a.as_slice().iter().map(|x| x.as_str()).collect::<Vec<_>>()
                    ),
                    Probe::Tcp(p) => format!("tcp 127.0.0.1:{}", p.0),
                    Probe::Http(u) => u.as_str().to_owned(),
                };
                let reason = format!(
                    "unhealthy: {what} {} ({} times in a row)",
                    app.last_probe_error,
                    hc.retries.get()
                );
                log::warn!("{name}: {reason}");
                app.state = State::Running {
                    since_ms,
                    health: Health::Unhealthy,
                };
                if restart {
                    self.stop(name, AfterStop::Restart, Some(reason));
                }
            }
            None => {}
        }
    }
}
