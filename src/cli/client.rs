//! The client side of the control commands: connect to the supervisor's socket, send
//! the command line, print what comes back, exit with the status it gives.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::control::Control;
use crate::control::protocol::{self, Frame};
use crate::sys;

/// Exit statuses, as the usage text documents them.
pub const EXIT_FAILED: u8 = 1;

/// Connects to the supervisor whose run directory is `run_dir`; the error is the line
/// to print.
pub fn connect(run_dir: &Path) -> Result<OwnedFd, String> {
    let path = crate::control::socket_path(run_dir);
    sys::net::unix_connect(path.as_os_str().as_bytes()).map_err(|e| match e.errno {
        libc::ENOENT | libc::ECONNREFUSED => {
            format!("berth is not running (no socket at {})", path.display())
        }
        libc::EACCES | libc::EPERM => {
            "permission denied: berth's control socket is root-only".to_owned()
        }
        _ => format!("berth: cannot reach berth at {}: {e}", path.display()),
    })
}

/// Runs one control command against the supervisor of `run_dir`: `args` is the command
/// line to send (without `--config`). Returns the exit status.
pub fn run(run_dir: &Path, args: &[String], command: &Control) -> u8 {
    let sock = match connect(run_dir) {
        Ok(sock) => sock,
        Err(line) => {
            eprintln!("{line}");
            return EXIT_FAILED;
        }
    };
    let request = protocol::encode_request(args);
    if let Control::Exec { tty, .. } = command {
        return super::exec::run(sock, &request, *tty);
    }
    match sys::fd::write_all(sock.as_raw_fd(), request.as_bytes()) {
        // Refused before the request went out (not root, too many clients): the
        // refusal is waiting to be read.
        Ok(())
        | Err(sys::Error {
            errno: libc::EPIPE | libc::ECONNRESET,
            ..
        }) => {}
        Err(e) => {
            eprintln!("berth: sending the request to berth: {e}");
            return EXIT_FAILED;
        }
    }
    relay(sock, matches!(command, Control::Shutdown(_)))
}

/// Prints the answer's frames until its exit status. `ends_with_berth`: the
/// supervisor closing the connection is the expected end (`shutdown`).
pub fn relay(sock: OwnedFd, ends_with_berth: bool) -> u8 {
    let reader = BufReader::new(std::fs::File::from(sock));
    let mut stdout = std::io::stdout().lock();
    for line in reader.split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line);
        match Frame::decode(&line) {
            Some(Frame::Out(text)) => {
                // A reader that went away (`| head`) ends the command quietly.
                if writeln!(stdout, "{text}")
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    return 0;
                }
            }
            Some(Frame::Err(text)) => eprintln!("{text}"),
            Some(Frame::Exit(code)) => return u8::try_from(code).unwrap_or(EXIT_FAILED),
            None => {
                eprintln!("berth: unexpected answer from berth: {line:?}");
                return EXIT_FAILED;
            }
        }
    }
    if ends_with_berth {
        return 0;
    }
    eprintln!("berth: berth closed the connection without an answer");
    EXIT_FAILED
}
