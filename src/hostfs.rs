//! berth's own files on the host: its directories, kept closed to other users, and
//! the files it writes in them, opened relative to a directory descriptor without
//! following symbolic links.
//!
//! An app may be given a bind mount of a directory berth writes in (its log
//! directory, say); inside it the app can plant a link `web.log -> /etc/shadow`. A
//! path opened by name would follow it and berth, as root, would append to or
//! overwrite the host's file. So every file here is reached through [`Dir`]: the
//! last component is opened with `O_NOFOLLOW` (a link is refused, never followed),
//! `O_NONBLOCK` (a planted FIFO cannot hang PID 1), and must then be a regular file
//! with one link (a hard link to a host file is refused too). Subdirectories are
//! opened the same way, one component at a time.

use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, ftruncate, unlinkat};

/// An open directory of berth's, and its path (for messages).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// The mode bits that say who may do what (no setuid, setgid or sticky bit).
const PERMISSIONS: u32 = 0o777;

/// An error that says what was attempted on which path.
fn failed(action: &str, path: &Path, e: impl Into<io::Error>) -> io::Error {
    let e: io::Error = e.into();
    let why = match e.raw_os_error() {
        Some(libc::ELOOP) => "it is a symbolic link, and berth does not follow links here".into(),
        Some(libc::ENXIO) => "it is a FIFO or socket, not a regular file".into(),
        _ => e.to_string(),
    };
    io::Error::new(e.kind(), format!("{action} {}: {why}", path.display()))
}

fn kind_of(stat: &FileStat) -> &'static str {
    crate::input::kind_of(stat.st_mode)
}

fn is(stat: &FileStat, kind: SFlag) -> bool {
    stat.st_mode & SFlag::S_IFMT.bits() == kind.bits()
}

/// Refuses what is not a regular file of one link.
fn regular(stat: &FileStat, action: &str, path: &Path) -> io::Result<()> {
    if !is(stat, SFlag::S_IFREG) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{action} {}: it is {}, not a regular file",
                path.display(),
                kind_of(stat)
            ),
        ));
    }
    if stat.st_nlink > 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{action} {}: it has {} hard links, and berth writes only files of one link",
                path.display(),
                stat.st_nlink
            ),
        ));
    }
    Ok(())
}

/// Creates `path` (and missing parents) with `mode` if it is missing; if it is there
/// with permissions wider than `mode`, narrows them and says so. Returns whether it
/// had to narrow them. `path` itself is berth's configuration, so it is followed if
/// it is a link (a device may keep its state on another partition).
pub fn ensure_dir(path: &Path, mode: u32) -> io::Result<bool> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| failed("create", path, e))?;
    let meta = std::fs::metadata(path).map_err(|e| failed("inspect", path, e))?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a directory", path.display()),
        ));
    }
    let old = meta.mode() & PERMISSIONS;
    if old & !mode == 0 {
        return Ok(false);
    }
    let new = old & mode;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(new))
        .map_err(|e| failed("chmod", path, e))?;
    log::warn!(
        "{} was mode {old:04o}, open to other users; it is {new:04o} now",
        path.display()
    );
    Ok(true)
}

