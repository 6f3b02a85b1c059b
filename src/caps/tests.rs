#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::fs;
use std::path::PathBuf;

use super::*;
use crate::manifest::model::Capabilities;
use crate::manifest::types::Capability;

fn caps(add: &[&str], drop: &[&str]) -> Capabilities {
    let parse =
        |names: &[&str]| -> Vec<Capability> { names.iter().map(|n| n.parse().unwrap()).collect() };
    Capabilities {
        add: parse(add),
        drop: parse(drop),
    }
}

fn set(names: &[&str]) -> CapSet {
    names
        .iter()
        .fold(CapSet::EMPTY, |s, n| match n.parse().unwrap() {
            Capability::One(c) => s.with(c),
            Capability::All => panic!("ALL in a test set"),
        })
}

const ALL: CapSet = CapSet::up_to(LAST);

#[test]
fn default_is_runcs_three() {
    assert_eq!(DEFAULT, set(&["AUDIT_WRITE", "KILL", "NET_BIND_SERVICE"]));
    assert_eq!(DEFAULT.bits(), 0x2000_0420);
    assert_eq!(DEFAULT.to_string(), "KILL, NET_BIND_SERVICE, AUDIT_WRITE");
}

#[test]
fn no_changes_gives_the_default() {
    assert_eq!(resolve(&caps(&[], &[]), ALL), DEFAULT);
}

#[test]
fn drop_all_empties() {
    assert_eq!(resolve(&caps(&[], &["ALL"]), ALL), CapSet::EMPTY);
}

#[test]
fn drop_all_then_add() {
    assert_eq!(
        resolve(&caps(&["NET_BIND_SERVICE"], &["ALL"]), ALL),
        set(&["NET_BIND_SERVICE"])
    );
    assert_eq!(
        resolve(&caps(&["NET_ADMIN"], &["ALL"]), ALL).bits(),
        1 << 12
    );
}

#[test]
fn drop_one_and_add_one() {
    assert_eq!(
        resolve(&caps(&["CAP_NET_ADMIN"], &["KILL"]), ALL),
        set(&["AUDIT_WRITE", "NET_BIND_SERVICE", "NET_ADMIN"])
    );
}

#[test]
fn drop_of_a_capability_not_in_the_default_changes_nothing() {
    assert_eq!(resolve(&caps(&[], &["SYS_ADMIN"]), ALL), DEFAULT);
}

#[test]
fn add_all_is_what_the_kernel_knows() {
    assert_eq!(resolve(&caps(&["ALL"], &[]), ALL), ALL);
    // An older kernel (4.x: up to AUDIT_READ, 37) gives fewer.
    let old = CapSet::up_to(37);
    assert_eq!(resolve(&caps(&["ALL"], &["ALL"]), old), old);
    assert!(!resolve(&caps(&["ALL"], &[]), old).contains(38));
}

#[test]
fn add_all_still_honours_named_drops() {
    let got = resolve(&caps(&["ALL"], &["SYS_ADMIN", "KILL"]), ALL);
    assert_eq!(got, ALL.without(21).without(5));
}

#[test]
fn up_to_and_bits() {
    assert_eq!(CapSet::up_to(0).bits(), 1);
    assert_eq!(CapSet::up_to(40).bits(), 0x1ff_ffff_ffff);
    assert_eq!(CapSet::up_to(200), CapSet::up_to(40));
    assert_eq!(CapSet::EMPTY.with(41), CapSet::EMPTY);
    assert!(CapSet::from_bits(1 << 41).is_none());
}

#[test]
fn display_names_and_empty() {
    assert_eq!(CapSet::EMPTY.to_string(), "none");
    assert_eq!(set(&["NET_ADMIN"]).to_string(), "NET_ADMIN");
    assert_eq!(
        set(&["CHECKPOINT_RESTORE", "CHOWN"]).to_string(),
        "CHOWN, CHECKPOINT_RESTORE"
    );
    assert_eq!(ALL.iter().count(), 41);
}

#[test]
fn hex_round_trip_as_proc_shows_it() {
    assert_eq!(format!("{DEFAULT:016x}"), "0000000020000420");
    assert_eq!(CapSet::from_hex("0000000020000420"), Some(DEFAULT));
    assert_eq!(CapSet::from_hex("000001ffffffffff"), Some(ALL));
    assert_eq!(CapSet::from_hex("0"), Some(CapSet::EMPTY));
}

