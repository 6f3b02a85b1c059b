//! The command line: `berth COMMAND [ARGS]`, parsed by hand (no parser crate: bytes
//! matter on a board).

pub mod client;
pub mod control;
mod exec;
pub mod human;
pub mod images;

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use crate::image::ImageDefaults;
use crate::image::pack::{Compression, PackOptions};

/// The options of `berth pack`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackArgs {
    pub compression: Compression,
    pub keep_owners: bool,
    pub defaults: ImageDefaults,
}

impl PackArgs {
    pub fn options(&self) -> PackOptions {
        PackOptions {
            compression: self.compression,
            keep_owners: self.keep_owners,
            defaults: self.defaults.clone(),
        }
    }
}

/// Every command in the order of `berth help`: its name, its usage after `berth `
/// (empty: the control parser's, in [`control::COMMANDS`]) and what it does.
const COMMANDS: [(&str, &str, &str); 21] = [
    (
        "run",
        "run [--apps DIR]",
        "the supervisor, in the foreground (SIGTERM/SIGINT stop it)",
    ),
    (
        "check",
        "check [PATH...] [--images]",
        "validate manifests (files or directories; default: apps_dir); --images also \
         verifies every image's sha256",
    ),
    (
        "unpack",
        "unpack FILE --sha256 [sha256:]HEX [--state-dir DIR]",
        "verify and install one image ahead of time; prints its rootfs",
    ),
    (
        "pack",
        "pack ROOTFS_DIR -o FILE [--gzip|--zstd] [--keep-owners] [--env K=V]... \
         [--workdir DIR] [--user U] [--entrypoint CMD [ARG...]]",
        "make a reproducible image of a directory; prints its sha256",
    ),
    (
        "status",
        "",
        "every app's state, or everything about APP (alias: ps)",
    ),
    (
        "ps",
        "",
        "every app's state, or everything about APP (as status)",
    ),
    (
        "inspect",
        "",
        "the app's configuration as berth runs it (manifest over the image's defaults)",
    ),
    (
        "logs",
        "",
        "an app's captured output, running or not; -f follows it",
    ),
    (
        "exec",
        "",
        "run a command inside a running app's whole sandbox; -t for a terminal",
    ),
    ("start", "", "start an app by hand (also clears failed)"),
    (
        "stop",
        "",
        "stop an app; it stays stopped across reloads and reboots until started",
    ),
    ("restart", "", "stop an app, then start it"),
    ("events", "", "state changes as they happen"),
    ("reload", "", "re-read the apps directory (as SIGHUP)"),
    (
        "shutdown",
        "",
        "stop every app in reverse dependency order; as PID 1 then reboot (default), \
         power off or halt",
    ),
    (
        "metrics",
        "",
        "every app's and berth's own metrics, Prometheus text format",
    ),
    (
        "gc",
        "gc [--dry-run] [--state-dir DIR]",
        "delete images and app directories no manifest names (refuses unless every \
         manifest loads)",
    ),
    (
        "images",
        "images [--json] [--state-dir DIR]",
        "installed images: digest, format, size on disk, install time, apps using them",
    ),
    (
        "info",
        "info [--json]",
        "version, build and what this device offers (cgroups, kernel features, \
         directories, apps, images): paste it into a bug report",
    ),
    ("version", "version", "berth's version and build target"),
    (
        "help",
        "help [COMMAND]",
        "this list, or one command's usage",
    ),
];

/// The first line of the help, and of a usage error that names no command.
const GENERAL: &str = "usage: berth COMMAND [--config FILE] [ARGS]";

/// The whole help: every command with its usage and what it does, and the exit codes.
pub fn help() -> String {
    use std::fmt::Write as _;
    let mut out = format!("{GENERAL}\n\ncommands:\n");
    for (name, _, summary) in COMMANDS {
        if name == "ps" {
            continue;
        }
        let usage = usage_of(name);
        if usage.len() <= 34 {
            let _ = writeln!(out, "  {usage:<34} {summary}");
        } else {
            let _ = writeln!(out, "  {usage}\n  {:<34} {summary}", "");
        }
    }
    out.push_str(
        "\nEvery command takes --config FILE: berth's settings (default \
         /etc/berth/berth.yaml).\n`berth COMMAND --help` shows one command's usage.\n\
         exit status: 0 ok, 1 failed (an error, or an invalid manifest), 2 usage error",
    );
    out
}

