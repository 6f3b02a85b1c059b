//! berth's own log lines, on stderr (the console when berth is PID 1):
//! `2026-11-22T05:20:01.123Z INFO  web: healthy`. A few lines instead of a logging
//! crate: UTC time with milliseconds, the level, the message; `RUST_LOG` (`error`,
//! `warn`, `info`, `debug`, `trace`) overrides the default level.

use std::io::Write as _;

struct Console;

static CONSOLE: Console = Console;

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
            crate::supervisor::logs::format_time(std::time::SystemTime::now()),
            record.level(),
            record.args()
        );
        // One write per line, so lines from a panic hook or a child do not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
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
