//! An app's lifecycle: its states and the moves between them that are allowed.

/// Where an app is in its lifecycle. The event loop holds one per app and changes it
/// only through moves that [`transition`] accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// To be started, but a dependency does not hold yet; `why` says which
    /// (see [`blocked_by`](super::blocked_by)).
    Waiting { why: String },
    /// Launched; `exec` not confirmed yet.
    Starting,
    /// Its `exec` succeeded at `since_ms`.
    Running { since_ms: u64, health: Health },
    /// Its stop signal was sent; it is killed at `deadline_ms` if still alive, and `then`
    /// says what follows once it is gone.
    Stopping { deadline_ms: u64, then: AfterStop },
    /// Exited; restart number `attempt` (1-based, within the window) is due at `until_ms`.
    Backoff { until_ms: u64, attempt: u32 },
    /// Restarted too often within the window; stays down until started by hand.
    /// `reasons` are its last exit reasons, oldest first.
    Failed { reasons: Vec<String> },
    /// Stopped by hand or at shutdown.
    Stopped,
    /// Ended, and its restart policy says not to restart it.
    Exited { reason: String },
}

impl State {
    /// The state's name for status output: `waiting`, `starting`, `running`, `stopping`,
    /// `backoff`, `failed`, `stopped` or `exited`.
    pub fn name(&self) -> &'static str {
        match self {
            State::Waiting { .. } => "waiting",
            State::Starting => "starting",
            State::Running { .. } => "running",
            State::Stopping { .. } => "stopping",
            State::Backoff { .. } => "backoff",
            State::Failed { .. } => "failed",
            State::Stopped => "stopped",
            State::Exited { .. } => "exited",
        }
    }
}

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

/// What follows once a stopping app is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStop {
    /// Start it again (its definition changed, it was unhealthy, or `berth restart`).
    Restart,
    /// Leave it stopped.
    Stay,
    /// Forget it (its manifest was removed).
    Remove,
}

