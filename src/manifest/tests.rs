//! The loader end to end on in-memory manifests: every field, every default, and each
//! rule with its exact kind, line and column.

use std::path::PathBuf;

use super::model::{Condition, Mount, Namespace, OnUnhealthy, Probe, RestartPolicy, Seccomp};
use super::types::{Capability, NetworkMode, User};
use super::*;

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// Lines 1 and 2 of every test manifest.
fn head(name: &str) -> String {
    format!("name: {name}\nimage: {{ path: images/app.tar, sha256: {SHA} }}\n")
}

fn load_set(files: &[(&str, String)]) -> Loaded {
    load_texts(
        files
            .iter()
            .map(|(f, t)| (PathBuf::from("apps.d").join(f), t.clone())),
    )
}

/// The problems of one manifest (after the two head lines) as (kind, line, column).
fn problems(body: &str) -> Vec<(String, usize, usize)> {
    let loaded = load_set(&[("app.yaml", head("app") + body)]);
    assert!(loaded.apps.is_empty() != loaded.problems.is_empty());
    loaded
        .problems
        .iter()
        .map(|p| {
            let pos = p.pos.unwrap_or(Pos { line: 0, column: 0 });
            (p.kind.name(), pos.line, pos.column)
        })
        .collect()
}

fn one(kind: &str, line: usize, column: usize) -> Vec<(String, usize, usize)> {
    vec![(kind.to_owned(), line, column)]
}

const FULL: &str = r#"name: gateway
image:
  path: images/gateway.tar
  sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
command: ["/bin/gateway", "--port", "8080"]
env: { LOG_LEVEL: info, RETRIES: 3 }
workdir: /srv
user: "1000:1000"
hostname: gw-1
init: true
namespaces: [pid, mount, uts, ipc, net, user]
user_namespace: { uid_map: "0:100000:65536", gid_map: "0:100000:65536" }
network:
  mode: bridge
  ports: ["8080:80/tcp"]
resources:
  memory: 64M
  memory_swap: 16M
  cpu: 0.5
  cpu_weight: 100
  pids: 64
  cpuset: "0-1"
  io_weight: 100
mounts:
  - { type: bind, source: /data/gateway, target: /var/lib/gateway }
  - { type: bind, source: /etc/ssl/certs, target: /etc/ssl/certs, readonly: true }
  - { type: tmpfs, target: /tmp, size: 8M }
  - { type: volume, name: cache, target: /cache }
devices: ["/dev/ttyUSB0"]
readonly_rootfs: true
capabilities: { add: [NET_BIND_SERVICE], drop: [ALL] }
seccomp: unconfined
healthcheck:
  http: "http://127.0.0.1:8080/healthz"
  interval: 10s
  timeout: 2s
  retries: 3
  start_period: 30s
  on_unhealthy: none
restart:
  policy: on-failure
  backoff: { initial: 100ms, max: 30s }
  max_restarts: 10
  window: 5m
depends_on:
  - { app: broker, condition: healthy }
stop: { signal: SIGINT, timeout: 10s }
logs: { max_size: 1M, max_files: 3 }
"#;

