//! Validated newtypes for the string-shaped values of a manifest: names, digests,
//! paths, users, id maps, network modes, port forwards, capabilities, cpusets, URLs.

use std::fmt;
use std::str::FromStr;

use super::units::deserialize_from_str;

mod net;
pub use net::{HttpUrl, NetworkMode, Port, PortMapping, Protocol};

/// An app or volume name: `[a-z0-9][a-z0-9-]{0,31}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppName(String);

impl AppName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AppName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = s.len() <= 32
            && s.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(AppName(s.to_owned()))
        } else {
            Err(format!(
                "invalid name {s:?}: use 1 to 32 characters of a-z, 0-9 and -, starting with a letter or digit"
            ))
        }
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}
deserialize_from_str!(AppName, "a name such as gateway");

/// A sha256 digest as 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

impl Digest {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The digest of bytes already hashed.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        use fmt::Write as _;
        let mut hex = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            let _ = write!(hex, "{b:02x}");
        }
        Digest(hex)
    }
}

impl FromStr for Digest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Digest(s.to_ascii_lowercase()))
        } else {
            Err(format!(
                "invalid sha256 {s:?}: use the 64 hex digits printed by sha256sum"
            ))
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}
deserialize_from_str!(Digest, "64 hex digits of a sha256");

/// A host name: dot-separated labels of a-z, A-Z, 0-9 and -, at most 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostname(String);

impl Hostname {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&AppName> for Hostname {
    fn from(name: &AppName) -> Self {
        Hostname(name.0.clone())
    }
}

impl FromStr for Hostname {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if s.len() <= 64 && s.split('.').all(label_ok) {
            Ok(Hostname(s.to_owned()))
        } else {
            Err(format!(
                "invalid hostname {s:?}: use labels of a-z, 0-9 and - separated by dots, at most 64 characters"
            ))
        }
    }
}
deserialize_from_str!(Hostname, "a host name");

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EnvName(String);

impl EnvName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for EnvName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = s
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if ok {
            Ok(EnvName(s.to_owned()))
        } else {
            Err(format!(
                "invalid environment variable name {s:?}: use letters, digits and _, not starting with a digit"
            ))
        }
    }
}
deserialize_from_str!(EnvName, "an environment variable name");

/// A string with no NUL byte, as every argument and environment value must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg(String);

impl Arg {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Arg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.contains('\0') {
            Err(format!("invalid string {s:?}: contains a NUL byte"))
        } else {
            Ok(Arg(s.to_owned()))
        }
    }
}
deserialize_from_str!(Arg, "a string");

/// A command in exec form: a list of strings, the program first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args(Vec<Arg>);

impl Args {
    pub fn as_slice(&self) -> &[Arg] {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for Args {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Args;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a list of strings, program first, e.g. [\"/bin/app\", \"--port\", \"80\"]",
                )
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Args, A::Error> {
                let mut args = Vec::new();
                while let Some(arg) = seq.next_element()? {
                    args.push(arg);
                }
                Ok(Args(args))
            }
        }
        d.deserialize_seq(V)
    }
}

/// An absolute path with no `.`, `..` or empty components, and not `/` itself:
/// a mount target inside the app, a bind source or a device on the host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AbsPath(String);

impl AbsPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// True if `self` is `other` or lies below it (component-wise, so `/data2` is not
    /// below `/data`).
    pub fn is_within(&self, other: &AbsPath) -> bool {
        self.0 == other.0
            || self
                .0
                .strip_prefix(other.0.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

impl FromStr for AbsPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let Some(rest) = s.strip_prefix('/') else {
            return Err(format!(
                "invalid path {s:?}: must be absolute (start with /)"
            ));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() {
            return Err(format!("invalid path {s:?}: must not be / itself"));
        }
        if s.contains('\0') {
            return Err(format!("invalid path {s:?}: contains a NUL byte"));
        }
        if let Some(c) = rest
            .split('/')
            .find(|c| c.is_empty() || *c == "." || *c == "..")
        {
            return Err(format!(
                "invalid path {s:?}: must not contain {c:?} components"
            ));
        }
        Ok(AbsPath(format!("/{rest}")))
    }
}

impl fmt::Display for AbsPath {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}
deserialize_from_str!(AbsPath, "an absolute path");

/// The numeric user an app runs as: `uid:gid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
}

impl FromStr for User {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid user {s:?}: use numeric uid:gid, e.g. 1000:1000");
        let (uid, gid) = s.split_once(':').ok_or_else(bad)?;
        Ok(User {
            uid: uid.parse().map_err(|_| bad())?,
            gid: gid.parse().map_err(|_| bad())?,
        })
    }
}
deserialize_from_str!(User, "numeric uid:gid");

