//! Everything a launch needs, worked out and allocated before `clone`, so the child
//! only reads it. Pure apart from looking at the host (bind sources, the host's
//! `/etc/resolv.conf`), and unit-tested without root.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use libc::{c_char, c_int};

use super::rootfs::{DATA_FLAGS, Kind, Op};
use super::sandbox::Sandbox;
use crate::caps::CapSet;
use crate::image::ImageDefaults;
use crate::image::process::{self, Process};
use crate::manifest::Manifest;
use crate::manifest::model::{Mount, Namespace};
use crate::manifest::types::NetworkMode;
use crate::sys;

mod system;

/// Where a launch keeps its files on the host.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// `STATE_DIR/apps/<name>`: the overlay's `upper` and `work`.
    pub app_state: PathBuf,
    /// `STATE_DIR/volumes`.
    pub volumes: PathBuf,
    /// `RUN_DIR/apps/<name>`: the mount point of the new root, the generated `/etc`
    /// files.
    pub app_run: PathBuf,
}

impl Dirs {
    pub fn new(state_dir: &Path, run_dir: &Path, app: &str) -> Dirs {
        Dirs {
            app_state: state_dir.join("apps").join(app),
            volumes: state_dir.join("volumes"),
            app_run: run_dir.join("apps").join(app),
        }
    }
    pub fn upper(&self) -> PathBuf {
        self.app_state.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.app_state.join("work")
    }
    /// The new root's mount point.
    pub fn root(&self) -> PathBuf {
        self.app_run.join("rootfs")
    }
    /// Where an idmapped copy of the image is attached (user namespace apps).
    pub fn lower(&self) -> PathBuf {
        self.app_run.join("lower")
    }
    pub fn etc(&self) -> PathBuf {
        self.app_run.join("etc")
    }
}

/// The generated `/etc` files, bound over the image's.
pub const ETC_FILES: [&str; 3] = ["hostname", "hosts", "resolv.conf"];

pub use system::{MASKED_PROC, MASKED_SYS, READ_ONLY_PROC};

/// The device nodes every app gets, bound from the host's `/dev`.
pub const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// The program the child finally runs.
#[derive(Debug)]
pub struct Exec {
    /// Paths to try in order (the command, or each `PATH` directory joined with it).
    pub candidates: Vec<CString>,
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
}

/// A launch, ready for the child.
#[derive(Debug)]
pub struct Plan {
    pub app: String,
    /// What `clone` itself must make: the pid namespace (whose first process is the
    /// child: `unshare` would only put the child's children in it) and the user
    /// namespace (whose id maps the parent writes from outside).
    pub clone_flags: c_int,
    /// What the child makes itself with one `unshare`, on its own core, once it is
    /// in its cgroup (so their kernel memory is charged to the app): the mount, UTS,
    /// IPC and network namespaces the manifest asks for, and always its own cgroup
    /// namespace.
    pub unshare_flags: c_int,
    pub user_ns: bool,
    pub net_ns: bool,
    pub uts_ns: bool,
    /// `lowerdir=...,upperdir=...,workdir=...`.
    pub overlay: CString,
    /// Where the idmapped image goes in a user namespace (the overlay's lower layer).
    pub lower: CString,
    pub root: CString,
    pub readonly_root: bool,
    pub ops: Vec<Op>,
    pub hostname: CString,
    pub process: Process,
    /// Ids, capabilities, limits, seccomp profile and working directory of the
    /// app's processes.
    pub sandbox: Sandbox,
    pub exec: Exec,
    /// `init: true`: argv of the reaper (`berth-init FD -- app argv`), the channel
    /// number filled in at spawn time.
    pub init: bool,
    /// The manifest's bind mounts, whose host sources the parent opens and checks
    /// before clone (see [`BindSource`]).
    pub bind_sources: Vec<BindSource>,
}

/// A bind mount of a host path the manifest names. The parent opens it (`O_PATH`,
/// following links as a mount would) and checks where the descriptor really is; the
/// child binds it only if it is still that file (see `binds.rs`: the mount-source
/// side of runc's CVE-2021-30465).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindSource {
    /// The index of its [`Op::Bind`] in `ops`.
    pub op: usize,
    /// The host path, as the manifest writes it.
    pub path: String,
    /// `allow_system_path: true`: not checked against berth's reserved paths.
    pub allow_system_path: bool,
}

