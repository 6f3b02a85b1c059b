//! berth: a container supervisor for embedded and edge Linux.

use std::path::PathBuf;
use std::process::ExitCode;

use berth::cli::{self, Command};
use berth::{check, config, panic};

/// Exit statuses: as documented in the usage text.
const EXIT_INVALID: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    panic::install();
    let _ = simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Warn)
        .env()
        .init();
    force_panic_for_tests();

    let command = match cli::parse(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("berth: {e}\n{}", cli::USAGE);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match command {
        Command::Help => {
            println!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("berth {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::NotBuilt(name) => {
            eprintln!("berth {name}: not built yet in this version; see README.md, \"Status\"");
            ExitCode::from(EXIT_USAGE)
        }
        Command::Check {
            config,
            images,
            paths,
        } => run_check(config, images, paths),
    }
}

fn run_check(config: Option<PathBuf>, images: bool, mut paths: Vec<PathBuf>) -> ExitCode {
    if paths.is_empty() {
        let required = config.is_some();
        let file = config.unwrap_or_else(|| config::DEFAULT_PATH.into());
        match config::load(&file, required) {
            Ok(config) => paths.push(config.apps_dir),
            Err(problem) => {
                println!("{problem}");
                return ExitCode::from(EXIT_INVALID);
            }
        }
    }
    match check::check(&paths, images, &mut std::io::stdout().lock()) {
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
