//! Program start (`entry!`) and the panic handler.
//!
//! The kernel starts the main thread at `_start` with RDI = address of the argument string,
//! RSI = its length, RDX = the thread's endpoint (see `vigil_abi::layout`). `entry!` defines
//! a naked `_start` that clears RBP (so frame-pointer backtraces stop there), aligns RSP to
//! 16 bytes and calls [`run_main`] through a small `extern "C"` shim, which sets up the heap,
//! runs `main(args)` and exits the process with its return value.

use core::fmt::Write as _;
use core::panic::PanicInfo;

use vigil_abi::layout::MAIN_ARGUMENTS_MAX;

use crate::{heap, println, process, syscall, thread};

/// Status a process exits with after a panic.
pub const PANIC_EXIT_STATUS: i32 = 101;

/// Defines the program's entry point `_start`, which calls `$main(args: &str) -> i32` and
/// exits the process with the value it returns.
///
/// A program starts with `#![cfg_attr(target_os = "none", no_std)]` and `#![no_main]`: on
/// Vigil it is `no_std`; on the host (where CI type-checks the workspace and builds test
/// harnesses) it links std, and `entry!` only defines a C `main` that exits with
/// [`NOT_ON_VIGIL_STATUS`] (0 in a test build, which has no tests).
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        // Checks `$main`'s signature on every target (and keeps it used).
        const _: fn(&str) -> i32 = $main;

        /// The program's entry point (the ELF entry): clears RBP, aligns the stack and calls
        /// `__vigil_rt_main`, keeping the argument registers (RDI, RSI, RDX) for it.
        #[cfg(target_os = "none")]
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        #[unsafe(naked)]
        pub extern "C" fn _start() -> ! {
            ::core::arch::naked_asm!(
                "xor ebp, ebp",
                "and rsp, -16",
                "call {main}",
                "ud2",
                main = sym __vigil_rt_main,
            )
        }

        #[cfg(target_os = "none")]
        #[doc(hidden)]
        extern "C" fn __vigil_rt_main(
            args_address: *const u8,
            args_len: usize,
            endpoint: u64,
        ) -> ! {
            // SAFETY: called once, from `_start`, with the registers the kernel set up for
            // the main thread: the argument string's address and length, and the endpoint.
            unsafe { $crate::start::run_main(args_address, args_len, endpoint, $main) }
        }

        /// On the host the program cannot run (it needs Vigil's system calls). Its test
        /// build (`#![no_main]` suppresses libtest's `main`) has no tests and succeeds.
        #[cfg(not(target_os = "none"))]
        #[doc(hidden)]
        #[unsafe(export_name = "main")]
        extern "C" fn __vigil_rt_host_main(_argc: i32, _argv: *const *const u8) -> i32 {
            if cfg!(test) {
                0
            } else {
                $crate::start::NOT_ON_VIGIL_STATUS
            }
        }
    };
}

/// What a program's host build exits with: Vigil programs run only on Vigil.
pub const NOT_ON_VIGIL_STATUS: i32 = 127;

/// Runs the program's `main` and exits the process with its return value.
///
/// # Safety
/// Call only from the entry point, with the main thread's start registers: `args_address`
/// and `args_len` must describe the argument string the kernel copied to the stack (or be
/// 0 / 0).
pub unsafe fn run_main(
    args_address: *const u8,
    args_len: usize,
    endpoint: u64,
    main: fn(&str) -> i32,
) -> ! {
    heap::init();
    let bytes: &[u8] = if args_address.is_null() || args_len == 0 {
        &[]
    } else {
        // SAFETY: the kernel copied `args_len` bytes (at most MAIN_ARGUMENTS_MAX) of the
        // argument string to the top of the main stack, which lives as long as the thread.
        unsafe { core::slice::from_raw_parts(args_address, args_len.min(MAIN_ARGUMENTS_MAX)) }
    };
    let args = match core::str::from_utf8(bytes) {
        Ok(text) => text.trim(),
        Err(_) => {
            println!("warning: the argument string is not UTF-8; ignoring it");
            ""
        }
    };
    let from_thread_info = thread::current();
    if from_thread_info.0 != endpoint {
        println!(
            "warning: ThreadInfo says endpoint {from_thread_info}, the start registers {:?}",
            vigil_abi::Endpoint(endpoint)
        );
    }
    process::exit(main(args))
}

/// The first address after the program image (the end of .bss), from the linker script;
/// 0 on the host. Memory from the next page boundary on is not part of the image.
pub fn image_end() -> u64 {
    #[cfg(target_os = "none")]
    {
        unsafe extern "C" {
            /// Defined by user.ld after the last section; only its address matters.
            static __vigil_image_end: u8;
        }
        // Only the address is taken; the byte is never read.
        core::ptr::addr_of!(__vigil_image_end) as u64
    }
    #[cfg(not(target_os = "none"))]
    {
        0
    }
}

/// Reports the panic to the kernel — `<message> at <file>:<line>:<col>`, formatted without
/// the heap (which may be what failed) into at most 512 bytes — with the `Panic` system
/// call, which logs it as a crash with a backtrace, tells the monitor, and ends the process
/// with status 101 (`PANIC_EXIT_STATUS`).
pub fn report_panic(info: &PanicInfo<'_>) -> ! {
    let mut text = PanicText {
        bytes: [0; 512],
        len: 0,
    };
    let _ = match info.location() {
        Some(location) => write!(
            text,
            "{} at {}:{}:{}",
            info.message(),
            location.file(),
            location.line(),
            location.column()
        ),
        None => write!(text, "{}", info.message()),
    };
    syscall::panic(&text.bytes[..text.len])
}

/// A panic message, cut at 512 bytes.
struct PanicText {
    bytes: [u8; 512],
    len: usize,
}

impl core::fmt::Write for PanicText {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[cfg(all(target_os = "none", not(test)))]
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    report_panic(info)
}