/// What every plan takes from the host that is the same for every app, looked up
/// once per [`Launcher`](super::Launcher) instead of at each launch.
#[derive(Debug, Clone)]
pub struct Host {
    /// The capabilities this kernel knows.
    pub known_caps: CapSet,
    /// The standard device nodes ([`DEVICES`]) as the host has them; `None` when one
    /// could not be resolved, so that each launch resolves them again and says why
    /// in its own name.
    pub devices: Option<Vec<super::devices::Node>>,
}

impl Host {
    /// This host, as seen now.
    pub fn of(known_caps: CapSet) -> Host {
        Host {
            known_caps,
            devices: super::devices::standard_nodes("berth").ok(),
        }
    }
}

/// Builds the plan of `manifest` over the image unpacked at `image_root`.
pub fn build(
    manifest: &Manifest,
    defaults: &ImageDefaults,
    image_root: &Path,
    dirs: &Dirs,
    host: &Host,
) -> Result<Plan, String> {
    let app = manifest.name.as_str().to_owned();
    let process = process::resolve(manifest, defaults, image_root)?;
    system::check_mount_points(&app, image_root, &dirs.upper())?;
    let has = |ns: Namespace| manifest.namespaces.contains(&ns);
    let flags = |table: &[(Namespace, c_int)]| {
        table
            .iter()
            .filter(|(ns, _)| has(*ns))
            .fold(0, |acc, (_, flag)| acc | flag)
    };
    let clone_flags = flags(&[
        (Namespace::Pid, libc::CLONE_NEWPID),
        (Namespace::User, libc::CLONE_NEWUSER),
    ]);
    let unshare_flags = libc::CLONE_NEWCGROUP
        | flags(&[
            (Namespace::Mount, libc::CLONE_NEWNS),
            (Namespace::Uts, libc::CLONE_NEWUTS),
            (Namespace::Ipc, libc::CLONE_NEWIPC),
            (Namespace::Net, libc::CLONE_NEWNET),
        ]);
    if !has(Namespace::Mount) {
        return Err(format!(
            "{app}: the mount namespace is required to give the app its root"
        ));
    }
    let user_ns = has(Namespace::User);
    let lower = if user_ns {
        dirs.lower()
    } else {
        image_root.to_path_buf()
    };
    let overlay = format!(
        "lowerdir={},upperdir={},workdir={}{}",
        text(&lower)?,
        text(&dirs.upper())?,
        text(&dirs.work())?,
        // In a user namespace overlayfs cannot use trusted.* xattrs.
        if user_ns { ",userxattr" } else { "" }
    );
    if [&lower, &dirs.upper(), &dirs.work()]
        .iter()
        .any(|p| p.to_string_lossy().contains([',', ':', '\\']))
    {
        return Err(format!(
            "{app}: the state directory {} holds a ',', ':' or '\\', which overlayfs options cannot carry",
            dirs.app_state.display()
        ));
    }
    let (ops, bind_sources) = ops(manifest, dirs, user_ns, host)?;
    let exec = exec(&process)?;
    Ok(Plan {
        clone_flags,
        unshare_flags,
        user_ns,
        net_ns: has(Namespace::Net),
        uts_ns: has(Namespace::Uts),
        overlay: c(&overlay)?,
        lower: c(text(&dirs.lower())?)?,
        root: c(text(&dirs.root())?)?,
        readonly_root: manifest.readonly_rootfs,
        ops,
        bind_sources,
        hostname: c(manifest.hostname.as_str())?,
        sandbox: Sandbox::of(manifest, &process, host.known_caps)?,
        exec,
        init: manifest.init,
        process,
        app,
    })
}

fn text(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{}: not UTF-8", path.display()))
}

fn c(text: &str) -> Result<CString, String> {
    CString::new(text).map_err(|_| format!("{text:?} holds a NUL byte"))
}

/// Relative form of an absolute in-container path.
fn rel(path: &str) -> Result<CString, String> {
    c(path.trim_start_matches('/'))
}