/// One command's usage line and what it does (`berth COMMAND --help`).
pub fn command_help(name: &str) -> String {
    let summary = COMMANDS
        .iter()
        .find(|(c, _, _)| *c == name)
        .map_or("", |(_, _, s)| s);
    format!("usage: berth {}\n{summary}", usage_of(name))
}

/// The usage line of a command, without `berth `.
fn usage_of(name: &str) -> &'static str {
    let own = COMMANDS.iter().find(|(c, _, _)| *c == name);
    match own {
        Some((_, usage, _)) if !usage.is_empty() => usage,
        _ => control::COMMANDS
            .iter()
            .find(|(c, _)| *c == name)
            .map_or("", |(_, u)| u),
    }
}

/// The command of the table named `name`.
fn known(name: &str) -> Option<&'static str> {
    COMMANDS
        .iter()
        .find(|(c, _, _)| *c == name)
        .map(|(c, _, _)| *c)
}

/// A usage error of `command`: the problem and the command's one usage line.
fn bad(command: &str, problem: impl fmt::Display) -> UsageError {
    UsageError(format!(
        "{command}: {problem}\nusage: berth {}",
        usage_of(command)
    ))
}

/// A usage error that names no command.
fn general(problem: impl fmt::Display) -> UsageError {
    UsageError(format!(
        "{problem}\n{GENERAL} (`berth help` lists the commands)"
    ))
}

/// Whether `-h` or `--help` is among the options of `command` (not past `--`, nor in
/// the command `exec` runs or the entrypoint `pack` writes).
fn asks_help(command: &str, args: &[OsString]) -> bool {
    let mut words = 0;
    for arg in args {
        match arg.to_str() {
            Some("-h" | "--help") => return true,
            Some("--") => return false,
            Some("--entrypoint") if command == "pack" => return false,
            Some(a) if !a.starts_with('-') && command == "exec" => {
                words += 1;
                if words == 2 {
                    return false;
                }
            }
            _ => {}
        }
    }
    false
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Check {
        config: Option<PathBuf>,
        images: bool,
        paths: Vec<PathBuf>,
    },
    Unpack {
        config: Option<PathBuf>,
        file: PathBuf,
        sha256: String,
        state_dir: Option<PathBuf>,
    },
    Pack {
        rootfs: PathBuf,
        out: PathBuf,
        options: PackArgs,
    },
    Gc {
        config: Option<PathBuf>,
        state_dir: Option<PathBuf>,
        dry_run: bool,
    },
    Run {
        config: Option<PathBuf>,
        apps: Option<PathBuf>,
    },
    /// A command the running supervisor serves: its settings file (for `run_dir`), the
    /// command line to send (without `--config`), and what it says.
    Control {
        config: Option<PathBuf>,
        args: Vec<String>,
        command: control::Control,
    },
    /// `berth images`: the image store, read from the files (no supervisor needed).
    Images {
        config: Option<PathBuf>,
        state_dir: Option<PathBuf>,
        json: bool,
    },
    /// `berth info`: the build and this device, for bug reports.
    Info {
        config: Option<PathBuf>,
        json: bool,
    },
    /// The whole help, or one command's.
    Help(Option<&'static str>),
    Version,
}

/// A command line that cannot be understood; exit status 2.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut args = args.into_iter();
    let Some(command) = args.next() else {
        return Err(general("no command given"));
    };
    let command = command.to_string_lossy().into_owned();
    let args: Vec<OsString> = args.collect();
    if let Some(name) = known(&command).filter(|name| asks_help(name, &args)) {
        return Ok(Command::Help(Some(name)));
    }
    let args = args.into_iter();
    match command.as_str() {
        "check" => parse_check(args),
        "unpack" => parse_unpack(args),
        "pack" => parse_pack(args),
        "gc" => parse_gc(args),
        "run" => parse_run(args),
        "images" => parse_images(args),
        "info" => parse_info(args),
        "help" | "--help" | "-h" => parse_help(args),
        "version" | "--version" | "-V" => parse_version(args),
        other if control::is_control(other) => parse_control(other, args),
        other => Err(general(format_args!("unknown command {other:?}"))),
    }
}

