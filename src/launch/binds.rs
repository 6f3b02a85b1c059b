//! The host side of an app's bind mounts of host paths: each source is opened by
//! the parent, where it really is is checked on that descriptor, and the child binds
//! the source only if, opened again, it is the very file that was checked.
//!
//! A path is resolved anew by every call that takes it. Between berth's check of a
//! bind source (at load, and again before each launch) and the child's `mount`, a
//! process that can write on the way (another app, through a bind of its own) could
//! swap a directory for a link to `/proc/1/root` or berth's state, and the mount would
//! follow it: the mount-source side of the symlink-exchange race runc fixed for
//! CVE-2021-30465. The parent opens the source (following its links, as a mount
//! does), reads where that descriptor is (`/proc/self/fd/N`) and checks that against
//! the reserved paths, and records the file's device and inode. The child, in its own
//! mount namespace (a descriptor of the host's namespace cannot be bound there),
//! opens the source again and binds that descriptor only when it is the same file;
//! otherwise the launch fails (ESTALE).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

use super::plan::{BindSource, Plan};
use super::rootfs::{Kind, Op};
use crate::manifest::Reserved;
use crate::sys;

/// Opens and checks every bind source of `plan`, refusing one that is (now) in a
/// reserved path unless its mount allows it, and turns its [`Op::Bind`] into an
/// [`Op::Checked`] of the file found.
pub fn check_sources(app: &str, plan: &mut Plan, reserved: &Reserved) -> Result<(), String> {
    for source in &plan.bind_sources {
        let (dev, ino, kind) = open_checked(app, source, reserved)?;
        let Some(op) = plan.ops.get_mut(source.op) else {
            return Err(format!("{app}: bind of {} has no mount step", source.path));
        };
        let Op::Bind {
            source: path,
            target,
            flags,
            ..
        } = op
        else {
            return Err(format!("{app}: bind of {} has no mount step", source.path));
        };
        *op = Op::Checked {
            source: std::mem::take(path),
            dev,
            ino,
            target: std::mem::take(target),
            kind,
            flags: *flags,
        };
    }
    Ok(())
}

/// Opens `source` (following its links, as a mount would) and checks where it is:
/// its (device, inode) and kind.
fn open_checked(
    app: &str,
    source: &BindSource,
    reserved: &Reserved,
) -> Result<(u64, u64, Kind), String> {
    let path = CString::new(source.path.as_str()).map_err(|_| {
        format!(
            "{app}: bind mount source {:?} holds a NUL byte",
            source.path
        )
    })?;
    let fd = sys::fs::openat(libc::AT_FDCWD, &path, libc::O_PATH, 0).map_err(|e| {
        let e = io::Error::from(e);
        match e.kind() {
            io::ErrorKind::NotFound => format!(
                "{app}: bind mount source {} does not exist on this host",
                source.path
            ),
            _ => format!("{app}: open bind mount source {}: {e}", source.path),
        }
    })?;
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let real = fs::read_link(&link).map_err(|e| {
        format!(
            "{app}: where bind mount source {} is ({link}): {e}",
            source.path
        )
    })?;
    if !source.allow_system_path {
        if let Some(rule) = real.to_str().and_then(|r| reserved.check(r)) {
            return Err(format!(
                "{app}: {rule} (bind mount source {} is {} now)",
                source.path,
                real.display()
            ));
        }
    }
    let meta = fs::metadata(&link)
        .map_err(|e| format!("{app}: stat bind mount source {}: {e}", source.path))?;
    let kind = if meta.is_dir() { Kind::Dir } else { Kind::File };
    Ok((meta.dev(), meta.ino(), kind))
}
