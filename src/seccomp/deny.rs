//! What the `default` profile refuses, per architecture.
//!
//! # A deny-list over a closed table
//!
//! Docker's default profile is an allow-list of about 360 syscalls, widened by the
//! capabilities a container holds. berth's filter is written from the other end, over a
//! closed table:
//!
//! 1. [`KNOWN`]: the syscall numbers of this architecture's table, as reviewed here
//!    (Linux 6.18). Every other number gets `ENOSYS`: what the kernel itself answers
//!    for a number it lacks, and what runc (which Docker runs) answers for a syscall
//!    newer than its profile, so a newer libc falls back to the older call. A syscall
//!    added to Linux after this review is therefore refused until someone reviews it
//!    and widens the table: `open_tree_attr` (6.15) would have been. On x86_64 this
//!    also refuses every x32 number (bit 30 set) and the unassigned numbers between
//!    337 and 423, where new x86-only calls land (`uprobe` took 336).
//! 2. [`DEFAULT_DENIED`]: syscalls of the table refused outright.
//! 3. [`ARG_RULES`]: syscalls of the table refused by their first argument.
//!
//! Everything else in the table is allowed.
//!
//! Why not Docker's allow-list: over a closed table a deny-list is an allow-list
//! written down by its complement; what it allows is fixed when berth is built, as with
//! Docker's. The complement is short (about 70 names, each with its reason below)
//! where the allow-list is three tables of 300 to 380 names, each with its own
//! architecture-only calls (arm's `mmap2`, `_llseek`, the `*32` ids, the time64
//! twins); there a missing name fails an app at one call site with EPERM, and an extra
//! one goes unseen. Checked against moby/profiles' `seccomp/default.json` (commit
//! cd3bed8), the two differ only in the calls listed under "Where berth differs from
//! Docker". Speed does not decide either: on kernels with the seccomp action cache
//! (5.11 and later), a syscall whose verdict does not depend on its arguments is
//! looked up in a bitmap and the program is not run at all.
//!
//! Numbers come from `libc::SYS_*`, so they are the running target's own; a syscall a
//! target's table lacks is left out with `#[cfg]`, and those that the `libc` crate
//! does not (yet) define for a target are defined in [`sys`] from the kernel's table.
//!
//! # What is refused, and why
//!
//! Every entry returns `EPERM`, as Docker does, except where an errno is named.
//!
//! - Kernel code and the machine: `kexec_load`, `kexec_file_load`, `init_module`,
//!   `finit_module`, `delete_module`, `reboot`, `swapon`, `swapoff`, `acct`.
//! - The clock, shared by every app and the host: `settimeofday`, `clock_settime`,
//!   `clock_adjtime`, `adjtimex`, and on 32-bit arm their time64 twins
//!   `clock_settime64` and `clock_adjtime64`, without which the 32-bit entries would
//!   be bypassed.
//! - Mounts: `mount`, `umount2`, `pivot_root`, and the new mount API (`fsopen`,
//!   `fsconfig`, `fsmount`, `fspick`, `open_tree`, `open_tree_attr`, `move_mount`,
//!   `mount_setattr`), the second way to do what `mount` does. `open_tree_attr`
//!   (6.15) is `open_tree` that also sets the clone's attributes: with CAP_SYS_ADMIN
//!   it detached a writable copy of a read-only /proc/sys. `chroot` stays allowed, as
//!   in Docker (it needs CAP_SYS_CHROOT).
//! - Namespaces: `unshare`, `setns`, `clone` with any of the CLONE_NEW* flags of
//!   [`NAMESPACE_FLAGS`] in its flags argument (a rule on the argument), and `clone3`,
//!   whose flags sit in memory a BPF filter cannot read: it gets `ENOSYS` so that
//!   glibc and musl fall back to `clone`, where the flags are checked.
//! - Kernel keyrings, not namespaced: `keyctl`, `add_key`, `request_key`.
//! - Kernel attack surface: `bpf`, `perf_event_open`, `userfaultfd`, `io_uring_setup`,
//!   `io_uring_enter`, `io_uring_register` (Docker refuses io_uring since 25.0),
//!   `lookup_dcookie`, `quotactl`, `quotactl_fd`, `syslog`, `fanotify_init`.
//! - Socket families, by `socket`'s and `socketpair`'s first argument: `AF_ALG` (38,
//!   the kernel's crypto API) and `AF_VSOCK` (40, the host–VM channel), each with a
//!   history of kernel exploits and of no use to an app on a device. They get
//!   `EAFNOSUPPORT`, what a kernel built without the family answers, so code that
//!   probes for one carries on as it would there. `socketpair` is checked too: the
//!   family's `create` runs (and its module loads) before `socketpair` fails.
//! - `personality`, unless its argument is one of Docker's five values: 0 (PER_LINUX),
//!   8 (PER_LINUX32), 0x20000 (UNAME26), 0x20008 (both) and 0xffffffff (the query).
//!   The others turn on READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE (no ASLR for what the
//!   app runs next), MMAP_PAGE_ZERO and foreign ABIs.
//! - LSM attributes: `lsm_get_self_attr`, `lsm_set_self_attr`, `lsm_list_modules`
//!   (6.8), as Docker without CAP_SYS_ADMIN: berth sets up no LSM profile, and an app
//!   that must read its label has /proc/self/attr.
//! - File handles, which open files by inode past the mount namespace (the "shocker"
//!   escape): `open_by_handle_at`, `name_to_handle_at`.
//! - Hardware: `iopl`, `ioperm` (x86_64 port I/O), `pciconfig_iobase`,
//!   `pciconfig_read`, `pciconfig_write` (32-bit arm, PCI configuration space).
//! - Obsolete interfaces: `nfsservctl`, and where the target has them `uselib`,
//!   `_sysctl`, `sysfs`, `ustat`.
//! - Other processes' memory: `ptrace`, `process_vm_readv`, `process_vm_writev`,
//!   `kcmp`, `pidfd_getfd`, `process_madvise`.
//! - NUMA placement, which moves other processes' pages: `mbind`, `set_mempolicy`,
//!   `get_mempolicy`, `move_pages`, `migrate_pages`, `set_mempolicy_home_node`.
//! - 32-bit arm only, `socketcall` (102) gets `ENOSYS`: it exists only for the old
//!   ABI, and the kernel builds seccomp filters only without OABI_COMPAT, so the
//!   kernel answers ENOSYS already; the entry keeps the socket family rule from
//!   depending on that.
//!
//! # Syscalls added since the first list (Linux 6.5 to 6.18)
//!
//! - Allowed, as Docker allows them: `cachestat`, `fchmodat2`, `futex_wake`,
//!   `futex_wait`, `futex_requeue`, `setxattrat`, `getxattrat`, `listxattrat`,
//!   `removexattrat` (new forms of calls already allowed), `map_shadow_stack` and
//!   `mseal` (hardening an app applies to itself), `statmount` and `listmount` (the
//!   mount table the app reads in /proc/self/mountinfo; another mount namespace's table
//!   needs CAP_SYS_ADMIN over its owner, so an app granted SYS_ADMIN can read the
//!   host's mount table, not change it).
//! - Allowed, though Docker's list predates them: `file_getattr` and `file_setattr`
//!   (6.17), the path forms of the FS_IOC_FSGETXATTR and FS_IOC_FSSETXATTR ioctls, with
//!   the same permission checks; x86_64's `uretprobe` and `uprobe` (Docker allows the
//!   first), which work only from a uprobe trampoline the kernel maps, and which
//!   current kernels let through without running any filter (seccomp's own exception,
//!   so that a host uprobe on an app does not break it).
//! - Refused: `open_tree_attr`, the `lsm_*` calls (above).
//! - `listns` (6.19) and anything later: not in [`KNOWN`], so `ENOSYS`.
//!
//! # Where berth differs from Docker
//!
//! - Docker allows `ptrace`, `process_vm_readv` and `process_vm_writev` on kernels from
//!   4.8; berth refuses them: a production app on a device has no debugger to run, and
//!   a compromised one should not read its neighbours in the same pid namespace.
//! - Docker allows `name_to_handle_at`, and `clock_adjtime`, `clock_adjtime64` and
//!   `adjtimex` (which read the clock, and set it with CAP_SYS_TIME); berth refuses
//!   them outright.
//! - Docker opens many of these syscalls to a container that is granted the matching
//!   capability (CAP_SYS_ADMIN, CAP_SYS_TIME, CAP_SYS_PTRACE...); berth refuses them
//!   whatever the `capabilities:` block says. An app that needs one runs with
//!   `seccomp: unconfined`.
//! - Docker refuses `chroot`, `sethostname`, `setdomainname` and `vhangup` to a
//!   container without the capability the kernel checks for them (CAP_SYS_CHROOT,
//!   CAP_SYS_ADMIN, CAP_SYS_TTY_CONFIG); berth leaves that check to the kernel, which
//!   answers EPERM just the same.
//! - Socket families: Docker refuses the same two with `EPERM`, and only in `socket`;
//!   berth answers `EAFNOSUPPORT` and checks `socketpair` too.
//! - `personality`: Docker compares all 64 bits, so `personality(-1)` passed as a long
//!   is refused; berth compares the low 32 bits, all the kernel reads (an `unsigned
//!   int`), as for `clone`'s flags.
//! - Numbers outside the table: Docker's filter answers `EPERM`, which runc turns into
//!   `ENOSYS` only above the highest number its profile names; berth answers `ENOSYS`
//!   for every number outside [`KNOWN`], gaps included.
//! - `file_getattr`, `file_setattr` and `uprobe` are allowed (above).
//! - 32-bit arm's private calls: Docker allows `breakpoint`, `cacheflush` and
//!   `set_tls`; berth also allows `get_tls` (it reads the thread pointer), and
//!   `usr26` and `usr32` get `ENOSYS`.
//! - Calls the kernel does not implement but keeps a number for stay allowed, since
//!   the kernel answers ENOSYS itself: x86_64's `getpmsg`, `putpmsg`, `afs_syscall`,
//!   `tuxcall`, `security`, `vserver`; arm's `vserver`. So do arm's old `nice`,
//!   `sigaction`, `sigsuspend`, `sigpending` and `bdflush`, which Docker's list leaves
//!   out though it allows what they do.
//! - Syscalls the targets berth ships for do not have are not listed: `stime`, `vm86`,
//!   `vm86old` (32-bit x86 only), and `create_module`, `get_kernel_syms`,
//!   `query_module` (gone since Linux 2.6; the kernel answers ENOSYS).
//! - Only the native ABI is allowed at all (see the program's arch check): a 32-bit
//!   binary on a 64-bit kernel (i386 on x86_64, armv7 on aarch64) is killed at its
//!   first syscall, and x32 calls get `ENOSYS`, where Docker's profile admits the
//!   32-bit ABI and x32.

