//! The clients that wait on the loop: `start`, `stop`, `restart` and `shutdown`,
//! answered once their change is done (or missed); `events` and `logs -f`, fed as the
//! loop makes their lines; what each is told when berth exits.

use super::{Change, Goal, START_WAIT_MS, STOP_SLACK_MS, Sub};
use crate::cli::control::Shutdown;
use crate::control::json::Object;
use crate::control::protocol::Frame;
use crate::supervisor::app::AppId;
use crate::supervisor::core::{Supervisor, Todo};
use crate::supervisor::lifecycle::{Phase, Then};
use crate::sys::timer::now_ms;

impl Supervisor {
    pub(in crate::supervisor) fn start_by_hand(&mut self, token: u64, name: &str, restart: bool) {
        let verb = if restart { "restart" } else { "start" };
        if self.shutting_down {
            return self.refuse(
                token,
                &format!("berth {verb}: berth is stopping every app"),
                1,
            );
        }
        let Some(id) = self.named(token, name) else {
            return;
        };
        if let Err(e) =
            crate::supervisor::appstate::set_stopped_by_hand(&self.config.state_dir, name, false)
        {
            return self.refuse(token, &format!("berth {verb}: {name}: {e}"), 1);
        }
        let Some(app) = self.apps.get_mut(&id) else {
            return;
        };
        app.stats.stopped_by_hand = false;
        let pid = app.pid();
        if app.life.is_up() && !restart {
            let line = match pid {
                Some(pid) => format!("{name}: running already (pid {pid})"),
                None => format!("{name}: on its way up already ({})", app.life.phase.name()),
            };
            if pid.is_some() {
                return self.answer(token, &[line], 0);
            }
        }
        log::info!("{name}: {verb} asked by berth {verb}");
        if app.life.is_up() {
            if restart {
                self.stop(id, Then::Restart);
            }
        } else {
            // A fresh start: failures before this one are forgiven.
            app.life.history.clear();
            self.dispatch(Todo::Start(id));
        }
        let deadline = now_ms() + START_WAIT_MS;
        self.subscribe(
            token,
            Sub::Wait {
                app: id,
                goal: Goal::Up {
                    not: pid.filter(|_| restart),
                },
                deadline,
            },
        );
    }

    pub(in crate::supervisor) fn stop_by_hand(&mut self, token: u64, name: &str) {
        let Some(id) = self.named(token, name) else {
            return;
        };
        if let Err(e) =
            crate::supervisor::appstate::set_stopped_by_hand(&self.config.state_dir, name, true)
        {
            return self.refuse(token, &format!("berth stop: {name}: {e}"), 1);
        }
        let Some(app) = self.apps.get_mut(&id) else {
            return;
        };
        app.stats.stopped_by_hand = true;
        let timeout = app.manifest().stop.timeout.as_millis();
        log::info!("{name}: stop asked by berth stop; it stays stopped until berth start");
        self.stop(id, Then::Stay);
        let deadline = now_ms() + timeout + STOP_SLACK_MS;
        self.subscribe(
            token,
            Sub::Wait {
                app: id,
                goal: Goal::Down,
                deadline,
            },
        );
    }

    pub(in crate::supervisor) fn shutdown_by_hand(&mut self, token: u64, how: Shutdown) {
        if self.init && self.action.is_none() {
            self.action = Some(match how {
                Shutdown::Reboot => crate::pid1::Action::Reboot,
                Shutdown::Poweroff => crate::pid1::Action::PowerOff,
                Shutdown::Halt => crate::pid1::Action::Halt,
            });
        }
        self.send(token, &Frame::Out("berth: stopping every app".to_owned()));
        self.subscribe(token, Sub::Shutdown);
        self.begin_shutdown("berth shutdown");
    }

    /// Every app is down and berth is about to exit: `shutdown` clients hear it, and
    /// every other waiting client gets its end, as far as its socket takes it at once.
    pub(in crate::supervisor) fn farewell(&mut self) {
        let Some(c) = &mut self.control else {
            return;
        };
        let what = match (self.init, self.action) {
            (true, Some(crate::pid1::Action::PowerOff)) => "; powering off",
            (true, Some(crate::pid1::Action::Halt)) => "; halting",
            (true, _) => "; rebooting",
            (false, _) => "; berth exits",
        };
        for (token, sub) in std::mem::take(&mut c.subs) {
            let (frame, code) = match sub {
                Sub::Shutdown => (Frame::Out(format!("berth: every app is stopped{what}")), 0),
                Sub::Events { .. } | Sub::Logs { .. } => (Frame::Out(String::new()), 0),
                Sub::Wait { .. } | Sub::Exec { .. } => {
                    (Frame::Err(format!("berth: every app is stopped{what}")), 1)
                }
            };
            if !matches!(&frame, Frame::Out(text) if text.is_empty()) {
                c.server.send(&self.epoll, token, &frame);
            }
            c.server.finish(&self.epoll, token, code);
        }
    }

