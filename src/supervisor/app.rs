//! One supervised app as the loop keeps it: its lifecycle (which owns its process or
//! install job), its log and the output pipes that drain into it, and the small id the
//! loop addresses it by.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::os::fd::OwnedFd;

use super::lifecycle::{Life, Resources};
use super::logs::{AppLog, Stream};
use super::probe::{ExecProbe, SocketProbe};
use crate::cgroup::{Group, OomWatch};
use crate::launch::Launching;
use crate::launch::sandbox::Sandbox;
use crate::manifest::Manifest;

/// An app's id: never reused within one run of berth, so an event for an app that is
/// gone finds nothing rather than another app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppId(pub u32);

/// What an epoll token of an app stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The launch channel (exec'd, or a failure report).
    Channel,
    Output(Stream),
    Oom,
    Probe,
    Install,
}

impl Source {
    fn code(self) -> u64 {
        match self {
            Source::Channel => 1,
            Source::Output(Stream::Stdout) => 2,
            Source::Output(Stream::Stderr) => 3,
            Source::Oom => 4,
            Source::Probe => 5,
            Source::Install => 6,
        }
    }
}

/// The epoll token of an app's descriptor: its id and what the descriptor is, so an
/// event is routed without a table. Tokens below 256 are the loop's own.
pub fn token(id: AppId, source: Source) -> u64 {
    (u64::from(id.0) << 8) | source.code()
}

/// The app and the source a token names, if it names one.
pub fn untoken(token: u64) -> Option<(AppId, Source)> {
    let id = u32::try_from(token >> 8).ok().filter(|&id| id > 0)?;
    let source = match token & 0xff {
        1 => Source::Channel,
        2 => Source::Output(Stream::Stdout),
        3 => Source::Output(Stream::Stderr),
        4 => Source::Oom,
        5 => Source::Probe,
        6 => Source::Install,
        _ => return None,
    };
    Some((AppId(id), source))
}

/// The real resources of the lifecycle.
pub struct Real;

impl Resources for Real {
    type Job = crate::image::install::InstallJob;
    type Run = Run;
}

/// A health probe in flight.
pub enum ProbeRun {
    /// `exec`: the probe process (its exit status is the verdict).
    Exec { pid: i32 },
    /// `tcp` or `http`: the socket and where its exchange is.
    Socket(SocketProbe),
}

/// One launched process of an app and everything that lives as long as it.
pub struct Run {
    pub pid: i32,
    pub group: Box<dyn Group>,
    /// The OOM watch and the cgroup's OOM kill count at launch.
    pub oom: Option<(OomWatch, u64)>,
    /// Until `exec` is confirmed.
    pub launching: Option<Launching>,
    /// The sandbox and environment of the process, which its exec probes enter too
    /// (known once it exec'd).
    pub sandbox: Option<(Sandbox, Vec<String>)>,
    /// The exec health check of this run, prepared at its first probe.
    pub exec_probe: Option<ExecProbe>,
    pub probe: Option<ProbeRun>,
    /// Keeps `berth gc` from removing the image while the app uses it.
    pub hold: crate::image::store::ImageHold,
}

/// An output pipe of the app's process, drained into its log until end-of-file (also
/// after the process ended: what it wrote last is not lost).
pub struct Pipe {
    pub fd: OwnedFd,
    pub stream: Stream,
}

pub struct App {
    pub id: AppId,
    pub life: Life<Real>,
    /// A fingerprint of the definition, to tell a changed manifest at reload.
    pub fingerprint: u64,
    /// The manifest file's modification time at load (a touched file gives a failed
    /// app a fresh start).
    pub mtime: Option<std::time::SystemTime>,
    pub log: Option<AppLog>,
    pub pipes: Vec<Pipe>,
    /// Keeps `berth gc` from its state and run directories (taken at its first launch).
    pub hold: Option<super::appstate::AppHold>,
    pub stats: Stats,
}

/// What `berth status` tells of an app beyond its phase, counted since berth started.
#[derive(Debug, Default)]
pub struct Stats {
    /// Processes launched (the first start and every restart).
    pub starts: u32,
    /// Processes killed by the kernel for memory.
    pub oom_kills: u64,
    /// The last [`EXITS_KEPT`] exits: wall-clock milliseconds and reason, oldest first.
    pub exits: std::collections::VecDeque<(u64, String)>,
    /// Stopped with `berth stop` (persisted in the state directory): not started at
    /// load or reload until `berth start`.
    pub stopped_by_hand: bool,
}

