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

use libc::{gid_t, sock_filter, uid_t};

use super::channel::Step;
use super::sys::{self, Errno};
use crate::caps::{self, CapSet};
use crate::image::process::Process;
use crate::manifest::Manifest;

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
    /// The seccomp program, or `None` for `seccomp: unconfined`.
    pub seccomp: Option<Vec<sock_filter>>,
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
            seccomp: crate::seccomp::filter(manifest.seccomp),
            workdir: CString::new(process.workdir.as_str())
                .map_err(|_| format!("{}: workdir holds a NUL byte", manifest.name.as_str()))?,
        })
    }

    /// Resource limits, groups, gid and uid, capabilities: from here on the process is
    /// the app's user with the app's capabilities. The caller is root of the app's user
    /// namespace (or of the host's, without one), with the capabilities to change ids.
    pub fn become_app(&self) -> Result<(), (Step, Errno)> {
        sys::setrlimit(libc::RLIMIT_NOFILE as _, NOFILE.0, NOFILE.1).at(Step::Rlimits)?;
        sys::setrlimit(libc::RLIMIT_CORE as _, CORE.0, CORE.1).at(Step::Rlimits)?;
        // Keep the permitted capabilities across the uid change, then set exactly
        // the app's.
        caps::prepare_uid_change()
            .map_err(|e| Errno(e.errno()))
            .at(Step::KeepCaps)?;
        sys::set_groups(&self.groups).at(Step::Ids)?;
        sys::set_gid_uid(self.uid, self.gid).at(Step::Ids)?;
        caps::apply(self.caps)
            .map_err(|e| Errno(e.errno()))
            .at(Step::Capabilities)
    }

    /// `no_new_privs`, then the seccomp filter (which needs it).
    pub fn confine(&self) -> Result<(), (Step, Errno)> {
        caps::no_new_privs()
            .map_err(|e| Errno(e.errno()))
            .at(Step::NoNewPrivs)?;
        if let Some(filter) = &self.seccomp {
            crate::seccomp::install(filter)
                .map_err(|e| match e {
                    crate::seccomp::SeccompError::Install { source, .. } => {
                        Errno(source.raw_os_error().unwrap_or(libc::EINVAL))
                    }
                    crate::seccomp::SeccompError::Length { .. } => Errno(libc::E2BIG),
                })
                .at(Step::Seccomp)?;
        }
        Ok(())
    }

    /// The sandbox as the arguments of a helper program: `uid gid groups caps workdir
    /// seccomp`, groups comma-separated (`-` for none), caps in hex, the filter as
    /// hex of its instructions (`-` for none).
    pub fn to_args(&self) -> Vec<String> {
        let groups = if self.groups.is_empty() {
            "-".to_owned()
        } else {
            let list: Vec<String> = self.groups.iter().map(u32::to_string).collect();
            list.join(",")
        };
        let filter = match &self.seccomp {
            None => "-".to_owned(),
            Some(program) => {
                let mut hex = String::with_capacity(program.len() * 16);
                for i in program {
                    for byte in encode(i) {
                        hex.push_str(&format!("{byte:02x}"));
                    }
                }
                hex
            }
        };
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
            "-" => None,
            hex => {
                let bytes = hex
                    .as_bytes()
                    .chunks(2)
                    .map(|pair| {
                        std::str::from_utf8(pair)
                            .ok()
                            .and_then(|p| u8::from_str_radix(p, 16).ok())
                    })
                    .collect::<Option<Vec<u8>>>()?;
                if bytes.is_empty() || bytes.len() % 8 != 0 || hex.len() % 2 != 0 {
                    return None;
                }
                Some(bytes.chunks_exact(8).filter_map(decode).collect())
            }
        };
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

/// One BPF instruction as 8 bytes: code, jt, jf, k (little-endian).
fn encode(i: &sock_filter) -> [u8; 8] {
    let [c0, c1] = i.code.to_le_bytes();
    let [k0, k1, k2, k3] = i.k.to_le_bytes();
    [c0, c1, i.jt, i.jf, k0, k1, k2, k3]
}

fn decode(bytes: &[u8]) -> Option<sock_filter> {
    let &[c0, c1, jt, jf, k0, k1, k2, k3] = bytes else {
        return None;
    };
    Some(sock_filter {
        code: u16::from_le_bytes([c0, c1]),
        jt,
        jf,
        k: u32::from_le_bytes([k0, k1, k2, k3]),
    })
}

/// Tags a failure with its step.
pub(super) trait At<T> {
    fn at(self, step: Step) -> Result<T, (Step, Errno)>;
}

impl<T> At<T> for Result<T, Errno> {
    fn at(self, step: Step) -> Result<T, (Step, Errno)> {
        self.map_err(|e| (step, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seccomp: Option<Vec<sock_filter>>, groups: Vec<gid_t>) -> Sandbox {
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
        let filter = crate::seccomp::filter(crate::manifest::model::Seccomp::Default);
        assert!(filter.as_ref().is_some_and(|f| f.len() > 10));
        for s in [
            sample(filter, vec![]),
            sample(None, vec![5, 20, 4_000_000_000]),
        ] {
            assert_eq!(round_trip(&s).as_ref(), Some(&s));
        }
    }

    #[test]
    fn malformed_arguments_are_refused() {
        let good = sample(None, vec![]).to_args();
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
        assert!(with(5, "0102").is_none(), "not a whole instruction");
        assert!(with(5, "0g00000000000000").is_none());
        assert!(with(5, "").is_none());
        assert!(Sandbox::from_args(&["1"; 5]).is_none());
        let many = vec!["7"; MAX_GROUPS + 1].join(",");
        assert!(with(2, &many).is_none());
    }
}
