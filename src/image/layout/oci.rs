//! OCI image layouts: `oci-layout`, `index.json` (possibly through nested indexes or
//! docker manifest lists) → the manifest for the platform → its config and layers.

use super::json::{self, Config, Descriptor, Index, Manifest, OciLayout, PlatformJson};
use super::table::{Stored, Table};
use super::{Layer, Plan, Platform};
use crate::image::{Format, ImageError};

/// Deepest chain of indexes followed from `index.json`.
const MAX_NESTING: usize = 4;

/// An image manifest listed in an index, with the platform it states.
#[derive(Debug)]
struct Candidate {
    desc: Descriptor,
    platform: Option<Platform>,
}

/// How well a stated platform fits the wanted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fit {
    /// OS and architecture match; one side states no variant.
    Loose,
    /// OS, architecture and variant (or the lack of one) match.
    Exact,
}

pub(super) fn plan(table: &Table, platform: &Platform) -> Result<Plan, ImageError> {
    check_layout(table)?;
    let (_, stored) = table.lookup("index.json", "index.json")?;
    let index: Index = json::parse(&table.document(stored, "index.json")?, "index.json")?;
    let mut found = Vec::new();
    collect(table, &index.manifests, 0, &mut found)?;
    let chosen = choose(&found, platform)?;

    let what = match &chosen.platform {
        Some(p) => format!("image manifest for {p}"),
        None => "image manifest".to_owned(),
    };
    let (_, stored, what) = blob(table, &chosen.desc, &what)?;
    let manifest: Manifest = json::parse(&table.document(stored, &what)?, &what)?;
    let (_, stored, config_what) = blob(table, &manifest.config, "image config")?;
    let config: Config = json::parse(&table.document(stored, &config_what)?, &config_what)?;
    let n = manifest.layers.len();
    let diff_ids = config.diff_ids_for(&config_what, &what, n)?;
    let mut layers = Vec::with_capacity(n);
    for (i, (desc, diff_id)) in manifest.layers.iter().zip(diff_ids).enumerate() {
        let what = format!("layer {} of {n}", i + 1);
        if let Some(media_type) = desc.media_type.as_deref().filter(|t| !is_layer_type(t)) {
            return Err(ImageError::Format(format!(
                "{what} has media type {media_type:?}, which berth cannot apply (it applies tar layers, plain, gzip or zstd)"
            )));
        }
        let (key, _, what) = blob(table, desc, &what)?;
        layers.push(Layer {
            path: key.to_owned(),
            what,
            diff_id,
        });
    }
    Ok(Plan {
        defaults: config.defaults(),
        layers,
        format: Format::OciLayout,
    })
}

fn check_layout(table: &Table) -> Result<(), ImageError> {
    if !table.contains("oci-layout") {
        return Err(ImageError::Format(
            "the archive has index.json but no oci-layout: not an OCI image layout".into(),
        ));
    }
    let (_, stored) = table.lookup("oci-layout", "oci-layout")?;
    let layout: OciLayout = json::parse(&table.document(stored, "oci-layout")?, "oci-layout")?;
    if !layout.version.starts_with("1.") {
        return Err(ImageError::Format(format!(
            "oci-layout: imageLayoutVersion {:?} is not supported (berth reads 1.x)",
            layout.version
        )));
    }
    Ok(())
}

/// Gathers the image manifests of `manifests`, descending into nested indexes.
fn collect(
    table: &Table,
    manifests: &[Descriptor],
    depth: usize,
    found: &mut Vec<Candidate>,
) -> Result<(), ImageError> {
    for desc in manifests {
        match desc.media_type.as_deref() {
            Some(json::OCI_INDEX | json::DOCKER_LIST) => {
                if depth >= MAX_NESTING {
                    return Err(ImageError::Format(format!(
                        "index.json: image indexes nested more than {MAX_NESTING} deep"
                    )));
                }
                let (_, stored, what) = blob(table, desc, "image index")?;
                let nested: Index = json::parse(&table.document(stored, &what)?, &what)?;
                collect(table, &nested.manifests, depth + 1, found)?;
            }
            // A descriptor without a media type is taken for a manifest: its parse
            // says so if it is not one.
            Some(json::OCI_MANIFEST | json::DOCKER_MANIFEST) | None => {
                let platform = desc.platform.as_ref().map(stated);
                // Build attestations (SBOM, provenance) are manifests for unknown/unknown.
                let attestation = platform
                    .as_ref()
                    .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown");
                if !attestation {
                    found.push(Candidate {
                        desc: desc.clone(),
                        platform,
                    });
                }
            }
            Some(other) => log::debug!("index: skipping {} of media type {other}", desc.digest),
        }
    }
    Ok(())
}

