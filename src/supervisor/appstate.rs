//! berth's directories as the supervisor finds them at start, and the app state that
//! outlives an app.
//!
//! Modes: `STATE_DIR`, its `apps/` and `volumes/`, `RUN_DIR` and its `apps/` are
//! 0711 (other users may pass through, as an app in a user namespace must to mount
//! its layers, but not list or open); `images/` (the store) and each
//! `STATE_DIR/apps/<name>/` are 0700; `LOG_DIR` is 0750. Directories found wider at
//! start are narrowed, each with a warning.
//!
//! A removed app's writable layer (`STATE_DIR/apps/<name>/`: `upper`, `work`) is
//! deleted, so that a later app of the same name does not inherit what it wrote.
//! Volumes are never deleted. Which app is removed is decided by its manifest
//! *file*, recorded in the state directory at each launch (`manifest`): the layer is
//! deleted only when that file no longer exists, while the directory it was in does.
//! A manifest that fails to parse, or that renames its app by a typo, is still there,
//! so its app's layer stays (the product rule: no command deletes what a typo in a
//! config makes it look unused); a missing apps directory (an unmounted partition)
//! deletes nothing. This happens when a removed app has stopped (reload), and at
//! start for the state of apps removed while berth was not running. A layer recorded
//! for another manifest file is emptied when an app launches over it (launch::host).
//!
//! `berth gc` goes further ([`collect_unnamed`]): it deletes the directories of every
//! app that no manifest names, but only once every manifest in the apps directory
//! has loaded (so the names are complete), and never those of a running app (one
//! that [`hold`]s its state directory, or whose directories a mount table names).

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::core::Supervisor;
use crate::config::Config;
use crate::hostfs::{Dir, ensure_dir};
use crate::launch::ORIGIN_FILE;

/// Mode of the directories other users may pass through, not list.
const PASS_THROUGH: u32 = 0o711;
/// Mode of each app's state directory.
const PRIVATE: u32 = 0o700;
/// Mode of the log directory: root and its group (an `adm`-like group may read logs).
const LOGS: u32 = 0o750;

/// Creates berth's directories closed, or narrows them where they are found open
/// to other users (each with a warning line); then deletes the state of apps whose
/// manifest file is gone.
pub fn prepare(config: &Config) -> Result<(), String> {
    let state = &config.state_dir;
    for (dir, mode) in [
        (state.clone(), PASS_THROUGH),
        (state.join("apps"), PASS_THROUGH),
        (state.join("volumes"), PASS_THROUGH),
        (state.join(STOPPED), PRIVATE),
        (config.run_dir.clone(), PASS_THROUGH),
        (config.run_dir.join("apps"), PASS_THROUGH),
        (config.log_dir.clone(), LOGS),
    ] {
        ensure_dir(&dir, mode).map_err(|e| e.to_string())?;
    }
    let apps = Dir::open(&state.join("apps")).map_err(|e| e.to_string())?;
    for name in entries(apps.path()).map_err(|e| e.to_string())? {
        // Narrowed only: the owner is the app's root, set at its launch.
        if let Err(e) = apps.sub(&name, PRIVATE, None) {
            log::warn!("{e}");
        }
        if let Some(file) = gone(&apps, &name) {
            remove(config, &name, &file);
        }
    }
    Ok(())
}

/// `state_dir/stopped/<app>`: an empty file for each app stopped with `berth stop`,
/// which is not started at load or reload, nor after a reboot, until `berth start`.
const STOPPED: &str = "stopped";

/// Whether `app` was stopped with `berth stop` (and not started since).
pub fn stopped_by_hand(state_dir: &Path, app: &str) -> bool {
    Dir::open(&state_dir.join(STOPPED)).is_ok_and(|d| d.exists(app))
}

