//! The seccomp filter on the real kernel, as root: most tests fork a child that sets
//! no_new_privs, installs the filter and makes raw syscalls; the child encodes what it
//! saw in its exit code and the parent names what went wrong. Root, so that an EPERM
//! comes from the filter and not from missing privileges (umount2 of a missing path
//! gives root ENOENT, not EPERM).
//!
//! The attack of issue 16 (item 6) goes through `berth run`: `tests/attack/seccomp.c`,
//! built static here, runs as an app granted CAP_SYS_ADMIN and reports what each call
//! did; the test compares its whole output.
//!
//! Never call reboot, kexec_load or swapoff here, even expecting EPERM: were the filter
//! broken, a root test would take the machine down.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::path::{Path, PathBuf};

use berth::manifest::model::Seccomp;
use berth::seccomp::bpf::{self, Policy};
use berth::seccomp::{self, DEFAULT_POLICY, SeccompError};
use common::TempDir;
use common::berth_run::Berth;
use libc::{c_long, sock_filter};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};

/// The child could not set itself up: no_new_privs or the filter failed.
const SETUP_FAILED: i32 = 128;

fn errno() -> i32 {
    // Reads errno; builds no message, so it allocates nothing (safe after fork).
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `rc == -1` with `errno == want`.
fn fails_with(rc: c_long, want: i32) -> bool {
    rc == -1 && errno() == want
}

/// Whether /proc/self/status has the line `line`; reads with raw calls into a stack
/// buffer, so it allocates nothing.
fn status_has(line: &[u8]) -> bool {
    let mut buf = [0u8; 16 * 1024];
    // SAFETY: a NUL-terminated path literal; the fd is closed below.
    let fd = unsafe { libc::open(c"/proc/self/status".as_ptr(), libc::O_RDONLY) };
    if fd < 0 {
        return false;
    }
    let mut len = 0;
    while len < buf.len() {
        let rest = &mut buf[len..];
        // SAFETY: reads at most rest.len() bytes into the live buffer `rest`.
        let n = unsafe { libc::read(fd, rest.as_mut_ptr().cast(), rest.len()) };
        if n <= 0 {
            break;
        }
        len += n as usize;
    }
    // SAFETY: closes the fd opened above, once.
    unsafe { libc::close(fd) };
    buf[..len].windows(line.len()).any(|w| w == line)
}

/// Raw `clone(flags)` with no new stack, like fork: a child that appears exits at
/// once and is reaped. Returns the result of the clone.
fn raw_clone(flags: libc::c_int) -> (c_long, i32) {
    // SAFETY: with stack 0 the new process runs on a copy of this stack, like fork;
    // it calls only _exit. The pointer arguments are null.
    let rc = unsafe { libc::syscall(libc::SYS_clone, flags as c_long, 0, 0, 0, 0) };
    let err = errno();
    if rc == 0 {
        // SAFETY: the new process ends here without running anything else.
        unsafe { libc::_exit(0) };
    }
    if rc > 0 {
        let mut status = 0;
        // SAFETY: reaps the process just created; `status` is a live int.
        unsafe { libc::waitpid(rc as libc::pid_t, &mut status, 0) };
    }
    (rc, err)
}

/// Forks; the child sets no_new_privs, installs `filter` if any, runs `checks` and
/// exits with the bits it returns. Returns the child's exit code.
fn in_child(filter: Option<&[sock_filter]>, checks: fn() -> i32) -> i32 {
    // SAFETY: the child calls only async-signal-safe functions (prctl, syscall, open,
    // read, close, waitpid, _exit) and allocates nothing: the filter was built before
    // the fork. So the test harness's other threads cannot leave it deadlocked.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            // SAFETY: prctl with integer arguments only.
            let nnp = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            let installed = match filter {
                Some(f) => seccomp::install(f).is_ok(),
                None => true,
            };
            let code = if nnp == 0 && installed {
                checks()
            } else {
                SETUP_FAILED
            };
            // SAFETY: ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => match waitpid(child, None).unwrap() {
            WaitStatus::Exited(_, code) => code,
            other => panic!("the child did not exit: {other:?}"),
        },
    }
}

