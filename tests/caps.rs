//! Capabilities and privileges against the real kernel, as root: a forked child drops
//! to an app's uid and set with `berth::caps`, execs a shell, and the parent checks
//! what the shell's children report in `/proc/self/status` and what they can do.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::ffi::CString;
use std::fs::File;
use std::io::Read as _;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::fs::MetadataExt as _;
use std::sync::Mutex;

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Uid, fork, setgid, setgroups, setuid};

use berth::caps::{self, CapSet, ProcCaps};
use berth::manifest::model::Capabilities;
use common::TempDir;

/// Forks happen one at a time, so no other test of this file is between steps when
/// one forks (the harness's own threads still exist: the child only makes the calls
/// under test, writes with `libc::write` and leaves with `exec` or `_exit`).
static SERIAL: Mutex<()> = Mutex::new(());

const STATUS_LINES: &str =
    r#"grep -E "^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)" /proc/self/status"#;

/// The set a manifest's `capabilities: { add, drop }` gives.
fn set(add: &[&str], drop: &[&str]) -> CapSet {
    let parse = |names: &[&str]| names.iter().map(|n| n.parse().unwrap()).collect();
    caps::effective(&Capabilities {
        add: parse(add),
        drop: parse(drop),
    })
}

struct App {
    uid: u32,
    set: CapSet,
    /// Run in a fresh network namespace (entered while still root).
    netns: bool,
    /// A capability to drop from the bounding set before anything else, as if berth
    /// itself had been started without it.
    missing: Option<u8>,
}

/// Runs `/bin/sh -c script` as `app`; returns its exit code and its stdout + stderr.
fn run(app: &App, script: &str) -> (i32, String) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "tests/caps.rs changes uids and capabilities: run it as root (as CI does)"
    );
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let argv = ["/bin/sh", "-c", script].map(|a| CString::new(a).unwrap());
    let (read, write) = nix::unistd::pipe().unwrap();
    // SAFETY: the child only runs `child`, which makes raw calls, no locks, and ends in
    // exec or _exit; the other test threads hold no lock it needs (glibc resets the
    // allocator's locks in the child, and the child allocates only to report failure).
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            drop(read);
            let code = child(app, &write, &argv);
            // SAFETY: _exit ends the child without running the parent's atexit
            // handlers or flushing its copied stdio buffers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(write);
            let mut out = String::new();
            File::from(read).read_to_string(&mut out).unwrap();
            match waitpid(child, None).unwrap() {
                WaitStatus::Exited(_, code) => (code, out),
                other => panic!("child ended as {other:?}; output: {out}"),
            }
        }
    }
}

/// The child: the privilege steps of a launch in their order, then exec. Returns the
/// exit code on failure, after writing why to the pipe.
fn child(app: &App, out: &OwnedFd, argv: &[CString; 3]) -> i32 {
    for fd in [1, 2] {
        // SAFETY: `out` is an open descriptor; dup2 onto stdout/stderr only replaces
        // those descriptors.
        if unsafe { libc::dup2(out.as_raw_fd(), fd) } < 0 {
            return 90;
        }
    }
    if app.netns {
        // SAFETY: unshare with a plain flag; it only moves this process to a new
        // network namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } < 0 {
            return fail(91, format!("unshare: {}", std::io::Error::last_os_error()));
        }
    }
    if let Some(cap) = app.missing {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) } < 0 {
            return fail(
                91,
                format!("drop {cap}: {}", std::io::Error::last_os_error()),
            );
        }
    }
    if let Err(e) = caps::prepare_uid_change() {
        return fail(92, e.to_string());
    }
    let (uid, gid) = (Uid::from_raw(app.uid), Gid::from_raw(app.uid));
    if let Err(e) = setgroups(&[])
        .and_then(|()| setgid(gid))
        .and_then(|()| setuid(uid))
    {
        return fail(93, format!("setgroups/setgid/setuid: {e}"));
    }
    if let Err(e) = caps::apply(app.set) {
        return fail(94, e.to_string());
    }
    if let Err(e) = caps::no_new_privs() {
        return fail(95, e.to_string());
    }
    let e = nix::unistd::execv(&argv[0], argv).unwrap_err();
    fail(96, format!("exec: {e}"))
}

fn fail(code: i32, why: String) -> i32 {
    let line = format!("child failed: {why}\n");
    // SAFETY: writes `line`'s bytes, which live until the call returns, to stdout.
    unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
    code
}

/// The privilege lines of the shell's `grep`, two execs after `apply`.
fn status_of(app: &App) -> ProcCaps {
    let (code, out) = run(app, STATUS_LINES);
    assert_eq!(code, 0, "output: {out}");
    ProcCaps::parse(&out).unwrap_or_else(|e| panic!("{e}; output: {out}"))
}

