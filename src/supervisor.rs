//! `berth run`: the supervisor. One thread, one epoll set ([`event`]); every app's
//! lifecycle is owned by the loop ([`core`]), and every change arrives as an event: a
//! signal (SIGCHLD, SIGTERM, SIGINT, SIGHUP through a signalfd), the one timerfd armed
//! for the earliest deadline (backoff, health probes and their timeouts, stop
//! timeouts), an app's output pipe, its launch channel, its OOM watch, a probe socket.
//! The decisions (restart, backoff, health, dependencies, reload) are pure functions in
//! [`policy`]; app output goes to [`logs`]; health probes are started by [`probe`].

pub mod app;
pub mod core;
pub mod event;
pub mod health;
pub mod logs;
pub mod policy;
pub mod probe;
pub mod start;

use std::path::PathBuf;

use crate::config::Config;

/// Runs the supervisor with the apps of `apps_dir` until SIGTERM or SIGINT.
pub fn run(config: Config, apps_dir: PathBuf) -> Result<(), String> {
    core::Supervisor::new(config, apps_dir)?.run()
}
