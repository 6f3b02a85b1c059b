//! The typed manifest: what the rest of berth reads. A [`Manifest`] can only be made by
//! the loader (`manifest::load_*`), so holding one means it passed every check.

use std::path::PathBuf;

use serde::Deserialize;

use super::types::{
    AbsPath, AppName, Arg, Args, Capability, CpuSet, Digest, EnvName, Hostname, HttpUrl, IdMap,
    NetworkMode, Port, PortMapping, User, Weight,
};
use super::units::{Cpu, Duration, Signal, Size, deserialize_from_str};

/// Proof of validation: only `manifest::validate` can make one.
#[derive(Debug, Clone)]
pub struct Validated(pub(super) ());

/// One app, validated alone and against the other apps of its directory.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file it was read from.
    pub file: PathBuf,
    pub name: AppName,
    pub image: Image,
    /// Exec form; `None` means the image's own entrypoint and cmd.
    pub command: Option<Args>,
    /// In file order; names are unique.
    pub env: Vec<(EnvName, Arg)>,
    pub workdir: Option<AbsPath>,
    /// `None`: the image's `User`, else 0:0.
    pub user: Option<User>,
    pub hostname: Hostname,
    pub init: bool,
    /// The namespaces the app gets of its own; never contains duplicates.
    pub namespaces: Vec<Namespace>,
    pub user_namespace: Option<UserNamespace>,
    pub network: Network,
    pub resources: Resources,
    pub mounts: Vec<Mount>,
    pub devices: Vec<AbsPath>,
    pub readonly_rootfs: bool,
    pub capabilities: Capabilities,
    pub seccomp: Seccomp,
    pub healthcheck: Option<Healthcheck>,
    pub restart: Restart,
    pub depends_on: Vec<Dependency>,
    pub stop: Stop,
    pub logs: Logs,
    /// Signals from this app's processes to berth are acted on (they are ignored
    /// from every other app): for a device's management agent.
    pub allow_signals_to_berth: bool,
    pub(super) _validated: Validated,
}

#[derive(Debug, Clone)]
pub struct Image {
    /// As written in the manifest, for messages.
    pub path: String,
    /// Resolved against the manifest's directory.
    pub resolved: PathBuf,
    pub sha256: Digest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Namespace {
    Pid,
    Mount,
    Uts,
    Ipc,
    Net,
    User,
}

impl Manifest {
    /// Whether the app runs in berth's pid namespace (its `namespaces` lack `pid`).
    pub fn shares_pid_namespace(&self) -> bool {
        !self.namespaces.contains(&Namespace::Pid)
    }
}

impl Namespace {
    pub const fn name(self) -> &'static str {
        match self {
            Namespace::Pid => "pid",
            Namespace::Mount => "mount",
            Namespace::Uts => "uts",
            Namespace::Ipc => "ipc",
            Namespace::Net => "net",
            Namespace::User => "user",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename = "user_namespace")]
pub struct UserNamespace {
    pub uid_map: IdMap,
    pub gid_map: IdMap,
    /// The maps may give the app the host's root (host id 0): refused unless set.
    #[serde(default)]
    pub allow_host_root: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "network")]
pub struct Network {
    #[serde(default)]
    pub mode: NetworkMode,
    /// Host port forwards; only with `mode: bridge`.
    #[serde(default)]
    pub ports: Vec<PortMapping>,
}

/// Unset limits are not applied (the app may use what its parent cgroup allows).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "resources")]
pub struct Resources {
    pub memory: Option<Size>,
    #[serde(default)]
    pub memory_swap: Size,
    pub cpu: Option<Cpu>,
    pub cpu_weight: Option<Weight>,
    pub pids: Option<Count>,
    pub cpuset: Option<CpuSet>,
    pub io_weight: Option<Weight>,
}

/// A whole number of at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Count(u32);

