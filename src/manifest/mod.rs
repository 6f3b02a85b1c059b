//! App manifests: parsing, validation alone and as a set, and the loader that is the
//! only way to obtain a [`Manifest`].

pub mod error;
pub mod locate;
pub mod model;
mod recover;
pub mod reserve;
mod set;
pub mod types;
pub mod units;
mod validate;

use std::fs;
use std::path::{Path, PathBuf};

pub use error::{Problem, ProblemKind, Rule, YamlKind};
pub use locate::Pos;
pub use model::Manifest;
use model::RawManifest;
pub use reserve::Reserved;
use types::AppName;

/// A manifest file larger than this is refused unread: no app needs more.
pub const MAX_MANIFEST_BYTES: u64 = 256 * 1024;

/// Parser messages are cut to this many characters.
const MAX_MESSAGE_CHARS: usize = 600;

/// The outcome of loading a set of manifests: the apps that can run, and every
/// problem found in the others (each invalid file has at least one).
#[derive(Debug, Default)]
pub struct Loaded {
    /// Valid alone and together, in file order.
    pub apps: Vec<Manifest>,
    pub problems: Vec<Problem>,
    /// How many manifest files were refused.
    pub invalid: usize,
}

/// A file that parsed and passed its own rules, with its text kept for positions.
struct Candidate {
    text: String,
    manifest: Manifest,
}

/// Loads the manifests at `paths`: files, or directories whose `*.yaml` files are read
/// in name order. All are validated together as the apps of one device. Bind mounts
/// may not reach `/proc` or `/sys` ([`load_with`] adds berth's own directories), and
/// `init: true` needs a statically linked berth ([`reserve::STATIC_BERTH`]).
pub fn load(paths: &[PathBuf]) -> Loaded {
    load_with(paths, &Reserved::system())
}

/// As [`load`], with the host paths no bind mount may overlap unless it says so
/// (berth's own directories, from its settings).
pub fn load_with(paths: &[PathBuf], reserved: &Reserved) -> Loaded {
    let mut loaded = Loaded::default();
    let mut files = Vec::new();
    for path in paths {
        match manifest_files(path) {
            Ok(mut found) => files.append(&mut found),
            Err(e) => {
                loaded.invalid += 1;
                loaded.problems.push(Problem {
                    file: path.clone(),
                    pos: None,
                    app: None,
                    kind: ProblemKind::Read(e),
                });
            }
        }
    }

    let sources = files.into_iter().map(|file| {
        let text = read_limited(&file);
        (file, text)
    });
    load_sources(sources, loaded, reserved)
}

/// Loads manifests given as text, as if read from the files named; for tests, fuzzers
/// and tools that hold manifests in memory. They are judged as a statically linked
/// berth judges them (`init: true` allowed whatever this build is): whoever launches
/// them chooses the reaper ([`crate::launch::Launcher::with_reaper_exe`]).
pub fn load_texts(sources: impl IntoIterator<Item = (PathBuf, String)>) -> Loaded {
    load_texts_with(sources, &Reserved::system().with_init(true))
}

/// As [`load_texts`], with the host's limits given.
pub fn load_texts_with(
    sources: impl IntoIterator<Item = (PathBuf, String)>,
    reserved: &Reserved,
) -> Loaded {
    load_sources(
        sources.into_iter().map(|(file, text)| (file, Ok(text))),
        Loaded::default(),
        reserved,
    )
}

fn load_sources(
    sources: impl Iterator<Item = (PathBuf, Result<String, ProblemKind>)>,
    mut loaded: Loaded,
    reserved: &Reserved,
) -> Loaded {
    let mut candidates = Vec::new();
    let mut broken: Vec<AppName> = Vec::new();
    for (file, text) in sources {
        let checked = match text {
            Ok(text) => load_one(&file, text),
            Err(kind) => Err((
                vec![Problem {
                    file: file.clone(),
                    pos: None,
                    app: None,
                    kind,
                }],
                None,
            )),
        };
        let checked = checked.and_then(|candidate| {
            let m = &candidate.manifest;
            let findings = reserved.findings(m);
            if findings.is_empty() {
                return Ok(candidate);
            }
            let problems = findings
                .into_iter()
                .map(|(path, rule)| Problem {
                    file: m.file.clone(),
                    pos: locate::locate(&candidate.text, &path),
                    app: Some(m.name.clone()),
                    kind: ProblemKind::Rule(rule),
                })
                .collect();
            Err((problems, Some(m.name.clone())))
        });
        match checked {
            Ok(candidate) => candidates.push(candidate),
            Err((problems, name)) => {
                loaded.invalid += 1;
                loaded.problems.extend(problems);
                broken.extend(name);
            }
        }
    }

    let manifests: Vec<&Manifest> = candidates.iter().map(|c| &c.manifest).collect();
    let verdicts = set::cross_check(&manifests, &broken);
    for (candidate, findings) in candidates.into_iter().zip(verdicts) {
        if findings.is_empty() {
            loaded.apps.push(candidate.manifest);
        } else {
            loaded.invalid += 1;
            let Candidate { text, manifest } = candidate;
            loaded
                .problems
                .extend(findings.into_iter().map(|(path, rule)| Problem {
                    pos: locate::locate(&text, &path),
                    file: manifest.file.clone(),
                    app: Some(manifest.name.clone()),
                    kind: ProblemKind::Rule(rule),
                }));
        }
    }
    // Report in file order, then position, whichever check found the problem.
    loaded
        .problems
        .sort_by(|a, b| (&a.file, a.pos).cmp(&(&b.file, b.pos)));
    log::debug!(
        "loaded {} apps, {} invalid",
        loaded.apps.len(),
        loaded.invalid
    );
    loaded
}

