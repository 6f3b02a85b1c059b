//! What the supervisor reports of each app and of itself: one snapshot type, rendered
//! as `berth status`'s table, as JSON (`--json`, stable field names) and as Prometheus
//! metrics.

/// One app as `berth status` shows it, taken by the supervisor at the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppStatus {
    pub name: String,
    /// The lifecycle phase: stopped, waiting, preparing, installing, starting, running,
    /// stopping, backoff, failed, exited.
    pub state: &'static str,
    /// Why, for waiting (what it waits for), failed (its last exit reasons), exited
    /// (its exit), stopped by hand (`stopped by berth stop`).
    pub why: Option<String>,
    /// healthy, unhealthy, starting (no verdict yet): only for a running app with a
    /// health check.
    pub health: Option<&'static str>,
    pub pid: Option<i32>,
    /// Since its process exec'd (running apps).
    pub uptime_ms: Option<u64>,
    /// Times it was started again since berth started (crashes, health, by hand).
    pub restarts: u32,
    /// Its cgroup's memory use now, and the limit it runs with.
    pub memory: Option<u64>,
    pub memory_limit: Option<u64>,
    /// CPU time used by its cgroup (this run), in nanoseconds.
    pub cpu_ns: Option<u64>,
    /// Processes killed by the kernel for memory, since berth started.
    pub oom_kills: u64,
    /// Its last exits, oldest first: (wall-clock time in ms since the epoch, reason).
    pub exits: Vec<(u64, String)>,
}

/// berth itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnStatus {
    /// Resident memory, bytes (`/proc/self/statm`).
    pub rss: u64,
    /// Open descriptors (`/proc/self/fd`).
    pub fds: u64,
    pub uptime_ms: u64,
}
