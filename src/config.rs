//! The global settings, `/etc/berth/berth.yaml`. Every key is optional.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use crate::image::Limits;
use crate::manifest::locate::{Seg, locate};
use crate::manifest::model::Count;
use crate::manifest::types::{Arg, Hostname};
use crate::manifest::units::{Size, deserialize_from_str};
use crate::manifest::{Problem, ProblemKind, YamlKind, parse_yaml};

/// The largest berth.yaml berth reads: far more than its settings need.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Where the global settings are read from unless `--config` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/berth/berth.yaml";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub apps_dir: PathBuf,
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    pub log_dir: PathBuf,
    pub cgroup_root: CgroupPath,
    pub bridge: Bridge,
    /// The device's host name (set at boot when berth is PID 1).
    pub hostname: Option<Hostname>,
    pub on_panic: OnPanic,
    /// Which cgroup hierarchy to use (and, as PID 1, to mount).
    pub cgroup: CgroupMode,
    /// Also write berth's log lines to /dev/kmsg.
    pub kmsg: bool,
    /// Also copy every line the apps print to berth's console (stderr), as
    /// `TIME APP STREAM TEXT`.
    pub app_logs_to_console: bool,
    /// Limits and permissions for unpacking images.
    pub images: Limits,
    /// The pids limit of every app whose manifest sets no `resources.pids`, so a fork
    /// bomb in one app cannot take the host's pids.
    pub default_pids: Count,
    /// Where the loop serves `GET /metrics` over HTTP (off unless set).
    pub metrics_listen: Option<SocketAddrV4>,
}

/// [`Config::default_pids`] unless berth.yaml says otherwise: more than any app on
/// a board runs, far below the kernel's `pid_max` (32768 at least).
pub const DEFAULT_PIDS: Count = Count::at_least_one(1024);

impl Config {
    /// The host paths no bind mount may overlap unless it says so: `/proc`, `/sys`
    /// and berth's own directories (`apps_dir`: the one in use, which `--apps` may
    /// have changed).
    pub fn reserved(&self, apps_dir: &Path) -> crate::manifest::Reserved {
        crate::manifest::Reserved::system()
            .with("state directory", &self.state_dir)
            .with("run directory", &self.run_dir)
            .with("log directory", &self.log_dir)
            .with("apps directory", apps_dir)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            apps_dir: "/etc/berth/apps.d".into(),
            state_dir: "/var/lib/berth".into(),
            run_dir: "/run/berth".into(),
            log_dir: "/var/log/berth".into(),
            cgroup_root: CgroupPath("berth".into()),
            bridge: Bridge::default(),
            hostname: None,
            on_panic: OnPanic::Reboot,
            cgroup: CgroupMode::Auto,
            kmsg: false,
            app_logs_to_console: false,
            images: Limits::default(),
            default_pids: DEFAULT_PIDS,
            metrics_listen: None,
        }
    }
}

/// `images:` in berth.yaml; unset keys keep [`Limits::default`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "images")]
struct RawImages {
    max_size: Option<Size>,
    max_entries: Option<Count>,
    allow_devices: Option<bool>,
    allow_setuid: Option<bool>,
}

impl RawImages {
    fn limits(self) -> Limits {
        let d = Limits::default();
        Limits {
            max_size: self.max_size.unwrap_or(d.max_size),
            max_entries: self
                .max_entries
                .map_or(d.max_entries, |c| u64::from(c.get())),
            allow_devices: self.allow_devices.unwrap_or(d.allow_devices),
            allow_setuid: self.allow_setuid.unwrap_or(d.allow_setuid),
        }
    }
}

/// What PID 1 does after a panic: the kernel would panic if it simply exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnPanic {
    #[default]
    Reboot,
    Halt,
}

/// `cgroup:` — `auto` uses cgroup v2 where the kernel offers it (mounting it as PID 1)
/// and the v1 controllers otherwise (or on a hybrid system); `v1` or `v2` force one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    #[default]
    Auto,
    V1,
    V2,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename = "bridge")]
