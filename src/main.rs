//! berth: a container supervisor for embedded and edge Linux.

use std::path::PathBuf;
use std::process::ExitCode;

use berth::cli::{self, Command};
use berth::{check, config, image_cmd, panic};

/// Exit statuses: as documented in the usage text.
const EXIT_INVALID: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    // `init: true` apps run berth's sealed copy as their pid-namespace init.
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    if argv0 == berth::launch::reaper::ARGV0 {
        berth::launch::reaper::main(args.collect());
    }
    // The runner of an exec health check or of `berth exec`, started by the supervisor.
    if let Some(mode) = berth::supervisor::probe::Mode::of(&argv0) {
        berth::supervisor::probe::runner_main(mode, args.collect());
    }
    // An image install, started by the supervisor off its loop.
    if argv0 == berth::image::install::ARGV0 {
        berth::image::install::install_main(args.collect());
    }
    // `berth gc` run by the supervisor for a client.
    if argv0 == berth::supervisor::gc::ARGV0 {
        berth::supervisor::gc::gc_main(args.collect());
    }
    // As /sbin/modprobe, which the kernel runs to load a missing filesystem module.
    if std::path::Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == berth::modprobe::ARGV0)
    {
        let args: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
        return ExitCode::from(berth::modprobe::main(&args));
    }
    panic::install();
    // The kernel starts init with no arguments: as PID 1, `berth` alone is `berth run`.
    let command = if berth::pid1::is_init() && std::env::args_os().len() <= 1 {
        Ok(Command::Run {
            config: None,
            apps: None,
        })
    } else {
        cli::parse(std::env::args_os().skip(1))
    };
    // The supervisor tells what it does; the one-shot commands only warn.
    let level = match command {
        Ok(Command::Run { .. }) => log::LevelFilter::Info,
        _ => log::LevelFilter::Warn,
    };
    berth::console::init(level);
    force_panic_for_tests();

    let command = match command {
        Ok(command) => command,
        Err(e) => {
            eprintln!("berth: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match command {
        Command::Help(None) => {
            println!("{}", cli::help());
            ExitCode::SUCCESS
        }
        Command::Help(Some(name)) => {
            println!("{}", cli::command_help(name));
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("{}", berth::info::version());
            ExitCode::SUCCESS
        }
        Command::Images {
            config,
            state_dir,
            json,
        } => match load_config(config) {
            Ok(mut config) => {
                if let Some(dir) = state_dir {
                    config.state_dir = dir;
                }
                let stdout = &mut std::io::stdout().lock();
                ExitCode::from(cli::images::run(&config, json, stdout))
            }
            Err(status) => status,
        },
        Command::Info { config, json } => {
            let settings = config
                .clone()
                .unwrap_or_else(|| config::DEFAULT_PATH.into());
            match load_config(config) {
                Ok(config) => {
                    let stdout = &mut std::io::stdout().lock();
                    ExitCode::from(berth::info::run(&config, &settings, json, stdout))
                }
                Err(status) => status,
            }
        }
        Command::Control {
            config,
            args,
            command,
        } => match load_config(config) {
            Ok(config) => ExitCode::from(cli::client::run(&config.run_dir, &args, &command)),
            Err(status) => status,
        },
        Command::Check {
            config,
            images,
            paths,
        } => run_check(config, images, paths),
        Command::Unpack {
            config,
            file,
            sha256,
            state_dir,
        } => match load_config(config) {
            Ok(mut config) => {
                if let Some(dir) = state_dir {
                    config.state_dir = dir;
                }
                let stdout = &mut std::io::stdout().lock();
                ExitCode::from(image_cmd::unpack(&config, &file, &sha256, stdout))
            }
            Err(status) => status,
        },
        Command::Pack {
            rootfs,
            out,
            options,
        } => ExitCode::from(image_cmd::pack(
            &rootfs,
            &out,
            &options,
            &mut std::io::stdout().lock(),
        )),
        Command::Gc {
            config,
            state_dir,
            dry_run,
        } => match load_config(config) {
            // With the supervisor running (and its own state directory), through it: it
            // knows exactly what is in use.
            Ok(config) if state_dir.is_none() && cli::client::connect(&config.run_dir).is_ok() => {
                let mut args = vec!["gc".to_owned()];
                if dry_run {
                    args.push("--dry-run".to_owned());
                }
                let command = cli::control::Control::Gc { dry_run };
                ExitCode::from(cli::client::run(&config.run_dir, &args, &command))
            }
            Ok(mut config) => {
                if let Some(dir) = state_dir {
                    config.state_dir = dir;
                }
                let stdout = &mut std::io::stdout().lock();
                ExitCode::from(image_cmd::gc(&config, dry_run, stdout))
            }
            Err(status) => status,
        },
        Command::Run { config, apps } => match load_config(config) {
            Ok(config) => {
                let apps = apps.unwrap_or_else(|| config.apps_dir.clone());
                match berth::supervisor::run(config, apps) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("berth run: {e}");
                        ExitCode::from(EXIT_INVALID)
                    }
                }
            }
            Err(status) => status,
        },
    }
}

/// The global settings: `--config FILE` (which must exist) or the default file (which
/// may be missing: then the defaults). An error is printed; the exit status returned.
fn load_config(file: Option<PathBuf>) -> Result<config::Config, ExitCode> {
    let required = file.is_some();
    let file = file.unwrap_or_else(|| config::DEFAULT_PATH.into());
    config::load(&file, required).map_err(|problem| {
        eprintln!("{problem}");
        ExitCode::from(EXIT_INVALID)
    })
}

fn run_check(config: Option<PathBuf>, images: bool, mut paths: Vec<PathBuf>) -> ExitCode {
    // berth's directories are needed either way: no bind mount may reach them.
    let config = match load_config(config) {
        Ok(config) => config,
        Err(status) => return status,
    };
    let given = !paths.is_empty();
    if !given {
        paths.push(config.apps_dir.clone());
    }
    // A path that is not there is one clear error, not an invalid app.
    let missing = check::missing(&paths, given);
    if !missing.is_empty() {
        for line in missing {
            eprintln!("berth check: {line}");
        }
        return ExitCode::from(EXIT_INVALID);
    }
    let reserved = config.reserved(&config.apps_dir);
    match check::check(&paths, &reserved, images, &mut std::io::stdout().lock()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_INVALID),
        Err(e) => {
            eprintln!("berth check: cannot write the report to stdout: {e}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

/// `BERTH_TEST_PANIC=1` panics on purpose, so tests can prove what the panic hook does.
fn force_panic_for_tests() {
    if std::env::var_os("BERTH_TEST_PANIC").is_some() {
        #[allow(
            clippy::panic,
            reason = "the one deliberate panic, for testing the hook"
        )]
        {
            panic!("forced by BERTH_TEST_PANIC");
        }
    }
}
