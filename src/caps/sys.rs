//! The kernel calls that give the child its capabilities, after fork and before exec.
//!
//! Everything here runs in the forked child, so it allocates nothing and touches no
//! lock: raw `prctl` and `capget`/`capset` calls, errno read right after each.

use std::fmt;
use std::io;

use libc::{c_int, c_ulong};

use super::CapSet;
use crate::manifest::types::Capability;

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

/// `prctl(option, arg2, arg3, 0, 0)`: the result, or the errno of `step`.
fn prctl(step: Step, option: c_int, arg2: c_ulong, arg3: c_ulong) -> Result<c_int, CapsError> {
    let zero: c_ulong = 0;
    // SAFETY: every option used here takes plain integers, no pointers, so the call
    // reads and writes no memory of ours; unused arguments are zero as the kernel
    // requires.
    let ret = unsafe { libc::prctl(option, arg2, arg3, zero, zero) };
    if ret < 0 {
        Err(CapsError::Call {
            step,
            source: io::Error::last_os_error(),
        })
    } else {
        Ok(ret)
    }
}

/// Keeps the permitted capabilities across the coming setuid away from root (the flag
/// is reset by `execve`). Call before setgroups/setgid/setuid, then call [`apply`].
pub fn prepare_uid_change() -> Result<(), CapsError> {
    prctl(Step::KeepCaps, libc::PR_SET_KEEPCAPS, 1, 0).map(drop)
}

/// Sets `no_new_privs`: from here on `execve` never grants privileges (setuid bits
/// and file capabilities are ignored). It cannot be undone.
pub fn no_new_privs() -> Result<(), CapsError> {
    prctl(Step::NoNewPrivs, libc::PR_SET_NO_NEW_PRIVS, 1, 0).map(drop)
}

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct Header {
    version: u32,
    pid: c_int,
}

/// `struct __user_cap_data_struct`: one 32-bit word of each set.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The effective, permitted and inheritable masks of this thread.
#[derive(Clone, Copy)]
struct Sets {
    effective: u64,
    permitted: u64,
    inheritable: u64,
}

fn join(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | u64::from(hi) << 32
}

fn split(mask: u64) -> (u32, u32) {
    // Truncation intended: the low and the high word.
    (mask as u32, (mask >> 32) as u32)
}

fn capget() -> Result<Sets, CapsError> {
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: `header` and `data` are live, writable and laid out as the kernel's v3
    // structures; with version 3 the kernel writes exactly two `Data`, which is the
    // length of `data`.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if ret < 0 {
        return Err(CapsError::Call {
            step: Step::ReadSets,
            source: io::Error::last_os_error(),
        });
    }
    let [lo, hi] = data;
    Ok(Sets {
        effective: join(lo.effective, hi.effective),
        permitted: join(lo.permitted, hi.permitted),
        inheritable: join(lo.inheritable, hi.inheritable),
    })
}

fn capset(step: Step, sets: Sets) -> Result<(), CapsError> {
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let (e0, e1) = split(sets.effective);
    let (p0, p1) = split(sets.permitted);
    let (i0, i1) = split(sets.inheritable);
    let data = [
        Data {
            effective: e0,
            permitted: p0,
            inheritable: i0,
        },
        Data {
            effective: e1,
            permitted: p1,
            inheritable: i1,
        },
    ];
    // SAFETY: `header` and `data` are live and laid out as the kernel's v3 structures;
    // with version 3 the kernel reads exactly two `Data`, the length of `data`, and
    // may write only the header's version field, which is writable.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if ret < 0 {
        return Err(CapsError::Call {
            step,
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
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
        match prctl(
            Step::ReadBounding(cap),
            libc::PR_CAPBSET_READ,
            cap.into(),
            0,
        ) {
            Ok(0) => return Err(CapsError::NotInBoundingSet { cap }),
            Ok(_) => {}
            Err(e) if e.errno() == libc::EINVAL => return Err(CapsError::UnknownToKernel { cap }),
            Err(e) => return Err(e),
        }
    }
    // 2. setuid away from root cleared the effective set (KEEPCAPS keeps only the
    //    permitted one), and dropping from the bounding set needs CAP_SETPCAP in it.
    let now = capget()?;
    capset(
        Step::RaiseEffective,
        Sets {
            effective: now.permitted,
            ..now
        },
    )?;
    // 3. The bounding set, before the permitted set loses CAP_SETPCAP. Up to the
    //    kernel's last capability, found by probing: PR_CAPBSET_DROP fails with EINVAL
    //    exactly for numbers the kernel does not know (and every capability of `set`
    //    is known, by step 1). Probing, not /proc, because /proc may not be mounted in
    //    the child, and it also drops capabilities newer than berth's names.
    for cap in 0..64u8 {
        if set.contains(cap) {
            continue;
        }
        match prctl(
            Step::DropBounding(cap),
            libc::PR_CAPBSET_DROP,
            cap.into(),
            0,
        ) {
            Ok(_) => {}
            Err(e) if e.errno() == libc::EINVAL && cap > 0 => break,
            Err(e) => return Err(e),
        }
    }
    // 4. The app's set, everywhere but ambient. Allowed without privilege: each new
    //    set is a subset of the current permitted one (checked in step 1 against the
    //    bounding set, which bounds what root held).
    let bits = set.bits();
    capset(
        Step::SetSets,
        Sets {
            effective: bits,
            permitted: bits,
            inheritable: bits,
        },
    )?;
    // 5. Ambient last: the kernel raises a capability as ambient only when it is both
    //    permitted and inheritable. Ambient capabilities are what a non-root app keeps
    //    across execve of a file without file capabilities.
    prctl(
        Step::ClearAmbient,
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as c_ulong,
        0,
    )?;
    for cap in set.iter() {
        prctl(
            Step::RaiseAmbient(cap),
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as c_ulong,
            cap.into(),
        )?;
    }
    Ok(())
}