pub struct Bridge {
    #[serde(default = "Bridge::default_name")]
    pub name: IfName,
    #[serde(default = "Bridge::default_subnet")]
    pub subnet: Ipv4Net,
}

impl Bridge {
    fn default_name() -> IfName {
        IfName("berth0".into())
    }
    fn default_subnet() -> Ipv4Net {
        Ipv4Net {
            addr: Ipv4Addr::new(10, 88, 0, 0),
            prefix: 24,
        }
    }
}

impl Default for Bridge {
    fn default() -> Self {
        Bridge {
            name: Bridge::default_name(),
            subnet: Bridge::default_subnet(),
        }
    }
}

/// A cgroup below berth's own: relative, `/`-separated, no `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupPath(String);

impl CgroupPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CgroupPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let part_ok = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if s.split('/').all(part_ok) {
            Ok(CgroupPath(s.to_owned()))
        } else {
            Err(format!(
                "invalid cgroup path {s:?}: use relative names of letters, digits, - _ and . separated by /"
            ))
        }
    }
}
deserialize_from_str!(CgroupPath, "a relative cgroup path such as berth");

/// A network interface name: 1 to 15 bytes, no `/`, `:` or whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfName(String);

impl IfName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for IfName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = (1..=15).contains(&s.len())
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
        if ok {
            Ok(IfName(s.to_owned()))
        } else {
            Err(format!(
                "invalid interface name {s:?}: use 1 to 15 characters without /, : or spaces"
            ))
        }
    }
}
deserialize_from_str!(IfName, "an interface name such as berth0");

/// An IPv4 subnet with room for a gateway and apps: `10.88.0.0/24`, prefix 8 to 30.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl FromStr for Ipv4Net {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid subnet {s:?}: {why}");
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| bad("use ADDRESS/PREFIX, e.g. 10.88.0.0/24"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| bad("use ADDRESS/PREFIX, e.g. 10.88.0.0/24"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| bad("prefix must be 8 to 30"))?;
        let host_bits = u32::MAX >> prefix;
        if u32::from(addr) & host_bits != 0 {
            return Err(bad("address has host bits set"));
        }
        Ok(Ipv4Net { addr, prefix })
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}
deserialize_from_str!(Ipv4Net, "a subnet such as 10.88.0.0/24");

/// The file's shape; directories are text until resolved against the file's place.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "berth.yaml")]
struct RawConfig {
    apps_dir: Option<Arg>,
    state_dir: Option<Arg>,
    run_dir: Option<Arg>,
    log_dir: Option<Arg>,
    cgroup_root: Option<CgroupPath>,
    bridge: Option<Bridge>,
    hostname: Option<Hostname>,
    on_panic: Option<OnPanic>,
    cgroup: Option<CgroupMode>,
    kmsg: Option<bool>,
    app_logs_to_console: Option<bool>,
    images: Option<RawImages>,
    default_pids: Option<Count>,
    /// `IP:PORT`, checked after the parse: as its own type it would cost the board's
    /// binary a kilobyte of serde code.
    metrics_listen: Option<Arg>,
}

/// `IPV4:PORT`. By hand: std's socket address parser would add its own code to the
/// board's binary, and this takes only what the bridge subnet parses already.
fn listen_addr(text: &str) -> Option<SocketAddrV4> {
    let (ip, port) = text.split_once(':')?;
    Some(SocketAddrV4::new(ip.parse().ok()?, port.parse().ok()?))
}

