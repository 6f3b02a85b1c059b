//! Fuzz-style property test of the image path: mutated plain, gzip, zstd and OCI
//! archives go through `unpack`, which must return (Ok or a clear error), never panic,
//! and never write outside its directories. Seeded: the same inputs every run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::fs;
use std::io::Write as _;
use std::path::Path;

use berth::image::layout::Platform;
use berth::image::{Limits, unpack};
use common::{Rng, TempDir, require_root};

/// Mutated archives per run (BERTH_FUZZ_ROUNDS overrides, for longer local runs).
const ROUNDS: usize = 3000;

fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, body) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(body.len() as u64);
        b.append_data(&mut h, name, *body).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "lib", "usr/lib").unwrap();
    b.into_inner().unwrap()
}

fn corpus() -> Vec<Vec<u8>> {
    let plain = tar_of(&[
        ("etc/motd", b"hello\n"),
        ("usr/lib/x.so", &[7u8; 3000]),
        ("bin/app", b"#!/bin/sh\n"),
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let mut zst = Vec::new();
    ruzstd::encoding::compress(
        &plain[..],
        &mut zst,
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    // A minimal OCI layout around the plain tar as its one layer.
    let sha = |b: &[u8]| berth::digest::sha256_reader(b).unwrap().to_string();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/bin/app"]}},"rootfs":{{"type":"layers","diff_ids":["sha256:{}"]}}}}"#,
        sha(&plain)
    );
    let manifest = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:{}","size":{}}}]}}"#,
        sha(config.as_bytes()),
        config.len(),
        sha(&plain),
        plain.len()
    );
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{}","size":{}}}]}}"#,
        sha(manifest.as_bytes()),
        manifest.len()
    );
    let blob = |d: String| format!("blobs/sha256/{d}");
    let oci = tar_of(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json", index.as_bytes()),
        (&blob(sha(manifest.as_bytes())), manifest.as_bytes()),
        (&blob(sha(config.as_bytes())), config.as_bytes()),
        (&blob(sha(&plain)), &plain),
    ]);
    vec![plain, gz, zst, oci]
}

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut bytes = base.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(bytes.len());
        match rng.below(4) {
            0 => bytes[at] = rng.next() as u8,
            1 => bytes[at] ^= 1 << rng.below(8),
            2 => bytes.truncate(at),
            _ => {
                let end = (at + rng.below(64)).min(bytes.len());
                bytes.drain(at..end);
            }
        }
        if bytes.is_empty() {
            break;
        }
    }
    bytes
}

fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            found.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.symlink_metadata().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn mutated_archives_never_panic_or_escape() {
    require_root("unpacking applies the archive's owners");
    let corpus = corpus();
    let mut rng = Rng(0x5eed_0fa1);
    let scratch = TempDir::new("unpack-fuzz");
    scratch.write("outside/canary", b"canary");
    let before = tree(scratch.path());
    let rounds = std::env::var("BERTH_FUZZ_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    for round in 0..rounds {
        let base = &corpus[round % corpus.len()];
        let bytes = if round < corpus.len() {
            base.clone()
        } else {
            mutate(&mut rng, base)
        };
        let image = scratch.write("image", &bytes);
        let digest = berth::digest::sha256_reader(&bytes[..]).unwrap();
        let work = scratch.join("work");
        let (rootfs, spool) = (work.join("rootfs"), work.join("spool"));
        fs::create_dir_all(&rootfs).unwrap();
        fs::create_dir_all(&spool).unwrap();
        let result = unpack(
            &image,
            &digest,
            &rootfs,
            &spool,
            &Limits::default(),
            &Platform {
                os: "linux".into(),
                architecture: "amd64".into(),
                variant: None,
            },
        );
        if round < corpus.len() {
            let unpacked = result.unwrap_or_else(|e| panic!("corpus {round} must unpack: {e}"));
            assert!(
                rootfs.join("etc/motd").is_file(),
                "corpus {round}: {unpacked:?}"
            );
        } else if let Err(e) = result {
            let message = e.to_string();
            assert!(
                !message.is_empty() && !message.contains('\n'),
                "{message:?}"
            );
        }
        fs::remove_dir_all(&work).unwrap();
        fs::remove_file(&image).unwrap();
        assert_eq!(
            tree(scratch.path()),
            before,
            "round {round} wrote outside its directories"
        );
    }
}
