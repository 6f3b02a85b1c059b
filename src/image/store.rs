//! The image store: `STATE_DIR/images/sha256/<digest>/` holds `rootfs/` and
//! `image.yaml` (format and defaults). An image is unpacked into `.tmp-<digest>-<pid>`
//! beside its final place, flushed, and renamed: the rename is the commit point, so a
//! digest directory is always complete. A temporary directory is locked (flock) by the
//! process working in it; one that is not locked is a leftover of an interrupted
//! unpack or removal (power cut, kill -9) and is deleted when the store is opened.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::Deserialize;

use super::layout::Platform;
use super::unpack::unpack_with;
use super::{ImageDefaults, ImageError, Limits, Unpacked, io_error};
use crate::manifest::types::Digest;

/// Prefix of every temporary name in the store.
const TMP_PREFIX: &str = ".tmp-";
/// The file beside `rootfs/` that records what was unpacked.
const INFO_FILE: &str = "image.yaml";

impl ImageInfo {
    /// The record as `image.yaml` holds it.
    fn to_yaml(&self) -> String {
        format!(
            "format: {}\ndefaults: {}\n",
            super::yaml::quoted(&self.format),
            self.defaults.to_yaml()
        )
    }
}

/// What the store keeps about an installed image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageInfo {
    /// The image file's format, as `berth unpack` detected it.
    pub format: String,
    pub defaults: ImageDefaults,
}

/// What [`Store::gc`] removed (or, dry, would remove) and what it left because an
/// app holds it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Collected {
    /// Each image and the bytes it freed.
    pub removed: Vec<(Digest, u64)>,
    /// Unused by any manifest, but held by a running app.
    pub held: Vec<Digest>,
}

/// A running app's hold of its image ([`Store::hold`]); released on drop.
#[derive(Debug)]
pub struct ImageHold {
    _lock: Flock<fs::File>,
    digest: Digest,
}

impl ImageHold {
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
}

pub struct Store {
    /// `STATE_DIR/images/sha256`.
    dir: PathBuf,
}

/// The outcome of [`Store::install`].
#[derive(Debug)]
pub enum Installed {
    /// It was there already: nothing was read.
    Already(PathBuf),
    /// Unpacked now.
    Fresh(PathBuf, Box<Unpacked>),
}

impl Installed {
    /// The image's `rootfs` directory.
    pub fn rootfs(&self) -> &Path {
        match self {
            Installed::Already(p) | Installed::Fresh(p, _) => p,
        }
    }
}

impl Store {
    /// Opens (creating it if needed) the store under `state_dir`, and deletes what
    /// interrupted unpacks and removals left behind.
    ///
    /// The store is berth's alone: `images/` and `images/sha256/` are 0700 (created
    /// so, and narrowed, with a warning, when found wider), so no host user reaches an
    /// image's files (a world-writable `/tmp` of an image, a setuid program in it).
    /// `state_dir` itself is 0711: apps in a user namespace pass through it to their
    /// own directories.
    pub fn open(state_dir: &Path) -> Result<Store, ImageError> {
        let images = state_dir.join("images");
        let dir = images.join("sha256");
        for (path, mode) in [(state_dir, 0o711), (&images, 0o700), (&dir, 0o700)] {
            crate::hostfs::ensure_dir(path, mode).map_err(|e| ImageError::Io {
                action: "prepare directory".into(),
                path: path.to_owned(),
                source: e,
            })?;
        }
        let store = Store { dir };
        for leftover in store.clean_leftovers(false)? {
            log::info!(
                "removed {} left by an interrupted unpack",
                leftover.display()
            );
        }
        Ok(store)
    }

    /// The store under `state_dir` if there is one: nothing is created or cleaned
    /// (`berth gc` on a machine that never used berth leaves it so).
    pub fn existing(state_dir: &Path) -> Result<Option<Store>, ImageError> {
        let dir = state_dir.join("images").join("sha256");
        match fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => Ok(Some(Store { dir })),
            Ok(_) => Err(ImageError::Io {
                action: "open the image store".into(),
                path: dir,
                source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ImageError::Io {
                action: "open the image store".into(),
                path: dir,
                source: e,
            }),
        }
    }

