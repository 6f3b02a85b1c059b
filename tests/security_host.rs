//! Issue 16, host side: each attack performed for real through `berth run` and
//! `berth check`, with the exact outcome asserted.
//! - 5: berth's directories are closed to other users, also when found open;
//! - 10: the image's /etc/passwd is read only as a small regular file inside the image;
//! - 15: links planted in the log and run directories are not written through, and
//!   bind sources into /proc, /sys or berth's own directories are refused;
//! - 18: a removed app's writable layer is deleted, its volume kept;
//! - 19: a uid_map over the host's root is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _, symlink};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Output};

use common::TempDir;
use common::berth_run::Berth;

fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o7777
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// `sh -c script` as the host's `nobody`.
fn as_nobody(script: &str) -> Output {
    Command::new("/bin/sh")
        .args(["-c", script])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap()
}

fn berth_check(config: &Path, paths: &[&Path]) -> (String, Option<i32>) {
    let o = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("check")
        .arg("--config")
        .arg(config)
        .args(paths)
        .env_remove("BERTH_TEST_PANIC")
        .output()
        .unwrap();
    (String::from_utf8(o.stdout).unwrap(), o.status.code())
}

#[test]
fn berths_directories_are_closed_and_narrowed_when_found_open() {
    let mut b = Berth::prepare("modes", &[("web", "command: [probe, sleep]\n")], "");
    let state = b.image.state_dir.clone();
    let run = b.tmp.join("run");
    let logs = b.logs_dir();
    // As an older berth left them: open to everyone.
    fs::create_dir_all(state.join("apps/web/upper")).unwrap();
    fs::create_dir_all(run.join("apps")).unwrap();
    fs::create_dir_all(&logs).unwrap();
    for dir in [
        state.clone(),
        state.join("images"),
        state.join("images/sha256"),
        state.join("apps"),
        state.join("apps/web"),
        run.clone(),
        run.join("apps"),
        logs.clone(),
    ] {
        chmod(&dir, 0o755);
    }
    b.spawn(&[]);
    b.expect(
        &format!(
            "{} was mode 0755, open to other users; it is 0711 now",
            state.display()
        ),
        20,
    );
    b.expect("web: running (pid ", 20);
    for (dir, want) in [
        (state.clone(), 0o711),
        (state.join("images"), 0o700),
        (state.join("images/sha256"), 0o700),
        (state.join("apps"), 0o711),
        (state.join("apps/web"), 0o700),
        (state.join("volumes"), 0o711),
        (run.clone(), 0o711),
        (run.join("apps"), 0o711),
        (run.join("apps/web"), 0o711),
        (logs.clone(), 0o750),
    ] {
        assert_eq!(mode(&dir), want, "{}", dir.display());
    }
    assert!(
        b.seen.iter().any(|l| l.contains(&format!(
            "{} was mode 0755, open to other users; it is 0700 now",
            state.join("apps/web").display()
        ))),
        "{:#?}",
        b.seen
    );
    // The attacks of the issue, as the host's nobody: write into an image's world-
    // writable /tmp, reach what an app wrote.
    let tmp_of_image = b.image.rootfs.join("tmp");
    assert_eq!(mode(&tmp_of_image), 0o1777);
    let o = as_nobody(&format!("touch {}/planted", tmp_of_image.display()));
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
        "{o:?}"
    );
    let o = as_nobody(&format!("ls {}/apps/web/upper", state.display()));
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
        "{o:?}"
    );
    assert_eq!(b.stop(20), 0);
}

#[test]
fn a_link_planted_in_the_log_directory_is_not_written_through() {
    let mut b = Berth::prepare("loglink", &[("web", "command: [probe, sleep]\n")], "");
    let victim = b.tmp.write("victim", b"host file\n");
    let logs = b.logs_dir();
    fs::create_dir_all(&logs).unwrap();
    symlink(&victim, logs.join("web.log")).unwrap();
    b.spawn(&[]);
    b.expect(
        &format!(
            "web could not start: log in {l}: open {l}/web.log: it is a symbolic link, and berth does not follow links here",
            l = logs.display()
        ),
        20,
    );
    assert_eq!(fs::read_to_string(&victim).unwrap(), "host file\n");
    assert_eq!(b.stop(20), 0);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "host file\n");
}

#[test]
fn rotation_replaces_planted_links_without_following_them() {
    let mut b = Berth::prepare(
        "rotlink",
        &[(
            "chatty",
            "command: [probe, spew, \"2000\"]\nrestart: { policy: never }\nlogs: { max_size: 10K, max_files: 3 }\n",
        )],
        "",
    );
    let logs = b.logs_dir();
    fs::create_dir_all(&logs).unwrap();
    let mut victims = Vec::new();
    // At the names of the old naming (renamed into the sequence at open) and of the
    // sequence itself.
    for (n, name) in ["1", "2", "3", "000001", "000002", "000003"]
        .iter()
        .enumerate()
    {
        let victim = b.tmp.write(&format!("victim{n}"), b"host file\n");
        symlink(&victim, logs.join(format!("chatty.log.{name}"))).unwrap();
        victims.push(victim);
    }
    b.spawn(&[]);
    b.expect("chatty exited with status 0", 20);
    assert_eq!(b.stop(20), 0);
    for victim in &victims {
        assert_eq!(fs::read_to_string(victim).unwrap(), "host file\n");
    }
    let mut names: Vec<String> = fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(names[0], "chatty.log");
    for n in &names {
        let meta = fs::symlink_metadata(logs.join(n)).unwrap();
        assert!(meta.file_type().is_file(), "{n} is not a regular file");
    }
}

