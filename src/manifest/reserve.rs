//! Host paths a bind mount's source may not overlap: `/proc`, `/sys`, and berth's own
//! directories (state, run, log and apps directories, known from berth.yaml). A bind
//! of one of these gives the app the host (`/proc/self/root` is the host's root) or
//! lets it plant links and files where berth, as root, writes. A mount that really
//! needs one says so with `allow_system_path: true`.
//!
//! The source is checked as written and with its symbolic links resolved (when it
//! exists on this host), against each reserved path as configured and resolved: a
//! link `/data/x -> /proc/1/root` is caught as well as `/proc/1/root` itself.
//! "Overlaps" means either lies within the other: `/var` holds `/var/lib/berth`.
//!
//! The other thing that depends on the host rather than on the manifest: `init: true`
//! runs a sealed copy of berth's own executable as the app's pid 1, inside the app's
//! root, where no dynamic loader is. A dynamically linked berth (a plain `cargo build`
//! for a glibc target) refuses such an app when it loads it, as `berth check` does,
//! rather than at every launch.

use std::path::{Component, Path, PathBuf};

use super::error::Rule;
use super::locate::at;
use super::model::{Manifest, Mount};
use super::validate::Finding;

/// Whether this berth is statically linked, so that its copy runs in any root as the
/// `init: true` reaper (`crt-static`: the musl targets, or glibc with
/// `-C target-feature=+crt-static`).
pub const STATIC_BERTH: bool = cfg!(target_feature = "crt-static");

/// The reserved host paths, and whether `init: true` can run here.
#[derive(Debug, Clone)]
pub struct Reserved {
    places: Vec<Place>,
    /// Whether the reaper of `init: true` can run ([`STATIC_BERTH`] unless told).
    init: bool,
}

#[derive(Debug, Clone)]
struct Place {
    /// How the problem names it: `/proc`, `berth's log directory /var/log/berth`.
    what: String,
    /// As configured, and with its links resolved if it exists.
    paths: Vec<PathBuf>,
}

impl Reserved {
    /// `/proc` and `/sys` only (loading manifests without berth's settings).
    pub fn system() -> Reserved {
        let mut r = Reserved {
            places: Vec::new(),
            init: STATIC_BERTH,
        };
        for path in ["/proc", "/sys"] {
            r.places.push(Place {
                what: path.to_owned(),
                paths: vec![PathBuf::from(path)],
            });
        }
        r
    }

    /// Adds one of berth's directories: `what` names it (`log directory`).
    pub fn with(mut self, what: &str, path: &Path) -> Reserved {
        let plain = normal(path);
        let mut paths = vec![plain.clone()];
        if let Ok(real) = std::fs::canonicalize(&plain) {
            if real != plain {
                paths.push(real);
            }
        }
        self.places.push(Place {
            what: format!("berth's {what} {}", plain.display()),
            paths,
        });
        self
    }

    /// Says whether the berth that will run the apps can run `init: true` ones (by
    /// default, whether this berth is statically linked: [`STATIC_BERTH`]).
    pub fn with_init(mut self, supported: bool) -> Reserved {
        self.init = supported;
        self
    }

    /// The bind mounts of `m` that overlap a reserved path without saying they may,
    /// and `init: true` where this berth cannot run it.
    pub fn findings(&self, m: &Manifest) -> Vec<Finding> {
        let mut found = Vec::new();
        if m.init && !self.init {
            found.push((at!["init"], Rule::InitNeedsStaticBerth));
        }
        for (i, mount) in m.mounts.iter().enumerate() {
            let Mount::Bind {
                source,
                allow_system_path: false,
                ..
            } = mount
            else {
                continue;
            };
            if let Some(rule) = self.check(source.as_str()) {
                found.push((at!["mounts", i, "source"], rule));
            }
        }
        found
    }

    /// [`findings`](Self::findings) as problems located in the manifest's file (read
    /// again): for the check berth makes again just before a launch.
    pub fn problems(&self, m: &Manifest) -> Vec<super::Problem> {
        self.findings(m)
            .into_iter()
            .map(|(path, rule)| super::Problem {
                pos: super::locate_in_file(&m.file, &path),
                file: m.file.clone(),
                app: Some(m.name.clone()),
                kind: super::ProblemKind::Rule(rule),
            })
            .collect()
    }

    /// The rule a bind of `source` breaks, if any.
    pub fn check(&self, source: &str) -> Option<Rule> {
        let plain = normal(Path::new(source));
        let real = std::fs::canonicalize(&plain).ok().filter(|r| *r != plain);
        for candidate in std::iter::once(&plain).chain(real.as_ref()) {
            let hit = self.places.iter().find(|place| {
                place
                    .paths
                    .iter()
                    .any(|p| candidate.starts_with(p) || p.starts_with(candidate))
            });
            if let Some(place) = hit {
                return Some(Rule::BindSourceReserved {
                    source: source.to_owned(),
                    resolved: real.as_ref().map(|r| r.display().to_string()),
                    what: place.what.clone(),
                });
            }
        }
        None
    }
}

/// `path` made absolute (against the current directory) with `.` and `..` removed,
/// without looking at the filesystem.
fn normal(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut out = PathBuf::from("/");
    for c in absolute.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(source: &str, resolved: Option<&str>, what: &str) -> Option<Rule> {
        Some(Rule::BindSourceReserved {
            source: source.into(),
            resolved: resolved.map(Into::into),
            what: what.into(),
        })
    }

    #[test]
    fn proc_sys_and_berths_directories_are_refused_either_way_round() {
        let r = Reserved::system()
            .with("log directory", Path::new("/nonexistent-berth/log/./x/.."))
            .with("state directory", Path::new("/nonexistent-berth/state"));
        assert_eq!(
            r.check("/proc/self/root"),
            rule("/proc/self/root", Some("/"), "/proc")
        );
        assert_eq!(r.check("/sys"), rule("/sys", None, "/sys"));
        assert_eq!(
            r.check("/nonexistent-berth/log/web"),
            rule(
                "/nonexistent-berth/log/web",
                None,
                "berth's log directory /nonexistent-berth/log"
            )
        );
        // A source that holds one of berth's directories.
        assert_eq!(
            r.check("/nonexistent-berth"),
            rule(
                "/nonexistent-berth",
                None,
                "berth's log directory /nonexistent-berth/log"
            )
        );
        assert_eq!(r.check("/nonexistent-berth/logs"), None);
        assert_eq!(r.check("/nonexistent-data"), None);
    }

    #[test]
    fn static_berth_says_whether_this_build_needs_a_loader() {
        let own = std::fs::read("/proc/self/exe").unwrap();
        assert_eq!(STATIC_BERTH, !crate::launch::reaper::needs_loader(&own));
    }

    #[test]
    fn a_link_is_judged_by_where_it_leads() {
        let dir = std::env::temp_dir().join(format!("berth-reserve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).ok();
        let link = dir.join("host");
        std::os::unix::fs::symlink("/proc/self/root", &link).ok();
        let source = link.display().to_string();
        let found = Reserved::system().check(&source);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(found, rule(&source, Some("/"), "/proc"));
    }
}
