//! The classic BPF program of a policy, written by hand (no libseccomp).
//!
//! The layout, for a table of K ranges, N refused syscalls and the argument rules:
//!
//! ```text
//!   ld  [arch]                    ; seccomp_data.arch
//!   jeq AUDIT_ARCH, +1, +0        ; another ABI: kill the process
//!   ret KILL_PROCESS
//!   ld  [nr]                      ; seccomp_data.nr
//!   jgt hi_K, unknown             ; the table's ranges, highest first: above a
//!   jge lo_K, known               ;   range is a gap (or above the table), inside it
//!   ...                           ;   is known; nothing falls below 0
//!   jgt hi_1, unknown
//!   jge lo_1, known
//! unknown:
//!   jeq 0xffffffff, +0, +1        ; nr -1 (a syscall skipped by a tracer) goes on,
//!   ret ALLOW                     ;   as libseccomp lets it
//!   ret ERRNO(ENOSYS)             ; any other unknown number
//! known:
//!   jeq socket, +1, +0            ; one block per argument rule: its syscalls,
//!   jeq socketpair, +0, +5        ;   then the low word of args[0], then returns
//!   ld  [args[0] low 32 bits]
//!   jeq AF_ALG, +2, +0            ;   (Refuse: these values fail)
//!   jeq AF_VSOCK, +1, +0
//!   ret ALLOW
//!   ret ERRNO(EAFNOSUPPORT)
//!   ...
//!   jeq nr_1, +0, +1              ; one pair per refused syscall
//!   ret ERRNO(errno_1)
//!   ...
//!   ret ALLOW
//! ```
//!
//! An argument rule's block ends in returns, so the syscall number stays in the
//! accumulator for everything after it. The argument rules come before the refused
//! syscalls because their syscalls are frequent (`clone`) and the refused ones are
//! not.
//!
//! Cost: on kernels with the seccomp action cache (5.11 and later), a syscall whose
//! path through the program loads nothing but `arch` and `nr` and ends in ALLOW is
//! found allowed once, when the filter is installed, and never runs the program again:
//! that is every allowed syscall but those of the argument rules, which is why only
//! their blocks load an argument. A syscall of an argument rule runs about 4 + 2K +
//! 3 + a dozen instructions.
//!
//! Every jump is local (the longest skips one argument rule's block), so the u8 jump
//! offsets of classic BPF never limit the length of the refused list; [`program`]
//! refuses a policy whose blocks would need a longer one.

use std::mem::offset_of;
use std::ops::RangeInclusive;

use libc::{
    BPF_ABS, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W,
    SECCOMP_RET_ALLOW, SECCOMP_RET_DATA, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS, c_int,
    seccomp_data, sock_filter,
};

use super::deny::{ArgCheck, ArgRule, Denied};

/// The most instructions the kernel accepts in one filter (`BPF_MAXINSNS`).
pub const MAX_INSTRUCTIONS: usize = 4096;

/// `AUDIT_ARCH_*` of `linux/audit.h` (the `libc` crate does not define them).
#[cfg(target_arch = "x86_64")]
pub const AUDIT_ARCH: u32 = 0xc000_003e; // EM_X86_64 | 64BIT | LE
#[cfg(target_arch = "aarch64")]
pub const AUDIT_ARCH: u32 = 0xc000_00b7; // EM_AARCH64 | 64BIT | LE
#[cfg(target_arch = "arm")]
pub const AUDIT_ARCH: u32 = 0x4000_0028; // EM_ARM | LE
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm")))]
compile_error!("seccomp: define AUDIT_ARCH and check the deny-list for this architecture");

/// Offsets into `struct seccomp_data` (native endian, as the kernel fills it).
pub const NR_OFFSET: u32 = offset_of!(seccomp_data, nr) as u32;
pub const ARCH_OFFSET: u32 = offset_of!(seccomp_data, arch) as u32;
/// The low 32 bits of `args[0]`: the first word on little-endian, the second on big.
pub const ARG0_LOW_OFFSET: u32 =
    offset_of!(seccomp_data, args) as u32 + if cfg!(target_endian = "big") { 4 } else { 0 };

/// What the filter enforces for one architecture.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// The `AUDIT_ARCH_*` admitted; any other ABI is killed.
    pub arch: u32,
    /// The syscall numbers known, sorted and disjoint; the others get `ENOSYS`.
    pub known: &'a [RangeInclusive<u32>],
    /// Syscalls refused by their first argument.
    pub arg_rules: &'a [ArgRule],
    /// Syscalls refused outright.
    pub denied: &'a [Denied],
}

/// Why [`program`] could not build a policy's program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramError {
    /// The known ranges are empty, unsorted, overlapping or reversed.
    Ranges,
    /// A block needs a jump longer than classic BPF's 255 instructions.
    JumpTooFar { instructions: usize },
    /// The program is longer than the kernel accepts.
    TooLong { instructions: usize },
}

