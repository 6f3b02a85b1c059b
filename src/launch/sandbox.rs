//! The process sandbox of an app: who its processes are and what they may do, once
//! they are inside its namespaces, cgroup and root.
//!
//! One [`Sandbox`] is worked out per app run ([`Sandbox::of`]), and every process
//! berth starts inside the app enters it through the same two calls: the app's own
//! process (the launched child, and through it the `init: true` reaper), and each exec
//! health probe (its runner, before it forks the probe's command). `runc exec` works
//! the same way: a process joining a container gets the container's whole process
//! spec, never the runtime's privileges. Until issue 16 the exec probe kept every
//! capability of the supervisor, with no seccomp filter and no `no_new_privs`; the
//! program it ran lived in the app's writable root, so an app could replace it and
//! run its own code as the host's root on the next probe.
//!
//! The two halves, in the order of STYLE.md's habit 5:
//! 1. [`Sandbox::become_app`]: resource limits, then the supplementary groups, gid and
//!    uid, then exactly the app's capabilities in all five sets (bounding, permitted,
//!    effective, inheritable, ambient);
//! 2. [`Sandbox::confine`]: `no_new_privs`, then the seccomp filter, last before exec
//!    so that none of berth's own setup runs under the filter.
//!
//! Between the two the caller may still do what needs the app's ids but not the
//! filter (the launched child enters the working directory there). Both halves only
//! make raw system calls and allocate nothing: they run between fork and exec.
//!
//! The probe's runner is a separate program (berth's own executable, started fresh),
//! so the sandbox travels to it as text arguments ([`Sandbox::to_args`],
//! [`Sandbox::from_args`]) rather than through its environment: host-side helpers start
//! with an empty environment, so nothing of the image's `Env` (an `LD_PRELOAD` of a
//! path the app writes) reaches a process that still runs with the host's privileges.

use std::ffi::CString;

use libc::{gid_t, uid_t};

use super::channel::Step;
use crate::caps::{self, CapSet};
use crate::image::process::Process;
use crate::manifest::Manifest;
use crate::manifest::model::Seccomp;
use crate::sys::{self, Error};

/// Open files: soft and hard limit of every process in an app (the supervisor's own
/// may be higher or lower).
pub const NOFILE: (u64, u64) = (1024, 4096);

/// Core dumps: off (on a board they fill the flash).
pub const CORE: (u64, u64) = (0, 0);

/// The most supplementary groups a sandbox carries (the kernel's NGROUPS_MAX is
/// 65536; an app needs a handful).
pub const MAX_GROUPS: usize = 64;

/// Who an app's processes are and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    pub uid: uid_t,
    pub gid: gid_t,
    /// Supplementary groups (none today: the manifest and image give only a user and
    /// its primary group).
    pub groups: Vec<gid_t>,
    /// The one set every capability set holds.
    pub caps: CapSet,
    /// The seccomp profile; its program is built once per process
    /// ([`crate::seccomp::program`]), so an app run does not hold its own copy.
    pub seccomp: Seccomp,
    /// The working directory inside the app's root.
    pub workdir: CString,
}

impl Sandbox {
    /// The sandbox of `manifest`'s app running `process`, with the capabilities this
    /// kernel knows (`known_caps`).
    pub fn of(
        manifest: &Manifest,
        process: &Process,
        known_caps: CapSet,
    ) -> Result<Sandbox, String> {
        Ok(Sandbox {
            uid: process.uid,
            gid: process.gid,
            groups: Vec::new(),
            caps: caps::resolve(&manifest.capabilities, known_caps),
            seccomp: {
                // Built now, in the parent: the child only reads it (it must not
                // allocate between clone and exec).
                let _ = crate::seccomp::program(manifest.seccomp);
                manifest.seccomp
            },
            workdir: CString::new(process.workdir.as_str())
                .map_err(|_| format!("{}: workdir holds a NUL byte", manifest.name.as_str()))?,
        })
    }

    /// Resource limits, groups, gid and uid, capabilities: from here on the process is
    /// the app's user with the app's capabilities. The caller is root of the app's user
    /// namespace (or of the host's, without one), with the capabilities to change ids.
    pub fn become_app(&self) -> Result<(), (Step, Error)> {
        sys::rlimit::set(libc::RLIMIT_NOFILE as _, NOFILE.0, NOFILE.1).at(Step::Rlimits)?;
        sys::rlimit::set(libc::RLIMIT_CORE as _, CORE.0, CORE.1).at(Step::Rlimits)?;
        // Keep the permitted capabilities across the uid change, then set exactly
        // the app's.
        caps::prepare_uid_change()
            .map_err(|e| Error::new("prctl PR_SET_KEEPCAPS", e.errno()))
            .at(Step::KeepCaps)?;
        sys::ids::set_groups(&self.groups).at(Step::Ids)?;
        sys::ids::set_gid_uid(self.uid, self.gid).at(Step::Ids)?;
        caps::apply(self.caps)
            .map_err(|e| Error::new("capset", e.errno()))
            .at(Step::Capabilities)
    }

