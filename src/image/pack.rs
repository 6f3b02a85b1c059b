//! `berth pack`: a reproducible image from a directory.
//!
//! The same tree always gives the same bytes. Entries are written depth-first, each
//! directory's children sorted by name (byte order); names are relative with no leading
//! `./`, directories end in `/`, and the root directory itself has no entry. Every
//! mtime is 0, owners are 0:0 (numeric from the files with `keep_owners`), user and
//! group names are empty, and the gzip and zstd headers carry no time or file name.
//! Headers are GNU tar, with GNU long-name entries for names and link targets longer
//! than 100 bytes.
//!
//! Image defaults (`--entrypoint`, `--env`, ...) travel in a plain tar as its first
//! entry, [`DEFAULTS_ENTRY`] (`.berth-image.yaml`, the YAML of [`ImageDefaults`]),
//! which unpack reads instead of extracting.

mod zstd;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ffi::OsString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::vec;

use sha2::{Digest as _, Sha256};
use tar::{Builder, EntryType, Header};

use super::unpack::DEFAULTS_ENTRY;
use super::{ImageDefaults, ImageError, io_error};
use crate::manifest::types::Digest;

/// Unit of buffering for the image file and of the hand-over to the zstd compressor.
const CHUNK: usize = 64 * 1024;

/// Chunks in flight between the tar writer and the zstd compressor.
const CHUNKS_IN_FLIGHT: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Zstd,
}

#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    pub compression: Compression,
    /// Keep the files' owners (else every entry is owned by 0:0).
    pub keep_owners: bool,
    /// Stored as the `.berth-image.yaml` entry when not empty.
    pub defaults: ImageDefaults,
}

/// Packs `rootfs` into the image file `out` and returns its sha256.
///
/// Every entry gets mtime 0, so touching files does not change the image; modes keep
/// the permission, setuid, setgid and sticky bits. Symlinks are stored, never
/// followed; a second path to an inode already packed becomes a hardlink entry to the
/// first; char and block devices and fifos are stored as such; sockets are skipped with
/// a warning. `out` (and its temporary file) are not packed when they lie inside
/// `rootfs`. The image is written to `.NAME.tmp-PID` beside `out`, hashed while being
/// written, fsynced and renamed to `out`; on error the temporary file is removed.
pub fn pack(rootfs: &Path, out: &Path, opts: &PackOptions) -> Result<Digest, ImageError> {
    let root = fs::canonicalize(rootfs).map_err(io_error("read directory", rootfs))?;
    if !fs::metadata(&root)
        .map_err(io_error("read directory", rootfs))?
        .is_dir()
    {
        let source = io::Error::from_raw_os_error(libc::ENOTDIR);
        return Err(ImageError::Io {
            action: "read directory".into(),
            path: rootfs.to_owned(),
            source,
        });
    }
    let Some(name) = out.file_name() else {
        let source = io::Error::new(
            io::ErrorKind::InvalidInput,
            "the image path has no file name",
        );
        return Err(ImageError::Io {
            action: "create image".into(),
            path: out.to_owned(),
            source,
        });
    };
    let dir = match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(&tmp_name);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(io_error("create image", &tmp))?;
    let mut guard = TempFile(Some(tmp.clone()));
    let real_dir = fs::canonicalize(dir).map_err(io_error("read directory", dir))?;
    let source = Source {
        root: &root,
        keep_owners: opts.keep_owners,
        defaults: &opts.defaults,
        skip: [real_dir.join(name), real_dir.join(&tmp_name)],
        image: &tmp,
    };

    let sink = HashingWriter::new(BufWriter::with_capacity(2 * CHUNK, file));
    let sink = match opts.compression {
        Compression::None => write_tar(sink, &source)?,
        Compression::Gzip => {
            let gzip = flate2::GzBuilder::new()
                .mtime(0)
                .write(sink, flate2::Compression::default());
            write_tar(gzip, &source)?
                .finish()
                .map_err(io_error("write image", &tmp))?
        }
        Compression::Zstd => zstd::write_zstd(sink, &source)?,
    };
    let (digest, buffered) = sink.finish();
    let file = buffered.into_inner().map_err(|e| ImageError::Io {
        action: "write image".into(),
        path: tmp.clone(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_error("sync image", &tmp))?;
    drop(file);
    fs::rename(&tmp, out).map_err(io_error("rename the temporary image to", out))?;
    guard.0 = None;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync directory", dir))?;
    Ok(digest)
}

/// What to pack and how.
struct Source<'a> {
    /// The canonical rootfs directory.
    root: &'a Path,
    keep_owners: bool,
    defaults: &'a ImageDefaults,
    /// The image and its temporary file, by canonical path: never packed.
    skip: [PathBuf; 2],
    /// The temporary image file, for write errors.
    image: &'a Path,
}

/// Writes the whole tar stream into `w` and returns it.
fn write_tar<W: Write>(w: W, source: &Source<'_>) -> Result<W, ImageError> {
    let mut packer = Packer {
        tar: Builder::new(w),
        source,
        links: HashMap::new(),
    };
    packer.defaults()?;
    packer.walk()?;
    packer
        .tar
        .into_inner()
        .map_err(io_error("write image", source.image))
}

struct Packer<'a, W: Write> {
    tar: Builder<W>,
    source: &'a Source<'a>,
    /// (device, inode) of files with several links → the first name packed.
    links: HashMap<(u64, u64), PathBuf>,
}

