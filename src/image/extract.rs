//! Writes tar entries into a directory, never outside it.
//!
//! Each entry's parent directory is opened below the root with no symbolic link
//! followed ([`resolve`]), and every write is an `*at` call relative to that
//! descriptor that does not follow a link either (`O_CREAT | O_EXCL | O_NOFOLLOW`,
//! `mkdirat`, `symlinkat`, `linkat`, `mknodat`, `AT_SYMLINK_NOFOLLOW`): no path and no
//! link the archive made can lead a write outside the root. An entry is refused, as an
//! [`ImageError::Entry`] naming it and its offset, when its path is absolute or has a
//! `..`, when a parent is a link or not a directory, when it replaces an earlier entry
//! of the same archive (or layer), and when a hardlink's target is outside, missing, a
//! link or a directory.
//!
//! Device nodes and fifos are skipped unless `allow_devices`; setuid and setgid bits
//! of files are cleared unless `allow_setuid` (a directory keeps its setgid bit: it
//! only passes the directory's group on to new files). Owners are the numeric ids of
//! the archive; modes and modification times are kept, those of directories set last,
//! in [`Extractor::finish`], as adding entries changes them.
//!
//! Layered images (docker-save, OCI) are applied layer after layer onto one root: an
//! entry replaces what earlier layers made at its path, `.wh.NAME` deletes NAME and
//! `.wh..wh..opq` empties its directory of what earlier layers put there; no `.wh.`
//! file is ever written.

mod data;
mod meta;
mod path;
mod prune;
mod resolve;
#[cfg(test)]
mod tests;

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmod, fchmodat, futimens, mkdirat, mknodat,
    utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, syncfs};
use tar::EntryType;

use self::data::CopyError;
use self::meta::{Meta, device};
use self::path::{EntryPath, Whiteout};
use self::prune::Keep;
use self::resolve::{PathError, Resolver, kind_at};
use super::{ImageError, Limits, io_error};

/// The largest size the octal size field of a tar header holds: a writer that needs
/// more puts the size in a PAX record and this (or 0) in the header.
const MAX_OCTAL_SIZE: u64 = 0o77777777777;

/// What an extraction did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Entries written (all layers).
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Device nodes and fifos skipped (images.allow_devices is off).
    pub skipped_devices: u64,
    /// Files whose setuid/setgid bits were cleared (images.allow_setuid is off).
    pub cleared_setuid: u64,
}

/// Extracts entries into one root directory.
pub struct Extractor {
    dirs: Resolver,
    state: State,
}

/// Everything but the directory descriptors, so that a parent borrowed from the
/// resolver can be used while the state changes.
struct State {
    root: PathBuf,
    limits: Limits,
    /// Entries seen, all layers, for `max_entries`.
    seen: u64,
    /// File sizes declared so far, for `max_size`.
    declared: u64,
    report: Report,
    /// Paths the current layer wrote (layered images only).
    layer: Keep,
    /// Directory modification times, set at the end. One per directory entry, so
    /// bounded by `max_entries`.
    dir_times: Vec<(Box<[u8]>, TimeSpec)>,
    /// Something an earlier layer made was removed for the current entry.
    pruned: bool,
    buf: Vec<u8>,
    /// The process umask, read once: a file created with permission bits it does not
    /// mask needs no chmod afterwards.
    umask: Mode,
}