/// The manifest for `wanted`: an exact match first, else one where only one side
/// states a variant; a single manifest that states no platform is taken as is.
fn choose<'c>(found: &'c [Candidate], wanted: &Platform) -> Result<&'c Candidate, ImageError> {
    let mut best: Option<(Fit, &Candidate)> = None;
    for c in found {
        if let Some(fit) = c.platform.as_ref().and_then(|p| fit(wanted, p)) {
            if best.is_none_or(|(b, _)| fit > b) {
                best = Some((fit, c));
            }
        }
    }
    if let Some((_, c)) = best {
        return Ok(c);
    }
    let mut available: Vec<String> = Vec::new();
    for p in found.iter().filter_map(|c| c.platform.as_ref()) {
        let p = p.to_string();
        if !available.contains(&p) {
            available.push(p);
        }
    }
    if !available.is_empty() {
        return Err(ImageError::NoPlatform {
            wanted: wanted.to_string(),
            available,
        });
    }
    let mut digests: Vec<&str> = found.iter().map(|c| c.desc.digest.as_str()).collect();
    digests.sort_unstable();
    digests.dedup();
    match (found.first(), digests.len()) {
        (Some(c), 1) => Ok(c),
        (None, _) => Err(ImageError::Format(
            "index.json lists no image manifest".into(),
        )),
        (Some(_), n) => Err(ImageError::Format(format!(
            "index.json lists {n} image manifests and none states its platform; berth takes one image per archive"
        ))),
    }
}

/// Whether `have` can run where `wanted` is asked for (see [`Fit`]).
fn fit(wanted: &Platform, have: &Platform) -> Option<Fit> {
    let (want_arch, have_arch) = (arch(&wanted.architecture), arch(&have.architecture));
    if wanted.os != have.os || want_arch != have_arch {
        return None;
    }
    let stated = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    match (stated(&wanted.variant), stated(&have.variant)) {
        (Some(a), Some(b)) => (a == b).then_some(Fit::Exact),
        (None, None) => Some(Fit::Exact),
        // arm64 has one variant so far: v8 and none are the same.
        (Some(v), None) | (None, Some(v)) if want_arch == "arm64" && v == "v8" => Some(Fit::Exact),
        _ => Some(Fit::Loose),
    }
}

/// The GOARCH name of an architecture some tools spell the kernel's way.
fn arch(a: &str) -> &str {
    match a {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i686" => "386",
        other => other,
    }
}

/// A platform as the index states it.
fn stated(p: &PlatformJson) -> Platform {
    Platform {
        os: p.os.clone(),
        architecture: p.architecture.clone(),
        variant: p.variant.clone().filter(|v| !v.is_empty()),
    }
}

/// Layer media types berth applies: tar, possibly compressed (the content says how).
fn is_layer_type(t: &str) -> bool {
    (t.starts_with("application/vnd.oci.image.layer.")
        || t.starts_with("application/vnd.docker.image.rootfs."))
        && !t.contains("encrypted")
}