/// A directory being walked: its path, its name in the archive, its children left.
struct Dir {
    path: PathBuf,
    name: PathBuf,
    children: vec::IntoIter<OsString>,
}

impl<W: Write> Packer<'_, W> {
    fn defaults(&mut self) -> Result<(), ImageError> {
        let defaults = self.source.defaults;
        if *defaults == ImageDefaults::default() {
            return Ok(());
        }
        let own = self.source.root.join(DEFAULTS_ENTRY);
        if fs::symlink_metadata(&own).is_ok() {
            let source = io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the rootfs has its own image defaults entry; remove it or pack without defaults",
            );
            return Err(ImageError::Io {
                action: "store image defaults over".into(),
                path: own,
                source,
            });
        }
        let yaml = format!("{}\n", defaults.to_yaml());
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(yaml.len() as u64);
        let image = self.source.image;
        self.tar
            .append_data(&mut header, DEFAULTS_ENTRY, yaml.as_bytes())
            .map_err(io_error("write image", image))
    }

    /// Packs everything under the root, depth-first, children in byte order.
    fn walk(&mut self) -> Result<(), ImageError> {
        let root = self.source.root;
        let mut stack = vec![Dir {
            path: root.to_owned(),
            name: PathBuf::new(),
            children: children(root)?,
        }];
        while let Some(dir) = stack.last_mut() {
            let Some(child) = dir.children.next() else {
                stack.pop();
                continue;
            };
            let path = dir.path.join(&child);
            let name = dir.name.join(&child);
            if self.source.skip.contains(&path) {
                continue;
            }
            if let Some(sub) = self.entry(path, name)? {
                stack.push(sub);
            }
        }
        Ok(())
    }

    /// Packs one path; returns it as a directory to walk if it is one.
    fn entry(&mut self, path: PathBuf, name: PathBuf) -> Result<Option<Dir>, ImageError> {
        let meta = fs::symlink_metadata(&path).map_err(io_error("read metadata of", &path))?;
        let kind = meta.file_type();
        if kind.is_dir() {
            let mut header = self.header(&meta, EntryType::Directory);
            let mut dir_name = name.clone().into_os_string();
            dir_name.push("/");
            self.append(&mut header, Path::new(&dir_name))?;
            let children = children(&path)?;
            return Ok(Some(Dir {
                path,
                name,
                children,
            }));
        }
        if kind.is_file() {
            self.file(&path, &name, &meta)?;
        } else if kind.is_symlink() {
            let target = fs::read_link(&path).map_err(io_error("read symlink", &path))?;
            self.link(self.header(&meta, EntryType::Symlink), &name, &target)?;
        } else if kind.is_char_device() || kind.is_block_device() || kind.is_fifo() {
            let entry_type = if kind.is_char_device() {
                EntryType::Char
            } else if kind.is_block_device() {
                EntryType::Block
            } else {
                EntryType::Fifo
            };
            let mut header = self.header(&meta, entry_type);
            // Linux majors and minors are at most 32 bits wide.
            let major = u32::try_from(nix::sys::stat::major(meta.rdev())).unwrap_or(u32::MAX);
            let minor = u32::try_from(nix::sys::stat::minor(meta.rdev())).unwrap_or(u32::MAX);
            let image = self.source.image;
            header
                .set_device_major(major)
                .map_err(io_error("write image", image))?;
            header
                .set_device_minor(minor)
                .map_err(io_error("write image", image))?;
            self.append(&mut header, &name)?;
        } else {
            log::warn!(
                "skipping {}: a socket cannot be stored in an image",
                path.display()
            );
        }
        Ok(None)
    }

    /// A regular file, streamed; or a hardlink to the first name of its inode.
    fn file(&mut self, path: &Path, name: &Path, meta: &Metadata) -> Result<(), ImageError> {
        if meta.nlink() > 1 {
            match self.links.entry((meta.dev(), meta.ino())) {
                Entry::Occupied(first) => {
                    let target = first.get().clone();
                    return self.link(self.header(meta, EntryType::Link), name, &target);
                }
                Entry::Vacant(slot) => {
                    slot.insert(name.to_owned());
                }
            }
        }
        // No following a symlink, nor blocking on a fifo, swapped in since the lstat.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(io_error("open", path))?;
        let now = file
            .metadata()
            .map_err(io_error("read metadata of", path))?;
        if !now.is_file() || now.dev() != meta.dev() || now.ino() != meta.ino() {
            let source = io::Error::other("it was replaced while being packed");
            return Err(ImageError::Io {
                action: "read file".into(),
                path: path.to_owned(),
                source,
            });
        }
        let mut header = self.header(&now, EntryType::Regular);
        header.set_size(now.len());
        let mut data = FileData {
            file,
            left: now.len(),
            failed: None,
        };
        let appended = self.tar.append_data(&mut header, name, &mut data);
        if let Some(source) = data.failed {
            return Err(ImageError::Io {
                action: "read file".into(),
                path: path.to_owned(),
                source,
            });
        }
        appended.map_err(io_error("write image", self.source.image))
    }

    /// A symlink or hardlink entry. Short targets are stored byte for byte (the tar
    /// crate's `set_link_name` would normalise `a//b` or `a/./b`); long ones go into a
    /// GNU long-link entry, which keeps the bytes too.
    fn link(&mut self, mut header: Header, name: &Path, target: &Path) -> Result<(), ImageError> {
        let bytes = target.as_os_str().as_bytes();
        let appended = if bytes.len() <= header.as_old().linkname.len() {
            header
                .set_link_name_literal(bytes)
                .and_then(|()| self.tar.append_data(&mut header, name, io::empty()))
        } else {
            self.tar.append_link(&mut header, name, target)
        };
        appended.map_err(io_error("write image", self.source.image))
    }

    fn append(&mut self, header: &mut Header, name: &Path) -> Result<(), ImageError> {
        self.tar
            .append_data(header, name, io::empty())
            .map_err(io_error("write image", self.source.image))
    }

    /// The fixed fields of every entry: mode from the file, mtime 0, owners 0:0 or
    /// numeric from the file, no user or group names.
    fn header(&self, meta: &Metadata, entry_type: EntryType) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(entry_type);
        header.set_mode(meta.mode() & 0o7777);
        let (uid, gid) = if self.source.keep_owners {
            (meta.uid(), meta.gid())
        } else {
            (0, 0)
        };
        header.set_uid(uid.into());
        header.set_gid(gid.into());
        header.set_mtime(0);
        header.set_size(0);
        header
    }
}