use std::ops::RangeInclusive;

use libc::{c_int, c_long};

/// A syscall of this target: its `libc` name and number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syscall {
    /// The `libc` name, e.g. `SYS_socket`.
    sys_name: &'static str,
    pub nr: c_long,
}

impl Syscall {
    /// The syscall's name, e.g. `socket`.
    pub fn name(&self) -> &'static str {
        self.sys_name.strip_prefix("SYS_").unwrap_or(self.sys_name)
    }
}

/// One refused syscall: its number on this target and the errno it fails with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    /// The `libc` name, e.g. `SYS_mount`.
    sys_name: &'static str,
    pub nr: c_long,
    pub errno: c_int,
}

impl Denied {
    /// The syscall's name, e.g. `mount`.
    pub fn name(&self) -> &'static str {
        self.sys_name.strip_prefix("SYS_").unwrap_or(self.sys_name)
    }
}

/// What a rule checks in the low 32 bits of a syscall's first argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgCheck {
    /// Refused when the argument is one of these values.
    Refuse(&'static [u32]),
    /// Refused unless the argument is one of these values.
    AllowOnly(&'static [u32]),
    /// Refused when the argument has any of these bits.
    AnyBit(u32),
}

/// Syscalls refused by their first argument. Only its low 32 bits are compared: each
/// of these syscalls reads only those (`socket`'s and `socketpair`'s family and
/// `personality`'s persona are ints; `clone` keeps the low 32 bits of its flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgRule {
    pub syscalls: &'static [Syscall],
    pub check: ArgCheck,
    pub errno: c_int,
}

