//! The rules one manifest must keep on its own, and the step from the parsed shape
//! to a [`Manifest`].

use std::path::Path;

use super::error::Rule;
use super::locate::{Seg, at};
use super::model::{
    Healthcheck, Logs, Manifest, Mount, MountType, Namespace, Probe, RawHealthcheck, RawManifest,
    RawMount, Validated,
};
use super::types::{AbsPath, Args, Capability, Hostname, NetworkMode};
use super::units::Duration;

/// A broken rule and the path of the node it is about.
pub type Finding = (Vec<Seg<'static>>, Rule);

/// The namespaces an app gets when its manifest does not list them.
const DEFAULT_NAMESPACES: [Namespace; 5] = [
    Namespace::Pid,
    Namespace::Mount,
    Namespace::Uts,
    Namespace::Ipc,
    Namespace::Net,
];

/// Checks one parsed manifest and makes the validated [`Manifest`], or returns every
/// rule it breaks.
pub fn validate(raw: RawManifest, file: &Path) -> Result<Manifest, Vec<Finding>> {
    let mut found: Vec<Finding> = Vec::new();

    if let Some(cmd) = &raw.command {
        check_command(cmd, at!["command"], &mut found);
    }
    let namespaces = check_namespaces(&raw, &mut found);
    check_user(&raw, &namespaces, &mut found);
    check_network(&raw, &mut found);
    check_resources(&raw, &mut found);
    let mounts = check_mounts(&raw.mounts, &mut found);
    for (i, dev) in raw.devices.iter().enumerate() {
        // A host path the app gets: anything outside /dev (a bind of /proc, say) is an
        // escape; launch checks again where the path resolves to.
        if !dev.as_str().starts_with("/dev/") {
            found.push((at!["devices", i], Rule::DeviceNotUnderDev(dev.to_string())));
        }
        if raw.devices.iter().take(i).any(|d| d == dev) {
            found.push((at!["devices", i], Rule::DuplicateDevice(dev.to_string())));
        }
    }
    for (i, cap) in raw.capabilities.add.iter().enumerate() {
        if raw.capabilities.drop.contains(cap) && *cap != Capability::All {
            found.push((
                at!["capabilities", "add", i],
                Rule::CapabilityAddedAndDropped(*cap),
            ));
        }
    }
    let healthcheck = match raw.healthcheck {
        None => Ok(None),
        Some(h) => check_healthcheck(h, &mut found).map(Some).ok_or(()),
    };
    let backoff = raw.restart.backoff;
    if backoff.initial > backoff.max {
        found.push((
            at!["restart", "backoff", "initial"],
            Rule::BackoffInverted {
                initial: backoff.initial,
                max: backoff.max,
            },
        ));
    }
    if raw.restart.window.is_zero() {
        found.push((at!["restart", "window"], Rule::ZeroWindow));
    }
    for (i, dep) in raw.depends_on.iter().enumerate() {
        if raw.depends_on.iter().take(i).any(|d| d.app == dep.app) {
            found.push((
                at!["depends_on", i, "app"],
                Rule::DuplicateDependency(dep.app.clone()),
            ));
        }
    }
    check_logs(&raw.logs, &mut found);

    let (Some(mounts), Ok(healthcheck)) = (mounts, healthcheck) else {
        return Err(found);
    };
    if !found.is_empty() {
        return Err(found);
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    let hostname = raw.hostname.unwrap_or_else(|| Hostname::from(&raw.name));
    Ok(Manifest {
        file: file.to_owned(),
        image: super::model::Image {
            resolved: dir.join(raw.image.path.as_str()),
            path: raw.image.path.as_str().to_owned(),
            sha256: raw.image.sha256,
        },
        name: raw.name,
        command: raw.command,
        env: raw.env.0,
        workdir: raw.workdir,
        user: raw.user,
        hostname,
        init: raw.init,
        namespaces,
        user_namespace: raw.user_namespace,
        network: raw.network,
        resources: raw.resources,
        mounts,
        devices: raw.devices,
        readonly_rootfs: raw.readonly_rootfs,
        capabilities: raw.capabilities,
        seccomp: raw.seccomp,
        healthcheck,
        restart: raw.restart,
        depends_on: raw.depends_on,
        stop: raw.stop,
        logs: raw.logs,
        allow_signals_to_berth: raw.allow_signals_to_berth,
        _validated: Validated(()),
    })
}

fn check_command(cmd: &Args, path: Vec<Seg<'static>>, found: &mut Vec<Finding>) {
    if cmd
        .as_slice()
        .first()
        .is_none_or(|program| program.as_str().is_empty())
    {
        found.push((path, Rule::EmptyCommand));
    }
}

fn check_namespaces(raw: &RawManifest, found: &mut Vec<Finding>) -> Vec<Namespace> {
    let needs_net = matches!(raw.network.mode, NetworkMode::None | NetworkMode::Bridge);
    let Some(listed) = &raw.namespaces else {
        let mut ns = DEFAULT_NAMESPACES.to_vec();
        ns.retain(|&n| n != Namespace::Net || needs_net);
        return ns;
    };
    for (i, ns) in listed.iter().enumerate() {
        if listed.iter().take(i).any(|n| n == ns) {
            found.push((at!["namespaces", i], Rule::DuplicateNamespace(ns.name())));
        }
    }
    if !listed.contains(&Namespace::Mount) {
        found.push((at!["namespaces"], Rule::MountNamespaceRequired));
    }
    if listed.contains(&Namespace::Net) != needs_net {
        let mode = raw.network.mode.to_string();
        found.push((
            at!["namespaces"],
            Rule::NetNamespace {
                mode,
                needed: needs_net,
            },
        ));
    }
    listed.clone()
}

fn check_user(raw: &RawManifest, namespaces: &[Namespace], found: &mut Vec<Finding>) {
    match (&raw.user_namespace, namespaces.contains(&Namespace::User)) {
        (None, true) => found.push((at!["namespaces"], Rule::UserNamespaceNeedsMap)),
        (Some(_), false) => found.push((
            at![Seg::KeyOf("user_namespace")],
            Rule::UserNamespaceWithoutUser,
        )),
        (Some(userns), true) => {
            for (key, map) in [("uid_map", &userns.uid_map), ("gid_map", &userns.gid_map)] {
                if let Some(inside) = map.from_host(0).filter(|_| !userns.allow_host_root) {
                    found.push((
                        at!["user_namespace", key],
                        Rule::UserNamespaceMapsHostRoot { map: key, inside },
                    ));
                }
            }
            let user = raw.user.unwrap_or_default();
            if userns.uid_map.to_host(user.uid).is_none() {
                found.push((
                    at!["user"],
                    Rule::UserNotMapped {
                        id: user.uid,
                        map: "uid_map",
                    },
                ));
            }
            if userns.gid_map.to_host(user.gid).is_none() {
                found.push((
                    at!["user"],
                    Rule::UserNotMapped {
                        id: user.gid,
                        map: "gid_map",
                    },
                ));
            }
        }
        (None, false) => {}
    }
}

fn check_network(raw: &RawManifest, found: &mut Vec<Finding>) {
    let net = &raw.network;
    if !net.ports.is_empty() && net.mode != NetworkMode::Bridge {
        found.push((at!["network", "ports"], Rule::PortsNeedBridge));
    }
    for (i, port) in net.ports.iter().enumerate() {
        if net.ports.iter().take(i).any(|p| p.clashes_with(port)) {
            found.push((at!["network", "ports", i], Rule::DuplicatePort(*port)));
        }
    }
    if net.mode == NetworkMode::Container(raw.name.clone()) {
        found.push((at!["network", "mode"], Rule::NetworkContainerSelf));
    }
}

fn check_resources(raw: &RawManifest, found: &mut Vec<Finding>) {
    let res = &raw.resources;
    if res.memory.is_some_and(|m| m.bytes() == 0) {
        found.push((
            at!["resources", "memory"],
            Rule::ZeroSize("resources.memory"),
        ));
    }
    if res.memory.is_none() && res.memory_swap.bytes() > 0 {
        found.push((at!["resources", "memory_swap"], Rule::SwapWithoutMemory));
    }
}

/// `logs:` within the bounds that keep rotation cheap ([`Logs::MIN_MAX_SIZE`],
/// [`Logs::MAX_MAX_FILES`]).
fn check_logs(logs: &Logs, found: &mut Vec<Finding>) {
    if logs.max_size < Logs::MIN_MAX_SIZE {
        found.push((
            at!["logs", "max_size"],
            Rule::LogSizeTooSmall(logs.max_size),
        ));
    }
    if logs.max_files.get() > Logs::MAX_MAX_FILES {
        found.push((
            at!["logs", "max_files"],
            Rule::LogFilesTooMany(logs.max_files.get()),
        ));
    }
}

/// Turns each flat mount entry into its typed form; `None` if any is malformed.
fn check_mounts(raw: &[RawMount], found: &mut Vec<Finding>) -> Option<Vec<Mount>> {
    let before = found.len();
    let mut mounts = Vec::with_capacity(raw.len());
    for (i, m) in raw.iter().enumerate() {
        let field = |name: &'static str, needed: bool, found: &mut Vec<Finding>| {
            let kind = match m.kind {
                MountType::Bind => "bind",
                MountType::Tmpfs => "tmpfs",
                MountType::Volume => "volume",
            };
            let path = if needed {
                at!["mounts", i]
            } else {
                at!["mounts", i, Seg::KeyOf(name)]
            };
            found.push((
                path,
                Rule::MountField {
                    kind,
                    field: name,
                    needed,
                },
            ));
        };
        if m.kind != MountType::Bind && m.source.is_some() {
            field("source", false, found);
        }
        if m.kind != MountType::Volume && m.name.is_some() {
            field("name", false, found);
        }
        if m.kind != MountType::Tmpfs && m.size.is_some() {
            field("size", false, found);
        }
        if m.kind != MountType::Bind && m.allow_system_path {
            field("allow_system_path", false, found);
        }
        let mount = match m.kind {
            MountType::Bind => m.source.clone().map(|source| Mount::Bind {
                source,
                target: m.target.clone(),
                readonly: m.readonly,
                allow_system_path: m.allow_system_path,
            }),
            MountType::Tmpfs => {
                if m.size.is_some_and(|s| s.bytes() == 0) {
                    found.push((at!["mounts", i, "size"], Rule::ZeroSize("a tmpfs size")));
                }
                Some(Mount::Tmpfs {
                    target: m.target.clone(),
                    size: m.size,
                    readonly: m.readonly,
                })
            }
            MountType::Volume => m.name.clone().map(|name| Mount::Volume {
                name,
                target: m.target.clone(),
                readonly: m.readonly,
            }),
        };
        match mount {
            Some(mount) => mounts.push(mount),
            None if m.kind == MountType::Bind => field("source", true, found),
            None => field("name", true, found),
        }
        let system = ["/proc", "/sys", "/dev"].map(|p| p.parse::<AbsPath>());
        if system.iter().flatten().any(|s| m.target.is_within(s)) {
            found.push((
                at!["mounts", i, "target"],
                Rule::MountOverSystem {
                    target: m.target.to_string(),
                },
            ));
        }
        if let Some(other) = raw
            .iter()
            .take(i)
            .find(|o| o.target.is_within(&m.target) || m.target.is_within(&o.target))
        {
            found.push((
                at!["mounts", i, "target"],
                Rule::MountOverlap {
                    target: m.target.to_string(),
                    other: other.target.to_string(),
                },
            ));
        }
    }
    (found.len() == before).then_some(mounts)
}

fn check_healthcheck(h: RawHealthcheck, found: &mut Vec<Finding>) -> Option<Healthcheck> {
    let probes = usize::from(h.exec.is_some())
        + usize::from(h.tcp.is_some())
        + usize::from(h.http.is_some());
    if let Some(exec) = &h.exec {
        check_command(exec, at!["healthcheck", "exec"], found);
    }
    let interval = h.interval.unwrap_or(Healthcheck::DEFAULT_INTERVAL);
    if interval.is_zero() {
        found.push((at!["healthcheck", "interval"], Rule::ZeroInterval));
    }
    // Unset, the timeout is the default but never more than half the interval.
    let timeout = h.timeout.unwrap_or_else(|| {
        Healthcheck::DEFAULT_TIMEOUT.min(Duration::from_millis(interval.as_millis() / 2))
    });
    if timeout >= interval && !interval.is_zero() {
        let path = match h.timeout {
            Some(_) => at!["healthcheck", "timeout"],
            None => at!["healthcheck", Seg::KeyOf("interval")],
        };
        found.push((path, Rule::TimeoutNotBelowInterval { timeout, interval }));
    }
    let probe = match (h.exec, h.tcp, h.http) {
        (Some(exec), None, None) => Probe::Exec(exec),
        (None, Some(port), None) => Probe::Tcp(port),
        (None, None, Some(url)) => Probe::Http(url),
        _ => {
            found.push((at![Seg::KeyOf("healthcheck")], Rule::ProbeCount(probes)));
            return None;
        }
    };
    Some(Healthcheck {
        probe,
        interval,
        timeout,
        retries: h.retries,
        start_period: h.start_period,
        on_unhealthy: h.on_unhealthy,
    })
}
