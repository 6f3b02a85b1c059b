//! No thread names in the aarch64 board binary. std names a thread it spawns with
//! `pthread_setname_np` when it was given a name (berth gives none: its one thread
//! besides the main one is `pack`'s unnamed scoped zstd writer), yet the call is
//! linked in, and musl builds it on `snprintf`: the link then pulls in musl's whole
//! printf with its floating-point formatting, 8 KB of the board binary that berth never
//! runs. This stand-in takes the name, so the linker leaves that out; a name asked for
//! is not set (what `/proc/PID/task/TID/comm` shows), which nothing of berth reads.
//! Built only with `--cfg berth_no_unwinder` (`targets/build-std.toml`, aarch64), as
//! `unwind.rs`: a second definition would fail the link, never be picked silently.

use libc::{c_char, c_int};

/// Sets no name; succeeds, as a name berth never gives cannot fail to be set.
#[unsafe(no_mangle)]
pub extern "C" fn pthread_setname_np(_thread: libc::pthread_t, _name: *const c_char) -> c_int {
    0
}
