//! `berth check`: validates manifests offline, for firmware build pipelines.
//! Prints every problem, one per line (`file:line:column: app: message`), every
//! problem of each file, then a summary line; the caller turns the verdict into the
//! exit code.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;

use crate::digest;
use crate::manifest::locate::at;
use crate::manifest::types::Digest;
use crate::manifest::{self, Manifest, Problem, ProblemKind, Rule};

/// Checks the manifests at `paths` (and, with `images`, every image's sha256), writes
/// the report to `out` and returns whether everything was valid. Bind mounts may not
/// overlap the host paths of `reserved` (berth's own directories, `/proc`, `/sys`).
pub fn check(
    paths: &[PathBuf],
    reserved: &manifest::Reserved,
    images: bool,
    out: &mut impl Write,
) -> io::Result<bool> {
    let mut loaded = manifest::load_with(paths, reserved);
    if images {
        let apps = std::mem::take(&mut loaded.apps);
        let mut hashed: BTreeMap<PathBuf, Result<Digest, String>> = BTreeMap::new();
        for app in apps {
            let actual = hashed.entry(app.image.resolved.clone()).or_insert_with(|| {
                digest::sha256_file(&app.image.resolved).map_err(|e| e.to_string())
            });
            match image_problem(&app, actual) {
                None => loaded.apps.push(app),
                Some(problem) => {
                    loaded.invalid += 1;
                    loaded.problems.push(problem);
                }
            }
        }
        loaded
            .problems
            .sort_by(|a, b| (&a.file, a.pos).cmp(&(&b.file, b.pos)));
    }
    for problem in &loaded.problems {
        writeln!(out, "{problem}")?;
    }
    for app in &loaded.apps {
        if let Some(warning) = pid_namespace_warning(app) {
            let key = [manifest::locate::Seg::Key("namespaces")];
            let pos = manifest::locate_in_file(&app.file, &key);
            let pos = pos.map(|p| format!("{p}:")).unwrap_or_default();
            writeln!(
                out,
                "{}:{pos} {}: warning: {warning}",
                app.file.display(),
                app.name
            )?;
        }
    }
    let ok = loaded.apps.len();
    writeln!(
        out,
        "{ok} app{} ok, {} invalid",
        if ok == 1 { "" } else { "s" },
        loaded.invalid
    )?;
    Ok(loaded.invalid == 0)
}

/// A line for each of `paths` that does not exist: `no such directory /etc/berth/apps.d`
/// (or `no such file or directory PATH` for paths `given` on the command line, which
/// may name files).
pub fn missing(paths: &[PathBuf], given: bool) -> Vec<String> {
    let what = if given {
        "file or directory"
    } else {
        "directory"
    };
    paths
        .iter()
        .filter(|p| std::fs::metadata(p).is_err_and(|e| e.kind() == io::ErrorKind::NotFound))
        .map(|p| format!("no such {what} {}", p.display()))
        .collect()
}

/// The problem with `app`'s image given the digest of its file, if any.
fn image_problem(app: &Manifest, actual: &Result<Digest, String>) -> Option<Problem> {
    let (path, rule) = match actual {
        Ok(actual) if *actual == app.image.sha256 => return None,
        Ok(actual) => (
            at!["image", "sha256"],
            Rule::ImageDigestMismatch {
                path: app.image.path.clone(),
                expected: app.image.sha256.to_string(),
                actual: actual.to_string(),
            },
        ),
        Err(error) => (
            at!["image", "path"],
            Rule::ImageUnreadable {
                path: app.image.path.clone(),
                error: error.clone(),
            },
        ),
    };
    Some(Problem {
        pos: manifest::locate_in_file(&app.file, &path),
        file: app.file.clone(),
        app: Some(app.name.clone()),
        kind: ProblemKind::Rule(rule),
    })
}

/// The warning for an app that shares the host's pid namespace (`namespaces` without
/// `pid`), given by `berth check` and when `berth run` loads it; `None` for one with
/// its own. Not an error: a monitoring agent may need the host's processes.
pub fn pid_namespace_warning(app: &Manifest) -> Option<String> {
    if !app.shares_pid_namespace() {
        return None;
    }
    let berth = if app.allow_signals_to_berth {
        "berth acts on the signals it sends to berth (allow_signals_to_berth)"
    } else {
        "berth ignores the signals it sends to berth, but unless berth is PID 1 an app \
         running as berth's user can still stop or kill it with a signal berth does not \
         take (SIGKILL, SIGSTOP, SIGQUIT)"
    };
    Some(format!(
        "no pid namespace (namespaces has no pid): the app sees every process of the \
         host with its command line, and can signal those of its user; {berth}"
    ))
}