/// The mounts, in order: /proc with its masks, /dev with its nodes, /sys, the
/// generated /etc files, then the manifest's own mounts (validation keeps them off
/// the system paths, so none of them hides one of the above).
fn ops(
    manifest: &Manifest,
    dirs: &Dirs,
    user_ns: bool,
    host: &Host,
) -> Result<(Vec<Op>, Vec<BindSource>), String> {
    let app = manifest.name.as_str();
    let nosuid_nodev_noexec = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let mut ops = vec![Op::Fs {
        fstype: c"proc",
        target: c("proc")?,
        flags: nosuid_nodev_noexec,
        data: None,
        fallback: None,
        system: true,
    }];
    for path in MASKED_PROC {
        ops.push(Op::Mask {
            fs: c"proc",
            magic: sys::fs::PROC_SUPER_MAGIC,
            path: c(path)?,
        });
    }
    for path in READ_ONLY_PROC {
        ops.push(Op::ReadOnly {
            fs: c"proc",
            magic: sys::fs::PROC_SUPER_MAGIC,
            path: c(path)?,
        });
    }
    ops.push(Op::Fs {
        fstype: c"tmpfs",
        target: c("dev")?,
        flags: libc::MS_NOSUID | libc::MS_NOEXEC,
        data: Some(c("mode=755,size=65536k,nr_inodes=4096")?),
        fallback: None,
        system: true,
    });
    let standard = match &host.devices {
        Some(nodes) => super::devices::node_ops(nodes, user_ns)?,
        None => super::devices::standard_ops(app, user_ns)?,
    };
    ops.extend(standard);
    // devpts: its own instance; `gid=5` (tty) only outside a user namespace, where
    // gid 5 may not be mapped.
    let pts = if user_ns {
        "newinstance,ptmxmode=0666,mode=0620"
    } else {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    };
    ops.push(Op::Fs {
        fstype: c"devpts",
        target: c("dev/pts")?,
        flags: libc::MS_NOSUID | libc::MS_NOEXEC,
        data: Some(c(pts)?),
        fallback: None,
        system: true,
    });
    ops.push(Op::Fs {
        fstype: c"tmpfs",
        target: c("dev/shm")?,
        flags: nosuid_nodev_noexec,
        data: Some(c("mode=1777,size=65536k")?),
        fallback: None,
        system: true,
    });
    ops.push(Op::Fs {
        fstype: c"mqueue",
        target: c("dev/mqueue")?,
        flags: nosuid_nodev_noexec,
        data: None,
        fallback: Some(c"/dev/mqueue"),
        system: true,
    });
    for (name, to) in [
        ("ptmx", c"pts/ptmx"),
        ("fd", c"/proc/self/fd"),
        ("stdin", c"/proc/self/fd/0"),
        ("stdout", c"/proc/self/fd/1"),
        ("stderr", c"/proc/self/fd/2"),
    ] {
        ops.push(Op::Symlink {
            dir: c("dev")?,
            name: c(name)?,
            to,
        });
    }
    ops.extend(super::devices::ops(app, &manifest.devices, user_ns)?);
    ops.push(Op::Fs {
        fstype: c"sysfs",
        target: c("sys")?,
        flags: nosuid_nodev_noexec | libc::MS_RDONLY,
        data: None,
        fallback: Some(c"/sys"),
        system: true,
    });
    let thermal = system::thermal_throttle(Path::new("/sys"));
    for path in MASKED_SYS
        .iter()
        .copied()
        .chain(thermal.iter().map(String::as_str))
    {
        ops.push(Op::Mask {
            fs: c"sys",
            magic: sys::fs::SYSFS_MAGIC,
            path: c(path)?,
        });
    }
    // The generated files live in berth's run directory, on the host: never a way
    // to run or open anything (nosuid, nodev, noexec), and read-only when the root
    // is, so the app cannot fill the host's run directory through them either.
    let etc_flags = nosuid_nodev_noexec
        | if manifest.readonly_rootfs {
            libc::MS_RDONLY
        } else {
            0
        };
    for file in ETC_FILES {
        ops.push(Op::Bind {
            source: c(text(&dirs.etc().join(file))?)?,
            target: c(&format!("etc/{file}"))?,
            kind: Kind::File,
            flags: etc_flags,
        });
    }
    let mut bind_sources = Vec::new();
    for mount in &manifest.mounts {
        let ro = |readonly: bool| if readonly { libc::MS_RDONLY } else { 0 };
        ops.push(match mount {
            Mount::Bind {
                source,
                target,
                readonly,
                allow_system_path,
            } => {
                bind_sources.push(BindSource {
                    op: ops.len(),
                    path: source.as_str().to_owned(),
                    allow_system_path: *allow_system_path,
                });
                let host = Path::new(source.as_str());
                if !host.exists() {
                    return Err(format!(
                        "{app}: bind mount source {} does not exist on this host",
                        source.as_str()
                    ));
                }
                Op::Bind {
                    source: c(source.as_str())?,
                    target: rel(target.as_str())?,
                    kind: if host.is_dir() { Kind::Dir } else { Kind::File },
                    flags: DATA_FLAGS | ro(*readonly),
                }
            }
            Mount::Volume {
                name,
                target,
                readonly,
            } => Op::Bind {
                source: c(text(&dirs.volumes.join(name.as_str()))?)?,
                target: rel(target.as_str())?,
                kind: Kind::Dir,
                flags: DATA_FLAGS | ro(*readonly),
            },
            Mount::Tmpfs {
                target,
                size,
                readonly,
            } => Op::Fs {
                fstype: c"tmpfs",
                target: rel(target.as_str())?,
                flags: DATA_FLAGS | ro(*readonly),
                data: Some(c(&match size {
                    Some(size) => format!("mode=1777,size={}", size.bytes()),
                    None => "mode=1777".to_owned(),
                })?),
                fallback: None,
                system: false,
            },
        });
    }
    Ok((ops, bind_sources))
}

