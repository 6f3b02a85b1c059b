//! The supervisor's errors: what stops `berth run` from starting or keeps its loop
//! from going on ([`SupervisorError`]), and why one app could not be launched
//! ([`StartError`], whose text becomes the reason in the app's lifecycle line).

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::cgroup::CgroupError;
use crate::image::ImageError;
use crate::launch::LaunchError;
use crate::sys;

/// Why the supervisor cannot start or go on.
#[derive(Debug)]
pub enum SupervisorError {
    /// A kernel facility of the loop (`what`: epoll, the signalfd, the timer...).
    Sys {
        what: &'static str,
        source: sys::Error,
    },
    /// Reading berth's own cgroup from `/proc/self/cgroup`.
    OwnCgroup(io::Error),
    Cgroups(CgroupError),
    /// The state, run or log directory could not be prepared.
    State(String),
    Store(ImageError),
    /// As a service: the apps directory given does not exist.
    NoAppsDir(PathBuf),
}

impl fmt::Display for SupervisorError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            SupervisorError::Sys { what, source } => write!(f, "{what}: {source}"),
            SupervisorError::OwnCgroup(e) => write!(f, "read /proc/self/cgroup: {e}"),
            SupervisorError::Cgroups(e) => write!(f, "cgroups: {e}"),
            SupervisorError::State(e) => f.write_str(e),
            SupervisorError::Store(e) => write!(f, "the image store: {e}"),
            SupervisorError::NoAppsDir(dir) => {
                write!(f, "the apps directory {} does not exist", dir.display())
            }
        }
    }
}

impl std::error::Error for SupervisorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SupervisorError::Sys { source, .. } => Some(source),
            SupervisorError::OwnCgroup(e) => Some(e),
            SupervisorError::Cgroups(e) => Some(e),
            SupervisorError::Store(e) => Some(e),
            SupervisorError::State(_) | SupervisorError::NoAppsDir(_) => None,
        }
    }
}

/// `what` failed in the kernel: for `map_err`.
pub(super) fn sys_err(what: &'static str) -> impl FnOnce(sys::Error) -> SupervisorError {
    move |source| SupervisorError::Sys { what, source }
}

/// Why an app could not be launched (its image is installed). Said without the app's
/// name: the line that reports it has the name already.
#[derive(Debug)]
pub enum StartError {
    /// The app was forgotten before its launch (not reached: a launch is asked for an
    /// app in the table).
    Gone,
    /// A bind source leads into a path no app may reach (checked again at launch).
    Reserved(Vec<String>),
    /// The image is installed but cannot be used (held, or its record unreadable).
    Image {
        path: PathBuf,
        source: ImageError,
    },
    /// The app's log file cannot be opened.
    Log {
        dir: PathBuf,
        source: io::Error,
    },
    /// A device of its manifest is not what it must be.
    Devices(String),
    Cgroup(CgroupError),
    Launch(LaunchError),
    /// `container:<owner>`: the owner has no process (it is a dependency, so this is a
    /// race with its exit).
    NetworkOwner(String),
    /// `container:<owner>`: its namespace cannot be opened.
    OwnerNamespace {
        path: String,
        source: io::Error,
    },
    /// Epoll could not take the launch channel.
    Watch(sys::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            StartError::Gone => f.write_str("the app is gone"),
            StartError::Reserved(problems) => f.write_str(&problems.join("; ")),
            StartError::Image { path, source } => {
                write!(f, "image {}: {source}", path.display())
            }
            StartError::Log { dir, source } => write!(f, "log in {}: {source}", dir.display()),
            StartError::Devices(e) => f.write_str(e),
            StartError::Cgroup(e) => write!(f, "{e}"),
            StartError::Launch(e) => write!(f, "{e}"),
            StartError::NetworkOwner(owner) => write!(
                f,
                "{owner} is not running, and it uses {owner}'s network namespace"
            ),
            StartError::OwnerNamespace { path, source } => write!(f, "open {path}: {source}"),
            StartError::Watch(e) => write!(f, "epoll add its launch channel: {e}"),
        }
    }
}

impl std::error::Error for StartError {}