#[test]
fn every_field_of_the_design_example() {
    let broker = head("broker") + "healthcheck: { tcp: 1883 }\n";
    let loaded = load_set(&[("broker.yaml", broker), ("gateway.yaml", FULL.to_owned())]);
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let m = &loaded.apps[1];
    assert_eq!(m.name.as_str(), "gateway");
    assert_eq!(m.image.resolved, PathBuf::from("apps.d/images/gateway.tar"));
    assert_eq!(m.image.sha256.as_str(), SHA);
    let cmd: Vec<&str> = m
        .command
        .as_ref()
        .unwrap()
        .as_slice()
        .iter()
        .map(|a| a.as_str())
        .collect();
    assert_eq!(cmd, ["/bin/gateway", "--port", "8080"]);
    let env: Vec<(&str, &str)> = m
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env, [("LOG_LEVEL", "info"), ("RETRIES", "3")]);
    assert_eq!(m.workdir.as_ref().unwrap().as_str(), "/srv");
    assert_eq!(
        m.user,
        Some(User {
            uid: 1000,
            gid: 1000
        })
    );
    assert_eq!(m.hostname.as_str(), "gw-1");
    assert!(m.init);
    assert_eq!(m.namespaces.len(), 6);
    assert_eq!(
        m.user_namespace.as_ref().unwrap().uid_map.to_host(1000),
        Some(101000)
    );
    assert_eq!(m.network.mode, NetworkMode::Bridge);
    assert_eq!(m.network.ports[0].to_string(), "8080:80/tcp");
    let r = &m.resources;
    assert_eq!(r.memory.unwrap().bytes(), 64 << 20);
    assert_eq!(r.memory_swap.bytes(), 16 << 20);
    assert_eq!(r.cpu.unwrap().millis(), 500);
    assert_eq!(r.cpu_weight.unwrap().get(), 100);
    assert_eq!(r.pids.unwrap().get(), 64);
    assert_eq!(r.cpuset.as_ref().unwrap().as_str(), "0-1");
    assert_eq!(r.io_weight.unwrap().get(), 100);
    assert_eq!(m.mounts.len(), 4);
    assert!(matches!(&m.mounts[1], Mount::Bind { readonly: true, .. }));
    assert!(matches!(&m.mounts[2], Mount::Tmpfs { size: Some(s), .. } if s.bytes() == 8 << 20));
    assert!(matches!(&m.mounts[3], Mount::Volume { name, .. } if name.as_str() == "cache"));
    assert_eq!(m.devices[0].as_str(), "/dev/ttyUSB0");
    assert!(m.readonly_rootfs);
    assert_eq!(m.capabilities.add, [Capability::One(10)]);
    assert_eq!(m.capabilities.drop, [Capability::All]);
    assert_eq!(m.seccomp, Seccomp::Unconfined);
    let h = m.healthcheck.as_ref().unwrap();
    assert!(matches!(&h.probe, Probe::Http(u) if u.port == 8080 && u.path == "/healthz"));
    assert_eq!(
        (h.interval.as_millis(), h.timeout.as_millis()),
        (10_000, 2_000)
    );
    assert_eq!((h.retries.get(), h.start_period.as_millis()), (3, 30_000));
    assert_eq!(h.on_unhealthy, OnUnhealthy::None);
    assert_eq!(m.restart.policy, RestartPolicy::OnFailure);
    assert_eq!(
        (
            m.restart.backoff.initial.as_millis(),
            m.restart.backoff.max.as_millis()
        ),
        (100, 30_000)
    );
    assert_eq!(
        (m.restart.max_restarts, m.restart.window.as_millis()),
        (10, 300_000)
    );
    assert_eq!(m.depends_on[0].condition, Condition::Healthy);
    assert_eq!(
        (m.stop.signal.number(), m.stop.timeout.as_millis()),
        (libc::SIGINT, 10_000)
    );
    assert_eq!(
        (m.logs.max_size.bytes(), m.logs.max_files.get()),
        (1 << 20, 3)
    );
}

