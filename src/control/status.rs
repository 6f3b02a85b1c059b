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

/// `1536` → `1.5KiB`: binary units with one decimal (rounded down), as `docker
/// stats` shows memory. Integer arithmetic only: no float formatting in the binary.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut scale: u64 = 1024;
    let mut unit = 0;
    while unit + 1 < UNITS.len() && n / scale >= 1024 {
        scale *= 1024;
        unit += 1;
    }
    // n * 10 / scale, without overflow.
    let tenths = n / scale * 10 + n % scale * 10 / scale;
    let name = UNITS.get(unit).copied().unwrap_or("B");
    format!("{}.{}{name}", tenths / 10, tenths % 10)
}

/// What a cell shows when there is nothing to show.
const NONE: &str = "-";

impl AppStatus {
    /// The state, with why for an app that waits, failed or was stopped by hand.
    pub fn state_text(&self) -> String {
        match (&self.why, self.state) {
            (Some(why), "waiting" | "failed" | "stopped") => format!("{} ({why})", self.state),
            _ => self.state.to_owned(),
        }
    }

    fn memory_text(&self) -> String {
        match (self.memory, self.memory_limit) {
            (Some(m), Some(l)) => format!("{} / {}", bytes(m), bytes(l)),
            (Some(m), None) => bytes(m),
            _ => NONE.to_owned(),
        }
    }

    fn cells(&self) -> [String; 9] {
        let or_none = |v: Option<String>| v.unwrap_or_else(|| NONE.to_owned());
        [
            self.name.clone(),
            self.state_text(),
            self.health.unwrap_or(NONE).to_owned(),
            or_none(self.pid.map(|p| p.to_string())),
            or_none(self.uptime_ms.map(crate::supervisor::policy::format_ms)),
            self.restarts.to_string(),
            self.memory_text(),
            or_none(
                self.cpu_ns
                    .map(|ns| crate::supervisor::policy::format_ms(ns / 1_000_000)),
            ),
            or_none(self.exits.last().map(|(_, why)| why.clone())),
        ]
    }

    /// The app as a JSON object (`berth status --json`); the field names are stable.
    pub fn json(&self) -> String {
        use super::json::{Object, array};
        let exits = array(self.exits.iter().map(|(at, why)| {
            Object::new()
                .str("time", &crate::timefmt::format_time(epoch_ms(*at)))
                .str("reason", why)
                .end()
        }));
        Object::new()
            .str("name", &self.name)
            .str("state", self.state)
            .opt_str("why", self.why.as_deref())
            .opt_str("health", self.health)
            .opt_num("pid", self.pid.and_then(|p| u64::try_from(p).ok()))
            .opt_num("uptime_ms", self.uptime_ms)
            .num("restarts", u64::from(self.restarts))
            .opt_num("memory_bytes", self.memory)
            .opt_num("memory_limit_bytes", self.memory_limit)
            .opt_num("cpu_ns", self.cpu_ns)
            .num("oom_kills", self.oom_kills)
            .raw("exits", &exits)
            .opt_str("last_exit", self.exits.last().map(|(_, why)| why.as_str()))
            .end()
    }
}

/// A wall-clock time in milliseconds since the epoch.
fn epoch_ms(ms: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)
}

/// `berth status`: an aligned table, a header and a line per app.
pub fn table(apps: &[AppStatus]) -> Vec<String> {
    const HEADER: [&str; 9] = [
        "NAME",
        "STATE",
        "HEALTH",
        "PID",
        "UPTIME",
        "RESTARTS",
        "MEMORY",
        "CPU",
        "LAST EXIT",
    ];
    let rows: Vec<[String; 9]> = apps.iter().map(AppStatus::cells).collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.zip(widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            for _ in cell.chars().count()..w {
                out.push(' ');
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = vec![line(&mut HEADER.iter().copied())];
    for row in &rows {
        out.push(line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// `berth status APP`: everything known of one app, a `key: value` line each;
/// `more` adds what only the supervisor knows (manifest, image, cgroup, ...).
pub fn detail(app: &AppStatus, more: &[(&str, String)]) -> Vec<String> {
    let cells = app.cells();
    let [_, state, health, pid, uptime, restarts, memory, cpu, _] = cells;
    let mut pairs: Vec<(&str, String)> = vec![
        ("name", app.name.clone()),
        ("state", state),
        ("health", health),
        ("pid", pid),
        ("uptime", uptime),
        ("restarts", restarts),
        ("memory", memory),
        ("cpu", cpu),
        ("oom kills", app.oom_kills.to_string()),
    ];
    pairs.extend(more.iter().cloned());
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{:<width$} {v}", format!("{k}:")))
        .collect();
    if app.exits.is_empty() {
        out.push(format!("{:<width$} {NONE}", "last exits:"));
    } else {
        out.push("last exits:".to_owned());
        for (at, why) in &app.exits {
            out.push(format!(
                "  {} {why}",
                crate::timefmt::format_time(epoch_ms(*at))
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> AppStatus {
        AppStatus {
            name: "web".into(),
            state: "running",
            health: Some("healthy"),
            pid: Some(42),
            uptime_ms: Some(75_000),
            restarts: 2,
            memory: Some(3 * 1024 * 1024 + 300 * 1024),
            memory_limit: Some(64 * 1024 * 1024),
            cpu_ns: Some(1_250_000_000),
            exits: vec![(0, "exited with status 3".into())],
            ..AppStatus::default()
        }
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(0), "0B");
        assert_eq!(bytes(1023), "1023B");
        assert_eq!(bytes(1536), "1.5KiB");
        assert_eq!(bytes(64 << 20), "64.0MiB");
    }

    #[test]
    fn the_table_is_aligned() {
        let front = AppStatus {
            name: "front-end".into(),
            state: "waiting",
            why: Some("for web to be healthy".into()),
            ..AppStatus::default()
        };
        let t = table(&[web(), front]);
        assert_eq!(
            t,
            [
                "NAME       STATE                            HEALTH   PID  UPTIME  RESTARTS  MEMORY            CPU   LAST EXIT",
                "web        running                          healthy  42   1m15s   2         3.2MiB / 64.0MiB  1.2s  exited with status 3",
                "front-end  waiting (for web to be healthy)  -        -    -       0         -                 -     -",
            ]
        );
    }

    #[test]
    fn json_has_every_field() {
        assert_eq!(
            web().json(),
            concat!(
                r#"{"name":"web","state":"running","why":null,"health":"healthy","pid":42,"#,
                r#""uptime_ms":75000,"restarts":2,"memory_bytes":3452928,"#,
                r#""memory_limit_bytes":67108864,"cpu_ns":1250000000,"oom_kills":0,"#,
                r#""exits":[{"time":"1970-01-01T00:00:00.000Z","reason":"exited with status 3"}],"#,
                r#""last_exit":"exited with status 3"}"#
            )
        );
    }

    #[test]
    fn detail_lists_everything() {
        let d = detail(&web(), &[("image", "sha256:ab".into())]);
        assert_eq!(d.first().unwrap(), "name:      web");
        assert!(d.contains(&"image:     sha256:ab".to_owned()), "{d:?}");
        assert_eq!(
            d.last().unwrap(),
            "  1970-01-01T00:00:00.000Z exited with status 3"
        );
    }
}
