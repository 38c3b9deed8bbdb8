//! The user address-space layout the kernel and the user runtime agree on.

/// Lowest address a program may be linked at (the first 4 MiB stay unmapped so null-ish
/// pointers fault).
pub const USER_IMAGE_MIN: u64 = 0x40_0000;
/// End (exclusive) of where program segments may be loaded.
pub const USER_IMAGE_END: u64 = 0x0000_1000_0000_0000;
/// End of the user half (exclusive): canonical lower-half addresses only.
pub const USER_END: u64 = 0x0000_8000_0000_0000;

/// The heap: one region per process from `HEAP_BASE`, grown on demand (demand-zero pages
/// mapped by the VM server on first touch) up to the process's limit.
pub const HEAP_BASE: u64 = 0x0000_2000_0000_0000;
/// Largest heap a process can have (its memory limit is usually lower).
pub const HEAP_MAX: u64 = 1 << 36;
/// The user runtime's heap: `[HEAP_BASE, HEAP_BASE + RUNTIME_HEAP_BYTES)`. The kernel maps
/// it at process creation unless the VM server serves the process, which then maps its
/// pages on first touch.
pub const RUNTIME_HEAP_BYTES: u64 = 4 << 20;
/// Where anonymous and shared-memory mappings a process asks VM for are placed.
pub const MAPPING_AREA_START: u64 = 0x0000_3000_0000_0000;
/// End (exclusive) of the mapping area.
pub const MAPPING_AREA_END: u64 = 0x0000_7000_0000_0000;
/// Stack the kernel maps for a new thread when a VM server grows stacks on demand; VM
/// grows it down to the region's guard page.
pub const INITIAL_STACK_BYTES: u64 = 16 * 1024;

/// Each thread's stack lives in its own aligned region; the lowest page of the region is
/// an unmapped guard page.
pub const STACK_REGION_SIZE: u64 = 256 * 1024;
/// Stack mapped for a main thread and for other threads (the rest of the region stays
/// unmapped until a VM server can grow stacks on demand).
pub const MAIN_STACK_BYTES: u64 = 128 * 1024;
pub const THREAD_STACK_BYTES: u64 = 64 * 1024;

/// Top of the stack area: thread slot k of a process uses the region ending at
/// `STACK_AREA_TOP - k * STACK_REGION_SIZE`.
pub const STACK_AREA_TOP: u64 = 0x0000_7f00_0000_0000;

/// At the very top of every stack region the kernel writes a `ThreadInfo`; the initial
/// stack pointer is just below it. The runtime finds it from any stack address with
/// `thread_info_address`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadInfo {
    /// The thread's endpoint (`Endpoint.0`).
    pub endpoint: u64,
    /// Index of the thread within its process (0 = main thread).
    pub index_in_process: u64,
    /// How many times a service takeover or swap gave the thread another slot's endpoint
    /// (live update and restart, `ServiceTakeOver` / `ServiceSwap`); the kernel rewrites
    /// `endpoint` and this together. A service that compares it between two messages knows
    /// whether another instance may have served its endpoint meanwhile.
    pub moves: u64,
    pub reserved: [u64; 5],
}

pub const THREAD_INFO_SIZE: u64 = core::mem::size_of::<ThreadInfo>() as u64;

/// Address of the `ThreadInfo` for the stack containing `stack_address`.
pub const fn thread_info_address(stack_address: u64) -> u64 {
    (stack_address | (STACK_REGION_SIZE - 1)) + 1 - THREAD_INFO_SIZE
}

/// Main-thread start: RDI = address of the module argument string (UTF-8, not NUL
/// terminated), RSI = its length, RDX = the thread's endpoint. The string is copied to
/// the top of the main stack, below the `ThreadInfo`.
pub const MAIN_ARGUMENTS_MAX: usize = 256;

const _: () = assert!(THREAD_INFO_SIZE == 64);
const _: () = assert!(STACK_REGION_SIZE.is_power_of_two());
const _: () = assert!(STACK_AREA_TOP.is_multiple_of(STACK_REGION_SIZE));
// The areas do not overlap: image, heap, mappings, stacks, in that order.
const _: () = assert!(USER_IMAGE_END <= HEAP_BASE);
const _: () = assert!(HEAP_BASE + HEAP_MAX <= MAPPING_AREA_START);
const _: () = assert!(MAPPING_AREA_END <= STACK_AREA_TOP - 1024 * STACK_REGION_SIZE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_info_is_at_the_top_of_the_region() {
        let region_base = STACK_AREA_TOP - STACK_REGION_SIZE;
        let expected = STACK_AREA_TOP - THREAD_INFO_SIZE;
        assert_eq!(thread_info_address(region_base + 4096), expected);
        assert_eq!(thread_info_address(STACK_AREA_TOP - 1), expected);
        assert_eq!(thread_info_address(expected - 8), expected);
    }
}