#[test]
fn a_link_planted_in_the_run_directory_is_not_written_through() {
    let mut b = Berth::prepare(
        "runlink",
        &[(
            "web",
            "command: [probe, sleep]\nrestart: { policy: never }\n",
        )],
        "",
    );
    let victim = b.tmp.write("victim", b"host file\n");
    let etc = b.tmp.join("run/apps/web/etc");
    fs::create_dir_all(&etc).unwrap();
    symlink(&victim, etc.join("hosts")).unwrap();
    b.spawn(&[]);
    b.expect(
        &format!(
            "web could not start: launch failed: write the app's /etc files: write {}/hosts: it is a symbolic link, not a regular file",
            etc.display()
        ),
        20,
    );
    assert_eq!(b.stop(20), 0);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "host file\n");
}

#[test]
fn bind_sources_into_proc_sys_and_berths_directories_are_refused() {
    let mut b = Berth::prepare("binds", &[], "");
    let run = b.tmp.join("run");
    let shared = run.join("shared");
    fs::create_dir_all(&shared).unwrap();
    let bind = |source: &str, extra: &str| {
        format!(
            "command: [probe, sleep]\nmounts:\n  - {{ type: bind, source: {source}, target: /host{extra} }}\n"
        )
    };
    b.write_app("root", &bind("/proc/self/root", ""));
    b.write_app("sys", &bind("/sys", ""));
    b.write_app("run", &bind(&shared.display().to_string(), ""));
    b.write_app(
        "optin",
        &bind(&shared.display().to_string(), ", allow_system_path: true"),
    );
    let apps = b.tmp.join("apps");
    let problem = |app: &str, source: &str, resolved: &str, what: &str| {
        format!(
            "{}/{app}.yaml:5:27: {app}: bind mount source {source}{resolved} overlaps {what}: an app given it could reach the host or berth's own files; bind another directory, or set allow_system_path: true on this mount",
            apps.display()
        )
    };
    let refused = [
        problem("root", "/proc/self/root", " (which is /)", "/proc"),
        problem(
            "run",
            &shared.display().to_string(),
            "",
            &format!("berth's run directory {}", run.display()),
        ),
        problem("sys", "/sys", "", "/sys"),
    ];
    let (out, code) = berth_check(&b.tmp.join("berth.yaml"), &[&apps]);
    assert_eq!(
        out,
        format!("{}\n1 app ok, 3 invalid\n", refused.join("\n"))
    );
    assert_eq!(code, Some(1));
    b.spawn(&[]);
    b.expect("optin: running (pid ", 20);
    b.expect_all(&[&refused[0], &refused[1], &refused[2]], 20);
    assert_eq!(b.stop(20), 0);
    for app in ["root", "sys", "run"] {
        assert!(
            !b.seen
                .iter()
                .any(|l| l.contains(&format!("{app}: running"))),
            "{app} ran: {:#?}",
            b.seen
        );
    }
}

#[test]
fn a_removed_apps_writable_layer_is_deleted_and_its_volume_kept() {
    let app = |command: &str| {
        format!(
            "command: [probe, {command}]\nrestart: {{ policy: never }}\nmounts: [{{ type: volume, name: data, target: /data }}]\n"
        )
    };
    let mut b = Berth::prepare(
        "removed",
        &[
            ("gone", &app("write, /secret, s3cret")),
            ("typo", &app("write, /secret, kept")),
        ],
        "",
    );
    let state = b.image.state_dir.clone();
    b.spawn(&[]);
    b.expect_all(
        &["gone exited with status 0", "typo exited with status 0"],
        20,
    );
    let upper = state.join("apps/gone/upper");
    assert_eq!(fs::read_to_string(upper.join("secret")).unwrap(), "s3cret");
    fs::write(state.join("volumes/data/kept"), "volume").unwrap();
    // `gone` is removed; `typo` is broken by a typo, which must not count as removed.
    fs::remove_file(b.tmp.join("apps/gone.yaml")).unwrap();
    fs::write(b.tmp.join("apps/typo.yaml"), "name: typo\nimage: [").unwrap();
    b.signal(libc::SIGHUP);
    b.expect(
        &format!(
            "gone: deleted {}: its manifest {} is gone",
            state.join("apps/gone").display(),
            b.tmp.join("apps/gone.yaml").display()
        ),
        20,
    );
    assert!(!state.join("apps/gone").exists());
    assert_eq!(
        fs::read_to_string(state.join("volumes/data/kept")).unwrap(),
        "volume"
    );
    assert_eq!(
        fs::read_to_string(state.join("apps/typo/upper/secret")).unwrap(),
        "kept"
    );
    // A new app of the same name does not find the old one's file.
    b.write_app("gone", &app("cat, /secret"));
    b.signal(libc::SIGHUP);
    b.expect("gone exited with status", 20);
    assert_eq!(b.stop(20), 0);
    let log = b.log("gone");
    assert!(!log.contains("s3cret"), "{log}");
    assert!(
        log.contains("probe cat: /secret: ENOENT: No such file or directory"),
        "{log}"
    );
}

