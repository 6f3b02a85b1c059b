//! `berth exec` on the real kernel, as root.
//!
//! Two tiers:
//! - the runner alone ([`ExecProbe::spawn_session`]) in namespaces made by util-linux
//!   `unshare`, with the host's programs: the descriptors it is given, the controlling
//!   terminal it takes or not (CVE-2017-5226), Ctrl-C through a pty, `-u`;
//! - the whole path through a running berth: the client `berth exec` as a subprocess
//!   against the control socket of a test's berth, in an app of an image made of the
//!   host's `sh`, `id`, `cat`... and their libraries: the app's ids, hostname,
//!   capabilities, seccomp, `no_new_privs` and cgroup; exit codes; a stopped app; `-u`;
//!   `-t` driving an interactive shell through a pty the test opens.
//!
//! Nothing sleeps: every wait is on a descriptor, an exit status or a log line, bounded.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::fs::{self, File};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use berth::caps::{self, CapSet};
use berth::launch::sandbox::Sandbox;
use berth::supervisor::probe::ExecProbe;
use common::TempDir;
use common::berth_run::Berth;

/// The longest any wait may take before the test fails.
const BOUND: Duration = Duration::from_secs(20);

fn berth_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------------------------
// Descriptors, ptys, processes.

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is writable for two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both are new descriptors owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// A pty pair of the test's own: (master, slave).
fn pty() -> (OwnedFd, OwnedFd) {
    // SAFETY: plain calls on the new master; the slave's name is copied before use.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(
            master >= 0,
            "posix_openpt: {}",
            std::io::Error::last_os_error()
        );
        let master = OwnedFd::from_raw_fd(master);
        assert_eq!(libc::grantpt(master.as_raw_fd()), 0);
        assert_eq!(libc::unlockpt(master.as_raw_fd()), 0);
        let mut name = [0 as libc::c_char; 64];
        assert_eq!(
            libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()),
            0
        );
        let slave = libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        assert!(slave >= 0, "open the pty slave");
        (master, OwnedFd::from_raw_fd(slave))
    }
}

fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &raw const size) };
    assert_eq!(ret, 0);
}

/// `tty_nr` of `/proc/PID/stat` for the terminal open at `fd`.
fn tty_nr(fd: BorrowedFd<'_>) -> u64 {
    let meta = File::from(fd.try_clone_to_owned().unwrap())
        .metadata()
        .unwrap();
    let rdev = std::os::unix::fs::MetadataExt::rdev(&meta);
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    u64::from(minor & 0xff) | (u64::from(major) << 8) | (u64::from(minor & !0xff) << 12)
}

/// Everything `fd` gives until its end (EIO for a pty master: every slave closed),
/// collected by a thread; the test waits for what it expects, bounded.
struct Output {
    chunks: Receiver<Vec<u8>>,
    text: String,
}

impl Output {
    fn of(fd: OwnedFd) -> Output {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut file = File::from(fd);
            let mut buf = [0u8; 4096];
            while let Ok(n) = file.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Output {
            chunks: rx,
            text: String::new(),
        }
    }

    /// Waits until the text from byte `from` on holds `needle`: where it ends.
    fn expect_from(&mut self, from: usize, needle: &str) -> usize {
        let deadline = Instant::now() + BOUND;
        loop {
            if let Some(at) = self.text.get(from..).and_then(|t| t.find(needle)) {
                return from + at + needle.len();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.text.push_str(&String::from_utf8_lossy(&chunk)),
                Err(e) => panic!("no {needle:?} ({e:?}); got {:?}", self.text),
            }
        }
    }

    fn expect(&mut self, needle: &str) -> usize {
        self.expect_from(0, needle)
    }

    /// Everything, once the writers are all gone.
    fn all(mut self) -> String {
        let deadline = Instant::now() + BOUND;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.text.push_str(&String::from_utf8_lossy(&chunk)),
                Err(RecvTimeoutError::Disconnected) => return self.text,
                Err(RecvTimeoutError::Timeout) => panic!("no end; got {:?}", self.text),
            }
        }
    }
}

/// A pidfd of `pid`: readable once it has exited.
fn pidfd(pid: i32) -> OwnedFd {
    // SAFETY: plain integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(fd >= 0, "pidfd_open {pid}");
    // SAFETY: a new descriptor owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(RawFd::try_from(fd).unwrap()) }
}

