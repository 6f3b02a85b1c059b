//! Resolution of `devices:` on this host's `/dev` (no root needed: nothing is
//! created), the operations and cgroup rules it makes.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

use super::*;

fn paths(list: &[&str]) -> Vec<AbsPath> {
    list.iter().map(|p| p.parse().unwrap()).collect()
}

fn refused(path: &str) -> String {
    resolve("gw", &paths(&[path])).unwrap_err()
}

#[test]
fn a_device_node_becomes_a_node_or_a_bind_and_one_rule() {
    let nodes = resolve("gw", &paths(&["/dev/null"])).unwrap();
    assert_eq!(nodes.len(), 1);
    let null = &nodes[0];
    assert_eq!(
        (null.path.as_str(), null.host.as_path()),
        ("/dev/null", Path::new("/dev/null"))
    );
    assert_eq!((null.block, null.major(), null.minor()), (false, 1, 3));
    assert_eq!(rules(&nodes), [Rule::char(1, 3)]);
    match op(null, false).unwrap() {
        Op::Node {
            dir,
            name,
            mode,
            rdev,
        } => {
            assert_eq!(
                (dir.to_str().unwrap(), name.to_str().unwrap()),
                ("dev", "null")
            );
            assert_eq!(mode & libc::S_IFMT, libc::S_IFCHR);
            assert_eq!(rdev, null.rdev);
        }
        other => panic!("{other:?}"),
    }
    match op(null, true).unwrap() {
        Op::Bind {
            source,
            target,
            kind,
            flags,
        } => {
            assert_eq!(
                (source.to_str().unwrap(), target.to_str().unwrap()),
                ("/dev/null", "dev/null")
            );
            assert_eq!(kind, Kind::File);
            assert_eq!(flags, libc::MS_NOSUID | libc::MS_NOEXEC);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn only_device_nodes_under_dev_are_given() {
    assert_eq!(
        refused("/proc"),
        "gw: device /proc is not under /dev: only device nodes can be given to an app"
    );
    assert_eq!(
        refused("/dev"),
        "gw: device /dev is not under /dev: only device nodes can be given to an app"
    );
    assert_eq!(
        refused("/devices/x"),
        "gw: device /devices/x is not under /dev: only device nodes can be given to an app"
    );
    // /dev/fd -> /proc/self/fd: a link out of /dev.
    let e = refused("/dev/fd");
    assert!(
        e.starts_with("gw: device /dev/fd resolves to /proc/")
            && e.ends_with(", which is not under /dev"),
        "{e}"
    );
    assert_eq!(
        refused("/dev/no-such-device"),
        "gw: device /dev/no-such-device does not exist on this host"
    );
}

#[test]
fn a_directory_is_its_nodes_and_nothing_else() {
    // A fixture with no node in it: a file, a link to a node, a subdirectory.
    let dir = std::env::temp_dir().join(format!("berth-devdir-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("file"), "x").unwrap();
    std::os::unix::fs::symlink("/dev/null", dir.join("link")).unwrap();
    let mut out = Vec::new();
    expand("gw", "/dev/fixture", &dir, 0, &mut out).unwrap();
    assert_eq!(out, []);
    fs::remove_dir_all(&dir).unwrap();
    // Expanding a directory of /dev that holds nodes gives each under its own name.
    let shm = fs::symlink_metadata("/dev/shm");
    if shm.is_ok_and(|m| m.is_dir()) {
        let e = refused("/dev/shm");
        assert!(
            e == "gw: device directory /dev/shm holds no device nodes on this host"
                || resolve("gw", &paths(&["/dev/shm"])).is_ok(),
            "{e}"
        );
    }
}

#[test]
fn under_dev_is_component_wise() {
    assert!(under_dev(Path::new("/dev/null")));
    assert!(under_dev(Path::new("/dev/snd/pcmC0D0p")));
    assert!(!under_dev(Path::new("/dev")));
    assert!(!under_dev(Path::new("/devx/null")));
    assert!(!under_dev(Path::new("/proc/self/root/dev/null")));
}