impl Extractor {
    /// Prepares extraction into `root`, an existing empty directory.
    pub fn new(root: &Path, limits: &Limits) -> Result<Self, ImageError> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::open(root, flags, Mode::empty())
            .map_err(io::Error::from)
            .map_err(io_error("open the image root", root))?;
        Ok(Extractor {
            dirs: Resolver::new(fd),
            state: State {
                root: root.to_owned(),
                limits: *limits,
                seen: 0,
                declared: 0,
                report: Report::default(),
                layer: Keep::new(),
                dir_times: Vec::new(),
                pruned: false,
                buf: vec![0; data::BUFFER],
                umask: current_umask(),
            },
        })
    }

    /// Resolves paths by the per-component walk only, as on a kernel without
    /// `openat2` (before 5.6): for tests of that fallback.
    #[doc(hidden)]
    pub fn without_openat2(mut self) -> Self {
        self.dirs = self.dirs.without_openat2();
        self
    }

    /// Starts a new layer: whiteouts in the entries that follow apply to what earlier
    /// layers made.
    pub fn begin_layer(&mut self) {
        self.state.layer.clear();
    }

    /// Extracts one entry. With `layered`, `.wh.` whiteouts are honoured and an entry
    /// may replace what an earlier layer made.
    pub fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        layered: bool,
    ) -> Result<(), ImageError> {
        let state = &mut self.state;
        state.seen += 1;
        if state.seen > state.limits.max_entries {
            return Err(ImageError::TooManyEntries {
                limit: state.limits.max_entries,
            });
        }
        let raw = entry.path_bytes().into_owned();
        let at = At {
            raw: &raw,
            offset: entry.raw_header_position(),
        };
        let path = EntryPath::parse(&raw, "path").map_err(|why| at.refuse(why))?;
        if layered {
            match Whiteout::of(&path).map_err(|why| at.refuse(why))? {
                Whiteout::None => {}
                Whiteout::Meta => return Ok(()),
                Whiteout::Delete(name) => return self.whiteout(&at, &path, Some(name)),
                Whiteout::Opaque => return self.whiteout(&at, &path, None),
            }
        }
        let kind = match entry.header().entry_type() {
            // Old (v7) archives mark directories by a trailing slash only.
            EntryType::Regular if raw.ends_with(b"/") => EntryType::Directory,
            kind => kind,
        };
        let meta = Meta::of(entry).map_err(|why| at.refuse(why))?;
        if path.is_root() {
            if kind != EntryType::Directory {
                return Err(at.refuse("entry names the image root but is not a directory"));
            }
            let root = self
                .dirs
                .open(b"", OFlag::O_RDONLY, false)
                .map_err(|e| at.refuse(e.to_string()))?;
            return self
                .state
                .dir_attributes(&at, root.as_fd(), &path, &meta, layered);
        }
        let parent_of = |e: PathError| at.refuse(e.to_string());
        let written = match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                // Before anything is created for it.
                let size = self.state.check_size(&at, entry)?;
                let parent = self.dirs.parent(path.parent(), true).map_err(parent_of)?;
                self.state
                    .file(&at, parent, &path, entry, size, &meta, layered)
            }
            EntryType::Directory => {
                let parent = self.dirs.parent(path.parent(), true).map_err(parent_of)?;
                let dir = self.state.dir(&at, parent, &path, &meta, layered)?;
                // Its entries are likely next.
                self.dirs.remember(path.as_bytes(), dir);
                Ok(())
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default();
                let parent = self.dirs.parent(path.parent(), true).map_err(parent_of)?;
                self.state
                    .symlink(&at, parent, &path, &target, &meta, layered)
            }
            EntryType::Link => self.hardlink(&at, &path, entry, layered),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                if !self.state.limits.allow_devices {
                    self.state.report.skipped_devices += 1;
                    return Ok(());
                }
                let (node, dev) = device(entry.header(), kind).map_err(|why| at.refuse(why))?;
                let parent = self.dirs.parent(path.parent(), true).map_err(parent_of)?;
                self.state
                    .device(&at, parent, &path, node, dev, &meta, layered)
            }
            // Global PAX headers, volume labels, sockets, unknown types: nothing to write.
            _ => Ok(()),
        };
        if std::mem::take(&mut self.state.pruned) {
            // The cached directory may have been below what went.
            self.dirs.forget();
        }
        written
    }

    /// Sets directory times, flushes everything to disk (syncfs), returns the counts.
    pub fn finish(self) -> Result<Report, ImageError> {
        let Extractor { mut dirs, state } = self;
        dirs.forget();
        for (path, mtime) in &state.dir_times {
            let shown = || state.root.join(OsStr::from_bytes(path));
            let dir = match dirs.open(path, OFlag::O_RDONLY, false) {
                Ok(dir) => dir,
                // A later layer removed or replaced it.
                Err(PathError::Missing(_) | PathError::NotDir(_) | PathError::Symlink(_)) => {
                    continue;
                }
                Err(e) => {
                    return Err(ImageError::Io {
                        action: "open directory".into(),
                        path: shown(),
                        source: e.into_io(),
                    });
                }
            };
            futimens(&dir, &TimeSpec::UTIME_OMIT, mtime).map_err(|e| ImageError::Io {
                action: "set the times of".into(),
                path: shown(),
                source: e.into(),
            })?;
        }
        // One call flushes the whole filesystem the image is on.
        syncfs(dirs.root())
            .map_err(io::Error::from)
            .map_err(io_error("flush (syncfs) the filesystem of", &state.root))?;
        Ok(state.report)
    }

    /// A hardlink: its target must be inside the root, reached without links, exist,
    /// and be neither a link nor a directory.
    fn hardlink<R: Read>(
        &mut self,
        at: &At<'_>,
        path: &EntryPath,
        entry: &tar::Entry<'_, R>,
        layered: bool,
    ) -> Result<(), ImageError> {
        let raw = entry.link_name_bytes().unwrap_or_default();
        let shown = String::from_utf8_lossy(&raw);
        let target = EntryPath::parse(&raw, &format!("hardlink target {shown:?}"))
            .map_err(|why| at.refuse(why))?;
        let refuse = |what: &str| at.refuse(format!("hardlink target {shown:?} {what}"));
        if target.is_root() {
            return Err(refuse("is a directory"));
        }
        let dir = self
            .dirs
            .open(target.parent(), OFlag::O_PATH, false)
            .map_err(|e| refuse(&format!("is unusable: {e}")))?;
        match kind_at(dir.as_fd(), target.name()) {
            Ok(None) => return Err(refuse("does not exist")),
            Ok(Some(SFlag::S_IFLNK)) => return Err(refuse("is a symbolic link")),
            Ok(Some(SFlag::S_IFDIR)) => return Err(refuse("is a directory")),
            Ok(Some(_)) => {}
            Err(e) => return Err(at.failed("inspect the hardlink target", e)),
        }
        let parent = self
            .dirs
            .parent(path.parent(), true)
            .map_err(|e| at.refuse(e.to_string()))?;
        // No AT_SYMLINK_FOLLOW: linkat links the name itself, never a link's target.
        let link = || linkat(&dir, target.name(), parent, path.name(), AtFlags::empty());
        self.state
            .create(at, parent, path, layered, "create hardlink", link)?;
        self.state.wrote(path, layered);
        Ok(())
    }

    /// `.wh.NAME` (`name`) or `.wh..wh..opq` (`None`): removes what earlier layers made.
    fn whiteout(
        &mut self,
        at: &At<'_>,
        path: &EntryPath,
        name: Option<&[u8]>,
    ) -> Result<(), ImageError> {
        let dir_path = path.parent();
        let dir = match self.dirs.open(dir_path, OFlag::O_PATH, false) {
            Ok(dir) => dir,
            // Nothing there to hide.
            Err(PathError::Missing(_)) => return Ok(()),
            Err(e) => return Err(at.refuse(e.to_string())),
        };
        // The cached parent may be among what goes.
        self.dirs.forget();
        let keep = &self.state.layer;
        let pruned = match name {
            Some(name) => {
                let target = EntryPath::child(dir_path, name);
                // A whiteout hides what earlier layers made, not its own layer's files.
                if keep.contains(target.as_slice()) {
                    return Ok(());
                }
                prune::prune(dir.as_fd(), name, &target, keep)
            }
            None => prune::prune_children(dir.as_fd(), dir_path, keep),
        };
        pruned.map(drop).map_err(|e| at.refuse(e.to_string()))
    }
}