/// Records (or clears) that `app` was stopped by hand, durably: the directory is
/// synced, so a power cut right after `berth stop` does not start it at the next boot.
pub fn set_stopped_by_hand(state_dir: &Path, app: &str, stopped: bool) -> std::io::Result<()> {
    let dir = ensure_dir(&state_dir.join(STOPPED), PRIVATE)
        .and_then(|_| Dir::open(&state_dir.join(STOPPED)))?;
    match (stopped, dir.exists(app)) {
        (true, false) => drop(dir.open_append(app, 0o600)?),
        (false, true) => dir.remove(app)?,
        _ => return Ok(()),
    }
    std::fs::File::open(dir.path())
        .and_then(|d| d.sync_all())
        .map_err(|e| std::io::Error::new(e.kind(), format!("sync {}: {e}", dir.path().display())))
}

impl Supervisor {
    /// An app is removed (its manifest no longer lists it) and has stopped: it is
    /// forgotten, and its state deleted if its manifest file is gone.
    pub(super) fn forget_state(&self, name: &str, manifest_file: &std::path::Path) {
        match Dir::open(&self.config.state_dir.join("apps")) {
            Ok(apps) => {
                if let Some(file) = gone(&apps, name) {
                    remove(&self.config, name, &file);
                } else {
                    log::info!(
                        "{name}: removed; its writable layer stays, as {} is still there",
                        manifest_file.display()
                    );
                }
            }
            Err(e) => log::warn!("{name}: removed; its writable layer stays: {e}"),
        }
    }
}

/// The manifest file recorded in `apps/<name>/`, if that file is gone and its
/// directory is there.
fn gone(apps: &Dir, name: &str) -> Option<PathBuf> {
    let app = match apps.existing(name) {
        Ok(app) => app?,
        Err(e) => {
            log::warn!("{name}: {e}");
            return None;
        }
    };
    let text = match app.read(ORIGIN_FILE, 64 * 1024) {
        Ok(Some(text)) => text,
        // No record (a state directory of an older berth): kept, and adopted by the
        // next app of that name.
        Ok(None) => return None,
        Err(e) => {
            log::warn!("{name}: {e}");
            return None;
        }
    };
    let file = PathBuf::from(String::from_utf8_lossy(&text).trim_end_matches('\n'));
    let dir_there = file.parent().is_some_and(Path::is_dir);
    // Only a definite "no such file" counts: an error reading the directory does not.
    let file_gone = matches!(file.try_exists(), Ok(false));
    (dir_there && file_gone).then_some(file)
}

