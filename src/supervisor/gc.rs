//! `berth gc` while the supervisor runs: the collection runs in a child process (it
//! removes whole image trees, which may take a while), told what the supervisor keeps
//! beyond what the manifests name: the image and state of every app it runs (a running
//! version kept while its manifest is broken or changed) and the images being
//! installed. The child answers the client itself, on the client's own socket.

use std::collections::BTreeSet;
use std::ffi::{CString, OsString};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use super::core::Supervisor;
use crate::control::protocol::Frame;
use crate::image_cmd::Keep;
use crate::sys;

/// `argv[0]` of berth's executable started as the gc job.
pub const ARGV0: &str = "berth-gc";

/// The client's socket in the job.
const CLIENT_FD: i32 = 3;

impl Supervisor {
    /// Starts the gc job for the client of `token`, which it answers.
    pub(super) fn gc_job(&mut self, socket: OwnedFd, dry_run: bool) -> io::Result<i32> {
        let c = &self.config;
        let mut args: Vec<String> = vec![
            ARGV0.to_owned(),
            if dry_run { "dry" } else { "wet" }.to_owned(),
        ];
        for dir in [&c.state_dir, &c.run_dir, &c.log_dir, &self.apps_dir] {
            args.push(dir.display().to_string());
        }
        let digests: BTreeSet<String> = self
            .apps
            .values()
            .map(|a| a.manifest().image.sha256.to_string())
            .collect();
        args.push(digests.len().to_string());
        args.extend(digests);
        args.extend(self.apps.values().map(|a| a.name().to_owned()));
        let args: Vec<CString> = args
            .into_iter()
            .map(|a| CString::new(a).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput)))
            .collect::<io::Result<_>>()?;
        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let envp = [std::ptr::null()];
        let pid = sys::process::spawn(
            c"/proc/self/exe",
            &argv,
            &envp,
            Some(socket.as_fd()),
            &sys::signal::SigSet::of(&[]),
        )
        .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("start the gc job: {e}")))?;
        // Reaped with the other children, answered by itself.
        self.abandoned.push(pid);
        Ok(pid)
    }
}

/// Lines written as `o` frames to the client.
struct Frames(Vec<u8>);

impl Write for Frames {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        while let Some(end) = self.0.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.0.drain(..=end).collect();
            let text = String::from_utf8_lossy(line.get(..end).unwrap_or_default());
            sys::fd::write_all(CLIENT_FD, Frame::Out(text.into_owned()).encode().as_bytes())
                .map_err(io::Error::from)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The gc job's whole life: `DRY STATE RUN LOG APPS N DIGEST... NAME...` after
/// `argv[0]`; answers the client on descriptor 3 and exits.
pub fn gc_main(args: Vec<OsString>) -> ! {
    sys::fd::close_except(&mut [0, 1, 2, CLIENT_FD]);
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let code = run(&args).unwrap_or(2);
    let _ = sys::fd::write_all(CLIENT_FD, Frame::Exit(i32::from(code)).encode().as_bytes());
    sys::process::exit(0)
}

fn run(args: &[String]) -> Option<u8> {
    // The socket was the loop's, non-blocking: this job may wait for its reader.
    sys::fd::set_nonblocking(CLIENT_FD, false).ok()?;
    let (dry, rest) = args.split_first()?;
    let [state, run, log, apps, n, rest @ ..] = rest else {
        return None;
    };
    let n: usize = n.parse().ok()?;
    let digests = rest.get(..n)?;
    let names = rest.get(n..)?;
    let config = crate::config::Config {
        state_dir: PathBuf::from(state),
        run_dir: PathBuf::from(run),
        log_dir: PathBuf::from(log),
        apps_dir: PathBuf::from(apps),
        ..crate::config::Config::default()
    };
    let keep = Keep {
        digests: digests.iter().filter_map(|d| d.parse().ok()).collect(),
        apps: names.iter().cloned().collect(),
        supervised: true,
    };
    Some(crate::image_cmd::gc_keeping(
        &config,
        dry == "dry",
        &keep,
        &mut Frames(Vec::new()),
    ))
}
