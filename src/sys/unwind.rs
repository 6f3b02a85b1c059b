//! No unwinder in the static release binaries. Their profile aborts on panic and
//! their linker script drops the unwind tables (`targets/no-unwind-tables.ld`), yet
//! std still names unwinder functions: its default panic hook keeps a stack walk for
//! a backtrace (`RUST_BACKTRACE`, a double panic), and its exported personality
//! routine calls back into an unwinder. Those names alone made the link pull in
//! LLVM's libunwind (musl's `libunwind.a`) and, for its logging, musl's stdio: 48 KB
//! of the aarch64 binary that could not find a single frame without the tables and
//! that nothing calls in a binary that never unwinds (berth's own hook, installed
//! first thing in `main`, prints no backtrace). These stand-ins take the names, so
//! the linker leaves libunwind out: a backtrace walk ends at once, as it did before
//! with no tables; the rest are never called. Builds that unwind (tests,
//! `panic = "unwind"`) keep the real unwinder.
//!
//! Each is the unwinder's C function by name and signature (`unwind.h`), defined
//! once: a second definition fails the link, it is never picked silently.

use libc::{c_int, c_void, uintptr_t};

/// `_URC_END_OF_STACK`.
const END_OF_STACK: c_int = 5;

/// Walks no frame: `trace` is never called.
#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_Backtrace(_trace: *mut c_void, _arg: *mut c_void) -> c_int {
    END_OF_STACK
}

// The context accessors below are reached only with a frame's context, which no
// walk or unwind here ever makes.

#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_GetIP(_context: *mut c_void) -> uintptr_t {
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_GetIPInfo(_context: *mut c_void, _before: *mut c_int) -> uintptr_t {
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_GetLanguageSpecificData(_context: *mut c_void) -> *mut c_void {
    std::ptr::null_mut()
}

#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_GetRegionStart(_context: *mut c_void) -> uintptr_t {
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_GetTextRelBase(_context: *mut c_void) -> uintptr_t {
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_GetDataRelBase(_context: *mut c_void) -> uintptr_t {
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_SetGR(_context: *mut c_void, _index: c_int, _value: uintptr_t) {}

#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_SetIP(_context: *mut c_void, _value: uintptr_t) {}
