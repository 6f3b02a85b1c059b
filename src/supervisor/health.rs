//! Health probes of the loop: started on the timer, finished by a reaped probe
//! process, a ready socket or the timeout; the verdict goes through the table.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;

use super::app::{self, AppId, ProbeRun, Run, Source};
use super::core::{Supervisor, unwatch, watch};
use super::lifecycle::{Due, Event, Phase};
use super::probe::{self, SocketProbe, SocketTarget, Wait};
use crate::manifest::model::Probe;
use crate::sys;
use crate::sys::timer::now_ms;

impl Supervisor {
    pub(super) fn start_probe(&mut self, id: AppId) {
        let now = now_ms();
        let Some(app) = self.apps.get_mut(&id) else {
            return;
        };
        let Some(hc) = app.life.manifest.healthcheck.clone() else {
            return;
        };
        if !matches!(app.life.phase, Phase::Running { .. }) {
            return;
        }
        let Some(run) = app.life.run_mut() else {
            return;
        };
        if run.probe.is_none() {
            let pid = run.pid;
            let started = match &hc.probe {
                Probe::Exec(args) => exec_probe(run, args)
                    .and_then(|probe| probe.spawn(pid).map(|p| ProbeRun::Exec { pid: p })),
                Probe::Tcp(_) | Probe::Http(_) => probe_socket(&self.epoll, id, run.pid, &hc.probe),
            };
            match started {
                Ok(probe) => {
                    run.probe = Some(probe);
                    self.schedule(id, Due::ProbeTimeout, now + hc.timeout.as_millis());
                }
                Err(e) => self.probe_done(id, false, format!("could not start: {e}")),
            }
        }
        self.schedule(id, Due::Probe, now + hc.interval.as_millis());
    }

    /// A probe socket is ready: the exchange goes on, or has its outcome.
    pub(super) fn on_probe_io(&mut self, id: AppId) {
        let Some(run) = self.apps.get_mut(&id).and_then(|a| a.life.run_mut()) else {
            return;
        };
        let Some(ProbeRun::Socket(probe)) = &mut run.probe else {
            return;
        };
        let verdict = match probe.on_ready() {
            None => {
                // Waits for the other direction now (sent: the answer).
                unwatch(&self.epoll, probe.fd());
                let write = probe.wait() == Wait::Writable;
                match watch(
                    &self.epoll,
                    probe.fd(),
                    app::token(id, Source::Probe),
                    write,
                ) {
                    Ok(()) => None,
                    Err(e) => Some((false, format!("epoll add: {e}"))),
                }
            }
            Some(Ok(outcome)) => Some((outcome.healthy(), outcome.to_string())),
            Some(Err(e)) => Some((false, e.to_string())),
        };
        if let Some((ok, why)) = verdict {
            self.probe_done(id, ok, why);
        }
    }

    /// Ends the probe in flight of `run`, if any.
    pub(super) fn end_probe(&mut self, run: &mut Run) {
        let probe = run.probe.take();
        self.end_probe_run(probe);
    }

    fn end_probe_run(&mut self, probe: Option<ProbeRun>) {
        match probe {
            Some(ProbeRun::Socket(probe)) => unwatch(&self.epoll, probe.fd()),
            Some(ProbeRun::Exec { pid }) => {
                if let Err(e) = probe::kill_probe(pid) {
                    log::debug!("kill probe {pid}: {e}");
                }
                // Killed: reaped when it ends, as nobody's.
                self.abandoned.push(pid);
            }
            None => {}
        }
    }

    pub(super) fn probe_done(&mut self, id: AppId, ok: bool, why: String) {
        self.cancel(id, Due::ProbeTimeout);
        // Ended by its verdict: what is left of it goes (a socket, a probe that timed
        // out).
        let probe = self
            .apps
            .get_mut(&id)
            .and_then(|a| a.life.run_mut())
            .and_then(|r| r.probe.take());
        self.end_probe_run(probe);
        self.dispatch_event(id, Event::Probed { ok, why });
    }
}

/// The run's exec probe, prepared at its first probe after each start (its
/// environment and cgroup files are those of this run).
fn exec_probe<'r>(
    run: &'r mut Run,
    args: &crate::manifest::types::Args,
) -> io::Result<&'r probe::ExecProbe> {
    if run.exec_probe.is_none() {
        let argv: Vec<String> = args
            .as_slice()
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect();
        let procs: Vec<PathBuf> = run.group.join_files();
        let (sandbox, env) = run.sandbox.as_ref().ok_or_else(|| {
            io::Error::other("the app's sandbox is not known (it is not running)")
        })?;
        let runner = std::path::Path::new(probe::SELF_EXE);
        run.exec_probe = Some(probe::ExecProbe::new(runner, &argv, env, &procs, sandbox)?);
    }
    run.exec_probe
        .as_ref()
        .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
}

/// A socket probe started in the app's network namespace, in the loop.
fn probe_socket(
    epoll: &sys::epoll::Epoll,
    id: AppId,
    pid: i32,
    what: &Probe,
) -> io::Result<ProbeRun> {
    let target =
        SocketTarget::of(what).ok_or_else(|| io::Error::other("an exec probe has no socket"))?;
    let ns = fs::File::open(format!("/proc/{pid}/ns/net"))?;
    let probe = SocketProbe::start(Some(ns.as_fd()), &target)?;
    let write = probe.wait() == Wait::Writable;
    watch(epoll, probe.fd(), app::token(id, Source::Probe), write).map_err(io::Error::from)?;
    Ok(ProbeRun::Socket(probe))
}