/// `libc`'s syscall numbers, plus those the `libc` crate lacks for a target (an item
/// defined here shadows the glob, so a later `libc` that adds one changes nothing).
mod sys {
    #![allow(
        non_upper_case_globals,
        reason = "libc's names, SYS_ and the syscall's"
    )]

    pub use libc::*;

    /// `scripts/syscall.tbl` (every target berth ships for has them at these
    /// numbers); absent from the `libc` crate's tables for these targets.
    pub const SYS_lsm_get_self_attr: c_long = 459;
    pub const SYS_lsm_set_self_attr: c_long = 460;
    pub const SYS_lsm_list_modules: c_long = 461;
    pub const SYS_open_tree_attr: c_long = 467;

    /// `include/uapi/asm-generic/unistd.h`; absent from libc's musl aarch64 table.
    #[cfg(target_arch = "aarch64")]
    pub const SYS_kexec_file_load: c_long = 294;
    /// `arch/arm/tools/syscall.tbl`; absent from libc's arm tables.
    #[cfg(target_arch = "arm")]
    pub const SYS_socketcall: c_long = 102;
    #[cfg(target_arch = "arm")]
    pub const SYS_migrate_pages: c_long = 400;
    #[cfg(target_arch = "arm")]
    pub const SYS_kexec_file_load: c_long = 401;
    #[cfg(target_arch = "arm")]
    pub const SYS_clock_settime64: c_long = 404;
    #[cfg(target_arch = "arm")]
    pub const SYS_clock_adjtime64: c_long = 405;
}

