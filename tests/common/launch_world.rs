//! The world of a launch test: an installed probe image, a state and a run
//! directory, and helpers to launch manifests over it and read what the probe says.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::TempDir;
use super::probe::{ProbeImage, Variant, probe_image};
use berth::image::store::Store;
use berth::launch::{App, Cgroup, LaunchError, Launcher, NoCgroup, Running};
use berth::manifest::{self, Manifest};
use serde_json::Value;

/// One test's world: an installed probe image, a state and a run directory.
pub struct World {
    pub tmp: TempDir,
    pub image: ProbeImage,
}

impl World {
    pub fn new(tag: &str, variant: Variant) -> World {
        super::require_root("launch needs namespaces, mounts and pivot_root");
        let tmp = TempDir::new(tag);
        let image = probe_image(&tmp, variant);
        World { tmp, image }
    }

    pub fn run_dir(&self) -> PathBuf {
        self.tmp.join("run")
    }

    pub fn launcher(&self) -> Launcher {
        Launcher::new(&self.image.state_dir, &self.run_dir())
            .with_reaper_exe(&super::static_berth::static_berth())
    }

    /// The manifest `name` with `extra` YAML lines, over the probe image.
    pub fn manifest(&self, name: &str, extra: &str) -> Manifest {
        self.manifests(&[(name, extra)]).pop().unwrap()
    }

    /// Several manifests loaded as one set (for references between apps).
    pub fn manifests(&self, apps: &[(&str, &str)]) -> Vec<Manifest> {
        let texts = apps.iter().map(|(name, extra)| {
            let text = format!(
                "name: {name}\nimage: {{ path: probe.tar, sha256: {} }}\n{extra}",
                self.image.digest
            );
            (self.tmp.join(&format!("{name}.yaml")), text)
        });
        let mut loaded = manifest::load_texts(texts);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        let mut sorted = Vec::new();
        for (name, _) in apps {
            let at = loaded
                .apps
                .iter()
                .position(|m| m.name.as_str() == *name)
                .unwrap();
            sorted.push(loaded.apps.remove(at));
        }
        sorted
    }

    pub fn spawn(&self, launcher: &mut Launcher, m: &Manifest) -> Result<Running, LaunchError> {
        self.spawn_with(launcher, m, &mut NoCgroup, None)
    }

    pub fn spawn_with(
        &self,
        launcher: &mut Launcher,
        m: &Manifest,
        cgroup: &mut dyn Cgroup,
        join_net: Option<std::os::fd::BorrowedFd>,
    ) -> Result<Running, LaunchError> {
        let store = Store::open(&self.image.state_dir).unwrap();
        let digest = self.image.digest.parse().unwrap();
        let defaults = store.info(&digest).unwrap().defaults;
        let app = App {
            manifest: m,
            image_root: &self.image.rootfs,
            defaults: &defaults,
            join_net,
            hosts: &[],
        };
        launcher.spawn(&app, cgroup)?.finish()
    }

    /// Launches, reads stdout and stderr to the end, reaps: (exit code, stdout, stderr).
    pub fn run(&self, name: &str, extra: &str) -> (i32, String, String) {
        let m = self.manifest(name, extra);
        let running = self.spawn(&mut self.launcher(), &m).unwrap();
        collect(running)
    }

    /// Launches and expects a failure.
    pub fn fail(&self, name: &str, extra: &str) -> LaunchError {
        let m = self.manifest(name, extra);
        match self.spawn(&mut self.launcher(), &m) {
            Ok(running) => panic!("launched: {:?}", collect(running)),
            Err(e) => e,
        }
    }

    /// Runs the probe's report and parses it.
    pub fn report(&self, name: &str, extra: &str) -> Value {
        let (code, out, err) = self.run(name, extra);
        assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
    }
}

pub fn read_all(fd: OwnedFd) -> String {
    let mut text = String::new();
    fs::File::from(fd).read_to_string(&mut text).unwrap();
    text
}

pub fn collect(running: Running) -> (i32, String, String) {
    let err = std::thread::spawn(move || read_all(running.stderr));
    let out = read_all(running.stdout);
    let err = err.join().unwrap();
    (wait(running.pid), out, err)
}

pub fn wait(pid: i32) -> i32 {
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
    match status {
        nix::sys::wait::WaitStatus::Exited(_, code) => code,
        nix::sys::wait::WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        other => panic!("unexpected {other:?}"),
    }
}

/// A probe app left running (`probe sleep`), killed and reaped on drop.
pub struct Sleeper(pub i32);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.0), None);
    }
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// The mount of `target` in the report: (fstype, options).
pub fn mount<'a>(r: &'a Value, target: &str) -> Option<(&'a str, Vec<&'a str>)> {
    r["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["target"] == target)
        .map(|m| {
            (
                m["fstype"].as_str().unwrap(),
                m["options"].as_str().unwrap().split(',').collect(),
            )
        })
}
