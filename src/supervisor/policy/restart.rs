//! Whether and when an app that ended is started again: the restart policy, the
//! exponential backoff, and the crash-loop limit.

use std::collections::VecDeque;

use super::format_ms;
use crate::manifest::model::{Backoff, Restart, RestartPolicy};

/// How many exit reasons a [`History`] keeps (and a `failed` app shows).
pub const MAX_REASONS: usize = 5;

/// An app that ran at least this long before it exited starts its backoff over from
/// `backoff.initial`: it was not crash-looping.
pub const RESET_AFTER_MS: u64 = 60_000;

/// How an app's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// Exit status 0.
    Success,
    /// A non-zero exit status, or killed by a signal (the kernel's OOM killer included),
    /// or it could not be launched at all.
    Failure,
}

/// The restart bookkeeping of one app, kept across its restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// When each restart was decided, oldest first; pruned to the window at each exit.
    restarts_ms: VecDeque<u64>,
    /// Failures since the last success or the last long run.
    consecutive_failures: u32,
    /// The last [`MAX_REASONS`] exit reasons, oldest first.
    reasons: VecDeque<String>,
}

impl History {
    /// Failures in a row: reset by a success or by a run of at least
    /// [`RESET_AFTER_MS`].
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// The last exit reasons (at most [`MAX_REASONS`]), oldest first.
    pub fn reasons(&self) -> impl ExactSizeIterator<Item = &str> {
        self.reasons.iter().map(String::as_str)
    }

    /// How many restarts were decided within `restart.window` before `now_ms`.
    pub fn restarts_in_window(&self, restart: &Restart, now_ms: u64) -> u32 {
        let window = restart.window.as_millis();
        let n = self
            .restarts_ms
            .iter()
            .filter(|&&t| in_window(t, now_ms, window))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Forgets everything, as for an app started by hand.
    pub fn clear(&mut self) {
        *self = History::default();
    }

    fn note_reason(&mut self, reason: &str) {
        if self.reasons.len() >= MAX_REASONS {
            self.reasons.pop_front();
        }
        self.reasons.push_back(reason.to_owned());
    }
}

/// A restart at `t` still counts at `now_ms` while it is less than `window` old.
fn in_window(t: u64, now_ms: u64, window: u64) -> bool {
    now_ms.saturating_sub(t) < window
}

/// What to do with an app that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start it again in `delay_ms`; this is restart number `attempt` (1-based) within
    /// the window.
    Restart { delay_ms: u64, attempt: u32 },
    /// It was already restarted `restarts` times within the window (the manifest's
    /// `max_restarts`), the first of them `span_ms` ago: give up until it is started by
    /// hand. `reasons` are its last exit reasons, oldest first, this one last.
    Fail {
        reasons: Vec<String>,
        restarts: u32,
        span_ms: u64,
    },
    /// Leave it down: `policy` (`never`, or `on-failure` after a success) says so.
    Stay { policy: RestartPolicy },
}

/// Records an exit in `history` and decides what follows, for an app started at
/// `started_ms` that ended at `now_ms` of `kind`, for `reason` (e.g. `exited with
/// status 3`).
///
/// - `always` restarts after any exit, `on-failure` only after a [`ExitKind::Failure`],
///   `never` never: otherwise [`Decision::Stay`].
/// - The delay is `backoff.initial`, doubled per consecutive failure and capped at
///   `backoff.max`: 100ms, 200ms, 400ms… A success, or a run of at least
///   [`RESET_AFTER_MS`] before this exit, resets the count, so the next delay is
///   `initial` again (a restart after a success under `always` waits `initial`).
/// - When `max_restarts` restarts were already decided within the last `window`, it is
///   [`Decision::Fail`] instead, and the restart count and failures start over so that
///   a start by hand gets a fresh window.
pub fn on_exit(
    restart: &Restart,
    history: &mut History,
    started_ms: u64,
    now_ms: u64,
    kind: ExitKind,
    reason: &str,
) -> Decision {
    history.note_reason(reason);
    let uptime = now_ms.saturating_sub(started_ms);
    if uptime >= RESET_AFTER_MS || kind == ExitKind::Success {
        history.consecutive_failures = 0;
    }
    if kind == ExitKind::Failure {
        history.consecutive_failures = history.consecutive_failures.saturating_add(1);
    }
    let wanted = match restart.policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => kind == ExitKind::Failure,
        RestartPolicy::Never => false,
    };
    if !wanted {
        return Decision::Stay {
            policy: restart.policy,
        };
    }
    let window = restart.window.as_millis();
    history
        .restarts_ms
        .retain(|&t| in_window(t, now_ms, window));
    let restarts = u32::try_from(history.restarts_ms.len()).unwrap_or(u32::MAX);
    if restarts >= restart.max_restarts {
        let span_ms = history
            .restarts_ms
            .front()
            .map_or(0, |first| now_ms.saturating_sub(*first));
        history.restarts_ms.clear();
        history.consecutive_failures = 0;
        return Decision::Fail {
            reasons: history.reasons.iter().cloned().collect(),
            restarts,
            span_ms,
        };
    }
    history.restarts_ms.push_back(now_ms);
    Decision::Restart {
        delay_ms: delay_ms(&restart.backoff, history.consecutive_failures),
        attempt: restarts.saturating_add(1),
    }
}

