//! The panic hook. A panic in PID 1 would become a kernel panic, so the hook reports
//! the message (stderr, and the console as PID 1) and then applies the `on_panic`
//! policy: as PID 1, sync and reboot or halt; otherwise the process aborts as usual.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::OnPanic;

/// `true` once `on_panic: halt` is configured; reboot otherwise.
static HALT: AtomicBool = AtomicBool::new(false);

/// Sets the policy the hook applies.
pub fn set_policy(policy: OnPanic) {
    HALT.store(policy == OnPanic::Halt, Ordering::Relaxed);
}

/// Installs the hook; call first thing in `main`.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        let message = format!("berth: internal error: {info}\n");
        let _ = std::io::stderr().write_all(message.as_bytes());
        if std::process::id() == 1 {
            if !stderr_is_console() {
                if let Ok(mut console) =
                    std::fs::OpenOptions::new().write(true).open("/dev/console")
                {
                    let _ = console.write_all(message.as_bytes());
                }
            }
            policy();
        }
        // Never unwind, whatever the build's panic strategy: state half-changed by an
        // unwinding supervisor is worse than a clean stop.
        std::process::abort();
    }));
}

/// Whether stderr already is the console (as for an init the kernel started), so the
/// report is written once.
fn stderr_is_console() -> bool {
    use std::os::unix::fs::MetadataExt;
    let console = std::fs::metadata("/dev/console").map(|m| m.rdev());
    let stderr = std::fs::metadata("/proc/self/fd/2").map(|m| m.rdev());
    matches!((console, stderr), (Ok(a), Ok(b)) if a == b && a != 0)
}

/// PID 1 must not exit: sync the disks and reboot or halt. Returns only if the
/// reboot call itself fails, and then the abort that follows panics the kernel,
/// which (with `panic=N` on the kernel command line) reboots the board as well.
fn policy() {
    use crate::sys::power::{Reboot, reboot};
    crate::sys::fs::sync();
    let mode = if HALT.load(Ordering::Relaxed) {
        Reboot::Halt
    } else {
        Reboot::Restart
    };
    if let Err(e) = reboot(mode) {
        let _ = std::io::stderr()
            .write_all(format!("berth: {mode:?} after a panic failed: {e}\n").as_bytes());
    }
}