/// Asserts every set is exactly `bits` and no_new_privs is on.
fn assert_only(got: ProcCaps, bits: u64) {
    let want = CapSet::from_bits(bits).unwrap();
    assert_eq!(
        got,
        ProcCaps {
            inheritable: want,
            permitted: want,
            effective: want,
            bounding: want,
            ambient: want,
            no_new_privs: true,
        },
        "want every set = {want:016x} ({want})"
    );
}

const DEFAULT_BITS: u64 = 0x0000_0000_2000_0420;
const NET_ADMIN_BIT: u64 = 1 << 12;

#[test]
fn default_set_as_uid_1000() {
    let app = App {
        uid: 1000,
        set: set(&[], &[]),
        netns: false,
        missing: None,
    };
    assert_eq!(app.set, caps::DEFAULT);
    assert_only(status_of(&app), DEFAULT_BITS);
}

#[test]
fn drop_all_as_uid_1000_leaves_nothing() {
    let app = App {
        uid: 1000,
        set: set(&[], &["ALL"]),
        netns: false,
        missing: None,
    };
    assert_only(status_of(&app), 0);
}

#[test]
fn drop_all_add_net_admin_as_uid_1000() {
    let app = App {
        uid: 1000,
        set: set(&["NET_ADMIN"], &["ALL"]),
        netns: false,
        missing: None,
    };
    assert_only(status_of(&app), NET_ADMIN_BIT);
}

#[test]
fn root_gets_no_more_than_the_default_set() {
    let app = App {
        uid: 0,
        set: set(&[], &[]),
        netns: false,
        missing: None,
    };
    assert_only(status_of(&app), DEFAULT_BITS);
}

#[test]
fn root_with_drop_all_has_nothing() {
    let app = App {
        uid: 0,
        set: set(&[], &["ALL"]),
        netns: false,
        missing: None,
    };
    assert_only(status_of(&app), 0);
}

/// `chown` needs CAP_CHOWN even for root: refused with `drop: [ALL]`, done once it is
/// added back.
#[test]
fn root_chowns_only_with_cap_chown() {
    let dir = TempDir::new("caps-chown");
    let file = dir.write("f", b"x");
    let script = format!("chown 1000 {}", file.display());

    let without = App {
        uid: 0,
        set: set(&[], &["ALL"]),
        netns: false,
        missing: None,
    };
    let (code, out) = run(&without, &script);
    assert_ne!(code, 0, "chown without CAP_CHOWN worked: {out}");
    assert!(out.contains("Operation not permitted"), "output: {out}");
    assert_eq!(std::fs::metadata(&file).unwrap().uid(), 0);

    let with = App {
        uid: 0,
        set: set(&["CHOWN"], &["ALL"]),
        netns: false,
        missing: None,
    };
    let (code, out) = run(&with, &script);
    assert_eq!(code, 0, "output: {out}");
    assert_eq!(std::fs::metadata(&file).unwrap().uid(), 1000);
}

/// Port 80 in a fresh network namespace: the default set's NET_BIND_SERVICE lets uid
/// 1000 bind it (through two execs: sh, then perl); without it the bind is refused.
#[test]
fn uid_1000_binds_port_80_only_with_net_bind_service() {
    let script = "perl -MSocket -e 'socket(my $s, PF_INET, SOCK_STREAM, 0) or die \"socket: $!\\n\"; \
                  bind($s, pack_sockaddr_in(80, INADDR_ANY)) or die \"bind: $!\\n\"; print \"bound\\n\"'";
    let with = App {
        uid: 1000,
        set: set(&[], &[]),
        netns: true,
        missing: None,
    };
    let (code, out) = run(&with, script);
    assert_eq!((code, out.as_str()), (0, "bound\n"));

    let without = App {
        uid: 1000,
        set: set(&[], &["ALL"]),
        netns: true,
        missing: None,
    };
    let (code, out) = run(&without, script);
    assert_ne!(code, 0, "output: {out}");
    assert_eq!(out, "bind: Permission denied\n");
}

/// A capability berth itself lacks is refused by name, before any set changes.
#[test]
fn a_capability_berth_lacks_is_refused_by_name() {
    let app = App {
        uid: 1000,
        set: set(&["SYS_ADMIN"], &[]),
        netns: false,
        missing: Some(21),
    };
    let (code, out) = run(&app, STATUS_LINES);
    assert_eq!(
        (code, out.as_str()),
        (
            94,
            "child failed: capability SYS_ADMIN is not in berth's own bounding set, \
             so no app can have it\n"
        )
    );
}