macro_rules! deny {
    ($sys:ident) => {
        deny!($sys, libc::EPERM)
    };
    ($sys:ident, $errno:expr) => {
        Denied {
            sys_name: stringify!($sys),
            nr: sys::$sys,
            errno: $errno,
        }
    };
}

macro_rules! syscall {
    ($sys:ident) => {
        Syscall {
            sys_name: stringify!($sys),
            nr: sys::$sys,
        }
    };
}

/// The highest syscall number of the Linux 6.18 table on every target berth ships for
/// (`file_setattr`).
const HIGHEST: u32 = 469;

/// The syscall numbers of this target's table (Linux 6.18), sorted and disjoint; every
/// other number gets `ENOSYS` (see the module docs).
#[cfg(target_arch = "x86_64")]
pub const KNOWN: &[RangeInclusive<u32>] = &[
    // read (0) to uprobe (336); 337 to 386 are free for new x86-only calls, 387 to 423
    // unused, 512 to 547 the x32 ABI's own numbers (refused with it).
    0..=336,
    // pidfd_send_signal (424), the numbers shared by every architecture since 5.1.
    424..=HIGHEST,
];
/// The syscall numbers of this target's table (Linux 6.18), sorted and disjoint; every
/// other number gets `ENOSYS` (see the module docs).
#[cfg(target_arch = "aarch64")]
pub const KNOWN: &[RangeInclusive<u32>] = &[
    // io_setup (0) to kexec_file_load (294); 295 to 402 are unassigned, 403 to 423 the
    // 32-bit time64 calls.
    0..=294,
    424..=HIGHEST,
];
/// The syscall numbers of this target's table (Linux 6.18), sorted and disjoint; every
/// other number gets `ENOSYS` (see the module docs).
#[cfg(target_arch = "arm")]
pub const KNOWN: &[RangeInclusive<u32>] = &[
    // restart_syscall (0) to file_setattr, with the time64 calls at 403 to 423.
    0..=HIGHEST,
    // The ARM private calls (__ARM_NR_BASE 0x0f0000): breakpoint and cacheflush, then
    // set_tls and get_tls; usr26 and usr32 (0x0f0003, 0x0f0004) are left out.
    0x0f_0001..=0x0f_0002,
    0x0f_0005..=0x0f_0006,
];

/// The flags of `clone` that create a namespace: NEWNS, NEWUTS, NEWIPC, NEWUSER,
/// NEWPID, NEWNET and NEWCGROUP (0x7e020000, Docker's mask). A `clone` with any of them
/// fails with `EPERM`.
pub const NAMESPACE_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u32;

/// `AF_ALG` and `AF_VSOCK` of `linux/socket.h` (the `libc` crate lacks `AF_VSOCK` on
/// musl).
pub const AF_ALG: u32 = 38;
pub const AF_VSOCK: u32 = 40;

/// The `personality` values Docker allows: PER_LINUX, PER_LINUX32, UNAME26,
/// PER_LINUX32 | UNAME26, and 0xffffffff, which only reads the current persona.
pub const PERSONALITIES: &[u32] = &[0, 0x0008, 0x0002_0000, 0x0002_0008, 0xffff_ffff];

/// The syscalls the `default` profile refuses by their first argument, the ones a
/// program makes most first (`clone` on every fork and thread).
pub const ARG_RULES: &[ArgRule] = &[
    ArgRule {
        syscalls: &[syscall!(SYS_clone)],
        check: ArgCheck::AnyBit(NAMESPACE_FLAGS),
        errno: libc::EPERM,
    },
    ArgRule {
        syscalls: &[syscall!(SYS_socket), syscall!(SYS_socketpair)],
        check: ArgCheck::Refuse(&[AF_ALG, AF_VSOCK]),
        errno: libc::EAFNOSUPPORT,
    },
    ArgRule {
        syscalls: &[syscall!(SYS_personality)],
        check: ArgCheck::AllowOnly(PERSONALITIES),
        errno: libc::EPERM,
    },
];