#[test]
fn defaults_of_a_minimal_manifest() {
    let loaded = load_set(&[("min.yaml", head("min"))]);
    let m = &loaded.apps[0];
    assert!(m.command.is_none() && m.env.is_empty() && m.workdir.is_none());
    assert_eq!(m.user, None);
    assert_eq!(m.hostname.as_str(), "min");
    assert!(!m.init && !m.readonly_rootfs);
    use Namespace::*;
    assert_eq!(m.namespaces, [Pid, Mount, Uts, Ipc, Net]);
    assert_eq!(m.network.mode, NetworkMode::None);
    assert!(m.resources.memory.is_none() && m.resources.cpu.is_none());
    assert_eq!(m.resources.memory_swap.bytes(), 0);
    assert_eq!(m.seccomp, Seccomp::Default);
    assert!(m.healthcheck.is_none());
    assert_eq!(m.restart.policy, RestartPolicy::Always);
    assert_eq!(
        (
            m.restart.backoff.initial.as_millis(),
            m.restart.backoff.max.as_millis()
        ),
        (100, 30_000)
    );
    assert_eq!(
        (m.restart.max_restarts, m.restart.window.as_millis()),
        (10, 300_000)
    );
    assert_eq!(
        (m.stop.signal.number(), m.stop.timeout.as_millis()),
        (libc::SIGTERM, 10_000)
    );
    assert_eq!(
        (m.logs.max_size.bytes(), m.logs.max_files.get()),
        (1 << 20, 3)
    );
    // Host networking: no net namespace of its own by default.
    let loaded = load_set(&[("h.yaml", head("h") + "network: { mode: host }\n")]);
    assert_eq!(loaded.apps[0].namespaces, [Pid, Mount, Uts, Ipc]);
    // Healthcheck timings.
    let loaded = load_set(&[(
        "h.yaml",
        head("h") + "healthcheck: { tcp: 80, interval: 4s }\n",
    )]);
    let h = loaded.apps[0].healthcheck.as_ref().unwrap();
    assert_eq!(
        (
            h.timeout.as_millis(),
            h.retries.get(),
            h.start_period.as_millis()
        ),
        (2_000, 3, 0)
    );
    assert_eq!(h.on_unhealthy, OnUnhealthy::Restart);
    let loaded = load_set(&[("h.yaml", head("h") + "healthcheck: { exec: [/bin/true] }\n")]);
    let h = loaded.apps[0].healthcheck.as_ref().unwrap();
    assert_eq!(
        (h.interval.as_millis(), h.timeout.as_millis()),
        (30_000, 5_000)
    );
}

#[test]
fn parse_errors_have_kind_line_and_column() {
    assert_eq!(
        problems("resources:\n  memroy: 64M\n"),
        one("UnknownField", 4, 3)
    );
    assert_eq!(
        problems("resources:\n  memory: 64MB\n"),
        one("InvalidValue", 4, 11)
    );
    assert_eq!(problems("colour: red\n"), one("UnknownField", 3, 1));
    assert_eq!(problems("init: yes\n"), one("WrongType", 3, 7));
    assert_eq!(problems("command: /bin/app\n"), one("WrongType", 3, 10));
    assert_eq!(
        problems("restart: { policy: sometimes }\n"),
        one("InvalidValue", 3, 20)
    );
    assert_eq!(
        problems("env:\n  A: 1\n  A: 2\n"),
        one("DuplicateKey", 5, 3)
    );
    assert_eq!(problems("name: again\n"), one("DuplicateKey", 3, 1));
    assert_eq!(problems("env: { 1A: x }\n"), one("InvalidValue", 3, 8));
    assert_eq!(
        problems("stop: { signal: SIGFOO }\n"),
        one("InvalidValue", 3, 17)
    );
    assert_eq!(
        problems("healthcheck: { tcp: 80, interval: 10 }\n"),
        one("InvalidValue", 3, 35)
    );
    assert_eq!(
        problems("resources: { cpu: 0 }\n"),
        one("InvalidValue", 3, 19)
    );
    assert_eq!(
        problems("mounts: [ { type: tmpfs, target: tmp } ]\n"),
        one("InvalidValue", 3, 34)
    );
    assert_eq!(
        problems("mounts: [ { type: bind, source: /a, target: /x/../etc } ]\n"),
        one("InvalidValue", 3, 45)
    );
    assert_eq!(
        problems("user_namespace: { uid_map: \"0:1\", gid_map: \"0:1:1\" }\n"),
        one("InvalidValue", 3, 28)
    );
    assert_eq!(
        problems("network: { mode: nat }\n"),
        one("InvalidValue", 3, 18)
    );
    assert_eq!(problems("devices: [ttyUSB0]\n"), one("InvalidValue", 3, 11));
    assert_eq!(problems("  bad: [indent\n"), one("Syntax", 3, 3));
    let loaded = load_set(&[("x.yaml", "image: { path: a.tar, sha256: 00 }\n".into())]);
    assert_eq!(loaded.problems[1].kind.name(), "InvalidValue");
    let loaded = load_set(&[("x.yaml", String::new())]);
    assert_eq!(loaded.problems[0].kind.name(), "MissingField");
    let loaded = load_set(&[("x.yaml", head("x") + "---\nname: y\n")]);
    assert_eq!(loaded.problems[0].kind.name(), "Syntax");
    assert_eq!(
        loaded.problems[0].to_string(),
        "apps.d/x.yaml:3:1: a file holds one YAML document; this one has a second (---)"
    );
}

