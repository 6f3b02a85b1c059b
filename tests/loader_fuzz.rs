//! Fuzz-style property test: the loader returns (never panics, never hangs) on
//! arbitrary bytes and on mutations of real manifests, and its report adds up.
//! The generator is seeded, so every run tries the same inputs: never flaky.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use berth::manifest::{self, Loaded};
use common::Rng;

/// Tokens that stress YAML and the unit parsers.
const TOKENS: &[&str] = &[
    ":",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "#",
    "&a ",
    "*a",
    "<<: *a",
    "!!str ",
    "!!binary ",
    "|",
    ">",
    "'",
    "\"",
    "\n",
    "  ",
    "\t",
    "~",
    "null",
    "true",
    "yes",
    "0",
    "-1",
    "0x10",
    "1e3",
    ".5",
    "64M",
    "64MB",
    "1G",
    "250m",
    "10s",
    "99999999999999999999",
    "container:",
    "container:x",
    "bridge",
    "../",
    "/",
    "SIGTERM",
    "ALL",
    "\u{feff}",
    "é",
    "---\n",
    "...\n",
    "? ",
    "%YAML 1.2\n",
];

fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    let mut texts = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                texts.push(fs::read_to_string(path).unwrap());
            }
        }
    }
    texts.sort();
    texts
}

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(7) {
            0 if !bytes.is_empty() => {
                let i = at.min(bytes.len() - 1);
                bytes[i] = rng.next() as u8;
            }
            1 => {
                let end = (at + rng.below(40)).min(bytes.len());
                bytes.drain(at..end);
            }
            2 | 3 => {
                let token = rng.pick(TOKENS).as_bytes().to_vec();
                bytes.splice(at..at, token);
            }
            4 => bytes.truncate(at),
            5 => {
                // Duplicate a line: repeated keys.
                let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
                let line = rng.pick(&lines).to_vec();
                bytes.splice(at..at, line.into_iter().chain([b'\n']));
            }
            _ => {
                // Replace a scalar after a colon by a token.
                if let Some(colon) = bytes.iter().skip(at).position(|&b| b == b':') {
                    let start = at + colon + 1;
                    let end = bytes
                        .iter()
                        .skip(start)
                        .position(|&b| b == b'\n')
                        .map_or(bytes.len(), |e| start + e);
                    let token = format!(" {}", rng.pick(TOKENS));
                    bytes.splice(start..end, token.into_bytes());
                }
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The report is consistent whatever the input.
fn check_report(files: &[(PathBuf, String)], loaded: &Loaded) {
    assert_eq!(
        loaded.apps.len() + loaded.invalid,
        files.len(),
        "every file is either an app or invalid"
    );
    for problem in &loaded.problems {
        assert!(files.iter().any(|(f, _)| *f == problem.file));
        let line = problem.to_string();
        assert!(!line.contains('\n'), "one problem, one line: {line:?}");
    }
    for (file, _) in files {
        let is_app = loaded.apps.iter().any(|a| a.file == *file);
        let has_problem = loaded.problems.iter().any(|p| p.file == *file);
        assert!(
            is_app != has_problem,
            "{}: an app xor a problem",
            file.display()
        );
    }
}

#[test]
fn mutated_manifests_never_panic() {
    let corpus = corpus();
    assert!(corpus.len() > 20);
    let mut rng = Rng(0x00be_47f1_5eed);
    for round in 0..3000 {
        let n = 1 + rng.below(3);
        let mut files = Vec::new();
        for i in 0..n {
            let base = rng.pick(&corpus).clone();
            files.push((
                PathBuf::from(format!("apps.d/{round}-{i}.yaml")),
                mutate(&mut rng, &base),
            ));
        }
        let loaded = manifest::load_texts(files.clone());
        check_report(&files, &loaded);
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut rng = Rng(0x000b_17e5);
    for round in 0..3000 {
        let len = rng.below(300);
        let mut bytes = Vec::with_capacity(len);
        for _ in 0..len {
            // A third YAML punctuation, the rest any byte.
            let b = if rng.below(3) == 0 {
                *rng.pick(b"{}[]:-,#&*!|>'\"\n ")
            } else {
                rng.next() as u8
            };
            bytes.push(b);
        }
        let files = vec![(
            PathBuf::from(format!("apps.d/{round}.yaml")),
            String::from_utf8_lossy(&bytes).into_owned(),
        )];
        let loaded = manifest::load_texts(files.clone());
        check_report(&files, &loaded);
    }
}

#[test]
fn hostile_shapes_end_in_errors() {
    let deep = "[".repeat(100_000);
    let aliases = {
        // Each level doubles the last: 2^40 nodes if expanded.
        let mut t = String::from("a0: &a0 [x, x]\n");
        for i in 1..40 {
            t.push_str(&format!("a{i}: &a{i} [*a{}, *a{}]\n", i - 1, i - 1));
        }
        t
    };
    let long_line = format!("name: {}\n", "x".repeat(200_000));
    for text in [deep, aliases, long_line] {
        let files = vec![(PathBuf::from("apps.d/hostile.yaml"), text)];
        let loaded = manifest::load_texts(files.clone());
        assert_eq!(loaded.invalid, 1);
        check_report(&files, &loaded);
    }
}
