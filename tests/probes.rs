//! Health probes on the real kernel, as root: tcp connects made inside another network
//! namespace, http status lines read from a real server, exec probes run inside the
//! namespaces, root and cgroups of running processes (made with util-linux `unshare`,
//! and a real berth app). Nothing sleeps: every wait is a poll on a descriptor (a
//! socket, a pipe, a FIFO, a pidfd) or on an exit status, bounded by `BOUND_MS`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;

use berth::caps::{self, CapSet};
use berth::launch::Launcher;
use berth::launch::sandbox::Sandbox;
use berth::manifest::model::Probe;
use berth::manifest::types::Port;
use berth::supervisor::probe::{
    EXIT_KILLED, HttpError, HttpResponse, HttpTarget, SocketOutcome, SocketProbe, SocketTarget,
    Wait, http_target, kill_probe, spawn_exec, tcp_connect_addr_in, tcp_connect_in, tcp_result,
    verdict,
};
use common::TempDir;
use common::launch_world::{Sleeper, World};
use common::probe::Variant;

/// The sandbox of a process that is the host's root with the capabilities this test
/// has (its bounding set: a container running the tests may lack some) and no
/// filter: the exec mechanics tests run the host's programs in namespaces of
/// util-linux `unshare`, not in an app.
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

/// The longest any wait may take before the test fails.
const BOUND_MS: i32 = 10_000;

// ---------------------------------------------------------------------------------
// Waiting on descriptors and processes.

/// Polls `fd` for `events`: the events seen, or panics after `BOUND_MS`.
fn wait_for(fd: BorrowedFd<'_>, events: i16, what: &str) -> i16 {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the call.
    let n = unsafe { libc::poll(&raw mut p, 1, BOUND_MS) };
    assert!(n == 1, "{what}: nothing within {BOUND_MS} ms");
    p.revents
}

/// A pidfd of `pid` (Linux 5.3): readable once the process has exited.
fn pidfd(pid: i32) -> OwnedFd {
    // SAFETY: plain integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(fd >= 0, "pidfd_open {pid}: {}", io::Error::last_os_error());
    // SAFETY: a new descriptor owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(RawFd::try_from(fd).unwrap()) }
}

/// Waits until the process behind `fd` has exited (a zombie counts).
fn wait_gone(fd: &OwnedFd, what: &str) {
    wait_for(fd.as_fd(), libc::POLLIN, what);
}

/// A child of this process, killed and reaped on drop unless reaped before.
struct Reaped(Option<i32>);

impl Reaped {
    /// Waits for the child's end: its exit code, or 128 + the signal.
    fn wait(&mut self) -> i32 {
        let pid = self.0.take().unwrap();
        wait_gone(&pidfd(pid), &format!("exit of {pid}"));
        let mut status = 0;
        // SAFETY: `status` is writable for the call.
        assert_eq!(unsafe { libc::waitpid(pid, &raw mut status, 0) }, pid);
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        }
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: plain integer arguments; `pid` is our unreaped child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// A command's process, killed and reaped on drop.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The children of `pid` (`/proc/PID/task/PID/children`).
fn children(pid: i32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

fn only_child(pid: i32) -> i32 {
    let c = children(pid);
    assert_eq!(c.len(), 1, "children of {pid}: {c:?}");
    c[0]
}

/// The runner of exec probes: berth's executable (the supervisor runs its own).
fn berth_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------------------------
// tcp

/// A tcp probe as the loop runs it: start, wait until writable, read the outcome.
fn probe_tcp(netns: Option<BorrowedFd<'_>>, port: u16) -> io::Result<()> {
    let fd = tcp_connect_in(netns, port)?;
    wait_for(fd.as_fd(), libc::POLLOUT, "connect");
    tcp_result(fd.as_fd())
}

/// A port where nothing listens in this namespace, held (by the client end of a
/// connection) so that nothing else takes it while the test runs.
struct ClosedPort {
    _listener: TcpListener,
    client: TcpStream,
}

impl ClosedPort {
    fn new() -> ClosedPort {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        ClosedPort {
            _listener: listener,
            client,
        }
    }

    fn port(&self) -> u16 {
        self.client.local_addr().unwrap().port()
    }
}

fn own_netns() -> String {
    fs::read_link("/proc/thread-self/ns/net")
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn tcp_connects_in_its_own_namespace_and_reports_a_refusal() {
    common::require_root("the probe tests run as root");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    probe_tcp(None, port).unwrap();
    let (_conn, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip(), Ipv4Addr::LOCALHOST);

    let closed = ClosedPort::new();
    let e = probe_tcp(None, closed.port()).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED), "{e}");
}

/// A process in a new network namespace with loopback up and a listener on
/// `127.0.0.1:port`; killed and reaped on drop.
struct NetnsServer {
    pid: Reaped,
    netns: File,
}

impl NetnsServer {
    fn start(port: u16) -> NetnsServer {
        let mut fds = [0; 2];
        // SAFETY: `fds` is writable for the two descriptors.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both descriptors are new and owned by nobody else.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: the child only makes raw system calls (the test harness has threads).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            serve_in_new_netns(port, w.as_raw_fd());
        }
        let pid = Reaped(Some(pid));
        drop(w);
        let mut ready = [0u8; 5];
        wait_for(r.as_fd(), libc::POLLIN, "the server's ready");
        let n = File::from(r).read(&mut ready).unwrap();
        assert_eq!(
            &ready[..n],
            b"ready",
            "the server failed (exit status in the pid)"
        );
        let netns = File::open(format!("/proc/{}/ns/net", pid.0.unwrap())).unwrap();
        NetnsServer { pid, netns }
    }
}

