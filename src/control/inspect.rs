//! `berth inspect APP`: an app's configuration as berth runs it, as YAML. Every field
//! is written with its effective value, defaults included; where the manifest is
//! silent, the command, env, workdir and user come from the image's defaults (marked
//! `# from the image`). The text loads back as a manifest that means the same (with
//! the same image), except what a manifest cannot say, which is written as a comment.
//! Written by hand into one `String`, as `image::yaml` does: a YAML serialiser would
//! cost the board's binary far more than this.

use std::fmt::{self, Display, Write as _};

use crate::image::ImageDefaults;
use crate::image::process::DEFAULT_PATH;
use crate::image::yaml::quoted;
use crate::manifest::Manifest;
use crate::manifest::model::{Condition, Mount, OnUnhealthy, Probe, RestartPolicy, Seccomp};
use crate::manifest::types::{AbsPath, EnvName, User};

/// `m` as berth runs it over `image`, its image's defaults (`None`: not known, as
/// when the image is not installed; the values the image would give are then named
/// in comments only).
pub fn render(m: &Manifest, image: Option<&ImageDefaults>) -> String {
    let mut o = String::with_capacity(2048);
    let name = Yaml(m.name.as_str());
    let _ = writeln!(
        o,
        "# {name}: {} {}\nname: {name}\nimage:",
        Yaml(&m.file.to_string_lossy()),
        match image {
            Some(_) => "over its image's defaults",
            None => "(its image is not installed: the defaults it gives are not shown)",
        }
    );
    let resolved = m.image.resolved.to_string_lossy();
    let _ = write!(o, "  path: {}", Yaml(&m.image.path));
    if resolved != m.image.path {
        let _ = write!(o, "  # {}", Yaml(&resolved));
    }
    let _ = writeln!(o, "\n  sha256: {}", m.image.sha256);

    process(&mut o, m, image);

    let _ = write!(
        o,
        "hostname: {}\ninit: {}\nnamespaces: ",
        Yaml(m.hostname.as_str()),
        m.init
    );
    list(&mut o, m.namespaces.iter().map(|n| n.name()));
    o.push_str("\nuser_namespace: ");
    match &m.user_namespace {
        None => o.push_str("null"),
        Some(u) => {
            o.push_str("{uid_map: \"");
            id_map(&mut o, &u.uid_map);
            o.push_str("\", gid_map: \"");
            id_map(&mut o, &u.gid_map);
            let _ = write!(o, "\", allow_host_root: {}}}", u.allow_host_root);
        }
    }
    let _ = write!(
        o,
        "\nnetwork:\n  mode: {}\n  ports: ",
        Yaml(&m.network.mode.to_string())
    );
    list(&mut o, m.network.ports.iter().map(Quoted));
    let r = &m.resources;
    let _ = writeln!(
        o,
        "\nresources:\n  memory: {}\n  memory_swap: {}\n  cpu: {}\n  cpu_weight: {}\n  pids: {}\n  cpuset: {}\n  io_weight: {}",
        Or(r.memory),
        r.memory_swap,
        Or(r.cpu),
        Or(r.cpu_weight.map(|w| w.get())),
        Or(r.pids.map(|c| c.get())),
        Or(r.cpuset.as_ref().map(|c| Yaml(c.as_str()))),
        Or(r.io_weight.map(|w| w.get())),
    );
    mounts(&mut o, &m.mounts);
    o.push_str("devices: ");
    list(&mut o, m.devices.iter().map(|d| Yaml(d.as_str())));
    let _ = write!(
        o,
        "\nreadonly_rootfs: {}\ncapabilities: {{add: ",
        m.readonly_rootfs
    );
    list(&mut o, m.capabilities.add.iter());
    o.push_str(", drop: ");
    list(&mut o, m.capabilities.drop.iter());
    let _ = write!(
        o,
        "}}\nseccomp: {}\nhealthcheck:",
        match m.seccomp {
            Seccomp::Default => "default",
            Seccomp::Unconfined => "unconfined",
        }
    );
    match &m.healthcheck {
        None => o.push_str(" null\n"),
        Some(h) => {
            match &h.probe {
                Probe::Exec(args) => {
                    o.push_str("\n  exec: ");
                    list(&mut o, args.as_slice().iter().map(|a| Yaml(a.as_str())));
                }
                Probe::Tcp(port) => {
                    let _ = write!(o, "\n  tcp: {}", port.0);
                }
                Probe::Http(url) => {
                    let _ = write!(o, "\n  http: {}", Yaml(url.as_str()));
                }
            }
            let _ = writeln!(
                o,
                "\n  interval: {}\n  timeout: {}\n  retries: {}\n  start_period: {}\n  on_unhealthy: {}",
                h.interval,
                h.timeout,
                h.retries.get(),
                h.start_period,
                match h.on_unhealthy {
                    OnUnhealthy::Restart => "restart",
                    OnUnhealthy::None => "none",
                }
            );
        }
    }
    let r = &m.restart;
    let _ = write!(
        o,
        "restart:\n  policy: {}\n  backoff: {{initial: {}, max: {}}}\n  max_restarts: {}\n  window: {}\ndepends_on:",
        match r.policy {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        },
        r.backoff.initial,
        r.backoff.max,
        r.max_restarts,
        r.window
    );
    if m.depends_on.is_empty() {
        o.push_str(" []");
    }
    for d in &m.depends_on {
        let _ = write!(
            o,
            "\n  - {{app: {}, condition: {}}}",
            Yaml(d.app.as_str()),
            match d.condition {
                Condition::Started => "started",
                Condition::Healthy => "healthy",
            }
        );
    }
    let _ = writeln!(
        o,
        "\nstop: {{signal: {}, timeout: {}}}\nlogs: {{max_size: {}, max_files: {}}}\nallow_signals_to_berth: {}",
        m.stop.signal,
        m.stop.timeout,
        m.logs.max_size,
        m.logs.max_files.get(),
        m.allow_signals_to_berth
    );
    o
}

