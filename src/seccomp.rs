//! The seccomp filter of a launched app.
//!
//! `seccomp: default` installs a filter close to Docker's default profile (what it
//! refuses, why, and where it differs are in [`deny`]); `seccomp: unconfined` installs
//! nothing. The filter is classic BPF built here ([`bpf`]), with no libseccomp: the
//! program checks the ABI (another one kills the process), answers `ENOSYS` to a
//! syscall number outside the table berth knows for the architecture, refuses `clone`
//! with namespace flags, `socket` and `socketpair` of two families and `personality`
//! with all but five values, refuses each listed syscall with its errno, and allows
//! everything else.
//!
//! Use, in the launched child (STYLE.md, habit 5): build the filter with [`filter`]
//! before forking, since building allocates; after fork, as the last step before exec,
//! set `no_new_privs` (`prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)`) and call [`install`],
//! which allocates nothing. Without `no_new_privs` the kernel accepts a filter only
//! from a process with CAP_SYS_ADMIN in its user namespace; berth always sets it.
//!
//! Kernels: filters need 3.5. `SECCOMP_RET_KILL_PROCESS` needs 4.14; an older kernel
//! reads it as `SECCOMP_RET_KILL` and kills the thread that made the call instead.

pub mod bpf;
pub mod deny;

use std::fmt;
use std::io;

use libc::sock_filter;

use crate::manifest::model::Seccomp;

pub use bpf::MAX_INSTRUCTIONS;
pub use deny::{ARG_RULES, DEFAULT_DENIED, Denied, KNOWN, NAMESPACE_FLAGS};

/// The `default` profile on this target.
pub const DEFAULT_POLICY: bpf::Policy<'static> = bpf::Policy {
    arch: bpf::AUDIT_ARCH,
    known: KNOWN,
    arg_rules: ARG_RULES,
    denied: DEFAULT_DENIED,
};

/// The BPF program of `profile` for this target, or `None` when it installs no filter
/// (`unconfined`).
///
/// The `default` policy is constant and its tests build it; were its program ever
/// refused by [`bpf::program`], the filter returned kills the process at its first
/// syscall rather than let it run unfiltered.
pub fn filter(profile: Seccomp) -> Option<Vec<sock_filter>> {
    match profile {
        Seccomp::Default => Some(bpf::program(&DEFAULT_POLICY).unwrap_or_else(|_| {
            vec![sock_filter {
                code: (libc::BPF_RET | libc::BPF_K) as u16,
                jt: 0,
                jf: 0,
                k: libc::SECCOMP_RET_KILL_PROCESS,
            }]
        })),
        Seccomp::Unconfined => None,
    }
}

/// The program of `profile`, built once per process and shared by every app that
/// uses it (the supervisor keeps one per app run otherwise: 1.3 KiB each).
pub fn program(profile: Seccomp) -> Option<&'static [sock_filter]> {
    static DEFAULT: std::sync::OnceLock<Vec<sock_filter>> = std::sync::OnceLock::new();
    match profile {
        Seccomp::Default => Some(
            DEFAULT
                .get_or_init(|| filter(Seccomp::Default).unwrap_or_default())
                .as_slice(),
        ),
        Seccomp::Unconfined => None,
    }
}

/// Installs `filter` on the calling thread with `prctl(PR_SET_SECCOMP,
/// SECCOMP_MODE_FILTER)`; it holds for the rest of the process's life and is
/// inherited across fork and exec.
///
/// The caller must have set `no_new_privs` first (or hold CAP_SYS_ADMIN), and must be
/// single-threaded: the filter applies to the calling thread only (no TSYNC). It
/// allocates nothing, so it is safe between fork and exec.
pub fn install(filter: &[sock_filter]) -> Result<(), SeccompError> {
    let instructions = filter.len();
    if instructions == 0 || instructions > MAX_INSTRUCTIONS || u16::try_from(instructions).is_err()
    {
        return Err(SeccompError::Length { instructions });
    }
    crate::sys::caps::set_seccomp_filter(filter).map_err(|e| SeccompError::Install {
        instructions,
        source: e.into(),
    })
}

/// Why a filter could not be installed.
#[derive(Debug)]
pub enum SeccompError {
    /// The filter is empty or longer than the kernel accepts.
    Length { instructions: usize },
    /// The kernel refused the filter (EINVAL: a bad program; EACCES: no
    /// `no_new_privs` and no CAP_SYS_ADMIN; EFAULT).
    Install {
        instructions: usize,
        source: io::Error,
    },
}

impl fmt::Display for SeccompError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            SeccompError::Length { instructions } => write!(
                f,
                "install the seccomp filter ({instructions} instructions): \
                 the kernel accepts 1 to {MAX_INSTRUCTIONS}"
            ),
            SeccompError::Install {
                instructions,
                source,
            } => write!(
                f,
                "install the seccomp filter ({instructions} instructions): {source}"
            ),
        }
    }
}

impl std::error::Error for SeccompError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SeccompError::Install { source, .. } => Some(source),
            SeccompError::Length { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests;
