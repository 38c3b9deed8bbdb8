//! Shutdown: stops the machine — how test and benchmark programs end a run.

use crate::arch::debug_exit::{self, ExitStatus};
use crate::system::Kernel;
use vigil_kcore::ipc::Outcome;

/// Argument: 0 for success, anything else for failure.
pub fn run(kernel: &mut Kernel, caller: u16, status: u64) -> Outcome {
    let name = kernel.process_of(caller).name();
    crate::info!("shutdown requested by '{name}' (status {status})");
    let exit = if status == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    };
    debug_exit::exit(exit)
}
