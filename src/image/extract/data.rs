//! Copies an entry's content into its file with a fixed buffer, and keeps the page
//! cache small on a small board: every [`STEP`] bytes the new chunk is sent to the
//! disk and the chunk before it, once written, is dropped from the cache.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};

use nix::errno::Errno;
use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};

/// Size of the copy buffer.
pub(super) const BUFFER: usize = 128 * 1024;

/// Bytes between two writeback steps.
const STEP: u64 = 8 << 20;

#[derive(Debug)]
pub(super) enum CopyError {
    /// The archive ended after `got` bytes of the entry.
    Short {
        got: u64,
    },
    /// The reader gave more than the entry's size.
    Long,
    Read(io::Error),
    Write(io::Error),
    Flush(Errno),
}

/// Copies `size` bytes from `from` into `file`, exactly; returns the bytes copied.
pub(super) fn copy(
    from: &mut impl Read,
    file: &mut File,
    size: u64,
    buf: &mut [u8],
) -> Result<u64, CopyError> {
    let mut written: u64 = 0;
    // [in_flight, flushed): sent to the disk, not yet dropped from the cache.
    let mut in_flight: u64 = 0;
    let mut flushed: u64 = 0;
    loop {
        let n = match from.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        written = written.saturating_add(n as u64);
        if written > size {
            return Err(CopyError::Long);
        }
        file.write_all(buf.get(..n).unwrap_or_default())
            .map_err(CopyError::Write)?;
        if written - flushed >= STEP {
            step(file.as_fd(), in_flight, flushed, written)?;
            in_flight = flushed;
            flushed = written;
        }
    }
    if written < size {
        return Err(CopyError::Short { got: written });
    }
    if flushed > 0 && written > flushed {
        step(file.as_fd(), in_flight, flushed, written)?;
    }
    Ok(written)
}

/// Starts writeback of `[flushed, written)`; waits for `[in_flight, flushed)`, sent
/// in the previous step, and drops it from the page cache.
fn step(fd: BorrowedFd<'_>, in_flight: u64, flushed: u64, written: u64) -> Result<(), CopyError> {
    sync_range(fd, flushed, written - flushed, libc::SYNC_FILE_RANGE_WRITE)?;
    if flushed > in_flight {
        let wait = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        sync_range(fd, in_flight, flushed - in_flight, wait)?;
        if let (Ok(offset), Ok(len)) = (in_flight.try_into(), (flushed - in_flight).try_into()) {
            // Advice only: a failure changes nothing that matters.
            let _ = posix_fadvise(fd, offset, len, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
        }
    }
    Ok(())
}

/// `sync_file_range`, which nix does not wrap. A filesystem that does not support it
/// is not an error; a failed write (EIO, ENOSPC) is.
fn sync_range(
    fd: BorrowedFd<'_>,
    offset: u64,
    len: u64,
    flags: libc::c_uint,
) -> Result<(), CopyError> {
    // EINVAL also for a range the platform's offset type cannot hold.
    match crate::sys::fs::sync_file_range(fd, offset, len, flags) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.errno(),
                libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::ESPIPE
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(CopyError::Flush(Errno::from_raw(e.errno()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::extract::tests::TempDir;

    fn copy_into(t: &TempDir, data: &[u8], size: u64) -> (Result<u64, CopyError>, Vec<u8>) {
        let path = t.join("f");
        let mut file = File::create(&path).unwrap();
        let mut buf = vec![0; 4096];
        let r = copy(&mut &data[..], &mut file, size, &mut buf);
        (r, std::fs::read(&path).unwrap())
    }

    #[test]
    fn copies_exactly_the_size() {
        let t = TempDir::new("data-exact");
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let (r, out) = copy_into(&t, &data, 10_000);
        assert_eq!(r.unwrap(), 10_000);
        assert_eq!(out, data);
    }

    #[test]
    fn short_and_long_input_are_errors() {
        let t = TempDir::new("data-short");
        let (r, _) = copy_into(&t, &[1; 100], 200);
        assert!(matches!(r, Err(CopyError::Short { got: 100 })));
        let (r, _) = copy_into(&t, &[1; 100], 50);
        assert!(matches!(r, Err(CopyError::Long)));
    }

    #[test]
    fn large_files_go_through_writeback_steps() {
        let t = TempDir::new("data-large");
        let size = 3 * STEP + 12345;
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let (r, out) = copy_into(&t, &data, size);
        assert_eq!(r.unwrap(), size);
        assert!(out == data);
    }
}