/// The syscalls the `default` profile refuses on this target (see the module docs).
pub const DEFAULT_DENIED: &[Denied] = &[
    // Kernel code and the machine.
    deny!(SYS_kexec_load),
    deny!(SYS_kexec_file_load),
    deny!(SYS_init_module),
    deny!(SYS_finit_module),
    deny!(SYS_delete_module),
    deny!(SYS_reboot),
    deny!(SYS_swapon),
    deny!(SYS_swapoff),
    deny!(SYS_acct),
    // The clock.
    deny!(SYS_settimeofday),
    deny!(SYS_clock_settime),
    deny!(SYS_clock_adjtime),
    deny!(SYS_adjtimex),
    #[cfg(target_arch = "arm")]
    deny!(SYS_clock_settime64),
    #[cfg(target_arch = "arm")]
    deny!(SYS_clock_adjtime64),
    // Mounts.
    deny!(SYS_mount),
    deny!(SYS_umount2),
    deny!(SYS_pivot_root),
    deny!(SYS_fsopen),
    deny!(SYS_fsconfig),
    deny!(SYS_fsmount),
    deny!(SYS_fspick),
    deny!(SYS_open_tree),
    deny!(SYS_open_tree_attr),
    deny!(SYS_move_mount),
    deny!(SYS_mount_setattr),
    // Namespaces (clone's flags are checked by an argument rule).
    deny!(SYS_unshare),
    deny!(SYS_setns),
    deny!(SYS_clone3, libc::ENOSYS),
    // Kernel keyrings.
    deny!(SYS_keyctl),
    deny!(SYS_add_key),
    deny!(SYS_request_key),
    // Kernel attack surface.
    deny!(SYS_bpf),
    deny!(SYS_perf_event_open),
    deny!(SYS_userfaultfd),
    deny!(SYS_io_uring_setup),
    deny!(SYS_io_uring_enter),
    deny!(SYS_io_uring_register),
    deny!(SYS_lookup_dcookie),
    deny!(SYS_quotactl),
    deny!(SYS_quotactl_fd),
    deny!(SYS_syslog),
    deny!(SYS_fanotify_init),
    // LSM attributes.
    deny!(SYS_lsm_get_self_attr),
    deny!(SYS_lsm_set_self_attr),
    deny!(SYS_lsm_list_modules),
    // File handles.
    deny!(SYS_open_by_handle_at),
    deny!(SYS_name_to_handle_at),
    // Hardware.
    #[cfg(target_arch = "x86_64")]
    deny!(SYS_iopl),
    #[cfg(target_arch = "x86_64")]
    deny!(SYS_ioperm),
    #[cfg(target_arch = "arm")]
    deny!(SYS_pciconfig_iobase),
    #[cfg(target_arch = "arm")]
    deny!(SYS_pciconfig_read),
    #[cfg(target_arch = "arm")]
    deny!(SYS_pciconfig_write),
    // Obsolete interfaces.
    deny!(SYS_nfsservctl),
    #[cfg(any(target_arch = "x86_64", target_arch = "arm"))]
    deny!(SYS_uselib),
    #[cfg(any(target_arch = "x86_64", target_arch = "arm"))]
    deny!(SYS__sysctl),
    #[cfg(any(target_arch = "x86_64", target_arch = "arm"))]
    deny!(SYS_sysfs),
    #[cfg(any(target_arch = "x86_64", target_arch = "arm"))]
    deny!(SYS_ustat),
    // Other processes' memory.
    deny!(SYS_ptrace),
    deny!(SYS_process_vm_readv),
    deny!(SYS_process_vm_writev),
    deny!(SYS_kcmp),
    deny!(SYS_pidfd_getfd),
    deny!(SYS_process_madvise),
    // NUMA placement.
    deny!(SYS_mbind),
    deny!(SYS_set_mempolicy),
    deny!(SYS_get_mempolicy),
    deny!(SYS_move_pages),
    deny!(SYS_migrate_pages),
    deny!(SYS_set_mempolicy_home_node),
    // The old ABI's socket multiplexer (see the module docs).
    #[cfg(target_arch = "arm")]
    deny!(SYS_socketcall, libc::ENOSYS),
];
