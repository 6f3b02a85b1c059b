//! The command line: `berth COMMAND [ARGS]`, parsed by hand (no parser crate: bytes
//! matter on a board).

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

pub const USAGE: &str = "\
usage: berth COMMAND [--config FILE] [ARGS]

commands:
  check [PATH...] [--images]   validate manifests (files or directories; default: apps_dir)
  run [--apps DIR]             the supervisor, in the foreground            (not built yet)
  unpack FILE --sha256 HEX     verify and install one image                 (not built yet)
  pack ROOTFS_DIR -o FILE      make an image from a directory               (not built yet)
  status [APP] [--json]        state of every app                           (not built yet)
  logs APP [-f] [-n N]         an app's captured output                     (not built yet)
  exec APP -- CMD...           run a command inside a running app           (not built yet)
  start|stop|restart APP       control one app                              (not built yet)
  reload                       re-read the apps directory                   (not built yet)
  gc                           delete unreferenced images                   (not built yet)
  metrics                      Prometheus text metrics                      (not built yet)
  shutdown [--reboot|--poweroff]  stop every app                            (not built yet)
  help, --help | version, --version

--config FILE   global settings (default /etc/berth/berth.yaml)
exit status: 0 ok, 1 failed or invalid, 2 usage error";

/// The commands of DESIGN.md §3 that this build does not have yet.
const NOT_BUILT: [&str; 13] = [
    "run", "unpack", "pack", "status", "logs", "exec", "start", "stop", "restart", "reload", "gc",
    "metrics", "shutdown",
];

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Check {
        config: Option<PathBuf>,
        images: bool,
        paths: Vec<PathBuf>,
    },
    Help,
    Version,
    /// A command of the design that this build does not have yet.
    NotBuilt(&'static str),
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
        return Err(UsageError("no command given".into()));
    };
    let command = command.to_string_lossy().into_owned();
    match command.as_str() {
        "check" => parse_check(args),
        "help" | "--help" | "-h" => Ok(Command::Help),
        "version" | "--version" | "-V" => Ok(Command::Version),
        other => match NOT_BUILT.iter().find(|&&c| c == other) {
            Some(c) => Ok(Command::NotBuilt(c)),
            None => Err(UsageError(format!("unknown command {other:?}"))),
        },
    }
}

fn parse_check(mut args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let (mut config, mut images, mut paths) = (None, false, Vec::new());
    let mut options_done = false;
    while let Some(arg) = args.next() {
        match arg.to_str() {
            _ if options_done => paths.push(PathBuf::from(arg)),
            Some("--") => options_done = true,
            Some("--images") => images = true,
            Some("--config") => match args.next() {
                Some(file) => config = Some(PathBuf::from(file)),
                None => return Err(UsageError("--config needs a FILE".into())),
            },
            Some(flag) if flag.starts_with('-') => {
                return Err(UsageError(format!("check: unknown option {flag:?}")));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn check_arguments() {
        assert_eq!(
            p(&["check", "a.yaml", "--images", "dir", "--config", "c.yaml"]),
            Ok(Command::Check {
                config: Some("c.yaml".into()),
                images: true,
                paths: vec!["a.yaml".into(), "dir".into()]
            })
        );
        assert_eq!(
            p(&["check", "--", "--odd-name.yaml"]),
            Ok(Command::Check {
                config: None,
                images: false,
                paths: vec!["--odd-name.yaml".into()]
            })
        );
        assert_eq!(
            p(&["check", "--imgs"]),
            Err(UsageError("check: unknown option \"--imgs\"".into()))
        );
        assert_eq!(
            p(&["check", "--config"]),
            Err(UsageError("--config needs a FILE".into()))
        );
    }

    #[test]
    fn other_commands() {
        assert_eq!(p(&[]), Err(UsageError("no command given".into())));
        assert_eq!(p(&["--help"]), Ok(Command::Help));
        assert_eq!(p(&["version"]), Ok(Command::Version));
        assert_eq!(p(&["run"]), Ok(Command::NotBuilt("run")));
        assert_eq!(
            p(&["frobnicate"]),
            Err(UsageError("unknown command \"frobnicate\"".into()))
        );
    }
}
