//! The probe (`tests/probe/probe.c`): a static C program that reports, as one line of
//! JSON, what a process sees of its world (ids, capabilities, mounts, fds, cgroup,
//! namespaces...), and a berth image that holds it, packed and installed with the real
//! `berth pack` and `berth unpack`.
#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a helper that cannot build its fixture fails the test"
)]

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{TempDir, require_root};

/// The probe's source, next to this crate's tests.
fn probe_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probe/probe.c")
}

/// The static probe binary, compiled once per test process (into a directory of the
/// system's temporary directory named with the process id).
///
/// Panics when gcc cannot build it: gcc and libc6-dev (for the static libc) are
/// needed, and `.ci/run` installs them.
pub fn probe_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(compile).clone()
}

fn compile() -> PathBuf {
    remove_stale_builds();
    let dir = std::env::temp_dir().join(format!("berth-probe-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create the probe's build directory");
    let binary = dir.join("probe");
    let source = probe_source();
    let output = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run gcc to build the probe ({e}): the launch tests need gcc and \
                 libc6-dev (.ci/run installs them)"
            )
        });
    assert!(
        output.status.success(),
        "gcc -static -O2 failed to build {} ({}): the launch tests need gcc and libc6-dev \
         (.ci/run installs them)\n{}",
        source.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    binary
}

/// Removes the build directories of test processes that have exited (a static
/// `OnceLock` is never dropped, so each process leaves its own behind).
fn remove_stale_builds() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("berth-probe-")) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The shape of the probe image's rootfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `/bin/probe`, `/proc /sys /dev /etc /tmp` (tmp 1777), `/etc/passwd` and
    /// `/etc/group` with root (0) and app (1000).
    Plain,
    /// The same without `/bin`: the probe is `/probe`.
    NoBin,
}

impl Variant {
    /// The probe's path inside the image.
    pub fn probe_path(self) -> &'static str {
        match self {
            Variant::Plain => "/bin/probe",
            Variant::NoBin => "/probe",
        }
    }
}

/// A probe image, packed and installed in its own state directory.
#[derive(Debug, Clone)]
pub struct ProbeImage {
    /// The berth state directory the image is installed in (`--state-dir`).
    pub state_dir: PathBuf,
    /// The image's sha256, lowercase hex (as in a manifest's `image.sha256`).
    pub digest: String,
    /// The installed rootfs, as `berth unpack` printed it.
    pub rootfs: PathBuf,
    /// The packed image file (a plain tar; as in a manifest's `image.path`).
    pub image_file: PathBuf,
    /// The probe's path inside the image: `/bin/probe` or `/probe`.
    pub probe: &'static str,
}

/// Builds a rootfs of `variant` under `tmp`, packs it with `berth pack` (entrypoint:
/// the probe with `report`) and installs it with `berth unpack` into a fresh state
/// directory under `tmp`. Each call makes new directories, so one `tmp` can hold
/// several. Needs root (unpack applies the owners 0:0).
pub fn probe_image(tmp: &TempDir, variant: Variant) -> ProbeImage {
    require_root("berth unpack applies the image's owners");
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let rootfs_src = tmp.join(&format!("probe-rootfs-{n}"));
    let image_file = tmp.join(&format!("probe-{n}.tar"));
    let state_dir = tmp.join(&format!("probe-state-{n}"));
    build_rootfs(&rootfs_src, variant);

    let probe = variant.probe_path();
    let output = berth()
        .arg("pack")
        .arg(&rootfs_src)
        .arg("-o")
        .arg(&image_file)
        .args(["--entrypoint", probe, "report"])
        .output()
        .expect("run berth pack");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "berth pack of the probe rootfs failed ({}): {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let digest = stdout.lines().next().unwrap_or_default().trim().to_owned();
    assert!(
        digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "berth pack printed no sha256 first: {stdout:?}"
    );

    let output = berth()
        .arg("unpack")
        .arg(&image_file)
        .args(["--sha256", &digest])
        .arg("--state-dir")
        .arg(&state_dir)
        .output()
        .expect("run berth unpack");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "berth unpack of the probe image failed ({}): {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let rootfs = PathBuf::from(stdout.trim_end_matches('\n'));
    assert!(
        rootfs.join(probe.trim_start_matches('/')).is_file(),
        "the installed rootfs {} has no {probe}",
        rootfs.display()
    );
    ProbeImage {
        state_dir,
        digest,
        rootfs,
        image_file,
        probe,
    }
}

fn berth() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.env_remove("BERTH_TEST_PANIC");
    c
}

fn build_rootfs(root: &Path, variant: Variant) {
    fs::create_dir_all(root).expect("create the probe rootfs");
    for dir in ["proc", "sys", "dev", "etc", "tmp"] {
        fs::create_dir_all(root.join(dir)).expect("create a rootfs directory");
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))
        .expect("chmod 1777 /tmp");
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/:/bin/probe\napp:x:1000:1000:app:/:/bin/probe\n",
    )
    .expect("write /etc/passwd");
    fs::write(root.join("etc/group"), "root:x:0:\napp:x:1000:\n").expect("write /etc/group");
    let target = root.join(variant.probe_path().trim_start_matches('/'));
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).expect("create the probe's directory");
    }
    fs::copy(probe_binary(), &target).expect("copy the probe into the rootfs");
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).expect("chmod the probe");
}
