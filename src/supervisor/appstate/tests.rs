//! Unit tests of berth's directory modes at start and of the deletion rule for a
//! removed app's state. No root needed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]
use super::*;
use crate::testdir::TempDir;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

fn config(tmp: &TempDir) -> Config {
    Config {
        state_dir: tmp.0.join("state"),
        run_dir: tmp.0.join("run"),
        log_dir: tmp.0.join("log"),
        apps_dir: tmp.0.join("apps.d"),
        ..Config::default()
    }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().mode() & 0o7777
}

/// An app state directory with a layer, recording `manifest` as its origin.
fn app_state(c: &Config, name: &str, manifest: &Path) -> PathBuf {
    let dir = c.state_dir.join("apps").join(name);
    fs::create_dir_all(dir.join("upper")).unwrap();
    fs::write(dir.join("upper/secret"), "x").unwrap();
    fs::write(dir.join(ORIGIN_FILE), format!("{}\n", manifest.display())).unwrap();
    dir
}

#[test]
fn directories_are_created_closed() {
    let tmp = TempDir::new("appstate", "create");
    let c = config(&tmp);
    prepare(&c).unwrap();
    assert_eq!(mode(&c.state_dir), 0o711);
    assert_eq!(mode(&c.state_dir.join("apps")), 0o711);
    assert_eq!(mode(&c.state_dir.join("volumes")), 0o711);
    assert_eq!(mode(&c.run_dir), 0o711);
    assert_eq!(mode(&c.run_dir.join("apps")), 0o711);
    assert_eq!(mode(&c.log_dir), 0o750);
}

#[test]
fn open_directories_are_narrowed_at_start() {
    let tmp = TempDir::new("appstate", "narrow");
    let c = config(&tmp);
    fs::create_dir_all(c.state_dir.join("apps/web")).unwrap();
    fs::create_dir_all(&c.log_dir).unwrap();
    for dir in [
        c.state_dir.clone(),
        c.state_dir.join("apps"),
        c.state_dir.join("apps/web"),
        c.log_dir.clone(),
    ] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    }
    prepare(&c).unwrap();
    assert_eq!(mode(&c.state_dir), 0o711);
    assert_eq!(mode(&c.state_dir.join("apps")), 0o711);
    assert_eq!(mode(&c.state_dir.join("apps/web")), 0o700);
    assert_eq!(mode(&c.log_dir), 0o750);
}

#[test]
fn state_is_deleted_only_when_its_manifest_file_is_gone() {
    let tmp = TempDir::new("appstate", "gone");
    let c = config(&tmp);
    fs::create_dir_all(&c.apps_dir).unwrap();
    // Gone: deleted, with its run directory; volumes stay.
    let removed = app_state(&c, "old", &c.apps_dir.join("old.yaml"));
    fs::create_dir_all(c.run_dir.join("apps/old/etc")).unwrap();
    fs::create_dir_all(c.state_dir.join("volumes/old-data")).unwrap();
    // Still there, though broken: kept.
    fs::write(c.apps_dir.join("broken.yaml"), "name: [").unwrap();
    let broken = app_state(&c, "broken", &c.apps_dir.join("broken.yaml"));
    // Its directory is missing (an unmounted partition): kept.
    let unmounted = app_state(&c, "elsewhere", &tmp.0.join("unmounted/e.yaml"));
    // No record (an older berth): kept.
    let legacy = c.state_dir.join("apps/legacy/upper");
    fs::create_dir_all(&legacy).unwrap();
    prepare(&c).unwrap();
    assert!(!removed.exists());
    assert!(!c.run_dir.join("apps/old").exists());
    assert!(c.state_dir.join("volumes/old-data").is_dir());
    assert!(broken.join("upper/secret").is_file());
    assert!(unmounted.join("upper/secret").is_file());
    assert!(legacy.is_dir());
}
