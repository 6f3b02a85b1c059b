//! Builders for the unit tests: archives in memory, a spool directory, a table.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest as _, Sha256};

use super::table::Table;
use crate::image::ImageError;

pub(super) enum Node<'a> {
    File(&'a [u8]),
    Dir,
    Symlink(&'a str),
    Hardlink(&'a str),
    Fifo,
}

/// A tar of `entries`, in order.
pub(super) fn tar(entries: &[(&str, Node<'_>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, node) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(0);
        let data: &[u8] = match node {
            Node::File(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                data
            }
            Node::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                &[]
            }
            Node::Symlink(target) | Node::Hardlink(target) => {
                let kind = if matches!(node, Node::Symlink(_)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                h.set_entry_type(kind);
                b.append_link(&mut h, path, target).unwrap();
                continue;
            }
            Node::Fifo => {
                h.set_entry_type(tar::EntryType::Fifo);
                &[]
            }
        };
        // Raw names: the builder would refuse `..` and absolute paths, which the tests need.
        let name = path.as_bytes();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

pub(super) fn sha(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// `blobs/sha256/<sha of bytes>`.
pub(super) fn blob_name(bytes: &[u8]) -> String {
    format!("blobs/sha256/{}", sha(bytes))
}

/// A descriptor for `bytes` as JSON.
pub(super) fn descriptor(media_type: &str, bytes: &[u8], platform: &str) -> String {
    format!(
        r#"{{"mediaType":"{media_type}","digest":"sha256:{}","size":{}{platform}}}"#,
        sha(bytes),
        bytes.len()
    )
}

/// A temporary directory removed on drop.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new(name: &str) -> Self {
        // Unique per call: tests run in parallel and some share a name.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("berth-layout-{}-{n}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub(super) fn path(&self) -> &Path {
        &self.0
    }
    pub(super) fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Feeds every entry of `archive` to a new table spooling into `dir`.
pub(super) fn table(archive: &[u8], dir: &Path) -> Result<Table, ImageError> {
    let mut table = Table::new(dir);
    let mut a = tar::Archive::new(archive);
    for entry in a.entries().unwrap() {
        table.take(&mut entry.unwrap())?;
    }
    Ok(table)
}