impl State {
    /// Checks a regular file's size against the limit, before writing: `entry.size()`
    /// (from a PAX record if there is one) must agree with the header.
    fn check_size<R: Read>(
        &mut self,
        at: &At<'_>,
        entry: &tar::Entry<'_, R>,
    ) -> Result<u64, ImageError> {
        let size = entry.size();
        let header = entry.header();
        // A sparse entry's header has the stored size; `size()` is the file's.
        if header.entry_type() != EntryType::GNUSparse {
            let in_header = header
                .entry_size()
                .map_err(|e| at.refuse(format!("bad size field: {e}")))?;
            let too_big_for_header =
                size > MAX_OCTAL_SIZE && (in_header == 0 || in_header == MAX_OCTAL_SIZE);
            if in_header != size && !too_big_for_header {
                return Err(at.refuse(format!(
                    "pax size {size} disagrees with the header size {in_header}"
                )));
            }
        }
        let total = self.declared.saturating_add(size);
        if total > self.limits.max_size.bytes() {
            return Err(ImageError::TooLarge {
                limit: self.limits.max_size,
            });
        }
        self.declared = total;
        Ok(size)
    }

    #[allow(clippy::too_many_arguments, reason = "the parts of one entry")]
    fn file<R: Read>(
        &mut self,
        at: &At<'_>,
        parent: BorrowedFd<'_>,
        path: &EntryPath,
        entry: &mut tar::Entry<'_, R>,
        size: u64,
        meta: &Meta,
        layered: bool,
    ) -> Result<(), ImageError> {
        let mode = self.file_mode(meta.mode);
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        // Created with its final permission bits (never setuid/setgid/sticky: those
        // come after the owner, as chown clears them), so most files need no chmod.
        let perm = Mode::from_bits_truncate(mode.bits() & 0o777);
        let open = || openat(parent, path.name(), flags, perm);
        let mut file = File::from(self.create(at, parent, path, layered, "create file", open)?);
        let copied = data::copy(entry, &mut file, size, &mut self.buf).map_err(|e| {
            at.refuse(match e {
                CopyError::Short { got } => {
                    format!("archive ends inside this entry: {got} of {size} bytes")
                }
                CopyError::Long => format!("entry has more than its {size} bytes"),
                CopyError::Read(e) => format!("cannot read the entry's data: {e}"),
                CopyError::Write(e) => format!("cannot write file: {e}"),
                CopyError::Flush(e) => format!("cannot write file: {e}"),
            })
        })?;
        self.report.bytes += copied;
        // The owner first: chown clears setuid and setgid bits.
        fchown(&file, Some(meta.uid), Some(meta.gid)).map_err(|e| at.failed("set the owner", e))?;
        if mode != perm || perm.intersects(self.umask) {
            fchmod(&file, mode).map_err(|e| at.failed("set the mode", e))?;
        }
        futimens(&file, &TimeSpec::UTIME_OMIT, &meta.mtime)
            .map_err(|e| at.failed("set the times", e))?;
        self.wrote(path, layered);
        Ok(())
    }