/// The names of the set bits of `code`, from `names` (bit 0 first).
fn failed(code: i32, names: &[&'static str]) -> Vec<&'static str> {
    assert_ne!(code, SETUP_FAILED, "the child could not install the filter");
    names
        .iter()
        .enumerate()
        .filter(|(bit, _)| code & (1 << bit) != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// The checks under the default profile, one bit per failure (see `DEFAULT_CHECKS`).
fn default_checks() -> i32 {
    let mut bits = 0;
    // SAFETY: unshare takes no pointer.
    let unshare = unsafe { libc::syscall(libc::SYS_unshare, 0) };
    if !fails_with(unshare, libc::EPERM) {
        bits |= 1;
    }
    // KEYCTL_GET_KEYRING_ID (0) of KEY_SPEC_THREAD_KEYRING (-1), no create.
    // SAFETY: integer arguments only.
    let keyctl = unsafe { libc::syscall(libc::SYS_keyctl, 0, -1, 0) };
    if !fails_with(keyctl, libc::EPERM) {
        bits |= 2;
    }
    // SAFETY: a null clone_args of size 0, which the kernel would refuse unread.
    let clone3 = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0) };
    if !fails_with(clone3, libc::ENOSYS) {
        bits |= 4;
    }
    // SAFETY: getpid takes no argument.
    if unsafe { libc::syscall(libc::SYS_getpid) } <= 0 {
        bits |= 8;
    }
    let path = c"/nonexistent";
    // SAFETY: a NUL-terminated path the kernel only reads.
    let umount = unsafe { libc::syscall(libc::SYS_umount2, path.as_ptr(), 0) };
    if !fails_with(umount, libc::EPERM) {
        bits |= 16;
    }
    if !status_has(b"\nSeccomp:\t2\n") {
        bits |= 32;
    }
    // clone with a namespace flag is refused; a plain fork-like clone works.
    let (rc, err) = raw_clone(libc::CLONE_NEWUSER | libc::SIGCHLD);
    let (plain, _) = raw_clone(libc::SIGCHLD);
    if !(rc == -1 && err == libc::EPERM) || plain <= 0 {
        bits |= 64;
    }
    bits
}

/// What each bit of `default_checks` means when set.
const DEFAULT_CHECKS: [&str; 7] = [
    "unshare(0) gives EPERM",
    "keyctl(KEYCTL_GET_KEYRING_ID) gives EPERM",
    "clone3 gives ENOSYS",
    "getpid works",
    "umount2(/nonexistent) gives EPERM, not ENOENT",
    "/proc/self/status shows Seccomp:\\t2",
    "clone(CLONE_NEWUSER) gives EPERM and clone(SIGCHLD) works",
];

/// The argument rules and the table's end under the default profile, one bit per
/// failure (see `ARGUMENT_CHECKS`; an exit code holds 7 bits beside SETUP_FAILED).
fn argument_checks() -> i32 {
    let mut bits = 0;
    // SAFETY: integer arguments only; a socket that appears is closed at once.
    let vsock = unsafe { libc::syscall(libc::SYS_socket, 40, libc::SOCK_STREAM, 0) };
    if !fails_with(vsock, libc::EAFNOSUPPORT) {
        if vsock >= 0 {
            // SAFETY: closes the descriptor just returned, once.
            unsafe { libc::close(vsock as i32) };
        }
        bits |= 1;
    }
    // SAFETY: integer arguments only; a socket that appears is closed at once.
    let inet = unsafe { libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0) };
    if inet < 0 {
        bits |= 2;
    } else {
        // SAFETY: closes the descriptor just returned, once.
        unsafe { libc::close(inet as i32) };
    }
    // PER_BSD (6) is refused; the query (0xffffffff) changes nothing and works.
    // SAFETY: integer arguments only.
    let bsd = unsafe { libc::syscall(libc::SYS_personality, 6) };
    // SAFETY: integer arguments only.
    let query = unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffff_u32 as c_long) };
    if !fails_with(bsd, libc::EPERM) || query < 0 {
        bits |= 4;
    }
    // SAFETY: a number no kernel has; no arguments are read.
    if !fails_with(unsafe { libc::syscall(1000) }, libc::ENOSYS) {
        bits |= 8;
    }
    bits
}

/// What each bit of `argument_checks` means when set.
const ARGUMENT_CHECKS: [&str; 4] = [
    "socket(AF_VSOCK) gives EAFNOSUPPORT",
    "socket(AF_INET) works",
    "personality(PER_BSD) gives EPERM and personality(0xffffffff) works",
    "syscall 1000 gives ENOSYS",
];

#[test]
fn default_profile_refuses_and_allows() {
    common::require_root("EPERM must come from the filter, not from missing privileges");
    let filter = seccomp::filter(Seccomp::Default).unwrap();
    let code = in_child(Some(&filter), default_checks);
    assert_eq!(
        failed(code, &DEFAULT_CHECKS),
        Vec::<&str>::new(),
        "exit code {code}"
    );
}

/// `process_mrelease` (Linux 5.15): a syscall the kernel has, allowed by the
/// default profile, and the same number on every target berth ships for.
const PROCESS_MRELEASE: c_long = 448;

/// `process_mrelease(-1, 0)`: EBADF from a kernel that has it.
fn process_mrelease() -> (c_long, i32) {
    // SAFETY: integer arguments only; pidfd -1 is refused before anything is done.
    let rc = unsafe { libc::syscall(PROCESS_MRELEASE, -1, 0) };
    (rc, errno())
}

