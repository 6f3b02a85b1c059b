//! A static berth binary for the tests that exec it inside a container (the
//! `init: true` reaper): the test binary and `target/debug/berth` are linked against
//! the host's glibc, whose loader an app's root filesystem does not have.
#![allow(clippy::panic, reason = "test code: a missing fixture fails the test")]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The musl target of this machine's architecture.
const TARGET: &str = if cfg!(target_arch = "aarch64") {
    "aarch64-unknown-linux-musl"
} else {
    "x86_64-unknown-linux-musl"
};

/// Builds (once per test process) and returns a statically linked berth, in its own
/// target directory so it never waits on or invalidates the main build.
pub fn static_berth() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(build).clone()
}

fn build() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target_dir = root.join("target/static-berth");
    let output = Command::new(option_env!("CARGO").unwrap_or("cargo"))
        .current_dir(&root)
        .args(["build", "--quiet", "--bin", "berth", "--target", TARGET])
        .env("CARGO_TARGET_DIR", &target_dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build a static berth: {e}"));
    assert!(
        output.status.success(),
        "building a static berth for {TARGET} failed (the target is installed with \
         `rustup target add {TARGET}`, which .ci/run does):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    target_dir.join(TARGET).join("debug/berth")
}
