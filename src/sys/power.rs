//! The end of the device's life, as its init: `reboot(2)` and waiting for nothing.

use super::{Result, check};

/// What `reboot(2)` is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reboot {
    Restart,
    PowerOff,
    Halt,
    /// Ctrl-Alt-Del sends SIGINT to init instead of restarting at once.
    DisableCtrlAltDel,
}

/// `reboot(2)`; for the first three, returns only on failure.
pub(crate) fn reboot(what: Reboot) -> Result<()> {
    let cmd = match what {
        Reboot::Restart => libc::RB_AUTOBOOT,
        Reboot::PowerOff => libc::RB_POWER_OFF,
        Reboot::Halt => libc::RB_HALT_SYSTEM,
        Reboot::DisableCtrlAltDel => libc::RB_DISABLE_CAD,
    };
    // SAFETY: plain integer argument.
    check("reboot", unsafe { libc::reboot(cmd) }).map(drop)
}

/// `pause(2)`: sleeps until a signal arrives, for good when every one is blocked.
pub(crate) fn pause() {
    // SAFETY: no arguments; returns only on a signal.
    unsafe { libc::pause() };
}
