//! Health probes of the loop: started on the timer, finished by a reaped probe
//! process, a ready socket or the timeout; the verdict goes through the table.

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;

use super::app::{self, AppId, ProbeRun, Run, Source};
use super::core::{Supervisor, watch};
use super::event;
use super::lifecycle::{Due, Event, Phase};
use super::probe;
use crate::manifest::model::Probe;

impl Supervisor {
    pub(super) fn start_probe(&mut self, id: AppId) {
        let now = event::now_ms();
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
                Probe::Tcp(port) => probe_socket(&self.epoll, id, run.pid, port.0, false),
                Probe::Http(url) => probe_socket(&self.epoll, id, run.pid, url.port, true),
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

    /// A probe socket is ready.
    pub(super) fn on_probe_io(&mut self, id: AppId) {
        let Some(app) = self.apps.get_mut(&id) else {
            return;
        };
        let url = match &app.life.manifest.healthcheck {
            Some(hc) => match &hc.probe {
                Probe::Http(url) => Some(url.clone()),
                _ => None,
            },
            None => None,
        };
        let Some(run) = app.life.run_mut() else {
            return;
        };
        let verdict: Option<(bool, String)> = match &mut run.probe {
            Some(ProbeRun::Tcp { fd }) => Some(match probe::tcp_result(fd.as_fd()) {
                Ok(()) => (true, String::new()),
                Err(e) => (false, format!("failed: {e}")),
            }),
            Some(ProbeRun::Http { fd, sent, response }) => {
                if !*sent {
                    match probe::tcp_result(fd.as_fd()) {
                        Err(e) => Some((false, format!("failed: {e}"))),
                        Ok(()) => {
                            let req = url
                                .as_ref()
                                .map(|u| probe::http_request(&u.host.to_string(), &u.path))
                                .unwrap_or_default();
                            let n = event::write(fd.as_raw_fd(), &req);
                            if n.ok() != Some(req.len()) {
                                Some((false, "could not send the request".to_owned()))
                            } else {
                                *sent = true;
                                self.epoll.remove(fd.as_raw_fd());
                                let token = app::token(id, Source::Probe);
                                if let Err(e) = watch(&self.epoll, &*fd, token, false) {
                                    Some((false, format!("epoll add: {e}")))
                                } else {
                                    None
                                }
                            }
                        }
                    }
                } else {
                    let mut buf = [0u8; 1024];
                    match event::read(fd.as_raw_fd(), &mut buf) {
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
            Some(ProbeRun::Tcp { fd } | ProbeRun::Http { fd, .. }) => {
                self.epoll.remove(fd.as_raw_fd());
            }
            Some(ProbeRun::Exec { pid }) => {
                if let Err(e) = probe::kill_probe(pid) {
                    log::debug!("kill probe {pid}: {e}");
                }
                // Killed: reaped when it ends, as nobody's.
                self.abandoned.insert(pid);
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

/// A connecting socket in the app's network namespace, in the loop.
fn probe_socket(
    epoll: &event::Epoll,
    id: AppId,
    pid: i32,
    port: u16,
    http: bool,
) -> io::Result<ProbeRun> {
    let ns = fs::File::open(format!("/proc/{pid}/ns/net"))?;
    let fd = probe::tcp_connect_in(Some(ns.as_fd()), port)?;
    watch(epoll, &fd, app::token(id, Source::Probe), true)?;
    Ok(if http {
        ProbeRun::Http {
            fd,
            sent: false,
            response: probe::HttpResponse::new(),
        }
    } else {
        ProbeRun::Tcp { fd }
    })
}
