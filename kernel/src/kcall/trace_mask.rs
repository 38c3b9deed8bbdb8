//! TraceMask: chooses which trace event kinds are recorded (also settable from the host).

use vigil_abi::trace::EventKind;

/// Sets the mask (unknown bits dropped); returns the previous one.
pub fn run(mask: u64) -> u64 {
    let previous = crate::trace::mask();
    crate::trace::set_mask(mask & ((1 << EventKind::COUNT) - 1));
    previous
}
