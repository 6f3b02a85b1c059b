//! The host side of a launch: the app's directories and generated files under the
//! state and run directories, and (user namespace) the child's id maps and the
//! idmapped image, all done by the supervisor before the child is released.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, chown};
use std::path::{Path, PathBuf};

use super::plan::{self, Dirs};
use super::{App, from, sys};
use crate::manifest::types::IdMap;

pub(super) type HostResult<T> = Result<T, (String, io::Error)>;

fn ctx(what: impl Fn() -> String) -> impl FnOnce(io::Error) -> (String, io::Error) {
    move |e| (what(), e)
}

/// The host side of the app's files: overlay directories (emptied when the image or
/// the id mapping changed), volume directories, the generated `/etc` files, the
/// mount points.
pub(super) fn prepare_host(app: &App, dirs: &Dirs) -> HostResult<()> {
    let m = app.manifest;
    let owner = m.user_namespace.as_ref().map(|u| {
        (
            u.uid_map.to_host(0).unwrap_or(0),
            u.gid_map.to_host(0).unwrap_or(0),
        )
    });
    let marker = dirs.app_state.join("image");
    let identity = format!(
        "{}\n{}\n",
        m.image.sha256.as_str(),
        m.user_namespace
            .as_ref()
            .map(|u| format!("{} {}", map_text(&u.uid_map), map_text(&u.gid_map)))
            .unwrap_or_default()
    );
    if fs::read_to_string(&marker).ok().as_deref() != Some(identity.as_str()) {
        for dir in [dirs.upper(), dirs.work()] {
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err((format!("empty {}", dir.display()), e)),
            }
        }
    }
    for dir in [dirs.upper(), dirs.work()] {
        mkdir(&dir, 0o755)?;
        if let Some((uid, gid)) = owner {
            chown(&dir, Some(uid), Some(gid))
                .map_err(ctx(|| format!("chown {}", dir.display())))?;
        }
    }
    write_if_changed(&marker, &identity)?;
    for name in m.mounts.iter().filter_map(|mount| match mount {
        crate::manifest::model::Mount::Volume { name, .. } => Some(name),
        _ => None,
    }) {
        let dir = dirs.volumes.join(name.as_str());
        if !dir.is_dir() {
            mkdir(&dir, 0o755)?;
            if let Some((uid, gid)) = owner {
                chown(&dir, Some(uid), Some(gid))
                    .map_err(ctx(|| format!("chown {}", dir.display())))?;
            }
        }
    }
    mkdir(&dirs.root(), 0o755)?;
    if owner.is_some() {
        mkdir(&dirs.lower(), 0o755)?;
    }
    mkdir(&dirs.etc(), 0o755)?;
    let hostname = m.hostname.as_str();
    let resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    for (file, text) in [
        ("hostname", format!("{hostname}\n")),
        ("hosts", plan::hosts(hostname, app.hosts)),
        ("resolv.conf", plan::resolv_conf(&m.network.mode, &resolv)),
    ] {
        write_if_changed(&dirs.etc().join(file), &text)?;
    }
    Ok(())
}

/// Writes `text` to `path` unless it holds it already: a restart rewrites nothing
/// (and on ext4 a rewrite by truncation waits for the data to reach the disk).
fn write_if_changed(path: &Path, text: &str) -> HostResult<()> {
    if fs::read(path).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(());
    }
    fs::write(path, text).map_err(ctx(|| format!("write {}", path.display())))
}

fn mkdir(dir: &Path, mode: u32) -> HostResult<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(ctx(|| format!("create {}", dir.display())))
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
    let tree = sys::idmapped_tree(&image, ns.as_raw_fd()).map_err(|e| {
        (
            format!(
                "idmap {} for the user namespace (needs Linux 5.19 with idmapped mounts on this filesystem)",
                app.image_root.display()
            ),
            from(e),
        )
    })?;
    // SAFETY: `tree` was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(tree) })
}
