//! The supervisor's side of the control socket: each request is answered from the
//! loop's own state, at once or when what it waits for happens (an app is down, up,
//! or failed; an exec'd command ended), never by waiting. Followers (`events`,
//! `logs -f`) get lines as the loop makes them.

use std::os::fd::OwnedFd;

use super::app::AppId;
use super::core::Supervisor;
use super::lifecycle::{Health, Phase};
use crate::cli::control::Control;
use crate::control::json::Object;
use crate::control::protocol::Frame;
use crate::control::server::{Happening, Server};
use crate::control::status::{self, AppStatus, OwnStatus};
use crate::sys::timer::now_ms;

mod waits;
pub(super) use waits::event_of;

/// The epoll token of the listening socket.
pub(super) const LISTENER: u64 = 2;

/// How long `start` and `restart` wait for the app to run before they answer that
/// it has not yet (berth goes on bringing it up).
const START_WAIT_MS: u64 = 60_000;
/// How long `stop` waits beyond the app's stop timeout.
const STOP_SLACK_MS: u64 = 5_000;

/// A client waiting for something of the loop.
enum Sub {
    /// `events`: every state change, as text or JSON lines.
    Events { json: bool },
    /// `logs -f`: the lines of this app's log.
    Logs { app: String },
    /// `start`, `stop`, `restart`: the app reaching `goal` (or failing to) by
    /// `deadline`.
    Wait {
        app: AppId,
        goal: Goal,
        deadline: u64,
    },
    /// `exec`: the runner's pid; its exit status is the answer.
    Exec { pid: i32 },
    /// `shutdown`: told when every app is down.
    Shutdown,
}

#[derive(Clone, Copy)]
enum Goal {
    Down,
    /// Running with another process than `not` (the one a restart stops).
    Up {
        not: Option<i32>,
    },
}

/// The socket and who waits on it.
pub(super) struct ControlPlane {
    server: Server,
    subs: Vec<(u64, Sub)>,
}

impl ControlPlane {
    pub(super) fn new(server: Server) -> ControlPlane {
        ControlPlane {
            server,
            subs: Vec::new(),
        }
    }
}

/// A change worth an `events` line.
pub(super) struct Change<'a> {
    pub app: &'a str,
    pub event: &'static str,
    pub pid: Option<i32>,
    pub detail: Option<String>,
}

impl Supervisor {
    /// Clients are waiting to connect.
    pub(super) fn on_listener(&mut self) {
        if let Some(c) = &mut self.control {
            c.server.accept(&self.epoll, now_ms());
        }
    }

    /// A client's socket is ready.
    pub(super) fn on_client(&mut self, token: u64) {
        let Some(c) = &mut self.control else {
            return;
        };
        match c.server.on_ready(&self.epoll, token) {
            Some(Happening::Request { token, args, fds }) => self.on_request(token, args, fds),
            Some(Happening::Gone(token)) => self.client_gone(token),
            None => {}
        }
    }

    /// A client is gone: what it followed or waited for ends; a command it ran with
    /// `exec` is ended (the runner kills its process group).
    fn client_gone(&mut self, token: u64) {
        let Some(c) = &mut self.control else {
            return;
        };
        c.subs.retain(|(t, sub)| {
            if *t != token {
                return true;
            }
            if let Sub::Exec { pid } = sub {
                if let Err(e) = crate::supervisor::probe::kill_probe(*pid) {
                    log::debug!("exec: {e}");
                }
                // Still reaped and answered to nobody.
                return true;
            }
            false
        });
    }

    fn send(&mut self, token: u64, frame: &Frame) -> bool {
        match &mut self.control {
            Some(c) => c.server.send(&self.epoll, token, frame),
            None => false,
        }
    }

    /// Answers with `lines` on stdout and exit status `code`.
    fn answer(&mut self, token: u64, lines: &[String], code: i32) {
        for line in lines {
            if !self.send(token, &Frame::Out(line.clone())) {
                return;
            }
        }
        if let Some(c) = &mut self.control {
            c.server.finish(&self.epoll, token, code);
        }
    }

    /// Answers with `why` on stderr and exit status `code`.
    fn refuse(&mut self, token: u64, why: &str, code: i32) {
        self.send(token, &Frame::Err(why.to_owned()));
        if let Some(c) = &mut self.control {
            c.server.finish(&self.epoll, token, code);
        }
    }

    fn subscribe(&mut self, token: u64, sub: Sub) {
        if let Some(c) = &mut self.control {
            c.subs.push((token, sub));
        }
    }

