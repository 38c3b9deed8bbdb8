//! Portable Vigil kernel logic: no hardware access, so every piece is unit-tested on the host.
#![no_std]
// The two `unsafe` blocks in kcore are in tests (reading a value's bytes to prove it is
// all-zero, so its statics land in .bss); the library itself has none.
#![cfg_attr(not(test), forbid(unsafe_code))]

#[cfg(test)]
extern crate std;

pub mod boot_options;
pub mod buffer_translation;
pub mod elf;
pub mod frame;
pub mod frame_share;
pub mod host_commands;
pub mod ipc;
pub mod lock_order;
pub mod log_ring;
pub mod memmap;
pub mod monitor_settings;
pub mod multiboot;
pub mod paging;
pub mod phys;
pub mod sched;
pub mod slot;
pub mod timer;
pub mod trace;
pub mod usercopy;
pub mod watchdog;