/// Checks that an app may move from `from` to `to`; the error names both states.
///
/// The legal moves:
///
/// | from | to | when |
/// |---|---|---|
/// | stopped, exited, failed, backoff, waiting | waiting, starting | it is to start: it waits for a dependency or is launched (a waiting app may wait again, for another reason) |
/// | starting | running | `exec` succeeded |
/// | running | running | its health changed (`since_ms` stays the same) |
/// | starting, running | stopping | it is asked to stop |
/// | stopping | stopping | asked again, e.g. a restart turned into a stop |
/// | starting, running, stopping | backoff, failed, exited | it ended (or failed to launch) and the restart policy decided |
/// | stopping | stopped | it ended after being asked to |
/// | waiting, backoff, failed, exited, stopped | stopped | stopped by hand or at shutdown while no process was up |
///
/// Everything else is refused: in particular an app never reaches `running` without
/// `starting`, and a live process never becomes `stopped` without `stopping`.
pub fn transition(from: &State, to: &State) -> Result<(), String> {
    use State::{Backoff, Exited, Failed, Running, Starting, Stopped, Stopping, Waiting};
    let legal = match (from, to) {
        (
            Stopped | Exited { .. } | Failed { .. } | Backoff { .. } | Waiting { .. },
            Waiting { .. } | Starting,
        )
        | (Starting, Running { .. })
        | (Starting | Running { .. }, Stopping { .. })
        | (Stopping { .. }, Stopping { .. } | Stopped)
        | (
            Starting | Running { .. } | Stopping { .. },
            Backoff { .. } | Failed { .. } | Exited { .. },
        )
        | (Waiting { .. } | Backoff { .. } | Failed { .. } | Exited { .. } | Stopped, Stopped) => {
            true
        }
        (Running { since_ms: a, .. }, Running { since_ms: b, .. }) => a == b,
        _ => false,
    };
    if legal {
        Ok(())
    } else {
        Err(format!(
            "illegal transition from {} to {}",
            from.name(),
            to.name()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting() -> State {
        State::Waiting {
            why: "waiting for broker (healthy)".to_owned(),
        }
    }
    fn running(health: Health) -> State {
        State::Running {
            since_ms: 1_000,
            health,
        }
    }
    fn stopping() -> State {
        State::Stopping {
            deadline_ms: 11_000,
            then: AfterStop::Stay,
        }
    }
    fn backoff() -> State {
        State::Backoff {
            until_ms: 2_000,
            attempt: 1,
        }
    }
    fn failed() -> State {
        State::Failed {
            reasons: vec!["exited with status 1".to_owned()],
        }
    }
    fn exited() -> State {
        State::Exited {
            reason: "exited with status 0".to_owned(),
        }
    }

    /// Every state, once.
    fn all() -> Vec<State> {
        vec![
            waiting(),
            State::Starting,
            running(Health::Starting),
            stopping(),
            backoff(),
            failed(),
            State::Stopped,
            exited(),
        ]
    }

    #[test]
    fn names_for_status_output() {
        let names: Vec<&str> = all().iter().map(State::name).collect();
        assert_eq!(
            names,
            [
                "waiting", "starting", "running", "stopping", "backoff", "failed", "stopped",
                "exited"
            ]
        );
        let health: Vec<&str> = [
            Health::None,
            Health::Starting,
            Health::Healthy,
            Health::Unhealthy,
        ]
        .into_iter()
        .map(Health::name)
        .collect();
        assert_eq!(health, ["none", "starting", "healthy", "unhealthy"]);
    }

    #[test]
    fn the_whole_table() {
        // Rows: from, in the order of `all()`; columns: to, same order.
        // w = waiting, s = starting, r = running, p = stopping, b = backoff,
        // f = failed, x = stopped, e = exited.
        let table = [
            //        w  s  r  p  b  f  x  e
            ("waiting", [1, 1, 0, 0, 0, 0, 1, 0]),
            ("starting", [0, 0, 1, 1, 1, 1, 0, 1]),
            ("running", [0, 0, 1, 1, 1, 1, 0, 1]),
            ("stopping", [0, 0, 0, 1, 1, 1, 1, 1]),
            ("backoff", [1, 1, 0, 0, 0, 0, 1, 0]),
            ("failed", [1, 1, 0, 0, 0, 0, 1, 0]),
            ("stopped", [1, 1, 0, 0, 0, 0, 1, 0]),
            ("exited", [1, 1, 0, 0, 0, 0, 1, 0]),
        ];
        let states = all();
        for ((name, row), from) in table.iter().zip(&states) {
            assert_eq!(from.name(), *name);
            for (&legal, to) in row.iter().zip(&states) {
                let got = transition(from, to);
                assert_eq!(
                    got.is_ok(),
                    legal == 1,
                    "{} -> {}: {got:?}",
                    from.name(),
                    to.name()
                );
            }
        }
    }

    #[test]
    fn legal_moves_of_a_normal_life() {
        let life = [
            State::Stopped,
            waiting(),
            State::Starting,
            running(Health::Starting),
            running(Health::Healthy),
            running(Health::Unhealthy),
            State::Stopping {
                deadline_ms: 11_000,
                then: AfterStop::Restart,
            },
            backoff(),
            State::Starting,
            running(Health::None),
            failed(),
            State::Starting,
            running(Health::None),
            exited(),
            State::Stopped,
        ];
        for pair in life.windows(2) {
            assert_eq!(transition(&pair[0], &pair[1]), Ok(()), "{pair:?}");
        }
    }

    #[test]
    fn running_cannot_be_reached_without_starting() {
        assert_eq!(
            transition(&State::Stopped, &running(Health::None)),
            Err("illegal transition from stopped to running".to_owned())
        );
        assert_eq!(
            transition(&backoff(), &running(Health::None)),
            Err("illegal transition from backoff to running".to_owned())
        );
    }

    #[test]
    fn a_live_process_is_not_stopped_without_stopping() {
        assert_eq!(
            transition(&running(Health::Healthy), &State::Stopped),
            Err("illegal transition from running to stopped".to_owned())
        );
        assert_eq!(
            transition(&State::Starting, &State::Stopped),
            Err("illegal transition from starting to stopped".to_owned())
        );
    }

    #[test]
    fn running_to_running_only_changes_health() {
        let later = State::Running {
            since_ms: 5_000,
            health: Health::Healthy,
        };
        assert_eq!(
            transition(&running(Health::Starting), &later),
            Err("illegal transition from running to running".to_owned())
        );
    }

    #[test]
    fn no_restart_policy_decision_without_a_process() {
        assert_eq!(
            transition(&State::Stopped, &backoff()),
            Err("illegal transition from stopped to backoff".to_owned())
        );
        assert_eq!(
            transition(&waiting(), &failed()),
            Err("illegal transition from waiting to failed".to_owned())
        );
        assert_eq!(
            transition(&backoff(), &backoff()),
            Err("illegal transition from backoff to backoff".to_owned())
        );
    }
}