/// The server child: raw calls only, accepting until it is killed.
fn serve_in_new_netns(port: u16, ready: RawFd) -> ! {
    let fail = |code| -> ! {
        // SAFETY: `_exit` never returns.
        unsafe { libc::_exit(code) }
    };
    // SAFETY: plain integer arguments; the child owns its copies of the descriptors
    // and keeps only stdio and the pipe (as 3), so it holds no other test's pipe open.
    unsafe {
        if libc::dup2(ready, 3) != 3 {
            fail(10);
        }
        libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            fail(11);
        }
    }
    if !common::loopback_up() {
        fail(12);
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `sin` is a valid sockaddr_in of the size passed; the rest are integers
    // and a 5-byte buffer.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if s < 0
            || libc::bind(
                s,
                (&raw const sin).cast(),
                size_of::<libc::sockaddr_in>() as u32,
            ) != 0
            || libc::listen(s, 8) != 0
        {
            fail(13);
        }
        libc::write(3, b"ready".as_ptr().cast(), 5);
        // Accept and close, so the backlog never fills.
        loop {
            let conn = libc::accept(s, std::ptr::null_mut(), std::ptr::null_mut());
            if conn >= 0 {
                libc::close(conn);
            }
        }
    }
}

#[test]
fn tcp_connects_inside_another_network_namespace() {
    common::require_root("joining a network namespace needs CAP_SYS_ADMIN");
    let home = own_netns();
    // The port is taken but not listened on here, and listened on there.
    let closed = ClosedPort::new();
    let server = NetnsServer::start(closed.port());
    assert_ne!(
        fs::read_link(format!("/proc/{}/ns/net", server.pid.0.unwrap()))
            .unwrap()
            .display()
            .to_string(),
        home
    );
    probe_tcp(Some(server.netns.as_fd()), closed.port()).unwrap();
    assert_eq!(own_netns(), home, "the thread is back in its own namespace");
    let e = probe_tcp(None, closed.port()).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED), "{e}");
    // Repeated probes neither leak nor drift.
    for _ in 0..20 {
        probe_tcp(Some(server.netns.as_fd()), closed.port()).unwrap();
    }
    assert_eq!(own_netns(), home);
}

