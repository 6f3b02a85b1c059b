//! Who sent a signal: berth acts on no signal an app sent it.
//!
//! An app without a pid namespace shares berth's and can name berth's pid; when it runs
//! as berth's user it may signal berth, whatever its capabilities (`kill -TERM $PPID`
//! stopped every app; to berth as PID 1, SIGUSR2 powers the device off). The signalfd
//! tells the sender: `ssi_code` says how the signal came, `ssi_pid` who sent it. Before
//! the loop acts on a signal, [`SignalGuard::admits`] asks:
//!
//! - SIGCHLD is always admitted: it only wakes the loop to reap berth's own children,
//!   and a dropped one could leave an exit unseen (they merge).
//! - `SI_KERNEL`: the kernel's own (Ctrl-Alt-Del's SIGINT to PID 1). Admitted.
//! - `SI_USER` (kill) and `SI_TKILL` (tgkill): the kernel wrote `ssi_pid`; 0 means a
//!   process of an ancestor pid namespace (berth as a container's PID 1), admitted.
//!   Otherwise `/proc/<pid>/cgroup` says where the sender is: in a cgroup of berth's
//!   apps (`<berth's own cgroup>/<cgroup_root>/<app>`, or below it) it is ignored,
//!   unless that app's manifest has `allow_signals_to_berth: true`; elsewhere it is
//!   admitted. On cgroup v2 the file names the cgroup of an exiting process and of a
//!   zombie too. On v1 the kernel shows an exiting process in the root cgroup, so
//!   there `/proc/<pid>/stat` is read after the cgroup file and the answer counts only
//!   if the sender was not exiting then (else a sender that signals and exits at once
//!   would pass for one outside the apps).
//! - Any other code (`SI_QUEUE` from sigqueue, or a code the sender chose with
//!   rt_sigqueueinfo, or the `POLL_*` of an `F_SETOWN`/`F_SETSIG` descriptor): the pid
//!   in it is the sender's claim, not checked by the kernel, so it proves nothing.
//!
//! A sender that cannot be placed (it exited before berth looked, or it came with
//! such a code) could have been an app only if some app shares berth's pid namespace:
//! apps with a pid namespace of their own cannot name berth at all. So it is ignored
//! when an app of berth's shares the namespace (one not allowed to signal berth), and
//! admitted when none does. The
//! first choice drops an operator's signal sent from a short-lived process (`/bin/kill`
//! may exit and be reaped before berth reads its cgroup) while such apps exist; the
//! warning says so and how to send one that counts (from a process that stays, such as
//! a shell's built-in `kill`, or the service manager). The other choice would let any
//! app stop every app, or power the device off, by signalling and exiting at once.
//!
//! Not covered: standard signals merge, so an operator's SIGTERM sent while an app's
//! SIGTERM is still pending is lost with it (berth reads its signalfd as soon as it
//! wakes, so the window is short); SIGKILL and SIGSTOP, which no process can catch,
//! still reach berth when it is not PID 1 (the kernel spares PID 1 those from its own
//! pid namespace); a sender's pid reused between berth's reads.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use super::event::Received;

/// The most of `/proc/<pid>/cgroup` read: a line per hierarchy, each path at most
/// PATH_MAX; a file larger than this is cut, which can only hide lines past it.
const MAX_CGROUP_FILE: u64 = 64 * 1024;

/// `PF_EXITING` in the flags of `/proc/<pid>/stat` (include/linux/sched.h).
const PF_EXITING: u64 = 0x4;

/// berth's app cgroups as `/proc/<pid>/cgroup` names them: for each hierarchy berth's
/// process is in (keyed by its controllers field, `memory`, `name=systemd`, or empty
/// for v2), `<berth's own path>/<cgroup_root>`. Paths in that file are relative to the
/// reader's cgroup namespace, which is berth's for its own file and its senders' alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCgroups {
    roots: Vec<(String, String)>,
    /// The apps' cgroups are in the v2 hierarchy (the `cgroup::Manager` is v2).
    v2: bool,
}

impl AppCgroups {
    /// From berth's own `/proc/self/cgroup` text, read before berth moves itself (on
    /// v2 into `<cgroup_root>/.supervisor`), the config's `cgroup_root`, and whether
    /// the apps' cgroups are v2 ones.
    pub fn new(own_cgroup: &str, cgroup_root: &str, v2: bool) -> AppCgroups {
        let below: String = cgroup_root
            .split('/')
            .filter(|p| !p.is_empty())
            .flat_map(|p| ["/", p])
            .collect();
        let roots = own_cgroup
            .lines()
            .filter_map(|line| {
                let (controllers, path) = hierarchy_line(line)?;
                let own = path.trim_end_matches('/');
                Some((controllers.to_owned(), format!("{own}{below}")))
            })
            .collect();
        AppCgroups { roots, v2 }
    }