    /// `no_new_privs`, then the seccomp filter (which needs it).
    pub fn confine(&self) -> Result<(), (Step, Error)> {
        caps::no_new_privs()
            .map_err(|e| Error::new("prctl PR_SET_NO_NEW_PRIVS", e.errno()))
            .at(Step::NoNewPrivs)?;
        if let Some(filter) = crate::seccomp::program(self.seccomp) {
            let call = "prctl PR_SET_SECCOMP";
            crate::seccomp::install(filter)
                .map_err(|e| match e {
                    crate::seccomp::SeccompError::Install { source, .. } => {
                        Error::new(call, source.raw_os_error().unwrap_or(libc::EINVAL))
                    }
                    crate::seccomp::SeccompError::Length { .. } => Error::new(call, libc::E2BIG),
                })
                .at(Step::Seccomp)?;
        }
        Ok(())
    }

    /// The sandbox as the arguments of a helper program: `uid gid groups caps workdir
    /// seccomp`, groups comma-separated (`-` for none), caps in hex, the seccomp
    /// profile by name (the helper is berth's own executable, which builds the same
    /// program from it).
    pub fn to_args(&self) -> Vec<String> {
        let groups = if self.groups.is_empty() {
            "-".to_owned()
        } else {
            let list: Vec<String> = self.groups.iter().map(u32::to_string).collect();
            list.join(",")
        };
        let filter = match self.seccomp {
            Seccomp::Default => "default",
            Seccomp::Unconfined => "unconfined",
        }
        .to_owned();
        vec![
            self.uid.to_string(),
            self.gid.to_string(),
            groups,
            format!("{:x}", self.caps.bits()),
            self.workdir.to_string_lossy().into_owned(),
            filter,
        ]
    }

    /// The sandbox from the six arguments [`to_args`](Self::to_args) made; `None` when
    /// any is malformed.
    pub fn from_args(args: &[&str]) -> Option<Sandbox> {
        let [uid, gid, groups, caps, workdir, filter] = args else {
            return None;
        };
        let groups = match *groups {
            "-" => Vec::new(),
            list => list
                .split(',')
                .map(|g| g.parse().ok())
                .collect::<Option<Vec<gid_t>>>()?,
        };
        if groups.len() > MAX_GROUPS {
            return None;
        }
        let seccomp = match *filter {
            "default" => Seccomp::Default,
            "unconfined" => Seccomp::Unconfined,
            _ => return None,
        };
        let _ = crate::seccomp::program(seccomp);
        Some(Sandbox {
            uid: uid.parse().ok()?,
            gid: gid.parse().ok()?,
            groups,
            caps: CapSet::from_bits(u64::from_str_radix(caps, 16).ok()?)?,
            seccomp,
            workdir: CString::new(*workdir).ok()?,
        })
    }
}

/// How many arguments [`Sandbox::to_args`] makes.
pub const ARGS: usize = 6;

/// Tags a failure with its step.
pub(super) trait At<T> {
    fn at(self, step: Step) -> Result<T, (Step, Error)>;
}

impl<T> At<T> for sys::Result<T> {
    fn at(self, step: Step) -> Result<T, (Step, Error)> {
        self.map_err(|e| (step, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seccomp: Seccomp, groups: Vec<gid_t>) -> Sandbox {
        Sandbox {
            uid: 1000,
            gid: 100,
            groups,
            caps: caps::DEFAULT,
            seccomp,
            workdir: c"/srv/app dir".to_owned(),
        }
    }

    fn round_trip(s: &Sandbox) -> Option<Sandbox> {
        let args = s.to_args();
        assert_eq!(args.len(), ARGS);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Sandbox::from_args(&refs)
    }

    #[test]
    fn travels_as_arguments_unchanged() {
        for s in [
            sample(Seccomp::Default, vec![]),
            sample(Seccomp::Unconfined, vec![5, 20, 4_000_000_000]),
        ] {
            assert_eq!(round_trip(&s).as_ref(), Some(&s));
        }
    }

    #[test]
    fn the_program_is_built_once_and_shared() {
        let a = crate::seccomp::program(Seccomp::Default).unwrap();
        let b = crate::seccomp::program(Seccomp::Default).unwrap();
        assert!(std::ptr::eq(a, b));
        assert_eq!(Some(a.to_vec()), crate::seccomp::filter(Seccomp::Default));
        assert!(crate::seccomp::program(Seccomp::Unconfined).is_none());
    }

    #[test]
    fn malformed_arguments_are_refused() {
        let good = sample(Seccomp::Default, vec![]).to_args();
        let with = |i: usize, v: &str| {
            let mut a: Vec<&str> = good.iter().map(String::as_str).collect();
            a[i] = v;
            Sandbox::from_args(&a)
        };
        assert!(with(0, "x").is_none());
        assert!(with(1, "-1").is_none());
        assert!(with(2, "1,,2").is_none());
        assert!(
            with(3, "ffffffffffffffff").is_none(),
            "caps above the last known"
        );
        assert!(with(5, "-").is_none(), "not a profile");
        assert!(with(5, "Default").is_none());
        assert!(with(5, "").is_none());
        assert!(Sandbox::from_args(&["1"; 5]).is_none());
        let many = vec!["7"; MAX_GROUPS + 1].join(",");
        assert!(with(2, &many).is_none());
    }
}