/// `SECCOMP_RET_ERRNO` with `errno`.
pub fn ret_errno(errno: c_int) -> u32 {
    SECCOMP_RET_ERRNO | (errno.unsigned_abs() & SECCOMP_RET_DATA)
}

fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        // Every BPF opcode fits in 16 bits (the sum of a class, a size and a mode).
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

/// A conditional jump `code` on `k`, `jt` / `jf` instructions ahead of the next one.
fn jump(code: u32, k: u32, jt: usize, jf: usize) -> Result<sock_filter, ProgramError> {
    let far = |n: usize| u8::try_from(n).map_err(|_| ProgramError::JumpTooFar { instructions: n });
    Ok(sock_filter {
        code: (BPF_JMP | code | BPF_K) as u16,
        jt: far(jt)?,
        jf: far(jf)?,
        k,
    })
}

fn ret(k: u32) -> sock_filter {
    stmt(BPF_RET | BPF_K, k)
}

fn load(offset: u32) -> sock_filter {
    stmt(BPF_LD | BPF_W | BPF_ABS, offset)
}

/// The program that enforces `policy`: kills another ABI, answers `ENOSYS` to a number
/// outside `known`, refuses by argument and outright, and allows everything else.
pub fn program(policy: &Policy) -> Result<Vec<sock_filter>, ProgramError> {
    let ordered = policy
        .known
        .windows(2)
        .all(|w| matches!(w, [a, b] if a.end() < b.start()));
    if policy.known.is_empty() || !ordered || policy.known.iter().any(|r| r.is_empty()) {
        return Err(ProgramError::Ranges);
    }
    let mut p = Vec::with_capacity(64 + 2 * policy.denied.len());
    p.push(load(ARCH_OFFSET));
    p.push(jump(BPF_JEQ, policy.arch, 1, 0)?);
    p.push(ret(SECCOMP_RET_KILL_PROCESS));
    p.push(load(NR_OFFSET));

    // The range checks: 2 per range, then `unknown` (3 instructions), then `known`.
    let checks = 2 * policy.known.len();
    for (i, range) in policy.known.iter().rev().enumerate() {
        let to_unknown = checks - (2 * i + 1);
        p.push(jump(BPF_JGT, *range.end(), to_unknown, 0)?);
        p.push(jump(BPF_JGE, *range.start(), to_unknown - 1 + 3, 0)?);
    }
    p.push(jump(BPF_JEQ, u32::MAX, 0, 1)?);
    p.push(ret(SECCOMP_RET_ALLOW));
    p.push(ret(ret_errno(libc::ENOSYS)));

    for rule in policy.arg_rules {
        arg_rule(&mut p, rule)?;
    }
    for d in policy.denied {
        // A syscall number is an int in seccomp_data; compare its 32 bits.
        p.push(jump(BPF_JEQ, d.nr as u32, 0, 1)?);
        p.push(ret(ret_errno(d.errno)));
    }
    p.push(ret(SECCOMP_RET_ALLOW));
    if p.len() > MAX_INSTRUCTIONS {
        return Err(ProgramError::TooLong {
            instructions: p.len(),
        });
    }
    Ok(p)
}

/// Appends the block of `rule`: a match on each of its syscalls, the load of the low
/// word of `args[0]`, the check, and the two returns.
fn arg_rule(p: &mut Vec<sock_filter>, rule: &ArgRule) -> Result<(), ProgramError> {
    let refused = ret(ret_errno(rule.errno));
    let allowed = ret(SECCOMP_RET_ALLOW);
    let mut body = vec![load(ARG0_LOW_OFFSET)];
    match rule.check {
        ArgCheck::Refuse(values) => {
            // A match jumps over the rest and the ALLOW to the refusal.
            for (i, v) in values.iter().enumerate() {
                body.push(jump(BPF_JEQ, *v, values.len() - i, 0)?);
            }
            body.extend([allowed, refused]);
        }
        ArgCheck::AllowOnly(values) => {
            // A match jumps over the rest and the refusal to the ALLOW.
            for (i, v) in values.iter().enumerate() {
                body.push(jump(BPF_JEQ, *v, values.len() - i, 0)?);
            }
            body.extend([refused, allowed]);
        }
        ArgCheck::AnyBit(mask) => {
            body.push(jump(BPF_JSET, mask, 0, 1)?);
            body.extend([refused, allowed]);
        }
    }
    let n = rule.syscalls.len();
    for (i, s) in rule.syscalls.iter().enumerate() {
        // A match goes to the load; the last miss skips the block.
        let to_body = n - 1 - i;
        let miss = if i + 1 == n { body.len() } else { 0 };
        p.push(jump(BPF_JEQ, s.nr as u32, to_body, miss)?);
    }
    p.extend(body);
    Ok(())
}
