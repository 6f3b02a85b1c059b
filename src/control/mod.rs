//! The control plane: the supervisor's Unix socket (`run_dir/berth.sock`, root only)
//! and what travels over it. The same binary is the client (`crate::cli::client`).
//!
//! Protocol, version 1 (`docs/control.md` has the whole text):
//! - The client connects and sends one request line: a JSON array of strings, the
//!   protocol version first, then the command line after `berth`:
//!   `["berth/1","status","web","--json"]`. `berth exec` attaches its three standard
//!   descriptors to the request (`SCM_RIGHTS`).
//! - The server answers with lines, each a frame: `o TEXT` (a line for the client's
//!   stdout), `e TEXT` (for its stderr), `x CODE` (the client's exit status; the server
//!   closes after it). Streams (`events`, `logs -f`) send `o` frames until the client
//!   hangs up.
//!
//! [`server`] serves it from the supervisor's loop without ever waiting for a client;
//! [`http`] serves [`metrics`] to Prometheus the same way (`metrics_listen`);
//! [`protocol`] encodes and decodes; [`status`] is what the supervisor reports of its
//! apps, rendered for people, for scripts (JSON) and for Prometheus ([`metrics`]).

pub(crate) mod http;
pub mod inspect;
pub mod json;
pub mod metrics;
pub mod protocol;
pub(crate) mod server;
pub mod status;

use std::path::{Path, PathBuf};

/// The socket's file name in `run_dir`.
pub const SOCKET: &str = "berth.sock";

/// The socket of the supervisor whose run directory is `run_dir`.
pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join(SOCKET)
}