/// A command for the supervisor: `--config FILE` is taken out (it tells the client
/// where the socket is), the rest is parsed here and sent as typed.
fn parse_control(
    command: &str,
    mut args: impl Iterator<Item = OsString>,
) -> Result<Command, UsageError> {
    let mut config = None;
    let mut sent = vec![command.to_owned()];
    while let Some(arg) = args.next() {
        // After `exec APP`, `--config` belongs to the command run in the app.
        let in_command = command == "exec" && sent.iter().skip(1).any(|a| !a.starts_with('-'));
        match arg.to_str() {
            Some(flag @ "--config") if !in_command => {
                config = Some(PathBuf::from(value(command, flag, &mut args)?));
            }
            _ => sent.push(text(command, command, arg)?),
        }
    }
    let parsed = control::parse(command, sent.get(1..).unwrap_or_default())?;
    Ok(Command::Control {
        config,
        args: sent,
        command: parsed,
    })
}

fn parse_check(mut args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let (mut config, mut images, mut paths) = (None, false, Vec::new());
    let mut options_done = false;
    while let Some(arg) = args.next() {
        match arg.to_str() {
            _ if options_done => paths.push(PathBuf::from(arg)),
            Some("--") => options_done = true,
            Some("--images") => images = true,
            Some(flag @ "--config") => {
                config = Some(PathBuf::from(value("check", flag, &mut args)?))
            }
            Some(flag) if flag.starts_with('-') => {
                return Err(bad("check", format_args!("unknown option {flag:?}")));
            }
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    Ok(Command::Check {
        config,
        images,
        paths,
    })
}

/// The value after `flag` of `command`, or a usage error.
fn value(
    command: &str,
    flag: &str,
    args: &mut impl Iterator<Item = OsString>,
) -> Result<OsString, UsageError> {
    args.next()
        .ok_or_else(|| bad(command, format_args!("{flag} needs a value")))
}

/// Text arguments (names, digests, environment entries) must be UTF-8.
fn text(command: &str, flag: &str, arg: OsString) -> Result<String, UsageError> {
    arg.into_string()
        .map_err(|a| bad(command, format_args!("{flag}: {a:?} is not UTF-8")))
}

fn parse_unpack(mut args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let (mut config, mut file, mut sha256, mut state_dir) = (None, None, None, None);
    let cmd = "unpack";
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some(flag @ "--sha256") => {
                sha256 = Some(text(cmd, flag, value(cmd, flag, &mut args)?)?)
            }
            Some(flag @ "--state-dir") => {
                state_dir = Some(PathBuf::from(value(cmd, flag, &mut args)?))
            }
            Some(flag @ "--config") => config = Some(PathBuf::from(value(cmd, flag, &mut args)?)),
            Some(flag) if flag.starts_with('-') => {
                return Err(bad(cmd, format_args!("unknown option {flag:?}")));
            }
            _ if file.is_none() => file = Some(PathBuf::from(arg)),
            _ => return Err(bad(cmd, format_args!("unexpected argument {arg:?}"))),
        }
    }
    let file = file.ok_or_else(|| bad(cmd, "needs a FILE"))?;
    let sha256 = sha256.ok_or_else(|| bad(cmd, "needs --sha256 HEX"))?;
    Ok(Command::Unpack {
        config,
        file,
        sha256,
        state_dir,
    })
}