#[test]
fn hex_refuses_junk_and_unknown_bits() {
    for bad in ["", "+1", "0x20", "2000 0420", "00000000000000000", "zz"] {
        assert_eq!(CapSet::from_hex(bad), None, "{bad:?}");
    }
    // Bit 41: a capability newer than berth's names.
    assert_eq!(CapSet::from_hex("0000020000000000"), None);
}

const STATUS: &str = "Name:\tgrep\nUmask:\t0022\nState:\tR (running)\n\
CapInh:\t0000000020000420\nCapPrm:\t0000000020000420\nCapEff:\t0000000020000420\n\
CapBnd:\t0000000020000420\nCapAmb:\t0000000020000420\nNoNewPrivs:\t1\nSeccomp:\t0\n";

#[test]
fn status_parses() {
    let p = ProcCaps::parse(STATUS).unwrap();
    assert_eq!(
        p,
        ProcCaps {
            inheritable: DEFAULT,
            permitted: DEFAULT,
            effective: DEFAULT,
            bounding: DEFAULT,
            ambient: DEFAULT,
            no_new_privs: true,
        }
    );
}

#[test]
fn status_errors_name_the_field() {
    let missing = STATUS.replace("CapAmb:\t0000000020000420\n", "");
    assert_eq!(
        ProcCaps::parse(&missing),
        Err(StatusError::Missing("CapAmb"))
    );
    assert_eq!(
        ProcCaps::parse(&missing).unwrap_err().to_string(),
        "process status has no CapAmb line"
    );
    let bad = STATUS.replace("CapEff:\t0000000020000420", "CapEff:\tnope");
    assert_eq!(
        ProcCaps::parse(&bad),
        Err(StatusError::Invalid {
            field: "CapEff",
            value: "nope".into()
        })
    );
    let nnp = STATUS.replace("NoNewPrivs:\t1", "NoNewPrivs:\t2");
    assert_eq!(
        ProcCaps::parse(&nnp).unwrap_err().to_string(),
        "process status line NoNewPrivs: invalid value \"2\""
    );
}

#[test]
fn errors_read_as_the_brief_says() {
    let e = CapsError::Call {
        step: Step::DropBounding(21),
        source: std::io::Error::from_raw_os_error(libc::EPERM),
    };
    assert_eq!(
        e.to_string(),
        "drop capability SYS_ADMIN from the bounding set: Operation not permitted (os error 1)"
    );
    assert_eq!(e.errno(), libc::EPERM);
    assert_eq!(
        CapsError::UnknownToKernel { cap: 40 }.to_string(),
        "capability CHECKPOINT_RESTORE is not known to the running kernel"
    );
}

/// A fake proc root with `cap_last_cap` holding `content`, or without the file.
fn proc_root(tag: &str, content: Option<&str>) -> PathBuf {
    let root = std::env::temp_dir().join(format!("berth-caps-{}-{tag}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("sys/kernel")).unwrap();
    if let Some(text) = content {
        fs::write(root.join("sys/kernel/cap_last_cap"), text).unwrap();
    }
    root
}

#[test]
fn known_reads_cap_last_cap() {
    let root = proc_root("37", Some("37\n"));
    assert_eq!(known(&root), CapSet::up_to(37));
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn known_never_exceeds_berths_names() {
    let root = proc_root("63", Some("63\n"));
    assert_eq!(known(&root), ALL);
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn known_falls_back_to_last() {
    let root = proc_root("none", None);
    assert_eq!(known(&root), ALL);
    fs::write(root.join("sys/kernel/cap_last_cap"), "junk").unwrap();
    assert_eq!(known(&root), ALL);
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn all_means_what_berth_itself_can_grant() {
    let dir = std::env::temp_dir().join(format!("berth-caps-grantable-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sys/kernel")).unwrap();
    std::fs::create_dir_all(dir.join("self")).unwrap();
    std::fs::write(dir.join("sys/kernel/cap_last_cap"), "40\n").unwrap();
    // This host's bounding set: everything but SYS_RESOURCE (24).
    std::fs::write(
        dir.join("self/status"),
        "CapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\n",
    )
    .unwrap();
    let g = super::grantable(&dir);
    assert!(!g.contains(24) && g.contains(21) && g.contains(40));
    std::fs::remove_dir_all(&dir).unwrap();
}
