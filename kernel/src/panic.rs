//! The kernel panic handler: message, location and backtrace, then a failure exit.

use crate::arch::debug_exit::{self, ExitStatus};
use crate::console;
use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

/// The panic message, formatted without the heap (the panic may come from the allocator).
struct FixedText {
    bytes: [u8; 256],
    len: usize,
}

impl FixedText {
    const fn new() -> Self {
        FixedText {
            bytes: [0; 256],
            len: 0,
        }
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("<invalid utf-8>")
    }
}

impl Write for FixedText {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        for ch in text.chars() {
            if self.len + ch.len_utf8() > self.bytes.len() {
                break;
            }
            ch.encode_utf8(&mut self.bytes[self.len..]);
            self.len += ch.len_utf8();
        }
        Ok(())
    }
}

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    crate::arch::cpu::disable_interrupts();
    if PANICKING.swap(true, Ordering::SeqCst) {
        console::emergency_write("\npanic: panicked while panicking; stopping\n");
        debug_exit::exit(ExitStatus::Failure);
    }
    console::enter_fatal_mode();
    let mut message = FixedText::new();
    let _ = match info.location() {
        Some(location) => write!(
            message,
            "{} at {}:{}:{}",
            info.message(),
            location.file(),
            location.line(),
            location.column()
        ),
        None => write!(message, "{} at <unknown location>", info.message()),
    };
    crate::error!("panic: {}", message.as_str());
    let (addresses, count) = crate::backtrace::print_here();
    crate::monitor::emergency_crash(
        vigil_wire::CrashKind::KernelPanic,
        message.as_str(),
        &addresses[..count],
    );
    debug_exit::exit(ExitStatus::Failure)
}
