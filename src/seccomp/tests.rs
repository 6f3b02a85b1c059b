//! The program's shape, and its verdicts run through a small classic-BPF interpreter
//! over synthetic `seccomp_data` (no root, no kernel filter).

use libc::{
    BPF_ABS, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W, SECCOMP_RET_ALLOW,
    SECCOMP_RET_KILL_PROCESS, sock_filter,
};

use super::bpf::{ARCH_OFFSET, AUDIT_ARCH, ret_errno};
use super::*;

const LD_ABS: u16 = (BPF_LD | BPF_W | BPF_ABS) as u16;
const JEQ: u16 = (BPF_JMP | BPF_JEQ | BPF_K) as u16;
const JGE: u16 = (BPF_JMP | BPF_JGE | BPF_K) as u16;
const JSET: u16 = (BPF_JMP | BPF_JSET | BPF_K) as u16;
const RET: u16 = (BPF_RET | BPF_K) as u16;

fn default_filter() -> Vec<sock_filter> {
    filter(Seccomp::Default).unwrap()
}

/// `struct seccomp_data` as the kernel lays it out, in native byte order.
fn seccomp_data(arch: u32, nr: i64, args: [u64; 6]) -> [u8; 64] {
    let mut d = [0u8; 64];
    d[0..4].copy_from_slice(&(nr as i32).to_ne_bytes());
    d[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        d[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    d
}

/// Runs `prog` the way the kernel would, for the instructions berth emits; panics on
/// anything else, on a jump out of the program, and on falling off its end.
fn run(prog: &[sock_filter], data: &[u8; 64]) -> u32 {
    let mut acc = 0u32;
    let mut pc = 0usize;
    loop {
        let i = prog.get(pc).expect("ran off the end of the program");
        let next = |taken: bool| pc + 1 + usize::from(if taken { i.jt } else { i.jf });
        pc = match i.code {
            LD_ABS => {
                let k = i.k as usize;
                assert!(k % 4 == 0 && k + 4 <= data.len(), "load at {k}");
                acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                pc + 1
            }
            JEQ => next(acc == i.k),
            JGE => next(acc >= i.k),
            JSET => next(acc & i.k != 0),
            RET => return i.k,
            code => panic!("unexpected opcode {code:#x} at {pc}"),
        };
    }
}

fn verdict(nr: i64, arg0: u64) -> u32 {
    run(
        &default_filter(),
        &seccomp_data(AUDIT_ARCH, nr, [arg0, 0, 0, 0, 0, 0]),
    )
}

#[test]
fn program_shape() {
    let p = default_filter();
    assert!(p.len() <= MAX_INSTRUCTIONS, "{} instructions", p.len());
    let first = p.first().unwrap();
    assert_eq!((first.code, first.k), (LD_ABS, ARCH_OFFSET));
    let second = &p[1];
    assert_eq!((second.code, second.k), (JEQ, AUDIT_ARCH));
    let last = p.last().unwrap();
    assert_eq!((last.code, last.k), (RET, SECCOMP_RET_ALLOW));
    for (pc, i) in p.iter().enumerate() {
        match i.code {
            JEQ | JGE | JSET => {
                for off in [i.jt, i.jf] {
                    let target = pc + 1 + usize::from(off);
                    assert!(target < p.len(), "jump at {pc} to {target}");
                }
            }
            LD_ABS | RET => assert_eq!((i.jt, i.jf), (0, 0), "at {pc}"),
            code => panic!("unexpected opcode {code:#x} at {pc}"),
        }
    }
    // Two instructions per refused syscall, plus the fixed parts.
    let x32 = if cfg!(target_arch = "x86_64") { 3 } else { 0 };
    assert_eq!(p.len(), 4 + x32 + 2 * DEFAULT_DENIED.len() + 5);
}

#[test]
fn syscall_numbers_appear() {
    let p = default_filter();
    let compared = |nr: libc::c_long| p.iter().any(|i| i.code == JEQ && i.k == nr as u32);
    for nr in [
        libc::SYS_kexec_load,
        libc::SYS_mount,
        libc::SYS_unshare,
        libc::SYS_keyctl,
        libc::SYS_clone3,
        libc::SYS_clone,
        libc::SYS_io_uring_setup,
    ] {
        assert!(compared(nr), "syscall {nr} is not in the program");
    }
    assert!(!compared(libc::SYS_getpid));
}

#[test]
fn deny_list() {
    let mut nrs: Vec<_> = DEFAULT_DENIED.iter().map(|d| d.nr).collect();
    nrs.sort_unstable();
    nrs.dedup();
    assert_eq!(nrs.len(), DEFAULT_DENIED.len(), "a syscall is listed twice");
    let names: Vec<_> = DEFAULT_DENIED.iter().map(Denied::name).collect();
    for name in ["mount", "kexec_load", "clone3", "ptrace", "io_uring_enter"] {
        assert!(names.contains(&name), "{name} missing");
    }
    // Docker's choices: chroot and personality are allowed; clone is checked by flags.
    for name in ["chroot", "personality", "clone"] {
        assert!(!names.contains(&name), "{name} listed");
    }
    let expected = if cfg!(target_arch = "aarch64") {
        55
    } else {
        61
    };
    assert_eq!(DEFAULT_DENIED.len(), expected, "{names:?}");
}

#[test]
fn verdicts() {
    let eperm = ret_errno(libc::EPERM);
    assert_eq!(verdict(libc::SYS_getpid, 0), SECCOMP_RET_ALLOW);
    assert_eq!(verdict(libc::SYS_mount, 0), eperm);
    assert_eq!(verdict(libc::SYS_unshare, 0), eperm);
    assert_eq!(verdict(libc::SYS_clone3, 0), ret_errno(libc::ENOSYS));
    assert_eq!(verdict(libc::SYS_chroot, 0), SECCOMP_RET_ALLOW);
    let sigchld = libc::SIGCHLD as u64;
    let newuser = libc::CLONE_NEWUSER as u64;
    assert_eq!(verdict(libc::SYS_clone, newuser | sigchld), eperm);
    assert_eq!(verdict(libc::SYS_clone, libc::CLONE_NEWNET as u64), eperm);
    assert_eq!(verdict(libc::SYS_clone, sigchld), SECCOMP_RET_ALLOW);
    // What pthread_create passes: threads are allowed.
    let thread = (libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM
        | libc::CLONE_SETTLS
        | libc::CLONE_PARENT_SETTID
        | libc::CLONE_CHILD_CLEARTID) as u64;
    assert_eq!(verdict(libc::SYS_clone, thread), SECCOMP_RET_ALLOW);
    // Every listed syscall gets its own errno.
    for d in DEFAULT_DENIED {
        assert_eq!(verdict(d.nr, 0), ret_errno(d.errno), "{}", d.name());
    }
    // nr -1 (a syscall skipped by a tracer) is not refused; the kernel answers ENOSYS.
    assert_eq!(verdict(-1, 0), SECCOMP_RET_ALLOW);
}

#[test]
fn another_abi_is_killed() {
    let p = default_filter();
    for arch in [
        0x4000_0003, /* i386 */
        0x4000_0028,
        0xc000_00b7,
        0xc000_003e,
    ] {
        if arch == AUDIT_ARCH {
            continue;
        }
        let data = seccomp_data(arch, libc::SYS_getpid, [0; 6]);
        assert_eq!(run(&p, &data), SECCOMP_RET_KILL_PROCESS, "arch {arch:#x}");
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn x32_is_refused() {
    let x32_getpid = 0x4000_0000 | libc::SYS_getpid;
    assert_eq!(verdict(x32_getpid, 0), ret_errno(libc::EPERM));
}

#[test]
fn unconfined_has_no_filter() {
    assert!(filter(Seccomp::Unconfined).is_none());
}

#[test]
fn install_refuses_a_bad_length_before_the_kernel() {
    assert_eq!(
        install(&[]).unwrap_err().to_string(),
        "install the seccomp filter (0 instructions): the kernel accepts 1 to 4096"
    );
    let long = vec![default_filter()[0]; MAX_INSTRUCTIONS + 1];
    assert!(matches!(
        install(&long),
        Err(SeccompError::Length { instructions: 4097 })
    ));
}

#[test]
fn install_error_says_what_was_attempted() {
    let e = SeccompError::Install {
        instructions: 84,
        source: io::Error::from_raw_os_error(libc::EINVAL),
    };
    assert_eq!(
        e.to_string(),
        "install the seccomp filter (84 instructions): Invalid argument (os error 22)"
    );
    assert!(std::error::Error::source(&e).is_some());
}
