//! `berth pack`: a reproducible image from a directory. (Being written: see the API
//! below; the body is a placeholder.)

use std::path::Path;

use super::{ImageDefaults, ImageError};
use crate::manifest::types::Digest;

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

/// Packs `rootfs` into the image file `out` (written beside it, then renamed) and
/// returns its sha256.
pub fn pack(_rootfs: &Path, _out: &Path, _opts: &PackOptions) -> Result<Digest, ImageError> {
    Err(ImageError::Format("pack is not built yet".into()))
}
