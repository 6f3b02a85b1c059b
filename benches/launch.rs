//! Launch benchmark driver for `benches/launch-speed`: `cargo bench --bench launch --
//! ROOTFS N` packs ROOTFS into an image, installs it into a temporary state directory,
//! and launches `/bin/true` from it N times one after another through the library
//! (`Launcher::spawn`, `finish`, read stdout/stderr to the end, `waitpid`), each in the
//! default namespaces (pid, mount, uts, ipc, net) with the default seccomp filter and a
//! 64 MiB memory limit in a cgroup of its own (made, joined and removed per launch,
//! as crun and runc do per container). Prints `ns <nanoseconds>` per timed launch on
//! stdout; everything else goes to stderr. Three untimed warm-up launches come first.
//! Arguments starting with `--` (cargo adds `--bench`) are ignored. Runs as root.

use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use berth::cgroup::{self, Manager};
use berth::image::Limits;
use berth::image::layout::Platform;
use berth::image::pack::{self, PackOptions};
use berth::image::store::Store;
use berth::launch::{App, Launcher};
use berth::manifest::{self, Manifest};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

const WARMUP: u32 = 3;

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    berth::console::init(log::LevelFilter::Warn);
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("launch bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (rootfs, n) = match args.as_slice() {
        [rootfs, n] => (
            PathBuf::from(rootfs),
            n.parse::<u32>()
                .map_err(|e| format!("N must be a positive integer, not {n:?}: {e}"))?,
        ),
        _ => return Err("usage: cargo bench --bench launch -- ROOTFS N".into()),
    };

    let work = TempDir::new()?;
    let state_dir = work.0.join("state");
    let run_dir = work.0.join("run");

    // The image: `berth pack` then `berth unpack`, through the library.
    let image_file = work.0.join("bench.tar");
    let digest = pack::pack(&rootfs, &image_file, &PackOptions::default())
        .map_err(|e| format!("pack {}: {e}", rootfs.display()))?;
    let store = Store::open(&state_dir).map_err(|e| format!("open the image store: {e}"))?;
    let installed = store
        .install(
            &image_file,
            &digest,
            &Limits::default(),
            &Platform::current(),
        )
        .map_err(|e| format!("install {}: {e}", image_file.display()))?;
    let image_root = installed.rootfs().to_path_buf();
    let defaults = store
        .info(&digest)
        .map_err(|e| format!("read the image info: {e}"))?
        .defaults;
    eprintln!("image {digest} installed at {}", image_root.display());

    let m = load_manifest(&work.0, &digest.to_string())?;
    let cgroups = Cgroups(
        cgroup::system(&format!("berth-bench-{}", std::process::id()))
            .map_err(|e| format!("cgroups: {e}"))?,
    );
    eprintln!("cgroups under {:?}", cgroups.0.roots());

    let mut launcher = Launcher::new(&state_dir, &run_dir);
    let app = App {
        manifest: &m,
        image_root: &image_root,
        defaults: &defaults,
        join_net: None,
        hosts: &[],
    };
    for i in 0..WARMUP + n {
        let t0 = Instant::now();
        launch_once(&mut launcher, &app, &*cgroups.0)
            .map_err(|e| format!("launch {} of {}: {e}", i + 1, WARMUP + n))?;
        let ns = t0.elapsed().as_nanos();
        if i >= WARMUP {
            println!("ns {ns}");
        }
    }
    Ok(())
}

/// The benchmark's manifest, validated as `berth check` would.
fn load_manifest(dir: &Path, digest: &str) -> Result<Manifest> {
    let text = format!(
        "name: bench\n\
         image: {{ path: bench.tar, sha256: {digest} }}\n\
         command: [/bin/true]\n\
         resources: {{ memory: 64M }}\n"
    );
    let mut loaded = manifest::load_texts([(dir.join("bench.yaml"), text)]);
    if !loaded.problems.is_empty() {
        let problems: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
        return Err(format!("the manifest is invalid: {}", problems.join("; ")));
    }
    loaded
        .apps
        .pop()
        .ok_or_else(|| "the manifest loaded no app".to_owned())
}

/// One whole launch: a fresh cgroup with the memory limit (berth's cgroup module, as
/// the supervisor does it), spawn, exec, output read to the end, reaped with exit
/// status 0, the cgroup removed.
fn launch_once(launcher: &mut Launcher, app: &App, cgroups: &dyn Manager) -> Result<()> {
    let mut group = cgroup::create(cgroups, "bench", &app.manifest.resources)
        .map_err(|e| format!("create the cgroup: {e}"))?;
    let running = launcher
        .spawn(app, &mut *group)
        .and_then(|l| l.finish())
        .map_err(|e| e.to_string());
    let running = match running {
        Ok(r) => r,
        Err(e) => {
            let _ = group.remove();
            return Err(e);
        }
    };
    let mut child = ChildGuard(Some(running.pid));
    let (out, err) =
        drain(running.stdout, running.stderr).map_err(|e| format!("read the app's output: {e}"))?;
    let pid = Pid::from_raw(running.pid);
    child.0 = None;
    let status = waitpid(pid, None).map_err(|e| format!("waitpid {pid}: {e}"))?;
    group.remove().map_err(|e| e.to_string())?;
    match status {
        WaitStatus::Exited(_, 0) => Ok(()),
        other => Err(format!(
            "the app ended with {other:?}; stdout {:?}, stderr {:?}",
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&err)
        )),
    }
}

/// berth's cgroup manager for the run; its root is removed at the end.
struct Cgroups(Box<dyn Manager>);

impl Drop for Cgroups {
    fn drop(&mut self) {
        if let Ok(groups) = self.0.existing() {
            for (_, g) in groups {
                let _ = cgroup::clean(&*g, 2000);
            }
        }
        for root in self.0.roots() {
            if let Err(e) = fs::remove_dir(&root) {
                eprintln!("launch bench: cannot remove {}: {e}", root.display());
            }
        }
    }
}

/// Reads both pipes to end-of-file, whichever has data first (no deadlock on a full
/// pipe).
fn drain(stdout: OwnedFd, stderr: OwnedFd) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut files = [Some(fs::File::from(stdout)), Some(fs::File::from(stderr))];
    let mut bufs = [Vec::new(), Vec::new()];
    let mut chunk = [0u8; 4096];
    loop {
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(2);
        let mut which: Vec<usize> = Vec::with_capacity(2);
        for (i, f) in files.iter().enumerate() {
            if let Some(f) = f {
                fds.push(libc::pollfd {
                    fd: f.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                which.push(i);
            }
        }
        if fds.is_empty() {
            let [out, err] = bufs;
            return Ok((out, err));
        }
        // SAFETY: `fds` is a live, writable array of `fds.len()` pollfd structs.
        let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if ret < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for (pfd, &i) in fds.iter().zip(&which) {
            if pfd.revents == 0 {
                continue;
            }
            let (Some(slot), Some(buf)) = (files.get_mut(i), bufs.get_mut(i)) else {
                continue;
            };
            let Some(file) = slot.as_mut() else {
                continue;
            };
            match file.read(&mut chunk) {
                Ok(0) => *slot = None,
                Ok(got) => buf.extend_from_slice(chunk.get(..got).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Kills and reaps a child that was not waited for (an error path).
struct ChildGuard(Option<i32>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let pid = Pid::from_raw(pid);
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

/// The state and run directories and the image file, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let dir = std::env::temp_dir().join(format!("berth-bench-{}", std::process::id()));
        fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.0) {
            eprintln!("launch bench: cannot remove {}: {e}", self.0.display());
        }
    }
}