/// Deletes the app's state and run directories (never its volumes).
fn remove(config: &Config, name: &str, file: &Path) {
    for dir in [
        config.state_dir.join("apps").join(name),
        config.run_dir.join("apps").join(name),
    ] {
        match fs::remove_dir_all(&dir) {
            Ok(()) => log::info!(
                "{name}: deleted {}: its manifest {} is gone",
                dir.display(),
                file.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log::error!("{name}: cannot delete {}: {e}", dir.display()),
        }
    }
}

/// What can go wrong collecting or holding an app's directories.
#[derive(Debug)]
pub enum AppStateError {
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl fmt::Display for AppStateError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            AppStateError::Io {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for AppStateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AppStateError::Io { source, .. } => Some(source),
        }
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> AppStateError {
    let path = path.to_owned();
    move |source| AppStateError::Io {
        action,
        path,
        source,
    }
}

/// A running app's hold of its state directory ([`hold`]); released on drop or when
/// the process dies.
#[derive(Debug)]
pub struct AppHold {
    _lock: Flock<fs::File>,
}

/// Holds `STATE_DIR/apps/<name>/` (which the launch has made) while the app runs:
/// `berth gc` leaves the state and run directories of a held app alone, whatever the
/// manifests say. A shared flock of the directory, taken without waiting; it fails
/// only while `berth gc` is deleting that directory.
pub fn hold(state_dir: &Path, name: &str) -> Result<AppHold, AppStateError> {
    let dir = state_dir.join("apps").join(name);
    let file = fs::File::open(&dir).map_err(io_err("hold", &dir))?;
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(lock) => Ok(AppHold { _lock: lock }),
        Err((_, errno)) => Err(AppStateError::Io {
            action: "hold",
            path: dir,
            source: errno.into(),
        }),
    }
}

/// The directories of an app that no manifest names, and what `berth gc` did with
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unnamed {
    pub name: String,
    /// Its state and run directories (those that exist).
    pub dirs: Vec<PathBuf>,
    /// Bytes they held.
    pub bytes: u64,
    /// Why they were kept, or `None` if they were removed (with `dry_run`: would be).
    pub kept: Option<&'static str>,
}

/// Removes the state and run directories (`STATE_DIR/apps/<name>`,
/// `RUN_DIR/apps/<name>`; never volumes) of every app not in `named`, unless the
/// app is running: it holds its state directory ([`hold`]), or a process's mount
/// table under `proc` (`/proc`) names one of its directories (its overlay's upper
/// layer, a mount under them). The caller has made sure `named` is complete (every
/// manifest loaded). With `dry_run`, nothing is removed.
pub fn collect_unnamed(
    config: &Config,
    named: &BTreeSet<String>,
    proc: &Path,
    dry_run: bool,
) -> Result<Vec<Unnamed>, AppStateError> {
    let roots = [config.state_dir.join("apps"), config.run_dir.join("apps")];
    let mut names = BTreeSet::new();
    for root in &roots {
        match fs::read_dir(root) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(io_err("read directory", root))?;
                    if let Some(name) = entry.file_name().to_str() {
                        names.insert(name.to_owned());
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("read directory", root)(e)),
        }
    }
    let mounts = mount_tables(proc);
    let mut found = Vec::new();
    for name in names.into_iter().filter(|n| !named.contains(n)) {
        let dirs: Vec<PathBuf> = roots
            .iter()
            .map(|r| r.join(&name))
            .filter(|d| d.symlink_metadata().is_ok_and(|m| m.is_dir()))
            .collect();
        if dirs.is_empty() {
            continue;
        }
        let mut bytes = 0;
        for dir in &dirs {
            bytes += crate::image::store::disk_usage(dir).map_err(|e| AppStateError::Io {
                action: "measure",
                path: dir.clone(),
                source: io::Error::other(e.to_string()),
            })?;
        }
        // Held for as long as the directories are deleted: no launch adopts them
        // half-deleted.
        let state = roots[0].join(&name);
        let lock = match fs::File::open(&state) {
            Ok(file) => match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => Some(lock),
                Err((_, Errno::EWOULDBLOCK)) => {
                    found.push(Unnamed {
                        name,
                        dirs,
                        bytes,
                        kept: Some("the app is running"),
                    });
                    continue;
                }
                Err((_, errno)) => return Err(io_err("lock", &state)(errno.into())),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("open", &state)(e)),
        };
        let mentioned = dirs.iter().any(|d| {
            let needle = format!("{}/", d.display());
            let exact = format!(" {} ", d.display());
            mounts
                .iter()
                .any(|table| table.contains(&needle) || table.contains(&exact))
        });
        if mentioned {
            found.push(Unnamed {
                name,
                dirs,
                bytes,
                kept: Some("a process has it mounted"),
            });
            continue;
        }
        if !dry_run {
            for dir in &dirs {
                fs::remove_dir_all(dir).map_err(io_err("remove", dir))?;
            }
        }
        drop(lock);
        found.push(Unnamed {
            name,
            dirs,
            bytes,
            kept: None,
        });
    }
    Ok(found)
}

/// Every process's mount table under `proc` (`/proc/<pid>/mountinfo`), one per
/// mount namespace seen; a process that vanishes meanwhile is skipped.
fn mount_tables(proc: &Path) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut tables = Vec::new();
    let Ok(entries) = fs::read_dir(proc) else {
        return tables;
    };
    for entry in entries.flatten() {
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        let ns = fs::read_link(entry.path().join("ns/mnt")).ok();
        if ns.as_ref().is_some_and(|ns| !seen.insert(ns.clone())) {
            continue;
        }
        if let Ok(table) = fs::read_to_string(entry.path().join("mountinfo")) {
            tables.push(table);
        }
    }
    tables
}

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        if let Some(name) = entry?.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests;
