//! Scalar values of a manifest that carry units: sizes, durations, CPUs, signals.
//!
//! Each is a newtype parsed from the YAML scalar's text (never through a float),
//! so `0.1` CPUs is exactly 100 millicpus and `64M` is exactly 64 MiB.

use std::fmt;
use std::str::FromStr;

/// Implements `Deserialize` for a type that implements `FromStr<Err = String>`,
/// reading the YAML scalar as text so numbers keep their exact spelling.
macro_rules! deserialize_from_str {
    ($ty:ty, $expecting:expr) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$ty, E> {
                        s.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}
pub(crate) use deserialize_from_str;

/// Splits `"64M"` into `("64", "M")`: the leading ASCII digits and the rest.
fn split_number(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

/// A number of bytes: plain (`65536`) or with a K, M or G suffix (powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Size(u64);

impl Size {
    pub const fn from_bytes(bytes: u64) -> Self {
        Size(bytes)
    }
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid size {s:?}: use a number with K, M or G (powers of 1024) or plain bytes"
            )
        };
        let (digits, unit) = split_number(s);
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let shift = match unit {
            "" => 0,
            "K" | "k" => 10,
            "M" | "m" => 20,
            "G" | "g" => 30,
            _ => return Err(bad()),
        };
        n.checked_mul(1u64 << shift)
            .map(Size)
            .ok_or_else(|| format!("invalid size {s:?}: too large"))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (shift, unit) in [(30, "G"), (20, "M"), (10, "K")] {
            let scale = 1u64 << shift;
            if self.0 >= scale && self.0 % scale == 0 {
                return write!(f, "{}{unit}", self.0 / scale);
            }
        }
        write!(f, "{}", self.0)
    }
}
deserialize_from_str!(Size, "a size such as 512K, 64M or 1G");

/// A span of time with a unit: `250ms`, `10s`, `5m`, `1h`. Kept in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(u64);

impl Duration {
    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms)
    }
    pub const fn as_millis(self) -> u64 {
        self.0
    }
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        std::time::Duration::from_millis(d.0)
    }
}

impl FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid duration {s:?}: use a whole number with ms, s, m or h, e.g. 500ms or 10s"
            )
        };
        let (digits, unit) = split_number(s);
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let scale = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(bad()),
        };
        n.checked_mul(scale)
            .map(Duration)
            .ok_or_else(|| format!("invalid duration {s:?}: too large"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (scale, unit) in [(3_600_000, "h"), (60_000, "m"), (1_000, "s")] {
            if self.0 >= scale && self.0 % scale == 0 {
                return write!(f, "{}{unit}", self.0 / scale);
            }
        }
        write!(f, "{}ms", self.0)
    }
}
deserialize_from_str!(Duration, "a duration such as 500ms, 10s, 5m or 1h");

/// CPU quota in thousandths of a CPU: `0.5` and `500m` are both 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cpu(u32);

impl Cpu {
    pub const fn millis(self) -> u32 {
        self.0
    }
}

impl FromStr for Cpu {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid cpu {s:?}: use a number of CPUs (0.25, 2) or millicpus (250m), at least 1m"
            )
        };
        let millis: u64 = if let Some(m) = s.strip_suffix('m') {
            m.parse().map_err(|_| bad())?
        } else {
            let (whole, frac) = match s.split_once('.') {
                Some((_, "")) => return Err(bad()),
                Some(parts) => parts,
                None => (s, ""),
            };
            if whole.is_empty() && frac.is_empty() || frac.len() > 3 {
                return Err(bad());
            }
            let whole: u64 = if whole.is_empty() {
                0
            } else {
                whole.parse().map_err(|_| bad())?
            };
            let frac_digits: u64 = if frac.is_empty() {
                0
            } else {
                frac.parse().map_err(|_| bad())?
            };
            if !frac.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let scale = 10u64.pow(3 - frac.len() as u32);
            whole
                .checked_mul(1000)
                .and_then(|w| w.checked_add(frac_digits * scale))
                .ok_or_else(bad)?
        };
        match u32::try_from(millis) {
            Ok(0) | Err(_) => Err(bad()),
            Ok(m) => Ok(Cpu(m)),
        }
    }
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}m", self.0)
    }
}
deserialize_from_str!(
    Cpu,
    "a number of CPUs such as 0.5 or millicpus such as 500m"
);

