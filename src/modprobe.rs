//! berth as `/sbin/modprobe`: the kernel itself runs `modprobe -q -- NAME` when a mount
//! asks for a filesystem it does not have yet (e.g. `fs-overlay` on kernels that
//! build overlayfs as a module). A board whose init is berth needs no other module
//! tools: link `/sbin/modprobe` to berth, and put the modules in `/lib/modules/`
//! (flat) or `/lib/modules/$(uname -r)/` (any depth). Modules are loaded with
//! `finit_module`; compressed ones (`.ko.xz`, `.ko.zst`, `.ko.gz`) are handed to the
//! kernel to decompress (Linux 6.6, `CONFIG_MODULE_DECOMPRESS`). Dependencies are not
//! resolved: list them first, or build them in.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// The name berth answers to as module loader (`argv[0]`'s file name).
pub const ARGV0: &str = "modprobe";

const SUFFIXES: [&str; 4] = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"];

/// The module file names a request may mean: `fs-overlay` is the alias the kernel
/// asks for `overlay`; `-` and `_` are the same in module names.
fn names(request: &str) -> Vec<String> {
    let base = request.strip_prefix("fs-").unwrap_or(request);
    let mut out = vec![
        base.to_owned(),
        base.replace('-', "_"),
        base.replace('_', "-"),
    ];
    out.dedup();
    out
}

fn find_in(dir: &Path, wanted: &[String], depth: u32) -> Option<PathBuf> {
    let entries = fs::read_dir(dir).ok()?;
    let mut subdirs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            subdirs.push(path);
            continue;
        }
        let hit = SUFFIXES.iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|stem| wanted.iter().any(|w| w == stem))
        });
        if hit {
            return Some(path);
        }
    }
    if depth == 0 {
        return None;
    }
    subdirs.iter().find_map(|d| find_in(d, wanted, depth - 1))
}

/// Finds the module file for `request` under `root` (`/lib/modules`): flat in it
/// first, then under the running kernel's release.
pub fn find(root: &Path, release: &str, request: &str) -> Option<PathBuf> {
    let wanted = names(request);
    find_in(root, &wanted, 0).or_else(|| find_in(&root.join(release), &wanted, 8))
}

/// Loads the module file at `path`.
pub fn load(path: &Path) -> io::Result<()> {
    const MODULE_INIT_COMPRESSED_FILE: libc::c_int = 4;
    let file = fs::File::open(path)?;
    let flags = if path.extension().is_some_and(|e| e != "ko") {
        MODULE_INIT_COMPRESSED_FILE
    } else {
        0
    };
    match crate::sys::module::finit_module(file.as_fd(), flags) {
        Err(e) if e.errno() == libc::EEXIST => Ok(()),
        other => Ok(other?),
    }
}

fn release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// `modprobe [-q] [--] NAME`: the exit status (0 loaded or already there, 1 not).
pub fn main(args: &[String]) -> u8 {
    let quiet = args.iter().any(|a| a == "-q" || a == "--quiet");
    let Some(request) = args.iter().rev().find(|a| !a.starts_with('-')) else {
        eprintln!("modprobe (berth): usage: modprobe [-q] [--] MODULE");
        return 1;
    };
    let Some(path) = find(Path::new("/lib/modules"), &release(), request) else {
        if !quiet {
            eprintln!("modprobe (berth): no module file for {request} in /lib/modules");
        }
        return 1;
    };
    match load(&path) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("modprobe (berth): load {}: {e}", path.display());
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_modules_flat_or_under_the_release() {
        let root = std::env::temp_dir().join(format!("berth-modprobe-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("6.1.0/kernel/fs/overlayfs")).unwrap();
        fs::create_dir_all(root.join("6.1.0/kernel/net")).unwrap();
        fs::write(root.join("6.1.0/kernel/fs/overlayfs/overlay.ko.xz"), b"").unwrap();
        fs::write(root.join("6.1.0/kernel/net/veth.ko"), b"").unwrap();
        fs::write(root.join("br_netfilter.ko"), b"").unwrap();
        assert_eq!(
            find(&root, "6.1.0", "fs-overlay"),
            Some(root.join("6.1.0/kernel/fs/overlayfs/overlay.ko.xz"))
        );
        assert_eq!(
            find(&root, "6.1.0", "veth"),
            Some(root.join("6.1.0/kernel/net/veth.ko"))
        );
        assert_eq!(
            find(&root, "6.1.0", "br-netfilter"),
            Some(root.join("br_netfilter.ko"))
        );
        assert_eq!(find(&root, "6.1.0", "nope"), None);
        let _ = fs::remove_dir_all(&root);
    }
}