#[test]
fn a_uid_map_over_the_hosts_root_is_refused_unless_allowed() {
    let tmp = TempDir::new("hostroot");
    let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let head = |name: &str| format!("name: {name}\nimage: {{ path: a.tar, sha256: {sha} }}\n");
    let userns = "namespaces: [pid, mount, uts, ipc, net, user]\nuser_namespace:\n  uid_map: \"0:0:65536\"\n  gid_map: \"0:100000:65536\"\n";
    tmp.write("apps/root.yaml", (head("root") + userns).as_bytes());
    tmp.write(
        "apps/allowed.yaml",
        (head("allowed") + userns + "  allow_host_root: true\n").as_bytes(),
    );
    let config = tmp.write(
        "berth.yaml",
        format!(
            "state_dir: {s}\nrun_dir: {s}/run\nlog_dir: {s}/log\n",
            s = tmp.path().display()
        )
        .as_bytes(),
    );
    let (out, code) = berth_check(&config, &[&tmp.join("apps")]);
    assert_eq!(
        out,
        format!(
            "{}/apps/root.yaml:5:12: root: user_namespace.uid_map maps host id 0 (the host's root) to 0 in the app: map a range of unused host ids (e.g. 0:100000:65536), or set user_namespace.allow_host_root: true if the app must own the host's files\n1 app ok, 1 invalid\n",
            tmp.path().display()
        )
    );
    assert_eq!(code, Some(1));
}

/// An image of the probe whose `User` is `app` and whose `/etc/passwd` is made by
/// `passwd` (given the path in the rootfs).
fn image_with_passwd(tmp: &TempDir, tag: &str, passwd: impl Fn(&Path)) -> (String, String) {
    let root = tmp.join(&format!("{tag}-rootfs"));
    for dir in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::copy(common::probe::probe_binary(), root.join("bin/probe")).unwrap();
    fs::write(root.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
    passwd(&root.join("etc/passwd"));
    let file = tmp.join(&format!("{tag}.tar"));
    let o = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("pack")
        .arg(&root)
        .arg("-o")
        .arg(&file)
        .args(["--user", "app", "--entrypoint", "/bin/probe", "sleep"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let sha = String::from_utf8(o.stdout).unwrap();
    (
        file.display().to_string(),
        sha.lines().next().unwrap().to_owned(),
    )
}

/// Makes an image's `/etc/passwd` at the path given.
type MakePasswd = Box<dyn Fn(&Path)>;

#[test]
fn an_images_passwd_must_be_a_small_regular_file_inside_it() {
    // A FIFO gets into an image only with allow_devices, and only `berth unpack`
    // reads that setting: the images are installed with it before berth runs.
    let mut b = Berth::prepare("passwd", &[], "images: { allow_devices: true }\n");
    let host = b.tmp.write(
        "host-passwd",
        b"root:x:0:0::/:/bin/sh\napp:x:0:0::/:/bin/sh\n",
    );
    let cases: [(&str, MakePasswd, &str); 3] = [
        (
            "big",
            Box::new(|p: &Path| {
                fs::File::create(p).unwrap().set_len(2 << 20).unwrap();
            }),
            "/etc/passwd is 2097152 bytes, more than the 1 MiB berth reads",
        ),
        (
            "fifo",
            Box::new(|p: &Path| {
                nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
            }),
            "/etc/passwd is not a regular file",
        ),
        (
            "link",
            Box::new(move |p: &Path| symlink(&host, p).unwrap()),
            "/etc/passwd is reached through a symbolic link",
        ),
    ];
    let mut expected = Vec::new();
    for (tag, make, error) in &cases {
        let (file, sha) = image_with_passwd(&b.tmp, tag, make);
        let o = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["unpack", &file, "--sha256", &sha, "--config"])
            .arg(b.tmp.join("berth.yaml"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        fs::write(
            b.tmp.join(&format!("apps/{tag}.yaml")),
            format!("name: {tag}\nimage: {{ path: {file}, sha256: {sha} }}\nrestart: {{ policy: never }}\n"),
        )
        .unwrap();
        expected.push(format!(
            "{tag} could not start: image user \"app\": {error}"
        ));
    }
    b.spawn(&[]);
    let needles: Vec<&str> = expected.iter().map(String::as_str).collect();
    b.expect_all(&needles, 30);
    assert_eq!(b.stop(20), 0);
}