    /// The store whose `images/sha256` directory is `dir`, as it is: for the install
    /// process, whose parent opened the store.
    pub(crate) fn at(dir: PathBuf) -> Store {
        Store { dir }
    }

    /// The leftovers no live process holds: removed, or with `dry_run` only listed.
    pub fn clean_leftovers(&self, dry_run: bool) -> Result<Vec<PathBuf>, ImageError> {
        let mut cleaned = Vec::new();
        for leftover in self.leftovers()? {
            let Some(_lock) = try_lock(&leftover)? else {
                continue;
            };
            if !dry_run {
                fs::remove_dir_all(&leftover).map_err(io_error("remove leftover", &leftover))?;
            }
            cleaned.push(leftover);
        }
        Ok(cleaned)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `.../sha256/<digest>`.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.as_str())
    }

    pub fn rootfs(&self, digest: &Digest) -> PathBuf {
        self.path(digest).join("rootfs")
    }

    /// Installed images are complete: the directory appears only by the final rename.
    pub fn is_installed(&self, digest: &Digest) -> bool {
        self.path(digest).is_dir()
    }

    /// Temporary directories in the store (from unpacks or removals that did not end).
    pub fn leftovers(&self) -> Result<Vec<PathBuf>, ImageError> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_error("read directory", &self.dir))? {
            let entry = entry.map_err(io_error("read directory", &self.dir))?;
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                found.push(entry.path());
            }
        }
        found.sort();
        Ok(found)
    }

    /// Verifies the image `file` against `digest` and installs it, unless it is
    /// installed already. Nothing partial is ever visible: on any error the
    /// temporary directory is removed and the store is as before.
    pub fn install(
        &self,
        file: &Path,
        digest: &Digest,
        limits: &Limits,
        platform: &Platform,
    ) -> Result<Installed, ImageError> {
        self.install_with(file, digest, limits, platform, &mut |_, _| {})
    }

    /// As [`install`](Self::install), calling `progress(read, total)` after each read
    /// of the image file.
    pub fn install_with(
        &self,
        file: &Path,
        digest: &Digest,
        limits: &Limits,
        platform: &Platform,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Installed, ImageError> {
        let target = self.path(digest);
        if target.is_dir() {
            return Ok(Installed::Already(target.join("rootfs")));
        }
        let tmp = self
            .dir
            .join(format!("{TMP_PREFIX}{digest}-{}", std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_error("remove leftover", &tmp))?;
        }
        let result = self.install_into(&tmp, file, digest, limits, platform, progress);
        if result.is_err() && target.is_dir() {
            // Another process installed the same image meanwhile: use that one.
            let _ = fs::remove_dir_all(&tmp);
            return Ok(Installed::Already(target.join("rootfs")));
        }
        if result.is_err() {
            if let Err(e) = fs::remove_dir_all(&tmp) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    // The install error is the one to report; this one is logged, and
                    // the next open() removes the leftover.
                    log::error!("cannot remove {} after a failed unpack: {e}", tmp.display());
                }
            }
        }
        result.map(|unpacked| Installed::Fresh(target.join("rootfs"), Box::new(unpacked)))
    }

    fn install_into(
        &self,
        tmp: &Path,
        file: &Path,
        digest: &Digest,
        limits: &Limits,
        platform: &Platform,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Unpacked, ImageError> {
        let target = &self.path(digest);
        let rootfs = tmp.join("rootfs");
        let spool = tmp.join("spool");
        fs::create_dir(tmp).map_err(io_error("create directory", tmp))?;
        // Held until this function returns: marks the directory as being worked in.
        let _lock = try_lock(tmp)?
            .ok_or_else(|| ImageError::Format(format!("{} is locked", tmp.display())))?;
        for dir in [&rootfs, &spool] {
            fs::create_dir(dir).map_err(io_error("create directory", dir))?;
        }
        let unpacked = unpack_with(file, digest, &rootfs, &spool, limits, platform, progress)?;
        fs::remove_dir_all(&spool).map_err(io_error("remove directory", &spool))?;
        let info = ImageInfo {
            format: unpacked.format.to_string(),
            defaults: unpacked.defaults.clone(),
        };
        let text = info.to_yaml();
        let info_path = tmp.join(INFO_FILE);
        let mut f = fs::File::create(&info_path).map_err(io_error("create", &info_path))?;
        f.write_all(text.as_bytes())
            .map_err(io_error("write", &info_path))?;
        f.sync_all().map_err(io_error("flush", &info_path))?;
        sync_dir(tmp)?;
        // The commit point.
        fs::rename(tmp, target).map_err(io_error("rename into place", target))?;
        sync_dir(&self.dir)?;
        Ok(unpacked)
    }

    /// What the store recorded about an installed image.
    pub fn info(&self, digest: &Digest) -> Result<ImageInfo, ImageError> {
        let path = self.path(digest).join(INFO_FILE);
        let text = fs::read_to_string(&path).map_err(io_error("read", &path))?;
        crate::manifest::parse_yaml(&text)
            .map_err(|(_, kind)| ImageError::Format(format!("{}: {kind}", path.display())))
    }

    /// Installed images, by digest.
    pub fn list(&self) -> Result<Vec<Digest>, ImageError> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_error("read directory", &self.dir))? {
            let entry = entry.map_err(io_error("read directory", &self.dir))?;
            if let Ok(digest) = entry.file_name().to_string_lossy().parse::<Digest>() {
                found.push(digest);
            }
        }
        found.sort();
        Ok(found)
    }

    /// Removes an installed image: renamed away first (so it vanishes at once and a
    /// power cut leaves only a leftover), then deleted. Returns the bytes freed.
    /// An image a running app holds ([`hold`](Self::hold)) is not touched:
    /// [`ImageError::Held`]. The exclusive lock is taken without waiting and kept
    /// until the image is gone, so no app can take hold of it meanwhile.
    pub fn remove(&self, digest: &Digest) -> Result<u64, ImageError> {
        let path = self.path(digest);
        let Some(_lock) = try_lock(&path)? else {
            return Err(ImageError::Held {
                digest: digest.to_string(),
            });
        };
        let bytes = disk_usage(&path)?;
        let doomed = self.dir.join(format!(
            "{TMP_PREFIX}remove-{digest}-{}",
            std::process::id()
        ));
        fs::rename(&path, &doomed).map_err(io_error("rename for removal", &path))?;
        sync_dir(&self.dir)?;
        fs::remove_dir_all(&doomed).map_err(io_error("remove", &doomed))?;
        Ok(bytes)
    }

    /// Removes every installed image that is neither in `keep` nor in use (mounted,
    /// or held by a running app); with `dry_run`, removes nothing and says what it
    /// would remove.
    pub fn gc(
        &self,
        keep: &BTreeSet<Digest>,
        in_use: &BTreeSet<Digest>,
        dry_run: bool,
    ) -> Result<Collected, ImageError> {
        let mut collected = Collected::default();
        for digest in self.list()? {
            if keep.contains(&digest) || in_use.contains(&digest) {
                continue;
            }
            let outcome = if dry_run {
                self.is_held(&digest).and_then(|held| match held {
                    true => Err(ImageError::Held {
                        digest: digest.to_string(),
                    }),
                    false => disk_usage(&self.path(&digest)),
                })
            } else {
                self.remove(&digest)
            };
            match outcome {
                Ok(bytes) => collected.removed.push((digest, bytes)),
                Err(ImageError::Held { .. }) => collected.held.push(digest),
                Err(e) => return Err(e),
            }
        }
        Ok(collected)
    }

    /// Takes a shared hold of an installed image for as long as an app uses it: `berth
    /// gc` and [`remove`](Self::remove) skip a held image. The hold is an flock of the
    /// image's directory, so it ends when the [`ImageHold`] is dropped or the process
    /// dies, however. Fails when the image is not installed, or is being removed right
    /// now.
    pub fn hold(&self, digest: &Digest) -> Result<ImageHold, ImageError> {
        let path = self.path(digest);
        let file = fs::File::open(&path).map_err(io_error("hold image", &path))?;
        let lock = match Flock::lock(file, FlockArg::LockSharedNonblock) {
            Ok(lock) => lock,
            Err((_, Errno::EWOULDBLOCK)) => {
                return Err(ImageError::Io {
                    action: "hold image".into(),
                    path,
                    source: std::io::Error::new(
                        std::io::ErrorKind::WouldBlock,
                        "it is being removed",
                    ),
                });
            }
            Err((_, errno)) => {
                return Err(ImageError::Io {
                    action: "hold image".into(),
                    path,
                    source: errno.into(),
                });
            }
        };
        // Between the open and the lock, a removal may have renamed the directory away:
        // the hold is good only if the path still names the directory locked.
        let held = lock.metadata().map_err(io_error("hold image", &path))?;
        let same =
            fs::metadata(&path).is_ok_and(|now| (now.dev(), now.ino()) == (held.dev(), held.ino()));
        if !same {
            return Err(ImageError::Io {
                action: "hold image".into(),
                path,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "it was removed"),
            });
        }
        Ok(ImageHold {
            _lock: lock,
            digest: digest.clone(),
        })
    }

    /// Whether a process holds the image (without taking any lock that stays).
    pub fn is_held(&self, digest: &Digest) -> Result<bool, ImageError> {
        Ok(try_lock(&self.path(digest))?.is_none())
    }

    /// Images some process has mounted (an app's overlay lower layer, or its
    /// read-only rootfs), read from every `/proc/<pid>/mountinfo` under `proc`.
    pub fn in_use(&self, proc: &Path) -> BTreeSet<Digest> {
        let mut used = BTreeSet::new();
        let Ok(entries) = fs::read_dir(proc) else {
            return used;
        };
        let needle = format!("{}/", self.dir.display());
        for entry in entries.flatten() {
            let is_pid = entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit());
            if !is_pid {
                continue;
            }
            // Processes come and go while we read: a vanished one is simply skipped.
            let Ok(mountinfo) = fs::read_to_string(entry.path().join("mountinfo")) else {
                continue;
            };
            for mention in mountinfo.split(needle.as_str()).skip(1) {
                let hex: String = mention.chars().take(64).collect();
                if let Ok(digest) = hex.parse::<Digest>() {
                    used.insert(digest);
                }
            }
        }
        used
    }
}

/// Takes the exclusive lock of a directory without waiting: `None` if a live process
/// holds it. The lock goes with the process, however it ends.
fn try_lock(dir: &Path) -> Result<Option<Flock<fs::File>>, ImageError> {
    let file = fs::File::open(dir).map_err(io_error("open", dir))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(ImageError::Io {
            action: "lock".into(),
            path: dir.to_owned(),
            source: errno.into(),
        }),
    }
}

/// Flushes a directory's entries (a rename or create in it) to disk.
fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("flush directory", dir))
}

/// Bytes a tree occupies on disk, hardlinked files counted once.
pub fn disk_usage(path: &Path) -> Result<u64, ImageError> {
    let mut seen = BTreeSet::new();
    let mut total = 0u64;
    let mut stack = vec![path.to_owned()];
    while let Some(p) = stack.pop() {
        let meta = fs::symlink_metadata(&p).map_err(io_error("inspect", &p))?;
        if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        total += meta.blocks() * 512;
        if meta.is_dir() {
            for entry in fs::read_dir(&p).map_err(io_error("read directory", &p))? {
                stack.push(entry.map_err(io_error("read directory", &p))?.path());
            }
        }
    }
    Ok(total)
}
