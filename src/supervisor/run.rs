//! Carrying out a launch for the loop: the app's log, devices, cgroup and process (its
//! image is installed already), the launch's outcome on its channel, its output, and
//! releasing what a run held once it is over. Nothing here waits.

use std::os::fd::{AsFd, OwnedFd};

use super::app::{self, App, AppId, Pipe, Run, Source};
use super::core::{Supervisor, unwatch, watch};
use super::error::StartError;
use super::lifecycle::Event;
use super::logs::{AppLog, Stream};
use crate::cgroup;
use crate::image::ImageDefaults;
use crate::launch::App as LaunchApp;
use crate::manifest::types::NetworkMode;
use crate::sys;

impl Supervisor {
    /// Prepares and launches app `id`; the outcome arrives on its launch channel. The
    /// error is said without the app's name (the table's line has it).
    pub(super) fn launch(&mut self, id: AppId) -> Result<Run, StartError> {
        let join_net = self.network_of(id)?;
        let defaults = self.image_defaults(id)?;
        let Some(app) = self.apps.get_mut(&id) else {
            return Err(StartError::Gone);
        };
        let name = app.life.name().to_owned();
        let m = &app.life.manifest;
        // Checked at load, and again now: a link on the way to a bind source may
        // have been changed since to lead into /proc or berth's own directories.
        let refused = self.reserved.problems(m);
        if !refused.is_empty() {
            let problems: Vec<String> = refused.iter().map(ToString::to_string).collect();
            return Err(StartError::Reserved(problems));
        }
        // Held from before the launch to the end of the run: `berth gc` leaves it.
        let hold = self
            .store
            .hold(&m.image.sha256)
            .map_err(|source| StartError::Image {
                path: m.image.resolved.clone(),
                source,
            })?;
        let image_root = self.store.rootfs(&m.image.sha256);
        if app.log.is_none() {
            let mut log = AppLog::open(
                &self.config.log_dir,
                &name,
                m.logs.max_size.bytes(),
                m.logs.max_files.get(),
            )
            .map_err(|source| StartError::Log {
                dir: self.config.log_dir.clone(),
                source,
            })?;
            if self.config.app_logs_to_console {
                log.echo_to(&name, Box::new(std::io::stderr()));
            }
            app.log = Some(log);
        }
        // The manifest's devices as the host has them now; the launch resolves them
        // again for the app's /dev, and a node that changed meanwhile finds no rule.
        let nodes =
            crate::launch::devices::resolve(&name, &m.devices).map_err(StartError::Devices)?;
        let confinement = cgroup::Confinement {
            resources: &m.resources,
            devices: &crate::launch::devices::rules(&nodes),
            default_pids: Some(self.config.default_pids),
        };
        let mut group = cgroup::create_confined(&*self.cgroups, &name, &confinement)
            .map_err(StartError::Cgroup)?;
        let oom = match group.oom_watch() {
            Ok(w) => Some(w),
            Err(e) => {
                log::debug!("{name}: no OOM watch: {e}");
                None
            }
        };
        let launching = self
            .launcher
            .spawn(
                &LaunchApp {
                    manifest: m,
                    image_root: &image_root,
                    defaults: &defaults,
                    join_net: join_net.as_ref().map(AsFd::as_fd),
                    hosts: &[],
                },
                &mut *group,
            )
            .map_err(|e| {
                if let Err(r) = group.remove() {
                    log::debug!("{name}: {r}");
                }
                StartError::Launch(e)
            })?;
        let oom_before = group.oom_kills();
        if app.hold.is_none() {
            match super::appstate::hold(&self.config.state_dir, &name) {
                Ok(hold) => app.hold = Some(hold),
                Err(e) => log::warn!("{name}: {e}"),
            }
        }
        let pid = launching.pid;
        watch(
            &self.epoll,
            launching.channel(),
            app::token(id, Source::Channel),
            false,
        )
        .map_err(StartError::Watch)?;
        let oom =
            oom.and_then(
                |w| match self.epoll.add(w.fd(), app::token(id, Source::Oom), false) {
                    Ok(()) => Some((w, oom_before)),
                    Err(e) => {
                        log::debug!("{name}: no OOM watch: {e}");
                        None
                    }
                },
            );
        Ok(Run {
            pid,
            group,
            oom,
            launching: Some(launching),
            sandbox: None,
            exec_probe: None,
            probe: None,
            hold,
        })
    }

    /// What the store recorded about the app's image, read once per image.
    fn image_defaults(&mut self, id: AppId) -> Result<ImageDefaults, StartError> {
        let Some(app) = self.apps.get(&id) else {
            return Err(StartError::Gone);
        };
        let digest = &app.manifest().image.sha256;
        if let Some((_, d)) = self.images.iter().find(|(known, _)| known == digest) {
            return Ok(d.clone());
        }
        let info = self
            .store
            .info(digest)
            .map_err(|source| StartError::Image {
                path: app.manifest().image.resolved.clone(),
                source,
            })?;
        self.images.push((digest.clone(), info.defaults.clone()));
        Ok(info.defaults)
    }

