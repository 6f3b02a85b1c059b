//! Dependencies between apps: when one may start, and the order in which they stop.

use super::Health;
use crate::manifest::model::{Condition, Dependency};

/// What a dependency is now, as [`blocked_by`] needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Running (exec'd), with this health.
    Running(Health),
    /// In another phase, by name (`starting`, `backoff`, `failed`, ...).
    Down(&'static str),
}

/// Why an app with dependencies `deps` must wait, or `None` when every condition holds.
/// `state_of` gives what an app is now, by name (`None`: no such app is loaded).
///
/// `started` holds while the dependency is running, whatever its health; `healthy`
/// holds while it is running and healthy. The reason names the first dependency, in
/// manifest order, that does not hold, its condition, and what the dependency is now
/// unless it is merely waiting for its first verdict:
///
/// - `waiting for broker to be running (it is starting)`
/// - `waiting for broker to be healthy` (running, no verdict yet)
/// - `waiting for broker to be healthy (it is unhealthy)`, `(it is backoff)`
/// - `waiting for broker to be healthy (it has no health check)`
/// - `waiting for broker to be running (it is not loaded)`
pub fn blocked_by(deps: &[Dependency], state_of: &dyn Fn(&str) -> Option<Seen>) -> Option<String> {
    deps.iter().find_map(|dep| {
        let name = dep.app.as_str();
        let condition = match dep.condition {
            Condition::Started => "running",
            Condition::Healthy => "healthy",
        };
        let detail = match (state_of(name), dep.condition) {
            (Some(Seen::Running(_)), Condition::Started)
            | (Some(Seen::Running(Health::Healthy)), Condition::Healthy) => return None,
            (Some(Seen::Running(Health::Starting)), _) => String::new(),
            (Some(Seen::Running(Health::None)), _) => " (it has no health check)".to_owned(),
            (Some(Seen::Running(health)), _) => format!(" (it is {})", health.name()),
            (Some(Seen::Down(phase)), _) => format!(" (it is {phase})"),
            (None, _) => " (it is not loaded)".to_owned(),
        };
        Some(format!("waiting for {name} to be {condition}{detail}"))
    })
}