#[test]
fn tcp_in_a_namespace_without_loopback_fails_at_once() {
    common::require_root("joining a network namespace needs CAP_SYS_ADMIN");
    // `unshare --net` alone: a new namespace whose loopback is down.
    let mut child = KillOnDrop(
        Command::new("unshare")
            .args(["--net", "sh", "-c", "echo ready; exec sleep 1000"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let netns = File::open(format!("/proc/{}/ns/net", child.0.id())).unwrap();
    let e = tcp_connect_in(Some(netns.as_fd()), 80).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENETUNREACH), "{e}");
}

#[test]
fn tcp_reports_a_namespace_it_cannot_join_and_stays_home() {
    common::require_root("setns needs CAP_SYS_ADMIN");
    let home = own_netns();
    let not_net = File::open("/proc/self/ns/uts").unwrap();
    let e = tcp_connect_in(Some(not_net.as_fd()), 80).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(
        e.to_string(),
        "enter the app's network namespace: Invalid argument (os error 22)"
    );
    assert_eq!(own_netns(), home);
}

// ---------------------------------------------------------------------------------
// http

/// A server answering each connection, in turn, with the next of `answers` after
/// reading the request head; the heads it read.
fn http_server(answers: Vec<&'static [u8]>) -> (u16, thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let mut heads = Vec::new();
        for answer in answers {
            let (mut conn, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 512];
            while !head.ends_with(b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "request cut short: {head:?}");
                head.extend_from_slice(&buf[..n]);
            }
            heads.push(String::from_utf8(head).unwrap());
            // Line by line, so the client may see the status line in pieces.
            for piece in answer.split_inclusive(|&b| b == b' ') {
                conn.write_all(piece).unwrap();
            }
        }
        heads
    });
    (port, server)
}