/// The position of the node at `path` in the manifest `file`, read again (for problems
/// found after loading, such as an image whose digest does not match).
pub fn locate_in_file(file: &Path, path: &[locate::Seg]) -> Option<Pos> {
    read_limited(file)
        .ok()
        .and_then(|text| locate::locate(&text, path))
}

/// `path` itself if it is not a directory, else its `*.yaml` entries (no hidden
/// files), sorted by name.
fn manifest_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !fs::metadata(path)?.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".yaml") && !name.starts_with('.') && !entry.path().is_dir() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Parses and checks one file alone. On failure returns its problems and, if it
/// can still be made out, the app name it declares.
fn load_one(file: &Path, text: String) -> Result<Candidate, (Vec<Problem>, Option<AppName>)> {
    let problem = |pos, kind| Problem {
        file: file.to_owned(),
        pos,
        app: None,
        kind,
    };
    let raw = recover::parse_all::<RawManifest>(&text).map_err(|found| {
        let name = declared_name(&text);
        let problems = found
            .into_iter()
            .map(|(pos, kind)| Problem {
                app: name.clone(),
                ..problem(pos, kind)
            })
            .collect();
        (problems, name)
    })?;
    let name = raw.name.clone();
    match validate::validate(raw, file) {
        Ok(manifest) => Ok(Candidate { text, manifest }),
        Err(findings) => {
            let problems = findings
                .into_iter()
                .map(|(path, rule)| Problem {
                    app: Some(name.clone()),
                    ..problem(locate::locate(&text, &path), ProblemKind::Rule(rule))
                })
                .collect();
            Err((problems, Some(name)))
        }
    }
}

/// The text of a manifest file: a regular file (a FIFO is refused unopened) of at
/// most [`MAX_MANIFEST_BYTES`] (a larger one is refused unread).
fn read_limited(file: &Path) -> Result<String, ProblemKind> {
    match crate::input::read_text(file, MAX_MANIFEST_BYTES)? {
        Some(text) => Ok(text),
        None => Err(ProblemKind::TooLarge {
            limit: MAX_MANIFEST_BYTES,
        }),
    }
}

/// Parses YAML text into `T` with berth's error reporting: well-formed YAML first
/// (a single document, no repeated keys), then the typed shape.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
) -> Result<T, (Option<Pos>, ProblemKind)> {
    locate::refuse_duplicate_keys(text).map_err(|e| {
        let (pos, message) = split_error(&e);
        let pos = pos.or_else(|| second_document(text));
        let kind = match YamlKind::of(strip_key_path(&message)) {
            YamlKind::DuplicateKey => YamlKind::DuplicateKey,
            _ => YamlKind::Syntax,
        };
        (pos, ProblemKind::Yaml { kind, message })
    })?;
    serde_yaml::from_str(text).map_err(|e| {
        let (pos, message) = split_error(&e);
        let kind = YamlKind::of(strip_key_path(&message));
        (pos, ProblemKind::Yaml { kind, message })
    })
}

/// The error's position, and its message without the " at line L column C" that the
/// position already says.
fn split_error(e: &serde_yaml::Error) -> (Option<Pos>, String) {
    let pos = e.location().map(Pos::from);
    let mut message = e.to_string();
    if message.starts_with("deserializing from YAML containing more than one document") {
        message = "a file holds one YAML document; this one has a second (---)".into();
    }
    // A value echoed back can be as long as the file: keep the line readable.
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push_str("...");
    }
    if let Some(p) = pos {
        let suffix = format!(" at line {} column {}", p.line, p.column);
        if let Some(i) = message.find(&suffix) {
            message.replace_range(i..i + suffix.len(), "");
        }
    }
    (pos, message)
}

/// Where a second YAML document starts: the first `---` after some content.
fn second_document(text: &str) -> Option<Pos> {
    let mut content = false;
    for (i, line) in text.lines().enumerate() {
        if line == "---" || line.starts_with("--- ") {
            if content {
                return Some(Pos {
                    line: i + 1,
                    column: 1,
                });
            }
        } else if !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            content = true;
        }
    }
    None
}

/// `resources.memory: invalid size` → `invalid size`. serde_yaml puts the key path
/// first; a path has no spaces, a message's first words do.
fn strip_key_path(message: &str) -> &str {
    match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => rest,
        _ => message,
    }
}

/// The `name:` of a manifest that is otherwise broken, if it can be read.
fn declared_name(text: &str) -> Option<AppName> {
    #[derive(serde::Deserialize)]
    struct NameOnly {
        name: AppName,
    }
    serde_yaml::from_str::<NameOnly>(text).ok().map(|n| n.name)
}

#[cfg(test)]
mod tests;