#[test]
fn rules_of_one_manifest() {
    assert_eq!(problems("command: []\n"), one("EmptyCommand", 3, 10));
    assert_eq!(problems("command: [\"\"]\n"), one("EmptyCommand", 3, 10));
    assert_eq!(
        problems("healthcheck: { interval: 5s }\n"),
        one("ProbeCount", 3, 1)
    );
    assert_eq!(
        problems("healthcheck:\n  tcp: 80\n  exec: [/bin/true]\n"),
        one("ProbeCount", 3, 1)
    );
    assert_eq!(
        problems("healthcheck: { tcp: 80, interval: 2s, timeout: 2s }\n"),
        one("TimeoutNotBelowInterval", 3, 48)
    );
    assert_eq!(
        problems("healthcheck: { tcp: 80, interval: 0s }\n"),
        one("ZeroInterval", 3, 35)
    );
    assert_eq!(
        problems("healthcheck: { exec: [] }\n"),
        one("EmptyCommand", 3, 22)
    );
    assert_eq!(
        problems("restart: { backoff: { initial: 1m, max: 30s } }\n"),
        one("BackoffInverted", 3, 32)
    );
    assert_eq!(
        problems("restart: { window: 0s }\n"),
        one("ZeroWindow", 3, 20)
    );
    assert_eq!(
        problems("resources: { memory: 0 }\n"),
        one("ZeroSize", 3, 22)
    );
    assert_eq!(
        problems("resources: { memory_swap: 8M }\n"),
        one("SwapWithoutMemory", 3, 27)
    );
    assert_eq!(
        problems("logs: { max_size: 0 }\n"),
        one("LogSizeTooSmall", 3, 19)
    );
    assert_eq!(
        problems("logs: { max_size: 4095 }\n"),
        one("LogSizeTooSmall", 3, 19)
    );
    assert!(problems("logs: { max_size: 4K, max_files: 100 }\n").is_empty());
    assert_eq!(
        problems("logs:\n  max_files: 101\n  max_size: 1\n"),
        [
            ("LogFilesTooMany".to_owned(), 4, 14),
            ("LogSizeTooSmall".to_owned(), 5, 13)
        ]
    );
    assert_eq!(
        problems("network: { ports: [\"80:80\"] }\n"),
        one("PortsNeedBridge", 3, 19)
    );
    assert_eq!(
        problems("network: { mode: bridge, ports: [\"80:80\", \"80:81\"] }\n"),
        one("DuplicatePort", 3, 43)
    );
    assert_eq!(problems("network: { mode: \"container:app\" }\n"), {
        // Also: no net namespace of its own, by default.
        one("NetworkContainerSelf", 3, 18)
    });
    assert_eq!(
        problems("mounts:\n  - { type: bind, target: /x }\n"),
        one("MountField", 4, 5)
    );
    assert_eq!(
        problems("mounts:\n  - { type: volume, target: /x }\n"),
        one("MountField", 4, 5)
    );
    assert_eq!(
        problems("mounts:\n  - { type: tmpfs, target: /x, source: /y }\n"),
        one("MountField", 4, 32)
    );
    assert_eq!(
        problems("mounts:\n  - { type: bind, source: /y, target: /x, size: 1M }\n"),
        one("MountField", 4, 43)
    );
    assert_eq!(
        problems("mounts:\n  - { type: tmpfs, target: /x, size: 0 }\n"),
        one("ZeroSize", 4, 38)
    );
    assert_eq!(
        problems(
            "mounts:\n  - { type: tmpfs, target: /data }\n  - { type: volume, name: v, target: /data/v }\n"
        ),
        one("MountOverlap", 5, 38)
    );
    assert_eq!(
        problems("mounts:\n  - { type: tmpfs, target: /dev/shm }\n"),
        one("MountOverSystem", 4, 28)
    );
    assert_eq!(
        problems("devices: [/dev/ttyS0, /dev/ttyS0]\n"),
        one("DuplicateDevice", 3, 23)
    );
    assert_eq!(
        problems("devices: [/dev/ttyS0, /proc]\n"),
        one("DeviceNotUnderDev", 3, 23)
    );
    assert_eq!(
        problems("devices: [/dev]\n"),
        one("DeviceNotUnderDev", 3, 11)
    );
    let loaded = load_set(&[("p.yaml", head("p") + "devices: [/proc]\n")]);
    assert_eq!(
        loaded.problems[0].to_string(),
        "apps.d/p.yaml:3:11: p: device /proc is not under /dev: only character and block device \
         nodes (or a directory of them) under /dev can be given to an app"
    );
    assert_eq!(
        problems("devices: [/devices]\n"),
        one("DeviceNotUnderDev", 3, 11)
    );
    assert_eq!(
        problems("namespaces: [pid, mount, net, pid]\n"),
        one("DuplicateNamespace", 3, 31)
    );
    assert_eq!(
        problems("namespaces: [pid, net]\n"),
        one("MountNamespaceRequired", 3, 13)
    );
    assert_eq!(
        problems("namespaces: [mount]\n"),
        one("NetNamespace", 3, 13)
    );
    assert_eq!(
        problems("namespaces: [mount, net]\nnetwork: { mode: host }\n"),
        one("NetNamespace", 3, 13)
    );
    assert_eq!(
        problems("namespaces: [mount, net, user]\n"),
        one("UserNamespaceNeedsMap", 3, 13)
    );
    assert_eq!(
        problems("user_namespace: { uid_map: \"0:1000:1\", gid_map: \"0:1000:1\" }\n"),
        one("UserNamespaceWithoutUser", 3, 1)
    );
    assert_eq!(
        problems(
            "namespaces: [mount, net, user]\nuser: \"5:0\"\nuser_namespace: { uid_map: \"0:1000:1\", gid_map: \"0:1000:1\" }\n"
        ),
        one("UserNotMapped", 4, 7)
    );
    // A map that gives the app the host's root needs allow_host_root.
    let userns = |maps: &str| {
        problems(&format!(
            "namespaces: [mount, net, user]\nuser_namespace: {{ {maps} }}\n"
        ))
    };
    assert_eq!(
        userns("uid_map: \"0:0:65536\", gid_map: \"0:100000:65536\""),
        one("UserNamespaceMapsHostRoot", 4, 28)
    );
    assert_eq!(
        userns("uid_map: \"0:100000:65536\", gid_map: \"0:100000:1, 1:0:1\""),
        one("UserNamespaceMapsHostRoot", 4, 55)
    );
    assert_eq!(
        userns("uid_map: \"0:0:1\", gid_map: \"0:0:1\", allow_host_root: true"),
        vec![]
    );
    // Bind sources: /proc and /sys (berth's directories come with its settings).
    assert_eq!(
        problems("mounts: [{ type: bind, source: /proc/self/root, target: /host }]\n"),
        one("BindSourceReserved", 3, 32)
    );
    assert_eq!(
        problems("mounts: [{ type: bind, source: /sys, target: /s, allow_system_path: true }]\n"),
        vec![]
    );
    assert_eq!(
        problems("mounts: [{ type: tmpfs, target: /t, allow_system_path: true }]\n"),
        one("MountField", 3, 37)
    );
    assert_eq!(
        problems("capabilities: { add: [NET_RAW], drop: [CAP_NET_RAW] }\n"),
        one("CapabilityAddedAndDropped", 3, 23)
    );
    // Refused alone, so the unknown `db` is not looked up.
    assert_eq!(
        problems("depends_on: [{ app: db }, { app: db }]\n"),
        one("DuplicateDependency", 3, 34)
    );
}

