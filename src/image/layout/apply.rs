//! Applies the layers of a [`Plan`] in order: each spooled blob is decompressed (by
//! its content), its tar entries go to the extractor, and the uncompressed bytes are
//! hashed and checked against the layer's diff_id.

use std::collections::HashMap;
use std::io::{self, BufReader, Read};

use super::table::Table;
use super::{Layer, Plan};
use crate::image::ImageError;
use crate::image::extract::Extractor;
use crate::image::hashing::HashingReader;
use crate::image::unpack::decompress;

/// Read buffer over a spooled blob.
const BUFFER: usize = 64 << 10;
/// Most bytes a layer may have after its tar end-of-archive marker (the zero blocks
/// and the record padding of tar writers are a few KiB). Bounds the work a layer that
/// decompresses to endless zeros can cause, since the diff_id covers every byte.
const MAX_TRAILER: u64 = 1 << 20;

pub(super) fn apply(
    mut table: Table,
    plan: &Plan,
    extractor: &mut Extractor,
) -> Result<(), ImageError> {
    // A blob may be listed more than once (identical layers); free it after its last use.
    let mut last_use: HashMap<&str, usize> = HashMap::new();
    for (i, layer) in plan.layers.iter().enumerate() {
        last_use.insert(layer.path.as_str(), i);
    }
    for (i, layer) in plan.layers.iter().enumerate() {
        extractor.begin_layer();
        let (_, stored) = table.lookup(&layer.path, &layer.what)?;
        apply_layer(table.open(stored)?, layer, extractor)?;
        if last_use.get(layer.path.as_str()) == Some(&i) {
            table.remove(&layer.path)?;
        }
    }
    Ok(())
}

fn apply_layer(
    blob: Box<dyn Read + '_>,
    layer: &Layer,
    extractor: &mut Extractor,
) -> Result<(), ImageError> {
    let what = &layer.what;
    let corrupt = |last: &Option<String>, offset: u64, e: io::Error| {
        let after = last
            .as_ref()
            .map(|l| format!(" after entry {l:?}"))
            .unwrap_or_default();
        ImageError::Format(format!(
            "{what}: corrupt tar{after} at offset {offset}: {e}"
        ))
    };
    let decoded =
        decompress(BufReader::with_capacity(BUFFER, blob)).map_err(|e| corrupt(&None, 0, e))?;
    let mut hashing = HashingReader::new(decoded);
    {
        let mut archive = tar::Archive::new(&mut hashing);
        let mut entries = archive.entries().map_err(|e| corrupt(&None, 0, e))?;
        let mut last: Option<String> = None;
        let mut offset = 0;
        loop {
            let mut entry = match entries.next() {
                None => break,
                Some(Ok(entry)) => entry,
                Some(Err(e)) => return Err(corrupt(&last, offset, e)),
            };
            offset = entry.raw_header_position();
            extractor
                .entry(&mut entry, true)
                .map_err(|e| in_layer(e, what))?;
            last = Some(String::from_utf8_lossy(&entry.path_bytes()).into_owned());
        }
    }
    let end = hashing.count();
    let trailer = io::copy(&mut (&mut hashing).take(MAX_TRAILER + 1), &mut io::sink())
        .map_err(|e| corrupt(&None, end, e))?;
    if trailer > MAX_TRAILER {
        return Err(ImageError::Format(format!(
            "{what}: more than {MAX_TRAILER} bytes after the end of its tar, at offset {end}"
        )));
    }
    let (actual, _) = hashing.finish().map_err(|e| corrupt(&None, end, e))?;
    if actual != layer.diff_id {
        return Err(ImageError::BlobMismatch {
            what: format!("{what} uncompressed (diff_id)"),
            expected: layer.diff_id.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

/// Says which layer a refused entry came from.
fn in_layer(e: ImageError, what: &str) -> ImageError {
    match e {
        ImageError::Entry { path, offset, why } => ImageError::Entry {
            path,
            offset,
            why: format!("{why} (in {what})"),
        },
        other => other,
    }
}