/// The order in which to stop apps given as `(name, names of its dependencies)`: every
/// app before the apps it depends on, so nothing loses a dependency while it runs.
///
/// Among apps that may stop at the same point, the first by name goes first, so the
/// order is the same on every run. Dependencies that are not in `apps` are ignored. The
/// graph is acyclic once validated; should a cycle slip through anyway, the apps on it
/// come last, by name, rather than being left out.
pub fn stop_order(apps: &[(String, Vec<String>)]) -> Vec<String> {
    // The names in order (the order among apps that may stop at the same point).
    let mut names: Vec<&str> = apps.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let index = |n: &str| names.binary_search(&n).ok();
    // Each app's dependencies, by index: deduplicated, limited to the apps given.
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
    for (name, on) in apps {
        let Some(i) = index(name) else { continue };
        for j in on.iter().filter_map(|d| index(d)) {
            if let Some(list) = deps.get_mut(i) {
                if j != i && !list.contains(&j) {
                    list.push(j);
                }
            }
        }
    }
    // How many not-yet-stopped apps depend on each app.
    let mut dependants = vec![0usize; names.len()];
    for &j in deps.iter().flatten() {
        if let Some(n) = dependants.get_mut(j) {
            *n += 1;
        }
    }
    let mut stopped = vec![false; names.len()];
    let mut order: Vec<String> = Vec::with_capacity(names.len());
    let free = |i: usize, stopped: &[bool], dependants: &[usize]| {
        stopped.get(i) == Some(&false) && dependants.get(i) == Some(&0)
    };
    while let Some(i) = (0..names.len()).find(|&i| free(i, &stopped, &dependants)) {
        if let Some(s) = stopped.get_mut(i) {
            *s = true;
        }
        order.extend(names.get(i).map(|n| (*n).to_owned()));
        for &j in deps.get(i).into_iter().flatten() {
            if let Some(n) = dependants.get_mut(j) {
                *n = n.saturating_sub(1);
            }
        }
    }
    // A cycle (validation refuses them): what is left, by name.
    for (i, name) in names.iter().enumerate() {
        if stopped.get(i) == Some(&false) {
            order.push((*name).to_owned());
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::manifest::model::Condition::{Healthy, Started};

    fn dep(app: &str, condition: Condition) -> Dependency {
        Dependency {
            app: app.parse().unwrap(),
            condition,
        }
    }

    fn running(health: Health) -> Seen {
        Seen::Running(health)
    }

    fn blocked(deps: &[Dependency], states: &[(&str, Seen)]) -> Option<String> {
        let states: HashMap<&str, Seen> = states.iter().map(|(n, s)| (*n, *s)).collect();
        let lookup = |name: &str| states.get(name).copied();
        blocked_by(deps, &lookup)
    }

    #[test]
    fn no_dependencies_never_block() {
        assert_eq!(blocked(&[], &[]), None);
    }

    #[test]
    fn started_holds_while_running_whatever_the_health() {
        let deps = [dep("broker", Started)];
        for health in [
            Health::None,
            Health::Starting,
            Health::Healthy,
            Health::Unhealthy,
        ] {
            assert_eq!(blocked(&deps, &[("broker", running(health))]), None);
        }
    }

    #[test]
    fn started_waits_for_a_dependency_that_is_not_running() {
        let deps = [dep("broker", Started)];
        let cases = [
            (
                Seen::Down("starting"),
                "waiting for broker to be running (it is starting)",
            ),
            (
                Seen::Down("failed"),
                "waiting for broker to be running (it is failed)",
            ),
            (
                Seen::Down("backoff"),
                "waiting for broker to be running (it is backoff)",
            ),
            (
                Seen::Down("waiting"),
                "waiting for broker to be running (it is waiting)",
            ),
        ];
        for (state, want) in cases {
            assert_eq!(blocked(&deps, &[("broker", state)]).as_deref(), Some(want));
        }
    }

    #[test]
    fn healthy_holds_only_while_running_and_healthy() {
        let deps = [dep("broker", Healthy)];
        let cases = [
            (running(Health::Healthy), None),
            (
                running(Health::Starting),
                Some("waiting for broker to be healthy"),
            ),
            (
                running(Health::Unhealthy),
                Some("waiting for broker to be healthy (it is unhealthy)"),
            ),
            (
                running(Health::None),
                Some("waiting for broker to be healthy (it has no health check)"),
            ),
            (
                Seen::Down("exited"),
                Some("waiting for broker to be healthy (it is exited)"),
            ),
        ];
        for (state, want) in cases {
            assert_eq!(blocked(&deps, &[("broker", state)]).as_deref(), want);
        }
    }

    #[test]
    fn names_the_first_dependency_that_does_not_hold() {
        let deps = [
            dep("db", Started),
            dep("broker", Healthy),
            dep("cache", Started),
        ];
        let states = [
            ("db", running(Health::None)),
            ("broker", Seen::Down("starting")),
            ("cache", Seen::Down("stopped")),
        ];
        assert_eq!(
            blocked(&deps, &states).as_deref(),
            Some("waiting for broker to be healthy (it is starting)")
        );
    }

    #[test]
    fn an_unknown_dependency_blocks() {
        assert_eq!(
            blocked(&[dep("broker", Started)], &[]).as_deref(),
            Some("waiting for broker to be running (it is not loaded)")
        );
    }

    fn graph(edges: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        edges
            .iter()
            .map(|(n, d)| ((*n).to_owned(), d.iter().map(|s| (*s).to_owned()).collect()))
            .collect()
    }

    #[test]
    fn dependants_stop_before_their_dependencies() {
        // ui -> gateway -> broker -> db, and job -> db.
        let apps = graph(&[
            ("db", &[]),
            ("broker", &["db"]),
            ("gateway", &["broker"]),
            ("ui", &["gateway", "broker"]),
            ("job", &["db"]),
        ]);
        assert_eq!(stop_order(&apps), ["job", "ui", "gateway", "broker", "db"]);
    }

    #[test]
    fn independent_apps_stop_by_name() {
        let apps = graph(&[("c", &[]), ("a", &[]), ("b", &[])]);
        assert_eq!(stop_order(&apps), ["a", "b", "c"]);
    }

    #[test]
    fn ties_are_broken_by_name_at_every_step() {
        // z and a both depend on m; y stands alone.
        let apps = graph(&[("m", &[]), ("z", &["m"]), ("a", &["m"]), ("y", &[])]);
        assert_eq!(stop_order(&apps), ["a", "y", "z", "m"]);
    }

    #[test]
    fn unknown_and_repeated_dependencies_are_ignored() {
        let apps = graph(&[("web", &["db", "db", "gone", "web"]), ("db", &[])]);
        assert_eq!(stop_order(&apps), ["web", "db"]);
    }

    #[test]
    fn a_cycle_still_stops_every_app() {
        let apps = graph(&[("a", &["b"]), ("b", &["a"]), ("top", &["a"])]);
        assert_eq!(stop_order(&apps), ["top", "a", "b"]);
    }

    #[test]
    fn nothing_to_stop() {
        assert!(stop_order(&[]).is_empty());
    }
}
