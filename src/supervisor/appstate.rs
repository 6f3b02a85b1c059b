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

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

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