    /// The app whose cgroup (or one below it) holds the process `cgroup_file` (the
    /// text of its `/proc/<pid>/cgroup`) describes; `None` when it is in none of them.
    /// Names starting with a dot are not apps (berth's own `.supervisor` leaf).
    pub fn app_of<'t>(&self, cgroup_file: &'t str) -> Option<&'t str> {
        self.app_in(cgroup_file, false)
    }

    /// As [`app_of`](Self::app_of), looking at the v2 line only when `v2_only`.
    fn app_in<'t>(&self, cgroup_file: &'t str, v2_only: bool) -> Option<&'t str> {
        cgroup_file.lines().find_map(|line| {
            let (controllers, path) = hierarchy_line(line)?;
            if v2_only && !controllers.is_empty() {
                return None;
            }
            let (_, root) = self.roots.iter().find(|(c, _)| c == controllers)?;
            let below = path.strip_prefix(root.as_str())?.strip_prefix('/')?;
            let first = below.split('/').next().unwrap_or_default();
            // v2 marks the cgroup of a zombie that outlived it.
            let name = first.strip_suffix(" (deleted)").unwrap_or(first);
            (!name.is_empty() && !name.starts_with('.')).then_some(name)
        })
    }
}

/// `(controllers, path)` of a `/proc/<pid>/cgroup` line, `ID:CONTROLLERS:PATH`.
fn hierarchy_line(line: &str) -> Option<(&str, &str)> {
    let mut parts = line.splitn(3, ':');
    let _id = parts.next()?;
    Some((parts.next()?, parts.next()?))
}

/// Where a signal came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// The kernel, or a process of an ancestor pid namespace.
    Kernel,
    /// A process outside berth's apps.
    Outside,
    /// A process of this app.
    App(String),
    /// A process that could not be placed: it was gone or exiting when berth looked.
    Gone,
    /// The siginfo came from the sender (this `ssi_code`): its pid is a claim.
    Unvouched(i32),
}

/// Places the sender of `signal` with the files under `proc_root` (`/proc`).
pub fn sender(proc_root: &Path, signal: &Received, apps: &AppCgroups) -> Sender {
    match signal.code {
        libc::SI_KERNEL => Sender::Kernel,
        libc::SI_USER | libc::SI_TKILL if signal.pid == 0 => Sender::Kernel,
        libc::SI_USER | libc::SI_TKILL => {
            let dir = proc_root.join(signal.pid.to_string());
            let Ok(cgroup) = read_limited(&dir.join("cgroup")) else {
                return Sender::Gone;
            };
            let app = if apps.v2 {
                // v2 names the cgroup an exiting process or a zombie was in.
                apps.app_in(&cgroup, true)
            } else if alive(&dir) {
                // Read after the cgroup file: PF_EXITING is never cleared, so a sender
                // not exiting now was not exiting when its cgroup was read.
                apps.app_of(&cgroup)
            } else {
                return Sender::Gone;
            };
            match app {
                Some(app) => Sender::App(app.to_owned()),
                None => Sender::Outside,
            }
        }
        other => Sender::Unvouched(other),
    }
}

fn read_limited(path: &Path) -> io::Result<String> {
    let mut text = String::new();
    fs::File::open(path)?
        .take(MAX_CGROUP_FILE)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// Whether the process of `/proc/<pid>` (`dir`) exists and is not exiting: its
/// `stat` is `PID (COMM) STATE PPID PGRP SESSION TTY TPGID FLAGS ...`, where COMM may
/// hold spaces and parentheses (so the fields are counted after the last `)`).
fn alive(dir: &Path) -> bool {
    let Ok(stat) = fs::read_to_string(dir.join("stat")) else {
        return false;
    };
    let Some((_, after)) = stat.rsplit_once(')') else {
        return false;
    };
    let mut fields = after.split_whitespace();
    let state = fields.next().unwrap_or("X");
    let flags = fields.nth(5).and_then(|f| f.parse::<u64>().ok());
    !matches!(state, "Z" | "X" | "x") && flags.is_some_and(|f| f & PF_EXITING == 0)
}

/// Which apps may signal berth, and which could without being allowed to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Apps<'a> {
    /// Apps with `allow_signals_to_berth: true`.
    pub allowed: &'a [&'a str],
    /// Apps that share berth's pid namespace and are not allowed to signal it.
    pub sharing: &'a [&'a str],
}