/// The names in `dir`, in byte order.
fn children(dir: &Path) -> Result<vec::IntoIter<OsString>, ImageError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error("read directory", dir))? {
        names.push(entry.map_err(io_error("read directory", dir))?.file_name());
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names.into_iter())
}

/// Exactly the `left` bytes the header promised. A read error is kept here so that it
/// is reported as a read error of the file, not as a write error of the image.
struct FileData {
    file: File,
    left: u64,
    failed: Option<io::Error>,
}

impl Read for FileData {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let Some(buf) = buf.get_mut(..want) else {
            return Ok(0);
        };
        if buf.is_empty() {
            // A file that grew while being packed is cut at the size of its header.
            return Ok(0);
        }
        match self.file.read(buf) {
            Ok(0) => self.fail(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while being packed",
            )),
            Ok(n) => {
                self.left -= n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => self.fail(e),
        }
    }
}

impl FileData {
    fn fail(&mut self, e: io::Error) -> io::Result<usize> {
        let kind = e.kind();
        self.failed = Some(e);
        Err(io::Error::new(kind, "reading a file to pack failed"))
    }
}

/// Hashes what reaches the image file.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
        }
    }

    fn finish(self) -> (Digest, W) {
        (Digest::from_bytes(&self.hasher.finalize()), self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.hasher.update(data.get(..n).unwrap_or_default());
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Removes the temporary image unless it was renamed.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            if let Err(e) = fs::remove_file(&path) {
                log::warn!("cannot remove the temporary image {}: {e}", path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A directory removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Scratch {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("berth-pack-unit-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(path.join("root")).unwrap();
            Scratch(path)
        }
        fn root(&self) -> PathBuf {
            self.0.join("root")
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_file_that_shrinks_is_a_read_error() {
        let s = Scratch::new();
        let path = s.0.join("f");
        fs::write(&path, "abc").unwrap();
        let mut data = FileData {
            file: File::open(&path).unwrap(),
            left: 5,
            failed: None,
        };
        let mut out = Vec::new();
        let err = io::copy(&mut data, &mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(
            data.failed.unwrap().to_string(),
            "the file shrank while being packed"
        );
        // A file that grew is cut at its packed size.
        let mut data = FileData {
            file: File::open(&path).unwrap(),
            left: 2,
            failed: None,
        };
        let mut out = Vec::new();
        io::copy(&mut data, &mut out).unwrap();
        assert_eq!(out, b"ab");
    }

    /// Fails every write after the first `left` bytes.
    struct Full {
        left: usize,
    }

    impl Write for Full {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = data.len().min(self.left);
            self.left -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_errors_are_returned_not_panics() {
        let s = Scratch::new();
        let root = s.root();
        // Incompressible, so that even zstd output reaches the failing write.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..3 * 1024 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        fs::write(root.join("big"), noise).unwrap();
        let image = s.0.join("img.tar");
        let source = Source {
            root: &root,
            keep_owners: false,
            defaults: &ImageDefaults::default(),
            skip: [s.0.join("x"), s.0.join("y")],
            image: &image,
        };
        for left in [0, 100, 200_000] {
            let err = zstd::write_zstd(Full { left }, &source).err().unwrap();
            assert_eq!(
                err.to_string(),
                format!(
                    "cannot write image {}: No space left on device (os error 28)",
                    image.display()
                )
            );
            let err = write_tar(Full { left }, &source).err().unwrap();
            assert!(
                matches!(
                    &err,
                    ImageError::Io { action, .. } if action == "write image"
                ),
                "{err}"
            );
        }
    }
}
