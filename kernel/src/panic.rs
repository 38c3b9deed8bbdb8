//! The kernel panic handler: message, location and backtrace, then a failure exit.

use crate::arch::debug_exit::{self, ExitStatus};
use crate::console;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    crate::arch::cpu::disable_interrupts();
    if PANICKING.swap(true, Ordering::SeqCst) {
        console::emergency_write("\npanic: panicked while panicking; stopping\n");
        debug_exit::exit(ExitStatus::Failure);
    }
    console::enter_fatal_mode();
    match info.location() {
        Some(location) => crate::error!(
            "panic: {} at {}:{}:{}",
            info.message(),
            location.file(),
            location.line(),
            location.column()
        ),
        None => crate::error!("panic: {} at <unknown location>", info.message()),
    }
    crate::backtrace::print_here();
    debug_exit::exit(ExitStatus::Failure)
}