impl Dir {
    /// Opens the directory `path` (berth's configuration: followed if a link).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = openat(
            nix::fcntl::AT_FDCWD,
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| failed("open directory", path, e))?;
        Ok(Dir {
            fd,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self/name` as a path, for messages.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The subdirectory `name`, created with `mode` if missing, opened without
    /// following a link. Its permissions are narrowed to `mode` (saying so) if they
    /// are wider, and with `owner`, it is given that owner.
    pub fn sub(&self, name: &str, mode: u32, owner: Option<(u32, u32)>) -> io::Result<Dir> {
        self.subdir(name, mode, owner, true)
    }

    /// As [`sub`](Self::sub), but its permissions are left as they are (a directory
    /// whose mode is the app's business, such as the root of its writable layer).
    pub fn make(&self, name: &str, mode: u32, owner: Option<(u32, u32)>) -> io::Result<Dir> {
        self.subdir(name, mode, owner, false)
    }

    fn subdir(
        &self,
        name: &str,
        mode: u32,
        owner: Option<(u32, u32)>,
        narrow: bool,
    ) -> io::Result<Dir> {
        let path = self.join(name);
        match mkdirat(&self.fd, name, Mode::from_bits_truncate(mode)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(failed("create", &path, e)),
        }
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            // O_DIRECTORY wins over O_NOFOLLOW: a link is reported as not a directory.
            Errno::ENOTDIR => match fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(stat) if is(&stat, SFlag::S_IFLNK) => {
                    failed("open directory", &path, Errno::ELOOP)
                }
                _ => failed("open directory", &path, e),
            },
            e => failed("open directory", &path, e),
        })?;
        let stat = fstat(&fd).map_err(|e| failed("inspect", &path, e))?;
        if let Some((uid, gid)) = owner {
            if (stat.st_uid, stat.st_gid) != (uid, gid) {
                fchown(&fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                    .map_err(|e| failed("chown", &path, e))?;
            }
        }
        let old = stat.st_mode & PERMISSIONS;
        if narrow && old & !mode != 0 {
            fchmod(&fd, Mode::from_bits_truncate(old & mode))
                .map_err(|e| failed("chmod", &path, e))?;
            log::warn!(
                "{} was mode {old:04o}, open to other users; it is {:04o} now",
                path.display(),
                old & mode
            );
        }
        Ok(Dir { fd, path })
    }

    /// The existing subdirectory `name`, opened without following a link; `None` if
    /// there is none.
    pub fn existing(&self, name: &str) -> io::Result<Option<Dir>> {
        let path = self.join(name);
        match openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(Dir { fd, path })),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(failed("open directory", &path, e)),
        }
    }

    /// Opens `name` for appending, creating it with `mode` if missing; returns the
    /// file and its size.
    pub fn open_append(&self, name: &str, mode: u32) -> io::Result<(File, u64)> {
        let path = self.join(name);
        let (fd, stat) = self.create_regular(name, OFlag::O_APPEND, mode, "open", &path)?;
        Ok((File::from(fd), u64::try_from(stat.st_size).unwrap_or(0)))
    }

    /// `name` open for reading if it is a regular file (never followed as a link);
    /// `None` if there is no such entry.
    pub fn open_read(&self, name: &str) -> io::Result<Option<File>> {
        let path = self.join(name);
        match self.open_regular(name, OFlag::O_RDONLY, &path) {
            Ok(fd) => Ok(Some(File::from(fd))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The content of `name` if it is a regular file of at most `limit` bytes;
    /// `None` if there is no such entry.
    pub fn read(&self, name: &str, limit: u64) -> io::Result<Option<Vec<u8>>> {
        let path = self.join(name);
        let fd = match self.open_regular(name, OFlag::O_RDONLY, &path) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::new();
        File::from(fd)
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| failed("read", &path, e))?;
        if bytes.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("read {}: larger than {limit} bytes", path.display()),
            ));
        }
        Ok(Some(bytes))
    }

    /// Writes `text` as the whole content of `name` (created with `mode`) unless it
    /// holds it already: a restart rewrites nothing (and on ext4 a rewrite by
    /// truncation waits for the data to reach the disk).
    pub fn write_if_changed(&self, name: &str, text: &[u8], mode: u32) -> io::Result<()> {
        let path = self.join(name);
        let limit = text.len() as u64;
        if let Ok(Some(old)) = self.read(name, limit) {
            if old == text {
                return Ok(());
            }
        }
        // Looked at before it is opened, so that a planted device or FIFO is never
        // opened at all; checked again on the descriptor.
        match fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => regular(&stat, "write", &path)?,
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(failed("write", &path, e)),
        }
        let (fd, _) = self.create_regular(name, OFlag::empty(), mode, "write", &path)?;
        ftruncate(&fd, 0).map_err(|e| failed("truncate", &path, e))?;
        File::from(fd)
            .write_all(text)
            .map_err(|e| failed("write", &path, e))
    }

    /// Opens `name` for writing with `extra` flags, creating it with `mode` if
    /// missing, never through a link, a FIFO or a terminal; it must then be a regular
    /// file of one link. `what` names the step in errors.
    fn create_regular(
        &self,
        name: &str,
        extra: OFlag,
        mode: u32,
        what: &str,
        path: &Path,
    ) -> io::Result<(OwnedFd, nix::sys::stat::FileStat)> {
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC
                | extra,
            Mode::from_bits_truncate(mode),
        )
        .map_err(|e| failed(what, path, e))?;
        let stat = fstat(&fd).map_err(|e| failed(what, path, e))?;
        regular(&stat, what, path)?;
        Ok((fd, stat))
    }

    /// Opens `name`, which must be a regular file of one link, for `access`.
    fn open_regular(&self, name: &str, access: OFlag, path: &Path) -> io::Result<OwnedFd> {
        let stat = fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| failed("open", path, e))?;
        regular(&stat, "open", path)?;
        let fd = openat(
            &self.fd,
            name,
            access | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| failed("open", path, e))?;
        let stat = fstat(&fd).map_err(|e| failed("inspect", path, e))?;
        regular(&stat, "open", path)?;
        Ok(fd)
    }

    /// Whether `name` exists (as anything, a link included).
    pub fn exists(&self, name: &str) -> bool {
        fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
    }

    /// Removes the entry `name` (a link is removed, not followed); a missing one is
    /// no error.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        match unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(failed("remove", &self.join(name), e)),
        }
    }

    /// Renames `from` to `to` in this directory (replacing what `to` was, a link
    /// included, without following it); a missing `from` is no error.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        match renameat(&self.fd, from, &self.fd, to) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(io::Error::new(
                io::Error::from(e).kind(),
                format!(
                    "rename {} to {}: {e}",
                    self.join(from).display(),
                    self.join(to).display()
                ),
            )),
        }
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests;
