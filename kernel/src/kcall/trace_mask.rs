//! TraceMask: chooses which trace event kinds are recorded (also settable from the host).

use crate::syscall::Next;
use crate::system::Kernel;
use vigil_abi::syscall::TraceMaskArgs;
use vigil_abi::trace::EventKind;
use vigil_abi::Error;
use vigil_kcore::slot::ThreadSlot;

/// Sets the mask (unknown bits dropped); returns the previous one.
pub fn run(_kernel: &mut Kernel, _caller: ThreadSlot, args: TraceMaskArgs) -> Result<Next, Error> {
    let previous = crate::trace::mask();
    crate::trace::set_mask(args.mask & ((1 << EventKind::COUNT) - 1));
    Ok(Next::Return(previous))
}