    /// `container:<app>`: that app's network namespace (it runs: a dependency).
    fn network_of(&self, id: AppId) -> Result<Option<OwnedFd>, StartError> {
        let Some(app) = self.apps.get(&id) else {
            return Ok(None);
        };
        let NetworkMode::Container(other) = &app.manifest().network.mode else {
            return Ok(None);
        };
        let pid = self
            .by_name(other.as_str())
            .and_then(App::pid)
            .ok_or_else(|| StartError::NetworkOwner(other.as_str().to_owned()))?;
        let path = format!("/proc/{pid}/ns/net");
        std::fs::File::open(&path)
            .map(|f| Some(f.into()))
            .map_err(|source| StartError::OwnerNamespace { path, source })
    }

    /// The launch channel is readable (or the process ended first): exec'd, or failed.
    pub(super) fn on_channel(&mut self, id: AppId) {
        let Some(launching) = self
            .apps
            .get_mut(&id)
            .and_then(|a| a.life.run_mut())
            .and_then(|r| r.launching.take())
        else {
            return;
        };
        unwatch(&self.epoll, launching.channel());
        match launching.settle() {
            Ok(running) => {
                let pid = running.pid;
                let mut pipes = Vec::new();
                for (fd, stream) in [
                    (running.stdout, Stream::Stdout),
                    (running.stderr, Stream::Stderr),
                ] {
                    if let Err(e) = sys::fd::nonblocking(fd.as_fd()) {
                        log::error!("O_NONBLOCK on an output pipe: {e}");
                    }
                    if let Err(e) = watch(
                        &self.epoll,
                        &fd,
                        app::token(id, Source::Output(stream)),
                        false,
                    ) {
                        log::error!("epoll add an output pipe: {e}");
                    }
                    pipes.push(Pipe { fd, stream });
                }
                if let Some(app) = self.apps.get_mut(&id) {
                    app.pipes = pipes;
                    if let Some(run) = app.life.run_mut() {
                        run.sandbox = Some((running.sandbox, running.env));
                    }
                }
                self.dispatch_event(id, Event::Execd { pid });
            }
            Err(e) => {
                let name = self.apps.get(&id).map(|a| a.name().to_owned());
                let text = e.to_string();
                let why = name.map_or(text.clone(), |n| strip_name(&n, &text));
                // The child exits with its status; it is reaped as any other.
                if let Some(run) = self.apps.get(&id).and_then(|a| a.life.run()) {
                    self.abandoned.push(run.pid);
                }
                self.dispatch_event(id, Event::ExecFailed(why));
            }
        }
    }

    /// Output of an app: into its log.
    pub(super) fn on_output(&mut self, id: AppId, stream: Stream) {
        let Some(app) = self.apps.get_mut(&id) else {
            return;
        };
        let Some(at) = app.pipes.iter().position(|p| p.stream == stream) else {
            return;
        };
        let mut buf = [0u8; 16384];
        let mut closed = false;
        if let Some(pipe) = app.pipes.get(at) {
            // Up to 16 reads per wake-up, so a fast writer cannot starve the loop.
            for _ in 0..16 {
                match sys::fd::read(pipe.fd.as_fd(), &mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => {
                        if let (Some(log), Some(bytes)) = (&mut app.log, buf.get(..n)) {
                            if let Err(e) = log.feed(stream, bytes, std::time::SystemTime::now()) {
                                log::error!("{}: log: {e}", app.life.name());
                            }
                        }
                    }
                    Err(e) if e.errno == libc::EAGAIN => break,
                    Err(e) if e.errno == libc::EINTR => {}
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        if closed {
            let pipe = app.pipes.remove(at);
            unwatch(&self.epoll, &pipe.fd);
            if app.pipes.is_empty() {
                if let Some(log) = &mut app.log {
                    let _ = log.flush_partial(std::time::SystemTime::now());
                }
            }
        }
    }

    /// A run is over: what is left in its cgroup is killed and the cgroup removed (or
    /// retried once its processes are reaped), its probe and watches end. Its output
    /// pipes drain on.
    pub(super) fn release(&mut self, id: AppId, mut run: Run) {
        let name = self.apps.get(&id).map_or("?", |a| a.name()).to_owned();
        if let Some(launching) = run.launching.take() {
            unwatch(&self.epoll, launching.channel());
            self.abandoned.push(run.pid);
        }
        if let Some((watch, _)) = run.oom.take() {
            unwatch(&self.epoll, watch.fd());
        }
        self.end_probe(&mut run);
        if let Err(e) = run.group.kill_all() {
            log::warn!("{name}: {e}");
        }
        if run.group.remove().is_err() {
            self.to_remove.push((name, run.group));
        }
    }
}

/// A launch error says which app it is about; the table's line says it already.
pub(super) fn strip_name(name: &str, text: &str) -> String {
    text.strip_prefix(name)
        .and_then(|t| t.strip_prefix(": "))
        .unwrap_or(text)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::strip_name;

    #[test]
    fn the_name_is_said_once() {
        assert_eq!(
            strip_name("web", "web: launch failed at pivot_root: EPERM"),
            "launch failed at pivot_root: EPERM"
        );
        assert_eq!(strip_name("web", "webber: x"), "webber: x");
        assert_eq!(strip_name("web", "no name"), "no name");
    }
}
