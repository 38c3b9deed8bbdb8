//! Memory policy of Vigil's user-space VM server: what a page fault means, who may map what.
//!
//! A user page fault reaches the VM server as a message; the server's glue asks [`Vm::fault`]
//! what it means, makes the kernel calls the [`Decision`] names, and reports the kernel's
//! answer back ([`Vm::mapped`] / [`Vm::map_failed`]). Requests from processes (map, unmap,
//! shared memory, heap size) and from the system (process and thread lifecycle, limits) are
//! methods of [`Vm`] that either do all they say or change nothing and return a [`VmError`].
//! No input makes them panic; nothing here touches hardware, so it all runs on the host.
//!
//! # The address space of a process (`vigil_abi::layout`)
//!
//! - `[USER_IMAGE_MIN, USER_IMAGE_END)`: the program image, mapped by the loader. A fault
//!   there is a protection fault ([`InvalidReason::Image`]); VM maps nothing there.
//! - Heap `[HEAP_BASE, HEAP_BASE + heap size)`: demand-zero, writable; the size is set by
//!   [`Vm::set_heap_size`] (brk), at most `HEAP_MAX`.
//! - Mapping area `[MAPPING_AREA_START, MAPPING_AREA_END)`: anonymous mappings
//!   ([`Vm::map_anonymous`], demand-zero, writable or read-only) and shared-memory mappings
//!   ([`Vm::map_shared`]). VM places each at the lowest free range that fits (first fit).
//! - Stacks: thread `k`'s region is `[STACK_AREA_TOP - (k+1) * STACK_REGION_SIZE,
//!   STACK_AREA_TOP - k * STACK_REGION_SIZE)`, `k < MAX_THREADS`. Its lowest page is a guard
//!   page, never mapped. The kernel maps the top `INITIAL_STACK_BYTES` when it creates the
//!   thread, and VM counts them once told ([`Vm::thread_started`]). A fault anywhere between
//!   the guard page and the top grows the stack by that page (pages need not be touched in
//!   order). A fault on the guard page, or in the unused slot just below a live stack, is
//!   [`InvalidReason::StackOverflow`], naming the lowest address the stack may use.
//! - Anything else below `USER_END` is [`InvalidReason::NotMapped`]; at or above it,
//!   [`InvalidReason::KernelAddress`] (kernel half) or [`InvalidReason::NonCanonical`].
//!
//! # Faults
//!
//! In order: outside every region → the reasons above; an instruction fetch →
//! [`InvalidReason::Execute`] (VM never maps executable memory); a write to a read-only
//! region → [`InvalidReason::WriteToReadOnly`]; a page VM already counts resident →
//! [`InvalidReason::Protection`] (never a second map); the process at its limit →
//! [`VmError::OutOfMemory`]; otherwise a map: [`Decision::MapZero`] for heap, stack and
//! anonymous memory, and for shared memory [`Decision::MapZeroShared`] on the first touch
//! of an object page (the glue allocates the object's frame) or [`Decision::MapShared`]
//! once the page has a frame.
//!
//! **Decide, then commit.** A map decision is outstanding until the glue reports the
//! kernel's answer; VM keeps one at a time, so a fault while one is outstanding is refused
//! ([`VmError::DecisionOutstanding`]). The glue handles one message at a time, so this only
//! catches a glue bug. Accounting changes only in [`Vm::mapped`], so VM counts exactly the
//! pages the kernel mapped; `mapped` re-checks the decision and says
//! [`VmError::StaleDecision`] (counting nothing) if the memory changed in between.
//!
//! # Accounting and limits
//!
//! Per process ([`MemoryStats`]): resident pages (private and shared, as mapped into that
//! process: a shared page counts once for every process that maps it), of which shared, the
//! peak, the virtual size (sum of region sizes: heap, whole stack regions, mappings), fault
//! counters (demand-zero, shared, invalid, out of memory, failed maps) and the limit in
//! pages, [`Vm::new`]'s default until [`Vm::set_limit`] (never below what is resident).
//! A fault that would exceed the limit, a thread whose initial stack would, and a single
//! heap or mapping larger than the whole limit are refused with [`VmError::OutOfMemory`];
//! mappings may otherwise add up to more than the limit (they cost nothing until touched).
//! [`Vm::largest_users`] lists the biggest processes for an out-of-memory report.
//!
//! # Shared memory
//!
//! An object has a unique name (1 to `SHARED_NAME_MAX` bytes), a size (a non-zero page
//! multiple up to `SHARED_OBJECT_MAX_BYTES`), an owner, and a rule for others
//! ([`OthersMay`]): the owner may always map it writable, others only if it says so.
//! A mapping is always of the whole object. Object page `i` has one frame for all mappers;
//! VM tracks which object pages have one. Object frames are the object's, not charged to any
//! limit when no one maps them; they are reported by [`Vm::objects`] (owner, size,
//! mappers with their resident pages, resident pages) for finding over-users.
//!
//! **Destroy is deferred.** Only the owner may destroy an object, once. Its name is free at
//! once and no one may map it any more; the object itself goes, and its frames are
//! released, when its last mapping goes (at once if there is none). An exiting owner
//! destroys all its objects this way. Objects never reuse an id.
//!
//! # Requests
//!
//! Every range a client names must be page aligned, non-empty, not wrap, stay below
//! `USER_END` and inside the mapping area; unknown pids and objects, other owners' objects,
//! writable maps of objects others may only read, bad names and sizes are refused. A process
//! can only name its own memory (every request acts on the caller's map), so no request can
//! touch another process's memory except through an object its owner shares. VM bounds
//! what a hostile client can make it store: `MAX_MAPPINGS_PER_PROCESS` mappings per process,
//! `MAX_SHARED_OBJECTS` objects. Unmap takes any page range inside one mapping: part of an
//! anonymous mapping (splitting it) or the whole of a shared one. Requests that release
//! memory return [`Released`]: the pages to unmap, whose frames to free, and destroyed
//! objects' frames.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod error;
mod process;
mod shared;
mod vm;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

pub use error::{InvalidReason, VmError};
pub use process::{Mapping, MappingKind, MemoryStats, ProcessMemory};
pub use shared::{Mapper, ObjectInfo, OthersMay};
pub use vm::{Access, Decision, DestroyedObject, Released, Vm};

/// A process id, as PM hands them out.
pub type Pid = u32;

/// A shared-memory object; ids are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId(pub u32);

/// Bytes in a page: VM maps nothing smaller or larger.
pub const PAGE_SIZE: u64 = 4096;
/// Thread stack slots in a process's stack area.
pub const MAX_THREADS: usize = 1024;
/// Most mappings (anonymous and shared) one process may have.
pub const MAX_MAPPINGS_PER_PROCESS: usize = 1024;
/// Most shared objects VM keeps at once (destroyed ones still mapped included).
pub const MAX_SHARED_OBJECTS: usize = 1024;
/// Longest shared-object name, in bytes.
pub const SHARED_NAME_MAX: usize = vigil_abi::vm::ShmName::MAX;
/// Largest shared object.
pub const SHARED_OBJECT_MAX_BYTES: u64 = vigil_abi::vm::SHM_MAX_BYTES;
