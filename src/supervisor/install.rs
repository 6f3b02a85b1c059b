//! Installing an app's image off the loop: a `berth-install` child process unpacks it
//! ([`crate::image::install`]) and reports on a pipe in the epoll set; its progress is
//! logged (at most once a second), and its result is read once the loop has reaped it.

use std::path::Path;

use super::app::{self, AppId, Source};
use super::core::{Supervisor, unwatch, watch};
use super::lifecycle::Event;
use crate::image::install::{Done, InstallJob, Report, SELF_EXE};
use crate::image::layout::Platform;

impl Supervisor {
    /// Starts installing the app's image: the answer to `Effect::Install`.
    pub(super) fn install(&mut self, id: AppId) -> Event<app::Real> {
        let Some(app) = self.apps.get(&id) else {
            return Event::InstallDone(Err("it is gone".into()));
        };
        let m = app.manifest();
        let image = m.image.resolved.display().to_string();
        let job = InstallJob::spawn(
            Path::new(SELF_EXE),
            &self.store,
            &m.image.resolved,
            &m.image.sha256,
            &self.config.images,
            &Platform::current(),
        );
        let job = match job {
            Ok(job) => job,
            Err(e) => return Event::InstallDone(Err(format!("could not install its image: {e}"))),
        };
        if let Err(e) = watch(
            &self.epoll,
            job.fd(),
            app::token(id, Source::Install),
            false,
        ) {
            // Its result is still read when it is reaped; only the progress is lost.
            log::warn!("{}: epoll add the install pipe: {e}", app.name());
        }
        log::info!("{}: installing {image}", app.name());
        Event::InstallStarted(job)
    }

    /// The install pipe is readable: progress, for the console.
    pub(super) fn on_install_output(&mut self, id: AppId) {
        let Some(app) = self.apps.get_mut(&id) else {
            return;
        };
        let name = app.life.name().to_owned();
        let image = app.life.manifest.image.resolved.display().to_string();
        let Some(job) = app.life.job_mut() else {
            return;
        };
        for report in job.read_reports() {
            if let Report::Progress(p) = report {
                log::info!("{name}: installing {image}: {p}");
            }
        }
        if job.at_eof() {
            unwatch(&self.epoll, job.fd());
        }
    }

    /// The install job was reaped.
    pub(super) fn on_install_exit(&mut self, id: AppId, status: i32) {
        self.dispatch_event(id, Event::InstallExited { status });
    }

    /// The answer to `Effect::FinishInstall`: the job's result.
    pub(super) fn finish_install(
        &mut self,
        id: AppId,
        job: InstallJob,
        status: i32,
    ) -> Event<app::Real> {
        unwatch(&self.epoll, job.fd());
        let Some(app) = self.apps.get(&id) else {
            return Event::InstallDone(Err("it is gone".into()));
        };
        let m = app.manifest();
        match job.finish(status) {
            Ok(Done::Installed { format }) => {
                log::info!(
                    "{}: installed {} ({format})",
                    app.name(),
                    m.image.resolved.display(),
                );
                Event::InstallDone(Ok(()))
            }
            Ok(Done::Already) => Event::InstallDone(Ok(())),
            Err(e) => Event::InstallDone(Err(format!("could not install its image: {e}"))),
        }
    }

    /// An install no longer wanted: killed, and reaped when it ends (its unpack
    /// directory is left locked by nobody, and the store removes it).
    pub(super) fn cancel_install(&mut self, job: InstallJob) {
        unwatch(&self.epoll, job.fd());
        if let Err(e) = crate::sys::process::kill(job.pid(), libc::SIGKILL) {
            log::debug!("kill the install job {}: {e}", job.pid());
        }
        self.abandoned.push(job.pid());
    }
}
