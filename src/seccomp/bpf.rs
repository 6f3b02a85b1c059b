//! The classic BPF program of a deny-list, written by hand (no libseccomp).
//!
//! The layout, for N refused syscalls:
//!
//! ```text
//!   ld  [arch]                    ; seccomp_data.arch
//!   jeq AUDIT_ARCH, +1, +0        ; another ABI: kill the process
//!   ret KILL_PROCESS
//!   ld  [nr]                      ; seccomp_data.nr
//!   jge 0x40000000, +0, +2        ; x86_64 only: the x32 ABI (nr | 0x40000000) gets
//!   jeq 0xffffffff, +1, +0        ;   EPERM; nr -1 (a syscall skipped by a tracer)
//!   ret ERRNO(EPERM)              ;   goes on, as libseccomp lets it
//!   jeq nr_1, +0, +1              ; one pair per refused syscall
//!   ret ERRNO(errno_1)
//!   ...
//!   jeq SYS_clone, +0, +3         ; clone: look at its flags
//!   ld  [args[0] low 32 bits]
//!   jset NAMESPACE_FLAGS, +0, +1
//!   ret ERRNO(EPERM)
//!   ret ALLOW
//! ```
//!
//! Every jump is local (at most 3 forward), so the u8 jump offsets of classic BPF never
//! limit the length of the list. An allowed syscall runs about N + 8 instructions; for
//! the ~60 refused syscalls that is well under a microsecond.
//!
//! `clone` comes last because its check replaces the syscall number in the accumulator
//! with the flags. The flags are the first argument on every target berth ships for
//! (x86_64, aarch64 and arm; s390 would be the exception).

use std::mem::offset_of;

use libc::{
    BPF_ABS, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W, SECCOMP_RET_ALLOW,
    SECCOMP_RET_DATA, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS, c_int, seccomp_data,
    sock_filter,
};

use super::deny::{Denied, NAMESPACE_FLAGS};

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

/// The x32 ABI's syscall numbers have this bit set (`__X32_SYSCALL_BIT`).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Offsets into `struct seccomp_data` (native endian, as the kernel fills it).
pub const NR_OFFSET: u32 = offset_of!(seccomp_data, nr) as u32;
pub const ARCH_OFFSET: u32 = offset_of!(seccomp_data, arch) as u32;
/// The low 32 bits of `args[0]`: the first word on little-endian, the second on big.
pub const ARG0_LOW_OFFSET: u32 =
    offset_of!(seccomp_data, args) as u32 + if cfg!(target_endian = "big") { 4 } else { 0 };

/// `SECCOMP_RET_ERRNO` with `errno`.
pub fn ret_errno(errno: c_int) -> u32 {
    SECCOMP_RET_ERRNO | (errno.unsigned_abs() & SECCOMP_RET_DATA)
}

fn stmt(code: u32, k: u32) -> sock_filter {
    jump(code, k, 0, 0)
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        // Every BPF opcode fits in 16 bits (the sum of a class, a size and a mode).
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The program for `arch` that refuses `denied` and `clone` with namespace flags,
/// and allows everything else. `x32` adds the x86_64 check for the x32 ABI.
pub fn program(arch: u32, x32: bool, denied: &[Denied]) -> Vec<sock_filter> {
    let eperm = ret_errno(libc::EPERM);
    let mut p = Vec::with_capacity(2 * denied.len() + 12);
    p.push(stmt(BPF_LD | BPF_W | BPF_ABS, ARCH_OFFSET));
    p.push(jump(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0));
    p.push(stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
    p.push(stmt(BPF_LD | BPF_W | BPF_ABS, NR_OFFSET));
    if x32 {
        p.push(jump(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 2));
        p.push(jump(BPF_JMP | BPF_JEQ | BPF_K, u32::MAX, 1, 0));
        p.push(stmt(BPF_RET | BPF_K, eperm));
    }
    for d in denied {
        // A syscall number is an int in seccomp_data; compare its 32 bits.
        p.push(jump(BPF_JMP | BPF_JEQ | BPF_K, d.nr as u32, 0, 1));
        p.push(stmt(BPF_RET | BPF_K, ret_errno(d.errno)));
    }
    p.push(jump(
        BPF_JMP | BPF_JEQ | BPF_K,
        libc::SYS_clone as u32,
        0,
        3,
    ));
    p.push(stmt(BPF_LD | BPF_W | BPF_ABS, ARG0_LOW_OFFSET));
    p.push(jump(BPF_JMP | BPF_JSET | BPF_K, NAMESPACE_FLAGS, 0, 1));
    p.push(stmt(BPF_RET | BPF_K, eperm));
    p.push(stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    p
}
