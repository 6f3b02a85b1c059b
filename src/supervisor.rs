//! `berth run`: the supervisor. One thread, one epoll set; every app's
//! lifecycle is owned by the loop ([`core`]), and every change arrives as an event: a
//! signal (SIGCHLD, SIGTERM, SIGINT, SIGHUP through a signalfd), the one timerfd armed
//! for the earliest deadline (backoff, health probes and their timeouts, stop
//! timeouts), an app's output pipe, its launch channel, its OOM watch, a probe socket.
//! The decisions (restart, backoff, health, dependencies, reload) are pure functions in
//! [`policy`]; app output goes to [`logs`]; health probes are started by [`probe`].

pub mod app;
pub mod appstate;
mod control;
pub mod core;
pub mod error;
mod exec;
pub mod gc;
pub mod health;
pub mod install;
pub mod lifecycle;
pub(super) mod load;
pub mod logs;
pub mod policy;
pub mod probe;
pub mod run;
pub mod sender;

use std::path::PathBuf;

use crate::config::Config;

/// The signals the supervisor takes through its signalfd (blocked for the whole
/// process before any app is started; every launched child resets its mask).
pub(crate) const SIGNALS: [i32; 7] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGPWR,
];

/// Runs the supervisor with the apps of `apps_dir` until SIGTERM or SIGINT. As PID 1
/// it first does the boot duties, and never returns: once every app is down it
/// reboots, powers off or halts (as the signal asked; after a fatal error, as
/// `on_panic` says).
pub fn run(config: Config, apps_dir: PathBuf) -> Result<(), error::SupervisorError> {
    if !crate::pid1::is_init() {
        kmsg(&config, false);
        // As init, a missing directory may appear later (SIGHUP); as a service it is a
        // mistake in the command line or the config.
        if !apps_dir.is_dir() {
            return Err(error::SupervisorError::NoAppsDir(apps_dir));
        }
        return core::Supervisor::new(config, apps_dir)?.run().map(drop);
    }
    crate::panic::set_policy(config.on_panic);
    if let Err(e) = crate::sys::signal::block(&crate::sys::signal::SigSet::of(&SIGNALS)) {
        log::error!("blocking the supervisor's signals: {e}");
    }
    let mounted = crate::pid1::boot(&config);
    // After the boot: /dev and /proc are mounted now.
    kmsg(&config, true);
    let fallback = match config.on_panic {
        crate::config::OnPanic::Halt => crate::pid1::Action::Halt,
        crate::config::OnPanic::Reboot => crate::pid1::Action::Reboot,
    };
    let action = match core::Supervisor::new(config, apps_dir).and_then(core::Supervisor::run) {
        Ok(action) => action.unwrap_or(crate::pid1::Action::Reboot),
        Err(e) => {
            log::error!("berth run: {e}");
            fallback
        }
    };
    crate::pid1::finish(action, &mounted)
}

/// `kmsg: true`: berth's lines go to the kernel log too. As the device's init berth
/// lifts the kernel's rate limit on /dev/kmsg writers, so that no line is dropped
/// (`printk.devkmsg=` on the kernel command line fixes the setting and wins); as a
/// service it leaves the system's setting alone and says what it means.
fn kmsg(config: &Config, as_init: bool) {
    use crate::console::{DEVKMSG_SETTING, devkmsg_change};
    if !config.kmsg {
        return;
    }
    if let Err(e) = crate::console::also_kmsg(std::path::Path::new("/dev/kmsg")) {
        log::warn!("kmsg: true, but /dev/kmsg cannot be opened: {e}");
        return;
    }
    let current = match std::fs::read_to_string(DEVKMSG_SETTING) {
        Ok(current) => current,
        Err(e) => {
            log::warn!("kmsg: cannot read {DEVKMSG_SETTING}: {e}");
            return;
        }
    };
    match devkmsg_change(&current) {
        Ok(None) => {}
        Ok(Some(value)) if as_init => {
            // The kernel takes the word with its newline only (EINVAL without).
            if let Err(e) = std::fs::write(DEVKMSG_SETTING, format!("{value}\n")) {
                log::warn!(
                    "kmsg: the kernel keeps 10 of berth's lines in 5 s: writing {value} to \
                     {DEVKMSG_SETTING} failed: {e} (printk.devkmsg= on the kernel command \
                     line fixes it)"
                );
            }
        }
        Ok(Some(value)) => log::info!(
            "kmsg: the kernel keeps 10 of berth's lines in 5 s ({DEVKMSG_SETTING} is \
             {}; {value} lifts the limit)",
            current.trim()
        ),
        Err(e) => log::warn!("kmsg: {e}"),
    }
}
