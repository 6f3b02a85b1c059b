//! The supervisor's decisions about an app's lifecycle, as pure functions (STYLE.md
//! habit 6): whether and when an exited app restarts,
//! when a health check turns an app healthy or unhealthy, when a dependency holds, in
//! which order apps stop, and what a reload changes.
//!
//! Nothing here reads a clock or touches the system: the event loop passes the time in
//! as `now_ms` (milliseconds on a monotonic clock) and acts on what comes back, so every
//! rule is tested with exact numbers and no test sleeps.

mod deps;
mod health;
mod reload;
mod restart;

pub use deps::{Seen, blocked_by, stop_order};
pub use health::{
    Health, HealthChange, HealthTracker, next_probe_ms, on_probe, probe_deadline_ms, probe_name,
};
pub use reload::{Change, diff};
pub use restart::{
    Decision, ExitKind, History, MAX_REASONS, RESET_AFTER_MS, on_exit, restart_message,
};

/// A span of milliseconds for messages, in the shortest readable form, truncated (never
/// rounded up, so 59,999 ms is not shown as a minute):
///
/// - under a second: milliseconds, `850ms`;
/// - under a minute: seconds with one decimal, `2.1s`, `10.0s`;
/// - under an hour: minutes and whole seconds, `5m0s`, `2m5s`;
/// - from an hour on: hours, minutes and whole seconds, `1h0m0s`.
pub fn format_ms(ms: u64) -> String {
    const SECOND: u64 = 1_000;
    const MINUTE: u64 = 60 * SECOND;
    const HOUR: u64 = 60 * MINUTE;
    if ms < SECOND {
        format!("{ms}ms")
    } else if ms < MINUTE {
        format!("{}.{}s", ms / SECOND, ms % SECOND / 100)
    } else if ms < HOUR {
        format!("{}m{}s", ms / MINUTE, ms % MINUTE / SECOND)
    } else {
        format!(
            "{}h{}m{}s",
            ms / HOUR,
            ms % HOUR / MINUTE,
            ms % MINUTE / SECOND
        )
    }
}

#[cfg(test)]
mod tests {
    use super::format_ms;

    #[test]
    fn durations_read_in_the_shortest_form() {
        let cases = [
            (0, "0ms"),
            (800, "800ms"),
            (999, "999ms"),
            (1_000, "1.0s"),
            (2_100, "2.1s"),
            (2_199, "2.1s"),
            (59_999, "59.9s"),
            (60_000, "1m0s"),
            (125_400, "2m5s"),
            (300_000, "5m0s"),
            (3_599_999, "59m59s"),
            (3_600_000, "1h0m0s"),
            (3_723_000, "1h2m3s"),
            (90_000_000, "25h0m0s"),
        ];
        for (ms, want) in cases {
            assert_eq!(format_ms(ms), want, "{ms} ms");
        }
    }
}
