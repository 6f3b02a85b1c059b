//! Capabilities and privileges of a launched app.
//!
//! Two halves. The parent computes, before fork, the one set an app gets with
//! [`effective`] (pure apart from reading how many capabilities the kernel knows). The
//! child, after fork and while still root, calls [`prepare_uid_change`], changes its
//! groups, gid and uid, then [`apply`]s the set and sets [`no_new_privs`] (STYLE.md
//! habit 5 gives the place of these steps among the others).
//!
//! berth gives an app a single set: bounding = permitted = effective = inheritable =
//! ambient. The ambient copy is what lets a non-root app keep exactly that set across
//! `execve`; the bounding copy is what stops it from ever gaining more (a setuid binary
//! or file capabilities cannot exceed it, and `no_new_privs` switches those off anyway).

mod apply;
mod status;

use std::fmt;
use std::path::Path;

use crate::manifest::model::Capabilities;
use crate::manifest::types::Capability;

pub use apply::{CapsError, Step, apply, no_new_privs, prepare_uid_change};
pub use status::{ProcCaps, StatusError};

/// The highest capability number berth knows by name (`CAP_CHECKPOINT_RESTORE`,
/// Linux 5.9). A [`CapSet`] holds capabilities `0..=LAST` only.
pub const LAST: u8 = 40;

const KILL: u8 = 5;
const NET_BIND_SERVICE: u8 = 10;
const AUDIT_WRITE: u8 = 29;

/// Every bit a [`CapSet`] may hold.
const KNOWN_BITS: u64 = (1 << (LAST as u32 + 1)) - 1;

/// The capabilities every app gets unless its manifest says otherwise: runc's default
/// three, the set `runc spec` writes into a new bundle.
///
/// - `AUDIT_WRITE`: write to the kernel audit log (login-like programs need it to
///   start at all where audit is enabled);
/// - `KILL`: signal processes of other uids, which within the app's own pid namespace
///   only reaches the app's own processes;
/// - `NET_BIND_SERVICE`: bind ports below 1024, in the app's own network namespace
///   (or the host's, when the manifest asks for it).
///
/// None of them lets the app change its uid, files it does not own, mounts, devices or
/// the kernel. Docker's longer default (`CHOWN`, `DAC_OVERRIDE`, `SETUID`, `NET_RAW`,
/// ...) is deliberately not copied: an embedded app that needs one adds it by name.
pub const DEFAULT: CapSet = CapSet::EMPTY
    .with(AUDIT_WRITE)
    .with(KILL)
    .with(NET_BIND_SERVICE);

/// A set of capabilities, by number (`0..=LAST`), as the kernel's bit masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct CapSet(u64);

impl CapSet {
    pub const EMPTY: CapSet = CapSet(0);

    /// Every capability `0..=last` (`0..=LAST` when `last` is larger).
    pub const fn up_to(last: u8) -> CapSet {
        let last = if last > LAST { LAST } else { last };
        CapSet(KNOWN_BITS >> (LAST - last))
    }

    /// The set of a kernel mask; `None` when it has a bit above [`LAST`].
    pub const fn from_bits(bits: u64) -> Option<CapSet> {
        if bits & !KNOWN_BITS == 0 {
            Some(CapSet(bits))
        } else {
            None
        }
    }

    pub const fn bits(self) -> u64 {
        self.0
    }

    /// This set with capability `cap` added; a number above [`LAST`] is ignored, as no
    /// manifest can name it.
    #[must_use]
    pub const fn with(self, cap: u8) -> CapSet {
        CapSet(self.0 | bit(cap))
    }

    /// This set without capability `cap`.
    #[must_use]
    pub const fn without(self, cap: u8) -> CapSet {
        CapSet(self.0 & !bit(cap))
    }

    #[must_use]
    pub const fn union(self, other: CapSet) -> CapSet {
        CapSet(self.0 | other.0)
    }

