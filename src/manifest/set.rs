//! The rules a set of manifests must keep together: one device runs them all.

use std::collections::BTreeMap;

use super::error::Rule;
use super::locate::at;
use super::model::{Condition, Manifest};
use super::types::{AppName, NetworkMode};
use super::validate::Finding;

/// Checks `apps` (each valid alone, in file order) against each other and returns,
/// for each app, the rules it breaks; an app with none can run. `broken` names apps
/// whose files are invalid, so that their dependants say so rather than "no such app".
pub fn cross_check(apps: &[&Manifest], broken: &[AppName]) -> Vec<Vec<Finding>> {
    let mut found: Vec<Vec<Finding>> = vec![Vec::new(); apps.len()];

    // Two files, one name: the first (in file order) keeps it.
    let mut first: BTreeMap<&AppName, usize> = BTreeMap::new();
    for (i, app) in apps.iter().enumerate() {
        match first.get(&app.name).and_then(|&f| apps.get(f)) {
            Some(owner) => push(
                &mut found,
                i,
                at!["name"],
                Rule::DuplicateName {
                    first: owner.file.clone(),
                },
            ),
            None => {
                first.insert(&app.name, i);
            }
        }
    }
    // From here on a name means the app that owns it.
    let index = |name: &AppName| first.get(name).copied();

    check_targets(apps, broken, &index, &mut found);
    check_cycles(apps, &index, &mut found);
    check_ports(apps, &mut found);
    check_cascade(apps, broken, &index, &mut found);
    found
}

fn push(found: &mut [Vec<Finding>], i: usize, path: Vec<super::locate::Seg<'static>>, rule: Rule) {
    if let Some(f) = found.get_mut(i) {
        f.push((path, rule));
    }
}

fn ok(found: &[Vec<Finding>], i: usize) -> bool {
    found.get(i).is_some_and(Vec::is_empty)
}

/// Reports every app on a `depends_on` cycle, each with the cycle read from itself.
fn check_cycles(
    apps: &[&Manifest],
    index: &dyn Fn(&AppName) -> Option<usize>,
    found: &mut [Vec<Finding>],
) {
    for (start, app) in apps.iter().enumerate() {
        if index(&app.name) != Some(start) {
            continue; // a duplicate name: refused already, and not the app the name means
        }
        // Depth-first search from `start` for a path back to it, deps in file order.
        // Each stack frame is (app, index of its next dependency to try).
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        let mut done = vec![false; apps.len()];
        let mut cycle: Option<Vec<usize>> = None;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let dep = apps.get(node).and_then(|a| a.depends_on.get(*next));
            *next += 1;
            match dep.and_then(|d| index(&d.app)) {
                Some(d) if d == start => {
                    cycle = Some(stack.iter().map(|&(n, _)| n).chain([start]).collect());
                    break;
                }
                Some(d) if done.get(d) == Some(&false) && stack.iter().all(|&(n, _)| n != d) => {
                    stack.push((d, 0))
                }
                Some(_) => {}
                None if dep.is_some() => {}
                None => {
                    if let Some(d) = done.get_mut(node) {
                        *d = true;
                    }
                    stack.pop();
                }
            }
        }
        if let Some(cycle) = cycle {
            let names = cycle
                .iter()
                .filter_map(|&n| apps.get(n))
                .map(|a| a.name.clone())
                .collect();
            let first_hop = cycle.get(1).and_then(|&n| apps.get(n)).map(|a| &a.name);
            let edge = app
                .depends_on
                .iter()
                .position(|d| Some(&d.app) == first_hop)
                .unwrap_or(0);
            push(
                found,
                start,
                at!["depends_on", edge, "app"],
                Rule::DependencyCycle(names),
            );
        }
    }
}

/// `depends_on` and `container:` must name apps that exist, with what the reference
/// needs (a healthcheck, a network of its own). Checked for every app, so that one
/// run of `berth check` reports all of these at once.
fn check_targets(
    apps: &[&Manifest],
    broken: &[AppName],
    index: &dyn Fn(&AppName) -> Option<usize>,
    found: &mut [Vec<Finding>],
) {
    for (i, app) in apps.iter().enumerate() {
        for (d, dep) in app.depends_on.iter().enumerate() {
            match index(&dep.app).and_then(|t| apps.get(t)) {
                None if broken.contains(&dep.app) => {}
                None => push(
                    found,
                    i,
                    at!["depends_on", d, "app"],
                    Rule::UnknownDependency(dep.app.clone()),
                ),
                Some(target)
                    if dep.condition == Condition::Healthy && target.healthcheck.is_none() =>
                {
                    let rule = Rule::HealthyNeedsHealthcheck(dep.app.clone());
                    push(found, i, at!["depends_on", d, "condition"], rule);
                }
                Some(_) => {}
            }
        }
        if let NetworkMode::Container(owner) = &app.network.mode {
            match index(owner)
                .and_then(|t| apps.get(t))
                .map(|t| &t.network.mode)
            {
                None if broken.contains(owner) => {}
                None => push(
                    found,
                    i,
                    at!["network", "mode"],
                    Rule::UnknownNetworkContainer(owner.clone()),
                ),
                Some(mode @ NetworkMode::Container(_)) => {
                    let rule = Rule::ChainedNetworkContainer {
                        app: owner.clone(),
                        mode: mode.to_string(),
                    };
                    push(found, i, at!["network", "mode"], rule);
                }
                Some(_) => {}
            }
        }
    }
}

/// An app whose dependency or network owner will not run cannot run either; repeated
/// until nothing changes, since refusing one app can refuse its dependants.
fn check_cascade(
    apps: &[&Manifest],
    broken: &[AppName],
    index: &dyn Fn(&AppName) -> Option<usize>,
    found: &mut [Vec<Finding>],
) {
    let refused = |name: &AppName, found: &[Vec<Finding>]| match index(name) {
        Some(t) => !ok(found, t),
        None => broken.contains(name),
    };
    loop {
        let mut changed = false;
        for (i, app) in apps.iter().enumerate() {
            if !ok(found, i) {
                continue;
            }
            for (d, dep) in app.depends_on.iter().enumerate() {
                if refused(&dep.app, found) {
                    push(
                        found,
                        i,
                        at!["depends_on", d, "app"],
                        Rule::InvalidDependency(dep.app.clone()),
                    );
                    changed = true;
                }
            }
            if let NetworkMode::Container(owner) = &app.network.mode {
                if refused(owner, found) {
                    push(
                        found,
                        i,
                        at!["network", "mode"],
                        Rule::InvalidNetworkContainer(owner.clone()),
                    );
                    changed = true;
                }
            }
        }
        if !changed {
            return;
        }
    }
}

/// No two apps may forward the same host port; the first in file order keeps it.
fn check_ports(apps: &[&Manifest], found: &mut [Vec<Finding>]) {
    for (i, app) in apps.iter().enumerate() {
        if !ok(found, i) {
            continue;
        }
        for (p, port) in app.network.ports.iter().enumerate() {
            let holder = apps
                .iter()
                .enumerate()
                .take(i)
                .filter(|&(o, _)| ok(found, o))
                .find_map(|(_, other)| {
                    other
                        .network
                        .ports
                        .iter()
                        .find(|q| q.clashes_with(port))
                        .map(|theirs| (other, *theirs))
                });
            if let Some((other, theirs)) = holder {
                let rule = Rule::HostPortTaken {
                    port: *port,
                    app: other.name.clone(),
                    theirs,
                    file: other.file.clone(),
                };
                push(found, i, at!["network", "ports", p], rule);
            }
        }
    }
}
