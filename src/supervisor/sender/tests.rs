//! Unit tests of the signal sender checks, on `/proc` fixtures of cgroup v1, v2 and
//! hybrid systems.
use super::*;
use std::sync::atomic::{AtomicU32, Ordering};

/// A fake `/proc` under the system's temp dir, removed on drop.
struct FakeProc(PathBuf);

impl FakeProc {
    fn new(name: &str) -> FakeProc {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("berth-sender-{}-{name}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        FakeProc(path)
    }

    /// `/proc/<pid>/cgroup` and a `stat` with `state` and `flags`.
    fn process(&self, pid: u32, cgroup: &str, state: &str, flags: u64) {
        let dir = self.0.join(pid.to_string());
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("cgroup"), cgroup).unwrap();
        // A comm with a space and a parenthesis, as an app may choose.
        let stat = format!("{pid} (evil) x) {state} 1 {pid} {pid} 0 -1 {flags} 90 0 0 0\n");
        fs::write(dir.join("stat"), stat).unwrap();
    }
}

impl Drop for FakeProc {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const V2_OWN: &str = "0::/system.slice/berth.service\n";
const V1_OWN: &str = "12:pids:/\n11:memory:/system.slice/berth.service\n\
                      4:cpu,cpuacct:/system.slice/berth.service\n1:name=systemd:/system.slice/berth.service\n\
                      0::/system.slice/berth.service\n";

fn kill(pid: u32) -> Received {
    Received {
        signal: libc::SIGTERM,
        code: libc::SI_USER,
        pid,
    }
}

#[test]
fn app_of_finds_the_app_on_v2() {
    let apps = AppCgroups::new(V2_OWN, "berth", true);
    for (file, want) in [
        ("0::/system.slice/berth.service/berth/web\n", Some("web")),
        (
            "0::/system.slice/berth.service/berth/web/worker/deep\n",
            Some("web"),
        ),
        (
            "0::/system.slice/berth.service/berth/web (deleted)\n",
            Some("web"),
        ),
        // berth itself, moved into its leaf; berth's root; its own cgroup; others.
        ("0::/system.slice/berth.service/berth/.supervisor\n", None),
        ("0::/system.slice/berth.service/berth\n", None),
        ("0::/system.slice/berth.service/berth/\n", None),
        ("0::/system.slice/berth.service\n", None),
        ("0::/system.slice/berth.service/berthx/web\n", None),
        ("0::/user.slice/user-0.slice/session-1.scope\n", None),
        ("0::/\n", None),
        ("", None),
        ("garbage\n", None),
    ] {
        assert_eq!(apps.app_of(file), want, "{file:?}");
    }
}

#[test]
fn app_of_at_the_root_and_with_a_nested_cgroup_root() {
    // berth as PID 1 in the root cgroup.
    let apps = AppCgroups::new("0::/\n", "berth", true);
    assert_eq!(apps.app_of("0::/berth/web\n"), Some("web"));
    assert_eq!(apps.app_of("0::/web\n"), None);
    // cgroup_root with several levels and stray slashes.
    let apps = AppCgroups::new("0::/\n", "/a//b/", true);
    assert_eq!(apps.app_of("0::/a/b/web\n"), Some("web"));
    assert_eq!(apps.app_of("0::/a/web\n"), None);
}

#[test]
fn app_of_on_v1_matches_each_hierarchy_by_its_controllers() {
    let apps = AppCgroups::new(V1_OWN, "berth", false);
    // An app: in berth's v1 hierarchies under berth's root (its v2 line is berth's).
    let app = "12:pids:/berth/db\n11:memory:/system.slice/berth.service/berth/db\n\
               4:cpu,cpuacct:/system.slice/berth.service/berth/db\n\
               1:name=systemd:/system.slice/berth.service\n0::/system.slice/berth.service\n";
    assert_eq!(apps.app_of(app), Some("db"));
    // A path that is under berth's root in another hierarchy is not an app.
    let shifted = "12:pids:/system.slice/berth.service/berth/db\n11:memory:/berth/db\n";
    assert_eq!(apps.app_of(shifted), None);
    // An operator's shell.
    let shell = "12:pids:/user.slice\n11:memory:/user.slice\n4:cpu,cpuacct:/user.slice\n\
                 1:name=systemd:/user.slice/session-2.scope\n0::/user.slice/session-2.scope\n";
    assert_eq!(apps.app_of(shell), None);
    // A hierarchy berth is not in is not looked at.
    assert_eq!(apps.app_of("7:freezer:/berth/db\n"), None);
}

#[test]
fn app_of_on_this_hosts_hybrid_layout() {
    // Paths differ per hierarchy (memory is elsewhere), as on the test host.
    let own = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/040f\n1:cpu:/\n0::/\n";
    let apps = AppCgroups::new(own, "berth-test", false);
    let app = "9:name=systemd:/\n8:pids:/berth-test/web\n4:memory:/process_api/040f/berth-test/web\n\
               1:cpu:/berth-test/web\n0::/\n";
    assert_eq!(apps.app_of(app), Some("web"));
}

#[test]
fn sender_on_v1_reads_proc_and_checks_the_sender_was_alive() {
    let proc = FakeProc::new("v1");
    let apps = AppCgroups::new(V1_OWN, "berth", false);
    let in_app = "11:memory:/system.slice/berth.service/berth/web\n";
    let outside = "11:memory:/user.slice\n";
    proc.process(100, in_app, "S", 0x0040_0000);
    proc.process(101, outside, "S", 0x0040_0100);
    proc.process(102, in_app, "Z", 0x0040_0004);
    // v1 shows an exiting process in the root cgroup: outside, were it not exiting.
    proc.process(103, "11:memory:/\n0::/\n", "R", 0x0040_0004);
    proc.process(104, outside, "X", 0);
    let mut garbled = kill(105);
    fs::create_dir_all(proc.0.join("105")).unwrap();
    fs::write(proc.0.join("105/cgroup"), outside).unwrap();
    fs::write(proc.0.join("105/stat"), "105 no parenthesis\n").unwrap();

    assert_eq!(
        sender(&proc.0, &kill(100), &apps),
        Sender::App("web".into())
    );
    assert_eq!(sender(&proc.0, &kill(101), &apps), Sender::Outside);
    assert_eq!(sender(&proc.0, &kill(102), &apps), Sender::Gone);
    assert_eq!(sender(&proc.0, &kill(103), &apps), Sender::Gone);
    assert_eq!(sender(&proc.0, &kill(104), &apps), Sender::Gone);
    assert_eq!(sender(&proc.0, &garbled, &apps), Sender::Gone);
    // Gone entirely (ENOENT).
    assert_eq!(sender(&proc.0, &kill(999), &apps), Sender::Gone);
    // tgkill: the kernel writes the pid as for kill.
    garbled.pid = 100;
    garbled.code = libc::SI_TKILL;
    assert_eq!(sender(&proc.0, &garbled, &apps), Sender::App("web".into()));
}

#[test]
fn sender_on_v2_trusts_the_cgroup_of_an_exiting_process() {
    let proc = FakeProc::new("v2");
    let apps = AppCgroups::new(V2_OWN, "berth", true);
    let in_app = "0::/system.slice/berth.service/berth/web\n";
    let outside = "0::/user.slice/session-1.scope\n";
    proc.process(100, in_app, "S", 0x0040_0000);
    proc.process(101, outside, "S", 0);
    // A zombie keeps its cgroup on v2 (also one removed since), and so does a
    // process that is exiting.
    proc.process(102, in_app, "Z", 0x0040_0004);
    proc.process(
        103,
        "0::/system.slice/berth.service/berth/web (deleted)\n",
        "Z",
        4,
    );
    proc.process(104, outside, "Z", 0x0040_0004);
    // Only the v2 line counts: a v1 line is not where the apps are.
    proc.process(
        105,
        "4:memory:/system.slice/berth.service/berth/web\n0::/\n",
        "S",
        0,
    );
    fs::create_dir_all(proc.0.join("106")).unwrap();
    fs::write(proc.0.join("106/cgroup"), in_app).unwrap(); // stat gone since

    let web = Sender::App("web".into());
    for (pid, want) in [
        (100, &web),
        (101, &Sender::Outside),
        (102, &web),
        (103, &web),
        (104, &Sender::Outside),
        (105, &Sender::Outside),
        (106, &web),
        (999, &Sender::Gone),
    ] {
        assert_eq!(&sender(&proc.0, &kill(pid), &apps), want, "pid {pid}");
    }
}

#[test]
fn sender_by_code() {
    let proc = FakeProc::new("codes");
    let apps = AppCgroups::new(V2_OWN, "berth", true);
    // Every file would say "app": the code decides before any is read.
    proc.process(100, "0::/system.slice/berth.service/berth/web\n", "S", 0);
    let with = |code, pid| Received {
        signal: libc::SIGUSR2,
        code,
        pid,
    };
    assert_eq!(
        sender(&proc.0, &with(libc::SI_KERNEL, 0), &apps),
        Sender::Kernel
    );
    // From an ancestor pid namespace the kernel writes pid 0.
    assert_eq!(
        sender(&proc.0, &with(libc::SI_USER, 0), &apps),
        Sender::Kernel
    );
    for code in [libc::SI_QUEUE, -3, -60, 1, 2] {
        assert_eq!(
            sender(&proc.0, &with(code, 100), &apps),
            Sender::Unvouched(code),
            "{code}"
        );
    }
}

#[test]
fn admitted_table() {
    let none = Apps::default();
    let some = Apps {
        allowed: &[],
        sharing: &["monitor"],
    };
    let agent = Apps {
        allowed: &["agent"],
        sharing: &[],
    };
    let app = Sender::App("web".into());
    let agent_app = Sender::App("agent".into());
    for (signal, sender, apps, want) in [
        (libc::SIGTERM, &Sender::Kernel, some, true),
        (libc::SIGTERM, &Sender::Outside, some, true),
        (libc::SIGTERM, &app, none, false),
        (libc::SIGUSR2, &app, some, false),
        (libc::SIGHUP, &app, none, false),
        (libc::SIGHUP, &app, agent, false),
        // An app allowed to signal berth.
        (libc::SIGUSR2, &agent_app, agent, true),
        (libc::SIGUSR2, &agent_app, some, false),
        // Not placed: an app could have sent it only if one (not allowed to) shares
        // the namespace.
        (libc::SIGTERM, &Sender::Gone, none, true),
        (libc::SIGTERM, &Sender::Gone, agent, true),
        (libc::SIGTERM, &Sender::Gone, some, false),
        (libc::SIGINT, &Sender::Unvouched(libc::SI_QUEUE), none, true),
        (
            libc::SIGINT,
            &Sender::Unvouched(libc::SI_QUEUE),
            some,
            false,
        ),
        // SIGCHLD never.
        (libc::SIGCHLD, &app, some, true),
        (libc::SIGCHLD, &Sender::Gone, some, true),
        (libc::SIGCHLD, &Sender::Unvouched(1), some, true),
    ] {
        assert_eq!(
            admitted(signal, sender, apps),
            want,
            "{signal} {sender:?} {apps:?}"
        );
    }
}

#[test]
fn guard_reads_berths_own_cgroup_and_admits_sigchld_unread() {
    let proc = FakeProc::new("guard");
    assert!(read_own(&proc.0).is_err());
    fs::create_dir_all(proc.0.join("self")).unwrap();
    fs::write(proc.0.join("self/cgroup"), V2_OWN).unwrap();
    let own = read_own(&proc.0).unwrap();
    let mut guard = SignalGuard::new(&proc.0, &own, "berth", true);
    proc.process(100, "0::/system.slice/berth.service/berth/web\n", "S", 0);
    proc.process(101, "0::/user.slice\n", "S", 0);
    let web = Apps {
        allowed: &[],
        sharing: &["web"],
    };
    assert!(!guard.admits(&kill(100), Apps::default()));
    assert!(!guard.admits(&kill(100), web));
    assert!(guard.admits(&kill(101), web));
    assert!(!guard.admits(&kill(999), web));
    assert!(guard.admits(&kill(999), Apps::default()));
    let allowed = Apps {
        allowed: &["web"],
        sharing: &[],
    };
    assert!(guard.admits(&kill(100), allowed));
    let chld = Received {
        signal: libc::SIGCHLD,
        code: 1, // CLD_EXITED
        pid: 100,
    };
    assert!(guard.admits(&chld, web));
    // One warning per (app, signal).
    assert_eq!(guard.warned.len(), 2, "{:?}", guard.warned);
}
