//! `prctl` and the capability calls: the privileges of the calling thread (bounding,
//! ambient and the three `capset` sets, keep-caps, `no_new_privs`), its seccomp filter,
//! and the two process relations berth sets with `prctl` (child subreaper, parent
//! death signal). All raw calls that allocate nothing: the launched child uses them
//! between clone and exec.

use libc::{c_int, c_ulong};

use super::{Error, Result, check, check_long};

/// `prctl(option, arg2, arg3, 0, 0)` for the options that take plain integers.
fn prctl(call: &'static str, option: c_int, arg2: c_ulong, arg3: c_ulong) -> Result<c_int> {
    let zero: c_ulong = 0;
    // SAFETY: every option passed here takes plain integers, no pointers, so the call
    // reads and writes no memory of ours; unused arguments are zero as the kernel
    // requires.
    check(call, unsafe { libc::prctl(option, arg2, arg3, zero, zero) })
}

/// `PR_SET_KEEPCAPS`: keep the permitted capabilities across the coming change away
/// from uid 0 (reset by `execve`).
pub(crate) fn keep_caps() -> Result<()> {
    prctl("prctl PR_SET_KEEPCAPS", libc::PR_SET_KEEPCAPS, 1, 0).map(drop)
}

/// `PR_SET_NO_NEW_PRIVS`: from here on `execve` never grants privileges. Cannot be
/// undone.
pub(crate) fn no_new_privs() -> Result<()> {
    prctl("prctl PR_SET_NO_NEW_PRIVS", libc::PR_SET_NO_NEW_PRIVS, 1, 0).map(drop)
}

/// Whether capability `cap` is in the bounding set (`PR_CAPBSET_READ`; EINVAL for a
/// number the kernel does not know).
pub(crate) fn bounding_has(cap: u8) -> Result<bool> {
    prctl(
        "prctl PR_CAPBSET_READ",
        libc::PR_CAPBSET_READ,
        cap.into(),
        0,
    )
    .map(|r| r != 0)
}

/// Drops capability `cap` from the bounding set (`PR_CAPBSET_DROP`; EINVAL for a
/// number the kernel does not know).
pub(crate) fn bounding_drop(cap: u8) -> Result<()> {
    prctl(
        "prctl PR_CAPBSET_DROP",
        libc::PR_CAPBSET_DROP,
        cap.into(),
        0,
    )
    .map(drop)
}

/// Clears every ambient capability.
pub(crate) fn ambient_clear() -> Result<()> {
    prctl(
        "prctl PR_CAP_AMBIENT_CLEAR_ALL",
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as c_ulong,
        0,
    )
    .map(drop)
}

/// Raises capability `cap` as ambient (it must be permitted and inheritable).
pub(crate) fn ambient_raise(cap: u8) -> Result<()> {
    prctl(
        "prctl PR_CAP_AMBIENT_RAISE",
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_RAISE as c_ulong,
        cap.into(),
    )
    .map(drop)
}

/// Makes this process the reaper of its orphaned descendants
/// (`PR_SET_CHILD_SUBREAPER`).
pub(crate) fn become_subreaper() -> Result<()> {
    prctl(
        "prctl PR_SET_CHILD_SUBREAPER",
        libc::PR_SET_CHILD_SUBREAPER,
        1,
        0,
    )
    .map(drop)
}

/// `PR_SET_PDEATHSIG`: `sig` when the thread that forked us exits.
pub(crate) fn set_parent_death_signal(sig: c_int) -> Result<()> {
    let sig =
        c_ulong::try_from(sig).map_err(|_| Error::new("prctl PR_SET_PDEATHSIG", libc::EINVAL))?;
    prctl("prctl PR_SET_PDEATHSIG", libc::PR_SET_PDEATHSIG, sig, 0).map(drop)
}

/// Installs the seccomp filter `filter` on the calling thread
/// (`PR_SET_SECCOMP`, `SECCOMP_MODE_FILTER`); EINVAL for an empty filter or one longer
/// than a `sock_fprog` can describe.
pub(crate) fn set_seccomp_filter(filter: &[libc::sock_filter]) -> Result<()> {
    let call = "prctl PR_SET_SECCOMP";
    let len = u16::try_from(filter.len()).map_err(|_| Error::new(call, libc::EINVAL))?;
    let prog = libc::sock_fprog {
        len,
        // The kernel only reads through this pointer (it copies the program).
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` describes `len` initialised instructions borrowed from `filter`
    // for the whole call; the kernel copies them before prctl returns and never writes
    // through the pointer. The variadic arguments are the two prctl takes here.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            c_ulong::from(libc::SECCOMP_MODE_FILTER),
            &raw const prog,
        )
    };
    check(call, rc).map(drop)
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

/// The effective, permitted and inheritable masks of a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sets {
    pub(crate) effective: u64,
    pub(crate) permitted: u64,
    pub(crate) inheritable: u64,
}

fn join(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | u64::from(hi) << 32
}

fn split(mask: u64) -> (u32, u32) {
    // Truncation intended: the low and the high word.
    (mask as u32, (mask >> 32) as u32)
}

/// `capget(2)` of this thread.
pub(crate) fn capget() -> Result<Sets> {
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: `header` and `data` are live, writable and laid out as the kernel's v3
    // structures; with version 3 the kernel writes exactly two `Data`, which is the
    // length of `data`.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    check_long("capget", ret)?;
    let [lo, hi] = data;
    Ok(Sets {
        effective: join(lo.effective, hi.effective),
        permitted: join(lo.permitted, hi.permitted),
        inheritable: join(lo.inheritable, hi.inheritable),
    })
}

/// `capset(2)` of this thread.
pub(crate) fn capset(sets: Sets) -> Result<()> {
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
    check_long("capset", ret).map(drop)
}
