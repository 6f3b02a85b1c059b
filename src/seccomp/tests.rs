//! The program's shape, and its verdicts run through a small classic-BPF interpreter
//! over synthetic `seccomp_data` (no root, no kernel filter).

use std::ops::RangeInclusive;

use libc::{
    BPF_ABS, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W,
    SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS, c_long, sock_filter,
};

use super::bpf::{ARCH_OFFSET, AUDIT_ARCH, NR_OFFSET, Policy, ProgramError, program, ret_errno};
use super::deny::{AF_ALG, AF_VSOCK, ArgCheck, PERSONALITIES};
use super::*;

const LD_ABS: u16 = (BPF_LD | BPF_W | BPF_ABS) as u16;
const JEQ: u16 = (BPF_JMP | BPF_JEQ | BPF_K) as u16;
const JGE: u16 = (BPF_JMP | BPF_JGE | BPF_K) as u16;
const JGT: u16 = (BPF_JMP | BPF_JGT | BPF_K) as u16;
const JSET: u16 = (BPF_JMP | BPF_JSET | BPF_K) as u16;
const RET: u16 = (BPF_RET | BPF_K) as u16;

fn default_filter() -> Vec<sock_filter> {
    filter(Seccomp::Default).unwrap()
}

/// `struct seccomp_data` as the kernel lays it out, in native byte order.
fn seccomp_data(arch: u32, nr: c_long, args: [u64; 6]) -> [u8; 64] {
    let mut d = [0u8; 64];
    #[allow(clippy::unnecessary_cast, reason = "c_long is i32 only on 32-bit arm")]
    let nr = nr as i32;
    d[0..4].copy_from_slice(&nr.to_ne_bytes());
    d[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        d[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    d
}

/// What a run of the program did: its verdict, and whether it loaded anything but
/// `nr` and `arch` (which keeps the kernel from caching the verdict).
struct Run {
    verdict: u32,
    loaded_args: bool,
}

/// Runs `prog` the way the kernel would, for the instructions berth emits; panics on
/// anything else, on a jump out of the program, and on falling off its end.
fn run(prog: &[sock_filter], data: &[u8; 64]) -> Run {
    let mut acc = 0u32;
    let mut pc = 0usize;
    let mut loaded_args = false;
    loop {
        let i = prog.get(pc).expect("ran off the end of the program");
        let next = |taken: bool| pc + 1 + usize::from(if taken { i.jt } else { i.jf });
        pc = match i.code {
            LD_ABS => {
                let k = i.k as usize;
                assert!(k % 4 == 0 && k + 4 <= data.len(), "load at {k}");
                loaded_args |= i.k != NR_OFFSET && i.k != ARCH_OFFSET;
                acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                pc + 1
            }
            JEQ => next(acc == i.k),
            JGE => next(acc >= i.k),
            JGT => next(acc > i.k),
            JSET => next(acc & i.k != 0),
            RET => {
                return Run {
                    verdict: i.k,
                    loaded_args,
                };
            }
            code => panic!("unexpected opcode {code:#x} at {pc}"),
        };
    }
}

fn verdict(nr: c_long, arg0: u64) -> u32 {
    let data = seccomp_data(AUDIT_ARCH, nr, [arg0, 0, 0, 0, 0, 0]);
    run(&default_filter(), &data).verdict
}

fn enosys() -> u32 {
    ret_errno(libc::ENOSYS)
}

/// The instructions of one argument rule's block.
fn block_len(rule: &deny::ArgRule) -> usize {
    let check = match rule.check {
        ArgCheck::Refuse(v) | ArgCheck::AllowOnly(v) => v.len() + 2,
        ArgCheck::AnyBit(_) => 3,
    };
    rule.syscalls.len() + 1 + check
}

#[test]
fn program_shape() {
    let p = default_filter();
    assert!(p.len() <= MAX_INSTRUCTIONS, "{} instructions", p.len());
    assert_eq!((p[0].code, p[0].k), (LD_ABS, ARCH_OFFSET));
    assert_eq!((p[1].code, p[1].k), (JEQ, AUDIT_ARCH));
    assert_eq!((p[3].code, p[3].k), (LD_ABS, NR_OFFSET));
    let last = p.last().unwrap();
    assert_eq!((last.code, last.k), (RET, SECCOMP_RET_ALLOW));
    for (pc, i) in p.iter().enumerate() {
        match i.code {
            JEQ | JGE | JGT | JSET => {
                for off in [i.jt, i.jf] {
                    let target = pc + 1 + usize::from(off);
                    assert!(target < p.len(), "jump at {pc} to {target}");
                }
            }
            LD_ABS | RET => assert_eq!((i.jt, i.jf), (0, 0), "at {pc}"),
            code => panic!("unexpected opcode {code:#x} at {pc}"),
        }
    }
    // The head, two per range, the unknown block, the argument rules, two per
    // refused syscall, the final ALLOW.
    let rules: usize = ARG_RULES.iter().map(block_len).sum();
    let expected = 4 + 2 * KNOWN.len() + 3 + rules + 2 * DEFAULT_DENIED.len() + 1;
    assert_eq!(p.len(), expected);
    let per_arch = if cfg!(target_arch = "x86_64") {
        163
    } else if cfg!(target_arch = "aarch64") {
        151
    } else {
        173
    };
    assert_eq!(p.len(), per_arch, "update the count in the report and here");
}

#[test]
fn syscall_numbers_appear() {
    let p = default_filter();
    let compared = |nr: c_long| p.iter().any(|i| i.code == JEQ && i.k == nr as u32);
    for nr in [
        libc::SYS_kexec_load,
        libc::SYS_mount,
        libc::SYS_unshare,
        libc::SYS_keyctl,
        libc::SYS_clone3,
        libc::SYS_clone,
        libc::SYS_io_uring_setup,
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_personality,
        467, // open_tree_attr
    ] {
        assert!(compared(nr), "syscall {nr} is not in the program");
    }
    assert!(!compared(libc::SYS_getpid));
}

#[test]
fn deny_list() {
    let mut nrs: Vec<_> = DEFAULT_DENIED.iter().map(|d| d.nr).collect();
    let ruled = ARG_RULES
        .iter()
        .flat_map(|r| r.syscalls.iter().map(|s| s.nr));
    nrs.extend(ruled);
    let all = nrs.len();
    nrs.sort_unstable();
    nrs.dedup();
    assert_eq!(nrs.len(), all, "a syscall is listed twice");
    let names: Vec<_> = DEFAULT_DENIED.iter().map(Denied::name).collect();
    for name in [
        "mount",
        "kexec_load",
        "clone3",
        "ptrace",
        "io_uring_enter",
        "open_tree_attr",
        "lsm_set_self_attr",
    ] {
        assert!(names.contains(&name), "{name} missing");
    }
    // Docker's choices: chroot is allowed; clone, socket and personality are checked
    // by their argument.
    for name in ["chroot", "personality", "clone", "socket"] {
        assert!(!names.contains(&name), "{name} listed");
    }
    let ruled: Vec<_> = ARG_RULES
        .iter()
        .flat_map(|r| r.syscalls.iter().map(deny::Syscall::name))
        .collect();
    assert_eq!(ruled, ["clone", "socket", "socketpair", "personality"]);
    let expected = if cfg!(target_arch = "aarch64") {
        59
    } else if cfg!(target_arch = "x86_64") {
        65
    } else {
        69
    };
    assert_eq!(DEFAULT_DENIED.len(), expected, "{names:?}");
}

#[test]
fn every_listed_syscall_is_in_the_table() {
    let known = |nr: c_long| KNOWN.iter().any(|r| r.contains(&(nr as u32)));
    for d in DEFAULT_DENIED {
        assert!(known(d.nr), "{} ({}) is outside KNOWN", d.name(), d.nr);
    }
    for s in ARG_RULES.iter().flat_map(|r| r.syscalls) {
        assert!(known(s.nr), "{} ({}) is outside KNOWN", s.name(), s.nr);
    }
}

#[test]
fn verdicts() {
    let eperm = ret_errno(libc::EPERM);
    assert_eq!(verdict(libc::SYS_getpid, 0), SECCOMP_RET_ALLOW);
    assert_eq!(verdict(libc::SYS_mount, 0), eperm);
    assert_eq!(verdict(libc::SYS_unshare, 0), eperm);
    assert_eq!(verdict(467, 0), eperm, "open_tree_attr");
    assert_eq!(verdict(libc::SYS_clone3, 0), enosys());
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
fn numbers_outside_the_table_get_enosys() {
    let highest = *KNOWN.last().unwrap().end();
    for nr in [
        highest + 1,
        470,
        1000,
        0x3fff_ffff,
        0x7fff_ffff,
        0xffff_fffe,
    ] {
        if KNOWN.iter().any(|r| r.contains(&nr)) {
            continue;
        }
        assert_eq!(verdict(nr as i32 as c_long, 0), enosys(), "nr {nr:#x}");
    }
    assert_eq!(verdict(469, 0), SECCOMP_RET_ALLOW, "file_setattr");
    // Every gap between the ranges, at both ends.
    for w in KNOWN.windows(2) {
        let (low, high) = (*w[0].end(), *w[1].start());
        assert_eq!(verdict(low as c_long, 0), verdict_of_known(low));
        assert_eq!(verdict((low + 1) as c_long, 0), enosys(), "nr {}", low + 1);
        assert_eq!(
            verdict((high - 1) as c_long, 0),
            enosys(),
            "nr {}",
            high - 1
        );
        assert_eq!(verdict(high as c_long, 0), verdict_of_known(high));
    }
}

/// The verdict a known number gets with a zero argument, from the lists.
fn verdict_of_known(nr: u32) -> u32 {
    let nr = nr as i32 as c_long;
    match DEFAULT_DENIED.iter().find(|d| d.nr == nr) {
        Some(d) => ret_errno(d.errno),
        None => SECCOMP_RET_ALLOW,
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn x86_64_table() {
    assert_eq!(verdict(336, 0), SECCOMP_RET_ALLOW, "uprobe");
    for nr in [337, 386, 423, 512, 547, 548] {
        assert_eq!(verdict(nr, 0), enosys(), "nr {nr}");
    }
    assert_eq!(verdict(424, 0), SECCOMP_RET_ALLOW, "pidfd_send_signal");
    // The x32 ABI: the same audit arch, with bit 30 in the number.
    for nr in [libc::SYS_getpid, libc::SYS_read, libc::SYS_mount, 512] {
        assert_eq!(verdict(0x4000_0000 | nr, 0), enosys(), "x32 {nr}");
    }
}

#[cfg(target_arch = "aarch64")]
#[test]
fn aarch64_table() {
    assert_eq!(verdict(294, 0), ret_errno(libc::EPERM), "kexec_file_load");
    for nr in [295, 402, 403, 423] {
        assert_eq!(verdict(nr, 0), enosys(), "nr {nr}");
    }
}

#[cfg(target_arch = "arm")]
#[test]
fn arm_private_calls() {
    // breakpoint, cacheflush, set_tls and get_tls are allowed; usr26, usr32 are not.
    for nr in [0x0f_0001, 0x0f_0002, 0x0f_0005, 0x0f_0006] {
        assert_eq!(verdict(nr, 0), SECCOMP_RET_ALLOW, "nr {nr:#x}");
    }
    for nr in [0x0f_0000, 0x0f_0003, 0x0f_0004, 0x0f_0007] {
        assert_eq!(verdict(nr, 0), enosys(), "nr {nr:#x}");
    }
    assert_eq!(verdict(102, 0), enosys(), "socketcall");
    assert_eq!(verdict(272, 0), ret_errno(libc::EPERM), "pciconfig_read");
}

#[test]
fn socket_families() {
    let refused = ret_errno(libc::EAFNOSUPPORT);
    for nr in [libc::SYS_socket, libc::SYS_socketpair] {
        for family in [AF_ALG, AF_VSOCK] {
            assert_eq!(verdict(nr, family.into()), refused, "{nr} {family}");
            // The kernel reads an int: a high word changes nothing.
            let high = (1u64 << 32) | u64::from(family);
            assert_eq!(verdict(nr, high), refused, "{nr} {high:#x}");
        }
        for family in [
            libc::AF_UNIX,
            libc::AF_INET,
            libc::AF_INET6,
            libc::AF_NETLINK,
            libc::AF_PACKET,
            37,
            39,
            41,
        ] {
            let family = family as u64;
            assert_eq!(verdict(nr, family), SECCOMP_RET_ALLOW, "{nr} {family}");
        }
    }
}

#[test]
fn personality_values() {
    for persona in PERSONALITIES {
        let v = u64::from(*persona);
        assert_eq!(
            verdict(libc::SYS_personality, v),
            SECCOMP_RET_ALLOW,
            "{v:#x}"
        );
    }
    assert_eq!(
        verdict(libc::SYS_personality, u64::MAX),
        SECCOMP_RET_ALLOW,
        "the query as a long: the kernel reads 0xffffffff"
    );
    let eperm = ret_errno(libc::EPERM);
    // PER_BSD, READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, MMAP_PAGE_ZERO, PER_SVR4, and
    // PER_LINUX with a high word (the low word is what counts: a foreign persona).
    for v in [
        0x0006,
        0x0040_0000,
        0x0004_0000,
        0x0010_0000,
        0x0400_0001,
        0x0040_0008,
        (1 << 32) | 0x0006,
    ] {
        assert_eq!(verdict(libc::SYS_personality, v), eperm, "{v:#x}");
    }
}

#[test]
fn only_argument_rules_load_an_argument() {
    // The kernel caches "always allowed" for a syscall whose path loads only nr and
    // arch: every allowed syscall but those of the argument rules must keep it.
    let p = default_filter();
    let ruled: Vec<u32> = ARG_RULES
        .iter()
        .flat_map(|r| r.syscalls.iter().map(|s| s.nr as u32))
        .collect();
    for range in KNOWN {
        for nr in range.clone() {
            let data = seccomp_data(AUDIT_ARCH, nr as i32 as c_long, [0; 6]);
            let r = run(&p, &data);
            assert_eq!(r.loaded_args, ruled.contains(&nr), "nr {nr}");
        }
    }
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
        assert_eq!(
            run(&p, &data).verdict,
            SECCOMP_RET_KILL_PROCESS,
            "arch {arch:#x}"
        );
    }
}

fn policy(known: &[RangeInclusive<u32>]) -> Policy<'_> {
    Policy {
        known,
        ..DEFAULT_POLICY
    }
}

#[test]
fn a_policy_the_program_cannot_hold_is_an_error() {
    assert_eq!(program(&policy(&[])), Err(ProgramError::Ranges));
    assert_eq!(
        program(&policy(&[10..=20, 5..=8])),
        Err(ProgramError::Ranges)
    );
    assert_eq!(
        program(&policy(&[0..=20, 20..=30])),
        Err(ProgramError::Ranges)
    );
    #[allow(clippy::reversed_empty_ranges, reason = "the case under test")]
    let reversed = [20..=10];
    assert_eq!(program(&policy(&reversed)), Err(ProgramError::Ranges));
    let many: Vec<_> = (0..2100u32).map(|i| 2 * i..=2 * i).collect();
    assert_eq!(
        program(&policy(&many)),
        Err(ProgramError::JumpTooFar { instructions: 4199 })
    );
    let values: Vec<u32> = (0..300).collect();
    let rules = [deny::ArgRule {
        syscalls: ARG_RULES[0].syscalls,
        check: ArgCheck::AllowOnly(values.leak()),
        errno: libc::EPERM,
    }];
    let long = Policy {
        arg_rules: &rules,
        ..DEFAULT_POLICY
    };
    assert_eq!(
        program(&long),
        Err(ProgramError::JumpTooFar { instructions: 300 })
    );
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
