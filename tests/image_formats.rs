//! docker-save and OCI image-layout archives, built here, unpacked by
//! `berth::image::unpack` into real directories: three layers with whiteouts and
//! opaque directories, gzip and zstd layers, a multi-platform index, and the blob and
//! diff_id checks. Runs as root (owners are applied as the archive states them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::Path;

use common::{TempDir, require_root};

use berth::digest::sha256_file;
use berth::image::layout::Platform;
use berth::image::{Format, ImageDefaults, ImageError, Limits, Unpacked, unpack};
use sha2::{Digest as _, Sha256};

// ---------------------------------------------------------------- helpers

macro_rules! require_root {
    () => {
        require_root("unpacking applies the archive's owners, which needs root");
    };
}

fn sha(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

fn platform(s: &str) -> Platform {
    let mut parts = s.split('/');
    Platform {
        os: parts.next().unwrap().into(),
        architecture: parts.next().unwrap().into(),
        variant: parts.next().map(Into::into),
    }
}

/// An entry of a layer tar.
enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Link(&'a str, &'a str),
}

/// A layer: an uncompressed tar, as a tool writes it (owners 0, fixed mtime).
fn layer(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        match e {
            E::Dir(path) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, path, &[][..]).unwrap();
            }
            E::File(path, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, *data).unwrap();
            }
            E::Link(path, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    ruzstd::encoding::compress(data, &mut out, ruzstd::encoding::CompressionLevel::Fastest);
    out
}

/// Bytes that do not compress, so that a layer's blob is large enough to be spooled
/// to a file rather than kept in memory.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The outer archive: `files` in order, with the directories a tool writes first.
fn archive(dirs: &[&str], files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for d in dirs {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, d, &[][..]).unwrap();
    }
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// What a path in an unpacked tree is.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

