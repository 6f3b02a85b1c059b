//! sha256 of files, streamed in fixed-size blocks so memory stays flat.

use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::manifest::types::Digest;

/// Block size for reading: large enough for throughput, small for a 64 MiB board.
const BLOCK: usize = 64 * 1024;

/// Hashes everything `reader` yields.
pub fn sha256_reader(mut reader: impl Read) -> io::Result<Digest> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BLOCK];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Digest::from_bytes(&hasher.finalize()))
}

/// Hashes the file at `path`, which must be a regular file (a FIFO would block,
/// `/dev/zero` never end): `InvalidInput` "not a regular file (a FIFO)" otherwise.
/// Reads no further than the size the file had when opened.
pub fn sha256_file(path: &Path) -> io::Result<Digest> {
    match crate::input::open(path) {
        Ok(input) => sha256_reader(input.reader()),
        Err(crate::input::InputError::Io { source, .. }) => Err(source),
        Err(crate::input::InputError::NotRegular { kind, .. }) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a regular file ({kind})"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(
            sha256_reader(&b""[..]).unwrap().as_str(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_reader(&b"test"[..]).unwrap().as_str(),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        // Across block boundaries.
        let big = vec![b'a'; BLOCK * 2 + 17];
        let mut one = Sha256::new();
        one.update(&big);
        assert_eq!(
            sha256_reader(&big[..]).unwrap(),
            Digest::from_bytes(&one.finalize())
        );
    }
}
