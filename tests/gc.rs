//! `berth gc`, as root: it refuses whenever the manifests cannot all be read (a typo
//! in the configuration must not wipe the store), creates nothing on a machine that
//! never ran berth, lists without removing under `--dry-run`, skips what a running
//! app holds (the holder here is this test process, gc another), and removes the
//! state and run directories of apps no manifest names. Also: a FIFO among the
//! manifests is refused by name, and the other apps still load (`berth check`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::TempDir;

use berth::digest::sha256_reader;
use berth::image::store::Store;
use berth::manifest::types::Digest;

/// berth under `timeout`: a regression that blocks (a FIFO opened) fails the test
/// instead of hanging it.
fn berth(args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env_remove("BERTH_TEST_PANIC")
        .output()
        .expect("timeout (coreutils) runs berth")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A machine: berth.yaml naming `apps/`, `state/` and `run/` in a temp dir, and
/// images installed by `berth unpack`.
struct World {
    d: TempDir,
}

impl World {
    fn new(tag: &str) -> World {
        let d = TempDir::new(tag);
        fs::write(
            d.join("berth.yaml"),
            format!(
                "apps_dir: {}\nstate_dir: {}\nrun_dir: {}\n",
                d.s("apps"),
                d.s("state"),
                d.s("run")
            ),
        )
        .unwrap();
        World { d }
    }

    fn gc(&self, extra: &[&str]) -> (i32, String) {
        let config = self.d.s("berth.yaml");
        let mut args = vec!["gc", "--config", &config];
        args.extend(extra);
        let o = berth(&args);
        (o.status.code().unwrap_or(-1), text(&o.stdout))
    }

    /// Installs a one-file image made from `seed`; its digest.
    fn image(&self, seed: u8) -> String {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(4096);
        b.append_data(&mut h, "data", &[seed; 4096][..]).unwrap();
        let bytes = b.into_inner().unwrap();
        let sha = sha256_reader(&bytes[..]).unwrap().to_string();
        let file = self.d.write(&format!("images/{seed}.tar"), &bytes);
        let o = berth(&[
            "unpack",
            file.to_str().unwrap(),
            "--sha256",
            &sha,
            "--state-dir",
            &self.d.s("state"),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
        sha
    }

    fn manifest(&self, name: &str, sha: &str) {
        self.d.write(
            &format!("apps/{name}.yaml"),
            format!("name: {name}\nimage: {{ path: ../images/x.tar, sha256: {sha} }}\n").as_bytes(),
        );
    }

    fn installed(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.d.join("state/images/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// The state and run directories an app leaves, with a file in each.
    fn app_dirs(&self, name: &str) -> [PathBuf; 2] {
        let dirs = [
            self.d.join(&format!("state/apps/{name}")),
            self.d.join(&format!("run/apps/{name}")),
        ];
        for dir in &dirs {
            fs::create_dir_all(dir.join("upper")).unwrap();
            fs::write(dir.join("upper/file"), "x").unwrap();
        }
        dirs
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn a_missing_apps_directory_is_refused_and_the_store_stays() {
    let w = World::new("gc-missing");
    let a = w.image(1);
    let (code, out) = w.gc(&[]);
    assert_eq!(
        (code, out),
        (
            1,
            format!(
                "berth gc: refusing to collect: the apps directory {} does not exist (every image and app would look unused)\n",
                w.d.s("apps")
            )
        )
    );
    assert_eq!(w.installed(), [a]);
}

#[test]
fn an_unreadable_apps_directory_is_refused() {
    let w = World::new("gc-unreadable");
    let a = w.image(2);
    w.d.write("apps", b"not a directory");
    let (code, out) = w.gc(&[]);
    assert_eq!(
        (code, out),
        (
            1,
            format!(
                "berth gc: refusing to collect: cannot read the apps directory {}: Not a directory (os error 20)\n",
                w.d.s("apps")
            )
        )
    );
    assert_eq!(w.installed(), [a]);
}

#[test]
fn one_manifest_that_does_not_load_is_refused_by_name() {
    let w = World::new("gc-typo");
    let a = w.image(3);
    let b = w.image(4);
    w.manifest("good", &a);
    // A typo: its image must not look unused.
    w.d.write(
        "apps/typo.yaml",
        format!("name: typo\nimage: {{ path: x.tar, sha256: {b} }}\nrestrat: always\n").as_bytes(),
    );
    w.app_dirs("typo");
    let (code, out) = w.gc(&[]);
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with(&format!(
            "{}:3:1: typo: unknown field `restrat`",
            w.d.s("apps/typo.yaml")
        )),
        "{out}"
    );
    assert_eq!(
        lines[1],
        format!(
            "berth gc: refusing to collect: 1 manifest in {} did not load (what it names would look unused)",
            w.d.s("apps")
        )
    );
    assert_eq!(w.installed(), sorted(vec![a, b]));
    assert!(w.d.join("state/apps/typo/upper/file").exists());
}

#[test]
fn a_fifo_manifest_is_named_and_the_others_still_load() {
    let w = World::new("gc-fifo");
    let a = w.image(5);
    w.manifest("web", &a);
    let fifo = w.d.join("apps/blocked.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // berth check: the FIFO is refused unopened (no writer ever comes), web loads.
    let o = berth(&["check", "--config", &w.d.s("berth.yaml")]);
    assert_eq!(
        (o.status.code(), text(&o.stdout)),
        (
            Some(1),
            format!(
                "{}: not a regular file (a FIFO)\n1 app ok, 1 invalid\n",
                fifo.display()
            )
        )
    );
    // berth gc: refuses, naming it.
    let (code, out) = w.gc(&[]);
    assert_eq!(
        (code, out),
        (
            1,
            format!(
                "{}: not a regular file (a FIFO)\nberth gc: refusing to collect: 1 manifest in {} did not load (what it names would look unused)\n",
                fifo.display(),
                w.d.s("apps")
            )
        )
    );
    assert_eq!(w.installed(), [a]);
}

#[test]
fn a_machine_that_never_ran_berth_has_nothing_to_collect() {
    let w = World::new("gc-fresh");
    // No apps directory either: with no state there is nothing to lose.
    let (code, out) = w.gc(&[]);
    assert_eq!(
        (code, out),
        (
            0,
            format!("nothing to collect: {} does not exist\n", w.d.s("state"))
        )
    );
    assert!(!w.d.join("state").exists(), "gc created no state directory");
    // --state-dir is the one looked at.
    fs::create_dir(w.d.join("apps")).unwrap();
    let (code, out) = w.gc(&["--state-dir", &w.d.s("other")]);
    assert_eq!(
        (code, out),
        (
            0,
            format!("nothing to collect: {} does not exist\n", w.d.s("other"))
        )
    );
    assert!(!w.d.join("other").exists());
}

/// A bind mount undone on drop, also when the test fails.
struct Mounted(PathBuf);

impl Mounted {
    fn bind(source: &Path, target: &Path) -> Mounted {
        fs::create_dir_all(target).unwrap();
        let ok = Command::new("mount")
            .arg("--bind")
            .arg(source)
            .arg(target)
            .status()
            .unwrap();
        assert!(ok.success(), "mount --bind (needs root)");
        Mounted(target.to_owned())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn dry_run_lists_then_gc_removes_what_nothing_names_or_holds() {
    let w = World::new("gc-full");
    let named = w.image(10);
    let unused = w.image(11);
    let held = w.image(12);
    w.manifest("web", &named);
    let web = w.app_dirs("web");
    let gone = w.app_dirs("gone");
    let running = w.app_dirs("running");
    let mounted = w.app_dirs("mounted");
    fs::create_dir_all(w.d.join("state/volumes/gone/data")).unwrap();
    // This process holds one image and one app's state, as the supervisor does while
    // an app runs; gc is another process.
    let store = Store::open(&w.d.join("state")).unwrap();
    let image_hold = store.hold(&held.parse::<Digest>().unwrap()).unwrap();
    let app_hold = berth::supervisor::appstate::hold(&w.d.join("state"), "running").unwrap();
    // Something mounted under an app's run directory: gc must not reach into it.
    let _mount = Mounted::bind(&w.d.join("images"), &mounted[1].join("rootfs"));

    let (code, out) = w.gc(&["--dry-run"]);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 9, "{out}");
    assert!(
        lines[0].starts_with(&format!("would remove {unused} (")),
        "{out}"
    );
    assert_eq!(lines[1], format!("kept {held}: held by a running app"));
    assert_eq!(
        lines[2..8],
        [
            format!(
                "would remove {} (app gone: no manifest names it)",
                gone[0].display()
            ),
            format!(
                "would remove {} (app gone: no manifest names it)",
                gone[1].display()
            ),
            format!(
                "kept {} (app mounted): a process has it mounted",
                mounted[0].display()
            ),
            format!(
                "kept {} (app mounted): a process has it mounted",
                mounted[1].display()
            ),
            format!(
                "kept {} (app running): the app is running",
                running[0].display()
            ),
            format!(
                "kept {} (app running): the app is running",
                running[1].display()
            ),
        ]
    );
    let summary = lines[8];
    assert!(
        summary.starts_with("would free ")
            && summary.ends_with(" in 1 image and 2 app directories"),
        "{out}"
    );
    // Nothing removed.
    assert_eq!(
        w.installed(),
        sorted(vec![named.clone(), unused.clone(), held.clone()])
    );
    assert!(gone.iter().all(|d| d.join("upper/file").exists()));

    let (code, out) = w.gc(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with(&format!("removed {unused} (")), "{out}");
    assert!(
        out.contains(&format!(
            "\nremoved {} (app gone: no manifest names it)\n",
            gone[0].display()
        )),
        "{out}"
    );
    assert!(
        out.lines()
            .last()
            .unwrap()
            .ends_with(" in 1 image and 2 app directories"),
        "{out}"
    );
    assert_eq!(w.installed(), sorted(vec![named.clone(), held.clone()]));
    assert!(gone.iter().all(|d| !d.exists()));
    assert!(w.d.join("state/volumes/gone/data").is_dir(), "volumes stay");
    assert!(web.iter().all(|d| d.join("upper/file").exists()));
    assert!(running.iter().all(|d| d.join("upper/file").exists()));
    assert!(mounted[0].join("upper/file").exists());
    assert!(
        w.d.join("images/10.tar").exists(),
        "not reached through the mount"
    );

    // Released (the app stopped): collected at the next run.
    drop(image_hold);
    drop(app_hold);
    let (code, out) = w.gc(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with(&format!("removed {held} (")), "{out}");
    assert_eq!(w.installed(), [named]);
    assert!(running.iter().all(|d| !d.exists()));
}

#[test]
fn a_hold_cannot_be_taken_on_what_is_not_installed() {
    let w = World::new("gc-hold");
    let store = Store::open(&w.d.join("state")).unwrap();
    let digest: Digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        .parse()
        .unwrap();
    assert_eq!(
        store.hold(&digest).unwrap_err().to_string(),
        format!(
            "cannot hold image {}: No such file or directory (os error 2)",
            store.path(&digest).display()
        )
    );
    // A removal waits for no one: a held image is refused at once.
    let sha = w.image(20);
    let digest: Digest = sha.parse().unwrap();
    let hold = store.hold(&digest).unwrap();
    assert_eq!(hold.digest(), &digest);
    assert_eq!(
        store.remove(&digest).unwrap_err().to_string(),
        format!("image {sha} is held by a running app")
    );
    drop(hold);
    assert!(store.remove(&digest).unwrap() > 0);
    assert!(!store.is_installed(&digest));
}
