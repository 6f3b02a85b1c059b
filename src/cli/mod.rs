//! The command line: `berth COMMAND [ARGS]`, parsed by hand (no parser crate: bytes
//! matter on a board).

pub mod client;
pub mod control;
mod exec;

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

pub const USAGE: &str = "\
usage: berth COMMAND [--config FILE] [ARGS]

commands:
  check [PATH...] [--images]   validate manifests (files or directories; default: apps_dir)
  run [--apps DIR]             the supervisor, in the foreground (SIGTERM/SIGINT stop it)
  unpack FILE --sha256 HEX [--state-dir DIR]
                               verify and install one image; prints its rootfs
  pack ROOTFS_DIR -o FILE [--gzip|--zstd] [--keep-owners] [--env K=V]...
       [--workdir DIR] [--user U] [--entrypoint CMD [ARG...]]
                               make a reproducible image; prints its sha256
  gc [--state-dir DIR] [--dry-run]
                               delete images and app directories no manifest
                               names (refuses unless every manifest loads)
  status [APP] [--json]        state of every app                           (not built yet)
  logs APP [-f] [-n N]         an app's captured output                     (not built yet)
  exec APP -- CMD...           run a command inside a running app           (not built yet)
  start|stop|restart APP       control one app                              (not built yet)
  reload                       re-read the apps directory                   (not built yet)
  metrics                      Prometheus text metrics                      (not built yet)
  shutdown [--reboot|--poweroff]  stop every app                            (not built yet)
  help, --help | version, --version

--config FILE   global settings (default /etc/berth/berth.yaml)
exit status: 0 ok, 1 failed or invalid, 2 usage error";

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
    Help,
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
        return Err(UsageError("no command given".into()));
    };
    let command = command.to_string_lossy().into_owned();
    match command.as_str() {
        "check" => parse_check(args),
        "unpack" => parse_unpack(args),
        "pack" => parse_pack(args),
        "gc" => parse_gc(args),
        "run" => parse_run(args),
        "help" | "--help" | "-h" => Ok(Command::Help),
        "version" | "--version" | "-V" => Ok(Command::Version),
        other if control::is_control(other) => parse_control(other, args),
        other => Err(UsageError(format!("unknown command {other:?}"))),
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
                config = Some(PathBuf::from(value(flag, &mut args)?));
            }
            _ => sent.push(text(command, arg)?),
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

/// The value after `flag`, or a usage error.
fn value(flag: &str, args: &mut impl Iterator<Item = OsString>) -> Result<OsString, UsageError> {
    args.next()
        .ok_or_else(|| UsageError(format!("{flag} needs a value")))
}

/// Text arguments (names, digests, environment entries) must be UTF-8.
fn text(flag: &str, arg: OsString) -> Result<String, UsageError> {
    arg.into_string()
        .map_err(|a| UsageError(format!("{flag}: {a:?} is not UTF-8")))
}

fn parse_unpack(mut args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let (mut config, mut file, mut sha256, mut state_dir) = (None, None, None, None);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some(flag @ "--sha256") => sha256 = Some(text(flag, value(flag, &mut args)?)?),
            Some(flag @ "--state-dir") => state_dir = Some(PathBuf::from(value(flag, &mut args)?)),
            Some(flag @ "--config") => config = Some(PathBuf::from(value(flag, &mut args)?)),
            Some(flag) if flag.starts_with('-') => {
                return Err(UsageError(format!("unpack: unknown option {flag:?}")));
            }
            _ if file.is_none() => file = Some(PathBuf::from(arg)),
            _ => return Err(UsageError("unpack takes one FILE".into())),
        }
    }
    let file = file.ok_or_else(|| UsageError("unpack needs a FILE".into()))?;
    let sha256 = sha256.ok_or_else(|| UsageError("unpack needs --sha256 HEX".into()))?;
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
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some(flag @ ("-o" | "--output")) => out = Some(PathBuf::from(value(flag, &mut args)?)),
            Some("--gzip") => options.compression = Compression::Gzip,
            Some("--zstd") => options.compression = Compression::Zstd,
            Some("--keep-owners") => options.keep_owners = true,
            // Every command takes --config (docs/design.md, section 7, "Command line"); pack
            // needs no setting from it.
            Some(flag @ "--config") => drop(value(flag, &mut args)?),
            Some(flag @ "--env") => {
                let entry = text(flag, value(flag, &mut args)?)?;
                if entry.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
                    return Err(UsageError(format!("--env {entry:?}: use NAME=VALUE")));
                }
                options.defaults.env.push(entry);
            }
            Some(flag @ "--workdir") => {
                options.defaults.workdir = Some(text(flag, value(flag, &mut args)?)?)
            }
            Some(flag @ "--user") => {
                options.defaults.user = Some(text(flag, value(flag, &mut args)?)?)
            }
            Some(flag @ "--entrypoint") => {
                // The rest of the line: the program and its arguments, which may start with -.
                let rest: Result<Vec<String>, _> = args.by_ref().map(|a| text(flag, a)).collect();
                options.defaults.entrypoint = rest?;
                if options.defaults.entrypoint.is_empty() {
                    return Err(UsageError("--entrypoint needs a program".into()));
                }
            }
            Some(flag) if flag.starts_with('-') => {
                return Err(UsageError(format!("pack: unknown option {flag:?}")));
            }
            _ if rootfs.is_none() => rootfs = Some(PathBuf::from(arg)),
            _ => return Err(UsageError("pack takes one ROOTFS_DIR".into())),
        }
    }
    let rootfs = rootfs.ok_or_else(|| UsageError("pack needs a ROOTFS_DIR".into()))?;
    let out = out.ok_or_else(|| UsageError("pack needs -o FILE".into()))?;
    Ok(Command::Pack {
        rootfs,
        out,
        options,
    })
}

