//! Shutdown: stops the machine — how test and benchmark programs end a run.

use crate::arch::debug_exit::{self, ExitStatus};
use crate::syscall::Next;
use crate::system::Kernel;
use vigil_abi::syscall::ShutdownArgs;
use vigil_abi::Error;
use vigil_kcore::slot::ThreadSlot;

/// Status 0 is success, anything else failure. Never returns to the caller.
pub fn run(kernel: &mut Kernel, caller: ThreadSlot, args: ShutdownArgs) -> Result<Next, Error> {
    let status = args.status;
    let name = kernel.process_of(caller).name();
    crate::info!("shutdown requested by '{name}' (status {status})");
    crate::watchdog::log_stats();
    let exit = if status == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    };
    debug_exit::exit(exit)
}
