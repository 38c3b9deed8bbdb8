//! Requests to the VM server: anonymous memory mappings and the caller's memory figures.
//!
//! The server is the boot process named `vm`; each call is one `SendReceive` with a
//! `vigil_abi::vm::request` message, answered with `REPLY` (outcome in `payload[0]`).

use vigil_abi::vm::request;
use vigil_abi::{Endpoint, Error, Message};

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
    let mut message = Message::with_payload(kind, payload);
    ipc::send_receive(server()?, &mut message)?;
    if message.kind != request::REPLY {
        return Err(Error::InvalidArgument);
    }
    match message.payload[0] {
        0 => Ok(message.payload),
        code => Err(Error::from_code(code).unwrap_or(Error::InvalidArgument)),
    }
}

/// A new demand-zero mapping of `bytes` (a page multiple): pages become resident when first
/// touched. Returns its base address.
pub fn map_anonymous(bytes: u64, writable: bool) -> Result<u64, Error> {
    call(
        request::MAP_ANONYMOUS,
        [bytes, u64::from(writable), 0, 0, 0, 0],
    )
    .map(|reply| reply[1])
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
