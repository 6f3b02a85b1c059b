//! Helpers shared by the integration tests (each test crate uses a part of them).
#![allow(dead_code, reason = "each test crate uses only some of these helpers")]
#![allow(clippy::unwrap_used, reason = "test code")]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

pub mod berth_run;
pub mod launch_world;
pub mod probe;
pub mod static_berth;

/// A temporary directory, unique per process and call, removed on drop (also when
/// the test fails).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("berth-test-{}-{n}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }

    /// The path of `p` inside, as text for a command line.
    pub fn s(&self, p: &str) -> String {
        self.join(p).to_str().unwrap().to_owned()
    }

    /// Creates the subdirectory `name` (its parent must exist).
    pub fn mkdir(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        fs::create_dir(&p).unwrap();
        p
    }

    /// Writes `bytes` to `name`, creating parent directories.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Fails the test loudly when not root: CI runs as root, and a skipped test would
/// hide a missing setup.
pub fn require_root(why: &str) {
    assert!(
        is_root(),
        "this test must run as root ({why}); CI runs it as root"
    );
}

/// xorshift64*: small, fast, and the same sequence everywhere.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Tokens that stress YAML and the unit parsers.
const TOKENS: &[&str] = &[
    ":",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "#",
    "&a ",
    "*a",
    "<<: *a",
    "!!str ",
    "!!binary ",
    "|",
    ">",
    "'",
    "\"",
    "\n",
    "  ",
    "\t",
    "~",
    "null",
    "true",
    "yes",
    "0",
    "-1",
    "0x10",
    "1e3",
    ".5",
    "64M",
    "64MB",
    "1G",
    "250m",
    "10s",
    "99999999999999999999",
    "container:",
    "container:x",
    "bridge",
    "../",
    "/",
    "SIGTERM",
    "ALL",
    "\u{feff}",
    "é",
    "---\n",
    "...\n",
    "? ",
    "%YAML 1.2\n",
];

fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    let mut texts = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                texts.push(fs::read_to_string(path).unwrap());
            }
        }
    }
    texts.sort();
    texts
}

/// Compiles `tests/attack/NAME.c` with `gcc -static -O2 -Wall -Werror` into
/// `dir/NAME`: the small static programs that mount an attack from inside an app.
/// Panics, naming what is missing, when gcc or the static libc (libc6-dev; `.ci/run`
/// installs both) cannot build it.
pub fn attack_program(name: &str, dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/attack/{name}.c"));
    fs::create_dir_all(dir).unwrap();
    let binary = dir.join(name);
    let out = std::process::Command::new("gcc")
        .args(["-static", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run gcc to build {} ({e}): gcc and libc6-dev are needed (.ci/run \
                 installs them)",
                source.display()
            )
        });
    assert!(
        out.status.success(),
        "gcc -static failed to build {} ({}): gcc and libc6-dev are needed\n{}",
        source.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    binary
}

/// Runs `f` on `root` (opened `O_PATH`) in a forked child that has its own private
/// mount namespace; its exit code. The child allocates nothing.
pub fn in_private_namespace(root: &Path, f: impl Fn(std::os::fd::RawFd) -> i32) -> i32 {
    let root = fs::File::open(root).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&root);
    // SAFETY: the child makes system calls only and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: plain arguments; the strings are NUL-terminated literals.
        let code = unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0
                || libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
            {
                99
            } else {
                f(fd)
            }
        };
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `status` is writable for the call.
    assert_eq!(unsafe { libc::waitpid(pid, &raw mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "status {status}");
    libc::WEXITSTATUS(status)
}

/// Brings the loopback interface of the current network namespace up, as berth's
/// launched child does for an app with its own one (berth's own wrapper is internal).
/// Raw calls only, nothing allocated: for a forked test child. Whether it worked.
pub fn loopback_up() -> bool {
    // SAFETY: plain integer arguments.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return false;
    }
    // SAFETY: an all-zero `ifreq` is a valid value of the plain C struct.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: `req` names "lo" and is borrowed for both calls, which read and write
    // its flags only; `sock` is ours to close.
    unsafe {
        let ok = libc::ioctl(sock, libc::SIOCGIFFLAGS as _, &raw mut req) == 0 && {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(sock, libc::SIOCSIFFLAGS as _, &raw const req) == 0
        };
        libc::close(sock);
        ok
    }
}