/// Reads the settings at `path`. A missing file means the defaults, unless the user
/// named it (`required`). Relative directories are taken from the file's directory.
pub fn load(path: &Path, required: bool) -> Result<Config, Box<Problem>> {
    let problem = |pos, kind| {
        Box::new(Problem {
            file: path.to_owned(),
            pos,
            app: None,
            kind,
        })
    };
    // A regular file only (a FIFO would block berth, as PID 1, forever), read no
    // further than its size.
    let text = match crate::input::read_text(path, MAX_CONFIG_BYTES) {
        Ok(Some(text)) => text,
        Ok(None) => {
            return Err(problem(
                None,
                ProblemKind::Read(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("larger than {MAX_CONFIG_BYTES} bytes"),
                )),
            ));
        }
        Err(e)
            if !required
                && e.io().map(std::io::Error::kind) == Some(std::io::ErrorKind::NotFound) =>
        {
            return Ok(Config::default());
        }
        Err(e) => return Err(problem(None, e.into())),
    };
    // An empty file (or one of only comments) is all defaults.
    let raw: RawConfig = if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        RawConfig::default()
    } else {
        parse_yaml(&text).map_err(|(pos, kind)| problem(pos, kind))?
    };
    let metrics_listen = match raw.metrics_listen {
        Some(value) => Some(listen_addr(value.as_str()).ok_or_else(|| {
            let message = "metrics_listen: not an address: use IPV4:PORT, e.g. 127.0.0.1:9323";
            let at = locate(&text, &[Seg::Key("metrics_listen")]);
            let kind = YamlKind::InvalidValue;
            problem(
                at,
                ProblemKind::Yaml {
                    kind,
                    message: message.into(),
                },
            )
        })?),
        None => None,
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let dir =
        |value: Option<Arg>, default: PathBuf| value.map_or(default, |v| base.join(v.as_str()));
    let d = Config::default();
    Ok(Config {
        apps_dir: dir(raw.apps_dir, d.apps_dir),
        state_dir: dir(raw.state_dir, d.state_dir),
        run_dir: dir(raw.run_dir, d.run_dir),
        log_dir: dir(raw.log_dir, d.log_dir),
        cgroup_root: raw.cgroup_root.unwrap_or(d.cgroup_root),
        bridge: raw.bridge.unwrap_or(d.bridge),
        hostname: raw.hostname,
        on_panic: raw.on_panic.unwrap_or(d.on_panic),
        cgroup: raw.cgroup.unwrap_or(d.cgroup),
        kmsg: raw.kmsg.unwrap_or(d.kmsg),
        app_logs_to_console: raw.app_logs_to_console.unwrap_or(d.app_logs_to_console),
        images: raw.images.map_or(d.images, RawImages::limits),
        default_pids: raw.default_pids.unwrap_or(d.default_pids),
        metrics_listen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Pos;

    fn write(dir: &Path, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join("berth.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-config-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_fifo_as_berth_yaml_is_refused_unopened() {
        let dir = tmp("fifo");
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("berth.yaml");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Returns at once (no writer ever comes), required or not.
        for required in [false, true] {
            let e = load(&p, required).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{}: not a regular file (a FIFO)", p.display())
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_file_is_defaults_unless_required() {
        let p = tmp("missing").join("berth.yaml");
        assert_eq!(load(&p, false).unwrap(), Config::default());
        let e = load(&p, true).unwrap_err();
        assert!(matches!(e.kind, ProblemKind::Read(_)));
        assert_eq!(
            e.to_string(),
            format!(
                "{}: cannot read: No such file or directory (os error 2)",
                p.display()
            )
        );
    }

    #[test]
    fn every_key_with_relative_dirs_from_the_file() {
        let d = tmp("full");
        let p = write(
            &d,
            "apps_dir: apps\nstate_dir: /data/berth\nrun_dir: /run/b\nlog_dir: logs\ncgroup_root: fw/berth\n\
             bridge: { name: br-apps, subnet: 192.168.7.0/24 }\nhostname: gw-0017\non_panic: halt\n\
             cgroup: v1\nkmsg: true\napp_logs_to_console: true\nimages: { max_size: 512M, max_entries: 5000, allow_devices: true }\n\
             default_pids: 200\nmetrics_listen: 0.0.0.0:9323\n",
        );
        let c = load(&p, true).unwrap();
        assert_eq!(c.apps_dir, d.join("apps"));
        assert_eq!(c.state_dir, PathBuf::from("/data/berth"));
        assert_eq!(c.log_dir, d.join("logs"));
        assert_eq!(c.cgroup_root.as_str(), "fw/berth");
        assert_eq!(c.bridge.name.as_str(), "br-apps");
        assert_eq!(c.bridge.subnet.to_string(), "192.168.7.0/24");
        assert_eq!(c.hostname.unwrap().as_str(), "gw-0017");
        assert_eq!(c.on_panic, OnPanic::Halt);
        assert_eq!(c.cgroup, CgroupMode::V1);
        assert!(c.kmsg);
        assert!(c.app_logs_to_console);
        assert_eq!(c.images.max_size.bytes(), 512 << 20);
        assert_eq!(c.images.max_entries, 5000);
        assert!(c.images.allow_devices && !c.images.allow_setuid);
        assert_eq!(c.default_pids.get(), 200);
        assert_eq!(Config::default().default_pids.get(), 1024);
        assert_eq!(c.metrics_listen, Some("0.0.0.0:9323".parse().unwrap()));
        assert_eq!(Config::default().metrics_listen, None);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let d = tmp("bad");
        let p = write(&d, "apps_dir: /etc/apps\nbridge:\n  subnet: 10.88.0.1/24\n");
        let e = load(&p, true).unwrap_err();
        assert_eq!(
            e.pos,
            Some(Pos {
                line: 3,
                column: 11
            })
        );
        assert!(matches!(
            e.kind,
            ProblemKind::Yaml {
                kind: YamlKind::InvalidValue,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            format!(
                "{}:3:11: bridge.subnet: invalid subnet \"10.88.0.1/24\": address has host bits set",
                p.display()
            )
        );
        let p = write(&d, "log_dirs: /var/log\n");
        let e = load(&p, true).unwrap_err();
        assert_eq!(e.pos, Some(Pos { line: 1, column: 1 }));
        assert!(
            matches!(
                e.kind,
                ProblemKind::Yaml {
                    kind: YamlKind::UnknownField,
                    ..
                }
            ),
            "{e}"
        );
        for (text, kind) in [
            ("on_panic: explode\n", YamlKind::InvalidValue),
            ("cgroup_root: ../x\n", YamlKind::InvalidValue),
            ("default_pids: 0\n", YamlKind::InvalidValue),
            ("run_dir: a\nrun_dir: b\n", YamlKind::DuplicateKey),
        ] {
            let p = write(&d, text);
            let e = load(&p, true).unwrap_err();
            assert!(
                matches!(e.kind, ProblemKind::Yaml { kind: k, .. } if k == kind),
                "{text}: {e}"
            );
        }
        let p = write(&d, "kmsg: true\nmetrics_listen: \"[::1]:9323\"\n");
        assert_eq!(
            load(&p, true).unwrap_err().to_string(),
            format!(
                "{}:2:17: metrics_listen: not an address: use IPV4:PORT, e.g. 127.0.0.1:9323",
                p.display()
            )
        );
        let p = write(&d, "# nothing set\n");
        assert_eq!(load(&p, true).unwrap(), Config::default());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn listen_addresses() {
        let addr = |ip: [u8; 4], port| Some(SocketAddrV4::new(ip.into(), port));
        assert_eq!(listen_addr("127.0.0.1:9323"), addr([127, 0, 0, 1], 9323));
        assert_eq!(listen_addr("0.0.0.0:0"), addr([0, 0, 0, 0], 0));
        for bad in [
            "127.0.0.1",
            "127.0.0.1:",
            ":9323",
            "127.0.0.1:65536",
            "1.2.3:80",
            "[::1]:80",
            "a:1:2",
        ] {
            assert_eq!(listen_addr(bad), None, "{bad}");
        }
    }

    #[test]
    fn interface_names_and_subnets() {
        assert!("berth0".parse::<IfName>().is_ok());
        assert!("a-very-long-name0".parse::<IfName>().is_err());
        assert!("br 0".parse::<IfName>().is_err());
        assert!("10.0.0.0/31".parse::<Ipv4Net>().is_err());
        assert!("10.0.0.0".parse::<Ipv4Net>().is_err());
    }
}