impl Count {
    pub const fn get(self) -> u32 {
        self.0
    }
    /// `n` as a count, 0 raised to 1 (for defaults written in the code).
    pub const fn at_least_one(n: u32) -> Count {
        Count(if n == 0 { 1 } else { n })
    }
}

impl std::str::FromStr for Count {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<u32>()
            .ok()
            .filter(|&n| n >= 1)
            .map(Count)
            .ok_or_else(|| format!("invalid count {s:?}: use a whole number from 1 to 4294967295"))
    }
}
deserialize_from_str!(Count, "a whole number of at least 1");

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    Bind {
        source: AbsPath,
        target: AbsPath,
        readonly: bool,
        /// The source may be (or hold, or lie in) berth's own directories, `/proc`
        /// or `/sys`: refused unless set.
        allow_system_path: bool,
    },
    Tmpfs {
        target: AbsPath,
        size: Option<Size>,
        readonly: bool,
    },
    Volume {
        name: AppName,
        target: AbsPath,
        readonly: bool,
    },
}

impl Mount {
    pub fn target(&self) -> &AbsPath {
        match self {
            Mount::Bind { target, .. }
            | Mount::Tmpfs { target, .. }
            | Mount::Volume { target, .. } => target,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "capabilities")]
pub struct Capabilities {
    #[serde(default)]
    pub add: Vec<Capability>,
    #[serde(default)]
    pub drop: Vec<Capability>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Seccomp {
    #[default]
    Default,
    Unconfined,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Exec(Args),
    Tcp(Port),
    Http(HttpUrl),
}

#[derive(Debug, Clone)]
pub struct Healthcheck {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: Count,
    pub start_period: Duration,
    pub on_unhealthy: OnUnhealthy,
}

impl Healthcheck {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(30_000);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(5_000);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnhealthy {
    #[default]
    Restart,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename = "restart")]
pub struct Restart {
    #[serde(default)]
    pub policy: RestartPolicy,
    #[serde(default)]
    pub backoff: Backoff,
    #[serde(default = "Restart::default_max_restarts")]
    pub max_restarts: u32,
    #[serde(default = "Restart::default_window")]
    pub window: Duration,
}

impl Restart {
    fn default_max_restarts() -> u32 {
        10
    }
    fn default_window() -> Duration {
        Duration::from_millis(5 * 60_000)
    }
}

impl Default for Restart {
    fn default() -> Self {
        Restart {
            policy: RestartPolicy::default(),
            backoff: Backoff::default(),
            max_restarts: Restart::default_max_restarts(),
            window: Restart::default_window(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, rename = "backoff")]
pub struct Backoff {
    #[serde(default = "Backoff::default_initial")]
    pub initial: Duration,
    #[serde(default = "Backoff::default_max")]
    pub max: Duration,
}

impl Backoff {
    fn default_initial() -> Duration {
        Duration::from_millis(100)
    }
    fn default_max() -> Duration {
        Duration::from_millis(30_000)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Backoff::default_initial(),
            max: Backoff::default_max(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename = "dependency")]
pub struct Dependency {
    pub app: AppName,
    #[serde(default)]
    pub condition: Condition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    #[default]
    Started,
    Healthy,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, rename = "stop")]
pub struct Stop {
    #[serde(default = "Stop::default_signal")]
    pub signal: Signal,
    #[serde(default = "Stop::default_timeout")]
    pub timeout: Duration,
}

impl Stop {
    fn default_signal() -> Signal {
        Signal::TERM
    }
    fn default_timeout() -> Duration {
        Duration::from_millis(10_000)
    }
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            signal: Stop::default_signal(),
            timeout: Stop::default_timeout(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, rename = "logs")]
pub struct Logs {
    #[serde(default = "Logs::default_max_size")]
    pub max_size: Size,
    #[serde(default = "Logs::default_max_files")]
    pub max_files: Count,
}

impl Logs {
    /// The smallest `max_size`. Each rotation renames, removes and opens a file
    /// (directory updates on flash), so below a few KiB berth would rotate every few
    /// lines; a file takes a 4K block of flash whatever its size; and a line berth
    /// writes holds up to 4K of the app's text, which then still fits in one file.
    pub const MIN_MAX_SIZE: Size = Size::from_bytes(4 << 10);
    /// The largest `max_files`. Kept files are found by listing the log directory
    /// when an app's log is opened and are removed oldest first, so their number
    /// bounds that work and the directory's size; a hundred files is more history
    /// than anyone reads on a device (raise `max_size` to keep more).
    pub const MAX_MAX_FILES: u32 = 100;

    fn default_max_size() -> Size {
        Size::from_bytes(1 << 20)
    }
    fn default_max_files() -> Count {
        Count(3)
    }
}

impl Default for Logs {
    fn default() -> Self {
        Logs {
            max_size: Logs::default_max_size(),
            max_files: Logs::default_max_files(),
        }
    }
}

/// The shape of a manifest file, as parsed before validation.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename = "manifest",
    expecting = "a manifest: a mapping with name, image and the other app settings"
)]
pub(super) struct RawManifest {
    pub name: AppName,
    pub image: RawImage,
    pub command: Option<Args>,
    #[serde(default)]
    pub env: RawEnv,
    pub workdir: Option<AbsPath>,
    pub user: Option<User>,
    pub hostname: Option<Hostname>,
    #[serde(default)]
    pub init: bool,
    pub namespaces: Option<Vec<Namespace>>,
    pub user_namespace: Option<UserNamespace>,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub mounts: Vec<RawMount>,
    #[serde(default)]
    pub devices: Vec<AbsPath>,
    #[serde(default)]
    pub readonly_rootfs: bool,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default)]
    pub seccomp: Seccomp,
    pub healthcheck: Option<RawHealthcheck>,
    #[serde(default)]
    pub restart: Restart,
    #[serde(default)]
    pub depends_on: Vec<Dependency>,
    #[serde(default)]
    pub stop: Stop,
    #[serde(default)]
    pub logs: Logs,
    #[serde(default)]
    pub allow_signals_to_berth: bool,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename = "image",
    expecting = "a mapping with path and sha256"
)]
pub(super) struct RawImage {
    pub path: Arg,
    pub sha256: Digest,
}

