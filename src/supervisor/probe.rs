//! Health probes: the non-blocking building blocks the supervisor's loop drives. None
//! of them waits; each gives the loop a descriptor to watch or a child to reap, and the
//! loop owns the timeout.
//!
//! - **tcp and http** (`healthcheck.tcp: PORT`, `healthcheck.http: URL`):
//!   [`SocketTarget::of`] says where to connect (`127.0.0.1:PORT`; the URL's own host
//!   and port), [`SocketProbe::start`] starts the connection from inside the app's
//!   network namespace, and [`SocketProbe::on_ready`], called each time its socket is
//!   ready, connects, sends the http request and reads the status line, until it gives
//!   the outcome. The pieces: [`tcp_connect_addr_in`] and [`tcp_result`] for the
//!   connection, [`http_target`] for the address, `Host` and path of a URL,
//!   [`HttpResponse`] for the answer, [`verdict`]: 2xx and 3xx are healthy.
//! - **exec** (`healthcheck.exec: [CMD...]`): [`spawn_exec`] runs the command inside
//!   the app's whole sandbox (namespaces, root, cgroup, ids, capabilities,
//!   `no_new_privs`, seccomp), as the app's own process is, and returns one pid whose exit status is the
//!   result (0 healthy); reap it with the other children, [`kill_probe`] it at its
//!   timeout.

mod exec;
mod http;
mod runner;
mod tcp;

use std::fmt;
use std::io;

pub use exec::{
    EXEC_ARGV0, EXIT_KILLED, ExecProbe, RUNNER_ARGV0, SELF_EXE, kill_probe, spawn_exec,
};
pub use http::{
    HttpError, HttpResponse, HttpTarget, MAX_STATUS_LINE, http_request, http_target, verdict,
};
pub use runner::{Mode, runner_main};
pub use tcp::{
    SocketError, SocketOutcome, SocketProbe, SocketTarget, Wait, tcp_connect_addr_in,
    tcp_connect_in, tcp_result,
};

/// A failed call's errno as an I/O error (the caller's context names the call).
fn from(e: crate::sys::Error) -> io::Error {
    e.into()
}

/// `source` with the step that failed; the kind stays the source's.
fn context(what: &str, source: io::Error) -> io::Error {
    io::Error::new(
        source.kind(),
        Context {
            what: what.to_owned(),
            source,
        },
    )
}

/// A failed step and its cause.
#[derive(Debug)]
struct Context {
    what: String,
    source: io::Error,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for Context {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
