//! The one pass over an image file: hash it, detect its compression and format from
//! its content, and extract it (plain rootfs) or spool it (layered) in the same read.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

use super::extract::{Extractor, Report};
use super::hashing::HashingReader;
use super::layout::{Platform, Spool};
use super::{ImageDefaults, ImageError, Limits, io_error};
use crate::manifest::types::Digest;

/// The entry of a plain rootfs tar that carries its defaults (written by `berth pack`);
/// it is read, not extracted.
pub const DEFAULTS_ENTRY: &str = ".berth-image.yaml";

/// Most bytes of the defaults entry.
const MAX_DEFAULTS_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A tar of a root filesystem (uncompressed, gzip or zstd).
    Rootfs,
    /// `docker save` / `podman save` (manifest.json and layer tars).
    DockerArchive,
    /// An OCI image layout (oci-layout, index.json, blobs/sha256/...).
    OciLayout,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Format::Rootfs => "rootfs tar",
            Format::DockerArchive => "docker-save archive",
            Format::OciLayout => "OCI image layout",
        })
    }
}

/// The result of a successful unpack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub format: Format,
    pub defaults: ImageDefaults,
    pub report: Report,
    /// Bytes of the image file.
    pub file_size: u64,
}

/// A reader that undoes gzip or zstd if the stream starts with their magic, and passes
/// anything else through (a tar starts with a file name).
pub fn decompress<'a, R: BufRead + 'a>(mut reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let magic = reader.fill_buf()?;
    if magic.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(reader)))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(MultiZstd {
            source: reader,
            decoder: FrameDecoder::new(),
            in_frame: false,
        }))
    } else {
        Ok(Box::new(reader))
    }
}

/// A zstd stream of one or more frames (pzstd and `zstd -T` write several; a plain
/// single-frame decoder would stop after the first and lose the rest of the tar),
/// skippable frames passed over.
struct MultiZstd<R> {
    source: R,
    decoder: FrameDecoder,
    in_frame: bool,
}

fn zstd_error(e: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
}

impl<R: BufRead> Read for MultiZstd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if self.source.fill_buf()?.is_empty() {
                    return Ok(0);
                }
                match self.decoder.init(&mut self.source) {
                    Ok(()) => self.in_frame = true,
                    Err(FrameDecoderError::ReadFrameHeaderError(
                        ReadFrameHeaderError::SkipFrame { length, .. },
                    )) => {
                        let skipped =
                            io::copy(&mut (&mut self.source).take(length.into()), &mut io::sink())?;
                        if skipped < u64::from(length) {
                            return Err(zstd_error("truncated skippable frame"));
                        }
                        continue;
                    }
                    Err(e) => return Err(zstd_error(e)),
                }
            }
            while self.decoder.can_collect() < buf.len() && !self.decoder.is_finished() {
                let wanted = buf.len() - self.decoder.can_collect();
                self.decoder
                    .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBytes(wanted))
                    .map_err(zstd_error)?;
            }
            let n = self.decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.decoder.is_finished() && self.decoder.can_collect() == 0 {
                self.in_frame = false;
            }
        }
    }
}

/// Counts what is read and tells `progress`.
struct Progress<'p, R> {
    inner: R,
    read: u64,
    total: u64,
    progress: &'p mut dyn FnMut(u64, u64),
    stop_at: Option<u64>,
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        (self.progress)(self.read, self.total);
        if self.stop_at.is_some_and(|at| self.read >= at) {
            self.stop_at = None;
            // The test hook (STOP_AT_ENV); a failure only means no stop.
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
        }
        Ok(n)
    }
}

/// `./etc/passwd` → `etc/passwd`; `./` → ``.
pub fn entry_name(path: &str) -> &str {
    let mut p = path;
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    if p == "." { "" } else { p }
}

/// Unpacks the image `file` into `rootfs` (an existing empty directory), using `spool`
/// (another) for the blobs of a layered image. The file's sha256 must be `expected`:
/// it is checked when the file has been read, before any layer of a layered image is
/// applied; on any error the caller must discard both directories.
pub fn unpack(
    file: &Path,
    expected: &Digest,
    rootfs: &Path,
    spool_dir: &Path,
    limits: &Limits,
    platform: &Platform,
) -> Result<Unpacked, ImageError> {
    unpack_with(
        file,
        expected,
        rootfs,
        spool_dir,
        limits,
        platform,
        &mut |_, _| {},
    )
}

/// Test hook: a process unpacking stops itself (SIGSTOP) once it has read this many
/// bytes of the image, so a test can kill it mid-unpack without sleeping (it waits
/// for the stop with `waitid(WSTOPPED)`).
pub const STOP_AT_ENV: &str = "BERTH_TEST_STOP_UNPACK_AT";

