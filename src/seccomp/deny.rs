//! The syscalls the `default` profile refuses, per architecture.
//!
//! Docker's default profile is an allow-list of about 350 syscalls, widened by the
//! capabilities a container holds. berth's is the complement, written down: the
//! syscalls Docker refuses to a container without extra capabilities, as a deny-list.
//! A deny-list lets through syscalls newer than berth itself (a new libc must not break
//! an app), at the price of letting through a dangerous one added after this list was
//! written; for that reason the list also holds the syscalls whose kernel code has been
//! a recurring source of exploits (io_uring, bpf, userfaultfd).
//!
//! Numbers come from `libc::SYS_*`, so they are the running target's own; a syscall a
//! target's table lacks is left out with `#[cfg]`, and the few that the `libc` crate
//! does not (yet) define for a target are defined in [`sys`] from the kernel's table.
//!
//! # What is refused, and why
//!
//! Every entry returns `EPERM`, as Docker does, except `clone3` (`ENOSYS`, see below).
//!
//! - Kernel code and the machine: `kexec_load`, `kexec_file_load`, `init_module`,
//!   `finit_module`, `delete_module`, `reboot`, `swapon`, `swapoff`, `acct`.
//! - The clock, shared by every app and the host: `settimeofday`, `clock_settime`,
//!   `clock_adjtime`, `adjtimex` (Docker lets `adjtimex` read the clock; berth refuses
//!   it outright), and on 32-bit arm their time64 twins `clock_settime64` and
//!   `clock_adjtime64`, without which the 32-bit entries would be bypassed.
//! - Mounts: `mount`, `umount2`, `pivot_root`, and the new mount API (`fsopen`,
//!   `fsconfig`, `fsmount`, `fspick`, `open_tree`, `move_mount`, `mount_setattr`), the
//!   second way to do what `mount` does (Docker allows it only with CAP_SYS_ADMIN).
//!   `chroot` stays allowed, as in Docker (it needs CAP_SYS_CHROOT).
//! - Namespaces: `unshare`, `setns`, `clone` with any of the CLONE_NEW* flags of
//!   [`NAMESPACE_FLAGS`] in its flags argument (a rule on the argument, in the program),
//!   and `clone3`, whose flags sit in memory a BPF filter cannot read: it gets `ENOSYS`
//!   so that glibc and musl fall back to `clone`, where the flags are checked.
//! - Kernel keyrings, not namespaced: `keyctl`, `add_key`, `request_key`.
//! - Kernel attack surface: `bpf`, `perf_event_open`, `userfaultfd`, `io_uring_setup`,
//!   `io_uring_enter`, `io_uring_register` (Docker refuses io_uring since 25.0),
//!   `lookup_dcookie`, `quotactl`, `quotactl_fd`, `syslog`, `fanotify_init`.
//! - File handles, which open files by inode past the mount namespace (the "shocker"
//!   escape): `open_by_handle_at`, `name_to_handle_at`.
//! - Port I/O (x86_64 only): `iopl`, `ioperm`.
//! - Obsolete interfaces: `nfsservctl`, and where the target has them `uselib`,
//!   `_sysctl`, `sysfs`, `ustat`.
//! - Other processes' memory: `ptrace`, `process_vm_readv`, `process_vm_writev`,
//!   `kcmp`, `pidfd_getfd`, `process_madvise`.
//! - NUMA placement, which moves other processes' pages: `mbind`, `set_mempolicy`,
//!   `get_mempolicy`, `move_pages`, `migrate_pages`, `set_mempolicy_home_node`.
//!
//! # Where berth differs from Docker
//!
//! - Docker allows `ptrace`, `process_vm_readv` and `process_vm_writev` on kernels from
//!   4.8; berth refuses them: a production app on a device has no debugger to run, and
//!   a compromised one should not read its neighbours in the same pid namespace.
//! - Docker allows a few `personality` values; berth allows `personality` whole.
//! - Docker opens many of these syscalls to a container that is granted the matching
//!   capability (CAP_SYS_ADMIN, CAP_SYS_TIME, CAP_SYS_PTRACE...); berth refuses them
//!   whatever the `capabilities:` block says. An app that needs one runs with
//!   `seccomp: unconfined`.
//! - Syscalls the targets berth ships for do not have are not listed: `stime`, `vm86`,
//!   `vm86old` (32-bit x86 only), and `create_module`, `get_kernel_syms`,
//!   `query_module` (gone since Linux 2.6; the kernel answers ENOSYS).
//! - Only the native ABI is allowed at all (see the program's arch check): a 32-bit
//!   binary on a 64-bit kernel (i386 on x86_64, armv7 on aarch64) is killed at its
//!   first syscall, where Docker's profile also admits the 32-bit ABI.

use libc::{c_int, c_long};

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

/// `libc`'s syscall numbers, plus those the `libc` crate lacks for a target (an item
/// defined here shadows the glob, so a later `libc` that adds one changes nothing).
mod sys {
    #![allow(
        non_upper_case_globals,
        reason = "libc's names, SYS_ and the syscall's"
    )]

    pub use libc::*;

    /// `include/uapi/asm-generic/unistd.h`; absent from libc's musl aarch64 table.
    #[cfg(target_arch = "aarch64")]
    pub const SYS_kexec_file_load: c_long = 294;
    /// `arch/arm/tools/syscall.tbl`; absent from libc's arm tables.
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
    deny!(SYS_move_mount),
    deny!(SYS_mount_setattr),
    // Namespaces (clone's flags are checked by the program itself).
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
    // File handles.
    deny!(SYS_open_by_handle_at),
    deny!(SYS_name_to_handle_at),
    // Port I/O.
    #[cfg(target_arch = "x86_64")]
    deny!(SYS_iopl),
    #[cfg(target_arch = "x86_64")]
    deny!(SYS_ioperm),
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
];
