//! Reload: which apps a new set of manifests starts, stops, restarts or leaves alone.

use std::collections::BTreeMap;

/// What a reload does to each app, every list sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// New apps.
    pub start: Vec<String>,
    /// Apps whose manifest is gone.
    pub stop: Vec<String>,
    /// Apps whose definition changed.
    pub restart: Vec<String>,
    /// Apps whose definition is the same.
    pub keep: Vec<String>,
}

/// Compares the apps before and after a reload, each given as `(name, fingerprint)`
/// where the fingerprint is a hash of the whole definition (the caller computes it;
/// equal fingerprints mean an unchanged app). Names are unique within each list.
pub fn diff(old: &[(String, u64)], new: &[(String, u64)]) -> Change {
    let old: BTreeMap<&str, u64> = old.iter().map(|(n, f)| (n.as_str(), *f)).collect();
    let new: BTreeMap<&str, u64> = new.iter().map(|(n, f)| (n.as_str(), *f)).collect();
    let mut change = Change::default();
    for (&name, fingerprint) in &new {
        let list = match old.get(name) {
            None => &mut change.start,
            Some(before) if before == fingerprint => &mut change.keep,
            Some(_) => &mut change.restart,
        };
        list.push(name.to_owned());
    }
    change.stop = old
        .keys()
        .filter(|name| !new.contains_key(*name))
        .map(|&name| name.to_owned())
        .collect();
    change
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apps(list: &[(&str, u64)]) -> Vec<(String, u64)> {
        list.iter().map(|(n, f)| ((*n).to_owned(), *f)).collect()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn sorts_every_app_into_one_list() {
        let old = apps(&[
            ("web", 1),
            ("db", 2),
            ("old", 3),
            ("broker", 4),
            ("cache", 5),
        ]);
        let new = apps(&[
            ("zeta", 9),
            ("web", 1),
            ("db", 7),
            ("alpha", 8),
            ("cache", 5),
        ]);
        assert_eq!(
            diff(&old, &new),
            Change {
                start: names(&["alpha", "zeta"]),
                stop: names(&["broker", "old"]),
                restart: names(&["db"]),
                keep: names(&["cache", "web"]),
            }
        );
    }

    #[test]
    fn first_load_starts_everything() {
        let new = apps(&[("b", 1), ("a", 2)]);
        assert_eq!(
            diff(&[], &new),
            Change {
                start: names(&["a", "b"]),
                ..Change::default()
            }
        );
    }

    #[test]
    fn an_empty_set_stops_everything() {
        let old = apps(&[("b", 1), ("a", 2)]);
        assert_eq!(
            diff(&old, &[]),
            Change {
                stop: names(&["a", "b"]),
                ..Change::default()
            }
        );
    }

    #[test]
    fn the_same_set_keeps_everything() {
        let set = apps(&[("b", 1), ("a", 2)]);
        assert_eq!(
            diff(&set, &set),
            Change {
                keep: names(&["a", "b"]),
                ..Change::default()
            }
        );
    }

    #[test]
    fn nothing_to_nothing() {
        assert_eq!(diff(&[], &[]), Change::default());
    }
}