    /// Makes (or, repeated, keeps) a directory and sets its owner and mode; returns it
    /// opened.
    fn dir(
        &mut self,
        at: &At<'_>,
        parent: BorrowedFd<'_>,
        path: &EntryPath,
        meta: &Meta,
        layered: bool,
    ) -> Result<OwnedFd, ImageError> {
        let name = path.name();
        let mkdir = || mkdirat(parent, name, Mode::from_bits_truncate(0o700));
        match mkdir() {
            Ok(()) => {}
            // A directory again (repeated, or made by an earlier layer): it stays, and
            // only its attributes change.
            Err(Errno::EEXIST) if kind_at(parent, name) == Ok(Some(SFlag::S_IFDIR)) => {}
            Err(Errno::EEXIST) => {
                self.create(at, parent, path, layered, "create directory", mkdir)?
            }
            Err(e) => return Err(at.failed("create directory", e)),
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let dir = openat(parent, name, flags, Mode::empty())
            .map_err(|e| at.failed("open directory", e))?;
        self.dir_attributes(at, dir.as_fd(), path, meta, layered)?;
        Ok(dir)
    }

    fn dir_attributes(
        &mut self,
        at: &At<'_>,
        dir: BorrowedFd<'_>,
        path: &EntryPath,
        meta: &Meta,
        layered: bool,
    ) -> Result<(), ImageError> {
        fchown(dir, Some(meta.uid), Some(meta.gid)).map_err(|e| at.failed("set the owner", e))?;
        fchmod(dir, Mode::from_bits_truncate(meta.mode))
            .map_err(|e| at.failed("set the mode", e))?;
        self.dir_times.push((path.as_bytes().into(), meta.mtime));
        self.wrote(path, layered);
        Ok(())
    }

    fn symlink(
        &mut self,
        at: &At<'_>,
        parent: BorrowedFd<'_>,
        path: &EntryPath,
        target: &[u8],
        meta: &Meta,
        layered: bool,
    ) -> Result<(), ImageError> {
        // Any target is harmless to make: extraction never follows a link.
        if target.is_empty() {
            return Err(at.refuse("symbolic link without a target"));
        }
        if target.contains(&0) {
            return Err(at.refuse("symbolic link target contains a NUL byte"));
        }
        let name = path.name();
        self.create(at, parent, path, layered, "create symbolic link", || {
            symlinkat(target, parent, name)
        })?;
        fchownat(
            parent,
            name,
            Some(meta.uid),
            Some(meta.gid),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| at.failed("set the owner", e))?;
        utimensat(
            parent,
            name,
            &TimeSpec::UTIME_OMIT,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| at.failed("set the times", e))?;
        self.wrote(path, layered);
        Ok(())
    }

    #[allow(clippy::too_many_arguments, reason = "the parts of one entry")]
    fn device(
        &mut self,
        at: &At<'_>,
        parent: BorrowedFd<'_>,
        path: &EntryPath,
        node: SFlag,
        dev: libc::dev_t,
        meta: &Meta,
        layered: bool,
    ) -> Result<(), ImageError> {
        let name = path.name();
        let perm = Mode::from_bits_truncate(meta.mode & 0o1777);
        self.create(at, parent, path, layered, "create device node", || {
            mknodat(parent, name, node, perm, dev)
        })?;
        fchownat(
            parent,
            name,
            Some(meta.uid),
            Some(meta.gid),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| at.failed("set the owner", e))?;
        // mknodat applied the umask. The node was made just now, here: not a link.
        fchmodat(parent, name, perm, FchmodatFlags::FollowSymlink)
            .map_err(|e| at.failed("set the mode", e))?;
        utimensat(
            parent,
            name,
            &TimeSpec::UTIME_OMIT,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| at.failed("set the times", e))?;
        self.wrote(path, layered);
        Ok(())
    }

    /// Runs `make` to create `path` in `parent`. If the name is taken: by this archive
    /// (or layer), the entry is a refused duplicate; by an earlier layer, what is there
    /// is removed and `make` runs again.
    fn create<T>(
        &mut self,
        at: &At<'_>,
        parent: BorrowedFd<'_>,
        path: &EntryPath,
        layered: bool,
        what: &str,
        mut make: impl FnMut() -> nix::Result<T>,
    ) -> Result<T, ImageError> {
        match make() {
            Err(Errno::EEXIST) => {}
            made => return made.map_err(|e| at.failed(what, e)),
        }
        if !layered || self.layer.contains(path.as_bytes()) {
            return Err(at.refuse("duplicate entry replaces an earlier one"));
        }
        self.pruned = true;
        let gone = prune::prune(parent, path.name(), path.as_bytes(), &self.layer)
            .map_err(|e| at.refuse(e.to_string()))?;
        if !gone {
            return Err(at.refuse("entry replaces a directory that holds entries of its own layer"));
        }
        make().map_err(|e| at.failed(what, e))
    }

    /// The mode of a regular file, setuid and setgid cleared unless allowed.
    fn file_mode(&mut self, mode: u32) -> Mode {
        let special = libc::S_ISUID | libc::S_ISGID;
        let mode = if mode & special != 0 && !self.limits.allow_setuid {
            self.report.cleared_setuid += 1;
            mode & !special
        } else {
            mode
        };
        Mode::from_bits_truncate(mode)
    }

    fn wrote(&mut self, path: &EntryPath, layered: bool) {
        self.report.entries += 1;
        if layered {
            self.layer.insert(path.as_bytes().into());
        }
    }
}

/// The entry being extracted, for messages.
struct At<'a> {
    raw: &'a [u8],
    offset: u64,
}

impl At<'_> {
    fn refuse(&self, why: impl Into<String>) -> ImageError {
        let path = String::from_utf8_lossy(self.raw).into_owned();
        ImageError::Entry {
            path,
            offset: self.offset,
            why: why.into(),
        }
    }

    fn failed(&self, action: &str, errno: Errno) -> ImageError {
        self.refuse(format!("cannot {action}: {errno}"))
    }
}

/// The process's file mode creation mask (set back at once: reading it means setting it).
fn current_umask() -> Mode {
    let mask = nix::sys::stat::umask(Mode::from_bits_truncate(0o022));
    nix::sys::stat::umask(mask);
    mask
}
