//! Loading the apps directory (at start and on SIGHUP) and the ordered shutdown: which
//! apps the table is asked to start, stop, restart or forget.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::app::{self, App, AppId};
use super::core::{Supervisor, Todo};
use super::lifecycle::{Event, Phase, Then};
use super::policy;
use crate::manifest::model::{Condition, Dependency};
use crate::manifest::types::NetworkMode;
use crate::manifest::{self, Manifest};

/// What a reload did, for `berth reload`.
#[derive(Debug, Default)]
pub(super) struct Reloaded {
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    pub restarted: Vec<String>,
    /// The problems of the manifests that could not be loaded.
    pub invalid: Vec<String>,
    /// Apps left stopped because `berth stop` stopped them.
    pub held: Vec<String>,
}

impl Reloaded {
    /// A line per kind of change, then each problem.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (what, names) in [
            ("started", &self.started),
            ("stopped", &self.stopped),
            ("restarted", &self.restarted),
            ("left stopped (berth stop)", &self.held),
        ] {
            if !names.is_empty() {
                out.push(format!("{what}: {}", names.join(" ")));
            }
        }
        if out.is_empty() && self.invalid.is_empty() {
            out.push("nothing changed".to_owned());
        }
        for p in &self.invalid {
            out.push(format!("invalid: {p}"));
        }
        out
    }
}

impl Supervisor {
    /// Re-reads the apps directory: starts new apps, stops removed ones, restarts
    /// changed ones, gives a failed app whose manifest was touched a fresh start; a
    /// manifest that is broken now leaves its running app alone. An app stopped with
    /// `berth stop` stays stopped (its definition is updated).
    pub(super) fn reload(&mut self) -> Reloaded {
        let mut done = Reloaded::default();
        self.reserved = self.config.reserved(&self.apps_dir);
        let loaded = manifest::load_with(std::slice::from_ref(&self.apps_dir), &self.reserved);
        for p in &loaded.problems {
            log::error!("{p}");
            done.invalid.push(p.to_string());
        }
        let broken: Vec<PathBuf> = loaded.problems.iter().map(|p| p.file.clone()).collect();
        let mut next: BTreeMap<String, Manifest> = loaded
            .apps
            .into_iter()
            .map(|m| (m.name.as_str().to_owned(), m))
            .collect();
        // Apps whose file is broken now keep their running definition.
        for app in self.apps.values() {
            if !next.contains_key(app.name()) && broken.contains(&app.manifest().file) {
                log::warn!(
                    "{}: its manifest is invalid now; the running version stays",
                    app.name()
                );
                next.insert(app.name().to_owned(), app.manifest().clone());
            }
        }
        let old: Vec<(String, u64)> = self
            .apps
            .values()
            .map(|a| (a.name().to_owned(), a.fingerprint))
            .collect();
        let new: Vec<(String, u64)> = next
            .iter()
            .map(|(n, m)| (n.clone(), app::fingerprint(m)))
            .collect();
        let change = policy::diff(&old, &new);
        let names: Vec<(String, AppId)> = self
            .apps
            .values()
            .map(|a| (a.name().to_owned(), a.id))
            .collect();
        let ids = Ids(names);
        for name in &change.stop {
            if let Some(&id) = ids.get(name) {
                log::info!("{name}: its manifest is gone; stopping it");
                self.stop(id, Then::Remove);
                done.stopped.push(name.clone());
            }
        }
        for name in &change.restart {
            let (Some(&id), Some(m)) = (ids.get(name), next.get(name)) else {
                continue;
            };
            if let Some(app) = self.apps.get_mut(&id) {
                log::info!("{name}: its definition changed; restarting");
                super::sender::warn_if_sharing(m);
                app.fingerprint = app::fingerprint(m);
                app.mtime = app::mtime(m);
                app.life.manifest = m.clone();
                // A new definition starts with a clean slate.
                app.life.history.clear();
                if let Some(log) = &mut app.log {
                    if let Err(e) = log.set_limits(m.logs.max_size.bytes(), m.logs.max_files.get())
                    {
                        log::warn!("{name}: its new logs: settings: {e}");
                    }
                }
            }
            let held = self.apps.get(&id).is_some_and(|a| a.stats.stopped_by_hand);
            if held {
                done.held.push(name.clone());
                self.stop(id, Then::Stay);
            } else {
                done.restarted.push(name.clone());
                self.stop(id, Then::Restart);
            }
        }
        for name in &change.keep {
            let (Some(&id), Some(m)) = (ids.get(name), next.get(name)) else {
                continue;
            };
            let Some(app) = self.apps.get_mut(&id) else {
                continue;
            };
            let touched = app::mtime(m) != app.mtime;
            app.mtime = app::mtime(m);
            match &app.life.phase {
                // Its manifest came back while it was being removed: it stays.
                Phase::Stopping {
                    then: Then::Remove, ..
                } => {
                    log::info!("{name}: its manifest is back; starting it again once stopped");
                    self.stop(id, Then::Restart);
                }
                Phase::Failed { .. } if touched && !app.stats.stopped_by_hand => {
                    log::info!("{name}: its manifest changed; starting it afresh");
                    app.life.history.clear();
                    done.restarted.push(name.clone());
                    self.dispatch(Todo::Start(id));
                }
                _ => {}
            }
        }
        let mut started = Vec::new();
        for name in &change.start {
            if let Some(m) = next.remove(name) {
                super::sender::warn_if_sharing(&m);
                let id = AppId(self.next_id);
                self.next_id += 1;
                let mut app = App::new(id, m);
                if super::appstate::stopped_by_hand(&self.config.state_dir, name) {
                    log::info!(
                        "{name}: stopped by berth stop; it stays stopped until berth start {name}"
                    );
                    app.stats.stopped_by_hand = true;
                    done.held.push(name.clone());
                } else {
                    done.started.push(name.clone());
                    started.push(id);
                }
                self.apps.insert(app);
            }
        }
        // Dependencies first, so that an app finds what it waits for already on its way.
        let graph: Vec<(String, Vec<String>)> = started
            .iter()
            .filter_map(|id| self.apps.get(id))
            .map(|a| {
                let deps = dependencies(a.manifest());
                let deps = deps.iter().map(|d| d.app.as_str().to_owned()).collect();
                (a.name().to_owned(), deps)
            })
            .collect();
        for name in policy::stop_order(&graph).iter().rev() {
            if let Some(id) = self.by_name(name).map(|a| a.id) {
                self.dispatch(Todo::Start(id));
            }
        }
        self.emit(super::control::Change {
            app: "",
            event: "reloaded",
            pid: None,
            detail: Some(done.lines().join("; ")),
        });
        done
    }