fn tree(root: &Path) -> BTreeMap<String, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    Node::Symlink(fs::read_link(&path).unwrap().to_string_lossy().into_owned()),
                );
            } else if meta.is_dir() {
                out.insert(rel, Node::Dir);
                walk(root, &path, out);
            } else {
                out.insert(rel, Node::File(fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn expect_tree(entries: &[(&str, Node)]) -> BTreeMap<String, Node> {
    entries
        .iter()
        .map(|(p, n)| {
            let n = match n {
                Node::Dir => Node::Dir,
                Node::File(b) => Node::File(b.clone()),
                Node::Symlink(t) => Node::Symlink(t.clone()),
            };
            (p.to_string(), n)
        })
        .collect()
}

/// Writes `bytes` as an image file and unpacks it for `platform`, verifying the file
/// against its own sha256. Returns the result and the tree unpacked (if any).
fn unpack_bytes(
    bytes: &[u8],
    name: &str,
    platform: &Platform,
) -> (
    Result<Unpacked, ImageError>,
    BTreeMap<String, Node>,
    TempDir,
) {
    let dir = TempDir::new(name);
    let file = dir.path().join("image.tar");
    fs::write(&file, bytes).unwrap();
    let rootfs = dir.mkdir("rootfs");
    let spool = dir.mkdir("spool");
    let expected = sha256_file(&file).unwrap();
    let result = unpack(
        &file,
        &expected,
        &rootfs,
        &spool,
        &Limits::default(),
        platform,
    );
    if result.is_ok() {
        assert_eq!(
            fs::read_dir(&spool).unwrap().count(),
            0,
            "every spool file is removed after its layer is applied"
        );
    }
    let tree = tree(&rootfs);
    (result, tree, dir)
}

fn blob_mismatch(e: ImageError) -> (String, String, String) {
    match e {
        ImageError::BlobMismatch {
            what,
            expected,
            actual,
        } => (what, expected, actual),
        other => panic!("expected a blob mismatch, got: {other}"),
    }
}

// ---------------------------------------------------------------- the image

/// The three layers, uncompressed. Layer 1 makes a tree; layer 2 deletes a file of
/// layer 1 (`.wh.old.conf`), empties `var/cache` (`.wh..wh..opq`) and replaces a
/// file; layer 3 replaces `srv/www` by an opaque directory, deletes a directory of
/// layer 1, adds a symlink and a new opaque directory.
fn layers() -> [Vec<u8>; 3] {
    let big = noise(150_000);
    let one = layer(&[
        E::Dir("bin/"),
        E::File("bin/busybox", b"#!busybox"),
        E::Link("bin/sh", "busybox"),
        E::Dir("etc/"),
        E::File("etc/app.conf", b"v1"),
        E::File("etc/old.conf", b"old"),
        E::Dir("srv/"),
        E::Dir("srv/www/"),
        E::File("srv/www/index.html", b"old index"),
        E::Dir("srv/www/old/"),
        E::File("srv/www/old/page", b"old page"),
        E::Dir("tmpdir/"),
        E::File("tmpdir/x", b"x"),
        E::Dir("usr/"),
        E::Dir("usr/share/"),
        E::File("usr/share/big.bin", &big),
        E::Dir("var/"),
        E::Dir("var/cache/"),
        E::File("var/cache/a", b"a"),
        E::Dir("var/cache/sub/"),
        E::File("var/cache/sub/b", b"b"),
    ]);
    let two = layer(&[
        E::Dir("etc/"),
        E::File("etc/.wh.old.conf", b""),
        E::File("etc/app.conf", b"v2"),
        E::Dir("var/cache/"),
        E::File("var/cache/.wh..wh..opq", b""),
        E::File("var/cache/new", b"fresh"),
    ]);
    let three = layer(&[
        E::File(".wh.tmpdir", b""),
        E::Dir("opt/"),
        E::Dir("opt/data/"),
        E::File("opt/data/.wh..wh..opq", b""),
        E::File("opt/data/f", b"f"),
        E::Dir("srv/www/"),
        E::File("srv/www/.wh..wh..opq", b""),
        E::File("srv/www/index.html", b"new index"),
        E::Dir("usr/bin/"),
        E::Link("usr/bin/app", "../../bin/busybox"),
    ]);
    [one, two, three]
}

fn expected_tree() -> BTreeMap<String, Node> {
    expect_tree(&[
        ("bin", Node::Dir),
        ("bin/busybox", Node::File(b"#!busybox".to_vec())),
        ("bin/sh", Node::Symlink("busybox".into())),
        ("etc", Node::Dir),
        ("etc/app.conf", Node::File(b"v2".to_vec())),
        ("opt", Node::Dir),
        ("opt/data", Node::Dir),
        ("opt/data/f", Node::File(b"f".to_vec())),
        ("srv", Node::Dir),
        ("srv/www", Node::Dir),
        ("srv/www/index.html", Node::File(b"new index".to_vec())),
        ("usr", Node::Dir),
        ("usr/bin", Node::Dir),
        ("usr/bin/app", Node::Symlink("../../bin/busybox".into())),
        ("usr/share", Node::Dir),
        ("usr/share/big.bin", Node::File(noise(150_000))),
        ("var", Node::Dir),
        ("var/cache", Node::Dir),
        ("var/cache/new", Node::File(b"fresh".to_vec())),
    ])
}

fn expected_defaults() -> ImageDefaults {
    ImageDefaults {
        entrypoint: vec!["/bin/sh".into(), "-c".into()],
        cmd: vec!["exec app".into()],
        env: vec!["PATH=/usr/bin:/bin".into(), "MODE=test".into()],
        workdir: Some("/srv/www".into()),
        user: Some("1000:1000".into()),
    }
}

/// An image config as docker and buildkit write it, with `diff_ids`.
fn config(arch: &str, diff_ids: &[String]) -> Vec<u8> {
    let ids: Vec<String> = diff_ids.iter().map(|d| format!("\"sha256:{d}\"")).collect();
    format!(
        r#"{{"architecture":"{arch}","os":"linux","created":"2024-05-01T10:00:00Z","config":{{"User":"1000:1000","Env":["PATH=/usr/bin:/bin","MODE=test"],"Entrypoint":["/bin/sh","-c"],"Cmd":["exec app"],"WorkingDir":"/srv/www","Labels":{{"org.opencontainers.image.title":"gw"}}}},"rootfs":{{"type":"layers","diff_ids":[{}]}},"history":[{{"created_by":"test"}}]}}"#,
        ids.join(",")
    )
    .into_bytes()
}

// ---------------------------------------------------------------- OCI

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

fn descriptor(media_type: &str, bytes: &[u8], extra: &str) -> String {
    format!(
        r#"{{"mediaType":"{media_type}","digest":"sha256:{}","size":{}{extra}}}"#,
        sha(bytes),
        bytes.len()
    )
}

fn platform_json(p: &str) -> String {
    let p = platform(p);
    let variant = p
        .variant
        .map(|v| format!(r#","variant":"{v}""#))
        .unwrap_or_default();
    format!(
        r#","platform":{{"architecture":"{}","os":"{}"{variant}}}"#,
        p.architecture, p.os
    )
}

/// An OCI layout being assembled: its blobs by name.
#[derive(Default)]
struct Oci {
    blobs: Vec<(String, Vec<u8>)>,
}

impl Oci {
    fn blob(&mut self, bytes: &[u8]) {
        let name = format!("blobs/sha256/{}", sha(bytes));
        if !self.blobs.iter().any(|(n, _)| *n == name) {
            self.blobs.push((name, bytes.to_vec()));
        }
    }

    /// Adds an image (blobs: `(media type, blob)` per layer, config from `diff_ids`)
    /// and returns its manifest.
    fn image(&mut self, layers: &[(&str, Vec<u8>)], config: &[u8]) -> Vec<u8> {
        let descs: Vec<String> = layers.iter().map(|(t, b)| descriptor(t, b, "")).collect();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{},"layers":[{}]}}"#,
            descriptor(OCI_CONFIG, config, ""),
            descs.join(",")
        )
        .into_bytes();
        for (_, b) in layers {
            self.blob(b);
        }
        self.blob(config);
        self.blob(&manifest);
        manifest
    }

    /// The archive with `index` as index.json, as `skopeo copy ... oci-archive:` writes it.
    fn archive(&self, index: &[u8]) -> Vec<u8> {
        let mut files = vec![(
            "oci-layout".to_owned(),
            br#"{"imageLayoutVersion": "1.0.0"}"#.to_vec(),
        )];
        files.extend(self.blobs.iter().cloned());
        files.push(("index.json".into(), index.to_vec()));
        archive(&["blobs/", "blobs/sha256/"], &files)
    }
}

fn index(descriptors: &[String]) -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        descriptors.join(",")
    )
    .into_bytes()
}

