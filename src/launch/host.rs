//! The host side of a launch: the app's directories and generated files under the
//! state and run directories, and (user namespace) the child's id maps and the
//! idmapped image, all done by the supervisor before the child is released.

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::plan::{self, Dirs};
use super::{App, from};
use crate::hostfs::{self, Dir};
use crate::manifest::types::IdMap;
use crate::sys;

pub(super) type HostResult<T> = Result<T, (String, io::Error)>;

fn ctx(what: impl Fn() -> String) -> impl FnOnce(io::Error) -> (String, io::Error) {
    move |e| (what(), e)
}

/// Mode of `STATE_DIR`, its `apps/` and `volumes/`, `RUN_DIR` and its `apps/`: other
/// users may pass through (an app in a user namespace, whose root is an unprivileged
/// host user, mounts its layers by path) but not list or open anything.
pub(crate) const PASS_THROUGH: u32 = 0o711;
/// Mode of each app's state directory (owned by the app's root): what an app wrote,
/// a setuid-root program included, is reachable by nobody else on the host.
pub(crate) const PRIVATE: u32 = 0o700;

/// The file in an app's state directory that names the manifest file it belongs to
/// (see `supervisor::appstate`).
pub const ORIGIN_FILE: &str = "manifest";

/// The host side of the app's files: overlay directories (emptied when the image,
/// the id mapping or the manifest file it belongs to changed), volume directories,
/// the generated `/etc` files, the mount points. Every directory below the state and
/// run directories is opened without following links, and every file written is a
/// regular file reached the same way (`hostfs`): an app given a bind of one of them
/// cannot make berth write through a link it planted.
pub(super) fn prepare_host(app: &App, dirs: &Dirs, host_resolv: &str) -> HostResult<()> {
    let m = app.manifest;
    let owner = m.user_namespace.as_ref().map(|u| {
        (
            u.uid_map.to_host(0).unwrap_or(0),
            u.gid_map.to_host(0).unwrap_or(0),
        )
    });
    let what = || "prepare the app's directories".to_owned();
    let (apps, name) = split(&dirs.app_state)?;
    hostfs::ensure_dir(apps, PASS_THROUGH).map_err(ctx(what))?;
    let state = Dir::open(apps)
        .and_then(|d| d.sub(name, PRIVATE, Some(owner.unwrap_or((0, 0)))))
        .map_err(ctx(what))?;
    let identity = format!(
        "{}\n{}\n",
        m.image.sha256.as_str(),
        m.user_namespace
            .as_ref()
            .map(|u| format!("{} {}", map_text(&u.uid_map), map_text(&u.gid_map)))
            .unwrap_or_default()
    );
    let origin = format!("{}\n", origin(&m.file).display());
    let read = |file: &str| state.read(file, 64 * 1024).ok().flatten();
    let same_image = read("image").as_deref() == Some(identity.as_bytes());
    let recorded = read(ORIGIN_FILE);
    if recorded.as_ref().is_some_and(|r| r != origin.as_bytes()) {
        log::info!(
            "{}: the writable layer in {} belonged to {}; it starts empty",
            m.name.as_str(),
            state.path().display(),
            recorded
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
                .trim_end()
        );
    }
    let same_origin = recorded.as_deref() == Some(origin.as_bytes());
    if !same_image || recorded.is_some_and(|r| r != origin.as_bytes()) {
        for dir in [dirs.upper(), dirs.work()] {
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err((format!("empty {}", dir.display()), e)),
            }
        }
    }
    for dir in ["upper", "work"] {
        state.make(dir, 0o755, owner).map_err(ctx(what))?;
    }
    // Each record was read above: written only when it differs.
    if !same_image {
        state
            .write_if_changed("image", identity.as_bytes(), 0o600)
            .map_err(ctx(what))?;
    }
    if !same_origin {
        state
            .write_if_changed(ORIGIN_FILE, origin.as_bytes(), 0o600)
            .map_err(ctx(what))?;
    }
    let volumes: Vec<&str> = m
        .mounts
        .iter()
        .filter_map(|mount| match mount {
            crate::manifest::model::Mount::Volume { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    if !volumes.is_empty() {
        hostfs::ensure_dir(&dirs.volumes, PASS_THROUGH).map_err(ctx(what))?;
        let dir = Dir::open(&dirs.volumes).map_err(ctx(what))?;
        for name in volumes {
            if !dir.exists(name) {
                dir.make(name, 0o755, owner).map_err(ctx(what))?;
            }
        }
    }
    let (run_apps, name) = split(&dirs.app_run)?;
    hostfs::ensure_dir(run_apps, PASS_THROUGH).map_err(ctx(what))?;
    let run = Dir::open(run_apps)
        .and_then(|d| d.sub(name, PASS_THROUGH, Some((0, 0))))
        .map_err(ctx(what))?;
    run.make("rootfs", 0o755, None).map_err(ctx(what))?;
    if owner.is_some() {
        run.make("lower", 0o755, None).map_err(ctx(what))?;
    }
    let etc = run.make("etc", 0o755, None).map_err(ctx(what))?;
    let hostname = m.hostname.as_str();
    for (file, text) in [
        ("hostname", format!("{hostname}\n")),
        ("hosts", plan::hosts(hostname, app.hosts)),
        (
            "resolv.conf",
            plan::resolv_conf(&m.network.mode, host_resolv),
        ),
    ] {
        etc.write_if_changed(file, text.as_bytes(), 0o644)
            .map_err(ctx(|| "write the app's /etc files".to_owned()))?;
    }
    Ok(())
}

/// The host's `/etc/resolv.conf` as last read, and what identified that version of
/// it: read again only when its device, inode, size, mtime or ctime changed (a new
/// file moved into place, or one rewritten), so a launch usually costs one `stat`.
#[derive(Debug, Default)]
pub(super) struct Resolv {
    seen: Option<[i64; 7]>,
    text: String,
}

impl Resolv {
    /// Its current text; empty when there is none (as before: an app then has no
    /// name servers).
    pub(super) fn current(&mut self, path: &Path) -> &str {
        use std::os::unix::fs::MetadataExt;
        let seen = fs::metadata(path).ok().map(|m| {
            [
                m.dev() as i64,
                m.ino() as i64,
                m.size() as i64,
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
            ]
        });
        if seen.is_none() || seen != self.seen {
            self.text = fs::read_to_string(path).unwrap_or_default();
            self.seen = seen;
        }
        &self.text
    }
}

/// The manifest file as recorded in the app's state directory: absolute, its links
/// not resolved (the record is of the file the apps directory lists).
pub fn origin(file: &Path) -> PathBuf {
    std::path::absolute(file).unwrap_or_else(|_| file.to_owned())
}

/// `dir` as its parent and its last component.
fn split(dir: &Path) -> HostResult<(&Path, &str)> {
    match (dir.parent(), dir.file_name().and_then(|n| n.to_str())) {
        (Some(parent), Some(name)) => Ok((parent, name)),
        _ => Err((
            format!("{} is not a directory of an app", dir.display()),
            io::Error::from_raw_os_error(libc::EINVAL),
        )),
    }
}

fn map_text(map: &IdMap) -> String {
    map.ranges()
        .iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
        .collect()
}

/// User namespace: writes the child's uid/gid maps, and makes the idmapped copy of the
/// image it will use as its lower layer.
pub(super) fn idmap(pid: i32, app: &App) -> HostResult<OwnedFd> {
    let Some(userns) = &app.manifest.user_namespace else {
        return Err((
            "user namespace without maps".into(),
            io::Error::from_raw_os_error(libc::EINVAL),
        ));
    };
    let proc = PathBuf::from(format!("/proc/{pid}"));
    for (file, map) in [("uid_map", &userns.uid_map), ("gid_map", &userns.gid_map)] {
        let path = proc.join(file);
        fs::write(&path, map_text(map)).map_err(ctx(|| format!("write {}", path.display())))?;
    }
    let ns_path = proc.join("ns/user");
    let ns = fs::File::open(&ns_path).map_err(ctx(|| format!("open {}", ns_path.display())))?;
    let image = plan::path_c(app.image_root)
        .map_err(|m| (m, io::Error::from_raw_os_error(libc::EINVAL)))?;
    sys::mount::idmapped_tree(&image, ns.as_fd()).map_err(|e| {
        (
            format!(
                "idmap {} for the user namespace (needs Linux 5.19 with idmapped mounts on this filesystem)",
                app.image_root.display()
            ),
            from(e),
        )
    })
}