/// Whether to act on `signal` from `sender`.
pub fn admitted(signal: i32, sender: &Sender, apps: Apps<'_>) -> bool {
    if signal == libc::SIGCHLD {
        return true;
    }
    match sender {
        Sender::Kernel | Sender::Outside => true,
        Sender::App(app) => apps.allowed.contains(&app.as_str()),
        Sender::Gone | Sender::Unvouched(_) => apps.sharing.is_empty(),
    }
}

/// berth's own `<proc_root>/self/cgroup`, for [`SignalGuard::new`]: to be read before
/// berth moves into a cgroup of its own making.
pub fn read_own(proc_root: &Path) -> io::Result<String> {
    let path = proc_root.join("self/cgroup");
    fs::read_to_string(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("read {}: {e}", path.display())))
}

/// The filter between the signalfd and the loop, with the warnings it has given.
#[derive(Debug)]
pub struct SignalGuard {
    proc_root: PathBuf,
    apps: AppCgroups,
    /// (app, or "" for a sender not placed; signal) warned about once already.
    warned: BTreeSet<(String, i32)>,
}

impl SignalGuard {
    /// `own`: berth's [`read_own`]; `v2`: the apps' cgroups are v2 ones.
    pub fn new(proc_root: &Path, own: &str, cgroup_root: &str, v2: bool) -> SignalGuard {
        SignalGuard {
            proc_root: proc_root.to_path_buf(),
            apps: AppCgroups::new(own, cgroup_root, v2),
            warned: BTreeSet::new(),
        }
    }

    /// Whether the loop is to act on `signal`; warns (once per app and signal, then
    /// at debug level) about one it ignores.
    pub fn admits(&mut self, signal: &Received, apps: Apps<'_>) -> bool {
        if signal.signal == libc::SIGCHLD {
            return true;
        }
        let sender = sender(&self.proc_root, signal, &self.apps);
        let name = crate::cgroup::signal_name(signal.signal);
        if admitted(signal.signal, &sender, apps) {
            if let Sender::App(app) = &sender {
                log::info!("{app}: sent {name} to berth (allow_signals_to_berth)");
            }
            return true;
        }
        let sharing = apps.sharing;
        let (key, message) = match &sender {
            Sender::App(app) => (
                app.clone(),
                format!(
                    "{app}: ignoring {name} from its process {}: apps may not signal berth",
                    signal.pid
                ),
            ),
            Sender::Gone => (
                String::new(),
                format!(
                    "ignoring {name} from pid {}: it was gone before berth could tell whether \
                     it is in an app, and {} share berth's pid namespace (send it from a \
                     process that stays, such as a shell's built-in kill)",
                    signal.pid,
                    sharing.join(", ")
                ),
            ),
            Sender::Unvouched(code) => (
                String::new(),
                format!(
                    "ignoring {name} with si_code {code}: its sender pid {} is the sender's \
                     claim, and {} share berth's pid namespace (send it with kill, not \
                     sigqueue)",
                    signal.pid,
                    sharing.join(", ")
                ),
            ),
            Sender::Kernel | Sender::Outside => return true,
        };
        if self.warned.insert((key, signal.signal)) {
            log::warn!("{message} (more like it are logged at debug level)");
        } else {
            log::debug!("{message}");
        }
        false
    }
}

impl super::core::Supervisor {
    /// Whether the loop is to act on `signal` (see the module's text).
    pub(super) fn admits(&mut self, signal: &Received) -> bool {
        if signal.signal == libc::SIGCHLD {
            return true;
        }
        let allowed: Vec<&str> = self
            .apps
            .values()
            .filter(|a| a.manifest().allow_signals_to_berth)
            .map(|a| a.name())
            .collect();
        let sharing: Vec<&str> = self
            .apps
            .values()
            .filter(|a| shares_pid_namespace(a.manifest()) && !a.manifest().allow_signals_to_berth)
            .map(|a| a.name())
            .collect();
        let apps = Apps {
            allowed: &allowed,
            sharing: &sharing,
        };
        self.guard.admits(signal, apps)
    }
}

/// Whether the app runs in berth's pid namespace (its `namespaces` lack `pid`).
pub fn shares_pid_namespace(app: &crate::manifest::Manifest) -> bool {
    !app.namespaces
        .contains(&crate::manifest::model::Namespace::Pid)
}

/// Warns, when `app` is loaded by `berth run`, that it shares berth's pid namespace.
pub fn warn_if_sharing(app: &crate::manifest::Manifest) {
    if let Some(warning) = crate::check::pid_namespace_warning(app) {
        log::warn!("{}: {warning}", app.name);
    }
}

#[cfg(test)]
mod tests;