fn parse_gc(mut args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let (mut config, mut state_dir, mut dry_run) = (None, None, false);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some(flag @ "--config") => config = Some(PathBuf::from(value(flag, &mut args)?)),
            Some(flag @ "--state-dir") => state_dir = Some(PathBuf::from(value(flag, &mut args)?)),
            Some("--dry-run") => dry_run = true,
            _ => return Err(UsageError(format!("gc: unexpected argument {arg:?}"))),
        }
    }
    Ok(Command::Gc {
        config,
        state_dir,
        dry_run,
    })
}

fn parse_run(mut args: impl Iterator<Item = OsString>) -> Result<Command, UsageError> {
    let (mut config, mut apps) = (None, None);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some(flag @ "--config") => config = Some(PathBuf::from(value(flag, &mut args)?)),
            Some(flag @ "--apps") => apps = Some(PathBuf::from(value(flag, &mut args)?)),
            _ => return Err(UsageError(format!("run: unexpected argument {arg:?}"))),
        }
    }
    Ok(Command::Run { config, apps })
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
    fn image_commands() {
        assert_eq!(
            p(&[
                "unpack",
                "gw.tar",
                "--sha256",
                "abc",
                "--state-dir",
                "/data"
            ]),
            Ok(Command::Unpack {
                config: None,
                file: "gw.tar".into(),
                sha256: "abc".into(),
                state_dir: Some("/data".into())
            })
        );
        assert_eq!(
            p(&["unpack", "gw.tar"]),
            Err(UsageError("unpack needs --sha256 HEX".into()))
        );
        let Ok(Command::Pack {
            rootfs,
            out,
            options,
        }) = p(&[
            "pack",
            "root",
            "-o",
            "img.tar",
            "--zstd",
            "--env",
            "A=1",
            "--user",
            "1:1",
            "--entrypoint",
            "/bin/app",
            "--port",
            "80",
        ])
        else {
            panic!("pack did not parse");
        };
        assert_eq!((rootfs, out), ("root".into(), "img.tar".into()));
        assert_eq!(options.compression, Compression::Zstd);
        assert_eq!(options.defaults.env, ["A=1"]);
        assert_eq!(options.defaults.user.as_deref(), Some("1:1"));
        assert_eq!(options.defaults.entrypoint, ["/bin/app", "--port", "80"]);
        assert_eq!(
            p(&["pack", "root"]),
            Err(UsageError("pack needs -o FILE".into()))
        );
        assert!(matches!(
            p(&["pack", "root", "--config", "/etc/b.yaml", "-o", "x"]),
            Ok(Command::Pack { .. })
        ));
        assert_eq!(
            p(&["pack", "root", "-o", "x", "--env", "=1"]),
            Err(UsageError("--env \"=1\": use NAME=VALUE".into()))
        );
    }

    #[test]
    fn other_commands() {
        assert_eq!(p(&[]), Err(UsageError("no command given".into())));
        assert_eq!(p(&["--help"]), Ok(Command::Help));
        assert_eq!(p(&["version"]), Ok(Command::Version));
        assert_eq!(
            p(&["run"]),
            Ok(Command::Run {
                config: None,
                apps: None
            })
        );
        assert_eq!(
            p(&["run", "--apps", "a", "--config", "c"]),
            Ok(Command::Run {
                config: Some("c".into()),
                apps: Some("a".into())
            })
        );
        assert_eq!(
            p(&["status", "--config", "c", "web"]),
            Ok(Command::Control {
                config: Some("c".into()),
                args: vec!["status".into(), "web".into()],
                command: control::Control::Status {
                    app: Some("web".into()),
                    json: false
                }
            })
        );
        assert_eq!(
            p(&["exec", "web", "prog", "--config", "x"]),
            Ok(Command::Control {
                config: None,
                args: ["exec", "web", "prog", "--config", "x"]
                    .map(String::from)
                    .to_vec(),
                command: control::Control::Exec {
                    app: "web".into(),
                    tty: false,
                    user: None,
                    argv: ["prog", "--config", "x"].map(String::from).to_vec(),
                }
            })
        );
        assert_eq!(
            p(&["gc", "--state-dir"]),
            Err(UsageError("--state-dir needs a value".into()))
        );
        assert_eq!(
            p(&["gc", "--force"]),
            Err(UsageError("gc: unexpected argument \"--force\"".into()))
        );
        assert_eq!(
            p(&["frobnicate"]),
            Err(UsageError("unknown command \"frobnicate\"".into()))
        );
    }
}
