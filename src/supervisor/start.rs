//! Starting an app: its image, cgroup and launch, the launch's outcome, and its
//! output.

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use super::core::{Due, Source, Supervisor};
use super::event;
use super::logs::{AppLog, Stream};
use super::policy::{self, ExitKind, Health, State};
use crate::cgroup;
use crate::image::Limits;
use crate::image::layout::Platform;
use crate::launch::App as LaunchApp;
use crate::manifest::types::NetworkMode;

impl Supervisor {
    /// Image, cgroup, launch; the outcome arrives on the launch channel.
    pub(super) fn launch(&mut self, name: &str) -> Result<(), String> {
        let join_net = self.network_of(name)?;
        let Some(app) = self.apps.get_mut(name) else {
            return Ok(());
        };
        let m = &app.manifest;
        // Checked at load, and again now: a link on the way to a bind source may
        // have been changed since to lead into /proc or berth's own directories.
        let refused = self.config.reserved(&self.apps_dir).problems(m);
        if !refused.is_empty() {
            let problems: Vec<String> = refused.iter().map(ToString::to_string).collect();
            return Err(problems.join("; "));
        }
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
        app.exec_probe = None;
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
            if self.config.app_logs_to_console {
                if let Some(log) = app.log.as_mut() {
                    log.echo_to(name, Box::new(std::io::stderr()));
                }
            }
        }
        // The manifest's devices as the host has them now; the launch resolves them
        // again for the app's /dev, and a node that changed meanwhile finds no rule.
        let nodes = crate::launch::devices::resolve(name, &m.devices)?;
        let confinement = cgroup::Confinement {
            resources: &m.resources,
            devices: &crate::launch::devices::rules(&nodes),
            default_pids: Some(self.config.default_pids),
        };
        let mut group = cgroup::create_confined(&*self.cgroups, name, &confinement)
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
    pub(super) fn network_of(&self, name: &str) -> Result<Option<OwnedFd>, String> {
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
    pub(super) fn on_launched(&mut self, name: &str) {
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
                    app.exec_probe = None;
                    app.sandbox = Some((running.sandbox, running.env));
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
    pub(super) fn on_output(&mut self, name: &str, stream: Stream, token: u64) {
        let Some(app) = self.apps.get_mut(name) else {
            return;
        };
        let Some(at) = app.pipes.iter().position(|(_, t, _)| *t == token) else {
            return;
        };
        let mut buf = [0u8; 16384];
        let mut closed = false;
        if let Some((fd, _, _)) = app.pipes.get(at) {
            // Up to 16 reads per wake-up, so a fast writer cannot starve the loop.
            for _ in 0..16 {
                match event::read(fd.as_raw_fd(), &mut buf) {
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
}
