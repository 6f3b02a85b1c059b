//! Issue 16, items 1 and 13: an exec health probe enters exactly the sandbox of the
//! app's own process, and nothing of the image reaches the host-side runner.
//!
//! Each test runs the real `berth run` over the probe image (tests/probe/probe.c) and
//! makes the app's probe program do what an attacker's replacement would: report its
//! privileges, make a device node of the host's disk, or have the runner load a
//! library named in the image's environment. Before the fix the probe kept every
//! capability of the supervisor, with no seccomp filter and no `no_new_privs`, and the
//! runner inherited the app's environment.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::process::Command;

use common::berth_run::Berth;

/// A probe every 500 ms that writes its report into the app's /tmp.
const REPORTING: &str = "healthcheck: { exec: [probe, report-to, /tmp/probe-report], \
                         interval: 500ms, timeout: 400ms }\n";

/// The app's writable layer on the host.
fn upper(b: &Berth, app: &str) -> PathBuf {
    b.image.state_dir.join("apps").join(app).join("upper")
}

/// The pid from berth's "APP: running (pid N)" line.
fn app_pid(b: &mut Berth, app: &str) -> i32 {
    let needle = format!("{app}: running (pid ");
    b.expect_all(&[&needle], 20);
    let line = b.seen.iter().rev().find(|l| l.contains(&needle)).unwrap();
    let (_, rest) = line.split_once("(pid ").unwrap();
    rest.trim_end_matches(')').parse().unwrap()
}

/// A field of `/proc/PID/status`.
fn status_field(pid: i32, field: &str) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_owned()
}

/// The report the app's probe left in its /tmp.
fn probe_report(b: &Berth, app: &str) -> serde_json::Value {
    let path = upper(b, app).join("tmp/probe-report");
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no probe report at {}: {e}", path.display()));
    serde_json::from_str(text.trim()).unwrap()
}

#[test]
fn an_exec_probe_has_exactly_the_apps_ids_capabilities_filter_and_limits() {
    let apps = [
        ("rooted", format!("command: [probe, sleep]\n{REPORTING}")),
        (
            "plain-user",
            format!(
                "command: [probe, sleep]\nuser: \"1000:1000\"\n\
                 capabilities: {{ drop: [ALL], add: [NET_RAW] }}\n{REPORTING}"
            ),
        ),
        (
            "userns",
            format!(
                "command: [probe, sleep]\nnamespaces: [pid, mount, uts, ipc, net, user]\n\
                 user_namespace: {{ uid_map: \"0:200000:65536\", gid_map: \"0:200000:65536\" }}\n\
                 {REPORTING}"
            ),
        ),
    ];
    let refs: Vec<(&str, &str)> = apps.iter().map(|(n, e)| (*n, e.as_str())).collect();
    let mut b = Berth::start("sec-probe-sandbox", &refs);
    let mut pids = Vec::new();
    for (app, _) in &apps {
        pids.push((*app, app_pid(&mut b, app)));
    }
    let healthy: Vec<String> = apps.iter().map(|(a, _)| format!("{a}: healthy")).collect();
    b.expect_all(&healthy.iter().map(String::as_str).collect::<Vec<_>>(), 20);
    for (app, pid) in pids {
        let r = probe_report(&b, app);
        // The app's own process, seen from the host, is the reference.
        for (key, field) in [
            ("cap_inh", "CapInh"),
            ("cap_prm", "CapPrm"),
            ("cap_eff", "CapEff"),
            ("cap_bnd", "CapBnd"),
            ("cap_amb", "CapAmb"),
        ] {
            assert_eq!(r[key], status_field(pid, field), "{app}: {key}");
        }
        assert_eq!(r["no_new_privs"], 1, "{app}");
        assert_eq!(r["seccomp"], 2, "{app}: the filter mode");
        assert_eq!(
            r["rlimit_nofile"],
            serde_json::json!([1024, 4096]),
            "{app}: the app's open-file limit"
        );
        assert_eq!(r["rlimit_core"], serde_json::json!([0, 0]), "{app}");
        let own = fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
        let host = fs::read_link("/proc/self/ns/user").unwrap();
        assert_eq!(own != host, app == "userns", "{app}: user namespace");
        // Its own cgroup namespace, which it shares with the app: its cgroup is `/`.
        let cgroup = r["cgroup"].as_str().unwrap();
        assert!(
            cgroup.lines().all(|l| l.ends_with(":/")),
            "{app}: the probe sees the app's cgroup as its root:\n{cgroup}"
        );
    }
    let ids = |app: &str| {
        let r = probe_report(&b, app);
        (r["uid"].as_i64(), r["gid"].as_i64(), r["groups"].clone())
    };
    assert_eq!(ids("rooted"), (Some(0), Some(0), serde_json::json!([])));
    assert_eq!(
        ids("plain-user"),
        (Some(1000), Some(1000), serde_json::json!([]))
    );
    assert_eq!(ids("userns"), (Some(0), Some(0), serde_json::json!([])));
    // The runs above are the app's, not berth's: its default set, or exactly NET_RAW.
    assert_eq!(probe_report(&b, "rooted")["cap_eff"], "0000000020000420");
    assert_eq!(
        probe_report(&b, "plain-user")["cap_eff"],
        "0000000000002000"
    );
    assert_eq!(b.stop(20), 0);
}