/// The three-layer image as an OCI archive: layer 1 plain tar, layer 2 gzip, layer 3
/// zstd. `tweak` may change the blobs and diff_ids before the archive is assembled.
fn oci_archive(tweak: impl FnOnce(&mut [(&str, Vec<u8>)], &mut Vec<String>)) -> Vec<u8> {
    oci_archive_with(tweak, |_| {})
}

/// [`oci_archive`], and `tamper` may change the blobs (by name) after the manifest
/// described them.
fn oci_archive_with(
    tweak: impl FnOnce(&mut [(&str, Vec<u8>)], &mut Vec<String>),
    tamper: impl FnOnce(&mut Vec<(String, Vec<u8>)>),
) -> Vec<u8> {
    let [one, two, three] = layers();
    let mut diff_ids = vec![sha(&one), sha(&two), sha(&three)];
    let mut blobs = [
        ("application/vnd.oci.image.layer.v1.tar", one),
        ("application/vnd.oci.image.layer.v1.tar+gzip", gzip(&two)),
        ("application/vnd.oci.image.layer.v1.tar+zstd", zstd(&three)),
    ];
    tweak(&mut blobs, &mut diff_ids);
    let mut oci = Oci::default();
    let manifest = oci.image(&blobs, &config("amd64", &diff_ids));
    let descriptor = descriptor(
        OCI_MANIFEST,
        &manifest,
        r#","annotations":{"org.opencontainers.image.ref.name":"latest"}"#,
    );
    tamper(&mut oci.blobs);
    oci.archive(&index(&[descriptor]))
}