/// Exits kept per app for `berth status APP`.
pub const EXITS_KEPT: usize = 5;

impl Stats {
    pub fn exited(&mut self, reason: &str, oom: bool) {
        if self.exits.len() >= EXITS_KEPT {
            self.exits.pop_front();
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.exits.push_back((now, reason.to_owned()));
        if oom {
            self.oom_kills += 1;
        }
    }
}

impl App {
    pub fn new(id: AppId, manifest: Manifest) -> App {
        App {
            id,
            fingerprint: fingerprint(&manifest),
            mtime: mtime(&manifest),
            life: Life::new(manifest),
            log: None,
            pipes: Vec::new(),
            hold: None,
            stats: Stats::default(),
        }
    }

    pub fn name(&self) -> &str {
        self.life.name()
    }

    pub fn manifest(&self) -> &Manifest {
        &self.life.manifest
    }

    /// The pid of its process, if it has one.
    pub fn pid(&self) -> Option<i32> {
        self.life.run().map(|r| r.pid)
    }
}

/// A fingerprint of a manifest's whole definition (every field, the image digest
/// included), stable within one run of berth.
pub fn fingerprint(m: &Manifest) -> u64 {
    let mut h = DefaultHasher::new();
    format!("{m:?}").hash(&mut h);
    h.finish()
}

/// The modification time of the manifest's file, if it can be read.
pub fn mtime(m: &Manifest) -> Option<std::time::SystemTime> {
    std::fs::metadata(&m.file).and_then(|md| md.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_app_and_source() {
        let sources = [
            Source::Channel,
            Source::Output(Stream::Stdout),
            Source::Output(Stream::Stderr),
            Source::Oom,
            Source::Probe,
            Source::Install,
        ];
        for id in [1, 2, 255, 256, u32::MAX] {
            for s in sources {
                assert_eq!(untoken(token(AppId(id), s)), Some((AppId(id), s)));
            }
        }
        // The loop's own tokens name no app.
        assert_eq!(untoken(0), None);
        assert_eq!(untoken(1), None);
        assert_eq!(untoken(7 << 8), None);
    }
}

/// The apps, by id: a vector in id order (ids only grow, so a new app goes last), found
/// by binary search. A few dozen apps on a board: no tree is needed, and a tree's code
/// for this type would cost the board's binary kilobytes.
#[derive(Default)]
pub struct Apps(Vec<App>);

impl Apps {
    fn index(&self, id: &AppId) -> Result<usize, usize> {
        self.0.binary_search_by_key(id, |a| a.id)
    }

    pub fn get(&self, id: &AppId) -> Option<&App> {
        self.index(id).ok().and_then(|i| self.0.get(i))
    }

    pub fn get_mut(&mut self, id: &AppId) -> Option<&mut App> {
        self.index(id).ok().and_then(|i| self.0.get_mut(i))
    }

    pub fn insert(&mut self, app: App) {
        match self.index(&app.id) {
            Ok(i) => {
                if let Some(slot) = self.0.get_mut(i) {
                    *slot = app;
                }
            }
            Err(i) => self.0.insert(i, app),
        }
    }

    pub fn remove(&mut self, id: &AppId) -> Option<App> {
        self.index(id).ok().map(|i| self.0.remove(i))
    }

    /// In id order (the order they were loaded).
    pub fn values(&self) -> std::slice::Iter<'_, App> {
        self.0.iter()
    }

    pub fn values_mut(&mut self) -> std::slice::IterMut<'_, App> {
        self.0.iter_mut()
    }
}

/// The deadlines of the apps: when, whose, what for. A handful per app; the earliest
/// is found by a scan.
#[derive(Default)]
pub struct Deadlines(Vec<(u64, AppId, super::lifecycle::Due)>);

impl Deadlines {
    /// The earliest (ties: the first armed).
    pub fn first(&self) -> Option<&(u64, AppId, super::lifecycle::Due)> {
        self.0.iter().min_by_key(|(at, _, _)| *at)
    }

    pub fn insert(&mut self, deadline: (u64, AppId, super::lifecycle::Due)) {
        self.0.push(deadline);
    }

    pub fn remove(&mut self, deadline: &(u64, AppId, super::lifecycle::Due)) {
        if let Some(i) = self.0.iter().position(|d| d == deadline) {
            self.0.swap_remove(i);
        }
    }

    pub fn retain(&mut self, keep: impl FnMut(&(u64, AppId, super::lifecycle::Due)) -> bool) {
        self.0.retain(keep);
    }
}
