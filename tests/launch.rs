//! Launch, on the real kernel, as root: the probe (tests/probe/probe.c) is packed into
//! an image, launched with manifests that exercise every option, and reports what it
//! sees as JSON; each property is asserted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use berth::image::store::Store;
use berth::launch::{App, LaunchError, Launcher, NoCgroup, Running};
use berth::manifest::{self, Manifest};
use common::TempDir;
use common::probe::{ProbeImage, Variant, probe_image};
use serde_json::Value;

/// One test's world: an installed probe image, a state and a run directory.
struct World {
    tmp: TempDir,
    image: ProbeImage,
}

impl World {
    fn new(tag: &str, variant: Variant) -> World {
        common::require_root("launch needs namespaces, mounts and pivot_root");
        let tmp = TempDir::new(tag);
        let image = probe_image(&tmp, variant);
        World { tmp, image }
    }

    fn run_dir(&self) -> PathBuf {
        self.tmp.join("run")
    }

    fn launcher(&self) -> Launcher {
        Launcher::new(&self.image.state_dir, &self.run_dir())
            .with_reaper_exe(env!("CARGO_BIN_EXE_berth").as_ref())
    }

    /// The manifest `name` with `extra` YAML lines, over the probe image.
    fn manifest(&self, name: &str, extra: &str) -> Manifest {
        let text = format!(
            "name: {name}\nimage: {{ path: probe.tar, sha256: {} }}\n{extra}",
            self.image.digest
        );
        let mut loaded = manifest::load_texts([(self.tmp.join(&format!("{name}.yaml")), text)]);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        loaded.apps.pop().unwrap()
    }

    fn spawn(&self, launcher: &mut Launcher, m: &Manifest) -> Result<Running, LaunchError> {
        let store = Store::open(&self.image.state_dir).unwrap();
        let digest = self.image.digest.parse().unwrap();
        let defaults = store.info(&digest).unwrap().defaults;
        let app = App {
            manifest: m,
            image_root: &self.image.rootfs,
            defaults: &defaults,
            join_net: None,
            hosts: &[],
        };
        launcher.spawn(&app, &mut NoCgroup)?.finish()
    }

    /// Launches, reads stdout and stderr to the end, reaps: (exit code, stdout, stderr).
    fn run(&self, name: &str, extra: &str) -> (i32, String, String) {
        let m = self.manifest(name, extra);
        let running = self.spawn(&mut self.launcher(), &m).unwrap();
        collect(running)
    }

    /// Runs the probe's report and parses it.
    fn report(&self, name: &str, extra: &str) -> Value {
        let (code, out, err) = self.run(name, extra);
        assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
    }
}

fn read_all(fd: OwnedFd) -> String {
    let mut text = String::new();
    fs::File::from(fd).read_to_string(&mut text).unwrap();
    text
}

fn collect(running: Running) -> (i32, String, String) {
    let err = std::thread::spawn(move || read_all(running.stderr));
    let out = read_all(running.stdout);
    let err = err.join().unwrap();
    (wait(running.pid), out, err)
}

fn wait(pid: i32) -> i32 {
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
    match status {
        nix::sys::wait::WaitStatus::Exited(_, code) => code,
        nix::sys::wait::WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn default_app_is_isolated() {
    let w = World::new("default", Variant::Plain);
    let r = w.report("plain", "");
    println!("{r:#}");
    assert_eq!(r["pid"], 1);
    assert_eq!(r["ppid"], 0);
    assert_eq!(r["hostname"], "plain");
}

#[test]
fn user_namespace_probe() {
    let w = World::new("userns", Variant::Plain);
    let r = w.report(
        "userns",
        "namespaces: [pid, mount, uts, ipc, net, user]\nuser_namespace: { uid_map: \"0:100000:65536\", gid_map: \"0:100000:65536\" }\n",
    );
    println!("{r:#}");
}