#[test]
fn messages_of_the_host_rules() {
    let text = head("web")
        + "namespaces: [mount, net, user]\nuser_namespace: { uid_map: \"0:0:65536\", gid_map: \"0:100000:65536\" }\n\
           mounts:\n  - { type: bind, source: /proc/self/root, target: /host }\n";
    let loaded = load_set(&[("web.yaml", text)]);
    let lines: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "apps.d/web.yaml:4:28: web: user_namespace.uid_map maps host id 0 (the host's root) to 0 in the app: map a range of unused host ids (e.g. 0:100000:65536), or set user_namespace.allow_host_root: true if the app must own the host's files",
        ]
    );
    let text =
        head("web") + "mounts:\n  - { type: bind, source: /proc/self/root, target: /host }\n";
    let loaded = load_set(&[("web.yaml", text)]);
    let lines: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "apps.d/web.yaml:4:27: web: bind mount source /proc/self/root (which is /) overlaps /proc: an app given it could reach the host or berth's own files; bind another directory, or set allow_system_path: true on this mount",
        ]
    );
}

#[test]
fn rules_of_a_set_of_manifests() {
    let a = head("a") + "depends_on: [{ app: b }]\n";
    let b = head("b") + "depends_on: [{ app: c }]\n";
    let c = head("c") + "depends_on: [{ app: a }]\n";
    let d = head("d") + "depends_on: [{ app: a }]\n";
    let loaded = load_set(&[("a.yaml", a), ("b.yaml", b), ("c.yaml", c), ("d.yaml", d)]);
    let printed: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        printed,
        [
            "apps.d/a.yaml:3:21: a: dependency cycle: a -> b -> c -> a",
            "apps.d/b.yaml:3:21: b: dependency cycle: b -> c -> a -> b",
            "apps.d/c.yaml:3:21: c: dependency cycle: c -> a -> b -> c",
            "apps.d/d.yaml:3:21: d: depends_on names a, which is invalid and will not run",
        ]
    );
    assert_eq!(loaded.invalid, 4);

    let self_dep = head("s") + "depends_on: [{ app: s }]\n";
    let loaded = load_set(&[("s.yaml", self_dep)]);
    assert_eq!(
        loaded.problems[0].to_string(),
        "apps.d/s.yaml:3:21: s: dependency cycle: s -> s"
    );

    let one_name = [("x1.yaml", head("x")), ("x2.yaml", head("x"))];
    let loaded = load_set(&one_name);
    assert_eq!(loaded.apps.len(), 1);
    assert_eq!(
        loaded.problems[0].to_string(),
        "apps.d/x2.yaml:1:7: x: app name already used by apps.d/x1.yaml"
    );

    let web = head("web") + "network: { mode: bridge, ports: [\"8080:80\"] }\n";
    let api =
        head("api") + "network: { mode: bridge, ports: [\"443:443\", \"0.0.0.0:8080:81/tcp\"] }\n";
    let dns = head("dns") + "network: { mode: bridge, ports: [\"8080:53/udp\"] }\n";
    let loaded = load_set(&[("api.yaml", api), ("dns.yaml", dns), ("web.yaml", web)]);
    assert_eq!(loaded.apps.len(), 2);
    assert_eq!(
        loaded.problems[0].to_string(),
        "apps.d/web.yaml:3:34: web: host port 8080/tcp of 8080:80/tcp is already forwarded by api (0.0.0.0:8080:81/tcp in apps.d/api.yaml)"
    );

    let owner = head("owner") + "network: { mode: bridge }\n";
    let side = head("side") + "network: { mode: \"container:owner\" }\n";
    let chained = head("chained") + "network: { mode: \"container:side\" }\n";
    let lost = head("lost") + "network: { mode: \"container:ghost\" }\n";
    let loaded = load_set(&[
        ("chained.yaml", chained),
        ("lost.yaml", lost),
        ("owner.yaml", owner),
        ("side.yaml", side),
    ]);
    let printed: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        printed,
        [
            "apps.d/chained.yaml:3:18: chained: network.mode container:side: side itself uses network.mode container:owner; name the app that owns the network",
            "apps.d/lost.yaml:3:18: lost: network.mode container:ghost names an app that does not exist",
        ]
    );
    assert_eq!(loaded.apps.len(), 2);
    assert!(!loaded.apps[1].namespaces.contains(&Namespace::Net));
    // The owner of the network is refused, so its guest is refused with it.
    let owner = head("owner")
        + "network: { mode: bridge, ports: [\"80:80/tcp\"] }\nresources: { memory: 0 }\n";
    let guest = head("guest") + "network: { mode: \"container:owner\" }\n";
    let loaded = load_set(&[("guest.yaml", guest), ("owner.yaml", owner)]);
    let printed: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        printed,
        [
            "apps.d/guest.yaml:3:18: guest: network.mode container:owner names an app that is invalid and will not run",
            "apps.d/owner.yaml:4:22: owner: resources.memory must be more than 0",
        ]
    );

    let db = head("db") + "resources: { memory: 64MB }\n";
    let api = head("api") + "depends_on: [{ app: db }, { app: cache, condition: healthy }]\n";
    let cache = head("cache");
    let loaded = load_set(&[("api.yaml", api), ("cache.yaml", cache), ("db.yaml", db)]);
    let kinds: Vec<String> = loaded.problems.iter().map(|p| p.kind.name()).collect();
    assert_eq!(kinds, ["HealthyNeedsHealthcheck", "InvalidValue"]);
    assert_eq!(
        loaded.problems[0].pos,
        Some(Pos {
            line: 3,
            column: 52
        })
    );
    assert_eq!(loaded.apps.len(), 1);
    // A dependant of a file that does not parse is refused, and says why.
    let loaded = load_set(&[
        ("api.yaml", head("api") + "depends_on: [{ app: db }]\n"),
        ("db.yaml", head("db") + "oops: 1\n"),
    ]);
    assert_eq!(
        loaded.problems[0].to_string(),
        "apps.d/api.yaml:3:21: api: depends_on names db, which is invalid and will not run"
    );
}