#[test]
fn a_number_past_the_table_gets_enosys_though_the_kernel_has_it() {
    common::require_root("as the other tests");
    // Without a filter the kernel answers: this proves it has the call.
    let code = in_child(None, || {
        i32::from(!fails_with(process_mrelease().0, libc::EBADF))
    });
    assert_eq!(
        code, 0,
        "process_mrelease(-1, 0) did not give EBADF: the kernel is older than 5.15 and \
         this test needs one that has the call"
    );
    // The default table, ending just below it: the filter answers ENOSYS, as it will
    // for any syscall a newer kernel adds past berth's table.
    let mut known = DEFAULT_POLICY.known.to_vec();
    let last = known.pop().unwrap();
    known.push(*last.start()..=(PROCESS_MRELEASE as u32 - 1));
    let filter = bpf::program(&Policy {
        known: &known,
        ..DEFAULT_POLICY
    })
    .unwrap();
    let code = in_child(Some(&filter), || {
        let (rc, err) = process_mrelease();
        if rc == -1 && err == libc::ENOSYS {
            0
        } else {
            1
        }
    });
    assert_eq!(
        failed(
            code,
            &["process_mrelease gives ENOSYS past a table that ends at 447"]
        ),
        Vec::<&str>::new(),
        "exit code {code}"
    );
}

/// Builds `tests/attack/seccomp.c` static into `dir/seccomp`, as the probe is built.
fn build_attack(dir: &Path) -> PathBuf {
    common::attack_program("seccomp", dir)
}

/// What the attack program prints under the default profile, line by line.
fn expected_attack_output() -> Vec<&'static str> {
    let mut lines = vec![
        "CAP_SYS_ADMIN effective: yes",
        // Refused with the mount API: the clone of /proc/sys is never made.
        "open_tree_attr(/proc/sys, clear RDONLY): EPERM",
        "open_tree(/proc/sys): EPERM",
        // Past the table berth knows.
        "syscall 470 (listns): ENOSYS",
        "syscall 1000: ENOSYS",
    ];
    if cfg!(target_arch = "x86_64") {
        lines.push("x32 getpid: ENOSYS");
    }
    lines.extend([
        "socket(AF_VSOCK): EAFNOSUPPORT",
        "socket(AF_ALG): EAFNOSUPPORT",
        "socketpair(AF_VSOCK): EAFNOSUPPORT",
        "socket(AF_INET): ok",
        "socket(AF_UNIX): ok",
        "personality(0xffffffff): ok",
        "personality(PER_LINUX): ok",
        "personality(PER_BSD): EPERM",
        "personality(READ_IMPLIES_EXEC): EPERM",
        "personality(ADDR_NO_RANDOMIZE): EPERM",
    ]);
    lines
}

#[test]
fn an_app_with_sys_admin_cannot_clone_proc_sys_nor_reach_new_calls_vsock_or_personalities() {
    let bin = TempDir::new("seccomp-attack-bin");
    build_attack(bin.path());
    let app = format!(
        "command: [/attack/seccomp]\n\
         mounts: [{{ type: bind, source: {}, target: /attack, readonly: true }}]\n\
         capabilities: {{ add: [SYS_ADMIN] }}\n\
         restart: {{ policy: never }}\n",
        bin.path().display()
    );
    let mut b = Berth::start("seccomp-attack", &[("attack", &app)]);
    b.expect("attack exited with status 0", 20);
    assert_eq!(b.stop(20), 0, "berth's exit code");
    let log = b.log("attack");
    let printed: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once(" stdout ").map(|(_, text)| text))
        .collect();
    assert_eq!(printed, expected_attack_output(), "the app's log:\n{log}");
}

#[test]
fn default_profile_checks_arguments_and_the_end_of_the_table() {
    common::require_root("as the other tests");
    let filter = seccomp::filter(Seccomp::Default).unwrap();
    let code = in_child(Some(&filter), argument_checks);
    assert_eq!(
        failed(code, &ARGUMENT_CHECKS),
        Vec::<&str>::new(),
        "exit code {code}"
    );
}

#[test]
fn unconfined_profile_installs_nothing() {
    common::require_root("unshare(0) as in the default profile's test");
    assert!(seccomp::filter(Seccomp::Unconfined).is_none());
    let code = in_child(None, || {
        let mut bits = 0;
        // SAFETY: unshare with no flags takes no pointer and changes nothing.
        if unsafe { libc::syscall(libc::SYS_unshare, 0) } != 0 {
            bits |= 1;
        }
        bits
    });
    assert_eq!(
        failed(code, &["unshare(0) succeeds"]),
        Vec::<&str>::new(),
        "exit code {code}"
    );
}

#[test]
fn a_program_the_kernel_refuses_is_an_install_error() {
    common::require_root("as the other tests");
    let code = in_child(None, || {
        // A lone load: the kernel wants a program that ends in a return.
        let no_return = [sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: 4,
        }];
        match seccomp::install(&no_return) {
            Err(SeccompError::Install {
                instructions: 1,
                source,
            }) if source.raw_os_error() == Some(libc::EINVAL) => 0,
            _ => 1,
        }
    });
    assert_eq!(
        code, 0,
        "installing a program without a return did not fail with EINVAL"
    );
}