/// The signals a manifest may name, with their numbers on this target. Job-control
/// signals (SIGSTOP, SIGTSTP, SIGCONT) are left out: as a stop signal they would
/// pause the app instead of ending it.
const SIGNALS: &[(&str, libc::c_int)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ABRT", libc::SIGABRT),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("WINCH", libc::SIGWINCH),
    ("PWR", libc::SIGPWR),
];

/// A signal by name: `SIGTERM` or `TERM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(libc::c_int);

impl Signal {
    pub const TERM: Signal = Signal(libc::SIGTERM);
    pub const fn number(self) -> libc::c_int {
        self.0
    }
}

impl FromStr for Signal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let short = s.strip_prefix("SIG").unwrap_or(s);
        SIGNALS
            .iter()
            .find(|(name, _)| *name == short)
            .map(|&(_, n)| Signal(n))
            .ok_or_else(|| {
                let names: Vec<_> = SIGNALS.iter().map(|(n, _)| format!("SIG{n}")).collect();
                format!("invalid signal {s:?}: use one of {}", names.join(", "))
            })
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match SIGNALS.iter().find(|&&(_, n)| n == self.0) {
            Some((name, _)) => write!(f, "SIG{name}"),
            None => write!(f, "signal {}", self.0),
        }
    }
}
deserialize_from_str!(Signal, "a signal name such as SIGTERM");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_powers_of_1024() {
        assert_eq!("512K".parse(), Ok(Size(512 * 1024)));
        assert_eq!("64M".parse(), Ok(Size(64 << 20)));
        assert_eq!("1G".parse(), Ok(Size(1 << 30)));
        assert_eq!("4096".parse(), Ok(Size(4096)));
        assert_eq!("0".parse(), Ok(Size(0)));
        assert_eq!(Size(64 << 20).to_string(), "64M");
        assert_eq!(Size(1536).to_string(), "1536");
    }

    #[test]
    fn sizes_reject_other_spellings() {
        for bad in ["64MB", "64MiB", "1.5G", "-1", "", "M", " 64M", "64 M", "1T"] {
            assert_eq!(
                bad.parse::<Size>(),
                Err(format!(
                    "invalid size {bad:?}: use a number with K, M or G (powers of 1024) or plain bytes"
                )),
                "{bad}"
            );
        }
        assert_eq!(
            "99999999999G".parse::<Size>(),
            Err("invalid size \"99999999999G\": too large".to_string())
        );
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!("100ms".parse(), Ok(Duration(100)));
        assert_eq!("10s".parse(), Ok(Duration(10_000)));
        assert_eq!("5m".parse(), Ok(Duration(300_000)));
        assert_eq!("2h".parse(), Ok(Duration(7_200_000)));
        assert_eq!(Duration(90_000).to_string(), "90s");
        assert_eq!(Duration(300_000).to_string(), "5m");
        assert_eq!(Duration(1500).to_string(), "1500ms");
        for bad in ["10", "1.5s", "10 s", "10sec", "s", "-1s", "1m30s"] {
            assert!(
                bad.parse::<Duration>()
                    .unwrap_err()
                    .starts_with("invalid duration"),
                "{bad}"
            );
        }
    }

    #[test]
    fn cpus_are_exact_millicpus() {
        assert_eq!("0.5".parse(), Ok(Cpu(500)));
        assert_eq!("0.25".parse(), Ok(Cpu(250)));
        assert_eq!("0.001".parse(), Ok(Cpu(1)));
        assert_eq!(".1".parse(), Ok(Cpu(100)));
        assert_eq!("2".parse(), Ok(Cpu(2000)));
        assert_eq!("1.5".parse(), Ok(Cpu(1500)));
        assert_eq!("250m".parse(), Ok(Cpu(250)));
        for bad in [
            "0", "0.0", "0m", "0.0001", "1.", "-1", "1.-5", "abc", "", ".", "m", "1e3", "0.5 ",
        ] {
            assert!(
                bad.parse::<Cpu>().unwrap_err().starts_with("invalid cpu"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn signals_by_name_with_or_without_prefix() {
        assert_eq!("SIGTERM".parse(), Ok(Signal(libc::SIGTERM)));
        assert_eq!("INT".parse(), Ok(Signal(libc::SIGINT)));
        assert_eq!(Signal(libc::SIGUSR1).to_string(), "SIGUSR1");
        assert!(
            "SIGFOO"
                .parse::<Signal>()
                .unwrap_err()
                .starts_with("invalid signal \"SIGFOO\": use one of SIGHUP")
        );
        assert!("sigterm".parse::<Signal>().is_err());
    }
}
