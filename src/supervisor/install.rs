//! Installing an app's image off the loop (interim: until the install job lands, the
//! install runs here and reports at once).

use super::app::{self, AppId};
use super::core::Supervisor;
use super::lifecycle::Event;

/// An install in progress.
pub struct Job {
    pid: i32,
}

impl Job {
    pub fn pid(&self) -> i32 {
        self.pid
    }
}

/// Keeps an image from `berth gc` while an app uses it.
pub type Hold = ();

/// interim: whether `pid` receives `signal` (until the procfs reader lands).
pub fn receives(_proc: &std::path::Path, _pid: i32, _signal: i32) -> std::io::Result<bool> {
    Ok(true)
}

impl Supervisor {
    /// Starts installing the app's image: the answer to `Effect::Install`.
    pub(super) fn install(&mut self, id: AppId) -> Event<app::Real> {
        let Some(app) = self.apps.get(&id) else {
            return Event::InstallDone(Err("it is gone".into()));
        };
        let m = app.manifest();
        let result = self
            .store
            .install(
                &m.image.resolved,
                &m.image.sha256,
                &self.config.images,
                &crate::image::layout::Platform::current(),
            )
            .map(drop)
            .map_err(|e| format!("image {}: {e}", m.image.resolved.display()));
        Event::InstallDone(result)
    }

    pub(super) fn on_install_output(&mut self, _id: AppId) {}

    pub(super) fn on_install_exit(&mut self, _id: AppId, _status: i32) {}

    pub(super) fn cancel_install(&mut self, _id: AppId, job: Job) {
        super::event::signal(job.pid, libc::SIGKILL);
        self.abandoned.insert(job.pid);
    }
}
