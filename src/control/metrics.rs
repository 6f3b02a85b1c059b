//! The status snapshot as Prometheus metrics, in the text exposition format 0.0.4:
//! what `berth metrics` prints and what `metrics_listen` serves at `/metrics`.
//!
//! Each family is written once, its `# HELP` and `# TYPE` lines first, with one sample
//! per app (labelled `app`) or one for berth itself. A value berth does not know (the
//! memory of an app that is not running, the health of an app without a health check)
//! is left out rather than written as 0, so a graph shows a gap, not a false reading.

use std::fmt::Write as _;

use super::status::{AppStatus, OwnStatus};

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A number as `(count, digits)`: `count` units of `10^-digits` (`(1500, 3)` is 1.5).
type Fixed = (u64, u32);

/// A per-app family: its name, type, help text, and the app's value if it has one.
type AppFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&AppStatus) -> Option<Fixed>,
);

const APP_FAMILIES: [AppFamily; 7] = [
    ("berth_app_up", "gauge", "1 while the app runs.", |a| {
        Some((u64::from(a.state == "running"), 0))
    }),
    (
        "berth_app_healthy",
        "gauge",
        "1 healthy, 0 unhealthy or no verdict yet.",
        |a| match a.health {
            Some(h) if a.state == "running" => Some((u64::from(h == "healthy"), 0)),
            _ => None,
        },
    ),
    (
        "berth_app_restarts_total",
        "counter",
        "Restarts since berth started.",
        |a| Some((u64::from(a.restarts), 0)),
    ),
    (
        "berth_app_oom_kills_total",
        "counter",
        "Processes killed for memory since berth started.",
        |a| Some((a.oom_kills, 0)),
    ),
    ("berth_app_memory_bytes", "gauge", "Memory in use.", |a| {
        a.memory.map(|m| (m, 0))
    }),
    (
        "berth_app_memory_limit_bytes",
        "gauge",
        "Memory limit.",
        |a| a.memory_limit.map(|m| (m, 0)),
    ),
    (
        "berth_app_cpu_seconds_total",
        "counter",
        "CPU time of this run.",
        |a| a.cpu_ns.map(|ns| (ns, 9)),
    ),
];

/// The metrics of `apps` and of berth (`own`) as Prometheus text.
pub fn render(apps: &[AppStatus], own: &OwnStatus) -> String {
    let mut out = String::with_capacity(1024 + apps.len() * 400);
    header(
        &mut out,
        "berth_app_state",
        "gauge",
        "1 for the app's state.",
    );
    for app in apps {
        out.push_str("berth_app_state{app=");
        label(&mut out, &app.name);
        out.push_str(",state=");
        label(&mut out, app.state);
        out.push_str("} 1\n");
    }
    for (name, kind, help, value) in APP_FAMILIES {
        header(&mut out, name, kind, help);
        for app in apps {
            if let Some(v) = value(app) {
                out.push_str(name);
                out.push_str("{app=");
                label(&mut out, &app.name);
                out.push_str("} ");
                number(&mut out, v);
            }
        }
    }
    let own: [(&str, &str, Fixed); 3] = [
        (
            "berth_resident_memory_bytes",
            "berth's resident memory.",
            (own.rss, 0),
        ),
        ("berth_open_fds", "berth's open descriptors.", (own.fds, 0)),
        (
            "berth_uptime_seconds",
            "Time since berth started.",
            (own.uptime_ms, 3),
        ),
    ];
    for (name, help, v) in own {
        header(&mut out, name, "gauge", help);
        out.push_str(name);
        out.push(' ');
        number(&mut out, v);
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

/// `value` quoted as a label value: `\`, `"` and line feeds escaped.
fn label(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A sample's value and the line's end.
fn number(out: &mut String, (count, digits): Fixed) {
    let unit = 10u64.pow(digits);
    let _ = write!(out, "{}", count / unit);
    if digits > 0 {
        let _ = write!(out, ".{:01$}", count % unit, digits as usize);
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_once_with_its_help_and_type() {
        let apps = [
            AppStatus {
                name: "web".into(),
                state: "running",
                health: Some("healthy"),
                pid: Some(42),
                restarts: 2,
                memory: Some(5 << 20),
                memory_limit: Some(64 << 20),
                cpu_ns: Some(1_250_000_001),
                oom_kills: 1,
                ..AppStatus::default()
            },
            AppStatus {
                name: "db".into(),
                state: "running",
                health: Some("starting"),
                memory: Some(4096),
                cpu_ns: Some(0),
                ..AppStatus::default()
            },
            AppStatus {
                name: "cron".into(),
                state: "backoff",
                restarts: 7,
                ..AppStatus::default()
            },
        ];
        let own = OwnStatus {
            rss: 1_236_992,
            fds: 23,
            uptime_ms: 3_600_042,
        };
        let expected = r#"# HELP berth_app_state 1 for the app's state.
# TYPE berth_app_state gauge
berth_app_state{app="web",state="running"} 1
berth_app_state{app="db",state="running"} 1
berth_app_state{app="cron",state="backoff"} 1
# HELP berth_app_up 1 while the app runs.
# TYPE berth_app_up gauge
berth_app_up{app="web"} 1
berth_app_up{app="db"} 1
berth_app_up{app="cron"} 0
# HELP berth_app_healthy 1 healthy, 0 unhealthy or no verdict yet.
# TYPE berth_app_healthy gauge
berth_app_healthy{app="web"} 1
berth_app_healthy{app="db"} 0
# HELP berth_app_restarts_total Restarts since berth started.
# TYPE berth_app_restarts_total counter
berth_app_restarts_total{app="web"} 2
berth_app_restarts_total{app="db"} 0
berth_app_restarts_total{app="cron"} 7
# HELP berth_app_oom_kills_total Processes killed for memory since berth started.
# TYPE berth_app_oom_kills_total counter
berth_app_oom_kills_total{app="web"} 1
berth_app_oom_kills_total{app="db"} 0
berth_app_oom_kills_total{app="cron"} 0
# HELP berth_app_memory_bytes Memory in use.
# TYPE berth_app_memory_bytes gauge
berth_app_memory_bytes{app="web"} 5242880
berth_app_memory_bytes{app="db"} 4096
# HELP berth_app_memory_limit_bytes Memory limit.
# TYPE berth_app_memory_limit_bytes gauge
berth_app_memory_limit_bytes{app="web"} 67108864
# HELP berth_app_cpu_seconds_total CPU time of this run.
# TYPE berth_app_cpu_seconds_total counter
berth_app_cpu_seconds_total{app="web"} 1.250000001
berth_app_cpu_seconds_total{app="db"} 0.000000000
# HELP berth_resident_memory_bytes berth's resident memory.
# TYPE berth_resident_memory_bytes gauge
berth_resident_memory_bytes 1236992
# HELP berth_open_fds berth's open descriptors.
# TYPE berth_open_fds gauge
berth_open_fds 23
# HELP berth_uptime_seconds Time since berth started.
# TYPE berth_uptime_seconds gauge
berth_uptime_seconds 3600.042
"#;
        assert_eq!(render(&apps, &own), expected);
    }

    #[test]
    fn no_apps_leaves_the_families_empty() {
        let text = render(&[], &OwnStatus::default());
        assert!(!text.contains('{'), "{text}");
        assert_eq!(text.matches("# TYPE ").count(), 11);
        assert!(text.ends_with("berth_uptime_seconds 0.000\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        label(&mut out, "a\\b\"c\nd");
        assert_eq!(out, r#""a\\b\"c\nd""#);
    }
}