    fn on_request(&mut self, token: u64, args: Vec<String>, fds: Vec<OwnedFd>) {
        let (command, rest) = match args.split_first() {
            Some((command, rest)) => (command.as_str(), rest),
            None => return self.refuse(token, "berth: the request names no command", 2),
        };
        let request = match crate::cli::control::parse(command, rest) {
            Ok(request) => request,
            Err(e) => return self.refuse(token, &format!("berth {e}"), 2),
        };
        if !matches!(request, Control::Exec { .. }) && !fds.is_empty() {
            return self.refuse(
                token,
                "berth: descriptors sent with a request that takes none",
                2,
            );
        }
        match request {
            Control::Status { app, json } => self.status(token, app.as_deref(), json),
            Control::Inspect { app } => self.inspect(token, &app),
            Control::Logs {
                app,
                follow,
                lines,
                since,
            } => self.logs(token, &app, follow, lines, since),
            Control::Exec {
                app,
                tty,
                user,
                argv,
            } => self.exec(token, &app, tty, user.as_deref(), &argv, fds),
            Control::Start(app) => self.start_by_hand(token, &app, false),
            Control::Restart(app) => self.start_by_hand(token, &app, true),
            Control::Stop(app) => self.stop_by_hand(token, &app),
            Control::Events { json } => {
                self.subscribe(token, Sub::Events { json });
            }
            Control::Reload => {
                log::info!("berth reload: reloading {}", self.apps_dir.display());
                let summary = self.reload();
                let code = i32::from(!summary.invalid.is_empty());
                self.answer(token, &summary.lines(), code);
            }
            Control::Shutdown(how) => self.shutdown_by_hand(token, how),
            Control::Metrics => self.metrics(token),
            Control::Gc { dry_run } => self.gc(token, dry_run),
        }
    }

    /// The app named `name`, or the answer that there is none.
    fn named(&mut self, token: u64, name: &str) -> Option<AppId> {
        let id = self.by_name(name).map(|a| a.id);
        if id.is_none() {
            self.refuse(token, &format!("berth: no app named {name:?}"), 1);
        }
        id
    }

