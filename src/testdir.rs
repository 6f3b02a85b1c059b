//! A temporary directory for unit tests, removed on drop (also when the test fails).
#![allow(
    clippy::unwrap_used,
    reason = "test code: a fixture that cannot be made fails the test"
)]

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// `TMP/berth-PREFIX-PID-NAME-N`, made empty.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    /// A fresh directory; `prefix` names the module, `name` the test.
    pub(crate) fn new(prefix: &str, name: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("berth-{prefix}-{}-{name}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
