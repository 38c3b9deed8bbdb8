//! Snapshot: one consistent copy of every thread and process record, in a single call.
//!
//! Consistent because the kernel is not preemptible: nothing changes while the records are
//! written. Records are built on the kernel stack a few at a time and copied out with
//! `usercopy`, so a bad buffer is EFAULT and a short one gets only the header with the
//! counts it needs.

use crate::arch::paging::AddressSpace;
use crate::system::Kernel;
use crate::usercopy;
use vigil_abi::introspect::{ProcessRecord, SnapshotHeader, ThreadRecord, SNAPSHOT_MAGIC, SNAPSHOT_VERSION};
use vigil_abi::Error;

const HEADER_SIZE: u64 = core::mem::size_of::<SnapshotHeader>() as u64;
const THREAD_SIZE: u64 = core::mem::size_of::<ThreadRecord>() as u64;
const PROCESS_SIZE: u64 = core::mem::size_of::<ProcessRecord>() as u64;

/// Arguments: buffer address, buffer length. Returns the bytes written.
pub fn run(kernel: &mut Kernel, caller: u16, buffer: u64, len: u64) -> Result<u64, Error> {
    kernel.account_cpu_time();
    let space = AddressSpace::from_root(kernel.process_of(caller).root);
    let thread_count = kernel.table.threads().count() as u64;
    let process_count = kernel.processes.iter().filter(|p| p.in_use).count() as u64;
    let needed = HEADER_SIZE + thread_count * THREAD_SIZE + process_count * PROCESS_SIZE;
    kernel.snapshot_generation += 1;
    let header = SnapshotHeader {
        magic: SNAPSHOT_MAGIC,
        version: SNAPSHOT_VERSION,
        generation: kernel.snapshot_generation,
        timestamp_ns: crate::time::now_ns(),
        tsc_hz: crate::time::tsc_hz(),
        idle_ns: kernel.idle_ns,
        thread_count: thread_count as u32,
        process_count: process_count as u32,
        thread_record_size: THREAD_SIZE as u32,
        process_record_size: PROCESS_SIZE as u32,
    };
    if len < HEADER_SIZE {
        return Err(Error::InvalidArgument);
    }
    usercopy::write_value(&space, buffer, &header)?;
    if len < needed {
        return Err(Error::InvalidArgument);
    }
    usercopy::check(&space, buffer, needed as usize, usercopy::Access::Write)?;
    let mut offset = buffer + HEADER_SIZE;
    for record in kernel.thread_records() {
        usercopy::write_value(&space, offset, &record)?;
        offset += THREAD_SIZE;
    }
    for record in kernel.process_records() {
        usercopy::write_value(&space, offset, &record)?;
        offset += PROCESS_SIZE;
    }
    Ok(needed)
}
