//! The generated program, run by a small interpreter of the instructions it uses and
//! compared with [`Rule::allows`] over every request shape; and its exact encoding.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code"
)]

use super::*;
use crate::cgroup::devices::{self, standard};

fn regs(i: &Insn) -> (usize, usize) {
    #[cfg(target_endian = "little")]
    return (usize::from(i.regs & 0x0f), usize::from(i.regs >> 4));
    #[cfg(target_endian = "big")]
    return (usize::from(i.regs >> 4), usize::from(i.regs & 0x0f));
}

/// Runs `prog` on the context (access_type, major, minor) as the kernel would; also
/// checks what the verifier checks for these instructions: no jump out of the
/// program, no backward jump, the end reached only through `exit`.
fn run(prog: &[Insn], ctx: [u32; 3]) -> u64 {
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    for _ in 0..prog.len() {
        let i = prog
            .get(pc)
            .unwrap_or_else(|| panic!("pc {pc} left the program"));
        let (dst, src) = regs(i);
        let imm32 = i.imm as u32;
        let mut next = pc + 1;
        match i.code {
            LDX_MEM_W => {
                assert_eq!(src, 1, "loads only from the context");
                r[dst] = u64::from(ctx[usize::try_from(i.off).unwrap() / 4]);
            }
            ALU_AND_K => r[dst] = u64::from(r[dst] as u32 & imm32),
            ALU_RSH_K => r[dst] = u64::from((r[dst] as u32) >> imm32),
            ALU_MOV_K => r[dst] = u64::from(imm32),
            ALU_MOV_X => r[dst] = u64::from(r[src] as u32),
            JMP_JNE_K | JMP_JNE_X => {
                let other = if i.code == JMP_JNE_K {
                    i64::from(i.imm) as u64
                } else {
                    r[src]
                };
                assert!(i.off >= 0, "backward jump at {pc}");
                if r[dst] != other {
                    next = pc + 1 + usize::try_from(i.off).unwrap();
                }
            }
            JMP_EXIT => return r[0],
            code => panic!("opcode {code:#x} at {pc} is not one the generator uses"),
        }
        pc = next;
    }
    panic!("no exit reached")
}

fn request(kind: Type, access: Access) -> u32 {
    let dev = match kind {
        Type::Block => DEV_BLOCK,
        _ => DEV_CHAR,
    };
    (u32::from(access.bits()) << 16) | dev as u32
}

#[test]
fn the_program_allows_exactly_what_the_rules_allow() {
    let extra = [
        Rule::node(true, 8, 0),
        Rule {
            kind: Type::Char,
            major: None,
            minor: Some(7),
            access: Access::READ,
        },
        Rule {
            kind: Type::All,
            major: Some(10),
            minor: None,
            access: Access::READ.union(Access::WRITE),
        },
    ];
    for list in [devices::rules(&[]), devices::rules(&extra), Vec::new()] {
        let prog = program(&list);
        for kind in [Type::Char, Type::Block] {
            for access in 1..=7 {
                let access = Access(access);
                for (major, minor) in [
                    (1, 3),
                    (1, 11),
                    (1, 1),
                    (5, 0),
                    (5, 1),
                    (5, 2),
                    (136, 0),
                    (136, 99),
                    (8, 0),
                    (8, 1),
                    (3, 7),
                    (10, 200),
                    (1, 9),
                ] {
                    let want = list.iter().any(|r| r.allows(kind, major, minor, access));
                    let got = run(&prog, [request(kind, access), major, minor]);
                    assert_eq!(
                        got,
                        u64::from(want),
                        "{kind:?} {major}:{minor} {access} with {list:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_standard_program_is_small_and_encoded_as_the_kernel_reads_it() {
    let prog = program(&standard());
    // 6 to read the context; 5 per exact rule (type, major, minor, return 1); 4 for
    // pts (no minor); 2 to refuse.
    assert_eq!(prog.len(), 6 + 7 * 5 + 4 + 2);
    assert_eq!(std::mem::size_of::<Insn>(), 8);
    assert_eq!(
        prog[..7],
        [
            insn(0x61, 2, 1, 0, 0),
            insn(0x54, 2, 0, 0, 0xffff),
            insn(0x61, 3, 1, 0, 0),
            insn(0x74, 3, 0, 0, 16),
            insn(0x61, 4, 1, 4, 0),
            insn(0x61, 5, 1, 8, 0),
            // not a char device: skip the rest of the 5-instruction block.
            insn(0x55, 2, 0, 4, 2),
        ]
    );
    #[cfg(target_endian = "little")]
    assert_eq!(
        prog[4].regs, 0x14,
        "dst r4 in the low nibble, src r1 in the high"
    );
    assert_eq!(prog[prog.len() - 2], insn(0xb4, 0, 0, 0, 0));
    assert_eq!(prog[prog.len() - 1], insn(0x95, 0, 0, 0, 0));
    // A partial access adds the three-instruction access check.
    let partial = program(&[Rule {
        kind: Type::Char,
        major: Some(1),
        minor: Some(3),
        access: Access::READ,
    }]);
    assert_eq!(partial.len(), 6 + 8 + 2);
    assert_eq!(partial[7], insn(0xbc, 1, 3, 0, 0));
    assert_eq!(partial[8], insn(0x54, 1, 0, 0, 2));
    assert_eq!(partial[9], insn(0x5d, 1, 3, 4, 0));
}

#[test]
fn an_impossible_device_number_matches_nothing() {
    assert_eq!(imm(u32::MAX), -1);
    let prog = program(&[Rule::char(u32::MAX, 0)]);
    assert_eq!(
        run(&prog, [request(Type::Char, Access::READ), u32::MAX, 0]),
        0
    );
}
