//! The commands served by the running supervisor: their arguments, parsed the same way
//! by the client (to refuse a bad line before connecting) and by the supervisor (from
//! the request, which carries the command line as typed, without `--config`).

use super::UsageError;
use crate::manifest::units::Duration;

/// How `berth shutdown` ends, as PID 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Reboot as PID 1 (the default, as SIGTERM asks); as a service berth just exits.
    Reboot,
    Poweroff,
    Halt,
}

/// A command for the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Status {
        app: Option<String>,
        json: bool,
    },
    Inspect {
        app: String,
    },
    Logs {
        app: String,
        follow: bool,
        lines: Option<usize>,
        since: Option<Duration>,
    },
    Exec {
        app: String,
        tty: bool,
        user: Option<String>,
        argv: Vec<String>,
    },
    Start(String),
    Stop(String),
    Restart(String),
    Events {
        json: bool,
    },
    Reload,
    Shutdown(Shutdown),
    Metrics,
    Gc {
        dry_run: bool,
    },
}

/// The commands this module parses, each with its usage line.
pub const COMMANDS: [(&str, &str); 14] = [
    ("status", "status [APP] [--json]"),
    ("ps", "ps [APP] [--json]"),
    ("inspect", "inspect APP"),
    ("logs", "logs APP [-f] [-n N] [--since DURATION]"),
    ("exec", "exec APP [-t] [-u USER] [--] CMD [ARG...]"),
    ("start", "start APP"),
    ("stop", "stop APP"),
    ("restart", "restart APP"),
    ("events", "events [--json]"),
    ("reload", "reload"),
    ("shutdown", "shutdown [--reboot|--poweroff|--halt]"),
    ("metrics", "metrics"),
    // Through the supervisor when it runs; `crate::image_cmd::gc` otherwise.
    ("gc", "gc [--dry-run]"),
    ("images", "images [--json]"),
];

/// Whether `command` is one the supervisor serves.
pub fn is_control(command: &str) -> bool {
    COMMANDS.iter().any(|(c, _)| *c == command) && command != "images"
}

fn usage(command: &str, problem: impl std::fmt::Display) -> UsageError {
    let line = COMMANDS
        .iter()
        .find(|(c, _)| *c == command)
        .map_or("", |(_, u)| u);
    UsageError(format!("{command}: {problem}\nusage: berth {line}"))
}

