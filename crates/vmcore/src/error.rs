//! What can go wrong: `VmError` refuses a request, `InvalidReason` explains a bad fault.
//!
//! Both print as a sentence a person can act on, with the numbers that matter (addresses in
//! hex, sizes in bytes or pages as named).

use core::fmt;

use crate::{ObjectId, Pid};

/// Why a page fault cannot be resolved by mapping memory: the faulting thread gets an
/// exception (its signal manager decides what happens next).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidReason {
    /// No region of the process covers the address.
    NotMapped,
    /// The address is on a stack's guard page or below the lowest stack page it may use.
    StackOverflow {
        /// Index of the thread whose stack overflowed.
        thread: u32,
        /// Lowest address that thread's stack may use (the top of its guard page).
        lowest_address: u64,
    },
    /// A write to a page the process may only read.
    WriteToReadOnly,
    /// An instruction fetch: VM never maps executable memory.
    Execute,
    /// The address is in the kernel half.
    KernelAddress,
    /// The address is neither in the user half nor in the kernel half.
    NonCanonical,
    /// The address is in the program-image area, which the loader maps; VM maps nothing there.
    Image,
    /// The page is already mapped (VM counts it resident) and the access is one the mapping
    /// allows as far as VM knows: a protection fault, never a second map.
    Protection,
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidReason::NotMapped => f.write_str("no memory region covers the address"),
            InvalidReason::StackOverflow {
                thread,
                lowest_address,
            } => write!(
                f,
                "stack overflow: thread {thread}'s stack may not grow below {lowest_address:#x} \
                 (its guard page is under that)"
            ),
            InvalidReason::WriteToReadOnly => f.write_str("write to read-only memory"),
            InvalidReason::Execute => {
                f.write_str("instruction fetch from memory VM maps (it is never executable)")
            }
            InvalidReason::KernelAddress => f.write_str("access to a kernel address"),
            InvalidReason::NonCanonical => f.write_str("non-canonical address"),
            InvalidReason::Image => f.write_str(
                "protection fault in the program image (the loader maps it, VM does not)",
            ),
            InvalidReason::Protection => f.write_str("protection fault on a page already mapped"),
        }
    }
}

