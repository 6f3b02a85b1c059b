//! `init: true`: a tiny reaper as PID 1 of the app's pid namespace, with the app as its
//! child (Docker's `--init`, tini's job): it forwards every signal to the app, reaps
//! orphans, and exits with the app's status.
//!
//! The reaper is berth's own code, but never berth's binary file: the supervisor
//! copies its executable once into a sealed memfd (no write, grow or shrink can ever
//! be added) and the child execs that. A process in the container that opens
//! `/proc/1/exe` gets the sealed copy, so it cannot overwrite the host's berth
//! (CVE-2019-5736, runc's memfd fix).
//!
//! The reaper is started as `berth-init CHANNEL_FD APP_ARGV...` and keeps the launch
//! channel open across its own exec: the app's exec closes it (end-of-file: success),
//! or the reaper reports the failed exec on it, so the supervisor sees the app's exec
//! result either way.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::channel::{self, Step};
use super::child::exit_status;
use super::plan::{candidates, pointers};
use crate::image::process::DEFAULT_PATH;
use crate::sys::signal::SigSet;
use crate::sys::{self, Error};

/// The name the reaper runs under (`argv[0]`), which `main` dispatches on.
pub const ARGV0: &str = "berth-init";

/// A sealed, executable, in-memory copy of the program at `exe`.
pub fn sealed_copy(exe: &Path) -> io::Result<OwnedFd> {
    let mut memfd = File::from(sys::fs::memfd_sealable(c"berth-init")?);
    let program = std::fs::read(exe)?;
    if needs_loader(&program) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "init: true needs a statically linked berth (this one needs a dynamic loader, \
             which an app's root filesystem does not have; build for a *-linux-musl target)",
        ));
    }
    io::Write::write_all(&mut memfd, &program)?;
    sys::fs::seal_all(memfd.as_fd())?;
    Ok(memfd.into())
}

/// Whether the ELF program `bytes` names an interpreter (`PT_INTERP`): a dynamically
/// linked program, which cannot run inside an app's root.
pub fn needs_loader(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let Some(ident) = bytes.get(..6) else {
        return false;
    };
    if ident.get(..4) != Some(b"\x7fELF".as_slice()) {
        return false;
    }
    let wide = ident.get(4) == Some(&2);
    let little = ident.get(5) == Some(&1);
    let int = |at: usize, len: usize| -> Option<u64> {
        let field = bytes.get(at..at.checked_add(len)?)?;
        let mut value = 0u64;
        for (i, &b) in field.iter().enumerate() {
            let shift = if little { 8 * i } else { 8 * (len - 1 - i) };
            value |= u64::from(b) << shift;
        }
        Some(value)
    };
    // e_phoff, e_phentsize, e_phnum, and each header's p_type.
    let (phoff, entsize, count) = if wide {
        (int(0x20, 8), int(0x36, 2), int(0x38, 2))
    } else {
        (int(0x1c, 4), int(0x2a, 2), int(0x2c, 2))
    };
    let (Some(phoff), Some(entsize), Some(count)) = (phoff, entsize, count) else {
        return false;
    };
    (0..count).any(|n| {
        n.checked_mul(entsize)
            .and_then(|off| off.checked_add(phoff))
            .and_then(|at| usize::try_from(at).ok())
            .and_then(|at| int(at, 4))
            == Some(u64::from(PT_INTERP))
    })
}

/// The reaper's argv: `berth-init CHANNEL APP_ARGV...`.
pub fn argv(channel: RawFd, app: &[CString]) -> Vec<CString> {
    let mut argv = vec![
        CString::from(c"berth-init"),
        CString::new(channel.to_string()).unwrap_or_default(),
    ];
    argv.extend(app.iter().cloned());
    argv
}

/// The reaper's main: `args` are the arguments after `argv[0]`. Never returns.
pub fn main(args: Vec<OsString>) -> ! {
    let mut args = args.into_iter();
    let channel: RawFd = args
        .next()
        .and_then(|a| a.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or(-1);
    let app: Vec<CString> = args
        .filter_map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    // Every signal blocked: they are taken one by one with sigwaitinfo below and
    // forwarded. (Blocked signals reach a pid-namespace init even from outside, where
    // signals it does not handle are dropped.)
    let all = SigSet::all();
    // Cannot fail with a valid set; were it to, signals would reach the reaper's
    // default dispositions instead of the app.
    let _ = sys::signal::set_mask(&all);
    let envp_owned: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let path_var = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_owned());
    let program = app
        .first()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tries: Vec<CString> = candidates(&program, &path_var)
        .into_iter()
        .filter_map(|p| CString::new(p).ok())
        .collect();
    let argv = pointers(&app);
    let envp = pointers(&envp_owned);
    // SAFETY: the reaper is a single-threaded process: the child may run any code.
    let pid = match unsafe { sys::process::fork() } {
        Ok(pid) => pid,
        Err(e) => {
            channel::report(channel, Step::Fork, e);
            sys::process::exit(exit_status(Step::Fork, 0));
        }
    };
    if pid == 0 {
        // Best effort, each: the app runs either way.
        let _ = sys::signal::set_mask(&SigSet::of(&[]));
        // The app gets its own session and process group, as a shell would give it,
        // so that a signal to the group reaches the app's children too.
        let _ = sys::process::setsid();
        // The app's exec closes the channel: end-of-file tells the supervisor it ran.
        let _ = sys::fd::set_cloexec(channel);
        let mut failure = Error::new("execve", libc::ENOENT);
        for path in &tries {
            match sys::process::execve(path, &argv, &envp) {
                Error {
                    errno: libc::ENOENT | libc::ENOTDIR,
                    ..
                } => {}
                e @ Error {
                    errno: libc::EACCES,
                    ..
                } => failure = e,
                other => {
                    failure = other;
                    break;
                }
            }
        }
        channel::report(channel, Step::Exec, failure);
        sys::process::exit(exit_status(Step::Exec, failure.errno));
    }
    // Our copy of the channel must go, or the supervisor would never see end-of-file:
    // close it by closing every descriptor but the standard ones.
    sys::fd::close_except(&mut [0, 1, 2]);
    sys::process::exit(supervise(pid, &all))
}

/// Forwards signals to `app` and reaps everything until `app` exits; returns the
/// status to exit with (the app's code, or 128 + its signal).
fn supervise(app: libc::pid_t, all: &SigSet) -> i32 {
    loop {
        let Ok(sig) = sys::signal::wait(all) else {
            continue;
        };
        if sig != libc::SIGCHLD {
            // The app gone already (ESRCH): its SIGCHLD is on its way.
            let _ = sys::process::kill(app, sig);
            continue;
        }
        // SIGCHLDs merge: reap until nothing is left.
        while let Some((pid, status)) = sys::process::reap_any() {
            if pid == app {
                if let Some(code) = sys::process::exit_code(status) {
                    return code;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_program_needs_a_loader_and_a_static_one_does_not() {
        // This test binary is linked like the host's programs: with glibc, dynamic.
        let own = std::fs::read("/proc/self/exe").unwrap();
        assert_eq!(needs_loader(&own), cfg!(target_env = "gnu"));
        assert!(!needs_loader(b"#!/bin/sh\n"));
        assert!(!needs_loader(b"\x7fELF\x02\x01"));
    }
}
