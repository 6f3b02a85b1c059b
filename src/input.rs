//! Opening the files berth is told to read (an image, a `*.yaml` manifest,
//! `berth.yaml`): regular files only, read no further than their size.
//!
//! A path named by configuration can be anything. A FIFO blocks `open` until a writer
//! comes, forever for PID 1; `/dev/zero` reads without end. So the type is looked at
//! before the file is opened (a device is never opened at all), the file is opened
//! with `O_NONBLOCK` (a FIFO swapped in meanwhile cannot block), looked at again on the
//! descriptor, and `O_NONBLOCK` is cleared. The reader returned stops at the size
//! `fstat` found: a file that grows while it is read is not followed.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use nix::fcntl::{FcntlArg, OFlag, fcntl};

/// A regular file, open for reading, and its size when it was opened.
#[derive(Debug)]
pub struct Input {
    file: File,
    size: u64,
}

impl Input {
    /// The size `fstat` found; no read goes past it.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The file's content, at most [`size`](Self::size) bytes of it.
    pub fn reader(self) -> io::Take<File> {
        let size = self.size;
        self.file.take(size)
    }
}

/// Why a file could not be opened as input.
#[derive(Debug)]
pub enum InputError {
    /// `open`, `fstat` or `fcntl` failed.
    Io { path: PathBuf, source: io::Error },
    /// The path names a FIFO, a device, a directory or a socket.
    NotRegular { path: PathBuf, kind: &'static str },
}

impl InputError {
    /// The error of the underlying call, if there was one (a missing file is
    /// `NotFound`).
    pub fn io(&self) -> Option<&io::Error> {
        match self {
            InputError::Io { source, .. } => Some(source),
            InputError::NotRegular { .. } => None,
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            InputError::Io { path, .. } | InputError::NotRegular { path, .. } => path,
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            InputError::Io { path, source } => {
                write!(f, "cannot open {}: {source}", path.display())
            }
            InputError::NotRegular { path, kind } => {
                write!(f, "{} is not a regular file ({kind})", path.display())
            }
        }
    }
}

impl std::error::Error for InputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InputError::Io { source, .. } => Some(source),
            InputError::NotRegular { .. } => None,
        }
    }
}

/// Every text [`kind_of`] gives.
pub const KINDS: [&str; 8] = [
    "a regular file",
    "a directory",
    "a symbolic link",
    "a FIFO",
    "a socket",
    "a character device",
    "a block device",
    "of an unknown type",
];

/// What a file is, for messages, from its `st_mode` (the `S_IFMT` bits): "a FIFO", "a
/// character device".
pub fn kind_of(mode: u32) -> &'static str {
    let [file, dir, link, fifo, socket, chr, blk, unknown] = KINDS;
    match mode & libc::S_IFMT {
        libc::S_IFREG => file,
        libc::S_IFDIR => dir,
        libc::S_IFLNK => link,
        libc::S_IFIFO => fifo,
        libc::S_IFSOCK => socket,
        libc::S_IFCHR => chr,
        libc::S_IFBLK => blk,
        _ => unknown,
    }
}

/// Opens `path` (links followed: it is configuration) for reading if it is a regular
/// file.
pub fn open(path: &Path) -> Result<Input, InputError> {
    let io = |source| InputError::Io {
        path: path.to_owned(),
        source,
    };
    let regular = |meta: &std::fs::Metadata| match meta.file_type().is_file() {
        true => Ok(()),
        false => Err(InputError::NotRegular {
            path: path.to_owned(),
            kind: kind_of(meta.mode()),
        }),
    };
    // Before opening: a device is never opened (opening one can act on it).
    regular(&std::fs::metadata(path).map_err(io)?)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    regular(&meta)?;
    let flags = fcntl(&file, FcntlArg::F_GETFL).map_err(|e| io(e.into()))?;
    let flags = OFlag::from_bits_truncate(flags) & !OFlag::O_NONBLOCK;
    fcntl(&file, FcntlArg::F_SETFL(flags)).map_err(|e| io(e.into()))?;
    Ok(Input {
        file,
        size: meta.len(),
    })
}

/// The whole of a regular file of at most `limit` bytes as text (invalid UTF-8 is an
/// `InvalidData` error). `Ok(None)` when it is larger than `limit`: nothing is read.
pub fn read_text(path: &Path, limit: u64) -> Result<Option<String>, InputError> {
    let input = open(path)?;
    if input.size() > limit {
        return Ok(None);
    }
    let mut text = String::new();
    input
        .reader()
        .read_to_string(&mut text)
        .map_err(|source| InputError::Io {
            path: path.to_owned(),
            source,
        })?;
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use crate::testdir::TempDir;

    #[test]
    fn only_regular_files_are_opened() {
        let tmp = TempDir::new("input", "kinds");
        let fifo = tmp.0.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(
            open(&fifo).unwrap_err().to_string(),
            format!("{} is not a regular file (a FIFO)", fifo.display())
        );
        assert_eq!(
            open(Path::new("/dev/zero")).unwrap_err().to_string(),
            "/dev/zero is not a regular file (a character device)"
        );
        assert_eq!(
            open(&tmp.0).unwrap_err().to_string(),
            format!("{} is not a regular file (a directory)", tmp.0.display())
        );
        let missing = tmp.0.join("missing");
        let e = open(&missing).unwrap_err();
        assert_eq!(e.io().map(io::Error::kind), Some(io::ErrorKind::NotFound));
        assert_eq!(
            e.to_string(),
            format!(
                "cannot open {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
    }

    #[test]
    fn reads_stop_at_the_size_found_and_the_file_blocks_again() {
        let tmp = TempDir::new("input", "bounded");
        let path = tmp.0.join("f");
        std::fs::write(&path, "hello").unwrap();
        let input = open(&path).unwrap();
        assert_eq!(input.size(), 5);
        let flags = fcntl(&input.file, FcntlArg::F_GETFL).unwrap();
        assert_eq!(flags & libc::O_NONBLOCK, 0, "O_NONBLOCK is cleared");
        // Written after the open: not read.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| io::Write::write_all(&mut f, b" world"))
            .unwrap();
        let mut text = String::new();
        input.reader().read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello");
        assert_eq!(
            read_text(&path, 11).unwrap().as_deref(),
            Some("hello world")
        );
        assert_eq!(read_text(&path, 10).unwrap(), None);
    }
}
