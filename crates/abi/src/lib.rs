//! Vigil ABI: constants and types shared by the kernel, user space and host tools.
#![no_std]

pub mod log;
pub mod qemu_exit;
