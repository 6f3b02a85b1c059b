//! The privilege lines of `/proc/PID/status`, as a process sees its own (tests and the
//! launch probe read them to prove what an app got).

use std::fmt;

use super::CapSet;

/// The five capability sets and the `no_new_privs` flag of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcCaps {
    pub inheritable: CapSet,
    pub permitted: CapSet,
    pub effective: CapSet,
    pub bounding: CapSet,
    pub ambient: CapSet,
    pub no_new_privs: bool,
}

/// A `/proc/PID/status` text without the lines [`ProcCaps`] needs, or with one that
/// does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusError {
    Missing(&'static str),
    Invalid { field: &'static str, value: String },
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            StatusError::Missing(field) => write!(f, "process status has no {field} line"),
            StatusError::Invalid { field, value } => {
                write!(f, "process status line {field}: invalid value {value:?}")
            }
        }
    }
}

impl std::error::Error for StatusError {}

impl ProcCaps {
    /// Reads the `CapInh`, `CapPrm`, `CapEff`, `CapBnd`, `CapAmb` and `NoNewPrivs`
    /// lines (Linux 4.10 or later has them all); other lines are ignored.
    pub fn parse(status: &str) -> Result<ProcCaps, StatusError> {
        let mask = |field: &'static str| -> Result<CapSet, StatusError> {
            let value = value(status, field)?;
            CapSet::from_hex(value).ok_or_else(|| StatusError::Invalid {
                field,
                value: value.to_owned(),
            })
        };
        let no_new_privs = match value(status, "NoNewPrivs")? {
            "0" => false,
            "1" => true,
            other => {
                return Err(StatusError::Invalid {
                    field: "NoNewPrivs",
                    value: other.to_owned(),
                });
            }
        };
        Ok(ProcCaps {
            inheritable: mask("CapInh")?,
            permitted: mask("CapPrm")?,
            effective: mask("CapEff")?,
            bounding: mask("CapBnd")?,
            ambient: mask("CapAmb")?,
            no_new_privs,
        })
    }
}

/// The value of the line `field:\tvalue`, trimmed.
fn value<'a>(status: &'a str, field: &'static str) -> Result<&'a str, StatusError> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
        .ok_or(StatusError::Missing(field))
}
