//! docker-save and OCI image-layout archives.
//!
//! `unpack` reads the archive once: [`Spool::entry`] keeps its JSON documents and
//! small blobs in memory (bounded) and streams every other blob to a file in the
//! spool directory, hashing each. Only after the archive's own digest is verified,
//! [`Spool::apply`] reads the documents, checks every blob against the digest and
//! size that describe it, and applies the layers in order, each checked against its
//! diff_id.
//!
//! - `names`: which entry names belong to these formats; lexical path checks.
//! - `table`: what the pass keeps, in memory or spooled.
//! - `json`: the documents (parsed with serde_yaml: JSON is YAML).
//! - `oci`, `docker`: from the documents to a `Plan`; platform choice.
//! - `apply`: the plan's layers onto the rootfs.

mod apply;
mod docker;
mod json;
mod names;
mod oci;
mod table;

use std::fmt;
use std::io::Read;
use std::path::Path;

use super::extract::Extractor;
use super::{Format, ImageDefaults, ImageError};
use crate::manifest::types::Digest;

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
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant,
        }
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
pub struct Spool {
    table: table::Table,
}

/// What an archive's documents say to do: the defaults of the image and its layers,
/// in order.
#[derive(Debug)]
struct Plan {
    defaults: ImageDefaults,
    layers: Vec<Layer>,
    format: Format,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Layer {
    /// The blob's key in the table.
    path: String,
    /// "layer 2 of 3 (blobs/sha256/…)", for errors.
    what: String,
    /// The sha256 of the uncompressed tar.
    diff_id: Digest,
}

impl Spool {
    /// `dir` is an existing empty directory for the blobs (inside the temporary
    /// directory of the install, so it is removed with it).
    pub fn new(dir: &Path) -> Result<Self, ImageError> {
        Ok(Spool {
            table: table::Table::new(dir),
        })
    }

    /// Whether `path` (an archive entry name without leading `./`) belongs to an OCI
    /// layout or a docker-save archive; decided on the first entry of an archive.
    pub fn is_layout_path(path: &str) -> bool {
        names::classify(path).is_some()
    }

    /// Takes one entry of the outer archive: refuses absolute and `..` names and
    /// links that leave the archive, ignores directories and files these formats do
    /// not need, keeps the rest. A blob that does not hash to its name is reported
    /// by [`Spool::apply`], after the archive's own digest has been checked: a damaged
    /// download is then told as an image digest mismatch, not as a blob's.
    pub fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ImageError> {
        self.table.take(entry)
    }

    /// After the outer archive is verified: finds the image (for `platform`), then
    /// applies its layers in order with `extractor`, checking every blob against its
    /// descriptor and every layer against its diff_id.
    ///
    /// An archive with both `index.json` and `manifest.json` (docker 25 and later
    /// write both) is read as an OCI layout: its index states platforms.
    pub fn apply(
        self,
        platform: &Platform,
        extractor: &mut Extractor,
    ) -> Result<(ImageDefaults, Format), ImageError> {
        let plan = self.plan(platform)?;
        // Blobs no document refers to are checked too: a broken archive is refused
        // whole (after the used ones, so that an error names a blob's role).
        self.table.verify_names()?;
        apply::apply(self.table, &plan, extractor)?;
        Ok((plan.defaults, plan.format))
    }

    fn plan(&self, platform: &Platform) -> Result<Plan, ImageError> {
        if self.table.contains("index.json") {
            oci::plan(&self.table, platform)
        } else if self.table.contains("manifest.json") {
            docker::plan(&self.table)
        } else {
            Err(ImageError::Format(
                "the archive has neither index.json (OCI image layout) nor manifest.json (docker save)".into(),
            ))
        }
    }
}

#[cfg(test)]
mod testutil;

#[cfg(test)]
mod tests {
    use super::testutil::{Node, TempDir, blob_name, descriptor, sha, tar};
    use super::*;
    use crate::image::Limits;

    #[test]
    fn platforms_print_as_oci_names_them() {
        let p = |os: &str, arch: &str, v: Option<&str>| Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: v.map(Into::into),
        };
        assert_eq!(p("linux", "arm", Some("v7")).to_string(), "linux/arm/v7");
        assert_eq!(p("linux", "arm64", None).to_string(), "linux/arm64");
        let current = Platform::current();
        assert_eq!(current.os, "linux");
        assert!(
            !current.architecture.is_empty()
                && current.architecture != "x86_64"
                && current.architecture != "aarch64"
        );
    }

