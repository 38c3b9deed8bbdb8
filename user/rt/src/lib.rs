//! Vigil user runtime: what every user program links against.
//!
//! A program is a `no_std`, `#![no_main]` binary that names its `main` with [`entry!`]; it
//! then reads like ordinary Rust: `println!`, `Vec`/`Box`/`String` (a 4 MiB heap), threads,
//! a mutex, typed IPC and grants, and a panic handler that prints the panic and exits with
//! status 101. Link it with `user/rt/user.ld` (see `user/programs/build.rs`).
//!
//! ```ignore
//! #![cfg_attr(target_os = "none", no_std)] // std only for host type-checks (see `entry!`)
//! #![no_main]
//! vigil_rt::entry!(main);
//! fn main(args: &str) -> i32 {
//!     vigil_rt::println!("hello, {args}");
//!     0
//! }
//! ```
//!
//! Everything specific to running on Vigil (the panic handler, the global allocator) is only
//! compiled for `target_os = "none"`, so the crate also type-checks on the host.
#![no_std]

extern crate alloc;

pub mod alarm;
pub mod ds;
pub mod exactly_once;
pub mod heap;
pub mod introspect;
pub mod ipc;
pub mod pm;
pub mod print;
pub mod process;
pub mod ptrace;
pub mod server_introspect;
pub mod signal;
pub mod start;
pub mod sync;
pub mod syscall;
pub mod thread;
pub mod time;
pub mod trace;
pub mod vm;

pub use vigil_abi as abi;
pub use vigil_abi::{Endpoint, Error, Message};

/// Reads the time-stamp counter, after an `lfence` so that earlier instructions have
/// finished (for benchmarks: `tsc()` before and after the measured code).
#[inline(always)]
pub fn tsc() -> u64 {
    let low: u32;
    let high: u32;
    // SAFETY: lfence and rdtsc only read the counter (user mode may: the kernel leaves
    // CR4.TSD clear); they write EAX and EDX, which are declared as outputs.
    unsafe {
        core::arch::asm!(
            "lfence",
            "rdtsc",
            out("eax") low,
            out("edx") high,
            options(nomem, nostack, preserves_flags),
        );
    }
    (u64::from(high) << 32) | u64::from(low)
}