/// One line of a uid_map/gid_map: `count` ids from `inside` map to `outside`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// A user-namespace id map: `inside:outside:count`, several separated by commas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMap(Vec<IdRange>);

impl IdMap {
    pub fn ranges(&self) -> &[IdRange] {
        &self.0
    }
    /// The host id that `inside` maps to, if any.
    pub fn to_host(&self, inside: u32) -> Option<u32> {
        self.0
            .iter()
            .find(|r| inside >= r.inside && inside - r.inside < r.count)
            .map(|r| r.outside + (inside - r.inside))
    }
    /// The id inside the namespace that the host id `outside` maps to, if any.
    pub fn from_host(&self, outside: u32) -> Option<u32> {
        self.0
            .iter()
            .find(|r| outside >= r.outside && outside - r.outside < r.count)
            .map(|r| r.inside + (outside - r.outside))
    }
}

impl FromStr for IdMap {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut ranges: Vec<IdRange> = Vec::new();
        let several = s.contains(',');
        for part in s.split(',').map(str::trim) {
            let bad = |why: &str| match several {
                true => format!("invalid id map {s:?}: {part:?} {why}"),
                false => format!("invalid id map {s:?}: {why}"),
            };
            let fields: Vec<&str> = part.split(':').collect();
            let [inside, outside, count] = fields.as_slice() else {
                return Err(bad("is not inside:outside:count, e.g. 0:100000:65536"));
            };
            let num = |t: &str| {
                t.parse::<u32>()
                    .map_err(|_| bad("is not inside:outside:count, e.g. 0:100000:65536"))
            };
            let r = IdRange {
                inside: num(inside)?,
                outside: num(outside)?,
                count: num(count)?,
            };
            if r.count == 0 {
                return Err(bad("maps no ids (count 0)"));
            }
            let end = |start: u32| u64::from(start) + u64::from(r.count);
            if end(r.inside) > 1 << 32 || end(r.outside) > 1 << 32 {
                return Err(bad("runs past id 4294967295"));
            }
            let overlaps = |a: u32, b: u32, n: u32| {
                u64::from(a) < u64::from(b) + u64::from(n) && u64::from(b) < end(a)
            };
            if ranges.iter().any(|o| {
                overlaps(r.inside, o.inside, o.count) || overlaps(r.outside, o.outside, o.count)
            }) {
                return Err(bad("overlaps an earlier range"));
            }
            ranges.push(r);
        }
        if ranges.len() > 340 {
            return Err(format!(
                "invalid id map {s:?}: the kernel takes at most 340 ranges"
            ));
        }
        Ok(IdMap(ranges))
    }
}
deserialize_from_str!(IdMap, "an id map such as 0:100000:65536");

/// Capability names in kernel order: the index is the capability number.
const CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// A capability name (`NET_ADMIN` or `CAP_NET_ADMIN`), or `ALL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    All,
    One(u8),
}

impl FromStr for Capability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let short = s.strip_prefix("CAP_").unwrap_or(s);
        if short == "ALL" {
            return Ok(Capability::All);
        }
        CAPABILITIES
            .iter()
            .position(|&c| c == short)
            .and_then(|i| u8::try_from(i).ok())
            .map(Capability::One)
            .ok_or_else(|| format!("invalid capability {s:?}: use ALL or a name such as NET_BIND_SERVICE (see capabilities(7))"))
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Capability::All => f.write_str("ALL"),
            Capability::One(n) => match CAPABILITIES.get(usize::from(*n)) {
                Some(name) => f.write_str(name),
                None => write!(f, "capability {n}"),
            },
        }
    }
}
deserialize_from_str!(Capability, "a capability name such as NET_BIND_SERVICE");

/// A cpuset list as the kernel writes it: `0-1,3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSet(String);

impl CpuSet {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CpuSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid cpuset {s:?}: use CPU numbers and ranges such as 0-1,3");
        let cpu = |t: &str| t.parse::<u16>().ok().filter(|&n| n < 4096);
        for part in s.split(',') {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            match (cpu(lo), cpu(hi)) {
                (Some(lo), Some(hi)) if lo <= hi => {}
                _ => return Err(bad()),
            }
        }
        Ok(CpuSet(s.to_owned()))
    }
}
deserialize_from_str!(CpuSet, "a cpuset such as 0-1,3");

