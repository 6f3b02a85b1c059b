//! What can be wrong with a manifest, and where.

use std::fmt;
use std::path::{Path, PathBuf};

use super::locate::Pos;
use super::model::Logs;
use super::types::{AppName, Capability, PortMapping};
use super::units::{Duration, Size};

/// One problem in one manifest file. Printed as `file:line:column: [app: ]message`,
/// one line, so build pipelines can grep it.
#[derive(Debug)]
pub struct Problem {
    pub file: PathBuf,
    pub pos: Option<Pos>,
    /// The app, once its name is known.
    pub app: Option<AppName>,
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}:", self.file.display())?;
        if let Some(pos) = self.pos {
            write!(f, "{pos}:")?;
        }
        if let Some(app) = &self.app {
            write!(f, " {app}:")?;
        }
        write!(f, " {}", self.kind)
    }
}

#[derive(Debug)]
pub enum ProblemKind {
    /// The file could not be read.
    Read(std::io::Error),
    /// The file is larger than a manifest may be.
    TooLarge { limit: u64 },
    /// The path names a FIFO, a device, a directory or a socket: it is not opened
    /// (a FIFO would block the reader forever).
    NotRegular { kind: &'static str },
    /// The YAML parser refused it; `message` is the parser's, with the key path first.
    Yaml { kind: YamlKind, message: String },
    /// It parsed, but breaks a rule.
    Rule(Rule),
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ProblemKind::Read(e) => write!(f, "cannot read: {e}"),
            ProblemKind::TooLarge { limit } => write!(f, "manifest is larger than {limit} bytes"),
            ProblemKind::NotRegular { kind } => write!(f, "not a regular file ({kind})"),
            ProblemKind::Yaml { message, .. } => f.write_str(message),
            ProblemKind::Rule(r) => write!(f, "{r}"),
        }
    }
}

