//! A reader that hashes (sha256) and counts what passes through it, so an archive is
//! verified in the same pass that extracts it.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use crate::manifest::types::Digest;

pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Bytes read so far: the offset in the file.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Reads the rest (to end of file), then returns the digest of everything.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest::from_bytes(&self.hasher.finalize()), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(read) = buf.get(..n) {
            self.hasher.update(read);
        }
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_all_even_what_was_not_read() {
        let mut r = HashingReader::new(&b"test"[..]);
        let mut two = [0u8; 2];
        r.read_exact(&mut two).unwrap();
        assert_eq!(r.count(), 2);
        let (digest, n) = r.finish().unwrap();
        assert_eq!(n, 4);
        assert_eq!(
            digest.as_str(),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}