/// Parses `args`, the arguments after `command`.
pub fn parse(command: &str, args: &[String]) -> Result<Control, UsageError> {
    let bad = |problem: String| usage(command, problem);
    let mut it = args.iter();
    let one_app = |it: &mut std::slice::Iter<'_, String>| -> Result<String, UsageError> {
        match (it.next(), it.next()) {
            (Some(app), None) if !app.starts_with('-') => Ok(app.clone()),
            (None, _) => Err(bad("needs an APP".into())),
            (Some(a), None) => Err(bad(format!("unknown option {a:?}"))),
            (Some(_), Some(extra)) => Err(bad(format!("unexpected argument {extra:?}"))),
        }
    };
    match command {
        "status" | "ps" => {
            let (mut app, mut json) = (None, false);
            for a in it {
                match a.as_str() {
                    "--json" => json = true,
                    o if o.starts_with('-') => return Err(bad(format!("unknown option {o:?}"))),
                    _ if app.is_none() => app = Some(a.clone()),
                    _ => return Err(bad(format!("unexpected argument {a:?}"))),
                }
            }
            Ok(Control::Status { app, json })
        }
        "inspect" => Ok(Control::Inspect {
            app: one_app(&mut it)?,
        }),
        "start" => Ok(Control::Start(one_app(&mut it)?)),
        "stop" => Ok(Control::Stop(one_app(&mut it)?)),
        "restart" => Ok(Control::Restart(one_app(&mut it)?)),
        "logs" => {
            let (mut app, mut follow, mut lines, mut since) = (None, false, None, None);
            while let Some(a) = it.next() {
                match a.as_str() {
                    "-f" | "--follow" => follow = true,
                    flag @ ("-n" | "--tail") => {
                        let v = it.next().ok_or_else(|| bad(format!("{flag} needs N")))?;
                        lines =
                            Some(v.parse().map_err(|_| {
                                bad(format!("{flag} {v:?}: not a number of lines"))
                            })?);
                    }
                    "--since" => {
                        let v = it
                            .next()
                            .ok_or_else(|| bad("--since needs a DURATION".into()))?;
                        since = Some(
                            v.parse::<Duration>()
                                .map_err(|e| bad(format!("--since: {e}")))?,
                        );
                    }
                    o if o.starts_with('-') => return Err(bad(format!("unknown option {o:?}"))),
                    _ if app.is_none() => app = Some(a.clone()),
                    _ => return Err(bad(format!("unexpected argument {a:?}"))),
                }
            }
            let app = app.ok_or_else(|| bad("needs an APP".into()))?;
            Ok(Control::Logs {
                app,
                follow,
                lines,
                since,
            })
        }
        "exec" => {
            let (mut app, mut tty, mut user) = (None, false, None);
            let mut argv = Vec::new();
            // Options until the first word after APP (or `--`): the rest is the command's.
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--" => {
                        argv.extend(it.by_ref().cloned());
                    }
                    "-t" | "--tty" | "-it" | "-ti" => tty = true,
                    // Docker's habit; stdin is always passed.
                    "-i" | "--interactive" => {}
                    flag @ ("-u" | "--user") => {
                        let v = it
                            .next()
                            .ok_or_else(|| bad(format!("{flag} needs a USER")))?;
                        user = Some(v.clone());
                    }
                    o if o.starts_with('-') => return Err(bad(format!("unknown option {o:?}"))),
                    _ if app.is_none() => app = Some(a.clone()),
                    _ => {
                        argv.push(a.clone());
                        argv.extend(it.by_ref().cloned());
                    }
                }
            }
            let app = app.ok_or_else(|| bad("needs an APP".into()))?;
            if argv.is_empty() {
                return Err(bad("needs a command to run".into()));
            }
            Ok(Control::Exec {
                app,
                tty,
                user,
                argv,
            })
        }
        "events" => {
            let mut json = false;
            for a in it {
                match a.as_str() {
                    "--json" => json = true,
                    _ => return Err(bad(format!("unexpected argument {a:?}"))),
                }
            }
            Ok(Control::Events { json })
        }
        "reload" | "metrics" => match it.next() {
            Some(a) => Err(bad(format!("unexpected argument {a:?}"))),
            None if command == "reload" => Ok(Control::Reload),
            None => Ok(Control::Metrics),
        },
        "shutdown" => {
            let mut mode = Shutdown::Reboot;
            for a in it {
                mode = match a.as_str() {
                    "--reboot" => Shutdown::Reboot,
                    "--poweroff" => Shutdown::Poweroff,
                    "--halt" => Shutdown::Halt,
                    _ => return Err(bad(format!("unexpected argument {a:?}"))),
                };
            }
            Ok(Control::Shutdown(mode))
        }
        "gc" => {
            let mut dry_run = false;
            for a in it {
                match a.as_str() {
                    "--dry-run" => dry_run = true,
                    _ => return Err(bad(format!("unexpected argument {a:?}"))),
                }
            }
            Ok(Control::Gc { dry_run })
        }
        other => Err(UsageError(format!("unknown command {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Control, UsageError> {
        let mut words = line.split(' ').map(str::to_owned);
        let command = words.next().unwrap();
        parse(&command, &words.collect::<Vec<_>>())
    }

    #[test]
    fn commands_parse() {
        assert_eq!(
            p("ps --json"),
            Ok(Control::Status {
                app: None,
                json: true
            })
        );
        assert_eq!(
            p("status web"),
            Ok(Control::Status {
                app: Some("web".into()),
                json: false
            })
        );
        assert_eq!(
            p("logs web -f -n 5 --since 10m"),
            Ok(Control::Logs {
                app: "web".into(),
                follow: true,
                lines: Some(5),
                since: Some(Duration::from_millis(600_000))
            })
        );
        assert_eq!(p("stop web"), Ok(Control::Stop("web".into())));
        assert_eq!(
            p("shutdown --poweroff"),
            Ok(Control::Shutdown(Shutdown::Poweroff))
        );
        assert_eq!(p("shutdown"), Ok(Control::Shutdown(Shutdown::Reboot)));
    }

    #[test]
    fn exec_takes_the_rest_as_the_command() {
        let want = |tty, user: Option<&str>, argv: &[&str]| {
            Ok(Control::Exec {
                app: "web".into(),
                tty,
                user: user.map(str::to_owned),
                argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            })
        };
        assert_eq!(p("exec web -- ls -l"), want(false, None, &["ls", "-l"]));
        assert_eq!(
            p("exec -t -u 1000 web sh -c -x"),
            want(true, Some("1000"), &["sh", "-c", "-x"])
        );
        assert_eq!(p("exec web id -u"), want(false, None, &["id", "-u"]));
        assert_eq!(p("exec -it web -- --odd"), want(true, None, &["--odd"]));
    }

    #[test]
    fn usage_errors_give_the_one_usage_line() {
        let e = p("logs").unwrap_err();
        assert_eq!(
            e.0,
            "logs: needs an APP\nusage: berth logs APP [-f] [-n N] [--since DURATION]"
        );
        assert_eq!(
            p("logs web -n x").unwrap_err().0.lines().next(),
            Some("logs: -n \"x\": not a number of lines")
        );
        assert_eq!(
            p("stop").unwrap_err().0.lines().next(),
            Some("stop: needs an APP")
        );
        assert_eq!(
            p("stop a b").unwrap_err().0.lines().next(),
            Some("stop: unexpected argument \"b\"")
        );
        assert_eq!(
            p("exec web").unwrap_err().0.lines().next(),
            Some("exec: needs a command to run")
        );
        assert_eq!(
            p("exec --bogus web ls").unwrap_err().0.lines().next(),
            Some("exec: unknown option \"--bogus\"")
        );
        assert_eq!(
            p("shutdown --now").unwrap_err().0.lines().next(),
            Some("shutdown: unexpected argument \"--now\"")
        );
    }
}