    /// What `status` reports of every app, and of berth.
    pub(super) fn snapshot(&self) -> (Vec<AppStatus>, OwnStatus) {
        let now = now_ms();
        let apps = self
            .apps
            .values()
            .map(|a| self.app_status(a, now))
            .collect();
        let own = OwnStatus {
            rss: own_rss().unwrap_or(0),
            fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64),
            uptime_ms: now.saturating_sub(self.started_ms),
        };
        (apps, own)
    }

    fn app_status(&self, app: &super::app::App, now: u64) -> AppStatus {
        let phase = &app.life.phase;
        let why = match phase {
            Phase::Waiting { on } => Some(on.strip_prefix("waiting ").unwrap_or(on).to_owned()),
            Phase::Failed { reasons } => reasons.last().cloned(),
            Phase::Exited { reason } => Some(reason.clone()),
            Phase::Stopped if app.stats.stopped_by_hand => Some("by berth stop".to_owned()),
            _ => None,
        };
        let health = match phase.health() {
            Some(Health::None) | None => None,
            Some(h) => Some(h.name()),
        };
        let usage = app.life.run().map(|r| r.group.usage());
        AppStatus {
            name: app.name().to_owned(),
            state: phase.name(),
            why,
            health,
            pid: app.pid(),
            uptime_ms: match phase {
                Phase::Running { since, .. } => Some(now.saturating_sub(*since)),
                _ => None,
            },
            restarts: app.stats.starts.saturating_sub(1),
            memory: usage.and_then(|u| u.memory),
            memory_limit: app.manifest().resources.memory.map(|m| m.bytes()),
            cpu_ns: usage.and_then(|u| u.cpu_ns),
            oom_kills: app.stats.oom_kills,
            exits: app.stats.exits.iter().cloned().collect(),
        }
    }

    fn status(&mut self, token: u64, name: Option<&str>, json: bool) {
        let (apps, _) = self.snapshot();
        let Some(name) = name else {
            let lines = if json {
                let list = crate::control::json::array(apps.iter().map(AppStatus::json));
                vec![Object::new().raw("apps", &list).end()]
            } else {
                status::table(&apps)
            };
            return self.answer(token, &lines, 0);
        };
        let Some(id) = self.named(token, name) else {
            return;
        };
        let Some((app, one)) = self
            .apps
            .get(&id)
            .zip(apps.into_iter().find(|a| a.name == name))
        else {
            return;
        };
        let more = self.details(app);
        let lines = if json {
            let mut object = one.json();
            object.pop();
            for (k, v) in &more {
                object.push(',');
                object.push_str(&crate::control::json::string(&k.replace(' ', "_")));
                object.push(':');
                object.push_str(&crate::control::json::string(v));
            }
            object.push('}');
            vec![object]
        } else {
            status::detail(&one, &more)
        };
        self.answer(token, &lines, 0);
    }

    /// What `status APP` adds to the snapshot: the definition and the kernel's view.
    fn details(&self, app: &super::app::App) -> Vec<(&'static str, String)> {
        let m = app.manifest();
        let mut more = vec![
            ("manifest", m.file.display().to_string()),
            (
                "image",
                format!("sha256:{} ({})", m.image.sha256, m.image.resolved.display()),
            ),
        ];
        if let Ok(info) = self.store.info(&m.image.sha256) {
            more.push(("image format", info.format));
        }
        let mut network = m.network.mode.to_string();
        for port in &m.network.ports {
            network.push_str(&format!(" {port}"));
        }
        more.push(("network", network));
        let namespaces: Vec<&str> = m.namespaces.iter().map(|n| n.name()).collect();
        more.push(("namespaces", namespaces.join(" ")));
        let mounts: Vec<String> = m.mounts.iter().map(mount_text).collect();
        if !mounts.is_empty() {
            more.push(("mounts", mounts.join(", ")));
        }
        if let Some(run) = app.life.run() {
            let dirs: Vec<String> = run
                .group
                .dirs()
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            more.push(("cgroup", dirs.join(" ")));
        }
        if let Some(log) = &app.log {
            more.push(("log", log.path().display().to_string()));
        }
        more
    }

    fn inspect(&mut self, token: u64, name: &str) {
        let Some(id) = self.named(token, name) else {
            return;
        };
        let Some(app) = self.apps.get(&id) else {
            return;
        };
        let m = app.manifest();
        let defaults = self
            .images
            .iter()
            .find(|(d, _)| *d == m.image.sha256)
            .map(|(_, d)| d);
        let text = crate::control::inspect::render(m, defaults);
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        self.answer(token, &lines, 0);
    }

    fn logs(
        &mut self,
        token: u64,
        name: &str,
        follow: bool,
        lines: Option<usize>,
        since: Option<crate::manifest::units::Duration>,
    ) {
        use super::logs::history::{History, Select};
        let known = self.by_name(name).is_some();
        if name.parse::<crate::manifest::types::AppName>().is_err() {
            return self.refuse(token, &format!("berth: {name:?} is not an app name"), 2);
        }
        let since = since.map(|d| {
            let at = std::time::SystemTime::now() - std::time::Duration::from(d);
            crate::timefmt::format_time(at)
        });
        let history = match History::open(&self.config.log_dir, name, Select { lines, since }) {
            Ok(h) => h,
            Err(e) => return self.refuse(token, &format!("berth: the log of {name}: {e}"), 1),
        };
        if !known && history.is_empty() {
            return self.refuse(
                token,
                &format!("berth: no app named {name:?}, and no log of one"),
                1,
            );
        }
        let attached = match &mut self.control {
            Some(c) => c.server.attach(&self.epoll, token, Box::new(history)),
            None => false,
        };
        if !attached {
            return;
        }
        if follow {
            if let Some(log) = self.by_name_mut(name).and_then(|a| a.log.as_mut()) {
                log.tap(true);
            }
            self.subscribe(
                token,
                Sub::Logs {
                    app: name.to_owned(),
                },
            );
        } else if let Some(c) = &mut self.control {
            c.server.finish(&self.epoll, token, 0);
        }
    }

    fn exec(
        &mut self,
        token: u64,
        name: &str,
        tty: bool,
        user: Option<&str>,
        argv: &[String],
        fds: Vec<OwnedFd>,
    ) {
        let Some(id) = self.named(token, name) else {
            return;
        };
        match self.start_exec(id, argv, user, tty, fds) {
            Ok(pid) => self.subscribe(token, Sub::Exec { pid }),
            Err(why) => self.refuse(token, &format!("berth exec: {why}"), 1),
        }
    }

    /// A runner started for `exec` ended with `status`: its client gets the exit
    /// code. Whether `pid` was one.
    pub(super) fn exec_ended(&mut self, pid: i32, status: i32) -> bool {
        let Some(c) = &mut self.control else {
            return false;
        };
        let Some(at) = c
            .subs
            .iter()
            .position(|(_, s)| matches!(s, Sub::Exec { pid: p } if *p == pid))
        else {
            return false;
        };
        let (token, _) = c.subs.swap_remove(at);
        let code = crate::sys::process::exit_code(status).unwrap_or(125);
        c.server.finish(&self.epoll, token, code);
        true
    }

    fn metrics(&mut self, token: u64) {
        let (apps, own) = self.snapshot();
        let text = crate::control::metrics::render(&apps, &own);
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        self.answer(token, &lines, 0);
    }

    /// `gc`: a job started with the client's socket answers it.
    fn gc(&mut self, token: u64, dry_run: bool) {
        let socket = match &mut self.control {
            Some(c) => c.server.take(&self.epoll, token),
            None => None,
        };
        let Some(socket) = socket else {
            return;
        };
        if let Err(e) = self.gc_job(socket, dry_run) {
            log::error!("berth gc: {e}");
        }
    }
}

/// berth's resident memory in bytes (`VmRSS` of `/proc/self/status`).
fn own_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim();
    kb.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// A mount as `status APP` shows it: `SOURCE:TARGET[:ro]`, as `docker run -v`.
fn mount_text(mount: &crate::manifest::model::Mount) -> String {
    use crate::manifest::model::Mount;
    let (source, target, readonly) = match mount {
        Mount::Bind {
            source,
            target,
            readonly,
            ..
        } => (source.to_string(), target, *readonly),
        Mount::Tmpfs {
            target, readonly, ..
        } => ("tmpfs".to_owned(), target, *readonly),
        Mount::Volume {
            name,
            target,
            readonly,
        } => (format!("volume {name}"), target, *readonly),
    };
    format!("{source}:{target}{}", if readonly { ":ro" } else { "" })
}
