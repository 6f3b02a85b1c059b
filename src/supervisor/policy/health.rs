//! Health checks: counting probe results into a verdict, and when probes are due.

use crate::manifest::model::{Healthcheck, OnUnhealthy, Probe};

/// The health of a running app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The app has no health check.
    None,
    /// It has one, and there is no verdict yet.
    Starting,
    /// The last probe succeeded.
    Healthy,
    /// `retries` probes in a row failed (outside the start period).
    Unhealthy,
}

impl Health {
    /// The name for status output: `none`, `starting`, `healthy` or `unhealthy`.
    pub fn name(self) -> &'static str {
        match self {
            Health::None => "none",
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// A probe as messages name it: `exec ["probe", "check"]`, `tcp port 8080`, or the URL.
pub fn probe_name(probe: &Probe) -> String {
    match probe {
        Probe::Exec(a) => format!(
            "exec {:?}",
            a.as_slice().iter().map(|x| x.as_str()).collect::<Vec<_>>()
        ),
        Probe::Tcp(p) => format!("tcp port {}", p.0),
        Probe::Http(u) => u.as_str().to_owned(),
    }
}

/// The probe results of one run of an app (made afresh at each start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthTracker {
    /// Failed probes in a row, outside the start period.
    consecutive_failures: u32,
    /// The verdict so far: [`Health::Starting`] until the first one.
    status: Health,
}

impl Default for HealthTracker {
    fn default() -> Self {
        HealthTracker {
            consecutive_failures: 0,
            status: Health::Starting,
        }
    }
}

impl HealthTracker {
    /// The verdict so far: starting, healthy or unhealthy.
    pub fn status(&self) -> Health {
        self.status
    }

    /// Failed probes in a row that counted (outside the start period).
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }
}

/// A change of verdict, reported once when it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthChange {
    /// A probe succeeded after no verdict or an unhealthy one.
    Healthy,
    /// `retries` probes in a row failed; `restart` when `on_unhealthy: restart`.
    Unhealthy { restart: bool },
}

/// Counts the result of a probe of an app started at `started_ms`, finished at
/// `now_ms`, and returns the verdict's change, if any.
///
/// - A failure while `now_ms - started_ms < start_period` does not count (nor does it
///   clear the failures counted so far).
/// - `retries` failures in a row turn the app unhealthy; further failures change
///   nothing until it recovers.
/// - One success turns it healthy and clears the failures.
pub fn on_probe(
    hc: &Healthcheck,
    t: &mut HealthTracker,
    started_ms: u64,
    now_ms: u64,
    ok: bool,
) -> Option<HealthChange> {
    if ok {
        t.consecutive_failures = 0;
        if t.status == Health::Healthy {
            return None;
        }
        t.status = Health::Healthy;
        return Some(HealthChange::Healthy);
    }
    if now_ms.saturating_sub(started_ms) < hc.start_period.as_millis() {
        return None;
    }
    t.consecutive_failures = t.consecutive_failures.saturating_add(1);
    if t.consecutive_failures < hc.retries.get() || t.status == Health::Unhealthy {
        return None;
    }
    t.status = Health::Unhealthy;
    Some(HealthChange::Unhealthy {
        restart: hc.on_unhealthy == OnUnhealthy::Restart,
    })
}

/// When the next probe is due: `interval` after the previous one started (for the first
/// probe, pass the time the app started).
pub fn next_probe_ms(hc: &Healthcheck, last_start_ms: u64) -> u64 {
    last_start_ms.saturating_add(hc.interval.as_millis())
}

