//! `berth unpack`, `berth pack` and `berth gc`: the image store from the command line.
//! Each returns the exit status and writes its report to `out`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use crate::cli::PackArgs;
use crate::cli::human::{Bytes, count};
use crate::config::Config;
use crate::image::layout::Platform;
use crate::image::store::{Installed, Store};
use crate::image::{ImageError, pack};
use crate::manifest::{self, types::Digest};
use crate::supervisor::appstate;

/// Exit statuses, as the usage text says.
pub const OK: u8 = 0;
pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;

/// Verifies and installs one image; prints its rootfs path.
pub fn unpack(config: &Config, file: &Path, sha256: &str, out: &mut impl Write) -> u8 {
    // Docker's form, `sha256:<hex>`, too.
    let hex = sha256.strip_prefix("sha256:").unwrap_or(sha256);
    let digest: Digest = match hex.parse() {
        Ok(d) => d,
        Err(e) => return report(out, USAGE, format_args!("berth unpack: --sha256: {e}")),
    };
    let result = Store::open(&config.state_dir)
        .and_then(|store| store.install(file, &digest, &config.images, &Platform::current()));
    match result {
        Ok(installed) => {
            if let Installed::Fresh(_, unpacked) = &installed {
                // For people, on stderr: stdout is the rootfs alone, for scripts.
                let r = &unpacked.report;
                eprintln!(
                    "unpacked {} ({}): {} entries, {}; skipped {} device nodes, cleared setuid/setgid on {}",
                    file.display(),
                    unpacked.format,
                    r.entries,
                    Bytes(r.bytes),
                    r.skipped_devices,
                    r.cleared_setuid
                );
            }
            report(out, OK, format_args!("{}", installed.rootfs().display()))
        }
        // These name the file themselves.
        Err(e @ (ImageError::DigestMismatch { .. } | ImageError::NotRegular { .. })) => {
            report(out, FAILED, format_args!("berth unpack: {e}"))
        }
        Err(e) => report(
            out,
            FAILED,
            format_args!("berth unpack: {}: {e}", file.display()),
        ),
    }
}

/// Makes an image; prints its sha256 and an `image:` snippet for a manifest.
pub fn pack(rootfs: &Path, file: &Path, args: &PackArgs, out: &mut impl Write) -> u8 {
    match pack::pack(rootfs, file, &args.options()) {
        Ok(digest) => report(
            out,
            OK,
            format_args!(
                "{digest}\nimage:\n  path: {}\n  sha256: {digest}",
                file.display()
            ),
        ),
        Err(e) => report(out, FAILED, format_args!("berth pack: {e}")),
    }
}

/// Deletes the images no manifest names and no app uses, and the state and run
/// directories of apps no manifest names; with `dry_run`, only says what it would
/// delete. Refuses (exit status 1) when the manifests cannot all be read: a missing
/// or unreadable apps directory, or one manifest that does not load, would make
/// what they name look unused.
pub fn gc(config: &Config, dry_run: bool, out: &mut impl Write) -> u8 {
    gc_keeping(config, dry_run, &Keep::default(), out)
}

/// What a running supervisor adds to what the manifests name: the images and apps of
/// the definitions it runs (a running version kept while its manifest is broken or
/// changed, an image being installed), and that leftovers of unpacks are its own.
#[derive(Debug, Default)]
pub struct Keep {
    pub digests: BTreeSet<Digest>,
    pub apps: BTreeSet<String>,
    /// A supervisor runs: a partial unpack may be an install in progress.
    pub supervised: bool,
}

