//! `berth info`, `berth images` and `berth version` on this host: every field is there
//! and says what the host really has (features proved by using them where a test can).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;
use common::TempDir;

use std::fs;
use std::os::unix::net::UnixListener;
use std::process::{Command, Output};

use serde_json::Value;

fn berth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env_remove("BERTH_TEST_PANIC")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn sh(script: &str) -> bool {
    Command::new("sh")
        .args(["-c", script])
        .status()
        .unwrap()
        .success()
}

/// A device's directories (log_dir left missing), an image installed by `berth
/// unpack`, an app that names it and an invalid one. Returns the config and digest.
fn device(d: &TempDir) -> (String, String) {
    d.write("rootfs/bin/app", b"#!/bin/sh\n");
    let image = d.s("app.tar");
    let packed = stdout(&berth(&["pack", &d.s("rootfs"), "-o", &image]));
    let sha = packed.lines().next().unwrap().to_owned();
    let state = d.s("state");
    stdout(&berth(&[
        "unpack",
        &image,
        "--sha256",
        &sha,
        "--state-dir",
        &state,
    ]));
    d.write(
        "apps/web.yaml",
        format!("name: web\nimage: {{ path: ../app.tar, sha256: {sha} }}\n").as_bytes(),
    );
    d.write("apps/bad.yaml", b"name: bad\ncolour: red\n");
    fs::create_dir_all(d.join("run")).unwrap();
    let config = d.write(
        "berth.yaml",
        format!(
            "apps_dir: {}\nstate_dir: {state}\nrun_dir: {}\nlog_dir: {}\n",
            d.s("apps"),
            d.s("run"),
            d.s("logs")
        )
        .as_bytes(),
    );
    (config.to_str().unwrap().to_owned(), sha)
}

