//! What an entry's header (and its PAX records) says about the file to make.

use std::io::{self, Read};

use nix::sys::stat::{SFlag, makedev};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};
use tar::EntryType;

/// The attributes of an entry, from its header (and PAX records).
pub(super) struct Meta {
    /// Permission bits, with setuid, setgid and sticky.
    pub(super) mode: u32,
    pub(super) uid: Uid,
    pub(super) gid: Gid,
    pub(super) mtime: TimeSpec,
}

impl Meta {
    pub(super) fn of<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta, String> {
        let header = entry.header();
        let raw = header.as_old();
        let mode = number(header.mode(), &raw.mode, "mode")? & 0o7777;
        let id = |value: io::Result<u64>, raw: &[u8], what: &str| {
            let value = number(value, raw, what)?;
            u32::try_from(value).map_err(|_| format!("{what} {value} is out of range"))
        };
        let uid = Uid::from_raw(id(header.uid(), &raw.uid, "uid")?);
        let gid = Gid::from_raw(id(header.gid(), &raw.gid, "gid")?);
        let seconds = number(header.mtime(), &raw.mtime, "mtime")?;
        let seconds = seconds
            .try_into()
            .map_err(|_| format!("mtime {seconds} is out of range"))?;
        let mtime = pax_mtime(entry).unwrap_or(TimeSpec::new(seconds, 0));
        Ok(Meta {
            mode,
            uid,
            gid,
            mtime,
        })
    }
}

/// A numeric header field. A blank one (all NULs or spaces: some writers leave the
/// fields they do not use so) is 0, as for GNU and BSD tar.
fn number<T: Default>(value: io::Result<T>, raw: &[u8], what: &str) -> Result<T, String> {
    match value {
        Ok(value) => Ok(value),
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(T::default()),
        Err(e) => Err(format!("bad {what} field: {e}")),
    }
}

/// A PAX `mtime` record (`1700000000.25`), which may carry a fraction of a second.
fn pax_mtime<R: Read>(entry: &mut tar::Entry<'_, R>) -> Option<TimeSpec> {
    let records = entry.pax_extensions().ok()??;
    for record in records {
        let record = record.ok()?;
        if record.key_bytes() == b"mtime" {
            return parse_time(record.value_bytes());
        }
    }
    None
}

#[allow(
    clippy::useless_conversion,
    clippy::unnecessary_fallible_conversions,
    reason = "time_t and c_long are 32 bits on some targets"
)]
pub(super) fn parse_time(value: &[u8]) -> Option<TimeSpec> {
    let value = std::str::from_utf8(value).ok()?;
    let (seconds, fraction) = value.split_once('.').unwrap_or((value, ""));
    let seconds: i64 = seconds.parse().ok()?;
    let digits = fraction.get(..fraction.len().min(9)).unwrap_or_default();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos = format!("{digits:0<9}").parse::<u32>().ok()?;
    // A fraction of a second before 1970 is not worth the arithmetic.
    let nanos = if seconds < 0 { 0 } else { nanos };
    Some(TimeSpec::new(
        seconds.try_into().ok()?,
        nanos.try_into().ok()?,
    ))
}

/// The node type and device number of a device or fifo entry.
pub(super) fn device(
    header: &tar::Header,
    kind: EntryType,
) -> Result<(SFlag, libc::dev_t), String> {
    let number = |field: io::Result<Option<u32>>, what: &str| {
        field
            .map(Option::unwrap_or_default)
            .map_err(|e| format!("bad device {what} field: {e}"))
    };
    let dev = || -> Result<_, String> {
        Ok(makedev(
            number(header.device_major(), "major")?.into(),
            number(header.device_minor(), "minor")?.into(),
        ))
    };
    match kind {
        EntryType::Char => Ok((SFlag::S_IFCHR, dev()?)),
        EntryType::Block => Ok((SFlag::S_IFBLK, dev()?)),
        _ => Ok((SFlag::S_IFIFO, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_numbers_are_zero_and_garbage_is_an_error() {
        let bad = || Err(io::Error::other("numeric field was not a number"));
        assert_eq!(number::<u64>(bad(), &[0; 8], "uid"), Ok(0));
        assert_eq!(number::<u64>(bad(), b"       \0", "uid"), Ok(0));
        assert_eq!(
            number::<u64>(bad(), b"12x4567\0", "uid").unwrap_err(),
            "bad uid field: numeric field was not a number"
        );
        assert_eq!(number::<u64>(Ok(7), b"0000007\0", "uid"), Ok(7));
    }

    #[test]
    fn pax_times_keep_fractions() {
        let ts = |s: &str| parse_time(s.as_bytes()).map(|t| (t.tv_sec(), t.tv_nsec()));
        assert_eq!(ts("1700000000.25"), Some((1_700_000_000, 250_000_000)));
        assert_eq!(ts("1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(ts("1.1234567891"), Some((1, 123_456_789)));
        assert_eq!(ts("-5.5"), Some((-5, 0)));
        assert_eq!(ts("x"), None);
        assert_eq!(ts("1.2x"), None);
    }
}