fn parse_pack(mut args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let (mut rootfs, mut out) = (None, None);
    let mut options = PackArgs::default();
    let cmd = "pack";
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some(flag @ ("-o" | "--output")) => {
                out = Some(PathBuf::from(value(cmd, flag, &mut args)?))
            }
            Some("--gzip") => options.compression = Compression::Gzip,
            Some("--zstd") => options.compression = Compression::Zstd,
            Some("--keep-owners") => options.keep_owners = true,
            // Every command takes --config (docs/design.md, section 7, "Command line"); pack
            // needs no setting from it.
            Some(flag @ "--config") => drop(value(cmd, flag, &mut args)?),
            Some(flag @ "--env") => {
                let entry = text(cmd, flag, value(cmd, flag, &mut args)?)?;
                if entry.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
                    return Err(bad(cmd, format_args!("--env {entry:?}: use NAME=VALUE")));
                }
                options.defaults.env.push(entry);
            }
            Some(flag @ "--workdir") => {
                options.defaults.workdir = Some(text(cmd, flag, value(cmd, flag, &mut args)?)?)
            }
            Some(flag @ "--user") => {
                options.defaults.user = Some(text(cmd, flag, value(cmd, flag, &mut args)?)?)
            }
            Some(flag @ "--entrypoint") => {
                // The rest of the line: the program and its arguments, which may start with -.
                let rest: Result<Vec<String>, _> =
                    args.by_ref().map(|a| text(cmd, flag, a)).collect();
                options.defaults.entrypoint = rest?;
                if options.defaults.entrypoint.is_empty() {
                    return Err(bad(cmd, "--entrypoint needs a program"));
                }
            }
            Some(flag) if flag.starts_with('-') => {
                return Err(bad(cmd, format_args!("unknown option {flag:?}")));
            }
            _ if rootfs.is_none() => rootfs = Some(PathBuf::from(arg)),
            _ => return Err(bad(cmd, format_args!("unexpected argument {arg:?}"))),
        }
    }
    let rootfs = rootfs.ok_or_else(|| bad(cmd, "needs a ROOTFS_DIR"))?;
    let out = out.ok_or_else(|| bad(cmd, "needs -o FILE"))?;
    Ok(Command::Pack {
        rootfs,
        out,
        options,
    })
}

/// The options shared by the commands that read berth's files: `--config FILE`,
/// `--state-dir DIR` where `state_dir` is given, and flags (`--json`, `--dry-run`)
/// set in `flags` by name.
fn parse_options(
    cmd: &str,
    mut args: impl Iterator<Item = OsString>,
    mut state_dir: Option<&mut Option<PathBuf>>,
    flags: &mut [(&str, &mut bool)],
) -> Result<Option<PathBuf>, UsageError> {
    let mut config = None;
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some(flag @ "--config") => config = Some(PathBuf::from(value(cmd, flag, &mut args)?)),
            Some(flag @ "--state-dir") if state_dir.is_some() => {
                let dir = PathBuf::from(value(cmd, flag, &mut args)?);
                if let Some(slot) = state_dir.as_deref_mut() {
                    *slot = Some(dir);
                }
            }
            Some(a) if flags.iter().any(|(f, _)| *f == a) => {
                for (f, set) in flags.iter_mut() {
                    **set |= *f == a;
                }
            }
            Some(a) if a.starts_with('-') => {
                return Err(bad(cmd, format_args!("unknown option {a:?}")));
            }
            _ => return Err(bad(cmd, format_args!("unexpected argument {arg:?}"))),
        }
    }
    Ok(config)
}

fn parse_gc(args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let (mut state_dir, mut dry_run) = (None, false);
    let config = parse_options(
        "gc",
        args,
        Some(&mut state_dir),
        &mut [("--dry-run", &mut dry_run)],
    )?;
    Ok(Command::Gc {
        config,
        state_dir,
        dry_run,
    })
}

fn parse_images(args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let (mut state_dir, mut json) = (None, false);
    let config = parse_options(
        "images",
        args,
        Some(&mut state_dir),
        &mut [("--json", &mut json)],
    )?;
    Ok(Command::Images {
        config,
        state_dir,
        json,
    })
}

fn parse_info(args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut json = false;
    let config = parse_options("info", args, None, &mut [("--json", &mut json)])?;
    Ok(Command::Info { config, json })
}

fn parse_version(args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    parse_options("version", args, None, &mut [])?;
    Ok(Command::Version)
}

/// `berth help [COMMAND]`.
fn parse_help(mut args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let Some(arg) = args.next() else {
        return Ok(Command::Help(None));
    };
    let name = arg.to_string_lossy();
    match (known(&name), args.next()) {
        (Some(name), None) => Ok(Command::Help(Some(name))),
        (None, _) => Err(bad("help", format_args!("unknown command {name:?}"))),
        (Some(_), Some(extra)) => Err(bad("help", format_args!("unexpected argument {extra:?}"))),
    }
}

fn parse_run(mut args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let (mut config, mut apps) = (None, None);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some(flag @ "--config") => config = Some(PathBuf::from(value("run", flag, &mut args)?)),
            Some(flag @ "--apps") => apps = Some(PathBuf::from(value("run", flag, &mut args)?)),
            _ => return Err(bad("run", format_args!("unexpected argument {arg:?}"))),
        }
    }
    Ok(Command::Run { config, apps })
}

#[cfg(test)]
mod tests;