#[test]
fn info_says_what_this_host_has() {
    common::require_root("overlayfs and user namespaces are proved by using them");
    let d = TempDir::new("info");
    let (config, _) = device(&d);
    let info: Value =
        serde_json::from_str(&stdout(&berth(&["info", "--json", "--config", &config]))).unwrap();

    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["target"], berth::info::target().as_str());
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(info["kernel"], release.trim());

    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v1 = mountinfo.contains(" - cgroup ");
    let v2 = mountinfo.contains(" - cgroup2 ");
    let mode = match (v1, v2) {
        (true, true) => "hybrid",
        (true, false) => "v1",
        (false, true) => "v2",
        (false, false) => panic!("no cgroup hierarchy mounted"),
    };
    assert_eq!(info["cgroup"], mode);

    // Each feature as the host really has it: overlayfs and user namespaces used,
    // seccomp from this process's status, nf_tables from the kernel's module lists or
    // its configuration, pidfd_open and clone3 by the kernel's version (5.3).
    let f = &info["features"];
    let dir = |name: &str| {
        let path = d.join(name);
        fs::create_dir_all(&path).unwrap();
        path
    };
    let (lower, upper) = (dir("ovl/lower"), dir("ovl/upper"));
    let (work, merged) = (dir("ovl/work"), dir("ovl/merged"));
    let overlay = sh(&format!(
        "mount -t overlay overlay -o lowerdir={},upperdir={},workdir={} {m} && umount {m}",
        lower.display(),
        upper.display(),
        work.display(),
        m = merged.display()
    ));
    assert_eq!(f["overlayfs"], overlay);
    assert_eq!(f["user_namespaces"], sh("unshare --user true"));
    let status = fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(f["seccomp"], status.contains("\nSeccomp:"));
    let nf_tables = sh("test -d /sys/module/nf_tables \
         || grep -qs '^nf_tables ' /proc/modules \
         || grep -qs '/nf_tables.ko' /lib/modules/$(uname -r)/modules.dep /lib/modules/$(uname -r)/modules.builtin \
         || zcat /proc/config.gz 2>/dev/null | grep -qE '^CONFIG_NF_TABLES=(y|m)$' \
         || grep -qsE '^CONFIG_NF_TABLES=(y|m)$' /boot/config-$(uname -r)");
    assert_eq!(f["nf_tables"], nf_tables);
    let mut version = release
        .split(['.', '-'])
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let at_least_5_3 = (version.next().unwrap(), version.next().unwrap()) >= (5, 3);
    assert_eq!(f["pidfd"], at_least_5_3);
    assert_eq!(f["clone3"], at_least_5_3);

    assert_eq!(info["settings"], config.as_str());
    let dirs = &info["directories"];
    for (name, dir, exists) in [
        ("apps_dir", "apps", true),
        ("state_dir", "state", true),
        ("run_dir", "run", true),
        ("log_dir", "logs", false),
    ] {
        assert_eq!(dirs[name]["path"], d.s(dir).as_str(), "{name}");
        assert_eq!(dirs[name]["exists"], exists, "{name}");
    }
    assert_eq!(info["apps"]["valid"], 1);
    assert_eq!(info["apps"]["invalid"], 1);
    assert_eq!(info["images"]["count"], 1);
    assert!(info["images"]["size_bytes"].as_u64().unwrap() > 0, "{info}");
    assert_eq!(info["supervisor"], false);

    // The socket answers: a supervisor is there.
    let _listener = UnixListener::bind(d.join("run/berth.sock")).unwrap();
    let info: Value =
        serde_json::from_str(&stdout(&berth(&["info", "--json", "--config", &config]))).unwrap();
    assert_eq!(info["supervisor"], true);

    // For people: the same facts, one aligned line each.
    let text = stdout(&berth(&["info", "--config", &config]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "berth {} ({})",
            env!("CARGO_PKG_VERSION"),
            berth::info::target()
        )
    );
    assert_eq!(lines[1], format!("kernel      {}", release.trim()));
    assert_eq!(lines[2], format!("cgroup      {mode}"));
    assert!(
        lines.contains(&format!("log_dir     {} (missing)", d.s("logs")).as_str()),
        "{text}"
    );
    assert!(lines.contains(&"apps        1 ok, 1 invalid"), "{text}");
    assert!(
        lines.iter().any(|l| l.starts_with("images      1 image, ")),
        "{text}"
    );
    assert_eq!(lines.last(), Some(&"supervisor  running"));
}

#[test]
fn images_lists_the_store_with_the_apps_using_each_image() {
    let d = TempDir::new("images");
    let (config, sha) = device(&d);
    let listed: Value =
        serde_json::from_str(&stdout(&berth(&["images", "--json", "--config", &config]))).unwrap();
    let images = listed.as_array().unwrap();
    assert_eq!(images.len(), 1, "{listed}");
    let image = &images[0];
    assert_eq!(image["digest"], sha.as_str());
    assert_eq!(image["format"], "rootfs tar");
    assert!(image["size_bytes"].as_u64().unwrap() > 0);
    assert!(image["created"].as_str().unwrap().ends_with('Z'), "{image}");
    assert_eq!(image["apps"], serde_json::json!(["web"]));

    let table = stdout(&berth(&["images", "--config", &config]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[0].starts_with("DIGEST        FORMAT      SIZE"),
        "{table}"
    );
    assert!(
        lines[1].starts_with(&format!("{}  rootfs tar  ", &sha[..12])),
        "{table}"
    );
    assert!(lines[1].ends_with("  web"), "{table}");
    // Another state directory: nothing installed there.
    let empty = d.s("empty");
    let none = stdout(&berth(&[
        "images",
        "--json",
        "--config",
        &config,
        "--state-dir",
        &empty,
    ]));
    assert_eq!(none, "[]\n");
}

#[test]
fn version_names_the_build() {
    let o = berth(&["version"]);
    assert_eq!(
        stdout(&o),
        format!(
            "berth {} ({})\n",
            env!("CARGO_PKG_VERSION"),
            berth::info::target()
        )
    );
}
