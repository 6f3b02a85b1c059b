//! berth: a container supervisor for embedded and edge Linux.
//!
//! The binary (`main.rs`) is a thin command-line front; everything it does lives in
//! these modules, so integration tests and fuzzers drive the same code.

pub mod caps;
pub mod cgroup;
pub mod check;
pub mod cli;
pub mod config;
pub mod console;
pub mod control;
pub mod digest;
pub mod hostfs;
pub mod image;
pub mod image_cmd;
pub mod info;
pub mod input;
pub mod launch;
pub mod manifest;
pub mod modprobe;
pub mod panic;
pub mod pid1;
pub mod procfs;
pub mod seccomp;
pub mod supervisor;
mod sys;
#[cfg(test)]
mod testdir;
pub mod timefmt;
