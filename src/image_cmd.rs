//! `berth unpack`, `berth pack` and `berth gc`: the image store from the command line.
//! Each returns the exit status and writes its report to `out`.

use std::io::Write;
use std::path::Path;

use crate::cli::PackArgs;
use crate::config::Config;
use crate::image::layout::Platform;
use crate::image::store::{Installed, Store};
use crate::image::{ImageError, pack};
use crate::manifest::{self, types::Digest};

/// Exit statuses, as the usage text says.
pub const OK: u8 = 0;
pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;

/// Verifies and installs one image; prints its rootfs path.
pub fn unpack(config: &Config, file: &Path, sha256: &str, out: &mut impl Write) -> u8 {
    let digest: Digest = match sha256.parse() {
        Ok(d) => d,
        Err(e) => return report(out, USAGE, format_args!("berth unpack: --sha256: {e}")),
    };
    let result = Store::open(&config.state_dir)
        .and_then(|store| store.install(file, &digest, &config.images, &Platform::current()));
    match result {
        Ok(installed) => {
            if let Installed::Fresh(_, unpacked) = &installed {
                let r = &unpacked.report;
                log::info!(
                    "unpacked {} ({}): {} entries, {} bytes; skipped {} device nodes, cleared setuid/setgid on {}",
                    file.display(),
                    unpacked.format,
                    r.entries,
                    r.bytes,
                    r.skipped_devices,
                    r.cleared_setuid
                );
            }
            report(out, OK, format_args!("{}", installed.rootfs().display()))
        }
        // A digest mismatch names the file itself.
        Err(e @ ImageError::DigestMismatch { .. }) => {
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

/// Deletes the images no manifest names and no process has mounted.
pub fn gc(config: &Config, out: &mut impl Write) -> u8 {
    let store = match Store::open(&config.state_dir) {
        Ok(store) => store,
        Err(e) => return report(out, FAILED, format_args!("berth gc: {e}")),
    };
    let keep = manifest::declared_digests(std::slice::from_ref(&config.apps_dir));
    let in_use = store.in_use(Path::new("/proc"));
    match store.gc(&keep, &in_use) {
        Ok(removed) => {
            let mut total = 0;
            for (digest, bytes) in &removed {
                total += bytes;
                let _ = writeln!(out, "removed {digest} ({bytes} bytes)");
            }
            report(
                out,
                OK,
                format_args!("freed {total} bytes in {} images", removed.len()),
            )
        }
        Err(e) => report(out, FAILED, format_args!("berth gc: {e}")),
    }
}

fn report(out: &mut impl Write, status: u8, message: std::fmt::Arguments) -> u8 {
    // A report that cannot be written (closed stdout) still has its exit status.
    let _ = writeln!(out, "{message}");
    status
}
