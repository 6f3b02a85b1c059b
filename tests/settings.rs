//! `berth run` honours berth.yaml, as root: each setting through the real supervisor,
//! so that each test fails if the wiring from the settings to the part that uses them
//! is missing (`images:` limits for the installs it makes, `cgroup:` for its cgroups,
//! `bridge:` said to have no effect yet, `logs:` of a changed manifest applied at
//! reload), and the image of a running app is kept from `berth gc` by its hold.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::fs;
use std::process::Command;

use common::berth_run::Berth;

/// Removes the probe image from the test's store, so berth run installs it itself.
fn uninstall(b: &Berth) {
    let dir = b
        .image
        .state_dir
        .join("images/sha256")
        .join(&b.image.digest);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn images_limits_apply_to_the_installs_berth_run_makes() {
    let mut b = Berth::prepare(
        "imglimits",
        &[(
            "small",
            "command: [probe, sleep]\nrestart: { policy: never }\n",
        )],
        "images: { max_size: 4K }\n",
    );
    uninstall(&b);
    b.spawn(&[]);
    let line = b.expect("small could not install its image: ", 20);
    assert!(
        line.contains("image unpacks to more than 4K (images.max_size)"),
        "{line}"
    );
    assert!(line.contains("not restarted (restart: never)"), "{line}");
    assert_eq!(b.stop(20), 0);
}

#[test]
fn an_install_runs_beside_the_loop_and_says_what_it_installed() {
    let mut b = Berth::prepare("imgjob", &[("fresh", "command: [probe, sleep]\n")], "");
    uninstall(&b);
    b.spawn(&[]);
    let installing = b.expect("fresh: installing ", 20);
    assert!(
        installing.ends_with(&b.image.image_file.display().to_string()),
        "{installing}"
    );
    b.expect("fresh: installed ", 20);
    b.expect("fresh: running", 20);
    assert_eq!(b.stop(20), 0);
}

#[test]
fn the_cgroup_setting_picks_the_hierarchy_of_berth_run() {
    // This host is hybrid: berth uses the v1 controllers unless told `cgroup: v2`.
    let mut b = Berth::start_in("cgv2", &[], &[], "cgroup: v2\n");
    let first = b.expect("supervising", 20);
    assert!(first.contains("(cgroup V2"), "{first}");
    assert_eq!(b.stop(20), 0);
    let mut b = Berth::start_in("cgv1", &[], &[], "cgroup: v1\n");
    let first = b.expect("supervising", 20);
    assert!(first.contains("(cgroup V1"), "{first}");
    assert_eq!(b.stop(20), 0);
}

#[test]
fn a_bridge_setting_is_said_to_have_no_effect_yet() {
    let mut b = Berth::start_in(
        "bridge",
        &[],
        &[],
        "bridge: { name: br-apps, subnet: 192.168.7.0/24 }\n",
    );
    b.expect(
        "bridge: is set in the settings, but no app network uses a bridge yet: it has no effect",
        20,
    );
    assert_eq!(b.stop(20), 0);
}

#[test]
fn gc_keeps_the_image_of_a_running_user_namespace_app() {
    // A user-namespace app's overlay names a per-app lower directory, so the store's
    // path is in no mount table: only the supervisor's hold keeps gc away.
    let app = "command: [probe, sleep]\nnamespaces: [pid, mount, uts, ipc, net, user]\n\
               user_namespace: { uid_map: \"0:100000:65536\", gid_map: \"0:100000:65536\" }\n";
    let mut b = Berth::start("gcheld", &[("userns", app)]);
    b.expect("userns: running", 20);
    // The manifest now names another image (not reloaded yet): the running one is
    // named by nothing.
    fs::write(
        b.tmp.join("apps/userns.yaml"),
        format!(
            "name: userns\nimage: {{ path: /nonexistent.tar, sha256: {} }}\n{app}",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        ),
    )
    .unwrap();
    let settings = fs::read_to_string(b.tmp.join("berth.yaml")).unwrap();
    let gc_yaml = b.tmp.write(
        "gc.yaml",
        format!("{settings}apps_dir: {}\n", b.tmp.join("apps").display()).as_bytes(),
    );
    // The store's own view (`--state-dir`: not through the running berth): the image
    // is named by nothing, and kept for the hold of the app that runs it.
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["gc", "--config"])
        .arg(&gc_yaml)
        .arg("--state-dir")
        .arg(&b.image.state_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("kept {}: held by a running app", b.image.digest)),
        "{text}"
    );
    assert!(b.image.rootfs.is_dir());
    // Through the running berth, which knows what it runs: not even a candidate.
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["gc", "--config"])
        .arg(&gc_yaml)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains(&b.image.digest.to_string()), "{text}");
    assert!(b.image.rootfs.is_dir());
    assert_eq!(b.stop(20), 0);
}

#[test]
fn a_reload_applies_changed_logs_settings_to_the_open_log() {
    // 300 lines of 100 bytes: about 30 KB, seven rotations at 4K.
    let chatty = |files: u32| {
        format!(
            "command: [probe, spew, \"300\"]\nrestart: {{ policy: never }}\n\
             logs: {{ max_size: 4K, max_files: {files} }}\n"
        )
    };
    // Its lines on berth's console too: the last one seen is in the log.
    let mut b = Berth::start_in(
        "logreload",
        &[("chatty", &chatty(5))],
        &[],
        "app_logs_to_console: true\n",
    );
    b.expect(" chatty stdout 00000299 ", 20);
    // max_files counts every file: the one written and the rotated ones.
    let files = |b: &Berth| {
        let mut names: Vec<String> = fs::read_dir(b.logs_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("chatty.log"))
            .collect();
        names.sort();
        names
    };
    assert_eq!(files(&b).len(), 5, "{:?}", files(&b));
    b.write_app("chatty", &chatty(2));
    b.signal(libc::SIGHUP);
    b.expect("chatty: its definition changed; restarting", 20);
    b.expect(" chatty stdout 00000299 ", 20);
    assert_eq!(files(&b).len(), 2, "{:?}", files(&b));
    assert_eq!(b.stop(20), 0);
}
