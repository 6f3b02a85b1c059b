//! berth's own log lines, on stderr (the console when berth is PID 1):
//! `2026-11-22T05:20:01.123Z INFO  web: healthy`. A few lines instead of a logging
//! crate: UTC time with milliseconds, the level, the message; `RUST_LOG` (`error`,
//! `warn`, `info`, `debug`, `trace`) overrides the default level.

use std::io::Write as _;
use std::sync::OnceLock;

struct Console;

static CONSOLE: Console = Console;

/// `/dev/kmsg`, when the config's `kmsg: true` asks for berth's lines in the kernel's
/// log too (where a board's crash dump or pstore picks them up).
static KMSG: OnceLock<std::fs::File> = OnceLock::new();

/// The kernel log line of a record: `<PRIORITY>berth: MESSAGE` (syslog priorities:
/// 3 error, 4 warning, 6 info, 7 debug).
pub fn kmsg_line(level: log::Level, message: &str) -> String {
    let priority = match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    };
    format!("<{priority}>berth: {message}\n")
}

/// Also writes every line to the kernel log at `path` (`/dev/kmsg`).
pub fn also_kmsg(path: &std::path::Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    let _ = KMSG.set(file);
    Ok(())
}

/// The kernel's setting for writers of `/dev/kmsg`: by default it keeps 10 lines in
/// 5 s of each open file and drops the rest (`ratelimit`), which a supervisor's start
/// or a crash loop passes at once.
pub const DEVKMSG_SETTING: &str = "/proc/sys/kernel/printk_devkmsg";

/// What berth as the device's init does about [`DEVKMSG_SETTING`] when it reads
/// `current` there: `Ok(Some("on"))` to lift the rate limit, `Ok(None)` to leave it,
/// `Err` with what the kernel will do to berth's lines.
pub fn devkmsg_change(current: &str) -> Result<Option<&'static str>, String> {
    match current.trim() {
        "ratelimit" => Ok(Some("on")),
        "on" => Ok(None),
        "off" => {
            Err("the kernel drops every line written to /dev/kmsg (printk.devkmsg=off)".into())
        }
        other => Err(format!("unknown printk_devkmsg setting {other:?}")),
    }
}

impl log::Log for Console {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "{} {:<5} {}\n",
            crate::timefmt::format_time(std::time::SystemTime::now()),
            record.level(),
            record.args()
        );
        // One write per line, so lines from a panic hook or a child do not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        if let Some(mut kmsg) = KMSG.get() {
            let text = kmsg_line(record.level(), &record.args().to_string());
            let _ = kmsg.write_all(text.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// Installs the logger with `default` as the level unless `RUST_LOG` names one.
pub fn init(default: log::LevelFilter) {
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    if log::set_logger(&CONSOLE).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_log_lines_carry_the_syslog_priority() {
        assert_eq!(kmsg_line(log::Level::Error, "x"), "<3>berth: x\n");
        assert_eq!(
            kmsg_line(log::Level::Warn, "web: unhealthy"),
            "<4>berth: web: unhealthy\n"
        );
        assert_eq!(
            kmsg_line(log::Level::Info, "web: healthy"),
            "<6>berth: web: healthy\n"
        );
        assert_eq!(kmsg_line(log::Level::Debug, "y"), "<7>berth: y\n");
    }

    #[test]
    fn the_kernels_rate_limit_on_kmsg_is_lifted_only_from_its_default() {
        assert_eq!(devkmsg_change("ratelimit\n"), Ok(Some("on")));
        assert_eq!(devkmsg_change("on\n"), Ok(None));
        assert_eq!(
            devkmsg_change("off\n"),
            Err("the kernel drops every line written to /dev/kmsg (printk.devkmsg=off)".into())
        );
        assert_eq!(
            devkmsg_change("sometimes"),
            Err("unknown printk_devkmsg setting \"sometimes\"".into())
        );
    }
}