/// The process: command, env, workdir and user, each the manifest's, else the
/// image's, else berth's default.
fn process(o: &mut String, m: &Manifest, image: Option<&ImageDefaults>) {
    match (&m.command, image) {
        (Some(c), _) => {
            o.push_str("command: ");
            list(o, c.as_slice().iter().map(|a| Yaml(a.as_str())));
            o.push('\n');
        }
        (None, Some(d)) if d.entrypoint.is_empty() && d.cmd.is_empty() => {
            o.push_str(
                "# command: none: the manifest sets none and the image has no Entrypoint or Cmd\n",
            );
        }
        (None, Some(d)) => {
            let argv = || d.entrypoint.iter().chain(&d.cmd);
            let mut value = String::new();
            list(&mut value, argv().map(|a| Yaml(a)));
            let loads =
                argv().next().is_some_and(|p| !p.is_empty()) && argv().all(|a| !a.contains('\0'));
            from_image(o, "command", &value, loads);
        }
        (None, None) => o.push_str("# command: the image's Entrypoint and Cmd\n"),
    }

    // The image's variables in its order (a name it repeats takes its last value),
    // each overridden by the manifest's, then the manifest's others in its order:
    // berth's merge gives the app these, in this order, whether the text is run over
    // this image or over one without variables.
    let mut vars: Vec<(&str, &str, bool)> = Vec::new();
    let images = image.map_or(&[][..], |d| &d.env);
    let entries = images
        .iter()
        .filter_map(|e| e.split_once('='))
        .map(|(n, v)| (n, v, true));
    let mine = m.env.iter().map(|(n, v)| (n.as_str(), v.as_str(), false));
    for var in entries.filter(|(n, _, _)| !n.is_empty()).chain(mine) {
        match vars.iter_mut().find(|(n, _, _)| *n == var.0) {
            Some(slot) => *slot = var,
            None => vars.push(var),
        }
    }
    o.push_str("env:");
    if vars.is_empty() {
        o.push_str(" {}");
    }
    for &(name, value, from) in &vars {
        o.push_str("\n  ");
        let loads = name.parse::<EnvName>().is_ok() && !value.contains('\0');
        let (key, value) = (Yaml(name).to_string(), Yaml(value).to_string());
        match from {
            true => {
                from_image(o, &key, &value, loads);
                o.pop(); // its line end: each variable starts its own line
            }
            false => {
                let _ = write!(o, "{key}: {value}");
            }
        }
    }
    let set = |var: &str| vars.iter().any(|(n, _, _)| *n == var);
    if !set("PATH") {
        let _ = write!(o, "\n  # PATH: {DEFAULT_PATH} (berth's default)");
    }
    if !set("HOSTNAME") {
        let _ = write!(
            o,
            "\n  # HOSTNAME: {} (berth's default)",
            Yaml(m.hostname.as_str())
        );
    }
    o.push('\n');

    match (&m.workdir, image) {
        (Some(dir), _) => {
            let _ = writeln!(o, "workdir: {}", Yaml(dir.as_str()));
        }
        (None, Some(d)) => match d.workdir.as_deref().unwrap_or_default() {
            "" => o.push_str("# workdir: / (the default)\n"),
            dir => {
                // As the launch does: a relative WorkingDir is taken from the root.
                let dir = match dir.starts_with('/') {
                    true => dir.to_owned(),
                    false => format!("/{dir}"),
                };
                from_image(
                    o,
                    "workdir",
                    &Yaml(&dir).to_string(),
                    dir.parse::<AbsPath>().is_ok(),
                );
            }
        },
        (None, None) => o.push_str("# workdir: the image's WorkingDir, else /\n"),
    }

    match (m.user, image) {
        (Some(u), _) => {
            let _ = writeln!(o, "user: \"{}:{}\"", u.uid, u.gid);
        }
        (None, Some(d)) => match d.user.as_deref().unwrap_or_default() {
            "" => o.push_str("user: \"0:0\"  # the default\n"),
            // A name, or a uid alone, is looked up in the image's /etc/passwd at launch.
            user => from_image(o, "user", &quoted(user), user.parse::<User>().is_ok()),
        },
        (None, None) => o.push_str("# user: the image's User, else 0:0\n"),
    }
}

