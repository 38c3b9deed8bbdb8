//! Requests to the VM server: anonymous memory mappings, shared-memory objects and the
//! caller's memory figures.
//!
//! The server is the boot process named `vm`; each call is one `SendReceive` with a
//! `vigil_abi::vm::request` message, answered with `REPLY` (outcome in `payload[0]`).

use vigil_abi::vm::{map_flags, request, shm_flags, ShmName};
use vigil_abi::{Endpoint, Error};

use crate::ipc;

/// The caller's memory as VM counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    pub resident_pages: u64,
    pub virtual_bytes: u64,
    pub shared_resident_pages: u64,
    pub peak_resident_pages: u64,
    pub demand_zero_faults: u64,
}

/// The VM server's endpoint (`NotFound` if there is none).
pub fn server() -> Result<Endpoint, Error> {
    ipc::lookup("vm")
}

/// Sends `kind` with `payload` to VM and returns the reply's payload, or VM's refusal.
fn call(kind: u32, payload: [u64; 6]) -> Result<[u64; 6], Error> {
    ipc::request(server()?, kind, payload, request::REPLY)
}

/// A new demand-zero mapping of `bytes` (a page multiple): pages become resident when first
/// touched. Returns its base address.
pub fn map_anonymous(bytes: u64, writable: bool) -> Result<u64, Error> {
    map_anonymous_with(bytes, if writable { map_flags::WRITABLE } else { 0 })
}

/// A new writable mapping of `bytes` with every page mapped now: `OutOfResources` at once
/// (and nothing mapped) if that would pass the caller's memory limit or free memory.
pub fn map_populated(bytes: u64) -> Result<u64, Error> {
    map_anonymous_with(bytes, map_flags::WRITABLE | map_flags::POPULATE)
}

/// `MAP_ANONYMOUS` with raw `map_flags` bits (unknown bits are refused by VM).
pub fn map_anonymous_with(bytes: u64, flags: u64) -> Result<u64, Error> {
    call(request::MAP_ANONYMOUS, [bytes, flags, 0, 0, 0, 0]).map(|reply| reply[1])
}

/// A shared-memory mapping: where the whole object is in the caller, its size and id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedMapping {
    pub base: u64,
    pub bytes: u64,
    pub object: u64,
}

/// Creates the shared-memory object `name` of `bytes` (a page multiple), owned by the
/// caller; `others_writable` lets other processes map it writable. Returns its id.
pub fn shm_create(name: &str, bytes: u64, others_writable: bool) -> Result<u64, Error> {
    let name = ShmName::new(name.as_bytes())?.to_words();
    let flags = if others_writable {
        shm_flags::OTHERS_WRITABLE
    } else {
        0
    };
    call(
        request::SHM_CREATE,
        [name[0], name[1], name[2], name[3], bytes, flags],
    )
    .map(|reply| reply[1])
}

/// Maps the whole of the shared-memory object `name` (writable or read-only); unmap it
/// with `unmap(mapping.base, mapping.bytes)`.
pub fn shm_map(name: &str, writable: bool) -> Result<SharedMapping, Error> {
    let name = ShmName::new(name.as_bytes())?.to_words();
    let flags = if writable { map_flags::WRITABLE } else { 0 };
    shm_map_raw(name, flags)
}

/// `SHM_MAP` with raw name words and flag bits (for tests of VM's checks).
pub fn shm_map_raw(name: [u64; ShmName::WORDS], flags: u64) -> Result<SharedMapping, Error> {
    call(
        request::SHM_MAP,
        [name[0], name[1], name[2], name[3], flags, 0],
    )
    .map(|reply| SharedMapping {
        base: reply[1],
        bytes: reply[2],
        object: reply[3],
    })
}

/// `SHM_CREATE` with a raw payload (for tests of VM's checks).
pub fn shm_create_raw(payload: [u64; 6]) -> Result<u64, Error> {
    call(request::SHM_CREATE, payload).map(|reply| reply[1])
}

/// The owner destroys object `object`: its name is free at once, its memory goes when the
/// last mapping of it does.
pub fn shm_destroy(object: u64) -> Result<(), Error> {
    call(request::SHM_DESTROY, [object, 0, 0, 0, 0, 0]).map(|_| ())
}

/// Unmaps `[address, address + bytes)`, part of one mapping; its pages are freed.
pub fn unmap(address: u64, bytes: u64) -> Result<(), Error> {
    call(request::UNMAP, [address, bytes, 0, 0, 0, 0]).map(|_| ())
}

/// When VM received, decided, mapped and resumed the last fault it served (TSC values; see
/// `request::FAULT_TIMES`).
pub fn fault_times() -> Result<[u64; 4], Error> {
    call(request::FAULT_TIMES, [0; 6]).map(|reply| [reply[1], reply[2], reply[3], reply[4]])
}

/// The caller's memory figures as VM keeps them.
pub fn stats() -> Result<MemoryStats, Error> {
    call(request::STATS, [0; 6]).map(|reply| MemoryStats {
        resident_pages: reply[1],
        virtual_bytes: reply[2],
        shared_resident_pages: reply[3],
        peak_resident_pages: reply[4],
        demand_zero_faults: reply[5],
    })
}
