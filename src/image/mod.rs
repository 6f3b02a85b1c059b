//! Images: safe, verified, atomic unpacking into the content-addressed store, the
//! formats berth accepts (plain rootfs tar, docker-save, OCI layout), `berth pack`.
//!
//! - [`extract`]: writes tar entries into a directory, never outside it.
//! - [`layout`]: docker-save and OCI archives: blobs, manifests, platforms, layers.
//! - [`pack`]: makes a reproducible image from a directory.
//! - [`store`]: `images/sha256/<digest>/`: install once, atomically; leftovers; gc;
//!   the shared lock of an image in use.
//! - [`install`]: an install in a child process, its progress and result on a pipe.

pub mod extract;
pub mod hashing;
pub mod install;
pub mod layout;
pub mod pack;
pub mod process;
pub mod store;
pub mod unpack;
pub(crate) mod yaml;

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::path::PathBuf;

use serde::Deserialize;

use crate::manifest::units::Size;

pub use unpack::{Format, Unpacked, unpack};

/// Limits and permissions for extraction (global settings `images:` in berth.yaml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of file content one image may unpack to.
    pub max_size: Size,
    /// Most tar entries one image may have (all layers together).
    pub max_entries: u64,
    /// Create device nodes and fifos found in an image (else they are skipped).
    pub allow_devices: bool,
    /// Keep setuid and setgid bits (else they are cleared).
    pub allow_setuid: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_size: Size::from_bytes(2 << 30),
            max_entries: 200_000,
            allow_devices: false,
            allow_setuid: false,
        }
    }
}

/// What an image says about how to run it, used where the manifest is silent:
/// OCI/docker config `Entrypoint`, `Cmd`, `Env`, `WorkingDir`, `User`, or the
/// `.berth-image.yaml` entry that `berth pack` writes into a plain tar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDefaults {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    /// `NAME=value` strings, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// Everything that can go wrong with an image. Each variant says what was attempted
/// on what; messages are lower-case with no full stop.
#[derive(Debug)]
pub enum ImageError {
    /// A system call failed: `action` is what was attempted (e.g. "create directory").
    Io {
        action: Cow<'static, str>,
        path: PathBuf,
        source: io::Error,
    },
    /// The image file is a FIFO, a device, a directory or a socket: it is not read (a
    /// FIFO would block, `/dev/zero` never end).
    NotRegular {
        path: PathBuf,
        kind: &'static str,
    },
    /// A running app holds the image ([`store::Store::hold`]): it is not removed.
    Held {
        digest: String,
    },
    /// The install process ([`install::InstallJob`]) was killed before it reported a
    /// result (berth's shutdown, the OOM killer, a person).
    InstallKilled {
        signal: i32,
    },
    /// The install process exited without a result, or with a report berth cannot read.
    InstallFailed {
        why: String,
    },
    /// The install process's own error, as its text: the error it met, reported on
    /// its pipe (it reads as the same error met in-process).
    Reported {
        message: String,
    },
    /// One archive entry is refused or could not be written.
    Entry {
        path: String,
        offset: u64,
        why: String,
    },
    /// The archive itself is broken (truncated, bad header) after `last` at `offset`.
    Corrupt {
        last: Option<String>,
        offset: u64,
        source: io::Error,
    },
    TooLarge {
        limit: Size,
    },
    TooManyEntries {
        limit: u64,
    },
    DigestMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// A blob whose content does not match the digest that names or describes it.
    BlobMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// The archive is not a format berth knows, or its JSON is inconsistent.
    Format(String),
    /// A multi-platform image without the running platform.
    NoPlatform {
        wanted: String,
        available: Vec<String>,
    },
}

impl fmt::Display for ImageError {
    /// One line, whatever the archive held: control characters in names and in the
    /// messages of the tar reader (which can contain newlines) are escaped.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let text = Raw(self).to_string();
        if !text.chars().any(char::is_control) {
            return f.write_str(&text);
        }
        for c in text.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// The message before escaping.
struct Raw<'a>(&'a ImageError);

impl fmt::Display for Raw<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.0 {
            ImageError::Io {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            ImageError::NotRegular { path, kind } => {
                write!(f, "{} is not a regular file ({kind})", path.display())
            }
            ImageError::Held { digest } => {
                write!(f, "image {digest} is held by a running app")
            }
            ImageError::InstallKilled { signal } => {
                write!(f, "the install process was killed by signal {signal}")
            }
            ImageError::InstallFailed { why } => write!(f, "the install process failed: {why}"),
            ImageError::Reported { message } => f.write_str(message),
            ImageError::Entry { path, offset, why } => {
                write!(f, "entry {path:?} at offset {offset}: {why}")
            }
            ImageError::Corrupt {
                last: Some(last),
                offset,
                source,
            } => {
                write!(
                    f,
                    "corrupt archive after entry {last:?}, at offset {offset}: {source}"
                )
            }
            ImageError::Corrupt {
                last: None,
                offset,
                source,
            } => {
                write!(f, "corrupt archive at offset {offset}: {source}")
            }
            ImageError::TooLarge { limit } => {
                write!(f, "image unpacks to more than {limit} (images.max_size)")
            }
            ImageError::TooManyEntries { limit } => {
                write!(
                    f,
                    "image has more than {limit} entries (images.max_entries)"
                )
            }
            ImageError::DigestMismatch {
                path,
                expected,
                actual,
            } => write!(
                f,
                "image digest mismatch for {}: expected {expected}, got {actual}",
                path.display()
            ),
            ImageError::BlobMismatch {
                what,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "{what} digest mismatch: expected {expected}, got {actual}"
                )
            }
            ImageError::Format(why) => f.write_str(why),
            ImageError::NoPlatform { wanted, available } => {
                write!(
                    f,
                    "image has no {wanted} manifest; it has: {}",
                    available.join(", ")
                )
            }
        }
    }
}

impl std::error::Error for ImageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ImageError::Io { source, .. } | ImageError::Corrupt { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Shorthand for an [`ImageError::Io`].
pub(crate) fn io_error(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> ImageError {
    let path = path.into();
    move |source| ImageError::Io {
        action: action.into(),
        path,
        source,
    }
}

impl From<crate::input::InputError> for ImageError {
    fn from(e: crate::input::InputError) -> Self {
        match e {
            crate::input::InputError::Io { path, source } => ImageError::Io {
                action: "open image".into(),
                path,
                source,
            },
            crate::input::InputError::NotRegular { path, kind } => {
                ImageError::NotRegular { path, kind }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_stay_on_one_line() {
        let e = ImageError::Entry {
            path: "evil\nname".into(),
            offset: 512,
            why: "bad\r\nfield\u{1b}[2J".into(),
        };
        assert_eq!(
            e.to_string(),
            "entry \"evil\\nname\" at offset 512: bad\\r\\nfield\\u{1b}[2J"
        );
        let e = ImageError::TooManyEntries { limit: 5 };
        assert_eq!(
            e.to_string(),
            "image has more than 5 entries (images.max_entries)"
        );
    }
}
