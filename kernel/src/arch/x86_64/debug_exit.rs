//! Leaving QEMU with an exit status through the isa-debug-exit device (tests and fatal errors).

use super::cpu::{halt_forever, outl};
use vigil_abi::qemu_exit;

/// How the kernel ends a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    Failure,
}

/// Asks QEMU to exit with `status`. On hardware without the device the write is ignored
/// and the CPU halts for good.
pub fn exit(status: ExitStatus) -> ! {
    let code = match status {
        ExitStatus::Success => qemu_exit::SUCCESS,
        ExitStatus::Failure => qemu_exit::FAILURE,
    };
    // SAFETY: the isa-debug-exit port only ends the QEMU process (on hardware without the
    // device nothing answers there); no memory is affected.
    unsafe { outl(qemu_exit::PORT, code) };
    halt_forever()
}
