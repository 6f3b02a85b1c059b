//! Health probes of the loop: started on the timer, finished by a reaped probe
//! process, a ready socket or the timeout; the verdict goes through the policy.

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;

use super::app::ProbeRun;
use super::core::{Due, Source, Supervisor};
use super::event;
use super::policy::{self, AfterStop, Health, HealthChange, State};
use super::probe;
use crate::manifest::model::Probe;
use crate::manifest::types::Args;

impl Supervisor {
    pub(super) fn start_probe(&mut self, name: &str) {
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
            Probe::Exec(args) => self
                .exec_probe(name, args)
                .and_then(|probe| probe.spawn(pid).map(|p| ProbeRun::Exec { pid: p })),
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

    /// The app's exec probe, prepared at its first probe after each start (its
    /// environment and cgroup files are those of this run).
    fn exec_probe(&mut self, name: &str, args: &Args) -> io::Result<&probe::ExecProbe> {
        let Some(app) = self.apps.get_mut(name) else {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        };
        if app.exec_probe.is_none() {
            let argv: Vec<String> = args
                .as_slice()
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect();
            let procs: Vec<PathBuf> = app
                .group
                .as_ref()
                .map(|g| g.join_files())
                .unwrap_or_default();
            let (sandbox, env) = app.sandbox.as_ref().ok_or_else(|| {
                io::Error::other("the app's sandbox is not known (it is not running)")
            })?;
            let runner = std::path::Path::new(probe::SELF_EXE);
            app.exec_probe = Some(probe::ExecProbe::new(runner, &argv, env, &procs, sandbox)?);
        }
        app.exec_probe
            .as_ref()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
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
    pub(super) fn on_probe_io(&mut self, name: &str, token: u64) {
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
                            let n = event::write(fd.as_raw_fd(), &req);
                            if n.ok() != Some(req.len()) {
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
            self.probe_done(name, ok, why);
        }
    }

    pub(super) fn end_probe(&mut self, name: &str) {
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

    pub(super) fn probe_done(&mut self, name: &str, ok: bool, why: String) {
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