/// `initial × 2^(failures − 1)`, at most `max`; `initial` when there were none.
fn delay_ms(backoff: &Backoff, failures: u32) -> u64 {
    let factor = 1u64
        .checked_shl(failures.saturating_sub(1))
        .unwrap_or(u64::MAX);
    backoff
        .initial
        .as_millis()
        .saturating_mul(factor)
        .min(backoff.max.as_millis())
}

/// The manifest's spelling of a policy.
fn policy_name(policy: RestartPolicy) -> &'static str {
    match policy {
        RestartPolicy::Always => "always",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Never => "never",
    }
}

/// The line logged for an exit and its [`Decision`]; times read as [`format_ms`] writes
/// them:
///
/// - `gateway exited with status 3 after 2.1s; restart 4 in 800ms`
/// - `gateway killed by SIGSEGV after 150ms; failed after 10 restarts in 1m23s` (the
///   time from the first of those restarts to this exit)
/// - `gateway exited with status 0 after 1.0s; not restarted (restart: never)`
pub fn restart_message(app: &str, reason: &str, uptime_ms: u64, decision: &Decision) -> String {
    let head = format!("{app} {reason} after {}", format_ms(uptime_ms));
    match decision {
        Decision::Restart { delay_ms, attempt } => {
            format!("{head}; restart {attempt} in {}", format_ms(*delay_ms))
        }
        Decision::Fail {
            restarts, span_ms, ..
        } => {
            let plural = if *restarts == 1 { "" } else { "s" };
            format!(
                "{head}; failed after {restarts} restart{plural} in {}",
                format_ms(*span_ms)
            )
        }
        Decision::Stay { policy } => {
            format!("{head}; not restarted (restart: {})", policy_name(*policy))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::units::Duration;

    const FAIL: ExitKind = ExitKind::Failure;
    const OK: ExitKind = ExitKind::Success;

    fn policy(policy: RestartPolicy, max_restarts: u32, window_ms: u64) -> Restart {
        Restart {
            policy,
            backoff: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_millis(1_000),
            },
            max_restarts,
            window: Duration::from_millis(window_ms),
        }
    }

    fn always() -> Restart {
        policy(RestartPolicy::Always, 100, 300_000)
    }

    /// An exit at `now_ms` after running `uptime_ms`.
    fn exit(r: &Restart, h: &mut History, now_ms: u64, uptime_ms: u64, kind: ExitKind) -> Decision {
        on_exit(
            r,
            h,
            now_ms - uptime_ms,
            now_ms,
            kind,
            "exited with status 1",
        )
    }

    fn restart(delay_ms: u64, attempt: u32) -> Decision {
        Decision::Restart { delay_ms, attempt }
    }

    #[test]
    fn backoff_doubles_per_failure_up_to_max() {
        let r = always();
        let mut h = History::default();
        let got: Vec<Decision> = (1..=7)
            .map(|i| exit(&r, &mut h, i * 10_000, 500, FAIL))
            .collect();
        assert_eq!(
            got,
            [
                restart(100, 1),
                restart(200, 2),
                restart(400, 3),
                restart(800, 4),
                restart(1_000, 5),
                restart(1_000, 6),
                restart(1_000, 7),
            ]
        );
        assert_eq!(h.consecutive_failures(), 7);
    }

    #[test]
    fn a_run_of_a_minute_resets_the_backoff() {
        let r = always();
        let mut h = History::default();
        for i in 1..=3 {
            exit(&r, &mut h, i * 1_000, 500, FAIL);
        }
        // 59.999 s is not long enough: the fourth failure in a row.
        assert_eq!(exit(&r, &mut h, 70_000, 59_999, FAIL), restart(800, 4));
        // 60 s is: this failure is the first of a new run.
        assert_eq!(exit(&r, &mut h, 140_000, 60_000, FAIL), restart(100, 5));
        assert_eq!(h.consecutive_failures(), 1);
        assert_eq!(exit(&r, &mut h, 141_000, 500, FAIL), restart(200, 6));
    }

    #[test]
    fn a_success_resets_the_backoff_and_restarts_after_initial() {
        let r = always();
        let mut h = History::default();
        for i in 1..=4 {
            exit(&r, &mut h, i * 1_000, 500, FAIL);
        }
        assert_eq!(exit(&r, &mut h, 5_000, 500, OK), restart(100, 5));
        assert_eq!(h.consecutive_failures(), 0);
        assert_eq!(exit(&r, &mut h, 6_000, 500, FAIL), restart(100, 6));
        assert_eq!(exit(&r, &mut h, 7_000, 500, FAIL), restart(200, 7));
    }

    #[test]
    fn never_stays_after_any_exit() {
        let r = policy(RestartPolicy::Never, 10, 300_000);
        let mut h = History::default();
        let stay = Decision::Stay {
            policy: RestartPolicy::Never,
        };
        assert_eq!(exit(&r, &mut h, 1_000, 500, OK), stay);
        assert_eq!(exit(&r, &mut h, 2_000, 500, FAIL), stay);
        assert_eq!(h.restarts_in_window(&r, 2_000), 0);
    }

    #[test]
    fn on_failure_restarts_only_failures() {
        let r = policy(RestartPolicy::OnFailure, 10, 300_000);
        let mut h = History::default();
        assert_eq!(exit(&r, &mut h, 1_000, 500, FAIL), restart(100, 1));
        assert_eq!(exit(&r, &mut h, 2_000, 500, FAIL), restart(200, 2));
        assert_eq!(
            exit(&r, &mut h, 3_000, 500, OK),
            Decision::Stay {
                policy: RestartPolicy::OnFailure
            }
        );
        // The success reset the failures; the restarts in the window still count.
        assert_eq!(exit(&r, &mut h, 4_000, 500, FAIL), restart(100, 3));
    }

    #[test]
    fn more_than_max_restarts_in_the_window_fails() {
        let r = policy(RestartPolicy::Always, 3, 10_000);
        let mut h = History::default();
        assert_eq!(exit(&r, &mut h, 1_000, 100, FAIL), restart(100, 1));
        assert_eq!(exit(&r, &mut h, 2_000, 100, FAIL), restart(200, 2));
        assert_eq!(exit(&r, &mut h, 3_000, 100, FAIL), restart(400, 3));
        assert_eq!(h.restarts_in_window(&r, 3_000), 3);
        assert_eq!(
            exit(&r, &mut h, 4_000, 100, FAIL),
            Decision::Fail {
                reasons: vec!["exited with status 1".to_owned(); 4],
                restarts: 3,
                span_ms: 3_000,
            }
        );
        // Failing starts over, for a start by hand.
        assert_eq!(h.restarts_in_window(&r, 4_000), 0);
        assert_eq!(h.consecutive_failures(), 0);
        assert_eq!(exit(&r, &mut h, 5_000, 100, FAIL), restart(100, 1));
    }

    #[test]
    fn restarts_leave_the_window_when_it_has_passed() {
        let r = policy(RestartPolicy::Always, 3, 10_000);
        let mut h = History::default();
        for now in [1_000, 2_000, 3_000] {
            exit(&r, &mut h, now, 100, FAIL);
        }
        // At 11 s the restart of 1 s is exactly one window old: it no longer counts.
        assert_eq!(h.restarts_in_window(&r, 10_999), 3);
        assert_eq!(h.restarts_in_window(&r, 11_000), 2);
        assert_eq!(exit(&r, &mut h, 11_000, 100, FAIL), restart(800, 3));
        // Later only the restart of 11 s still counts; later still, none does.
        assert_eq!(exit(&r, &mut h, 20_999, 100, FAIL), restart(1_000, 2));
        assert_eq!(exit(&r, &mut h, 40_000, 100, FAIL), restart(1_000, 1));
    }

    #[test]
    fn no_restarts_allowed_fails_at_once() {
        let r = policy(RestartPolicy::Always, 0, 10_000);
        let mut h = History::default();
        assert_eq!(
            on_exit(&r, &mut h, 0, 500, FAIL, "killed by SIGKILL"),
            Decision::Fail {
                reasons: vec!["killed by SIGKILL".to_owned()],
                restarts: 0,
                span_ms: 0,
            }
        );
    }

    #[test]
    fn keeps_the_last_five_reasons_oldest_first() {
        let r = always();
        let mut h = History::default();
        for i in 1..=7u64 {
            on_exit(
                &r,
                &mut h,
                0,
                i * 1_000,
                FAIL,
                &format!("exited with status {i}"),
            );
        }
        let want = [3, 4, 5, 6, 7].map(|i| format!("exited with status {i}"));
        assert_eq!(h.reasons().collect::<Vec<_>>(), want);
    }

    #[test]
    fn fail_reports_the_last_reasons() {
        let r = policy(RestartPolicy::Always, 6, 300_000);
        let mut h = History::default();
        for i in 1..=7u64 {
            let d = on_exit(&r, &mut h, 0, i * 1_000, FAIL, &format!("status {i}"));
            if i == 7 {
                let reasons = [3, 4, 5, 6, 7].map(|i| format!("status {i}")).to_vec();
                assert_eq!(
                    d,
                    Decision::Fail {
                        reasons,
                        restarts: 6,
                        span_ms: 6_000
                    }
                );
            }
        }
    }

    #[test]
    fn backoff_never_overflows() {
        let mut r = always();
        r.backoff.max = Duration::from_millis(u64::MAX);
        r.max_restarts = u32::MAX;
        let mut h = History::default();
        let mut last = Decision::Stay {
            policy: RestartPolicy::Never,
        };
        for i in 1..=100 {
            last = exit(&r, &mut h, i * 1_000, 10, FAIL);
        }
        assert_eq!(last, restart(u64::MAX, 100));
    }

    #[test]
    fn clear_forgets_everything() {
        let r = always();
        let mut h = History::default();
        exit(&r, &mut h, 1_000, 10, FAIL);
        h.clear();
        assert_eq!(h, History::default());
    }

    #[test]
    fn messages() {
        let cases = [
            (
                "exited with status 3",
                2_100,
                restart(800, 4),
                "gateway exited with status 3 after 2.1s; restart 4 in 800ms",
            ),
            (
                "killed by SIGSEGV",
                150,
                restart(30_000, 1),
                "gateway killed by SIGSEGV after 150ms; restart 1 in 30.0s",
            ),
            (
                "killed by the kernel: out of memory (limit 64M)",
                75_000,
                Decision::Fail {
                    reasons: vec![],
                    restarts: 10,
                    span_ms: 83_000,
                },
                "gateway killed by the kernel: out of memory (limit 64M) after 1m15s; \
                 failed after 10 restarts in 1m23s",
            ),
            (
                "unhealthy: http://127.0.0.1:8080/healthz returned 503 three times",
                3_600_000,
                Decision::Fail {
                    reasons: vec![],
                    restarts: 1,
                    span_ms: 60_000,
                },
                "gateway unhealthy: http://127.0.0.1:8080/healthz returned 503 three times \
                 after 1h0m0s; failed after 1 restart in 1m0s",
            ),
            (
                "exited with status 0",
                1_000,
                Decision::Stay {
                    policy: RestartPolicy::Never,
                },
                "gateway exited with status 0 after 1.0s; not restarted (restart: never)",
            ),
            (
                "exited with status 0",
                999,
                Decision::Stay {
                    policy: RestartPolicy::OnFailure,
                },
                "gateway exited with status 0 after 999ms; not restarted (restart: on-failure)",
            ),
        ];
        for (reason, uptime, decision, want) in cases {
            assert_eq!(restart_message("gateway", reason, uptime, &decision), want);
        }
    }
}
