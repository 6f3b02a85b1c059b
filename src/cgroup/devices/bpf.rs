//! The device rules on cgroup v2: v2 has no devices controller; the kernel asks an
//! eBPF program of type `BPF_PROG_TYPE_CGROUP_DEVICE` attached to the cgroup instead,
//! once per open or mknod of a device node, and refuses (EPERM) unless it returns 1.
//!
//! The program is a handful of raw instructions generated here (no libbpf, no
//! compiler): read the request from the context, then one block per rule that jumps
//! to the next block on the first field that does not match and returns 1 at its
//! end; after the last block, return 0. The shape is runc's and youki's. Attached
//! with `BPF_F_ALLOW_MULTI`, so the programs of berth's ancestors (systemd's, say)
//! still run, and the kernel allows only what every one of them allows.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use super::{Access, Rule, Type};
use crate::cgroup::{CgroupError, Result};
use crate::sys;

/// One eBPF instruction, as the kernel reads it (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg and src_reg, 4 bits each, in the C bit-field order of this target.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes (linux/bpf_common.h, linux/bpf.h): class | operation | source.
const LDX_MEM_W: u8 = 0x01 | 0x60; // BPF_LDX | BPF_MEM | BPF_W
const ALU_AND_K: u8 = 0x04 | 0x50; // BPF_ALU | BPF_AND | BPF_K (32-bit)
const ALU_RSH_K: u8 = 0x04 | 0x70; // BPF_ALU | BPF_RSH | BPF_K
const ALU_MOV_K: u8 = 0x04 | 0xb0; // BPF_ALU | BPF_MOV | BPF_K
const ALU_MOV_X: u8 = 0x04 | 0xb0 | 0x08; // BPF_ALU | BPF_MOV | BPF_X
const JMP_JNE_K: u8 = 0x05 | 0x50; // BPF_JMP | BPF_JNE | BPF_K
const JMP_JNE_X: u8 = 0x05 | 0x50 | 0x08; // BPF_JMP | BPF_JNE | BPF_X
const JMP_EXIT: u8 = 0x05 | 0x90; // BPF_JMP | BPF_EXIT

// `struct bpf_cgroup_dev_ctx`: access_type (the access << 16 | the device type),
// major, minor; all u32.
const CTX_ACCESS_TYPE: i16 = 0;
const CTX_MAJOR: i16 = 4;
const CTX_MINOR: i16 = 8;
/// `BPF_DEVCG_DEV_BLOCK`, `BPF_DEVCG_DEV_CHAR`.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

// Registers: r1 the context on entry (reused as scratch once read), r0 the result.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2; // device type
const R3: u8 = 3; // access requested
const R4: u8 = 4; // major
const R5: u8 = 5; // minor

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    #[cfg(target_endian = "little")]
    let regs = (src << 4) | (dst & 0x0f);
    #[cfg(target_endian = "big")]
    let regs = (dst << 4) | (src & 0x0f);
    Insn {
        code,
        regs,
        off,
        imm,
    }
}

/// A block's jumps to "next block" before their offsets are known.
const TO_NEXT: i16 = i16::MIN;

/// The program for `rules` (an allow list: anything no rule matches is refused).
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut prog = vec![
        insn(LDX_MEM_W, R2, R1, CTX_ACCESS_TYPE, 0),
        insn(ALU_AND_K, R2, 0, 0, 0xffff),
        insn(LDX_MEM_W, R3, R1, CTX_ACCESS_TYPE, 0),
        insn(ALU_RSH_K, R3, 0, 0, 16),
        insn(LDX_MEM_W, R4, R1, CTX_MAJOR, 0),
        insn(LDX_MEM_W, R5, R1, CTX_MINOR, 0),
    ];
    for rule in rules {
        let start = prog.len();
        match rule.kind {
            Type::Char => prog.push(insn(JMP_JNE_K, R2, 0, TO_NEXT, DEV_CHAR)),
            Type::Block => prog.push(insn(JMP_JNE_K, R2, 0, TO_NEXT, DEV_BLOCK)),
            Type::All => {}
        }
        if rule.access != Access::ALL {
            // (requested & granted) != requested: something not granted was asked.
            prog.push(insn(ALU_MOV_X, R1, R3, 0, 0));
            prog.push(insn(ALU_AND_K, R1, 0, 0, i32::from(rule.access.bits())));
            prog.push(insn(JMP_JNE_X, R1, R3, TO_NEXT, 0));
        }
        if let Some(major) = rule.major {
            prog.push(insn(JMP_JNE_K, R4, 0, TO_NEXT, imm(major)));
        }
        if let Some(minor) = rule.minor {
            prog.push(insn(JMP_JNE_K, R5, 0, TO_NEXT, imm(minor)));
        }
        prog.push(insn(ALU_MOV_K, R0, 0, 0, 1));
        prog.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let end = prog.len();
        for (at, i) in prog.iter_mut().enumerate().skip(start) {
            if i.off == TO_NEXT {
                // The next block starts at `end`; a jump goes to its pc + 1 + off.
                i.off = i16::try_from(end - at - 1).unwrap_or(i16::MAX);
            }
        }
    }
    prog.push(insn(ALU_MOV_K, R0, 0, 0, 0));
    prog.push(insn(JMP_EXIT, 0, 0, 0, 0));
    prog
}