/// The blob a descriptor names, checked against its digest and size: its key in
/// the table, its content, and a name for it that says where it is.
fn blob<'t>(
    table: &'t Table,
    desc: &Descriptor,
    what: &str,
) -> Result<(&'t str, &'t Stored, String), ImageError> {
    let path = format!("blobs/sha256/{}", json::sha256(&desc.digest, what)?);
    let (key, stored) = table.lookup(&path, what)?;
    let what = format!("{what} ({path})");
    if stored.size != desc.size {
        return Err(ImageError::Format(format!(
            "{what} has {} bytes but its descriptor says {}",
            stored.size, desc.size
        )));
    }
    Ok((key, stored, what))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{Node, TempDir, blob_name, descriptor, sha, table, tar};
    use super::*;

    fn p(s: &str) -> Platform {
        let mut parts = s.split('/');
        Platform {
            os: parts.next().unwrap().into(),
            architecture: parts.next().unwrap().into(),
            variant: parts.next().map(Into::into),
        }
    }

    #[test]
    fn platform_fit() {
        let cases = [
            ("linux/amd64", "linux/amd64", Some(Fit::Exact)),
            ("linux/amd64", "linux/x86_64", Some(Fit::Exact)),
            ("linux/amd64", "linux/arm64", None),
            ("linux/amd64", "windows/amd64", None),
            ("linux/arm/v7", "linux/arm/v7", Some(Fit::Exact)),
            ("linux/arm/v7", "linux/arm/v6", None),
            ("linux/arm/v7", "linux/arm", Some(Fit::Loose)),
            ("linux/arm", "linux/arm/v7", Some(Fit::Loose)),
            ("linux/arm64", "linux/arm64/v8", Some(Fit::Exact)),
            ("linux/arm64/v8", "linux/arm64", Some(Fit::Exact)),
            ("linux/arm64", "linux/aarch64", Some(Fit::Exact)),
            ("linux/arm64/v8", "linux/arm64/v9", None),
            ("linux/arm64", "linux/arm64/v9", Some(Fit::Loose)),
        ];
        for (wanted, have, expected) in cases {
            assert_eq!(fit(&p(wanted), &p(have)), expected, "{wanted} on {have}");
        }
    }

    fn candidate(digest: &str, platform: Option<&str>) -> Candidate {
        let desc = Descriptor {
            media_type: None,
            digest: digest.into(),
            size: 1,
            platform: None,
        };
        Candidate {
            desc,
            platform: platform.map(p),
        }
    }

    #[test]
    fn choosing_a_manifest() {
        let found = [
            candidate("amd", Some("linux/amd64")),
            candidate("arm", Some("linux/arm")),
            candidate("v7", Some("linux/arm/v7")),
            candidate("arm64", Some("linux/arm64/v8")),
        ];
        assert_eq!(
            choose(&found, &p("linux/arm/v7")).unwrap().desc.digest,
            "v7",
            "exact beats loose"
        );
        assert_eq!(
            choose(&found, &p("linux/arm/v6")).unwrap().desc.digest,
            "arm"
        );
        assert_eq!(
            choose(&found, &p("linux/arm64")).unwrap().desc.digest,
            "arm64"
        );
        let err = choose(&found[..], &p("linux/riscv64")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image has no linux/riscv64 manifest; it has: linux/amd64, linux/arm, linux/arm/v7, linux/arm64/v8"
        );
        let found = [
            candidate("amd", Some("linux/amd64")),
            candidate("v7", Some("linux/arm/v7")),
        ];
        match choose(&found, &p("linux/arm64")).unwrap_err() {
            ImageError::NoPlatform { wanted, available } => {
                assert_eq!(wanted, "linux/arm64");
                assert_eq!(available, vec!["linux/amd64", "linux/arm/v7"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            choose(&found, &p("linux/arm64")).unwrap_err().to_string(),
            "image has no linux/arm64 manifest; it has: linux/amd64, linux/arm/v7"
        );
    }

    #[test]
    fn a_manifest_without_platform_is_taken_when_alone() {
        let one = [candidate("x", None), candidate("x", None)];
        assert_eq!(choose(&one, &p("linux/arm64")).unwrap().desc.digest, "x");
        let two = [candidate("x", None), candidate("y", None)];
        assert_eq!(
            choose(&two, &p("linux/arm64")).unwrap_err().to_string(),
            "index.json lists 2 image manifests and none states its platform; berth takes one image per archive"
        );
        assert_eq!(
            choose(&[], &p("linux/arm64")).unwrap_err().to_string(),
            "index.json lists no image manifest"
        );
        // A stated platform that does not fit is not overridden by a platformless one.
        let mixed = [candidate("x", None), candidate("amd", Some("linux/amd64"))];
        assert!(matches!(
            choose(&mixed, &p("linux/arm64")),
            Err(ImageError::NoPlatform { .. })
        ));
    }

    const LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
    const GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

    /// An OCI archive: index.json → nested index → manifests for `platforms` (each
    /// with one layer) and an attestation manifest.
    struct Oci {
        files: Vec<(String, Vec<u8>)>,
    }

    impl Oci {
        fn new() -> Self {
            Oci {
                files: vec![("oci-layout".into(), LAYOUT.to_vec())],
            }
        }
        fn blob(&mut self, bytes: &[u8]) {
            self.files.push((blob_name(bytes), bytes.to_vec()));
        }
        /// A manifest (returned) with a config and one layer per element of `layers`.
        fn image(&mut self, layers: &[&[u8]], config_extra: &str) -> Vec<u8> {
            let diff_ids: Vec<String> = layers
                .iter()
                .map(|l| format!("\"sha256:{}\"", sha(l)))
                .collect();
            let config = format!(
                r#"{{"config":{{"Cmd":["run"]{config_extra}}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
                diff_ids.join(",")
            );
            let layer_descs: Vec<String> = layers.iter().map(|l| descriptor(GZ, l, "")).collect();
            let manifest = format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI}","config":{},"layers":[{}]}}"#,
                descriptor(
                    "application/vnd.oci.image.config.v1+json",
                    config.as_bytes(),
                    ""
                ),
                layer_descs.join(","),
                OCI = json::OCI_MANIFEST,
            );
            for l in layers {
                self.blob(l);
            }
            self.blob(config.as_bytes());
            self.blob(manifest.as_bytes());
            manifest.into_bytes()
        }
        fn index(&mut self, descriptors: &[String]) -> Vec<u8> {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
                json::OCI_INDEX,
                descriptors.join(",")
            )
            .into_bytes()
        }
        fn tar(&self) -> Vec<u8> {
            let entries: Vec<(&str, Node<'_>)> = self
                .files
                .iter()
                .map(|(n, b)| (n.as_str(), Node::File(b)))
                .collect();
            tar(&entries)
        }
    }

    fn platform_json(p: &str) -> String {
        let p = super::tests::p(p);
        let variant = p
            .variant
            .map(|v| format!(r#","variant":"{v}""#))
            .unwrap_or_default();
        format!(
            r#","platform":{{"architecture":"{}","os":"{}"{variant}}}"#,
            p.architecture, p.os
        )
    }

    fn multi_platform() -> Oci {
        let mut oci = Oci::new();
        let mut descs = Vec::new();
        for platform in ["linux/amd64", "linux/arm64", "linux/arm/v7"] {
            let manifest = oci.image(&[platform.as_bytes()], "");
            descs.push(descriptor(
                json::OCI_MANIFEST,
                &manifest,
                &platform_json(platform),
            ));
        }
        let attestation = oci.image(&[b"sbom"], "");
        descs.push(descriptor(
            json::OCI_MANIFEST,
            &attestation,
            &platform_json("unknown/unknown"),
        ));
        let nested = oci.index(&descs);
        oci.blob(&nested);
        let top = oci.index(&[descriptor(json::OCI_INDEX, &nested, "")]);
        oci.files.push(("index.json".into(), top));
        oci
    }

    #[test]
    fn plan_through_a_nested_index() {
        let dir = TempDir::new("oci-nested");
        let t = table(&multi_platform().tar(), dir.path()).unwrap();
        let plan = plan(&t, &p("linux/arm64")).unwrap();
        assert_eq!(plan.format, Format::OciLayout);
        assert_eq!(plan.defaults.cmd, vec!["run"]);
        let name = blob_name(b"linux/arm64");
        assert_eq!(
            plan.layers,
            vec![Layer {
                path: name.clone(),
                what: format!("layer 1 of 1 ({name})"),
                diff_id: sha(b"linux/arm64").parse().unwrap()
            }]
        );
        assert_eq!(
            super::plan(&t, &p("linux/riscv64"))
                .unwrap_err()
                .to_string(),
            "image has no linux/riscv64 manifest; it has: linux/amd64, linux/arm64, linux/arm/v7"
        );
    }

    #[test]
    fn descriptors_are_checked() {
        let dir = TempDir::new("oci-checks");
        let mut oci = Oci::new();
        let manifest = oci.image(&[b"layer one", b"layer two"], r#","Entrypoint":["/app"]"#);
        // The descriptor of the manifest states the wrong size.
        let wrong_size = descriptor(json::OCI_MANIFEST, &manifest, "")
            .replace(&format!("\"size\":{}", manifest.len()), "\"size\":3");
        let index = oci.index(&[wrong_size]);
        oci.files.push(("index.json".into(), index));
        let t = table(&oci.tar(), dir.path()).unwrap();
        assert_eq!(
            plan(&t, &p("linux/amd64")).unwrap_err().to_string(),
            format!(
                "image manifest ({}) has {} bytes but its descriptor says 3",
                blob_name(&manifest),
                manifest.len()
            )
        );

        // A layer blob left out of the archive.
        let mut oci = Oci::new();
        let manifest = oci.image(&[b"layer one", b"layer two"], "");
        oci.files.retain(|(n, _)| *n != blob_name(b"layer two"));
        let index = oci.index(&[descriptor(json::OCI_MANIFEST, &manifest, "")]);
        oci.files.push(("index.json".into(), index));
        let t = table(&oci.tar(), dir.path()).unwrap();
        assert_eq!(
            plan(&t, &p("linux/amd64")).unwrap_err().to_string(),
            format!(
                "layer 2 of 2 is not in the archive (no file \"{}\")",
                blob_name(b"layer two")
            )
        );
    }

    #[test]
    fn layout_and_media_types_are_checked() {
        let dir = TempDir::new("oci-types");
        let mut oci = Oci::new();
        let manifest = oci.image(&[b"layer"], "");
        let index = oci.index(&[descriptor(json::OCI_MANIFEST, &manifest, "")]);
        oci.files.push(("index.json".into(), index));
        let t = table(&oci.tar(), dir.path()).unwrap();
        assert_eq!(
            plan(&t, &p("linux/amd64")).unwrap().defaults.cmd,
            vec!["run"]
        );

        let mut encrypted = Oci {
            files: oci.files.clone(),
        };
        let text = String::from_utf8(manifest.clone())
            .unwrap()
            .replace(GZ, "application/vnd.oci.image.layer.v1.tar+gzip+encrypted");
        encrypted.blob(text.as_bytes());
        encrypted.files.retain(|(n, _)| n != "index.json");
        let index = encrypted.index(&[descriptor(json::OCI_MANIFEST, text.as_bytes(), "")]);
        encrypted.files.push(("index.json".into(), index));
        let t = table(&encrypted.tar(), dir.path()).unwrap();
        assert_eq!(
            plan(&t, &p("linux/amd64")).unwrap_err().to_string(),
            "layer 1 of 1 has media type \"application/vnd.oci.image.layer.v1.tar+gzip+encrypted\", which berth cannot apply (it applies tar layers, plain, gzip or zstd)"
        );

        let mut no_layout = Oci {
            files: oci.files.clone(),
        };
        no_layout.files.retain(|(n, _)| n != "oci-layout");
        let t = table(&no_layout.tar(), dir.path()).unwrap();
        assert_eq!(
            plan(&t, &p("linux/amd64")).unwrap_err().to_string(),
            "the archive has index.json but no oci-layout: not an OCI image layout"
        );
        let mut v2 = Oci {
            files: oci.files.clone(),
        };
        v2.files[0].1 = br#"{"imageLayoutVersion":"2.0.0"}"#.to_vec();
        let t = table(&v2.tar(), dir.path()).unwrap();
        assert_eq!(
            plan(&t, &p("linux/amd64")).unwrap_err().to_string(),
            "oci-layout: imageLayoutVersion \"2.0.0\" is not supported (berth reads 1.x)"
        );
    }

    #[test]
    fn layer_count_must_match_diff_ids() {
        let dir = TempDir::new("oci-count");
        let mut oci = Oci::new();
        let manifest = oci.image(&[b"a", b"b"], "");
        let text = String::from_utf8(manifest).unwrap();
        // Drop the second layer descriptor from the manifest.
        let cut = text
            .find(&format!(",{}", descriptor(GZ, b"b", "")))
            .unwrap();
        let text = format!("{}]}}", &text[..cut]);
        oci.blob(text.as_bytes());
        let index = oci.index(&[descriptor(json::OCI_MANIFEST, text.as_bytes(), "")]);
        oci.files.push(("index.json".into(), index));
        let t = table(&oci.tar(), dir.path()).unwrap();
        let err = plan(&t, &p("linux/amd64")).unwrap_err().to_string();
        assert!(
            err.starts_with("image manifest (blobs/sha256/")
                && err.contains(") lists 1 layers but image config (blobs/sha256/"),
            "{err}"
        );
        assert!(err.ends_with(") has 2 diff_ids"), "{err}");
    }
}
