//! The image store through `berth unpack` and `berth gc`, as root: install once and
//! atomically, refuse a wrong digest leaving nothing, survive kill -9 mid-unpack,
//! collect only unreferenced images that nothing has mounted.
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
use std::process::{Command, Output, Stdio};

use common::TempDir;

use berth::digest::sha256_reader;

fn berth() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.env_remove("BERTH_TEST_PANIC");
    c
}

fn run(args: &[&str]) -> Output {
    berth().args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A rootfs tar of `files` regular files of `size` bytes each, plus a directory.
fn rootfs_tar(files: usize, size: usize, seed: u8) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    b.append_data(&mut h, "data/", &[][..]).unwrap();
    for i in 0..files {
        let body: Vec<u8> = (0..size).map(|j| (i + j) as u8 ^ seed).collect();
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(size as u64);
        b.append_data(&mut h, format!("data/f{i:05}"), &body[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

fn write_image(dir: &TempDir, name: &str, bytes: &[u8]) -> (String, String) {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    (
        path.to_str().unwrap().to_owned(),
        sha256_reader(bytes).unwrap().to_string(),
    )
}

fn leftovers(state: &Path) -> Vec<String> {
    let dir = state.join("images/sha256");
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.retain(|n| n.starts_with(".tmp-"));
    names
}

#[test]
fn unpack_installs_once_and_prints_the_rootfs() {
    let d = TempDir::new("once");
    let (image, sha) = write_image(&d, "app.tar", &rootfs_tar(3, 1000, 1));
    let o = run(&[
        "unpack",
        &image,
        "--sha256",
        &sha,
        "--state-dir",
        &d.s("state"),
    ]);
    let rootfs = d.join(&format!("state/images/sha256/{sha}/rootfs"));
    assert_eq!(
        (text(&o.stdout), o.status.code()),
        (format!("{}\n", rootfs.display()), Some(0)),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(fs::read(rootfs.join("data/f00002")).unwrap().len(), 1000);
    let info =
        fs::read_to_string(d.join(&format!("state/images/sha256/{sha}/image.yaml"))).unwrap();
    assert!(info.starts_with("format: \"rootfs tar\"\n"), "{info}");
    // Installed: no work at all, so not even the file is needed any more. (Docker's
    // sha256:HEX is taken as well as the bare digest.)
    fs::remove_file(&image).unwrap();
    let o = run(&[
        "unpack",
        &image,
        "--sha256",
        &format!("sha256:{sha}"),
        "--state-dir",
        &d.s("state"),
    ]);
    assert_eq!(
        (text(&o.stdout), o.status.code()),
        (format!("{}\n", rootfs.display()), Some(0))
    );
    assert!(leftovers(&d.join("state")).is_empty());
}

#[test]
fn a_wrong_digest_installs_nothing() {
    let d = TempDir::new("mismatch");
    let (image, _) = write_image(&d, "gw.tar", &rootfs_tar(2, 100, 2));
    let wrong = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let actual = sha256_reader(&fs::read(&image).unwrap()[..]).unwrap();
    let o = run(&[
        "unpack",
        &image,
        "--sha256",
        wrong,
        "--state-dir",
        &d.s("state"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stdout),
        format!(
            "berth unpack: image digest mismatch for {image}: expected {wrong}, got {actual}\n"
        )
    );
    let store: Vec<_> = fs::read_dir(d.join("state/images/sha256"))
        .unwrap()
        .collect();
    assert!(
        store.is_empty(),
        "nothing installed, no temporary directory left"
    );
    let o = run(&[
        "unpack",
        &image,
        "--sha256",
        "xyz",
        "--state-dir",
        &d.s("state"),
    ]);
    assert_eq!(o.status.code(), Some(2));
}

/// Waits until the child `pid` stops (SIGSTOP) or ends; whether it stopped.
fn wait_stopped(pid: i32) -> bool {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    match waitpid(
        nix::unistd::Pid::from_raw(pid),
        Some(WaitPidFlag::WUNTRACED),
    )
    .unwrap()
    {
        WaitStatus::Stopped(_, nix::sys::signal::Signal::SIGSTOP) => true,
        other => panic!("expected a stop, got {other:?}"),
    }
}

#[test]
fn kill_9_mid_unpack_leaves_nothing_usable_and_the_next_start_cleans_up() {
    let d = TempDir::new("crash");
    let bytes = rootfs_tar(2000, 64 * 1024, 3); // 128 MiB
    let (image, sha) = write_image(&d, "image.tar", &bytes);
    // The test hook stops berth once it has read 64 MiB: mid-unpack, no sleeping.
    let mut child = berth()
        .args([
            "unpack",
            &image,
            "--sha256",
            &sha,
            "--state-dir",
            &d.s("state"),
        ])
        .env(berth::image::unpack::STOP_AT_ENV, (64u64 << 20).to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_stopped(child.id() as i32));
    let state = d.join("state");
    let tmp = state.join("images/sha256").join(&leftovers(&state)[0]);
    assert!(
        fs::read_dir(tmp.join("rootfs/data")).unwrap().count() > 0,
        "stopped mid-extraction"
    );
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );

    assert_eq!(
        leftovers(&state).len(),
        1,
        "the interrupted unpack left its temporary directory"
    );
    assert!(
        !state.join(format!("images/sha256/{sha}")).exists(),
        "no partial image is visible"
    );

    // The next start (any store user) removes the leftover; the unpack then succeeds.
    let o = run(&[
        "unpack",
        &image,
        "--sha256",
        &sha,
        "--state-dir",
        &d.s("state"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert!(leftovers(&state).is_empty());
    let rootfs = state.join(format!("images/sha256/{sha}/rootfs/data"));
    assert_eq!(fs::read_dir(rootfs).unwrap().count(), 2000);
}

/// berth under `timeout`: a regression that blocks (a FIFO opened, /dev/zero read)
/// fails the test instead of hanging it.
fn run_bounded(args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env_remove("BERTH_TEST_PANIC")
        .output()
        .expect("timeout (coreutils) runs berth")
}

#[test]
fn unpack_refuses_a_fifo_and_a_device_at_once() {
    let d = TempDir::new("notregular");
    let fifo = d.join("image.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    for (file, kind) in [
        (fifo.to_str().unwrap(), "a FIFO"),
        ("/dev/zero", "a character device"),
        (d.path().to_str().unwrap(), "a directory"),
    ] {
        let o = run_bounded(&[
            "unpack",
            file,
            "--sha256",
            sha,
            "--state-dir",
            &d.s("state"),
        ]);
        assert_eq!(
            (o.status.code(), text(&o.stdout)),
            (
                Some(1),
                format!(
                    "berth unpack: {file} is not a regular file ({kind})
"
                )
            ),
            "{}",
            text(&o.stderr)
        );
    }
    assert!(leftovers(&d.join("state")).is_empty());
    assert_eq!(
        fs::read_dir(d.join("state/images/sha256")).unwrap().count(),
        0
    );
}

#[test]
fn a_temporary_directory_locked_by_a_live_process_is_not_touched() {
    let d = TempDir::new("locked");
    let busy = d.join("state/images/sha256/.tmp-busy-1");
    fs::create_dir_all(&busy).unwrap();
    let lock = nix::fcntl::Flock::lock(
        fs::File::open(&busy).unwrap(),
        nix::fcntl::FlockArg::LockExclusive,
    )
    .unwrap();
    let (image, sha) = write_image(&d, "a.tar", &rootfs_tar(1, 10, 4));
    assert_eq!(
        run(&[
            "unpack",
            &image,
            "--sha256",
            &sha,
            "--state-dir",
            &d.s("state")
        ])
        .status
        .code(),
        Some(0)
    );
    assert!(busy.is_dir(), "held by this process: another berth at work");
    drop(lock);
    let (image, sha) = write_image(&d, "b.tar", &rootfs_tar(1, 10, 5));
    assert_eq!(
        run(&[
            "unpack",
            &image,
            "--sha256",
            &sha,
            "--state-dir",
            &d.s("state")
        ])
        .status
        .code(),
        Some(0)
    );
    assert!(!busy.exists(), "unlocked: a leftover, removed");
}

/// A bind mount undone on drop, also when the test fails.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn gc_removes_only_unreferenced_images_that_nothing_mounts() {
    let d = TempDir::new("gc");
    let images: Vec<(String, String)> = (0..3)
        .map(|i| write_image(&d, &format!("{i}.tar"), &rootfs_tar(4, 4096, 10 + i as u8)))
        .collect();
    for (image, sha) in &images {
        assert_eq!(
            run(&[
                "unpack",
                image,
                "--sha256",
                sha,
                "--state-dir",
                &d.s("state")
            ])
            .status
            .code(),
            Some(0)
        );
    }
    // Image 0 is named by a manifest; image 1 is mounted, as a running app's rootfs
    // would be; image 2 is neither.
    fs::create_dir_all(d.join("apps")).unwrap();
    fs::write(
        d.join("apps/keep.yaml"),
        format!(
            "name: keep\nimage: {{ path: ../0.tar, sha256: {} }}\n",
            images[0].1
        ),
    )
    .unwrap();
    fs::write(
        d.join("berth.yaml"),
        format!("apps_dir: {}\nstate_dir: {}\n", d.s("apps"), d.s("state")),
    )
    .unwrap();
    let target = d.join("mnt");
    fs::create_dir_all(&target).unwrap();
    let rootfs1 = d.join(&format!("state/images/sha256/{}/rootfs", images[1].1));
    let ok = Command::new("mount")
        .arg("--bind")
        .arg(&rootfs1)
        .arg(&target)
        .status()
        .unwrap();
    assert!(ok.success(), "mount --bind (needs root)");
    let mounted = Mounted(target);

    let o = run(&["gc", "--config", &d.s("berth.yaml")]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with(&format!("removed {} (", images[2].1)),
        "{out}"
    );
    assert!(
        lines[1].starts_with("freed ") && lines[1].ends_with(" in 1 image"),
        "{out}"
    );
    let store = d.join("state/images/sha256");
    assert!(store.join(&images[0].1).is_dir() && store.join(&images[1].1).is_dir());
    assert!(!store.join(&images[2].1).exists());
    assert!(leftovers(&d.join("state")).is_empty());

    drop(mounted);
    let o = run(&["gc", "--config", &d.s("berth.yaml")]);
    assert!(
        text(&o.stdout).starts_with(&format!("removed {} (", images[1].1)),
        "{}",
        text(&o.stdout)
    );
    assert!(store.join(&images[0].1).is_dir());
}

// The install job: berth's own unpack in a child process, reporting on a pipe.

use berth::image::Limits;
use berth::image::install::{Done, InstallJob, Progress, Report};
use berth::image::layout::Platform;
use berth::image::store::Store;
use berth::manifest::types::Digest;

/// Starts a job installing `file` into the store under `state`, by `exe`.
fn spawn_job(exe: &Path, state: &Path, file: &str, sha: &str) -> InstallJob {
    let store = Store::open(state).unwrap();
    let digest: Digest = sha.parse().unwrap();
    InstallJob::spawn(
        exe,
        &store,
        Path::new(file),
        &digest,
        &Limits::default(),
        &Platform::current(),
    )
    .unwrap()
}

/// Reads reports until the child closes the pipe (waiting in poll, as the loop does
/// in epoll), then reaps it as the supervisor would: the reports and the result.
fn run_job(mut job: InstallJob) -> (Vec<Report>, Result<Done, berth::image::ImageError>) {
    use std::os::fd::AsRawFd as _;
    let mut reports = Vec::new();
    while !job.at_eof() {
        let mut fds = [libc::pollfd {
            fd: job.fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: `fds` is a valid array of one pollfd for the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, 60_000) };
        assert_eq!(n, 1, "no report within a minute");
        reports.extend(job.read_reports());
    }
    let status = reap(job.pid());
    (reports, job.finish(status))
}

/// waitpid(pid, 0) as a raw wait status.
fn reap(pid: i32) -> i32 {
    use nix::sys::wait::{WaitStatus, waitpid};
    match waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap() {
        WaitStatus::Exited(_, code) => code << 8,
        WaitStatus::Signaled(_, sig, _) => sig as i32,
        other => panic!("{other:?}"),
    }
}

fn berth_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

#[test]
fn a_job_installs_and_reports_its_progress() {
    let d = TempDir::new("job");
    let bytes = rootfs_tar(200, 64 * 1024, 30);
    let (image, sha) = write_image(&d, "app.tar", &bytes);
    let state = d.join("state");
    let started = std::time::Instant::now();
    let (reports, result) = run_job(spawn_job(berth_exe(), &state, &image, &sha));
    let elapsed = started.elapsed().as_secs();
    let total = bytes.len() as u64;
    let progress: Vec<Progress> = reports
        .iter()
        .filter_map(|r| match r {
            Report::Progress(p) => Some(*p),
            Report::Finished => None,
        })
        .collect();
    // At most one a second, and one at the end: all of the file.
    assert!(
        !progress.is_empty() && progress.len() as u64 <= elapsed + 2,
        "{progress:?}"
    );
    assert!(progress.windows(2).all(|w| w[0].read <= w[1].read));
    assert!(progress.iter().all(|p| p.total == total));
    assert_eq!(*progress.last().unwrap(), Progress { read: total, total });
    assert_eq!(reports.last(), Some(&Report::Finished));
    let store = Store::open(&state).unwrap();
    let digest: Digest = sha.parse().unwrap();
    assert_eq!(
        result.unwrap(),
        Done::Installed {
            format: "rootfs tar".into()
        }
    );
    assert!(store.is_installed(&digest));
    assert_eq!(store.info(&digest).unwrap().format, "rootfs tar");
    assert_eq!(
        fs::read_dir(store.rootfs(&digest).join("data"))
            .unwrap()
            .count(),
        200
    );
    assert!(leftovers(&state).is_empty());
}

#[test]
fn a_job_gives_the_exact_errors_and_installs_nothing() {
    let d = TempDir::new("job-errors");
    let (image, _) = write_image(&d, "gw.tar", &rootfs_tar(2, 100, 31));
    let actual = sha256_reader(&fs::read(&image).unwrap()[..]).unwrap();
    let wrong = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let fifo = d.join("image.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let state = d.join("state");
    for (file, expected) in [
        (
            image.as_str(),
            format!("image digest mismatch for {image}: expected {wrong}, got {actual}"),
        ),
        (
            fifo.to_str().unwrap(),
            format!("{} is not a regular file (a FIFO)", fifo.display()),
        ),
        (
            "/dev/zero",
            "/dev/zero is not a regular file (a character device)".to_owned(),
        ),
    ] {
        let (reports, result) = run_job(spawn_job(berth_exe(), &state, file, wrong));
        assert_eq!(reports.last(), Some(&Report::Finished));
        let e = result.unwrap_err();
        assert_eq!(e.to_string(), expected);
    }
    assert!(leftovers(&state).is_empty());
    assert_eq!(
        fs::read_dir(state.join("images/sha256")).unwrap().count(),
        0
    );
}

/// A berth executable that stops itself once it has read `bytes` of an image (the
/// test hook), started as the install process.
fn stopping_exe(d: &TempDir, bytes: u64) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let script = d.join("berth-stopping");
    fs::write(
        &script,
        format!(
            "#!/bin/bash\nexport {}={bytes}\nexec -a {} {} \"$@\"\n",
            berth::image::unpack::STOP_AT_ENV,
            berth::image::install::ARGV0,
            env!("CARGO_BIN_EXE_berth")
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn a_killed_job_leaves_the_store_as_before_and_inherits_no_descriptor() {
    let d = TempDir::new("job-kill");
    let bytes = rootfs_tar(1000, 64 * 1024, 32); // 64 MiB
    let (image, sha) = write_image(&d, "big.tar", &bytes);
    let state = d.join("state");
    // A descriptor without close-on-exec, as a careless open in the supervisor
    // would leave: the child must not have it.
    let marker = d.join("marker");
    fs::write(&marker, "x").unwrap();
    let leaked = nix::fcntl::open(
        &marker,
        nix::fcntl::OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    let job = spawn_job(&stopping_exe(&d, 32 << 20), &state, &image, &sha);
    drop(leaked);
    assert!(wait_stopped(job.pid()));
    // Mid-unpack: its temporary directory is there, held, and survives a store open.
    assert_eq!(leftovers(&state).len(), 1);
    drop(Store::open(&state).unwrap());
    assert_eq!(
        leftovers(&state).len(),
        1,
        "a live install's directory stays"
    );
    let fds: Vec<PathBuf> = fs::read_dir(format!("/proc/{}/fd", job.pid()))
        .unwrap()
        .map(|e| fs::read_link(e.unwrap().path()).unwrap())
        .collect();
    assert!(!fds.contains(&marker), "{fds:?}");
    // Its reports go to descriptor 3, the pipe.
    let reports = fs::read_link(format!("/proc/{}/fd/3", job.pid())).unwrap();
    assert!(
        reports.to_string_lossy().starts_with("pipe:"),
        "{reports:?}"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(job.pid()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status = reap(job.pid());
    assert_eq!(
        job.finish(status).unwrap_err().to_string(),
        "the install process was killed by signal 9"
    );
    // The next store open removes what it left; nothing is installed.
    let store = Store::open(&state).unwrap();
    assert!(leftovers(&state).is_empty());
    assert!(!store.is_installed(&sha.parse().unwrap()));
    assert_eq!(
        fs::read_dir(state.join("images/sha256")).unwrap().count(),
        0
    );
}

#[test]
fn a_job_dies_with_the_thread_that_started_it() {
    let d = TempDir::new("job-orphan");
    let (image, sha) = write_image(&d, "big.tar", &rootfs_tar(600, 64 * 1024, 33));
    let state = d.join("state");
    let exe = stopping_exe(&d, 16 << 20);
    // The supervisor is one thread; here a thread that ends stands for berth dying.
    let pid = std::thread::scope(|s| {
        s.spawn(|| {
            let job = spawn_job(&exe, &state, &image, &sha);
            assert!(wait_stopped(job.pid()));
            job.pid()
        })
        .join()
        .unwrap()
    });
    assert_eq!(reap(pid), libc::SIGKILL, "PR_SET_PDEATHSIG");
    drop(Store::open(&state).unwrap());
    assert!(leftovers(&state).is_empty());
}