#[test]
fn init_true_is_refused_at_load_by_a_berth_that_cannot_run_it() {
    let text = head("web") + "command: [/bin/web]\ninit: true\n";
    let load = |supported: bool| {
        load_texts_with(
            [(PathBuf::from("apps.d/web.yaml"), text.clone())],
            &Reserved::system().with_init(supported),
        )
    };
    let refused = load(false);
    assert!(refused.apps.is_empty());
    assert_eq!(refused.invalid, 1);
    let printed: Vec<String> = refused.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        printed,
        [
            "apps.d/web.yaml:4:7: web: init: true needs a statically linked berth, and this one \
             is dynamically linked: its copy, run as the app's pid 1, would need a dynamic \
             loader that the app's root does not have (build berth for a *-linux-musl target)"
        ]
    );
    assert_eq!(refused.problems[0].kind.name(), "InitNeedsStaticBerth");
    assert_eq!(load(true).apps.len(), 1);
    // Without init: true, any berth runs the app.
    let plain = head("web") + "command: [/bin/web]\ninit: false\n";
    let loaded = load_texts_with(
        [(PathBuf::from("apps.d/web.yaml"), plain)],
        &Reserved::system().with_init(false),
    );
    assert_eq!((loaded.apps.len(), loaded.problems.len()), (1, 0));
    // The default is this build's own linking.
    assert_eq!(
        load_texts_with(
            [(PathBuf::from("apps.d/web.yaml"), text.clone())],
            &Reserved::system()
        )
        .apps
        .len(),
        usize::from(reserve::STATIC_BERTH)
    );
}