#[test]
fn oci_three_layers_with_whiteouts() {
    require_root!();
    let (result, tree, _dir) =
        unpack_bytes(&oci_archive(|_, _| {}), "oci", &platform("linux/arm64"));
    let unpacked = result.unwrap();
    assert_eq!(unpacked.format, Format::OciLayout);
    assert_eq!(unpacked.defaults, expected_defaults());
    assert_eq!(tree, expected_tree());
}

#[test]
fn oci_blob_not_matching_its_descriptor() {
    let [_, two, _] = layers();
    let digest = sha(&gzip(&two));
    let bytes = oci_archive_with(
        |_, _| {},
        |blobs| {
            // Same name and size as the descriptor says, one byte changed.
            let (_, data) = blobs
                .iter_mut()
                .find(|(n, _)| n.ends_with(&digest))
                .unwrap();
            let last = data.len() - 1;
            data[last] ^= 0xff;
        },
    );
    let (result, tree, _dir) = unpack_bytes(&bytes, "oci-blob", &platform("linux/amd64"));
    let (what, expected, actual) = blob_mismatch(result.unwrap_err());
    assert_eq!(what, format!("layer 2 of 3 (blobs/sha256/{digest})"));
    assert_eq!(expected, digest);
    assert_ne!(actual, digest);
    assert!(
        tree.is_empty(),
        "nothing is applied before every blob is checked"
    );
}

#[test]
fn oci_wrong_diff_id() {
    require_root!();
    let wrong = sha(b"not the layer");
    let bytes = oci_archive(|_, diff_ids| diff_ids[2] = wrong.clone());
    let (result, _, _dir) = unpack_bytes(&bytes, "oci-diff-id", &platform("linux/amd64"));
    let (what, expected, actual) = blob_mismatch(result.unwrap_err());
    let [_, _, three] = layers();
    assert!(what.starts_with("layer 3 of 3 (blobs/sha256/"), "{what}");
    assert!(what.ends_with(") uncompressed (diff_id)"), "{what}");
    assert_eq!((expected, actual), (wrong, sha(&three)));
}

// ---------------------------------------------------------------- multi-platform

/// skopeo's and buildx's shape: index.json → one nested index → a manifest per
/// platform (each with one gzip layer holding a file that names the platform) and a
/// build attestation.
fn multi_platform_archive() -> Vec<u8> {
    let mut oci = Oci::default();
    let mut descs = Vec::new();
    for p in [
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
        "unknown/unknown",
    ] {
        let tar = layer(&[E::File("platform", p.as_bytes())]);
        let arch = platform(p).architecture;
        let manifest = oci.image(
            &[("application/vnd.oci.image.layer.v1.tar+gzip", gzip(&tar))],
            &config(&arch, &[sha(&tar)]),
        );
        descs.push(descriptor(OCI_MANIFEST, &manifest, &platform_json(p)));
    }
    let nested = index(&descs);
    oci.blob(&nested);
    oci.archive(&index(&[descriptor(OCI_INDEX, &nested, "")]))
}

#[test]
fn multi_platform_index_chooses_the_platform() {
    require_root!();
    let bytes = multi_platform_archive();
    for p in [
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
        "linux/arm64/v8",
    ] {
        let (result, tree, _dir) = unpack_bytes(&bytes, "multi", &platform(p));
        assert_eq!(result.unwrap().format, Format::OciLayout);
        let chosen = p.trim_end_matches("/v8");
        assert_eq!(
            tree,
            expect_tree(&[("platform", Node::File(chosen.as_bytes().to_vec()))]),
            "{p}"
        );
    }
}

#[test]
fn multi_platform_index_without_the_platform() {
    let (result, tree, _dir) = unpack_bytes(
        &multi_platform_archive(),
        "multi-missing",
        &platform("linux/riscv64"),
    );
    let err = result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "image has no linux/riscv64 manifest; it has: linux/amd64, linux/arm64, linux/arm/v7"
    );
    assert!(matches!(err, ImageError::NoPlatform { .. }));
    assert!(tree.is_empty());
}