/// When a probe started at `start_ms` has run too long and counts as failed.
pub fn probe_deadline_ms(hc: &Healthcheck, start_ms: u64) -> u64 {
    start_ms.saturating_add(hc.timeout.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::model::Probe;
    use crate::manifest::types::Port;
    use crate::manifest::units::Duration;

    const STARTED: u64 = 1_000;

    fn hc(retries: u32, start_period_ms: u64, on_unhealthy: OnUnhealthy) -> Healthcheck {
        Healthcheck {
            probe: Probe::Tcp(Port(8080)),
            interval: Duration::from_millis(10_000),
            timeout: Duration::from_millis(2_000),
            retries: retries.to_string().parse().unwrap(),
            start_period: Duration::from_millis(start_period_ms),
            on_unhealthy,
        }
    }

    const UNHEALTHY_RESTART: Option<HealthChange> = Some(HealthChange::Unhealthy { restart: true });

    #[test]
    fn starts_without_a_verdict() {
        let t = HealthTracker::default();
        assert_eq!(t.status(), Health::Starting);
        assert_eq!(t.consecutive_failures(), 0);
    }

    #[test]
    fn retries_failures_in_a_row_make_it_unhealthy_once() {
        let hc = hc(3, 0, OnUnhealthy::Restart);
        let mut t = HealthTracker::default();
        let got: Vec<_> = (1..=5)
            .map(|i| on_probe(&hc, &mut t, STARTED, STARTED + i * 10_000, false))
            .collect();
        assert_eq!(got, [None, None, UNHEALTHY_RESTART, None, None]);
        assert_eq!(t.status(), Health::Unhealthy);
        assert_eq!(t.consecutive_failures(), 5);
    }

    #[test]
    fn on_unhealthy_none_does_not_restart() {
        let hc = hc(1, 0, OnUnhealthy::None);
        let mut t = HealthTracker::default();
        assert_eq!(
            on_probe(&hc, &mut t, STARTED, STARTED + 10_000, false),
            Some(HealthChange::Unhealthy { restart: false })
        );
    }

    #[test]
    fn one_success_makes_it_healthy_once_and_clears_failures() {
        let hc = hc(3, 0, OnUnhealthy::Restart);
        let mut t = HealthTracker::default();
        assert_eq!(
            on_probe(&hc, &mut t, STARTED, 11_000, true),
            Some(HealthChange::Healthy)
        );
        assert_eq!(on_probe(&hc, &mut t, STARTED, 21_000, true), None);
        // Two failures, a success: the count starts over, nothing is reported.
        assert_eq!(on_probe(&hc, &mut t, STARTED, 31_000, false), None);
        assert_eq!(on_probe(&hc, &mut t, STARTED, 41_000, false), None);
        assert_eq!(t.consecutive_failures(), 2);
        assert_eq!(on_probe(&hc, &mut t, STARTED, 51_000, true), None);
        assert_eq!(t.consecutive_failures(), 0);
        assert_eq!(t.status(), Health::Healthy);
    }

    #[test]
    fn recovers_from_unhealthy() {
        let hc = hc(2, 0, OnUnhealthy::None);
        let mut t = HealthTracker::default();
        on_probe(&hc, &mut t, STARTED, 11_000, false);
        on_probe(&hc, &mut t, STARTED, 21_000, false);
        assert_eq!(t.status(), Health::Unhealthy);
        assert_eq!(
            on_probe(&hc, &mut t, STARTED, 31_000, true),
            Some(HealthChange::Healthy)
        );
        assert_eq!(on_probe(&hc, &mut t, STARTED, 41_000, false), None);
        assert_eq!(
            on_probe(&hc, &mut t, STARTED, 51_000, false),
            Some(HealthChange::Unhealthy { restart: false })
        );
    }

    #[test]
    fn failures_inside_the_start_period_do_not_count() {
        let hc = hc(2, 30_000, OnUnhealthy::Restart);
        let mut t = HealthTracker::default();
        // Started at 1 s with a 30 s start period: up to 30.999 s nothing counts.
        for now in [11_000, 21_000, 30_999] {
            assert_eq!(on_probe(&hc, &mut t, STARTED, now, false), None);
        }
        assert_eq!(t.consecutive_failures(), 0);
        assert_eq!(t.status(), Health::Starting);
        // From 31 s on they do.
        assert_eq!(on_probe(&hc, &mut t, STARTED, 31_000, false), None);
        assert_eq!(
            on_probe(&hc, &mut t, STARTED, 41_000, false),
            UNHEALTHY_RESTART
        );
    }

    #[test]
    fn a_success_inside_the_start_period_counts() {
        let hc = hc(2, 30_000, OnUnhealthy::Restart);
        let mut t = HealthTracker::default();
        assert_eq!(
            on_probe(&hc, &mut t, STARTED, 5_000, true),
            Some(HealthChange::Healthy)
        );
    }

    #[test]
    fn probes_are_due_an_interval_after_the_last_one_started() {
        let hc = hc(3, 0, OnUnhealthy::Restart);
        assert_eq!(next_probe_ms(&hc, STARTED), 11_000);
        assert_eq!(next_probe_ms(&hc, 11_000), 21_000);
        assert_eq!(next_probe_ms(&hc, u64::MAX - 1), u64::MAX);
        assert_eq!(probe_deadline_ms(&hc, 11_000), 13_000);
        assert_eq!(probe_deadline_ms(&hc, u64::MAX), u64::MAX);
    }
}
