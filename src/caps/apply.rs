//! Giving the child its capabilities, after fork and before exec.
//!
//! Everything here runs in the forked child, so it allocates nothing and touches no
//! lock: the raw `prctl` and `capget`/`capset` calls of `sys::caps`, in order.

use std::fmt;
use std::io;

use super::CapSet;
use crate::manifest::types::Capability;
use crate::sys::caps::{self as sys, Sets};

/// The step of [`apply`] (or its neighbours) that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `prctl(PR_SET_KEEPCAPS)`.
    KeepCaps,
    /// `prctl(PR_CAPBSET_READ)` of a capability of the set.
    ReadBounding(u8),
    /// `capget`.
    ReadSets,
    /// `capset` making the permitted capabilities effective (for `CAP_SETPCAP`).
    RaiseEffective,
    /// `prctl(PR_CAPBSET_DROP)`.
    DropBounding(u8),
    /// `capset` of the app's set.
    SetSets,
    /// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)`.
    ClearAmbient,
    /// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE)`.
    RaiseAmbient(u8),
    /// `prctl(PR_SET_NO_NEW_PRIVS)`.
    NoNewPrivs,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            Step::KeepCaps => f.write_str("keep capabilities across the uid change"),
            Step::ReadBounding(c) => {
                write!(
                    f,
                    "read capability {} in the bounding set",
                    Capability::One(c)
                )
            }
            Step::ReadSets => f.write_str("read the capability sets"),
            Step::RaiseEffective => f.write_str("make the permitted capabilities effective"),
            Step::DropBounding(c) => write!(
                f,
                "drop capability {} from the bounding set",
                Capability::One(c)
            ),
            Step::SetSets => {
                f.write_str("set the effective, permitted and inheritable capabilities")
            }
            Step::ClearAmbient => f.write_str("clear the ambient capabilities"),
            Step::RaiseAmbient(c) => {
                write!(f, "raise capability {} as ambient", Capability::One(c))
            }
            Step::NoNewPrivs => f.write_str("set no_new_privs"),
        }
    }
}

/// A privilege step that failed in the child.
#[derive(Debug)]
pub enum CapsError {
    /// A kernel call failed.
    Call {
        step: Step,
        /// The errno, as an `io::Error`.
        source: io::Error,
    },
    /// The set holds a capability the running kernel does not have.
    UnknownToKernel { cap: u8 },
    /// The set holds a capability missing from berth's own bounding set, so berth
    /// cannot pass it on.
    NotInBoundingSet { cap: u8 },
}

impl CapsError {
    /// The errno of a failed call (for the typed message to the parent); `EINVAL` or
    /// `EPERM` for the two refusals that are not a single call.
    pub fn errno(&self) -> i32 {
        match self {
            CapsError::Call { source, .. } => source.raw_os_error().unwrap_or(0),
            CapsError::UnknownToKernel { .. } => libc::EINVAL,
            CapsError::NotInBoundingSet { .. } => libc::EPERM,
        }
    }
}

impl fmt::Display for CapsError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            CapsError::Call { step, source } => write!(f, "{step}: {source}"),
            CapsError::UnknownToKernel { cap } => write!(
                f,
                "capability {} is not known to the running kernel",
                Capability::One(*cap)
            ),
            CapsError::NotInBoundingSet { cap } => write!(
                f,
                "capability {} is not in berth's own bounding set, so no app can have it",
                Capability::One(*cap)
            ),
        }
    }
}

impl std::error::Error for CapsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CapsError::Call { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A call's error, as the failure of `step`.
fn at(step: Step) -> impl Fn(crate::sys::Error) -> CapsError {
    move |e| CapsError::Call {
        step,
        source: io::Error::from_raw_os_error(e.errno),
    }
}

/// Keeps the permitted capabilities across the coming setuid away from root (the flag
/// is reset by `execve`). Call before setgroups/setgid/setuid, then call [`apply`].
pub fn prepare_uid_change() -> Result<(), CapsError> {
    sys::keep_caps().map_err(at(Step::KeepCaps))
}

/// Sets `no_new_privs`: from here on `execve` never grants privileges (setuid bits
/// and file capabilities are ignored). It cannot be undone.
pub fn no_new_privs() -> Result<(), CapsError> {
    sys::no_new_privs().map_err(at(Step::NoNewPrivs))
}

/// Gives this process exactly `set` as its bounding, permitted, effective, inheritable
/// and ambient capabilities. For the child after fork: call [`prepare_uid_change`]
/// first, while still root, then change groups, gid and uid, then call this, then
/// [`no_new_privs`]. Works the same when the app stays root (uid 0 gets no more than
/// `set` either, because the bounding set limits what `execve` grants root).
pub fn apply(set: CapSet) -> Result<(), CapsError> {
    // 1. Refuse, before changing anything, a set that berth cannot pass on: the kernel
    //    would only say EPERM at step 4.
    for cap in set.iter() {
        match sys::bounding_has(cap) {
            Ok(false) => return Err(CapsError::NotInBoundingSet { cap }),
            Ok(true) => {}
            Err(e) if e.errno == libc::EINVAL => return Err(CapsError::UnknownToKernel { cap }),
            Err(e) => return Err(at(Step::ReadBounding(cap))(e)),
        }
    }
    // 2. setuid away from root cleared the effective set (KEEPCAPS keeps only the
    //    permitted one), and dropping from the bounding set needs CAP_SETPCAP in it.
    let now = sys::capget().map_err(at(Step::ReadSets))?;
    sys::capset(Sets {
        effective: now.permitted,
        ..now
    })
    .map_err(at(Step::RaiseEffective))?;
    // 3. The bounding set, before the permitted set loses CAP_SETPCAP. Up to the
    //    kernel's last capability, found by probing: PR_CAPBSET_DROP fails with EINVAL
    //    exactly for numbers the kernel does not know (and every capability of `set`
    //    is known, by step 1). Probing, not /proc, because /proc may not be mounted in
    //    the child, and it also drops capabilities newer than berth's names.
    for cap in 0..64u8 {
        if set.contains(cap) {
            continue;
        }
        match sys::bounding_drop(cap) {
            Ok(()) => {}
            Err(e) if e.errno == libc::EINVAL && cap > 0 => break,
            Err(e) => return Err(at(Step::DropBounding(cap))(e)),
        }
    }
    // 4. The app's set, everywhere but ambient. Allowed without privilege: each new
    //    set is a subset of the current permitted one (checked in step 1 against the
    //    bounding set, which bounds what root held).
    let bits = set.bits();
    sys::capset(Sets {
        effective: bits,
        permitted: bits,
        inheritable: bits,
    })
    .map_err(at(Step::SetSets))?;
    // 5. Ambient last: the kernel raises a capability as ambient only when it is both
    //    permitted and inheritable. Ambient capabilities are what a non-root app keeps
    //    across execve of a file without file capabilities.
    sys::ambient_clear().map_err(at(Step::ClearAmbient))?;
    for cap in set.iter() {
        sys::ambient_raise(cap).map_err(at(Step::RaiseAmbient(cap)))?;
    }
    Ok(())
}
