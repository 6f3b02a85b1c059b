//! Writes tar entries into a directory, never outside it. (Being written: see the
//! API below; the bodies are placeholders.)

use std::io::Read;
use std::path::Path;

use super::{ImageError, Limits};

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
    _limits: Limits,
}

impl Extractor {
    /// Prepares extraction into `root`, an existing empty directory.
    pub fn new(_root: &Path, limits: &Limits) -> Result<Self, ImageError> {
        Ok(Extractor { _limits: *limits })
    }

    /// Starts a new layer: whiteouts in the entries that follow apply to what earlier
    /// layers made.
    pub fn begin_layer(&mut self) {}

    /// Extracts one entry. With `layered`, `.wh.` whiteouts are honoured and an entry
    /// may replace what an earlier layer made.
    pub fn entry<R: Read>(&mut self, _entry: &mut tar::Entry<'_, R>, _layered: bool) -> Result<(), ImageError> {
        Err(ImageError::Format("extraction is not built yet".into()))
    }

    /// Sets directory times, flushes everything to disk (syncfs), returns the counts.
    pub fn finish(self) -> Result<Report, ImageError> {
        Ok(Report::default())
    }
}
