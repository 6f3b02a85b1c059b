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
use std::io::Write as _;
use std::os::unix::fs::FileTypeExt as _;
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
    assert!(info.starts_with("format: rootfs tar\n"), "{info}");
    // Installed: no work at all, so not even the file is needed any more.
    fs::remove_file(&image).unwrap();
    let o = run(&[
        "unpack",
        &image,
        "--sha256",
        &sha,
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

#[test]
fn kill_9_mid_unpack_leaves_nothing_usable_and_the_next_start_cleans_up() {
    let d = TempDir::new("crash");
    let bytes = rootfs_tar(2000, 64 * 1024, 3); // 128 MiB
    let sha = sha256_reader(&bytes[..]).unwrap().to_string();
    let fifo = d.join("image.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    let mut child = berth()
        .args([
            "unpack",
            fifo.to_str().unwrap(),
            "--sha256",
            &sha,
            "--state-dir",
            &d.s("state"),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Writes return once berth has read all but a pipe buffer of them: no sleeping.
    let mut pipe = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    pipe.write_all(&bytes[..bytes.len() / 2]).unwrap();
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    drop(pipe);

    let state = d.join("state");
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
    let (image, _) = write_image(&d, "image.tar", &bytes);
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
    // Image 0 is named by a manifest (even an invalid one); image 1 is mounted, as a
    // running app's rootfs would be; image 2 is neither.
    fs::create_dir_all(d.join("apps")).unwrap();
    fs::write(
        d.join("apps/keep.yaml"),
        format!(
            "name: keep\nimage: {{ path: 0.tar, sha256: {} }}\nbogus: field\n",
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
        lines[1].starts_with("freed ") && lines[1].ends_with(" bytes in 1 images"),
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