/// A device number as the immediate it is compared with: majors have 12 bits and
/// minors 20, so every real one fits; a larger one can match no device and becomes
/// -1, which no zero-extended u32 register equals.
fn imm(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(-1)
}

/// `union bpf_attr` for `BPF_PROG_LOAD`, up to `expected_attach_type` (Linux 4.17;
/// an older kernel accepts the larger size as long as the fields it lacks are zero).
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for `BPF_PROG_ATTACH`.
#[repr(C)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;

/// Loads `prog`; with `log`, the verifier's log goes there (for the error message).
fn load(prog: &[Insn], log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    let mut attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(prog.len())
            .map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?,
        insns: prog.as_ptr() as u64,
        license: c"Apache-2.0".as_ptr() as u64,
        prog_name: *b"berth_devices\0\0\0",
        ..ProgLoad::default()
    };
    if let Some(log) = log {
        attr.log_level = 1;
        attr.log_size = u32::try_from(log.len()).unwrap_or(u32::MAX);
        attr.log_buf = log.as_mut_ptr() as u64;
    }
    // SAFETY: `attr` is a fully initialised `ProgLoad`, the `repr(C)` prefix of
    // `union bpf_attr` for BPF_PROG_LOAD; its pointers (program, licence, log) point to
    // memory alive for the call, the log writable for its length.
    Ok(unsafe { sys::module::bpf_fd(BPF_PROG_LOAD, &mut attr) }?)
}

/// Loads `prog`, the way [`attach`] needs it: before Linux 5.11 a program is charged
/// to RLIMIT_MEMLOCK, summed over every process of the user, so with many apps a
/// board's 64 KiB default runs out (EPERM). Then the limit is lifted for the one load
/// (berth is single-threaded and root) and put back, so apps never inherit it.
fn load_charged(prog: &[Insn]) -> io::Result<OwnedFd> {
    match load(prog, None) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            let memlock = libc::RLIMIT_MEMLOCK as libc::c_int;
            let Ok((soft, hard)) = sys::rlimit::get(memlock) else {
                return Err(e);
            };
            if sys::rlimit::set(memlock, u64::MAX, u64::MAX).is_err() {
                return Err(e);
            }
            let again = load(prog, None);
            // Back to what it was; failing that, the higher limit stays, which
            // only lets berth lock more memory (apps get their own limits).
            let _ = sys::rlimit::set(memlock, soft, hard);
            again
        }
        other => other,
    }
}

/// Loads the program of `rules` and attaches it to the cgroup open at `cgroup`
/// (`dir`, for messages), before any process is in it. The cgroup keeps the program;
/// it goes with the cgroup's removal.
pub fn attach(app: &str, cgroup: BorrowedFd, dir: &Path, rules: &[Rule]) -> Result<()> {
    let prog = program(rules);
    let fd = load_charged(&prog).map_err(|source| {
        // Load again with the verifier's log, which says what it refused.
        let mut log = vec![0u8; 16 * 1024];
        let said = match load(&prog, Some(&mut log)) {
            Err(_) => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let text = String::from_utf8_lossy(log.get(..end).unwrap_or_default());
                text.trim().replace('\n', "; ")
            }
            Ok(_) => String::new(),
        };
        CgroupError::Io {
            what: format!(
                "{app}: load the device cgroup program ({} instructions) with bpf(BPF_PROG_LOAD) \
                 for {} (cgroup v2 confines devices only through it: the kernel needs \
                 CONFIG_BPF_SYSCALL and CONFIG_CGROUP_BPF){}",
                prog.len(),
                dir.display(),
                if said.is_empty() {
                    String::new()
                } else {
                    format!("; verifier: {said}")
                }
            ),
            source,
        }
    })?;
    let mut attr = ProgAttach {
        target_fd: u32::try_from(cgroup.as_raw_fd()).unwrap_or(u32::MAX),
        attach_bpf_fd: u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX),
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    // SAFETY: `attr` is a fully initialised `ProgAttach`, the `repr(C)` prefix of
    // `union bpf_attr` for BPF_PROG_ATTACH; it holds no pointers.
    let attached = unsafe { sys::module::bpf(BPF_PROG_ATTACH, &mut attr) };
    attached.map_err(|e| CgroupError::Io {
        what: format!(
            "{app}: attach the device cgroup program to {} with bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE)",
            dir.display()
        ),
        source: e.into(),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests;
