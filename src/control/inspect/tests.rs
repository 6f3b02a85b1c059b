//! The rendered text loads back as the same manifest (the reference manifests, a
//! manifest with every field and hard strings), the process it runs over an image is
//! the one berth's launch works out, and what a manifest cannot say is a comment.

use std::fs;
use std::path::{Path, PathBuf};

use super::render;
use crate::image::ImageDefaults;
use crate::image::process::{Process, resolve};
use crate::manifest::{Manifest, load_texts};
use crate::testdir::TempDir;

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// Loads manifests given as (file, text) together, as one apps directory; every one
/// must be valid.
fn load(files: Vec<(PathBuf, String)>) -> Vec<Manifest> {
    let loaded = load_texts(files);
    assert!(loaded.problems.is_empty(), "{:#?}", loaded.problems);
    loaded.apps
}

/// Renders every app of the set without image defaults, loads the texts from the
/// same files, and checks each app came back exactly as it was.
fn round_trip(files: Vec<(PathBuf, String)>) -> Vec<String> {
    let apps = load(files);
    let texts: Vec<String> = apps.iter().map(|m| render(m, None)).collect();
    let back = load(
        apps.iter()
            .map(|m| m.file.clone())
            .zip(texts.clone())
            .collect(),
    );
    assert_eq!(back.len(), apps.len());
    for ((m, b), text) in apps.iter().zip(&back).zip(&texts) {
        assert_eq!(format!("{b:#?}"), format!("{m:#?}"), "rendered as:\n{text}");
    }
    texts
}

fn one(text: &str) -> Manifest {
    load(vec![(
        PathBuf::from("/etc/berth/apps.d/app.yaml"),
        text.to_owned(),
    )])
    .pop()
    .unwrap()
}