/// A relative weight from 1 to 10000 (cgroup v2's range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weight(u16);

impl Weight {
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl FromStr for Weight {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<u16>()
            .ok()
            .filter(|w| (1..=10000).contains(w))
            .map(Weight)
            .ok_or_else(|| format!("invalid weight {s:?}: use a number from 1 to 10000"))
    }
}
deserialize_from_str!(Weight, "a weight from 1 to 10000");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names() {
        assert_eq!("gateway".parse::<AppName>().unwrap().as_str(), "gateway");
        assert!("0-a".parse::<AppName>().is_ok());
        assert!("a".repeat(32).parse::<AppName>().is_ok());
        for bad in ["", "-a", "Gateway", "a_b", "a.b", &"a".repeat(33)] {
            assert!(
                bad.parse::<AppName>()
                    .unwrap_err()
                    .starts_with("invalid name"),
                "{bad}"
            );
        }
    }

    #[test]
    fn digests_are_64_hex() {
        let d: Digest = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
            .parse()
            .unwrap();
        assert_eq!(
            d.as_str(),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert_eq!(Digest::from_bytes(&[0, 1, 0xab]).as_str(), "0001ab");
        assert!("9f86".parse::<Digest>().is_err());
        assert!("g".repeat(64).parse::<Digest>().is_err());
    }

    #[test]
    fn abs_paths() {
        assert_eq!(
            "/var/lib/x/".parse::<AbsPath>().unwrap().as_str(),
            "/var/lib/x"
        );
        assert_eq!(
            "tmp".parse::<AbsPath>(),
            Err("invalid path \"tmp\": must be absolute (start with /)".into())
        );
        assert_eq!(
            "/a/../b".parse::<AbsPath>(),
            Err("invalid path \"/a/../b\": must not contain \"..\" components".into())
        );
        assert_eq!(
            "/a//b".parse::<AbsPath>(),
            Err("invalid path \"/a//b\": must not contain \"\" components".into())
        );
        assert!("/".parse::<AbsPath>().is_err());
        let p = |s: &str| s.parse::<AbsPath>().unwrap();
        assert!(p("/data/x").is_within(&p("/data")));
        assert!(p("/data").is_within(&p("/data")));
        assert!(!p("/data2").is_within(&p("/data")));
    }

    #[test]
    fn users_and_id_maps() {
        assert_eq!(
            "1000:100".parse(),
            Ok(User {
                uid: 1000,
                gid: 100
            })
        );
        assert!("1000".parse::<User>().is_err());
        assert!("nobody:nogroup".parse::<User>().is_err());
        let m: IdMap = "0:100000:65536, 65536:300000:1".parse().unwrap();
        assert_eq!(m.ranges().len(), 2);
        assert_eq!(m.to_host(0), Some(100000));
        assert_eq!(m.to_host(65535), Some(165535));
        assert_eq!(m.to_host(65536), Some(300000));
        assert_eq!(m.to_host(65537), None);
        assert_eq!(
            "0:100000".parse::<IdMap>(),
            Err(
                "invalid id map \"0:100000\": is not inside:outside:count, e.g. 0:100000:65536"
                    .into()
            )
        );
        assert_eq!(
            "0:1:0".parse::<IdMap>(),
            Err("invalid id map \"0:1:0\": maps no ids (count 0)".into())
        );
        assert!(
            "0:100:10,5:200:10"
                .parse::<IdMap>()
                .unwrap_err()
                .ends_with("overlaps an earlier range")
        );
        assert!(
            "0:4294967295:2"
                .parse::<IdMap>()
                .unwrap_err()
                .ends_with("runs past id 4294967295")
        );
    }

    #[test]
    fn capabilities_cpusets_weights() {
        assert_eq!("NET_ADMIN".parse(), Ok(Capability::One(12)));
        assert_eq!("CAP_CHECKPOINT_RESTORE".parse(), Ok(Capability::One(40)));
        assert_eq!("ALL".parse(), Ok(Capability::All));
        assert_eq!(Capability::One(10).to_string(), "NET_BIND_SERVICE");
        assert!("NET_ADMINS".parse::<Capability>().is_err());
        assert!("0-1,3".parse::<CpuSet>().is_ok());
        for bad in ["", "1-0", "a", "0,,1", "0-"] {
            assert!(bad.parse::<CpuSet>().is_err(), "{bad}");
        }
        assert_eq!("1".parse::<Weight>().map(Weight::get), Ok(1));
        assert!("0".parse::<Weight>().is_err());
        assert!("10001".parse::<Weight>().is_err());
    }
}