impl ProblemKind {
    /// A stable name for the kind of problem (`UnknownField`, `DependencyCycle`...),
    /// for tests, fixtures and machine-readable output.
    pub fn name(&self) -> String {
        let debug = match self {
            ProblemKind::Read(_) => return "Read".into(),
            ProblemKind::TooLarge { .. } => return "TooLarge".into(),
            ProblemKind::NotRegular { .. } => return "NotRegular".into(),
            ProblemKind::Yaml { kind, .. } => format!("{kind:?}"),
            ProblemKind::Rule(rule) => format!("{rule:?}"),
        };
        debug
            .split(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

/// The class of a parser error, told apart by serde's standard wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YamlKind {
    /// Not well-formed YAML, or not a single document.
    Syntax,
    UnknownField,
    MissingField,
    DuplicateKey,
    /// A mapping where a list was expected, text where a boolean was, and so on.
    WrongType,
    /// Right type, wrong value: a bad size, name, enum variant...
    InvalidValue,
}

impl YamlKind {
    /// Classifies a serde message (with the key path already removed).
    pub fn of(message: &str) -> YamlKind {
        const KINDS: [(&str, YamlKind); 6] = [
            ("unknown field", YamlKind::UnknownField),
            ("missing field", YamlKind::MissingField),
            ("duplicate field", YamlKind::DuplicateKey),
            ("duplicate key", YamlKind::DuplicateKey),
            ("invalid type", YamlKind::WrongType),
            ("invalid length", YamlKind::WrongType),
        ];
        KINDS
            .iter()
            .find(|(prefix, _)| message.starts_with(prefix))
            .map_or(YamlKind::InvalidValue, |&(_, kind)| kind)
    }
}

/// A rule a manifest breaks: alone, or together with the other apps of its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    EmptyCommand,
    ProbeCount(usize),
    TimeoutNotBelowInterval {
        timeout: Duration,
        interval: Duration,
    },
    ZeroInterval,
    BackoffInverted {
        initial: Duration,
        max: Duration,
    },
    ZeroWindow,
    ZeroSize(&'static str),
    LogSizeTooSmall(Size),
    LogFilesTooMany(u32),
    SwapWithoutMemory,
    PortsNeedBridge,
    DuplicatePort(PortMapping),
    MountField {
        kind: &'static str,
        field: &'static str,
        needed: bool,
    },
    MountOverlap {
        target: String,
        other: String,
    },
    MountOverSystem {
        target: String,
    },
    DuplicateDevice(String),
    DeviceNotUnderDev(String),
    DuplicateNamespace(&'static str),
    MountNamespaceRequired,
    NetNamespace {
        mode: String,
        needed: bool,
    },
    UserNamespaceNeedsMap,
    UserNamespaceWithoutUser,
    UserNotMapped {
        id: u32,
        map: &'static str,
    },
    UserNamespaceMapsHostRoot {
        map: &'static str,
        inside: u32,
    },
    BindSourceReserved {
        source: String,
        /// The source with its links resolved, when that differs.
        resolved: Option<String>,
        /// What it overlaps: `/proc`, or `berth's log directory /var/log/berth`.
        what: String,
    },
    CapabilityAddedAndDropped(Capability),
    InitNeedsStaticBerth,
    NetworkContainerSelf,
    DuplicateDependency(AppName),
    DuplicateName {
        first: PathBuf,
    },
    UnknownDependency(AppName),
    InvalidDependency(AppName),
    HealthyNeedsHealthcheck(AppName),
    DependencyCycle(Vec<AppName>),
    UnknownNetworkContainer(AppName),
    InvalidNetworkContainer(AppName),
    ChainedNetworkContainer {
        app: AppName,
        mode: String,
    },
    HostPortTaken {
        port: PortMapping,
        app: AppName,
        theirs: PortMapping,
        file: PathBuf,
    },
    ImageUnreadable {
        path: String,
        error: String,
    },
    ImageDigestMismatch {
        path: String,
        expected: String,
        actual: String,
    },
}

fn file_name(p: &Path) -> String {
    p.display().to_string()
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        use Rule::*;
        match self {
            EmptyCommand => write!(
                f,
                "a command must name a program: give at least one non-empty string"
            ),
            ProbeCount(n) => write!(
                f,
                "healthcheck needs exactly one of exec, tcp or http, found {n}"
            ),
            TimeoutNotBelowInterval { timeout, interval } => {
                write!(
                    f,
                    "healthcheck timeout {timeout} must be shorter than its interval {interval}"
                )
            }
            ZeroInterval => write!(f, "healthcheck interval must be more than 0"),
            BackoffInverted { initial, max } => {
                write!(
                    f,
                    "restart backoff initial {initial} is more than its max {max}"
                )
            }
            ZeroWindow => write!(f, "restart window must be more than 0"),
            ZeroSize(what) => write!(f, "{what} must be more than 0"),
            LogSizeTooSmall(size) => write!(
                f,
                "logs.max_size {size} is below the minimum of {}: each rotation renames, \
                 removes and opens a file, so berth would rotate every few lines",
                Logs::MIN_MAX_SIZE
            ),
            LogFilesTooMany(n) => write!(
                f,
                "logs.max_files {n} is more than {}: keep fewer files, or larger ones \
                 (max_size)",
                Logs::MAX_MAX_FILES
            ),
            SwapWithoutMemory => {
                write!(f, "resources.memory_swap needs resources.memory to be set")
            }
            PortsNeedBridge => write!(f, "network.ports needs network.mode bridge"),
            DuplicatePort(p) => write!(f, "port mapping {p} is listed twice"),
            MountField {
                kind,
                field,
                needed: true,
            } => write!(f, "a {kind} mount needs `{field}`"),
            MountField {
                kind,
                field,
                needed: false,
            } => write!(f, "a {kind} mount takes no `{field}`"),
            MountOverlap { target, other } => {
                write!(
                    f,
                    "mount target {target} overlaps the mount at {other}: give each mount its own directory"
                )
            }
            MountOverSystem { target } => {
                write!(
                    f,
                    "mount target {target} is inside /proc, /sys or /dev, which berth mounts itself (use devices: for device nodes)"
                )
            }
            DuplicateDevice(d) => write!(f, "device {d} is listed twice"),
            DeviceNotUnderDev(d) => write!(
                f,
                "device {d} is not under /dev: only character and block device nodes (or a directory of them) under /dev can be given to an app"
            ),
            DuplicateNamespace(ns) => write!(f, "namespace {ns} is listed twice"),
            MountNamespaceRequired => {
                write!(
                    f,
                    "namespaces must include mount: every app gets its own root filesystem"
                )
            }
            NetNamespace { mode, needed: true } => {
                write!(
                    f,
                    "network.mode {mode} needs a network namespace of its own: add net to namespaces"
                )
            }
            NetNamespace {
                mode,
                needed: false,
            } => {
                write!(
                    f,
                    "network.mode {mode} joins an existing network namespace: remove net from namespaces"
                )
            }
            UserNamespaceNeedsMap => write!(
                f,
                "namespaces includes user, so user_namespace (uid_map, gid_map) is required"
            ),
            UserNamespaceWithoutUser => write!(
                f,
                "user_namespace is set but namespaces does not include user: add user to namespaces"
            ),
            UserNotMapped { id, map } => {
                write!(f, "user id {id} is not mapped by user_namespace.{map}")
            }
            UserNamespaceMapsHostRoot { map, inside } => write!(
                f,
                "user_namespace.{map} maps host id 0 (the host's root) to {inside} in the app: \
                 map a range of unused host ids (e.g. 0:100000:65536), or set \
                 user_namespace.allow_host_root: true if the app must own the host's files"
            ),
            BindSourceReserved {
                source,
                resolved,
                what,
            } => {
                write!(f, "bind mount source {source}")?;
                if let Some(resolved) = resolved {
                    write!(f, " (which is {resolved})")?;
                }
                write!(
                    f,
                    " overlaps {what}: an app given it could reach the host or berth's own files; \
                     bind another directory, or set allow_system_path: true on this mount"
                )
            }
            CapabilityAddedAndDropped(c) => write!(f, "capability {c} is both added and dropped"),
            InitNeedsStaticBerth => write!(
                f,
                "init: true needs a statically linked berth, and this one is dynamically \
                 linked: its copy, run as the app's pid 1, would need a dynamic loader that \
                 the app's root does not have (build berth for a *-linux-musl target)"
            ),
            NetworkContainerSelf => write!(f, "network.mode container: names the app itself"),
            DuplicateDependency(app) => write!(f, "depends_on lists {app} twice"),
            DuplicateName { first } => write!(f, "app name already used by {}", file_name(first)),
            UnknownDependency(app) => {
                write!(f, "depends_on names {app}, but there is no app {app}")
            }
            InvalidDependency(app) => write!(
                f,
                "depends_on names {app}, which is invalid and will not run"
            ),
            HealthyNeedsHealthcheck(app) => {
                write!(
                    f,
                    "depends_on {app} with condition healthy, but {app} has no healthcheck"
                )
            }
            DependencyCycle(cycle) => {
                let names: Vec<&str> = cycle.iter().map(AppName::as_str).collect();
                write!(f, "dependency cycle: {}", names.join(" -> "))
            }
            UnknownNetworkContainer(app) => {
                write!(
                    f,
                    "network.mode container:{app} names an app that does not exist"
                )
            }
            InvalidNetworkContainer(app) => {
                write!(
                    f,
                    "network.mode container:{app} names an app that is invalid and will not run"
                )
            }
            ChainedNetworkContainer { app, mode } => write!(
                f,
                "network.mode container:{app}: {app} itself uses network.mode {mode}; name the app that owns the network"
            ),
            HostPortTaken {
                port,
                app,
                theirs,
                file,
            } => write!(
                f,
                "host port {}/{} of {port} is already forwarded by {app} ({theirs} in {})",
                port.host_port,
                port.protocol,
                file_name(file)
            ),
            ImageUnreadable { path, error } => write!(f, "cannot read image {path}: {error}"),
            ImageDigestMismatch {
                path,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "image digest mismatch for {path}: expected {expected}, got {actual}"
                )
            }
        }
    }
}

impl From<crate::input::InputError> for ProblemKind {
    fn from(e: crate::input::InputError) -> Self {
        match e {
            crate::input::InputError::Io { source, .. } => ProblemKind::Read(source),
            crate::input::InputError::NotRegular { kind, .. } => ProblemKind::NotRegular { kind },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_kinds_from_serde_wording() {
        assert_eq!(
            YamlKind::of("unknown field `memroy`, expected one of"),
            YamlKind::UnknownField
        );
        assert_eq!(YamlKind::of("missing field `name`"), YamlKind::MissingField);
        assert_eq!(
            YamlKind::of("duplicate field `name`"),
            YamlKind::DuplicateKey
        );
        assert_eq!(
            YamlKind::of("invalid type: map, expected a string"),
            YamlKind::WrongType
        );
        assert_eq!(
            YamlKind::of("invalid size \"64MB\""),
            YamlKind::InvalidValue
        );
        assert_eq!(
            YamlKind::of("unknown variant `sometimes`"),
            YamlKind::InvalidValue
        );
    }

    #[test]
    fn problems_print_on_one_grep_able_line() {
        let p = Problem {
            file: "apps.d/gw.yaml".into(),
            pos: Some(Pos { line: 3, column: 9 }),
            app: Some("gw".parse().unwrap()),
            kind: ProblemKind::Rule(Rule::DependencyCycle(vec![
                "gw".parse().unwrap(),
                "db".parse().unwrap(),
                "gw".parse().unwrap(),
            ])),
        };
        assert_eq!(
            p.to_string(),
            "apps.d/gw.yaml:3:9: gw: dependency cycle: gw -> db -> gw"
        );
    }
}