fn dir_files(dir: &Path, suffix: &str) -> Vec<(PathBuf, String)> {
    let mut files: Vec<(PathBuf, String)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .map(|p| {
            let text = fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn reference_manifests_come_back_the_same() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let examples = dir_files(&root.join("manifests/examples"), ".yaml");
    assert_eq!(examples.len(), 4);
    round_trip(examples);
    let demo = dir_files(&root.join("demo/apps"), ".yaml.in")
        .into_iter()
        .map(|(p, t)| {
            let t = t
                .replace("@IMAGE@", "/usr/share/berth/demo.tar")
                .replace("@SHA256@", SHA);
            (p.with_extension(""), t)
        })
        .collect::<Vec<_>>();
    assert_eq!(demo.len(), 4);
    round_trip(demo);
}

/// A manifest with every field set, to hard values, and the apps it names.
fn hard_set() -> Vec<(PathBuf, String)> {
    let hard = format!(
        r##"name: "null"
image: {{ path: "images/a b: c #d.tar", sha256: {SHA} }}
command: ["/bin/app", "", "yes", "no", "on", "off", "1.0", "0x1f", "-v", "a: b", "c #d", "~", "null", "[x]", "{{y}}", "a,b", "*ref", "&anc", "!tag", "%p", "@at", "`b`", "'q'", "\"dq\"", "tab\there", "line\nbreak", "ünï 日本", " lead", "trail ", "True", "Y", ".5", "1e3"]
env:
  "on": "yes"
  "null": ""
  Y: "1.0"
  PATH: /opt/bin:/bin
  HOSTNAME: "#hash"
  DASH: "- item"
  COLON: "key: value"
  NL: "a\nb"
workdir: "/srv/with space/x:y"
user: "1000:1000"
hostname: 0gateway
init: true
namespaces: [mount, pid, user, net]
user_namespace: {{ uid_map: "0:100000:1000,1000:200000:1", gid_map: "0:100000:65536", allow_host_root: false }}
network: {{ mode: bridge, ports: ["8080:80", "127.0.0.1:53:5353/udp"] }}
resources: {{ memory: 64M, memory_swap: 1536, cpu: 0.001, cpu_weight: 1, pids: 1, cpuset: "0-1,3", io_weight: 10000 }}
mounts:
  - {{ type: bind, source: "/data/a b", target: "/x #y", readonly: true, allow_system_path: true }}
  - {{ type: bind, source: /data/c, target: /c }}
  - {{ type: tmpfs, target: /tmp }}
  - {{ type: tmpfs, target: /run, size: 1G, readonly: true }}
  - {{ type: volume, name: "1", target: /v, readonly: true }}
devices: ["/dev/ttyUSB0", "/dev/a,b"]
readonly_rootfs: true
capabilities: {{ add: [NET_BIND_SERVICE, CAP_SYS_TIME], drop: [ALL] }}
seccomp: unconfined
healthcheck: {{ http: "http://localhost:8080/a#b", interval: 90s, timeout: 1500ms, retries: 7, start_period: 1h, on_unhealthy: none }}
restart: {{ policy: never, backoff: {{ initial: 1ms, max: 2h }}, max_restarts: 0, window: 1s }}
depends_on: [{{ app: "yes" }}, {{ app: b, condition: healthy }}]
stop: {{ signal: PWR, timeout: 0ms }}
logs: {{ max_size: 4K, max_files: 100 }}
allow_signals_to_berth: true
"##
    );
    let dep = |name: &str, hc: &str| {
        format!("name: {name}\nimage: {{ path: i.tar, sha256: {SHA} }}\n{hc}")
    };
    let dir = PathBuf::from("/etc/berth/apps.d");
    vec![
        (dir.join("hard.yaml"), hard),
        (dir.join("yes.yaml"), dep("yes", "")),
        (dir.join("b.yaml"), dep("b", "healthcheck: { tcp: 80 }\n")),
        (
            dir.join("c.yaml"),
            dep(
                "c",
                "healthcheck: { exec: [/bin/true, x] }\nnetwork: { mode: \"container:b\" }\nnamespaces: [mount]\n",
            ),
        ),
    ]
}

#[test]
fn every_field_and_hard_strings_come_back_the_same() {
    let all = round_trip(hard_set()).concat();
    for line in [
        "\nname: \"null\"\n",
        "\n  path: \"images/a b: c #d.tar\"  # \"/etc/berth/apps.d/images/a b: c #d.tar\"\n",
        r#"command: [/bin/app, "", "yes", "no", "on", "off", "1.0", "0x1f", "-v", "a: b", "c #d", "~", "null", "[x]", "{y}", "a,b", "*ref", "&anc", "!tag", "%p", "@at", "`b`", "'q'", "\"dq\"", "tab\there", "line\nbreak", "ünï 日本", " lead", "trail ", "True", "Y", ".5", "1e3"]"#,
        "\nenv:\n  \"on\": \"yes\"\n  \"null\": \"\"\n  \"Y\": \"1.0\"\n  PATH: \"/opt/bin:/bin\"\n  HOSTNAME: \"#hash\"\n  DASH: \"- item\"\n  COLON: \"key: value\"\n  NL: \"a\\nb\"\nworkdir: \"/srv/with space/x:y\"\n",
        "\n  ports: [\"8080:80/tcp\", \"127.0.0.1:53:5353/udp\"]\n",
        "\n  cpu: 1m\n",
        "\n  cpuset: \"0-1,3\"\n",
        "\n  - {type: bind, source: \"/data/a b\", target: \"/x #y\", readonly: true, allow_system_path: true}\n",
        "\n  - {type: tmpfs, target: /tmp, size: null, readonly: false}\n",
        "\n  - {type: volume, name: \"1\", target: /v, readonly: true}\n",
        "\ndevices: [/dev/ttyUSB0, \"/dev/a,b\"]\n",
        "\ncapabilities: {add: [NET_BIND_SERVICE, SYS_TIME], drop: [ALL]}\n",
        "\n  - {app: \"yes\", condition: started}\n  - {app: b, condition: healthy}\n",
        "\nstop: {signal: SIGPWR, timeout: 0ms}\n",
        "\nhealthcheck:\n  exec: [/bin/true, x]\n  interval: 30s\n  timeout: 5s\n  retries: 3\n  start_period: 0ms\n  on_unhealthy: restart\n",
        "\nnetwork:\n  mode: \"container:b\"\n  ports: []\n",
    ] {
        assert!(all.contains(line), "{line:?} not in:\n{all}");
    }
}

/// Every field a manifest holds is written (a field added to `Manifest` but not to
/// `render` fails here): the reload's fingerprint is the hash of this text.
#[test]
fn every_field_of_the_manifest_is_written() {
    // Keys whose values are written under another key or in a comment: the file
    // (the header), the image's resolved path (its path and the file's directory),
    // a probe (exec, tcp or http), the parts of a URL, a port forward, an id map or
    // a user.
    let within = [
        "file",
        "resolved",
        "probe",
        "host",
        "port",
        "path",
        "text",
        "host_ip",
        "host_port",
        "app_port",
        "protocol",
        "inside",
        "outside",
        "count",
        "uid",
        "gid",
        "_validated",
    ];
    for m in load(hard_set()) {
        let text = render(&m, None);
        for line in format!("{m:#?}").lines() {
            let Some((key, _)) = line.trim_start().split_once(':') else {
                continue;
            };
            if key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') && !within.contains(&key) {
                assert!(
                    text.contains(&format!("{key}:")),
                    "{key} not written:\n{text}"
                );
            }
        }
    }
}

#[test]
fn defaults_are_written_out() {
    let m = one(&format!(
        "name: web\nimage: {{ path: images/web.tar, sha256: {SHA} }}\n"
    ));
    let want = format!(
        "# web: /etc/berth/apps.d/app.yaml (its image is not installed: the defaults it gives are not shown)
name: web
image:
  path: images/web.tar  # /etc/berth/apps.d/images/web.tar
  sha256: {SHA}
# command: the image's Entrypoint and Cmd
env: {{}}
  # PATH: /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin (berth's default)
  # HOSTNAME: web (berth's default)
# workdir: the image's WorkingDir, else /
# user: the image's User, else 0:0
hostname: web
init: false
namespaces: [pid, mount, uts, ipc, net]
user_namespace: null
network:
  mode: none
  ports: []
resources:
  memory: null
  memory_swap: 0
  cpu: null
  cpu_weight: null
  pids: null
  cpuset: null
  io_weight: null
mounts: []
devices: []
readonly_rootfs: false
capabilities: {{add: [], drop: []}}
seccomp: default
healthcheck: null
restart:
  policy: always
  backoff: {{initial: 100ms, max: 30s}}
  max_restarts: 10
  window: 5m
depends_on: []
stop: {{signal: SIGTERM, timeout: 10s}}
logs: {{max_size: 1M, max_files: 3}}
allow_signals_to_berth: false
"
    );
    assert_eq!(render(&m, None), want);
}

/// The process berth's launch works out for `m` over `image` (no passwd needed:
/// the users here are numeric or absent).
fn process(m: &Manifest, image: &ImageDefaults) -> Process {
    let root = TempDir::new("inspect", "rootfs");
    resolve(m, image, &root.0).unwrap()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn image_defaults_are_merged_as_the_launch_merges_them() {
    let image = ImageDefaults {
        entrypoint: strings(&["/bin/server", "--config"]),
        cmd: strings(&["/etc/server.conf"]),
        env: strings(&[
            "PATH=/opt/bin:/bin",
            "LANG=C.UTF-8",
            "LEVEL=debug",
            "LANG=yes",
        ]),
        workdir: Some("srv/data".into()),
        user: Some("33:33".into()),
    };
    let m = one(&format!(
        "name: web\nimage: {{ path: /images/web.tar, sha256: {SHA} }}\nenv: {{ LEVEL: info, EXTRA: \"1\" }}\n"
    ));
    let text = render(&m, Some(&image));
    let process_lines: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("command"))
        .take_while(|l| !l.starts_with("hostname"))
        .collect();
    assert_eq!(
        process_lines,
        [
            r#"command: [/bin/server, "--config", /etc/server.conf]  # from the image"#,
            "env:",
            r#"  PATH: "/opt/bin:/bin"  # from the image"#,
            r#"  LANG: "yes"  # from the image"#,
            "  LEVEL: info",
            r#"  EXTRA: "1""#,
            "  # HOSTNAME: web (berth's default)",
            "workdir: /srv/data  # from the image",
            r#"user: "33:33"  # from the image"#,
        ],
        "{text}"
    );
    let back = one(&text);
    // Over the same image, or over none: the app runs the same process.
    assert_eq!(process(&back, &image), process(&m, &image));
    assert_eq!(
        process(&back, &ImageDefaults::default()),
        process(&m, &image)
    );
}

#[test]
fn an_image_without_defaults_gives_berths() {
    let m = one(&format!(
        "name: web\nimage: {{ path: /images/web.tar, sha256: {SHA} }}\n"
    ));
    let text = render(&m, Some(&ImageDefaults::default()));
    for line in [
        "# command: none: the manifest sets none and the image has no Entrypoint or Cmd\n",
        "env: {}\n  # PATH: /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin (berth's default)\n  # HOSTNAME: web (berth's default)\n",
        "# workdir: / (the default)\n",
        "user: \"0:0\"  # the default\n",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    one(&text);
}

#[test]
fn what_a_manifest_cannot_say_is_a_comment() {
    let image = ImageDefaults {
        entrypoint: strings(&["/bin/app", "nul\0byte"]),
        cmd: vec![],
        env: strings(&["my-var=1", "GOOD=2", "=empty", "noequals", "NL=a\nb"]),
        workdir: Some("/".into()),
        user: Some("www-data\n#x".into()),
    };
    let m = one(&format!(
        "name: web\nimage: {{ path: /images/web.tar, sha256: {SHA} }}\nuser_namespace: {{ uid_map: \"0:100000:65536\", gid_map: \"0:100000:65536\" }}\nnamespaces: [pid, mount, net, user]\n"
    ));
    let text = render(&m, Some(&image));
    for line in [
        "\n# command: [/bin/app, \"nul\\u0000byte\"] (from the image)\n",
        "\nenv:\n  # my-var: \"1\" (from the image)\n  GOOD: \"2\"  # from the image\n  NL: \"a\\nb\"  # from the image\n  # PATH:",
        "\n# workdir: / (from the image)\n",
        "\n# user: \"www-data\\n#x\" (from the image)\n",
        "\nuser_namespace: {uid_map: \"0:100000:65536\", gid_map: \"0:100000:65536\", allow_host_root: false}\n",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    let back = one(&text);
    assert_eq!(back.command, None);
    assert_eq!(back.user, None);
    assert_eq!(back.workdir, None);
}

#[test]
fn strings_are_quoted_only_where_yaml_would_misread_them() {
    use super::Yaml;
    for plain in [
        "info",
        "/usr/bin",
        "C.UTF-8",
        "a-b_c+d@e",
        "_x",
        "nothing",
        "yesno",
    ] {
        assert_eq!(Yaml(plain).to_string(), plain);
    }
    for s in [
        "", "yes", "No", "ON", "off", "y", "N", "true", "False", "null", "NULL", "~", "1.0", "123",
        "0x1f", ".5", "-x", "- x", "a: b", "a #b", "a b", "a,b", "[x]", "{x}", "*r", "&a", "!t",
        "%d", "@a", "`b`", "'q'", "a:b", "é",
    ] {
        let q = Yaml(s).to_string();
        assert!(q.starts_with('"'), "{s:?} written as {q}");
        let back: String = serde_yaml::from_str(&q).unwrap();
        assert_eq!(back, s);
    }
}