/// An http probe as the loop runs it: connect, send, feed until there is a status.
fn probe_http(target: &HttpTarget) -> Result<u16, HttpError> {
    let fd = tcp_connect_addr_in(None, target.addr).unwrap();
    wait_for(fd.as_fd(), libc::POLLOUT, "connect");
    tcp_result(fd.as_fd()).unwrap();
    let mut conn = TcpStream::from(fd);
    conn.write_all(&target.request()).unwrap();
    let mut response = HttpResponse::new();
    let mut buf = [0u8; 64];
    loop {
        wait_for(conn.as_fd(), libc::POLLIN, "the answer");
        match conn.read(&mut buf) {
            Ok(0) => return response.finish(),
            Ok(n) => {
                if let Some(status) = response.feed(&buf[..n])? {
                    return Ok(status);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

#[test]
fn http_reads_the_status_of_a_real_server() {
    common::require_root("the probe tests run as root");
    let (port, server) = http_server(vec![
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nfine\n",
        b"HTTP/1.0 503 Service Unavailable\r\n\r\n",
        b"HTTP/1.1 301 Moved Permanently\r\nLocation: /new\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"HTTP/1.0 20",
    ]);
    let url = format!("http://localhost:{port}/healthz?deep=1")
        .parse()
        .unwrap();
    let target = http_target(&url);
    assert_eq!(target.addr, SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));

    let status = probe_http(&target).unwrap();
    assert_eq!((status, verdict(status)), (200, true));
    let status = probe_http(&target).unwrap();
    assert_eq!((status, verdict(status)), (503, false));
    let status = probe_http(&target).unwrap();
    assert_eq!((status, verdict(status)), (301, true));
    assert_eq!(
        probe_http(&target),
        Err(HttpError::Malformed("SSH-2.0-OpenSSH_9.2".into()))
    );
    assert_eq!(probe_http(&target), Err(HttpError::Closed));

    let heads = server.join().unwrap();
    assert_eq!(heads.len(), 5);
    for head in heads {
        assert_eq!(
            head,
            format!(
                "GET /healthz?deep=1 HTTP/1.0\r\nHost: localhost:{port}\r\n\
                 Connection: close\r\nUser-Agent: berth\r\n\r\n"
            )
        );
    }
}

// ---------------------------------------------------------------------------------
// socket probes at the address they name, in the app's network namespace

/// A network namespace held by `unshare --net ... sleep` with loopback up and a second
/// address, 10.9.9.9/32, on it (as an app's own address would be); killed on drop.
struct AddressedNetns {
    _holder: KillOnDrop,
    netns: File,
}

impl AddressedNetns {
    fn new() -> AddressedNetns {
        let mut holder = KillOnDrop(
            Command::new("unshare")
                .args([
                    "--net",
                    "sh",
                    "-c",
                    "ip link set lo up && ip addr add 10.9.9.9/32 dev lo && echo ready && \
                     exec sleep 1000",
                ])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut line = String::new();
        BufReader::new(holder.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n", "ip in a new network namespace failed");
        let netns = File::open(format!("/proc/{}/ns/net", holder.0.id())).unwrap();
        AddressedNetns {
            _holder: holder,
            netns,
        }
    }

    /// A server listening on `addr` inside the namespace, on a thread that entered it:
    /// it takes `answers.len()` connections, answers each (after the request head, if
    /// one comes) with the next answer, and returns the heads it read.
    fn serve(&self, addr: &str, answers: Vec<&'static [u8]>) -> thread::JoinHandle<Vec<String>> {
        let netns = self.netns.try_clone().unwrap();
        let addr = addr.to_owned();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let server = thread::spawn(move || {
            // SAFETY: a valid namespace descriptor; only this thread changes namespace.
            let joined = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(joined, 0, "setns: {}", io::Error::last_os_error());
            let listener = TcpListener::bind(&addr).unwrap();
            ready_tx.send(()).unwrap();
            let mut heads = Vec::new();
            for answer in answers {
                let (mut conn, _) = listener.accept().unwrap();
                let mut head = Vec::new();
                let mut buf = [0u8; 512];
                while !head.ends_with(b"\r\n\r\n") {
                    let n = conn.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                heads.push(String::from_utf8(head).unwrap());
                let _ = conn.write_all(answer);
            }
            heads
        });
        ready_rx.recv().unwrap();
        server
    }
}

/// A socket probe as the loop runs it: start, then wait for what it asks and hand it
/// each readiness until it gives the outcome.
fn run_probe(netns: &File, probe: &Probe) -> Result<SocketOutcome, String> {
    let target = SocketTarget::of(probe).unwrap();
    let mut p =
        SocketProbe::start(Some(netns.as_fd()), &target).map_err(|e| format!("start: {e}"))?;
    loop {
        let events = match p.wait() {
            Wait::Writable => libc::POLLOUT,
            Wait::Readable => libc::POLLIN,
        };
        wait_for(p.fd(), events, "the probe's socket");
        if let Some(outcome) = p.on_ready() {
            return outcome.map_err(|e| e.to_string());
        }
    }
}

#[test]
fn http_probes_connect_to_the_host_their_url_names() {
    common::require_root("joining a network namespace needs CAP_SYS_ADMIN");
    let ns = AddressedNetns::new();
    let http = |url: &str| Probe::Http(url.parse().unwrap());
    // Answers 200 on 127.0.0.1:8080 only (a fresh namespace: every port is free). A
    // probe that connected to loopback whatever the URL said found it healthy.
    let local = ns.serve("127.0.0.1:8080", vec![b"HTTP/1.0 200 OK\r\n\r\n"]);
    assert_eq!(
        run_probe(&ns.netns, &http("http://10.9.9.9:8080/")),
        Err("connect to 10.9.9.9:8080: Connection refused (os error 111)".to_owned())
    );
    // The app's real address answers: healthy, asked with the URL's own Host.
    let real = ns.serve("10.9.9.9:8081", vec![b"HTTP/1.0 204 No Content\r\n\r\n"]);
    assert_eq!(
        run_probe(&ns.netns, &http("http://10.9.9.9:8081/healthz")),
        Ok(SocketOutcome::Status(204))
    );
    assert_eq!(
        real.join().unwrap(),
        [
            "GET /healthz HTTP/1.0\r\nHost: 10.9.9.9:8081\r\nConnection: close\r\n\
          User-Agent: berth\r\n\r\n"
        ]
    );
    // An address the app has no route to fails at once.
    assert_eq!(
        run_probe(&ns.netns, &http("http://10.9.9.8:8081/")),
        Err("start: Network is unreachable (os error 101)".to_owned())
    );
    // The tcp probe names a port of the app's loopback, and only that.
    assert_eq!(
        run_probe(&ns.netns, &Probe::Tcp(Port(8081))),
        Err("connect to 127.0.0.1:8081: Connection refused (os error 111)".to_owned())
    );
    assert_eq!(
        run_probe(&ns.netns, &Probe::Tcp(Port(8080))),
        Ok(SocketOutcome::Connected)
    );
    assert_eq!(local.join().unwrap(), [""], "the tcp probe sends nothing");
    // And localhost is 127.0.0.1 of the app's namespace.
    let local = ns.serve("127.0.0.1:8080", vec![b"HTTP/1.1 503 Busy\r\n\r\n"]);
    let outcome = run_probe(&ns.netns, &http("http://localhost:8080/")).unwrap();
    assert_eq!(
        (outcome, outcome.healthy()),
        (SocketOutcome::Status(503), false)
    );
    local.join().unwrap();
}

// ---------------------------------------------------------------------------------
// exec: targets made with util-linux `unshare`

/// A process in new pid, mount (with its own /proc), uts, ipc and network namespaces,
/// host name `probe-target`: pid 1 of its pid namespace, `sleep 1000`. `unshare`
/// forks it and waits; both are killed on drop.
struct Target {
    unshare: Child,
    pid: i32,
}

impl Target {
    fn start() -> Target {
        Target::start_with(&[], READY)
    }

    /// `extra` unshare options; `then` runs in the new namespaces after the host name
    /// is set (it must end in `exec sleep 1000`, or exec something that keeps it).
    fn start_with(extra: &[&str], then: &str) -> Target {
        let script = format!("hostname probe-target && {then}");
        let mut unshare = Command::new("unshare")
            .args(extra)
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
                &script,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = unshare.stdout.take().unwrap();
        let mut target = Target { unshare, pid: 0 };
        // `then` says "ready" when set up; end-of-file if it failed.
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n", "the target did not start");
        target.pid = only_child(i32::try_from(target.unshare.id()).unwrap());
        target
    }

    fn ns(&self, name: &str) -> String {
        fs::read_link(format!("/proc/{}/ns/{name}", self.pid))
            .unwrap()
            .display()
            .to_string()
    }

    /// Runs an exec probe in it and waits for the result.
    fn probe(&self, argv: &[&str], env: &[&str]) -> i32 {
        let pid = spawn_exec(
            berth_exe(),
            self.pid,
            &strings(argv),
            &strings(env),
            &[],
            &host_root(),
        )
        .unwrap();
        Reaped(Some(pid)).wait()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if self.pid > 0 {
            // SAFETY: plain integer arguments. Killing pid 1 of a pid namespace kills
            // every process in it.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

const READY: &str = "echo ready && exec sleep 1000";

/// A FIFO in `dir` the probe writes to, open for reading without blocking.
fn fifo(dir: &TempDir, name: &str) -> (PathBuf, File) {
    let path = dir.join(name);
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let reader = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap();
    (path, reader)
}

/// Waits for a line on the FIFO.
fn read_fifo(reader: &mut File) -> String {
    wait_for(reader.as_fd(), libc::POLLIN, "the probe's word");
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap_or_default();
    text
}

#[test]
fn exec_runs_inside_the_apps_namespaces_with_a_clean_process() {
    common::require_root("setns needs CAP_SYS_ADMIN");
    let dir = TempDir::new("probe-world");
    let target = Target::start();
    // The namespaces, compared in the shell; then the test probe program reports the
    // rest of its world. `exec` with a redirection leaves no saved descriptor behind.
    let names = ["cgroup", "ipc", "mnt", "net", "pid", "uts", "user"];
    let expected: Vec<String> = names.iter().map(|n| target.ns(n)).collect();
    let links: Vec<String> = names.iter().map(|n| format!("/proc/self/ns/{n}")).collect();
    let script = format!(
        r#"test "$(readlink {} | tr '\n' ' ')" = "$EXPECTED " && exec {} report > {}"#,
        links.join(" "),
        common::probe::probe_binary().display(),
        dir.s("report"),
    );
    let env = format!("EXPECTED={}", expected.join(" "));
    let code = target.probe(&["sh", "-c", &script], &["PATH=/usr/bin:/bin", &env]);
    assert_eq!(code, 0, "namespaces differ from {expected:?}");
    let text = fs::read_to_string(dir.join("report")).unwrap();
    let r: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(r["hostname"], "probe-target");
    // In the app's pid namespace, its parent (the runner) out of sight; pid 1 is the
    // app's, seen through the app's /proc.
    assert_eq!(r["ppid"], 0);
    assert_eq!(r["pid1_cmdline"], "sleep 1000");
    assert_eq!(r["fds"], serde_json::json!([0, 1, 2]));
    assert_eq!(r["stdin_is_devnull"], true);
    assert_eq!(r["sigmask"], "0000000000000000");
    assert_eq!(r["sigign"], "0000000000000000");
    assert_eq!(r["cwd"], "/");
    assert_eq!((r["uid"].as_i64(), r["gid"].as_i64()), (Some(0), Some(0)));
    assert_eq!(
        r["env"],
        serde_json::json!(["PATH=/usr/bin:/bin", env, "PWD=/"]),
        "the environment given (and the shell's PWD), nothing of the caller's"
    );
}

#[test]
fn exec_reports_the_commands_status() {
    common::require_root("setns needs CAP_SYS_ADMIN");
    let target = Target::start();
    let test_host = r#"test "$(hostname)" = probe-target"#;
    assert_eq!(target.probe(&["sh", "-c", test_host], &[]), 0);
    assert_eq!(target.probe(&["sh", "-c", "exit 3"], &[]), 3);
    assert_eq!(target.probe(&["sh", "-c", "kill -9 $$"], &[]), 137);
    assert_eq!(target.probe(&["no-such-program"], &[]), 127);
    assert_eq!(target.probe(&["sh", "-c", "true"], &["PATH=/nowhere"]), 127);
    assert_eq!(target.probe(&["/no/such/program"], &[]), 127);
    assert_eq!(target.probe(&["/etc/passwd"], &[]), 126, "not executable");
    assert_eq!(target.probe(&["/bin/true"], &[]), 0);
}

#[test]
fn exec_refuses_what_it_cannot_run() {
    common::require_root("the probe tests run as root");
    let target = Target::start();
    let e = spawn_exec(berth_exe(), target.pid, &[], &[], &[], &host_root()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let e = spawn_exec(
        berth_exe(),
        target.pid,
        &strings(&["a\0b"]),
        &[],
        &[],
        &host_root(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    // A pid that is gone (pid_max is at most 2^22).
    let e = spawn_exec(
        berth_exe(),
        1 << 23,
        &strings(&["true"]),
        &[],
        &[],
        &host_root(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "exec probe: pidfd_open 8388608: No such process (os error 3)"
    );
    let e = spawn_exec(
        berth_exe(),
        target.pid,
        &strings(&["true"]),
        &[],
        &[PathBuf::from("/nonexistent")],
        &host_root(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "exec probe: open /nonexistent: No such file or directory (os error 2)"
    );
}

#[test]
fn exec_uses_the_apps_root_even_when_it_chrooted() {
    common::require_root("mounts and chroot need root");
    let dir = TempDir::new("probe-root");
    let root = dir.mkdir("root");
    // Inside its mount namespace the target binds / at `root`, puts a marker there
    // that the namespace's own root lacks, and chroots into it.
    let then = format!(
        "mount --rbind / {r} && mount -t tmpfs probe {r}/mnt && touch {r}/mnt/probe-marker \
         && exec chroot {r} sh -c '{READY}'",
        r = root.display()
    );
    let target = Target::start_with(&[], &then);
    assert!(!Path::new("/mnt/probe-marker").exists());
    assert_eq!(target.probe(&["test", "-f", "/mnt/probe-marker"], &[]), 0);
}

#[test]
fn exec_refuses_a_user_namespace_where_it_cannot_drop_its_groups() {
    common::require_root("setns needs CAP_SYS_ADMIN");
    // `--map-root-user` also writes "deny" to the namespace's setgroups, so a process
    // joining it cannot set its supplementary groups: the runner would keep the
    // supervisor's. It fails closed instead (125). berth's own user namespaces allow
    // setgroups (their maps are written by the privileged supervisor); joining one as
    // its root is tested with a real app below (`exec_runs_inside_a_berth_app`).
    let target = Target::start_with(&["--user", "--map-root-user"], READY);
    let own_user = fs::read_link("/proc/self/ns/user").unwrap();
    assert_ne!(target.ns("user"), own_user.to_str().unwrap());
    assert_eq!(target.probe(&["true"], &[]), 125);
}

/// A cgroup made for one test in every hierarchy where a process can be placed here,
/// removed on drop.
struct TestCgroups(Vec<PathBuf>);

impl TestCgroups {
    fn new(name: &str) -> TestCgroups {
        let base = Path::new("/sys/fs/cgroup");
        let parents: Vec<PathBuf> = if base.join("cgroup.controllers").exists() {
            vec![base.to_owned()]
        } else {
            ["pids", "unified"]
                .iter()
                .map(|h| base.join(h))
                .filter(|p| p.join("cgroup.procs").exists())
                .collect()
        };
        assert!(!parents.is_empty(), "no cgroup hierarchy found");
        let name = format!("berth-probe-test-{}-{name}", std::process::id());
        let dirs: Vec<PathBuf> = parents.iter().map(|p| p.join(&name)).collect();
        for d in &dirs {
            let _ = fs::remove_dir(d);
            fs::create_dir(d).unwrap();
        }
        TestCgroups(dirs)
    }

    /// What berth gives the runner (`Group::join_files`): `tasks` in a v1 hierarchy,
    /// `cgroup.procs` in cgroup2.
    fn join_files(&self) -> Vec<PathBuf> {
        self.0
            .iter()
            .map(|d| {
                let tasks = d.join("tasks");
                if tasks.exists() {
                    tasks
                } else {
                    d.join("cgroup.procs")
                }
            })
            .collect()
    }
}

impl Drop for TestCgroups {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = fs::remove_dir(d);
        }
    }
}

#[test]
fn exec_runs_in_the_apps_cgroups() {
    common::require_root("cgroups need root");
    let dir = TempDir::new("probe-cgroup");
    let cgroups = TestCgroups::new("cg");
    let target = Target::start();
    let out = dir.s("cgroup");
    let argv = strings(&["sh", "-c", &format!("cat /proc/self/cgroup > {out}")]);
    let pid = spawn_exec(
        berth_exe(),
        target.pid,
        &argv,
        &[],
        &cgroups.join_files(),
        &host_root(),
    )
    .unwrap();
    assert_eq!(Reaped(Some(pid)).wait(), 0);
    let seen = fs::read_to_string(dir.join("cgroup")).unwrap();
    for d in &cgroups.0 {
        let name = d.file_name().unwrap().to_str().unwrap();
        let expected = match d.parent().unwrap().file_name().unwrap().to_str().unwrap() {
            "pids" => format!(":pids:/{name}"),
            _ => format!("0::/{name}"),
        };
        assert!(
            seen.lines().any(|l| l.ends_with(&expected)),
            "{expected} not in:\n{seen}"
        );
    }
}

/// An exec probe running `sh -c "sleep 1000 & ...; wait"` in a target, once the shell
/// has started its background job: the temp dir and target (kept alive by the caller),
/// the runner, and the shell's pid.
fn runner_with_a_background_job(tag: &str) -> (TempDir, Target, Reaped, i32) {
    common::require_root("setns needs CAP_SYS_ADMIN");
    let dir = TempDir::new(tag);
    let target = Target::start();
    let (word, mut reader) = fifo(&dir, "word");
    let script = format!("sleep 1000 & echo ready > {}; wait", word.display());
    let runner = Reaped(Some(
        spawn_exec(
            berth_exe(),
            target.pid,
            &strings(&["sh", "-c", &script]),
            &[],
            &[],
            &host_root(),
        )
        .unwrap(),
    ));
    assert_eq!(read_fifo(&mut reader), "ready\n");
    let command = only_child(runner.0.unwrap());
    (dir, target, runner, command)
}

#[test]
fn kill_probe_ends_the_command_and_what_it_started() {
    let (_dir, _target, mut runner, command) = runner_with_a_background_job("probe-kill");
    let background = only_child(command);
    let (command_fd, background_fd) = (pidfd(command), pidfd(background));

    kill_probe(runner.0.unwrap()).unwrap();
    assert_eq!(runner.wait(), EXIT_KILLED);
    wait_gone(&command_fd, "the command");
    wait_gone(&background_fd, "its background sleep");
    assert!(
        !Path::new(&format!("/proc/{command}")).exists(),
        "the runner reaped the command: no zombie left to the app's pid 1"
    );
}

#[test]
fn what_a_command_leaves_running_is_killed_when_it_ends() {
    let (_dir, _target, mut runner, command) = runner_with_a_background_job("probe-leftover");
    let background = pidfd(only_child(command));
    // The command itself ends (not through kill_probe); its background job goes too.
    // SAFETY: plain integer arguments; `command` is alive (the runner has not reaped).
    assert_eq!(unsafe { libc::kill(command, libc::SIGTERM) }, 0);
    assert_eq!(runner.wait(), 128 + libc::SIGTERM);
    wait_gone(&background, "the background sleep");
}

#[test]
fn killing_the_runner_kills_the_command() {
    common::require_root("setns needs CAP_SYS_ADMIN");
    let dir = TempDir::new("probe-pdeath");
    let target = Target::start();
    let (word, mut reader) = fifo(&dir, "word");
    let script = format!("echo ready > {}; exec sleep 1000", word.display());
    let mut runner = Reaped(Some(
        spawn_exec(
            berth_exe(),
            target.pid,
            &strings(&["sh", "-c", &script]),
            &[],
            &[],
            &host_root(),
        )
        .unwrap(),
    ));
    assert_eq!(read_fifo(&mut reader), "ready\n");
    let command = pidfd(only_child(runner.0.unwrap()));
    // SAFETY: plain integer arguments; the runner is our unreaped child.
    assert_eq!(unsafe { libc::kill(runner.0.unwrap(), libc::SIGKILL) }, 0);
    assert_eq!(runner.wait(), 137);
    wait_gone(&command, "the command (parent-death signal)");
}

// ---------------------------------------------------------------------------------
// exec: a real berth app

#[test]
fn exec_runs_inside_a_berth_app() {
    let w = World::new("probe-app", Variant::Plain);
    let userns = "namespaces: [pid, mount, uts, ipc, net, user]\n\
                  user_namespace: { uid_map: \"0:100000:65536\", gid_map: \"0:100000:65536\" }\n";
    for (name, extra) in [("plain", ""), ("userns", userns)] {
        let m = w.manifest(name, &format!("{extra}command: [probe, sleep]\n"));
        let mut launcher = Launcher::new(&w.image.state_dir, &w.run_dir());
        let running = w.spawn(&mut launcher, &m).unwrap();
        let app = Sleeper(running.pid);
        let run = |argv: &[&str]| {
            let pid = spawn_exec(
                berth_exe(),
                app.0,
                &strings(argv),
                &strings(&["PATH=/bin"]),
                &[],
                &running.sandbox,
            )
            .unwrap();
            Reaped(Some(pid)).wait()
        };
        // /bin/probe exists only in the app's root.
        assert!(!Path::new("/bin/probe").exists());
        assert_eq!(
            run(&["probe", "write", "/tmp/probed", "hello"]),
            0,
            "{name}"
        );
        let written = format!("/proc/{}/root/tmp/probed", app.0);
        assert_eq!(fs::read_to_string(&written).unwrap(), "hello");
        let owner = fs::metadata(&written).unwrap().uid();
        assert_eq!(owner, if name == "userns" { 100_000 } else { 0 }, "{name}");
        assert_eq!(run(&["probe", "exit", "3"]), 3);
        assert_eq!(run(&["missing"]), 127);
        assert_eq!(run(&["/tmp"]), 126);
        drop((app, running.stdout, running.stderr));
    }
}
