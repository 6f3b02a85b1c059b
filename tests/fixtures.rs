//! Every file in `manifests/examples/` loads; every case in `manifests/invalid/`
//! produces exactly the problems recorded in its `# expect:` lines.
//!
//! A case is a file `manifests/invalid/NAME.yaml` (checked alone) or a directory
//! `manifests/invalid/NAME/` (its files checked together, as one device's apps). Each
//! file lists the problems expected in it, one per line, at its top:
//!
//! ```text
//! # expect: KIND LINE:COLUMN: MESSAGE
//! ```
//!
//! KIND is [`ProblemKind::name`], LINE:COLUMN is `-` when there is no position, and
//! MESSAGE is what `berth check` prints after `FILE:LINE:COLUMN: `.
//!
//! Both are loaded as a statically linked berth (a board's build) loads them, whatever
//! this test's build is: the refusal of `init: true` by a dynamically linked berth is
//! a property of the binary, tested in `tests/cli_check.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use berth::manifest::{self, Loaded, Problem, Reserved};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests")
}

/// The manifests at `path`, as a statically linked berth loads them.
fn load(path: &Path) -> Loaded {
    manifest::load_with(&[path.to_path_buf()], &Reserved::system().with_init(true))
}

/// (file name, kind, position, message) as a fixture records it.
type Expectation = (String, String, String, String);

fn expectations(file: &Path) -> Vec<Expectation> {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|e| {
            let (kind, rest) = e
                .split_once(' ')
                .unwrap_or_else(|| panic!("{name}: bad expect line {e:?}"));
            let (pos, message) = rest
                .split_once(": ")
                .unwrap_or_else(|| panic!("{name}: bad expect line {e:?}"));
            (
                name.clone(),
                kind.to_owned(),
                pos.to_owned(),
                message.to_owned(),
            )
        })
        .collect()
}

fn observed(p: &Problem) -> Expectation {
    let name = p.file.file_name().unwrap().to_string_lossy().into_owned();
    let pos = p.pos.map_or("-".to_owned(), |pos| pos.to_string());
    let printed = p.to_string();
    let prefix = match p.pos {
        Some(pos) => format!("{}:{pos}: ", p.file.display()),
        None => format!("{}: ", p.file.display()),
    };
    // Messages that name another file name it from the fixture root, on any checkout.
    let root = format!("{}/", root().display());
    let message = printed
        .strip_prefix(&prefix)
        .unwrap_or(&printed)
        .replace(&root, "");
    (name, p.kind.name(), pos, message)
}

/// `BERTH_BLESS=1 cargo test --test fixtures` rewrites the `# expect:` lines from what
/// the loader says now; review the diff. The number of lines per file must not change,
/// or every position below them would move.
fn bless(files: &[PathBuf], got: &BTreeSet<Expectation>) {
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(file).unwrap();
        let old = text.lines().filter(|l| l.starts_with("# expect: ")).count();
        let new: Vec<String> = got
            .iter()
            .filter(|e| e.0 == name)
            .map(|(_, kind, pos, message)| format!("# expect: {kind} {pos}: {message}"))
            .collect();
        assert_eq!(
            old,
            new.len(),
            "{}: the number of problems changed; edit by hand",
            file.display()
        );
        let mut new = new.into_iter();
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with("# expect: ") {
                    new.next().unwrap()
                } else {
                    l.to_owned()
                }
            })
            .collect();
        fs::write(file, lines.join("\n") + "\n").unwrap();
    }
}

#[test]
fn every_example_loads() {
    let loaded = load(&root().join("examples"));
    let problems: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(loaded.invalid, 0);
    assert!(
        loaded.apps.len() >= 4,
        "examples: an MQTT broker, a gateway, a web UI, a batch job"
    );
}

#[test]
fn every_invalid_case_gives_its_recorded_problems() {
    let mut cases: Vec<PathBuf> = fs::read_dir(root().join("invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "only {} invalid cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let files: Vec<PathBuf> = if case.is_dir() {
            let mut f: Vec<_> = fs::read_dir(case)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            f.sort();
            f
        } else {
            vec![case.clone()]
        };
        let expected: BTreeSet<Expectation> = files.iter().flat_map(|f| expectations(f)).collect();
        assert!(
            !expected.is_empty(),
            "{}: no `# expect:` line",
            case.display()
        );
        let loaded = load(case);
        let got: BTreeSet<Expectation> = loaded.problems.iter().map(observed).collect();
        if got != expected && std::env::var_os("BERTH_BLESS").is_some() {
            bless(&files, &got);
            continue;
        }
        if got != expected {
            failures.push(format!(
                "{}:\n  missing: {:#?}\n  unexpected: {:#?}",
                case.display(),
                expected.difference(&got).collect::<Vec<_>>(),
                got.difference(&expected).collect::<Vec<_>>()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