/// The exec candidates, argv and environment as C strings.
fn exec(process: &Process) -> Result<Exec, String> {
    let argv = process
        .argv
        .iter()
        .map(|a| c(a))
        .collect::<Result<Vec<_>, _>>()?;
    let env = process
        .env
        .iter()
        .map(|e| c(e))
        .collect::<Result<Vec<_>, _>>()?;
    let path_var = process
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(process::DEFAULT_PATH);
    let program = process.argv.first().map(String::as_str).unwrap_or_default();
    let candidates = candidates(program, path_var)
        .iter()
        .map(|p| c(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Exec {
        candidates,
        argv,
        env,
    })
}

/// Where `program` may be: itself when it holds a `/`, else each directory of
/// `path_var` joined with it (an empty entry means the current directory, as in
/// POSIX `execvp`).
pub fn candidates(program: &str, path_var: &str) -> Vec<String> {
    if program.contains('/') {
        return vec![program.to_owned()];
    }
    path_var
        .split(':')
        .map(|dir| match dir {
            "" => program.to_owned(),
            dir => format!("{}/{program}", dir.trim_end_matches('/')),
        })
        .collect()
}

/// A null-terminated array of pointers into `strings`, for `execve`.
pub fn pointers(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The generated `/etc/hosts` of an app.
pub fn hosts(hostname: &str, extra: &[(String, String)]) -> String {
    let mut text = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
    );
    for (address, name) in extra {
        text.push_str(&format!("{address}\t{name}\n"));
    }
    text
}

/// The generated `/etc/resolv.conf`: the host's, for apps that have a network;
/// loopback name servers are dropped for apps in their own network namespace (they
/// would point at the app itself).
pub fn resolv_conf(mode: &NetworkMode, host: &str) -> String {
    match mode {
        NetworkMode::None => "# network.mode: none: no name servers\n".to_owned(),
        NetworkMode::Host | NetworkMode::Container(_) => host.to_owned(),
        NetworkMode::Bridge => host
            .lines()
            .filter(|line| {
                let mut words = line.split_whitespace();
                !(words.next() == Some("nameserver")
                    && words
                        .next()
                        .is_some_and(|a| a.starts_with("127.") || a == "::1"))
            })
            .map(|l| format!("{l}\n"))
            .collect(),
    }
}

/// The C string of a path known to be UTF-8 (checked in [`build`]).
pub fn path_c(path: &Path) -> Result<CString, String> {
    c(text(path)?)
}