    #[test]
    fn layout_paths() {
        let hex = sha(b"x");
        for yes in [
            "oci-layout".to_owned(),
            "index.json".into(),
            "blobs".into(),
            "blobs/".into(),
            "blobs/sha256".into(),
            format!("blobs/sha256/{hex}"),
            "manifest.json".into(),
            "repositories".into(),
            hex.clone(),
            format!("{hex}/"),
            format!("{hex}/layer.tar"),
            format!("{hex}/json"),
            format!("{hex}/VERSION"),
            format!("{hex}.json"),
            format!("{hex}.tar"),
        ] {
            assert!(Spool::is_layout_path(&yes), "{yes}");
        }
        for no in [
            "etc",
            "etc/",
            "bin/sh",
            ".berth-image.yaml",
            "blobs/sha256/abc",
            "index.json/x",
            "json",
            "layer.tar",
        ] {
            assert!(!Spool::is_layout_path(no), "{no}");
        }
    }

    /// Runs the spool over `entries` and applies it (no layers need extracting).
    fn run(entries: &[(&str, Node<'_>)]) -> Result<(ImageDefaults, Format), ImageError> {
        let spool_dir = TempDir::new("spool-api");
        let root = TempDir::new("spool-api-root");
        let mut spool = Spool::new(spool_dir.path())?;
        let archive = tar(entries);
        let mut a = tar::Archive::new(&archive[..]);
        for e in a.entries().unwrap() {
            spool.entry(&mut e.unwrap())?;
        }
        let mut extractor = Extractor::new(root.path(), &Limits::default())?;
        spool.apply(&Platform::current(), &mut extractor)
    }

    const EMPTY_CONFIG: &[u8] =
        br#"{"config":{"Entrypoint":["/oci"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;

    fn oci_files() -> Vec<(String, Vec<u8>)> {
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{},"layers":[]}}"#,
            descriptor("application/vnd.oci.image.config.v1+json", EMPTY_CONFIG, "")
        );
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
            descriptor(json::OCI_MANIFEST, manifest.as_bytes(), "")
        );
        vec![
            (
                "oci-layout".into(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            (blob_name(EMPTY_CONFIG), EMPTY_CONFIG.to_vec()),
            (blob_name(manifest.as_bytes()), manifest.into_bytes()),
            ("index.json".into(), index.into_bytes()),
        ]
    }

    fn entries(files: &[(String, Vec<u8>)]) -> Vec<(&str, Node<'_>)> {
        files
            .iter()
            .map(|(n, b)| (n.as_str(), Node::File(b)))
            .collect()
    }

    #[test]
    fn oci_is_preferred_when_both_documents_exist() {
        let mut files = oci_files();
        assert_eq!(
            run(&entries(&files)).unwrap(),
            (
                ImageDefaults {
                    entrypoint: vec!["/oci".into()],
                    ..Default::default()
                },
                Format::OciLayout
            )
        );
        // docker 25 and later write manifest.json beside index.json.
        files.push((
            "manifest.json".into(),
            format!(
                r#"[{{"Config":"{}","Layers":[]}}]"#,
                blob_name(EMPTY_CONFIG)
            )
            .into_bytes(),
        ));
        assert_eq!(run(&entries(&files)).unwrap().1, Format::OciLayout);
        files.retain(|(n, _)| n != "index.json" && n != "oci-layout");
        assert_eq!(run(&entries(&files)).unwrap().1, Format::DockerArchive);
        files.retain(|(n, _)| n != "manifest.json");
        assert_eq!(
            run(&entries(&files)).unwrap_err().to_string(),
            "the archive has neither index.json (OCI image layout) nor manifest.json (docker save)"
        );
    }

    #[test]
    fn unused_blobs_are_verified_too() {
        let mut files = oci_files();
        files.push((blob_name(b"unused"), b"changed".to_vec()));
        assert_eq!(
            run(&entries(&files)).unwrap_err().to_string(),
            format!(
                "file {} digest mismatch: expected {}, got {}",
                blob_name(b"unused"),
                sha(b"unused"),
                sha(b"changed")
            )
        );
    }
}