/// A request VM refuses. Nothing changed when a request returns one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmError {
    /// VM knows no process with this pid.
    UnknownProcess(Pid),
    /// A process with this pid already exists.
    ProcessExists(Pid),
    /// No shared object with this id exists.
    UnknownObject(ObjectId),
    /// The thread index is beyond the stack area's slots.
    ThreadOutOfRange { thread: u32 },
    /// The thread was already reported started.
    ThreadExists { pid: Pid, thread: u32 },
    /// The thread was never reported started (or has exited).
    UnknownThread { pid: Pid, thread: u32 },
    /// An address or size is not a multiple of the page size.
    Misaligned { value: u64 },
    /// A size of zero.
    ZeroLength,
    /// The range's end does not fit in 64 bits.
    WrapAround { address: u64, length: u64 },
    /// Part of the range is at or above the end of the user half.
    KernelSpace { address: u64, length: u64 },
    /// Part of the range is outside the mapping area.
    OutsideMappingArea { address: u64, length: u64 },
    /// No single mapping of the process covers the whole range.
    NotMapped { address: u64, length: u64 },
    /// A shared-memory mapping can only be unmapped whole.
    PartialSharedUnmap { base: u64, length: u64 },
    /// No free range of this length is left in the mapping area.
    NoSpace { length: u64 },
    /// The process already has the most mappings VM keeps for one process.
    TooManyMappings { pid: Pid },
    /// A heap larger than `HEAP_MAX`.
    HeapTooLarge { bytes: u64 },
    /// Granting the request would take the process over its memory limit.
    OutOfMemory {
        pid: Pid,
        limit_pages: u64,
        resident_pages: u64,
        requested_pages: u64,
    },
    /// A limit below what the process already has resident.
    LimitBelowResident {
        pid: Pid,
        limit_pages: u64,
        resident_pages: u64,
    },
    /// Only the owner may destroy a shared object.
    NotOwner {
        pid: Pid,
        object: ObjectId,
        owner: Pid,
    },
    /// The owner allows others to map this object read-only only.
    ReadOnlyObject { pid: Pid, object: ObjectId },
    /// A shared object needs a name.
    NameEmpty,
    /// Shared-object names are at most `SHARED_NAME_MAX` bytes.
    NameTooLong { length: usize },
    /// Another shared object already has this name.
    NameTaken { object: ObjectId },
    /// Shared objects are at most `SHARED_OBJECT_MAX_BYTES`.
    ObjectTooLarge { bytes: u64 },
    /// VM already keeps the most shared objects it will.
    TooManyObjects,
    /// The object's owner destroyed it; it lives on only for its current mappers.
    ObjectBeingDestroyed(ObjectId),
    /// The previous fault's decision has not been resolved (`mapped` / `map_failed`).
    DecisionOutstanding { pid: Pid, page: u64 },
    /// `mapped` / `map_failed` for a page VM has no outstanding decision for.
    NoOutstandingDecision { pid: Pid, page: u64 },
    /// The map VM decided no longer fits the process's memory (it changed in between): VM
    /// does not count it, and the glue must unmap the page again.
    StaleDecision { pid: Pid, page: u64 },
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            VmError::UnknownProcess(pid) => write!(f, "no process {pid}"),
            VmError::ProcessExists(pid) => write!(f, "process {pid} already exists"),
            VmError::UnknownObject(object) => write!(f, "no shared object {}", object.0),
            VmError::ThreadOutOfRange { thread } => write!(
                f,
                "thread index {thread} is beyond the {} stack slots",
                crate::MAX_THREADS
            ),
            VmError::ThreadExists { pid, thread } => {
                write!(f, "thread {thread} of process {pid} already started")
            }
            VmError::UnknownThread { pid, thread } => {
                write!(f, "process {pid} has no thread {thread}")
            }
            VmError::Misaligned { value } => {
                write!(f, "{value:#x} is not a multiple of the page size (4096)")
            }
            VmError::ZeroLength => f.write_str("length is zero"),
            VmError::WrapAround { address, length } => {
                write!(f, "range {address:#x} + {length:#x} wraps around the address space")
            }
            VmError::KernelSpace { address, length } => write!(
                f,
                "range {address:#x} + {length:#x} reaches into kernel space (user memory ends at {:#x})",
                vigil_abi::layout::USER_END
            ),
            VmError::OutsideMappingArea { address, length } => write!(
                f,
                "range {address:#x} + {length:#x} is outside the mapping area [{:#x}, {:#x})",
                vigil_abi::layout::MAPPING_AREA_START,
                vigil_abi::layout::MAPPING_AREA_END
            ),
            VmError::NotMapped { address, length } => {
                write!(f, "no single mapping covers {address:#x} + {length:#x}")
            }
            VmError::PartialSharedUnmap { base, length } => write!(
                f,
                "shared-memory mapping at {base:#x} ({length:#x} bytes) can only be unmapped whole"
            ),
            VmError::NoSpace { length } => {
                write!(f, "no free {length:#x}-byte range left in the mapping area")
            }
            VmError::TooManyMappings { pid } => write!(
                f,
                "process {pid} already has {} mappings, the most allowed",
                crate::MAX_MAPPINGS_PER_PROCESS
            ),
            VmError::HeapTooLarge { bytes } => write!(
                f,
                "heap of {bytes:#x} bytes exceeds the largest heap ({:#x} bytes)",
                vigil_abi::layout::HEAP_MAX
            ),
            VmError::OutOfMemory { pid, limit_pages, resident_pages, requested_pages } => write!(
                f,
                "out of memory: process {pid} has {resident_pages} of its {limit_pages} pages \
                 resident and asked for {requested_pages} more"
            ),
            VmError::LimitBelowResident { pid, limit_pages, resident_pages } => write!(
                f,
                "limit of {limit_pages} pages is below the {resident_pages} pages process {pid} \
                 has resident"
            ),
            VmError::NotOwner { pid, object, owner } => write!(
                f,
                "permission denied: process {pid} may not destroy shared object {}, owned by {owner}",
                object.0
            ),
            VmError::ReadOnlyObject { pid, object } => write!(
                f,
                "permission denied: process {pid} may map shared object {} read-only only",
                object.0
            ),
            VmError::NameEmpty => f.write_str("shared-object name is empty"),
            VmError::NameTooLong { length } => write!(
                f,
                "shared-object name of {length} bytes is longer than {} bytes",
                crate::SHARED_NAME_MAX
            ),
            VmError::NameTaken { object } => {
                write!(f, "shared object {} already has that name", object.0)
            }
            VmError::ObjectTooLarge { bytes } => write!(
                f,
                "shared object of {bytes:#x} bytes exceeds the largest ({:#x} bytes)",
                crate::SHARED_OBJECT_MAX_BYTES
            ),
            VmError::TooManyObjects => write!(
                f,
                "VM already keeps {} shared objects, the most it will",
                crate::MAX_SHARED_OBJECTS
            ),
            VmError::ObjectBeingDestroyed(object) => write!(
                f,
                "shared object {} was destroyed by its owner and cannot be mapped again",
                object.0
            ),
            VmError::DecisionOutstanding { pid, page } => write!(
                f,
                "the decision for process {pid}'s page {page:#x} is still outstanding \
                 (call mapped or map_failed first)"
            ),
            VmError::NoOutstandingDecision { pid, page } => write!(
                f,
                "no outstanding decision for process {pid}'s page {page:#x}"
            ),
            VmError::StaleDecision { pid, page } => write!(
                f,
                "the decision for process {pid}'s page {page:#x} is stale; the page is not \
                 counted and must be unmapped"
            ),
        }
    }
}
