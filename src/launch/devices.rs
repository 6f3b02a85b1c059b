//! The host devices an app is given (`devices:`), resolved on the host at launch.
//!
//! Only character and block device nodes under `/dev` are given: a path that
//! resolves (through symlinks) outside `/dev`, or to anything but a device node, is
//! refused, since a bind of e.g. `/proc` would hand the app the host's unmasked procfs.
//! A directory (`/dev/snd`) stands for the nodes it holds. Each node becomes a node
//! of the same number and mode in the app's `/dev` (a bind of the host's node in a
//! user namespace, where mknod is refused) and one allow rule of its device cgroup
//! ([`crate::cgroup::devices`]): without the rule the node would not open.

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::rootfs::{Kind, Op};
use crate::cgroup::devices::Rule;
use crate::manifest::types::AbsPath;

/// How deep a `devices:` directory is expanded (`/dev/bus/usb/001/002` is 3 below
/// `/dev/bus`).
const MAX_DEPTH: usize = 4;

/// One host device node, and where the app sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The path in the app: the manifest's path, or below the directory it named.
    pub path: String,
    /// The host node, symlinks resolved (under `/dev`).
    pub host: PathBuf,
    pub block: bool,
    /// Type and permission bits, as on the host.
    pub mode: u32,
    pub rdev: u64,
}

impl Node {
    pub fn major(&self) -> u32 {
        libc::major(self.rdev)
    }
    pub fn minor(&self) -> u32 {
        libc::minor(self.rdev)
    }
    /// The device cgroup rule that lets the app create, read and write this node.
    pub fn rule(&self) -> Rule {
        Rule::node(self.block, self.major(), self.minor())
    }
}

/// The nodes of the manifest's `devices:`, each path resolved on this host, in the
/// manifest's order (a directory's nodes sorted by name).
pub fn resolve(app: &str, devices: &[AbsPath]) -> Result<Vec<Node>, String> {
    let mut out = Vec::new();
    for path in devices {
        resolve_one(app, path.as_str(), &mut out)?;
    }
    Ok(out)
}

/// The cgroup rules of `nodes`.
pub fn rules(nodes: &[Node]) -> Vec<Rule> {
    nodes.iter().map(Node::rule).collect()
}

/// True when `path` is `/dev/<something>` (component-wise).
pub fn under_dev(path: &Path) -> bool {
    path.strip_prefix("/dev")
        .is_ok_and(|rest| !rest.as_os_str().is_empty())
}

fn resolve_one(app: &str, path: &str, out: &mut Vec<Node>) -> Result<(), String> {
    if !under_dev(Path::new(path)) {
        return Err(format!(
            "{app}: device {path} is not under /dev: only device nodes can be given to an app"
        ));
    }
    let host = fs::canonicalize(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{app}: device {path} does not exist on this host"),
        _ => format!("{app}: device {path}: resolve it on this host: {e}"),
    })?;
    if !under_dev(&host) {
        return Err(format!(
            "{app}: device {path} resolves to {}, which is not under /dev",
            host.display()
        ));
    }
    let meta = fs::symlink_metadata(&host)
        .map_err(|e| format!("{app}: device {path}: stat {}: {e}", host.display()))?;
    if meta.is_dir() {
        let before = out.len();
        expand(app, path, &host, 0, out)?;
        if out.len() == before {
            return Err(format!(
                "{app}: device directory {path} holds no device nodes on this host"
            ));
        }
        return Ok(());
    }
    let node = node(path.to_owned(), host, &meta).ok_or_else(|| {
        format!("{app}: device {path} is not a character or block device on this host")
    })?;
    out.push(node);
    Ok(())
}

/// The nodes below the host directory `dir` (shown to the app as `shown`); symlinks
/// inside are not followed, other files are left out.
fn expand(
    app: &str,
    shown: &str,
    dir: &Path,
    depth: usize,
    out: &mut Vec<Node>,
) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| {
        format!(
            "{app}: device directory {shown}: list {}: {e}",
            dir.display()
        )
    })?;
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let host = entry.path();
        let shown = format!("{shown}/{name}");
        let meta = fs::symlink_metadata(&host)
            .map_err(|e| format!("{app}: device {shown}: stat {}: {e}", host.display()))?;
        if meta.is_dir() && depth + 1 < MAX_DEPTH {
            expand(app, &shown, &host, depth + 1, out)?;
        } else if let Some(node) = node(shown, host, &meta) {
            out.push(node);
        }
    }
    Ok(())
}

fn node(path: String, host: PathBuf, meta: &fs::Metadata) -> Option<Node> {
    let kind = meta.file_type();
    if !(kind.is_char_device() || kind.is_block_device()) {
        return None;
    }
    Some(Node {
        path,
        host,
        block: kind.is_block_device(),
        mode: meta.mode(),
        rdev: meta.rdev(),
    })
}

/// The mount operation that puts `node` in the app's `/dev`: a node of the host's
/// number and mode, or, in a user namespace (where mknod is refused), a bind of the
/// host's node.
pub fn op(node: &Node, user_ns: bool) -> Result<Op, String> {
    let c = |text: &str| {
        CString::new(text).map_err(|_| format!("device path {text:?} holds a NUL byte"))
    };
    let target = node.path.trim_start_matches('/');
    if user_ns {
        let host = node
            .host
            .to_str()
            .ok_or_else(|| format!("{}: not UTF-8", node.host.display()))?;
        return Ok(Op::Bind {
            source: c(host)?,
            target: c(target)?,
            kind: Kind::File,
            flags: libc::MS_NOSUID | libc::MS_NOEXEC,
        });
    }
    let (dir, name) = target.rsplit_once('/').unwrap_or(("", target));
    Ok(Op::Node {
        dir: c(dir)?,
        name: c(name)?,
        mode: node.mode,
        rdev: node.rdev,
    })
}

/// The operations for the manifest's `devices:`; a node every app gets anyway
/// (`devices: [/dev/null]`) is there already.
pub fn ops(app: &str, devices: &[AbsPath], user_ns: bool) -> Result<Vec<Op>, String> {
    let standard = |n: &Node| {
        n.path
            .strip_prefix("/dev/")
            .is_some_and(|name| super::plan::DEVICES.contains(&name))
    };
    resolve(app, devices)?
        .iter()
        .filter(|n| !standard(n))
        .map(|n| op(n, user_ns))
        .collect()
}

/// The operations for the nodes every app gets ([`super::plan::DEVICES`]: `/dev/null`
/// and the like, each allowed by [`crate::cgroup::devices::standard`]), by the same
/// rules as the manifest's.
pub fn standard_ops(app: &str, user_ns: bool) -> Result<Vec<Op>, String> {
    node_ops(&standard_nodes(app)?, user_ns)
}

/// The nodes every app gets, resolved on this host (errors name `app`).
pub fn standard_nodes(app: &str) -> Result<Vec<Node>, String> {
    let paths = super::plan::DEVICES
        .iter()
        .map(|name| format!("/dev/{name}").parse::<AbsPath>())
        .collect::<Result<Vec<_>, _>>()?;
    resolve(app, &paths)
}

/// The operations that put `nodes` in an app's `/dev`.
pub fn node_ops(nodes: &[Node], user_ns: bool) -> Result<Vec<Op>, String> {
    nodes.iter().map(|n| op(n, user_ns)).collect()
}

#[cfg(test)]
mod tests;