/// As [`unpack`], calling `progress(read, total)` after each read of the image file
/// (`total` its size when opened). The file must be a regular file
/// ([`ImageError::NotRegular`] otherwise: a FIFO would block, `/dev/zero` never end),
/// and no read goes past that size.
pub fn unpack_with(
    file: &Path,
    expected: &Digest,
    rootfs: &Path,
    spool_dir: &Path,
    limits: &Limits,
    platform: &Platform,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Unpacked, ImageError> {
    let input = crate::input::open(file)?;
    let f = Progress {
        total: input.size(),
        inner: input.reader(),
        read: 0,
        progress,
        stop_at: std::env::var(STOP_AT_ENV).ok().and_then(|v| v.parse().ok()),
    };
    let mut hashing = HashingReader::new(f);
    let mut extractor = Extractor::new(rootfs, limits)?;
    let mut spool: Option<Spool> = None;
    let mut defaults = ImageDefaults::default();
    {
        let reader = BufReader::with_capacity(128 * 1024, &mut hashing);
        let corrupt = |last: &Option<String>, offset, source| ImageError::Corrupt {
            last: last.clone(),
            offset,
            source,
        };
        let decoded = decompress(reader).map_err(|e| corrupt(&None, 0, e))?;
        let mut archive = tar::Archive::new(decoded);
        let mut entries = archive.entries().map_err(|e| corrupt(&None, 0, e))?;
        let mut decided = false;
        let mut last: Option<String> = None;
        let mut last_offset = 0;
        loop {
            let mut entry = match entries.next() {
                None => break,
                Some(Ok(entry)) => entry,
                Some(Err(e)) => return Err(corrupt(&last, last_offset, e)),
            };
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = entry_name(&path);
            // A pax global header (from `git archive`, say) says nothing about the format.
            let global = entry.header().entry_type() == tar::EntryType::XGlobalHeader;
            if !decided && !name.is_empty() && !global {
                decided = true;
                if Spool::is_layout_path(name) {
                    spool = Some(Spool::new(spool_dir)?);
                }
            }
            last_offset = entry.raw_header_position();
            match spool.as_mut() {
                Some(spool) => spool.entry(&mut entry)?,
                None if name == DEFAULTS_ENTRY => {
                    defaults = read_defaults(&mut entry, &path, last_offset)?
                }
                None => extractor.entry(&mut entry, false)?,
            }
            last = Some(path);
        }
    }
    let (actual, file_size) = hashing.finish().map_err(io_error("read image", file))?;
    if actual != *expected {
        return Err(ImageError::DigestMismatch {
            path: file.to_owned(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    let format = match spool {
        Some(spool) => {
            let (image_defaults, format) = spool.apply(platform, &mut extractor)?;
            defaults = image_defaults;
            format
        }
        None => Format::Rootfs,
    };
    let report = extractor.finish()?;
    Ok(Unpacked {
        format,
        defaults,
        report,
        file_size,
    })
}

fn read_defaults<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    path: &str,
    offset: u64,
) -> Result<ImageDefaults, ImageError> {
    let bad = |why: String| ImageError::Entry {
        path: path.to_owned(),
        offset,
        why,
    };
    if entry.header().entry_size().unwrap_or(u64::MAX) > MAX_DEFAULTS_BYTES {
        return Err(bad(format!(
            "image defaults larger than {MAX_DEFAULTS_BYTES} bytes"
        )));
    }
    let mut text = String::new();
    entry
        .take(MAX_DEFAULTS_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    crate::manifest::parse_yaml(&text).map_err(|(pos, kind)| {
        let at = pos.map(|p| format!(" at {p}")).unwrap_or_default();
        bad(format!("invalid image defaults{at}: {kind}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_lose_leading_dot_slashes() {
        assert_eq!(entry_name("./etc/passwd"), "etc/passwd");
        assert_eq!(entry_name("././x"), "x");
        assert_eq!(entry_name("./"), "");
        assert_eq!(entry_name("."), "");
        assert_eq!(entry_name("oci-layout"), "oci-layout");
    }

    #[test]
    fn compression_is_detected_from_content() {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"hello tar").unwrap();
        let gz = gz.finish().unwrap();
        let mut out = String::new();
        decompress(&gz[..])
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello tar");
        let mut zst = Vec::new();
        ruzstd::encoding::compress(
            &b"hello zstd"[..],
            &mut zst,
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let mut out = String::new();
        decompress(&zst[..])
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello zstd");
        let mut out = String::new();
        decompress(&b"plain"[..])
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "plain");
    }
}