    /// Asks the table to stop an app, then do `then`.
    pub(super) fn stop(&mut self, id: AppId, then: Then) {
        let receivable = self.receivable(id);
        self.dispatch(Todo::Event(
            id,
            Event::Stop {
                then,
                why: None,
                receivable,
            },
        ));
    }

    /// Shutdown: stop every app whose dependants are all down.
    pub(super) fn advance_shutdown(&mut self) {
        let graph: Vec<(String, Vec<String>)> = self
            .apps
            .values()
            .map(|a| {
                let deps = dependencies(a.manifest())
                    .iter()
                    .map(|d| d.app.as_str().to_owned())
                    .collect();
                (a.name().to_owned(), deps)
            })
            .collect();
        for name in policy::stop_order(&graph) {
            let Some(app) = self.by_name(&name) else {
                continue;
            };
            let id = app.id;
            match &app.life.phase {
                Phase::Stopping { .. } | Phase::Stopped => continue,
                phase if !app.life.is_up() || matches!(phase, Phase::Installing { .. }) => {
                    self.stop(id, Then::Stay);
                    continue;
                }
                _ => {}
            }
            let dependants_up = graph.iter().any(|(other, deps)| {
                deps.contains(&name) && self.by_name(other).is_some_and(|a| a.life.is_up())
            });
            if !dependants_up {
                self.stop(id, Then::Stay);
            }
        }
    }
}

/// Apps by name, as they were when a reload began.
struct Ids(Vec<(String, AppId)>);

impl Ids {
    fn get(&self, name: &str) -> Option<&AppId> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, id)| id)
    }
}

/// What an app waits for before it starts: its `depends_on`, and the app whose network
/// namespace it joins (`container:`), which must be running.
pub(super) fn dependencies(m: &Manifest) -> Vec<Dependency> {
    let mut deps = m.depends_on.clone();
    if let NetworkMode::Container(owner) = &m.network.mode {
        if !deps.iter().any(|d| d.app == *owner) {
            deps.push(Dependency {
                app: owner.clone(),
                condition: Condition::Started,
            });
        }
    }
    deps
}
