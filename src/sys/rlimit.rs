//! Resource limits.

use std::os::fd::RawFd;

use libc::c_int;

use super::{Error, Result, check};

/// `getrlimit(2)`: (soft, hard).
#[allow(
    clippy::useless_conversion,
    reason = "rlim_t is u64 on musl and 64-bit glibc, u32 on 32-bit glibc"
)]
pub(crate) fn get(resource: c_int) -> Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // The resource argument's type differs between glibc and musl.
    #[allow(
        clippy::useless_conversion,
        reason = "c_int on musl, __rlimit_resource_t on glibc"
    )]
    let resource = resource
        .try_into()
        .map_err(|_| Error::new("getrlimit", libc::EINVAL))?;
    // SAFETY: `limit` is a writable `rlimit` borrowed for the call.
    check("getrlimit", unsafe {
        libc::getrlimit(resource, &raw mut limit)
    })?;
    Ok((u64::from(limit.rlim_cur), u64::from(limit.rlim_max)))
}

/// `setrlimit(2)`; a value too large for the platform's `rlim_t` is infinity.
#[allow(
    clippy::useless_conversion,
    clippy::unnecessary_fallible_conversions,
    reason = "rlim_t is u64 on musl and 64-bit glibc, u32 on 32-bit glibc"
)]
pub(crate) fn set(resource: c_int, soft: u64, hard: u64) -> Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft.try_into().unwrap_or(libc::RLIM_INFINITY),
        rlim_max: hard.try_into().unwrap_or(libc::RLIM_INFINITY),
    };
    #[allow(
        clippy::useless_conversion,
        reason = "c_int on musl, __rlimit_resource_t on glibc"
    )]
    let resource = resource
        .try_into()
        .map_err(|_| Error::new("setrlimit", libc::EINVAL))?;
    // SAFETY: `limit` is a valid `rlimit` borrowed for the call.
    check("setrlimit", unsafe {
        libc::setrlimit(resource, &raw const limit)
    })
    .map(drop)
}

/// One past the highest descriptor number this process may open (`RLIMIT_NOFILE`'s
/// soft limit, at most 2^20): the end of a loop over every possible descriptor.
pub(crate) fn open_files_limit() -> Result<RawFd> {
    let (soft, _) = get(libc::RLIMIT_NOFILE as c_int)?;
    Ok(RawFd::try_from(soft.min(1 << 20)).unwrap_or(1 << 20))
}
