//! `berth version` and `berth info`: the build, and what this device offers berth
//! (cgroup mode, kernel features, directories, apps, images, a running supervisor):
//! what an engineer pastes into a bug report. Read from files and two harmless system
//! calls: no supervisor needed.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cgroup::detect::{self, Kind};
use crate::cli::human::{Bytes, count};
use crate::config::Config;
use crate::control::json::Object;
use crate::manifest;

/// The build target: `x86_64-unknown-linux-musl`.
pub fn target() -> String {
    let env = if cfg!(target_env = "musl") {
        "musl"
    } else {
        "gnu"
    };
    let abi = if cfg!(target_arch = "arm") {
        "eabihf"
    } else {
        ""
    };
    format!("{}-unknown-linux-{env}{abi}", std::env::consts::ARCH)
}

/// `berth 0.1.0 (x86_64-unknown-linux-musl)`.
pub fn version() -> String {
    format!("berth {} ({})", env!("CARGO_PKG_VERSION"), target())
}

/// The kernel features berth looks for, in the order shown.
pub const FEATURES: [&str; 6] = [
    "overlayfs",
    "user_namespaces",
    "seccomp",
    "nf_tables",
    "pidfd",
    "clone3",
];

/// What `berth info` reports.
#[derive(Debug)]
pub struct Info {
    /// The kernel's release (`uname -r`).
    pub kernel: String,
    /// `v1`, `hybrid`, `v2`, or why it is not known.
    pub cgroup: Result<&'static str, String>,
    /// Each of [`FEATURES`] and whether it was found.
    pub features: [bool; 6],
    /// The settings file, and whether it exists (else the defaults apply).
    pub settings: (PathBuf, bool),
    /// `apps_dir`, `state_dir`, `run_dir`, `log_dir`, and whether each exists.
    pub dirs: [(&'static str, PathBuf, bool); 4],
    /// Valid and invalid manifests in `apps_dir` (`None`: it is missing).
    pub apps: Option<(usize, usize)>,
    /// Installed images and their bytes on disk, or why they could not be counted.
    pub images: Result<(usize, u64), String>,
    /// Whether the supervisor answers on its socket, else why not.
    pub supervisor: Result<(), String>,
}

/// Looks at this device with the settings `config` (read from `settings`).
pub fn gather(config: &Config, settings: &Path) -> Info {
    let root = Path::new("/");
    let kernel = read(&root.join("proc/sys/kernel/osrelease"))
        .trim()
        .to_owned();
    let mountinfo = read(&root.join("proc/self/mountinfo"));
    let own = read(&root.join("proc/self/cgroup"));
    let cgroup =
        detect::detect(&mountinfo, &own, &|p: &Path| std::fs::read_to_string(p)).map(|h| {
            match h.kind {
                Kind::V1 => "v1",
                Kind::Hybrid => "hybrid",
                Kind::V2 => "v2",
            }
        });
    let [overlayfs, userns, seccomp, nf_tables] = file_features(root, &kernel);
    let pidfd = crate::sys::process::pidfd_open(crate::sys::process::getpid()).is_ok();
    let clone3 = crate::sys::process::clone3_exists();
    let dir = |name, path: &PathBuf| (name, path.clone(), path.is_dir());
    let loaded = config.apps_dir.is_dir().then(|| {
        let dirs = std::slice::from_ref(&config.apps_dir);
        manifest::load_with(dirs, &config.reserved(&config.apps_dir))
    });
    let apps = loaded
        .as_ref()
        .map(|l| l.apps.as_slice())
        .unwrap_or_default();
    let images = crate::cli::images::rows(&config.state_dir, apps)
        .map(|rows| (rows.len(), rows.iter().map(|r| r.size).sum()))
        .map_err(|e| e.to_string());
    Info {
        kernel,
        cgroup,
        features: [overlayfs, userns, seccomp, nf_tables, pidfd, clone3],
        settings: (settings.to_owned(), settings.is_file()),
        dirs: [
            dir("apps_dir", &config.apps_dir),
            dir("state_dir", &config.state_dir),
            dir("run_dir", &config.run_dir),
            dir("log_dir", &config.log_dir),
        ],
        apps: loaded.map(|l| (l.apps.len(), l.invalid)),
        images,
        supervisor: crate::cli::client::connect(&config.run_dir).map(drop),
    }
}

/// The features found in files under `root` (`/`): overlayfs, user namespaces,
/// seccomp and nf_tables, for the kernel release `kernel`.
fn file_features(root: &Path, kernel: &str) -> [bool; 4] {
    let filesystems = read(&root.join("proc/filesystems"));
    let overlayfs = filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
        || module_available(root, kernel, "overlay", "OVERLAY_FS");
    let userns = read(&root.join("proc/sys/user/max_user_namespaces"))
        .trim()
        .parse::<u64>()
        .is_ok_and(|n| n > 0);
    let seccomp = read(&root.join("proc/self/status"))
        .lines()
        .any(|l| l.starts_with("Seccomp:"));
    let nf_tables = module_available(root, kernel, "nf_tables", "NF_TABLES");
    [overlayfs, userns, seccomp, nf_tables]
}

/// Whether the kernel module `name` (config symbol `CONFIG_{symbol}`) is loaded, built
/// in, or installed to be loaded.
fn module_available(root: &Path, kernel: &str, name: &str, symbol: &str) -> bool {
    let modules = root.join("lib/modules").join(kernel);
    let file = format!("/{name}.ko");
    let config = [format!("CONFIG_{symbol}=y"), format!("CONFIG_{symbol}=m")];
    root.join("sys/module").join(name).is_dir()
        || ["modules.builtin", "modules.dep"].iter().any(|list| {
            read(&modules.join(list))
                .lines()
                .any(|l| l.split(':').next().is_some_and(|m| m.contains(&file)))
        })
        || kernel_config(root, kernel)
            .lines()
            .any(|l| config.iter().any(|c| c == l))
}

/// The kernel's build configuration: `/proc/config.gz`, else `/boot/config-RELEASE`;
/// empty if neither is there.
fn kernel_config(root: &Path, kernel: &str) -> String {
    use std::io::Read as _;
    let mut text = String::new();
    if let Ok(file) = std::fs::File::open(root.join("proc/config.gz")) {
        if flate2::read::GzDecoder::new(file)
            .take(16 << 20)
            .read_to_string(&mut text)
            .is_ok()
        {
            return text;
        }
    }
    read(&root.join("boot").join(format!("config-{kernel}")))
}

/// A small kernel file's text; empty when it cannot be read (the feature is then
/// reported missing).
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl Info {
    /// The report for people: one `name  value` line each, aligned.
    pub fn text(&self) -> String {
        let mut out = format!("{}\n", version());
        let mut line = |name: &str, value: &dyn std::fmt::Display| {
            let _ = writeln!(out, "{name:<11} {value}");
        };
        line("kernel", &self.kernel);
        match &self.cgroup {
            Ok(mode) => line("cgroup", mode),
            Err(why) => line("cgroup", &format_args!("unknown ({why})")),
        }
        let (found, missing): (Vec<_>, Vec<_>) =
            FEATURES.iter().zip(self.features).partition(|(_, f)| *f);
        let names = |list: Vec<(&&str, bool)>| match list.is_empty() {
            true => "none".to_owned(),
            false => list.iter().map(|(n, _)| **n).collect::<Vec<_>>().join(" "),
        };
        line("features", &names(found));
        line("missing", &names(missing));
        let (file, exists) = &self.settings;
        let note = if *exists {
            ""
        } else {
            " (not found: defaults)"
        };
        line("settings", &format_args!("{}{note}", file.display()));
        for (name, path, exists) in &self.dirs {
            let note = if *exists { "" } else { " (missing)" };
            line(name, &format_args!("{}{note}", path.display()));
        }
        match self.apps {
            Some((valid, invalid)) => line("apps", &format_args!("{valid} ok, {invalid} invalid")),
            None => line("apps", &"none (no apps directory)"),
        }
        match &self.images {
            Ok((n, bytes)) => line(
                "images",
                &format_args!("{}, {}", count(*n, "image", "images"), Bytes(*bytes)),
            ),
            Err(why) => line("images", &format_args!("unknown ({why})")),
        }
        match &self.supervisor {
            Ok(()) => line("supervisor", &"running"),
            Err(why) => line("supervisor", &format_args!("not reached: {why}")),
        }
        out.pop();
        out
    }

    /// The report as one JSON object with stable field names.
    pub fn json(&self) -> String {
        let features = FEATURES
            .iter()
            .zip(self.features)
            .fold(Object::new(), |o, (name, found)| o.bool(name, found))
            .end();
        let dirs = self
            .dirs
            .iter()
            .fold(Object::new(), |o, (name, path, exists)| {
                let dir = Object::new()
                    .str("path", &path.to_string_lossy())
                    .bool("exists", *exists)
                    .end();
                o.raw(name, &dir)
            })
            .end();
        let apps = match self.apps {
            Some((valid, invalid)) => Object::new()
                .num("valid", valid as u64)
                .num("invalid", invalid as u64)
                .end(),
            None => "null".to_owned(),
        };
        let images = match &self.images {
            Ok((n, bytes)) => Object::new()
                .num("count", *n as u64)
                .num("size_bytes", *bytes)
                .end(),
            Err(_) => "null".to_owned(),
        };
        Object::new()
            .str("version", env!("CARGO_PKG_VERSION"))
            .str("target", &target())
            .str("kernel", &self.kernel)
            .opt_str("cgroup", self.cgroup.as_ref().ok().copied())
            .raw("features", &features)
            .str("settings", &self.settings.0.to_string_lossy())
            .raw("directories", &dirs)
            .raw("apps", &apps)
            .raw("images", &images)
            .bool("supervisor", self.supervisor.is_ok())
            .end()
    }
}

/// `berth info [--json]`: writes the report; returns the exit status.
pub fn run(config: &Config, settings: &Path, json: bool, out: &mut impl Write) -> u8 {
    let info = gather(config, settings);
    let text = if json { info.json() } else { info.text() };
    u8::from(writeln!(out, "{text}").is_err())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TempDir;
    use std::fs;

    #[test]
    fn features_from_the_files_of_a_root() {
        let d = TempDir::new("info", "features");
        let root = &d.0;
        assert_eq!(file_features(root, "6.1.0"), [false; 4]);
        let write = |path: &str, text: &str| {
            let path = root.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        };
        write("proc/filesystems", "nodev\tsysfs\nnodev\toverlay\n");
        write("proc/sys/user/max_user_namespaces", "0\n");
        write("proc/self/status", "Name:\tberth\nSeccomp:\t0\n");
        write(
            "lib/modules/6.1.0/modules.dep",
            "kernel/net/netfilter/nf_tables.ko.xz: kernel/net/netfilter/nfnetlink.ko.xz\n",
        );
        assert_eq!(file_features(root, "6.1.0"), [true, false, true, true]);
        assert_eq!(file_features(root, "6.2.0"), [true, false, true, false]);
        write("boot/config-6.2.0", "CONFIG_NF_TABLES=y\n");
        assert_eq!(file_features(root, "6.2.0"), [true, false, true, true]);
        fs::remove_file(root.join("boot/config-6.2.0")).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"# CONFIG_X is not set\nCONFIG_NF_TABLES=m\n").unwrap();
        write("proc/config.gz", "");
        fs::write(root.join("proc/config.gz"), gz.finish().unwrap()).unwrap();
        assert_eq!(file_features(root, "6.2.0"), [true, false, true, true]);
        fs::remove_file(root.join("proc/config.gz")).unwrap();
        write("proc/sys/user/max_user_namespaces", "63371\n");
        fs::create_dir_all(root.join("sys/module/nf_tables")).unwrap();
        assert_eq!(file_features(root, "6.2.0"), [true; 4]);
    }

    #[test]
    fn the_report_for_people_and_scripts() {
        let info = Info {
            kernel: "6.1.0-18-amd64".into(),
            cgroup: Ok("hybrid"),
            features: [true, true, true, false, true, true],
            settings: ("/etc/berth/berth.yaml".into(), false),
            dirs: [
                ("apps_dir", "/etc/berth/apps.d".into(), true),
                ("state_dir", "/var/lib/berth".into(), true),
                ("run_dir", "/run/berth".into(), false),
                ("log_dir", "/var/log/berth".into(), true),
            ],
            apps: Some((3, 1)),
            images: Ok((2, 18_300_000)),
            supervisor: Err("berth is not running (no socket at /run/berth/berth.sock)".into()),
        };
        assert_eq!(
            info.text(),
            format!(
                "{}\n\
                 kernel      6.1.0-18-amd64\n\
                 cgroup      hybrid\n\
                 features    overlayfs user_namespaces seccomp pidfd clone3\n\
                 missing     nf_tables\n\
                 settings    /etc/berth/berth.yaml (not found: defaults)\n\
                 apps_dir    /etc/berth/apps.d\n\
                 state_dir   /var/lib/berth\n\
                 run_dir     /run/berth (missing)\n\
                 log_dir     /var/log/berth\n\
                 apps        3 ok, 1 invalid\n\
                 images      2 images, 18.3 MB\n\
                 supervisor  not reached: berth is not running (no socket at /run/berth/berth.sock)",
                version()
            )
        );
        let json = info.json();
        assert!(
            json.starts_with(&format!(
                "{{\"version\":\"{}\",\"target\":\"{}\",\"kernel\":\"6.1.0-18-amd64\",\
                 \"cgroup\":\"hybrid\",\"features\":{{\"overlayfs\":true,\
                 \"user_namespaces\":true,\"seccomp\":true,\"nf_tables\":false,\
                 \"pidfd\":true,\"clone3\":true}},",
                env!("CARGO_PKG_VERSION"),
                target()
            )),
            "{json}"
        );
        assert!(
            json.ends_with(
                "\"apps\":{\"valid\":3,\"invalid\":1},\
                 \"images\":{\"count\":2,\"size_bytes\":18300000},\"supervisor\":false}"
            ),
            "{json}"
        );
    }

    #[test]
    fn version_names_the_target() {
        assert_eq!(
            version(),
            format!("berth {} ({})", env!("CARGO_PKG_VERSION"), target())
        );
        assert!(target().starts_with(std::env::consts::ARCH), "{}", target());
        assert!(target().contains("-unknown-linux-"), "{}", target());
    }
}