/// `berth gc` keeping `extra` too.
pub fn gc_keeping(config: &Config, dry_run: bool, extra: &Keep, out: &mut impl Write) -> u8 {
    // A machine that never ran berth: nothing to collect, and nothing is created.
    match config.state_dir.try_exists() {
        Ok(true) => {}
        Ok(false) => {
            return report(
                out,
                OK,
                format_args!(
                    "nothing to collect: {} does not exist",
                    config.state_dir.display()
                ),
            );
        }
        Err(e) => {
            return report(
                out,
                FAILED,
                format_args!("berth gc: cannot read {}: {e}", config.state_dir.display()),
            );
        }
    }
    let apps = &config.apps_dir;
    let refuse = |out: &mut _, why: std::fmt::Arguments| {
        report(
            out,
            FAILED,
            format_args!("berth gc: refusing to collect: {why}"),
        )
    };
    match std::fs::read_dir(apps) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return refuse(
                out,
                format_args!(
                    "the apps directory {} does not exist (every image and app would look unused)",
                    apps.display()
                ),
            );
        }
        Err(e) => {
            return refuse(
                out,
                format_args!("cannot read the apps directory {}: {e}", apps.display()),
            );
        }
    }
    let loaded = manifest::load_with(std::slice::from_ref(apps), &config.reserved(apps));
    if loaded.invalid > 0 {
        for problem in &loaded.problems {
            let _ = writeln!(out, "{problem}");
        }
        let n = loaded.invalid;
        return refuse(
            out,
            format_args!(
                "{n} manifest{} in {} did not load (what {} would look unused)",
                if n == 1 { "" } else { "s" },
                apps.display(),
                if n == 1 { "it names" } else { "they name" }
            ),
        );
    }
    let mut keep: BTreeSet<Digest> = loaded.apps.iter().map(|m| m.image.sha256.clone()).collect();
    keep.extend(extra.digests.iter().cloned());
    let mut named: BTreeSet<String> = loaded
        .apps
        .iter()
        .map(|m| m.name.as_str().to_owned())
        .collect();
    named.extend(extra.apps.iter().cloned());
    let (would, verb) = match dry_run {
        true => ("would ", "would remove"),
        false => ("", "removed"),
    };
    let mut total = 0;
    let mut images = 0;
    let result = Store::existing(&config.state_dir).and_then(|store| {
        let Some(store) = store else {
            return Ok(());
        };
        // With a supervisor running, a partial unpack may be its install in progress:
        // it cleans up its own at its next start.
        if !extra.supervised {
            for leftover in store.clean_leftovers(dry_run)? {
                let _ = writeln!(out, "{verb} {} (an interrupted unpack)", leftover.display());
            }
        }
        let in_use = store.in_use(Path::new("/proc"));
        let collected = store.gc(&keep, &in_use, dry_run)?;
        for (digest, bytes) in &collected.removed {
            total += bytes;
            let _ = writeln!(out, "{verb} {digest} ({})", Bytes(*bytes));
        }
        images = collected.removed.len();
        for digest in &collected.held {
            let _ = writeln!(out, "kept {digest}: held by a running app");
        }
        Ok(())
    });
    if let Err(e) = result {
        return report(out, FAILED, format_args!("berth gc: {e}"));
    }
    let unnamed = match appstate::collect_unnamed(config, &named, Path::new("/proc"), dry_run) {
        Ok(unnamed) => unnamed,
        Err(e) => return report(out, FAILED, format_args!("berth gc: {e}")),
    };
    let mut app_dirs = 0;
    for app in &unnamed {
        for dir in &app.dirs {
            match app.kept {
                None => {
                    let _ = writeln!(
                        out,
                        "{verb} {} (app {}: no manifest names it)",
                        dir.display(),
                        app.name
                    );
                }
                Some(why) => {
                    let _ = writeln!(out, "kept {} (app {}): {why}", dir.display(), app.name);
                }
            }
        }
        if app.kept.is_none() {
            total += app.bytes;
            app_dirs += app.dirs.len();
        }
    }
    let dirs = match app_dirs {
        0 => String::new(),
        n => format!(" and {}", count(n, "app directory", "app directories")),
    };
    report(
        out,
        OK,
        format_args!(
            "{would}{} {} in {}{dirs}",
            if dry_run { "free" } else { "freed" },
            Bytes(total),
            count(images, "image", "images"),
        ),
    )
}

fn report(out: &mut impl Write, status: u8, message: std::fmt::Arguments) -> u8 {
    // A report that cannot be written (closed stdout) still has its exit status.
    let _ = writeln!(out, "{message}");
    status
}
