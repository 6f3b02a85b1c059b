//! One supervised app: what the loop keeps about it, beside its lifecycle state.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::logs::AppLog;
use super::policy::{AfterStop, HealthTracker, History, State};
use super::probe::{ExecProbe, HttpResponse};
use crate::cgroup::{Group, OomWatch};
use crate::image::ImageDefaults;
use crate::launch::Launching;
use crate::launch::sandbox::Sandbox;
use crate::manifest::Manifest;

/// A health probe in flight.
pub enum ProbeRun {
    /// `exec`: the probe process (its exit status is the verdict).
    Exec { pid: i32 },
    /// `tcp`: a connecting socket (writable: connected or refused).
    Tcp { fd: OwnedFd, token: u64 },
    /// `http`: a socket, the request once connected, then the response.
    Http {
        fd: OwnedFd,
        token: u64,
        sent: bool,
        response: HttpResponse,
    },
}

pub struct App {
    pub manifest: Manifest,
    /// A fingerprint of the definition, to tell a changed manifest at reload.
    pub fingerprint: u64,
    pub state: State,
    pub history: History,
    pub health: HealthTracker,
    /// The app's process (its pid-namespace init, or the reaper).
    pub pid: Option<i32>,
    pub started_ms: u64,
    pub group: Option<Box<dyn Group>>,
    pub oom: Option<(OomWatch, u64)>,
    pub launching: Option<(Launching, u64)>,
    /// stdout, stderr and their tokens.
    pub pipes: Vec<(OwnedFd, u64, super::logs::Stream)>,
    pub log: Option<AppLog>,
    pub probe: Option<ProbeRun>,
    /// The exec health check of this run, prepared at its first probe.
    pub exec_probe: Option<ExecProbe>,
    /// The sandbox and environment of this run's process, which its exec probes
    /// enter too.
    pub sandbox: Option<(Sandbox, Vec<String>)>,
    /// How many probes failed in a row, for the message.
    pub last_probe_error: String,
    pub image_root: PathBuf,
    pub defaults: ImageDefaults,
    /// What to do once a stop completes.
    pub after_stop: AfterStop,
    /// Why it is being stopped (for the restart message), if not by hand.
    pub stop_reason: Option<String>,
}

impl App {
    pub fn new(manifest: Manifest) -> App {
        App {
            fingerprint: fingerprint(&manifest),
            manifest,
            state: State::Stopped,
            history: History::default(),
            health: HealthTracker::default(),
            pid: None,
            started_ms: 0,
            group: None,
            oom: None,
            launching: None,
            pipes: Vec::new(),
            log: None,
            probe: None,
            exec_probe: None,
            sandbox: None,
            last_probe_error: String::new(),
            image_root: PathBuf::new(),
            defaults: ImageDefaults::default(),
            after_stop: AfterStop::Stay,
            stop_reason: None,
        }
    }

    pub fn name(&self) -> &str {
        self.manifest.name.as_str()
    }

    /// Whether a process of the app is alive (or about to be).
    pub fn is_up(&self) -> bool {
        self.pid.is_some() || self.launching.is_some()
    }
}

/// A fingerprint of a manifest's whole definition (every field, the image digest
/// included), stable within one run of berth.
pub fn fingerprint(m: &Manifest) -> u64 {
    let mut h = DefaultHasher::new();
    format!("{m:?}").hash(&mut h);
    h.finish()
}