/// The problems of a whole file as (kind, line, column).
fn problems_of(text: &str) -> Vec<(String, usize, usize)> {
    load_set(&[("app.yaml", text.to_owned())])
        .problems
        .iter()
        .map(|p| {
            let pos = p.pos.unwrap_or(Pos { line: 0, column: 0 });
            (p.kind.name(), pos.line, pos.column)
        })
        .collect()
}

fn kinds(list: &[(&str, usize, usize)]) -> Vec<(String, usize, usize)> {
    list.iter().map(|&(k, l, c)| (k.to_owned(), l, c)).collect()
}

#[test]
fn every_parse_problem_of_a_file_in_file_order() {
    let three = "resources:\n  memroy: 64M\n  cpu: lots\ninit: yes\n";
    assert_eq!(
        problems(three),
        kinds(&[
            ("UnknownField", 4, 3),
            ("InvalidValue", 5, 8),
            ("WrongType", 6, 7)
        ])
    );
    let loaded = load_set(&[("app.yaml", head("app") + three)]);
    assert_eq!(loaded.invalid, 1);
    assert_eq!(
        loaded.problems[2].to_string(),
        "apps.d/app.yaml:6:7: app: init: invalid type: string \"yes\", expected a boolean"
    );
    // Flow mappings, list items and a repeated key.
    assert_eq!(
        problems(
            "restart: { policy: sometimes, window: 5m, colour: red }\n\
             mounts:\n  - type: tmpfs\n    target: tmp\n  - { type: bind, source: /a, target: /b, mode: rw }\n\
             env:\n  A: 1\n  A: 2\ndevices: [ttyUSB0]\n"
        ),
        kinds(&[
            ("InvalidValue", 3, 20),
            ("UnknownField", 3, 43),
            // (The rest of a list is not read after a bad value in one of its items.)
            ("InvalidValue", 6, 13),
            ("DuplicateKey", 10, 3),
            ("InvalidValue", 11, 11)
        ])
    );
}

#[test]
fn a_blanked_entry_causes_no_problem_of_its_own() {
    // A bad name, then a missing one would follow; an item left empty likewise.
    assert_eq!(
        problems_of(&format!(
            "name: Bad_Name\nimage: {{ path: a.tar, sha256: {SHA} }}\ncolour: red\n"
        )),
        kinds(&[("InvalidValue", 1, 7), ("UnknownField", 3, 1)])
    );
    assert_eq!(
        problems("mounts:\n  - type: sometimes\ninit: 3\n"),
        kinds(&[("InvalidValue", 4, 11), ("WrongType", 5, 7)])
    );
    assert_eq!(
        problems_of("image: { path: a.tar, sha256: 00 }\nnamespace: [pid]\n"),
        kinds(&[
            ("MissingField", 1, 1),
            ("InvalidValue", 1, 31),
            ("UnknownField", 2, 1)
        ])
    );
    // Nothing after a syntax error.
    assert_eq!(
        problems("colour: red\n  bad: [indent\n"),
        one("Syntax", 4, 6)
    );
}