/// Waits (bounded) for `pid`, a child of this process, to exit: until then its
/// pidfd is not readable.
fn await_exit(pid: i32) {
    let fd = pidfd(pid);
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(BOUND.as_millis()).unwrap();
    // SAFETY: one valid pollfd.
    if unsafe { libc::poll(&raw mut p, 1, ms) } != 1 {
        // SAFETY: plain integer arguments; our unreaped child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        panic!("{pid} did not exit within {BOUND:?}");
    }
}

/// Waits (bounded) for `child` to exit: its exit code, or 128 + the signal.
fn wait_child(mut child: Child) -> i32 {
    await_exit(i32::try_from(child.id()).unwrap());
    let status = child.wait().unwrap();
    std::os::unix::process::ExitStatusExt::signal(&status)
        .map_or_else(|| status.code().unwrap(), |sig| 128 + sig)
}

/// Waits (bounded) for the child `pid` of this process (the runner) to exit, reaps
/// it: its exit code, or 128 + the signal.
fn reap(pid: i32) -> i32 {
    await_exit(pid);
    let mut status = 0;
    // SAFETY: `status` is writable.
    assert_eq!(unsafe { libc::waitpid(pid, &raw mut status, 0) }, pid);
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

// ---------------------------------------------------------------------------------
// The runner alone, in namespaces of `unshare`.

/// A process in new pid, mount (own /proc), uts, ipc and net namespaces, with the
/// host's root and the host name `exec-target`; killed with its namespace on drop.
struct Target {
    unshare: Child,
    pid: i32,
}

impl Target {
    fn start() -> Target {
        common::require_root("setns needs CAP_SYS_ADMIN");
        let mut unshare = Command::new("unshare")
            .args([
                "--fork",
                "--pid",
                "--mount-proc",
                "--uts",
                "--ipc",
                "--net",
                "--kill-child",
                "sh",
                "-c",
                "hostname exec-target && echo ready && exec sleep 1000",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(unshare.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n", "the target did not start");
        let id = unshare.id();
        let children = fs::read_to_string(format!("/proc/{id}/task/{id}/children")).unwrap();
        let pid = children.split_whitespace().next().unwrap().parse().unwrap();
        Target { unshare, pid }
    }

    /// Starts `argv` with `stdio` as a `berth exec` session: the runner's pid.
    fn exec(&self, argv: &[&str], tty: bool, user: Option<&str>, stdio: [BorrowedFd; 3]) -> i32 {
        let env = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"];
        ExecProbe::new(
            berth_exe(),
            &strings(argv),
            &strings(&env),
            &[],
            &host_root(),
        )
        .unwrap()
        .spawn_session(self.pid, tty, user, stdio)
        .unwrap()
    }

    /// Runs `argv` with pipes: (exit code, stdout, stderr), `input` on its stdin.
    fn run(&self, argv: &[&str], user: Option<&str>, input: &[u8]) -> (i32, String, String) {
        let (in_r, in_w) = pipe();
        let (out_r, out_w) = pipe();
        let (err_r, err_w) = pipe();
        let pid = self.exec(
            argv,
            false,
            user,
            [in_r.as_fd(), out_w.as_fd(), err_w.as_fd()],
        );
        drop((in_r, out_w, err_w));
        File::from(in_w).write_all(input).unwrap();
        let (out, err) = (Output::of(out_r), Output::of(err_r));
        let code = reap(pid);
        (code, out.all(), err.all())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        // SAFETY: plain integer arguments; killing pid 1 of a pid namespace ends it.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// The host's root with this test's bounding set and no filter: the runner tests run
/// the host's programs.
fn host_root() -> Sandbox {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
        .unwrap();
    Sandbox {
        uid: 0,
        gid: 0,
        groups: vec![],
        caps: CapSet::from_bits(bounding & CapSet::up_to(caps::LAST).bits()).unwrap(),
        seccomp: berth::manifest::model::Seccomp::Unconfined,
        workdir: c"/".to_owned(),
    }
}

/// What `/proc/self/stat` of the command says of its session: "pid pgrp session
/// tty_nr tpgid".
const SESSION: &[&str] = &["sh", "-c", "exec cut -d' ' -f1,5,6,7,8 /proc/self/stat"];

#[test]
fn the_runner_keeps_the_descriptors_it_is_given() {
    let target = Target::start();
    let script = "read x; echo \"got $x\"; echo oops >&2; hostname; exit 7";
    let (code, out, err) = target.run(&["sh", "-c", script], None, b"hi\n");
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (7, "got hi\nexec-target\n", "oops\n")
    );
    assert_eq!(target.run(&["nosuch"], None, b"").0, 127);
}

#[test]
fn without_a_tty_the_command_has_no_controlling_terminal_even_on_a_terminal() {
    let target = Target::start();
    // Its stdin, stdout and stderr are a terminal (as when a person runs `berth exec`
    // without -t): still none is its controlling terminal, so TIOCSTI cannot push
    // keys into it (CVE-2017-5226).
    let (master, slave) = pty();
    let pid = target.exec(SESSION, false, None, [slave.as_fd(); 3]);
    drop(slave);
    let out = Output::of(master);
    assert_eq!(reap(pid), 0);
    let fields: Vec<String> = out.all().split_whitespace().map(str::to_owned).collect();
    let [pid, pgrp, session, tty, tpgid] = &fields[..] else {
        panic!("{fields:?}")
    };
    assert_eq!((pgrp, session), (pid, pid), "a session of its own");
    assert_eq!((tty.as_str(), tpgid.as_str()), ("0", "-1"), "no terminal");
}

#[test]
fn with_a_tty_the_pty_is_its_controlling_terminal_and_ctrl_c_reaches_it() {
    let target = Target::start();
    let (master, slave) = pty();
    let expected = tty_nr(slave.as_fd());
    let pid = target.exec(SESSION, true, None, [slave.as_fd(); 3]);
    drop(slave);
    let out = Output::of(master);
    assert_eq!(reap(pid), 0);
    let fields: Vec<String> = out.all().split_whitespace().map(str::to_owned).collect();
    let [pid, pgrp, session, tty, tpgid] = &fields[..] else {
        panic!("{fields:?}")
    };
    assert_eq!(
        (pgrp, session, tpgid),
        (pid, pid, pid),
        "leads, in the foreground"
    );
    assert_eq!(tty.parse::<u64>().unwrap(), expected);

    let (master, slave) = pty();
    let script = ["sh", "-c", "echo ready; exec sleep 100"];
    let pid = target.exec(&script, true, None, [slave.as_fd(); 3]);
    drop(slave);
    let mut writer = File::from(master.try_clone().unwrap());
    let mut out = Output::of(master);
    out.expect("ready\r\n");
    writer.write_all(b"\x03").unwrap();
    assert_eq!(reap(pid), 128 + libc::SIGINT);
}

#[test]
fn another_user_from_the_apps_passwd() {
    let target = Target::start();
    let ids = ["sh", "-c", "id -u; id -g; id -G"];
    // The target's root is the host's: its /etc/passwd names nobody 65534:65534.
    let (code, out, _) = target.run(&ids, Some("nobody"), b"");
    assert_eq!((code, out.as_str()), (0, "65534\n65534\n65534\n"));
    let (code, out, _) = target.run(&ids, Some("1234:5"), b"");
    assert_eq!((code, out.as_str()), (0, "1234\n5\n5\n"));
    let (code, out, err) = target.run(&ids, Some("nosuchuser"), b"");
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            125,
            "",
            "berth exec: cannot run the command in the app: user \"nosuchuser\": no user \
             nosuchuser in /etc/passwd\n"
        )
    );
}

// ---------------------------------------------------------------------------------
// Through a running berth.

/// The host programs the app's image holds, in /bin.
const PROGRAMS: [&str; 8] = [
    "sh", "id", "hostname", "cat", "sleep", "stty", "true", "readlink",
];

/// Packs an image of [`PROGRAMS`] and the libraries they load (as `ldd` lists them),
/// with `/etc/passwd` (root, app 1000) and `/etc/group` (app also in `extra`, 2000),
/// and `sleep 100000` as its entrypoint: (the image file, its sha256).
fn shell_image(tmp: &TempDir) -> (PathBuf, String) {
    let root = tmp.join("shell-rootfs");
    for dir in ["proc", "sys", "dev", "etc", "tmp", "bin"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    let copy = |from: &Path, to: &Path| {
        let to = root.join(to.strip_prefix("/").unwrap_or(to));
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    };
    for program in PROGRAMS {
        let host = Path::new("/bin").join(program);
        copy(&host, &Path::new("/bin").join(program));
        let ldd = Command::new("ldd").arg(&host).output().unwrap();
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            // "libc.so.6 => /lib/.../libc.so.6 (0x...)" or "/lib64/ld-linux... (0x...)"
            let path = line.split_whitespace().find(|w| w.starts_with('/'));
            if let Some(path) = path {
                copy(Path::new(path), Path::new(path));
            }
        }
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/:/bin/sh\napp:x:1000:1000:app:/:/bin/sh\n",
    )
    .unwrap();
    fs::write(
        root.join("etc/group"),
        "root:x:0:\napp:x:1000:\nextra:x:2000:app\n",
    )
    .unwrap();
    let file = tmp.join("shell.tar");
    let out = Command::new(berth_exe())
        .arg("pack")
        .arg(&root)
        .arg("-o")
        .arg(&file)
        .args(["--entrypoint", "/bin/sleep", "100000"])
        .output()
        .unwrap();
    assert!(out.status.success(), "berth pack: {out:?}");
    let digest = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_owned();
    (file, digest)
}

/// A berth with the apps `web` (running) and `done` (exited, not restarted) of the
/// shell image: berth, and web's pid.
fn berth_with_apps(tag: &str) -> (Berth, i32) {
    let mut b = Berth::prepare(tag, &[], "");
    let (file, digest) = shell_image(&b.tmp);
    let image = format!("image: {{ path: {}, sha256: {digest} }}\n", file.display());
    let web = format!("name: web\n{image}command: [/bin/sleep, \"100000\"]\n");
    b.tmp.write("apps/web.yaml", web.as_bytes());
    let done = format!("name: done\n{image}command: [/bin/true]\nrestart: {{ policy: never }}\n");
    b.tmp.write("apps/done.yaml", done.as_bytes());
    b.spawn(&[]);
    let line = b.expect("web: running (pid ", 30);
    let pid = line
        .rsplit("(pid ")
        .next()
        .and_then(|p| p.trim_end_matches(')').parse().ok())
        .unwrap();
    b.expect_all(&["done exited with status 0"], 30);
    (b, pid)
}

/// `berth exec ARGS` against `b`: (exit code, stdout, stderr).
fn exec(b: &Berth, args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(berth_exe())
        .arg("exec")
        .arg("--config")
        .arg(b.tmp.join("berth.yaml"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Output::of(child.stdout.take().unwrap().into());
    let err = Output::of(child.stderr.take().unwrap().into());
    let code = wait_child(child);
    (code, out.all(), err.all())
}

/// The lines of `/proc/PID/status` that say what a process may do.
fn privileges(status: &str) -> Vec<&str> {
    status
        .lines()
        .filter(|l| {
            ["Cap", "Seccomp:", "NoNewPrivs:"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect()
}

#[test]
fn exec_runs_in_the_apps_whole_sandbox() {
    let (b, app) = berth_with_apps("exec-sandbox");
    let ok = |args: &[&str]| {
        let (code, out, err) = exec(&b, args);
        assert_eq!((code, err.as_str()), (0, ""), "berth exec {args:?}: {out}");
        out
    };
    assert_eq!(
        ok(&["web", "id"]),
        "uid=0(root) gid=0(root) groups=0(root)\n"
    );
    assert_eq!(ok(&["web", "--", "hostname"]), "web\n");
    let status = ok(&["web", "cat", "/proc/self/status"]);
    let app_status = fs::read_to_string(format!("/proc/{app}/status")).unwrap();
    assert_eq!(privileges(&status), privileges(&app_status));
    assert!(privileges(&status).contains(&"Seccomp:\t2"), "{status}");
    assert!(privileges(&status).contains(&"NoNewPrivs:\t1"), "{status}");
    // The app's own cgroup namespace, and the app's cgroups in it (pid 1 is the
    // app's process): no `/..` of a cgroup outside its root.
    let cgroups = ok(&["web", "cat", "/proc/self/cgroup"]);
    assert_eq!(cgroups, ok(&["web", "cat", "/proc/1/cgroup"]));
    assert!(!cgroups.contains("/.."), "{cgroups}");
    assert_eq!(
        ok(&["web", "readlink", "/proc/self/ns/cgroup"]),
        format!(
            "{}\n",
            fs::read_link(format!("/proc/{app}/ns/cgroup"))
                .unwrap()
                .display()
        )
    );
    // Its stdin is the client's.
    let mut child = Command::new(berth_exe())
        .args(["exec", "--config"])
        .arg(b.tmp.join("berth.yaml"))
        .args(["web", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"through\n").unwrap();
    let out = Output::of(child.stdout.take().unwrap().into());
    assert_eq!(wait_child(child), 0);
    assert_eq!(out.all(), "through\n");
}

#[test]
fn exec_exit_codes_users_and_a_stopped_app() {
    let (b, _) = berth_with_apps("exec-codes");
    assert_eq!(exec(&b, &["web", "sh", "-c", "exit 7"]).0, 7);
    assert_eq!(exec(&b, &["web", "nosuch"]).0, 127);
    assert_eq!(exec(&b, &["web", "sh", "-c", "kill -9 $$"]).0, 128 + 9);
    assert_eq!(
        exec(&b, &["-u", "1234", "web", "id"]),
        (
            0,
            "uid=1234 gid=0(root) groups=0(root)\n".into(),
            String::new()
        )
    );
    assert_eq!(
        exec(&b, &["-u", "app", "web", "id"]),
        (
            0,
            "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)\n".into(),
            String::new()
        )
    );
    assert_eq!(
        exec(&b, &["-u", "bob", "web", "id"]),
        (
            125,
            String::new(),
            "berth exec: cannot run the command in the app: user \"bob\": no user bob in \
             /etc/passwd\n"
                .into()
        )
    );
    assert_eq!(
        exec(&b, &["done", "id"]),
        (
            1,
            String::new(),
            "berth exec: done is not running (state: exited); start it with `berth start \
             done`\n"
                .into()
        )
    );
}

#[test]
fn exec_is_refused_to_a_client_that_is_not_root() {
    let (b, _) = berth_with_apps("exec-nonroot");
    // The socket opened up: berth still checks who connects, and the client shows its
    // refusal also when it came before the request went out (EPIPE), with or
    // without -t.
    use std::os::unix::fs::PermissionsExt as _;
    let open = |p: &Path, mode| fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    open(&b.tmp.join("run/berth.sock"), 0o666);
    open(b.tmp.path(), 0o755);
    open(&b.tmp.join("run"), 0o755);
    for tty in [false, true, false, true, false, true] {
        let mut c = Command::new(berth_exe());
        c.args(["exec", "--config"]).arg(b.tmp.join("berth.yaml"));
        if tty {
            c.arg("-t");
        }
        let out = c
            .args(["web", "id"])
            .uid(65534)
            .gid(65534)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            (out.status.code(), err.as_ref()),
            (
                Some(1),
                "permission denied: berth's control socket is root-only\n"
            ),
            "-t: {tty}"
        );
    }
}

/// `berth exec -t ARGS` on the slave of a pty of the test's, which it holds as its
/// controlling terminal (so it gets SIGWINCH as a person's client would): the client
/// and the master.
fn exec_tty(b: &Berth, args: &[&str], rows: u16, cols: u16) -> (Child, OwnedFd) {
    let (master, slave) = pty();
    set_window_size(master.as_fd(), rows, cols);
    let mut command = Command::new(berth_exe());
    command
        .args(["exec", "--config"])
        .arg(b.tmp.join("berth.yaml"))
        .arg("-t")
        .args(args)
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    (command.spawn().unwrap(), master)
}

#[test]
fn exec_t_drives_an_interactive_shell() {
    let (b, _) = berth_with_apps("exec-tty");
    let (child, master) = exec_tty(&b, &["web", "sh"], 40, 132);
    let mut keys = File::from(master.try_clone().unwrap());
    let mut screen = Output::of(master);
    // The window size came along.
    keys.write_all(b"stty size\n").unwrap();
    // (What is typed is echoed by the pty: each answer is looked for by text that
    // its command line does not hold.)
    let at = screen.expect("40 132\r\n");
    // Ctrl-C interrupts what runs in the foreground, not the shell.
    keys.write_all(b"sh -c 'echo started; exec sleep 100'\n")
        .unwrap();
    let at = screen.expect_from(at, "started\r\n");
    keys.write_all(b"\x03").unwrap();
    let at = screen.expect_from(at, "# ");
    keys.write_all(b"echo after $?\n").unwrap();
    let at = screen.expect_from(at, "after 130\r\n");
    keys.write_all(b"echo hi; exit 3\n").unwrap();
    screen.expect_from(at, "hi\r\n");
    assert_eq!(wait_child(child), 3);
}

#[test]
fn exec_t_passes_window_changes_on() {
    let (b, _) = berth_with_apps("exec-winch");
    let script = "trap 'stty size; exit 5' WINCH; sleep 100 & echo armed; wait";
    let (child, master) = exec_tty(&b, &["web", "sh", "-c", script], 24, 80);
    let resize = master.try_clone().unwrap();
    let mut screen = Output::of(master);
    let at = screen.expect("armed\r\n");
    set_window_size(resize.as_fd(), 50, 100);
    screen.expect_from(at, "50 100\r\n");
    assert_eq!(wait_child(child), 5);
}