// ---------------------------------------------------------------- docker save

/// The three-layer image as `docker save` (before 25) writes it: `<id>/layer.tar`,
/// `<id>/json`, `<id>/VERSION`, `<config sha>.json`, manifest.json, repositories.
/// `link: Some((i, j))` writes layer i as a symlink to layer j's file.
fn docker_archive(
    layers: &[Vec<u8>],
    diff_ids: &[String],
    link: Option<(usize, usize)>,
) -> Vec<u8> {
    let config = config("amd64", diff_ids);
    let config_name = format!("{}.json", sha(&config));
    let ids: Vec<String> = (0..layers.len())
        .map(|i| sha(format!("v1 layer {i}").as_bytes()))
        .collect();
    let layer_paths: Vec<String> = ids.iter().map(|id| format!("{id}/layer.tar")).collect();
    let quoted: Vec<String> = layer_paths.iter().map(|p| format!("\"{p}\"")).collect();
    let manifest = format!(
        r#"[{{"Config":"{config_name}","RepoTags":["gw:1.0"],"Layers":[{}]}}]"#,
        quoted.join(",")
    );
    let mut b = tar::Builder::new(Vec::new());
    let file = |b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
    };
    for (i, id) in ids.iter().enumerate() {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, format!("{id}/"), &[][..]).unwrap();
        file(&mut b, &format!("{id}/VERSION"), b"1.0");
        file(
            &mut b,
            &format!("{id}/json"),
            format!(r#"{{"id":"{id}"}}"#).as_bytes(),
        );
        match link {
            Some((from, to)) if from == i => {
                let mut h = tar::Header::new_ustar();
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(
                    &mut h,
                    format!("{id}/layer.tar"),
                    format!("../{}/layer.tar", ids[to]),
                )
                .unwrap();
            }
            _ => file(&mut b, &format!("{id}/layer.tar"), &layers[i]),
        }
    }
    file(&mut b, &config_name, &config);
    file(&mut b, "manifest.json", manifest.as_bytes());
    file(
        &mut b,
        "repositories",
        format!(r#"{{"gw":{{"1.0":"{}"}}}}"#, ids[ids.len() - 1]).as_bytes(),
    );
    b.into_inner().unwrap()
}

#[test]
fn docker_save_three_layers_with_whiteouts() {
    require_root!();
    let layers = layers();
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    let (result, tree, _dir) = unpack_bytes(
        &docker_archive(&layers, &diff_ids, None),
        "docker",
        &platform("linux/amd64"),
    );
    let unpacked = result.unwrap();
    assert_eq!(unpacked.format, Format::DockerArchive);
    assert_eq!(unpacked.defaults, expected_defaults());
    assert_eq!(tree, expected_tree());
}

#[test]
fn docker_save_links_a_repeated_layer() {
    require_root!();
    // docker save writes a layer it has already written as a symlink to the first copy.
    let empty = layer(&[]);
    let [one, two, three] = layers();
    let layers = vec![one, empty.clone(), two, empty, three];
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    let (result, tree, _dir) = unpack_bytes(
        &docker_archive(&layers, &diff_ids, Some((3, 1))),
        "docker-link",
        &platform("linux/amd64"),
    );
    assert_eq!(result.unwrap().format, Format::DockerArchive);
    assert_eq!(tree, expected_tree());
}

#[test]
fn docker_save_wrong_diff_id() {
    require_root!();
    let layers = layers();
    let mut diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    let wrong = sha(b"other");
    diff_ids[1] = wrong.clone();
    let (result, _, _dir) = unpack_bytes(
        &docker_archive(&layers, &diff_ids, None),
        "docker-diff-id",
        &platform("linux/amd64"),
    );
    let (what, expected, actual) = blob_mismatch(result.unwrap_err());
    assert!(
        what.starts_with("layer 2 of 3 (") && what.ends_with("/layer.tar) uncompressed (diff_id)"),
        "{what}"
    );
    assert_eq!((expected, actual), (wrong, sha(&layers[1])));
}