#[test]
fn a_probe_program_the_app_replaced_cannot_reach_the_hosts_disk() {
    // The host's root filesystem's device: what the attack made a node of, then
    // mounted, to write a host file.
    let dev = fs::metadata("/").unwrap().dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let hc = format!(
        "healthcheck: {{ exec: [probe, mknod, /tmp/disk, b, \"{major}\", \"{minor}\", /tmp/mknod-result], \
         interval: 500ms, timeout: 400ms, retries: 1 }}\n"
    );
    let mut b = Berth::start(
        "sec-probe-mknod",
        &[("evil", &format!("command: [probe, sleep]\n{hc}"))],
    );
    b.expect("evil: running", 20);
    // Restarted for it (on_unhealthy: restart), said once it is down.
    b.expect("evil unhealthy: exec ", 20);
    let result = fs::read_to_string(upper(&b, "evil").join("tmp/mknod-result")).unwrap();
    assert_eq!(result, "mknod EPERM", "the probe has no CAP_MKNOD");
    assert_eq!(b.stop(20), 0);
}

/// Builds a shared library whose constructor creates `marker`: what a loader that
/// honours `LD_PRELOAD` runs in every program it starts.
fn marking_library(b: &Berth, marker: &std::path::Path) -> PathBuf {
    let source = b.tmp.join("mark.c");
    fs::write(
        &source,
        format!(
            "#include <fcntl.h>\n#include <unistd.h>\n\
             __attribute__((constructor)) static void mark(void) {{\n\
             int fd = open(\"{}\", O_WRONLY | O_CREAT, 0644); if (fd >= 0) close(fd); }}\n",
            marker.display()
        ),
    )
    .unwrap();
    let library = b.tmp.join("mark.so");
    let out = Command::new("gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&source)
        .output()
        .expect("gcc builds the preload library (.ci/run installs gcc)");
    assert!(
        out.status.success(),
        "gcc -shared failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    library
}

#[test]
fn the_images_environment_never_reaches_the_host_side_runner() {
    // The test's berth is dynamically linked (glibc): its loader would honour
    // LD_PRELOAD, as a board build linked dynamically would.
    let berth = env!("CARGO_BIN_EXE_berth");
    let elf = fs::read(berth).unwrap();
    assert!(
        elf.windows(b"ld-linux".len()).any(|w| w == b"ld-linux"),
        "this test needs a dynamically linked berth to mean anything"
    );
    let mut b = Berth::start("sec-probe-env", &[]);
    let marker = b.tmp.join("preloaded-as-host-root");
    let library = marking_library(&b, &marker);
    // The library exists at the same path inside the app, so the app's own probe
    // command may load it: only a load by the host-side runner is the escape.
    b.write_app(
        "preload",
        &format!(
            "command: [probe, sleep]\nenv: {{ LD_PRELOAD: \"{}\" }}\n{REPORTING}",
            library.display()
        ),
    );
    b.signal(libc::SIGHUP);
    b.expect("preload: healthy", 20);
    assert!(
        !marker.exists(),
        "the runner loaded the image's LD_PRELOAD as the host's root"
    );
    // The command itself still gets the app's whole environment.
    let env = probe_report(&b, "preload")["env"].clone();
    let wanted = format!("LD_PRELOAD={}", library.display());
    assert!(
        env.as_array().unwrap().iter().any(|e| e == wanted.as_str()),
        "{wanted} not in the probe's environment {env}"
    );
    assert_eq!(b.stop(20), 0);
}