/// `env:` as a list of pairs in file order (duplicate keys are refused before this).
#[derive(Debug, Default)]
pub(super) struct RawEnv(pub Vec<(EnvName, Arg)>);

impl<'de> Deserialize<'de> for RawEnv {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawEnv;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping of variable names to values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawEnv, A::Error> {
                let mut vars = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    vars.push(pair);
                }
                Ok(RawEnv(vars))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum MountType {
    Bind,
    Tmpfs,
    Volume,
}

/// A mount entry with every field any type may have; validation checks which apply.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename = "mount",
    expecting = "a mount: a mapping with type, target and the fields of its type"
)]
pub(super) struct RawMount {
    #[serde(rename = "type")]
    pub kind: MountType,
    pub source: Option<AbsPath>,
    pub target: AbsPath,
    pub name: Option<AppName>,
    pub size: Option<Size>,
    #[serde(default)]
    pub readonly: bool,
    #[serde(default)]
    pub allow_system_path: bool,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename = "healthcheck",
    expecting = "a mapping with one of exec, tcp or http and the probe timings"
)]
pub(super) struct RawHealthcheck {
    pub exec: Option<Args>,
    pub tcp: Option<Port>,
    pub http: Option<HttpUrl>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    #[serde(default = "RawHealthcheck::default_retries")]
    pub retries: Count,
    #[serde(default = "RawHealthcheck::default_start_period")]
    pub start_period: Duration,
    #[serde(default)]
    pub on_unhealthy: OnUnhealthy,
}

impl RawHealthcheck {
    fn default_retries() -> Count {
        Count(3)
    }
    fn default_start_period() -> Duration {
        Duration::from_millis(0)
    }
}