    /// Tells followers and waiters what the last dispatches changed: log lines to
    /// `logs -f`, answers to `start`/`stop`/`restart` whose goal is reached or missed.
    /// Called once per wake-up of the loop, when every event of it is handled, so
    /// that no passing phase (down for a moment within a restart) is taken for an
    /// outcome.
    pub(in crate::supervisor) fn settle_clients(&mut self, now: u64) {
        let subs = match &mut self.control {
            Some(c) if !c.subs.is_empty() => std::mem::take(&mut c.subs),
            _ => return,
        };
        let mut done: Vec<(u64, String, i32)> = Vec::new();
        for (token, sub) in &subs {
            if let Sub::Wait {
                app,
                goal,
                deadline,
            } = sub
            {
                if let Some((line, code)) = self.outcome(*app, *goal, *deadline <= now) {
                    done.push((*token, line, code));
                }
            }
        }
        // Each followed app's new lines, taken once, to each of its followers; the
        // logs of apps nobody follows stop keeping them.
        let mut gone = Vec::new();
        for app in self.apps.values_mut() {
            let followers: Vec<u64> = subs
                .iter()
                .filter(|(_, s)| matches!(s, Sub::Logs { app: a } if a == app.name()))
                .map(|(t, _)| *t)
                .collect();
            let Some(log) = &mut app.log else {
                continue;
            };
            log.tap(!followers.is_empty());
            let lines = log.take_tapped();
            let Some(c) = &mut self.control else {
                continue;
            };
            for token in followers {
                for line in &lines {
                    if !c.server.send(&self.epoll, token, &Frame::Out(line.clone())) {
                        gone.push(token);
                        break;
                    }
                }
            }
        }
        let Some(c) = &mut self.control else {
            return;
        };
        c.subs = subs;
        for (token, line, code) in done {
            c.subs.retain(|(t, _)| *t != token);
            let frame = if code == 0 {
                Frame::Out(line)
            } else {
                Frame::Err(line)
            };
            c.server.send(&self.epoll, token, &frame);
            c.server.finish(&self.epoll, token, code);
        }
        c.subs.retain(|(t, _)| !gone.contains(t));
    }

    /// Whether a `start`/`stop`/`restart` of `id` is answered now: the line and exit
    /// status. `late`: its time is up.
    fn outcome(&self, id: AppId, goal: Goal, late: bool) -> Option<(String, i32)> {
        let Some(app) = self.apps.get(&id) else {
            return Some(("the app is gone (its manifest was removed)".to_owned(), 1));
        };
        let name = app.name();
        let last = || {
            app.stats
                .exits
                .back()
                .map_or(String::new(), |(_, why)| format!(": {why}"))
        };
        let phase = &app.life.phase;
        match (goal, phase) {
            (Goal::Down, _) if !app.life.is_up() => Some((format!("{name}: stopped"), 0)),
            (Goal::Down, _) if late => Some((
                format!("{name}: still {} after its stop timeout", phase.name()),
                1,
            )),
            (Goal::Up { not }, Phase::Running { run, .. }) if Some(run.pid) != not => {
                Some((format!("{name}: running (pid {})", run.pid), 0))
            }
            (Goal::Up { .. }, Phase::Failed { reasons }) => Some((
                format!(
                    "{name}: failed: {}",
                    reasons.last().map_or("", String::as_str)
                ),
                1,
            )),
            (Goal::Up { .. }, Phase::Exited { reason }) => Some((
                format!("{name}: {reason}; not restarted (its restart policy)"),
                1,
            )),
            (Goal::Up { .. }, Phase::Backoff { .. }) => Some((
                format!("{name}: did not stay up{}; berth restarts it", last()),
                1,
            )),
            (Goal::Up { .. }, Phase::Stopped) => Some((format!("{name}: stopped meanwhile"), 1)),
            (Goal::Up { .. }, _) if late => Some((
                format!(
                    "{name}: still {} after {}s; berth goes on bringing it up",
                    phase.name(),
                    START_WAIT_MS / 1000
                ),
                1,
            )),
            _ => None,
        }
    }

    /// The earliest time a client's wait runs out (or a client is due to have sent
    /// its request).
    pub(in crate::supervisor) fn control_deadline(&self) -> Option<u64> {
        let c = self.control.as_ref()?;
        let waits = c.subs.iter().filter_map(|(_, s)| match s {
            Sub::Wait { deadline, .. } => Some(*deadline),
            _ => None,
        });
        waits.chain(c.server.next_deadline()).min()
    }

    /// Drops clients whose request is overdue.
    pub(in crate::supervisor) fn expire_clients(&mut self, now: u64) {
        if let Some(c) = &mut self.control {
            c.server.expire(&self.epoll, now);
        }
    }

    /// An `events` line for every follower.
    pub(in crate::supervisor) fn emit(&mut self, change: Change<'_>) {
        let Some(c) = &mut self.control else {
            return;
        };
        if !c.subs.iter().any(|(_, s)| matches!(s, Sub::Events { .. })) {
            return;
        }
        let time = crate::timefmt::format_time(std::time::SystemTime::now());
        let app = (!change.app.is_empty()).then_some(change.app);
        let json = Object::new()
            .str("time", &time)
            .opt_str("app", app)
            .str("event", change.event)
            .opt_num("pid", change.pid.and_then(|p| u64::try_from(p).ok()))
            .opt_str("detail", change.detail.as_deref())
            .end();
        let mut text = match app {
            Some(app) => format!("{time} {app} {}", change.event),
            None => format!("{time} {}", change.event),
        };
        if let Some(pid) = change.pid {
            text.push_str(&format!(" (pid {pid})"));
        }
        if let Some(detail) = &change.detail {
            text.push_str(": ");
            text.push_str(detail);
        }
        let mut gone = Vec::new();
        for (token, sub) in &c.subs {
            if let Sub::Events { json: as_json } = sub {
                let line = if *as_json { json.clone() } else { text.clone() };
                if !c.server.send(&self.epoll, *token, &Frame::Out(line)) {
                    gone.push(*token);
                }
            }
        }
        c.subs.retain(|(t, _)| !gone.contains(t));
    }
}

/// The `events` name of entering `phase`, if it is one worth a line.
pub(in crate::supervisor) fn event_of(phase: &'static str) -> Option<&'static str> {
    Some(match phase {
        "waiting" => "waiting",
        "installing" => "installing",
        "running" => "started",
        "stopping" => "stopping",
        "stopped" => "stopped",
        "backoff" => "restarting",
        "failed" => "failed",
        _ => return None,
    })
}