/// `key: value` taken from the image: a field when the manifest can say it, else a
/// comment (the image still gives it at launch).
fn from_image(o: &mut String, key: &str, value: &str, loads: bool) {
    let _ = match loads {
        true => writeln!(o, "{key}: {value}  # from the image"),
        false => writeln!(o, "# {key}: {value} (from the image)"),
    };
}

fn mounts(o: &mut String, mounts: &[Mount]) {
    o.push_str("mounts:");
    if mounts.is_empty() {
        o.push_str(" []");
    }
    for m in mounts {
        let _ = match m {
            Mount::Bind {
                source,
                target,
                readonly,
                allow_system_path,
            } => write!(
                o,
                "\n  - {{type: bind, source: {}, target: {}, readonly: {readonly}, allow_system_path: {allow_system_path}}}",
                Yaml(source.as_str()),
                Yaml(target.as_str()),
            ),
            Mount::Tmpfs {
                target,
                size,
                readonly,
            } => write!(
                o,
                "\n  - {{type: tmpfs, target: {}, size: {}, readonly: {readonly}}}",
                Yaml(target.as_str()),
                Or(*size),
            ),
            Mount::Volume {
                name,
                target,
                readonly,
            } => write!(
                o,
                "\n  - {{type: volume, name: {}, target: {}, readonly: {readonly}}}",
                Yaml(name.as_str()),
                Yaml(target.as_str()),
            ),
        };
    }
    o.push('\n');
}

/// A flow sequence: `[a, "b c"]`.
fn list<T: Display>(o: &mut String, items: impl Iterator<Item = T>) {
    o.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            o.push_str(", ");
        }
        let _ = write!(o, "{item}");
    }
    o.push(']');
}

/// `inside:outside:count`, several separated by commas.
fn id_map(o: &mut String, map: &crate::manifest::types::IdMap) {
    for (i, r) in map.ranges().iter().enumerate() {
        let sep = if i > 0 { "," } else { "" };
        let _ = write!(o, "{sep}{}:{}:{}", r.inside, r.outside, r.count);
    }
}

/// A string as a YAML scalar: plain when YAML reads it back as the same string in
/// any context (block or flow), else double-quoted. Plain means a letter, `/` or `_`
/// first (so never a number, `-`, `~`, `.5`, `*alias`), then only letters, digits
/// and `/._-+@` (so no `: `, ` #`, flow indicators or spaces), and not a word YAML
/// 1.1 or 1.2 takes for a boolean or null (`yes`, `On`, `NULL`...).
struct Yaml<'a>(&'a str);

impl Display for Yaml<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let s = self.0;
        let plain = s
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'/' || b == b'_')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-+@".contains(&b))
            && !["null", "true", "false", "yes", "no", "on", "off", "y", "n"]
                .iter()
                .any(|w| s.eq_ignore_ascii_case(w));
        match plain {
            true => f.write_str(s),
            false => f.write_str(&quoted(s)),
        }
    }
}

/// A value whose text needs no escaping, double-quoted (port forwards hold `:`).
struct Quoted<T>(T);

impl<T: Display> Display for Quoted<T> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "\"{}\"", self.0)
    }
}

/// An optional value: `null` when unset.
struct Or<T>(Option<T>);

impl<T: Display> Display for Or<T> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("null"),
        }
    }
}

#[cfg(test)]
mod tests;
