//! Snapshot: one consistent copy of every thread and process record, in a single call.
//!
//! Consistent because the kernel is not preemptible: nothing changes while the records are
//! written. Records are gathered in a page-sized buffer on the kernel stack and copied out
//! a page at a time with `usercopy`, so a bad buffer is EFAULT, and a short one gets only
//! the header, whose counts say how big the buffer must be.

use crate::arch::paging::AddressSpace;
use crate::introspect::RecordSink;
use crate::syscall::Next;
use crate::system::Kernel;
use crate::{memory, usercopy};
use core::mem::size_of;
use vigil_abi::introspect::{
    ProcessRecord, SnapshotHeader, ThreadRecord, SNAPSHOT_MAGIC, SNAPSHOT_VERSION,
};
use vigil_abi::syscall::SnapshotArgs;
use vigil_abi::user_memory::{Pod, UserSlice};
use vigil_abi::Error;
use vigil_kcore::slot::ThreadSlot;

const HEADER_SIZE: u64 = size_of::<SnapshotHeader>() as u64;
const THREAD_SIZE: u64 = size_of::<ThreadRecord>() as u64;
const PROCESS_SIZE: u64 = size_of::<ProcessRecord>() as u64;

/// Accumulates records and copies them to the user buffer a page at a time.
struct Batch<'a> {
    space: &'a AddressSpace,
    bytes: [u8; 4096],
    len: usize,
    /// The user buffer (already checked writable for the whole snapshot).
    destination: UserSlice<u8>,
    /// Bytes of it written so far.
    written: usize,
    result: Result<(), Error>,
}

impl RecordSink for Batch<'_> {
    #[inline(always)]
    fn thread(&mut self, record: &ThreadRecord) {
        self.push(record);
    }
    #[inline(always)]
    fn process(&mut self, record: &ProcessRecord) {
        self.push(record);
    }
}

impl Batch<'_> {
    #[inline(always)]
    fn push<T: Pod>(&mut self, record: &T) {
        let size = size_of::<T>();
        if self.len + size > self.bytes.len() {
            self.flush();
        }
        self.bytes[self.len..self.len + size].copy_from_slice(usercopy::pod_bytes(record));
        self.len += size;
    }

    #[inline(never)]
    fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        if self.result.is_ok() {
            self.result = match self.destination.sub(self.written, self.len) {
                Some(piece) => usercopy::write(self.space, piece, &self.bytes[..self.len]),
                None => Err(Error::Fault),
            };
        }
        self.written += self.len;
        self.len = 0;
    }
}

/// Fills the buffer; returns the bytes written.
pub fn run(kernel: &mut Kernel, caller: ThreadSlot, args: SnapshotArgs) -> Result<Next, Error> {
    let buffer = args.buffer;
    let len = buffer.len() as u64;
    kernel.account_cpu_time();
    let (thread_count, process_count) = kernel.record_counts();
    let needed =
        HEADER_SIZE + thread_count as u64 * THREAD_SIZE + process_count as u64 * PROCESS_SIZE;
    if len < HEADER_SIZE {
        return Err(Error::InvalidArgument);
    }
    // All of what will be written is checked before the generation advances, so a call
    // suspended for a missing page (and run again) takes one generation, not two.
    let written = if len < needed { HEADER_SIZE } else { needed };
    usercopy::check(
        kernel.space_of(caller),
        buffer.truncate(written as usize),
        usercopy::Access::Write,
    )?;
    let generation = kernel.next_snapshot_generation();
    let header = SnapshotHeader {
        magic: SNAPSHOT_MAGIC,
        version: SNAPSHOT_VERSION,
        generation,
        timestamp_ns: crate::time::now_ns(),
        tsc_hz: crate::time::tsc_hz(),
        idle_ns: kernel.cpu.idle_ns(),
        thread_count: thread_count as u32,
        process_count: process_count as u32,
        thread_record_size: THREAD_SIZE as u32,
        process_record_size: PROCESS_SIZE as u32,
        free_frames: memory::free_frames() as u64,
        total_frames: memory::total_frames() as u64,
    };
    let kernel = &*kernel;
    let space = kernel.space_of(caller);
    if len < needed {
        let header_bytes = buffer.truncate(HEADER_SIZE as usize);
        usercopy::write(space, header_bytes, usercopy::pod_bytes(&header))?;
        return Err(Error::InvalidArgument);
    }
    let buffer = buffer.truncate(needed as usize);
    let mut batch = Batch {
        space,
        bytes: [0; 4096],
        len: 0,
        destination: buffer,
        written: 0,
        result: Ok(()),
    };
    batch.push(&header);
    kernel.visit_records(&mut batch);
    batch.flush();
    batch.result.map(|()| Next::Return(needed))
}
