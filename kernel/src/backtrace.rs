//! Frame-pointer backtraces: the kernel's own, printed as `#N pc|ret 0x…` lines that the
//! xtask symbolises, and a user thread's, walked through its process's page tables (for
//! the fault report and for a signal manager's `ServiceBacktrace`).

use crate::arch;
use crate::arch::paging::AddressSpace;
use crate::console;
use crate::usercopy;
use vigil_abi::signal::{Backtrace, BACKTRACE_FRAMES};
use vigil_abi::user_memory::UserPtr;

/// Most frames printed.
pub const MAX_FRAMES: usize = 32;

/// Whether `[address, address + 16)` lies inside one of the kernel's stacks, so the saved
/// frame pointer and return address there can be read without faulting.
fn frame_is_readable(address: u64) -> bool {
    address.is_multiple_of(8)
        && arch::kernel_stack_ranges()
            .iter()
            .any(|&(low, high)| address >= low && address.saturating_add(16) <= high)
}

/// Prints `backtrace:` then, if given, the faulting `pc` as frame #0, then the return
/// addresses found by following the frame-pointer chain from `frame_pointer`. Returns the
/// addresses (pc first) and how many there are, for the monitor's crash report.
pub fn print(pc: Option<u64>, frame_pointer: u64) -> ([u64; MAX_FRAMES], usize) {
    let mut addresses = [0u64; MAX_FRAMES];
    console::continuation(format_args!("backtrace:"));
    let mut index = 0;
    if let Some(pc) = pc {
        console::continuation(format_args!("  #{index} pc  {pc:#018x}"));
        addresses[index] = pc;
        index += 1;
    }
    let mut rbp = frame_pointer;
    while index < MAX_FRAMES && frame_is_readable(rbp) {
        // SAFETY: `frame_is_readable` checked that both words lie inside a mapped kernel
        // stack; a frame record is [saved rbp, return address].
        let (next_rbp, return_address) = unsafe {
            (
                core::ptr::read_volatile(rbp as *const u64),
                core::ptr::read_volatile((rbp + 8) as *const u64),
            )
        };
        if return_address == 0 {
            break;
        }
        console::continuation(format_args!("  #{index} ret {return_address:#018x}"));
        addresses[index] = return_address;
        index += 1;
        // Frames live at increasing addresses; anything else is a corrupt chain.
        if next_rbp <= rbp {
            break;
        }
        rbp = next_rbp;
    }
    if index == MAX_FRAMES {
        console::continuation(format_args!("  … (truncated at {MAX_FRAMES} frames)"));
    }
    (addresses, index)
}

/// Prints a backtrace of the caller.
#[inline(always)]
pub fn print_here() -> ([u64; MAX_FRAMES], usize) {
    print(None, arch::cpu::frame_pointer())
}

/// A user thread's backtrace: `pc`, then the return addresses of the frame-pointer chain
/// from `rbp`, at most `BACKTRACE_FRAMES`. Every frame record is read with `usercopy` from
/// `space`, so a garbage chain (unmapped, kernel or wrapping addresses, frames that do not
/// ascend, a zero return address) just ends it; nothing is mapped on the way. Returns the
/// addresses and how many there are.
pub fn user_frames(space: &AddressSpace, pc: u64, mut rbp: u64) -> (Backtrace, usize) {
    let mut addresses = [0u64; BACKTRACE_FRAMES];
    addresses[0] = pc;
    let mut count = 1;
    while count < BACKTRACE_FRAMES && rbp != 0 {
        let Ok([next_rbp, return_address]) =
            UserPtr::<[u64; 2]>::new(rbp).and_then(|at| usercopy::read_value(space, at))
        else {
            break;
        };
        if return_address == 0 {
            break;
        }
        addresses[count] = return_address;
        count += 1;
        if next_rbp <= rbp {
            break;
        }
        rbp = next_rbp;
    }
    (addresses, count)
}
