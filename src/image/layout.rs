//! docker-save and OCI image-layout archives. (Being written: see the API below; the
//! bodies are placeholders.)

use std::fmt;
use std::io::Read;
use std::path::Path;

use super::extract::Extractor;
use super::{Format, ImageDefaults, ImageError};

/// An OS/architecture/variant as OCI names them: `linux/arm64`, `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this binary was built for.
    pub fn current() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            other => other,
        };
        let variant = match (architecture, cfg!(target_feature = "v7")) {
            ("arm", true) => Some("v7".to_owned()),
            _ => None,
        };
        Platform { os: "linux".into(), architecture: architecture.into(), variant }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Collects the files of a docker-save or OCI archive during the one pass over it:
/// small JSON files in memory (bounded), blobs streamed to files in a spool directory
/// with their sha256.
pub struct Spool {}

impl Spool {
    /// `dir` is an existing empty directory for the blobs (inside the temporary
    /// directory of the install, so it is removed with it).
    pub fn new(_dir: &Path) -> Result<Self, ImageError> {
        Ok(Spool {})
    }

    /// Whether `path` (an archive entry name) belongs to an OCI layout or a docker-save
    /// archive; decided on the first entry of an archive.
    pub fn is_layout_path(_path: &str) -> bool {
        false
    }

    /// Takes one entry of the outer archive.
    pub fn entry<R: Read>(&mut self, _entry: &mut tar::Entry<'_, R>) -> Result<(), ImageError> {
        Err(ImageError::Format("layered images are not built yet".into()))
    }

    /// After the outer archive is verified: finds the image (for `platform`), then
    /// applies its layers in order with `extractor`, checking every blob against its
    /// descriptor and every layer against its diff_id.
    pub fn apply(self, _platform: &Platform, _extractor: &mut Extractor) -> Result<(ImageDefaults, Format), ImageError> {
        Err(ImageError::Format("layered images are not built yet".into()))
    }
}