    #[must_use]
    pub const fn difference(self, other: CapSet) -> CapSet {
        CapSet(self.0 & !other.0)
    }

    pub const fn contains(self, cap: u8) -> bool {
        self.0 & bit(cap) != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The capability numbers in the set, lowest first. Allocation-free, so the child
    /// may use it after fork.
    pub fn iter(self) -> impl Iterator<Item = u8> {
        (0..=LAST).filter(move |&cap| self.contains(cap))
    }

    /// Parses a mask as `/proc/PID/status` shows it (`CapEff:\t0000000020000420`):
    /// 1 to 16 hex digits. `None` when it is not one, or has a bit above [`LAST`].
    pub fn from_hex(text: &str) -> Option<CapSet> {
        if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(text, 16)
            .ok()
            .and_then(CapSet::from_bits)
    }
}

const fn bit(cap: u8) -> u64 {
    if cap > LAST { 0 } else { 1 << cap }
}

/// The names, lowest number first, comma-separated (`KILL, NET_BIND_SERVICE`), or
/// `none`. `{:016x}` gives the mask as `/proc/PID/status` shows it.
impl fmt::Display for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, cap) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", Capability::One(cap))?;
        }
        Ok(())
    }
}

impl fmt::LowerHex for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// The set an app runs with: [`resolve`] against the capabilities the running kernel
/// knows.
pub fn effective(spec: &Capabilities) -> CapSet {
    resolve(spec, grantable(Path::new("/proc")))
}

/// What `add: [ALL]` can mean here: the capabilities the kernel knows that berth itself
/// still holds in its bounding set (a board's init may have dropped some), so that
/// `ALL` gives an app everything berth can give rather than failing at launch.
pub fn grantable(proc_root: &Path) -> CapSet {
    let known = known(proc_root);
    let status = proc_root.join("self/status");
    match std::fs::read_to_string(&status).map(|text| status::ProcCaps::parse(&text)) {
        Ok(Ok(caps)) => known.difference(known.difference(caps.bounding)),
        _ => known,
    }
}

/// The set an app runs with, given every capability the kernel knows (`known`).
///
/// Starts from [`DEFAULT`], applies `drop` (`ALL` empties the set), then `add`
/// (`ALL` is every capability in `known`). One exception to that order, as in Docker:
/// `add: [ALL]` still leaves out the capabilities named in `drop`, so
/// `{ add: [ALL], drop: [SYS_ADMIN] }` means "everything but SYS_ADMIN" rather than
/// silently ignoring the drop. (A name in both lists is refused by the manifest
/// validator.)
pub fn resolve(spec: &Capabilities, known: CapSet) -> CapSet {
    let mut set = DEFAULT;
    let mut named_drops = CapSet::EMPTY;
    for cap in &spec.drop {
        match *cap {
            Capability::All => set = CapSet::EMPTY,
            Capability::One(n) => {
                set = set.without(n);
                named_drops = named_drops.with(n);
            }
        }
    }
    for cap in &spec.add {
        match *cap {
            Capability::All => set = set.union(known.difference(named_drops)),
            Capability::One(n) => set = set.with(n),
        }
    }
    set
}

/// Every capability the kernel under `proc_root` knows, from
/// `sys/kernel/cap_last_cap` (Linux 3.2); all of `0..=LAST` when that cannot be read,
/// and never more than berth can name.
pub fn known(proc_root: &Path) -> CapSet {
    let path = proc_root.join("sys/kernel/cap_last_cap");
    let last = std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| {
            text.trim()
                .parse::<u8>()
                .map_err(|e| format!("{text:?}: {e}"))
        });
    match last {
        Ok(last) => CapSet::up_to(last),
        Err(why) => {
            log::warn!(
                "cannot read {}: {why}; assuming capabilities 0 to {LAST}",
                path.display()
            );
            CapSet::up_to(LAST)
        }
    }
}

#[cfg(test)]
mod tests;
