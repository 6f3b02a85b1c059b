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
        Err(bad("check", "unknown option \"--imgs\""))
    );
    assert_eq!(
        p(&["check", "--config"]),
        Err(bad("check", "--config needs a value"))
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
        Err(bad("unpack", "needs --sha256 HEX"))
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
    assert_eq!(p(&["pack", "root"]), Err(bad("pack", "needs -o FILE")));
    assert!(matches!(
        p(&["pack", "root", "--config", "/etc/b.yaml", "-o", "x"]),
        Ok(Command::Pack { .. })
    ));
    assert_eq!(
        p(&["pack", "root", "-o", "x", "--env", "=1"]),
        Err(bad("pack", "--env \"=1\": use NAME=VALUE"))
    );
}

#[test]
fn other_commands() {
    assert_eq!(p(&[]), Err(general("no command given")));
    assert_eq!(p(&["--help"]), Ok(Command::Help(None)));
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
        Err(bad("gc", "--state-dir needs a value"))
    );
    assert_eq!(
        p(&["gc", "--force"]),
        Err(bad("gc", "unknown option \"--force\""))
    );
    assert_eq!(
        p(&["frobnicate"]),
        Err(general("unknown command \"frobnicate\""))
    );
}

#[test]
fn a_usage_error_gives_the_one_usage_line() {
    assert_eq!(
        p(&["images", "--all"]).unwrap_err().0,
        "images: unknown option \"--all\"\nusage: berth images [--json] [--state-dir DIR]"
    );
    assert_eq!(
        p(&["logs"]).unwrap_err().0,
        "logs: needs an APP\nusage: berth logs APP [-f] [-n N] [--since DURATION]"
    );
    assert_eq!(
        p(&["unpack", "a.tar", "b.tar"]).unwrap_err().0,
        "unpack: unexpected argument \"b.tar\"\n\
         usage: berth unpack FILE --sha256 [sha256:]HEX [--state-dir DIR]"
    );
    assert_eq!(
        p(&["nope"]).unwrap_err().0,
        "unknown command \"nope\"\n\
         usage: berth COMMAND [--config FILE] [ARGS] (`berth help` lists the commands)"
    );
}

#[test]
fn help_for_one_command_or_all() {
    for line in [
        &["logs", "--help"][..],
        &["logs", "web", "-h"],
        &["help", "logs"],
    ] {
        assert_eq!(p(line), Ok(Command::Help(Some("logs"))), "{line:?}");
    }
    assert_eq!(p(&["help"]), Ok(Command::Help(None)));
    assert_eq!(p(&["images", "-h"]), Ok(Command::Help(Some("images"))));
    // The command run in an app, or an image's entrypoint, keeps its -h.
    assert!(matches!(
        p(&["exec", "web", "ls", "-h"]),
        Ok(Command::Control { .. })
    ));
    assert!(matches!(
        p(&["pack", "r", "-o", "x", "--entrypoint", "app", "--help"]),
        Ok(Command::Pack { .. })
    ));
    assert!(matches!(
        p(&["check", "--", "-h"]),
        Ok(Command::Check { .. })
    ));
    assert_eq!(
        p(&["help", "nope"]).unwrap_err().0,
        "help: unknown command \"nope\"\nusage: berth help [COMMAND]"
    );
    assert_eq!(
        command_help("logs"),
        "usage: berth logs APP [-f] [-n N] [--since DURATION]\n\
         an app's captured output, running or not; -f follows it"
    );
    let all = help();
    // Every command is listed once, with its usage (ps is status's alias).
    for (name, _, _) in COMMANDS.iter().filter(|(n, _, _)| *n != "ps") {
        assert!(
            all.contains(&format!("\n  {}", usage_of(name))),
            "{name} in\n{all}"
        );
    }
    for (name, _) in control::COMMANDS {
        assert!(known(name).is_some(), "{name} has a summary");
    }
    assert!(!all.contains("not built yet"));
    assert!(all.ends_with(
        "exit status: 0 ok, 1 failed (an error, or an invalid manifest), 2 usage error"
    ));
}

#[test]
fn images_info_and_version() {
    assert_eq!(
        p(&["images", "--json", "--state-dir", "/data", "--config", "c"]),
        Ok(Command::Images {
            config: Some("c".into()),
            state_dir: Some("/data".into()),
            json: true
        })
    );
    assert_eq!(
        p(&["info"]),
        Ok(Command::Info {
            config: None,
            json: false
        })
    );
    assert_eq!(
        p(&["info", "--state-dir", "x"])
            .unwrap_err()
            .0
            .lines()
            .next(),
        Some("info: unknown option \"--state-dir\"")
    );
    assert_eq!(p(&["version"]), Ok(Command::Version));
    assert_eq!(
        p(&["version", "x"]).unwrap_err().0.lines().next(),
        Some("version: unexpected argument \"x\"")
    );
}
