//! Typed access to the kernel's snapshot call: every thread and process in one consistent copy.

use alloc::vec;
use alloc::vec::Vec;
use core::mem::size_of;
use vigil_abi::introspect::{ProcessRecord, SnapshotHeader, ThreadRecord, SNAPSHOT_MAGIC};
use vigil_abi::Error;

/// A decoded snapshot.
pub struct Snapshot {
    pub header: SnapshotHeader,
    pub threads: Vec<ThreadRecord>,
    pub processes: Vec<ProcessRecord>,
}

/// Bytes a snapshot with these counts needs.
pub fn required_bytes(header: &SnapshotHeader) -> usize {
    size_of::<SnapshotHeader>()
        + header.thread_count as usize * size_of::<ThreadRecord>()
        + header.process_count as usize * size_of::<ProcessRecord>()
}

/// Reads a plain record at `offset` (the kernel wrote it with the same layout).
fn read_record<T: Copy + Default>(bytes: &[u8], offset: usize) -> T {
    let mut value = T::default();
    let size = size_of::<T>();
    // SAFETY: `T` is one of the ABI's `repr(C)` records of integers, valid for any bytes;
    // the caller checked `offset + size <= bytes.len()`.
    unsafe {
        core::ptr::copy_nonoverlapping(
            bytes[offset..offset + size].as_ptr(),
            &mut value as *mut T as *mut u8,
            size,
        )
    };
    value
}

/// Takes a snapshot, growing the buffer if threads appeared between the size query and the
/// real call. Needs the `snapshot` kernel-call privilege.
pub fn snapshot() -> Result<Snapshot, Error> {
    let mut buffer = vec![0u8; size_of::<SnapshotHeader>()];
    loop {
        match crate::syscall::snapshot(&mut buffer) {
            Ok(written) => return decode(&buffer[..written as usize]),
            Err(Error::InvalidArgument) => {
                let header: SnapshotHeader = read_record(&buffer, 0);
                if header.magic != SNAPSHOT_MAGIC {
                    return Err(Error::InvalidArgument);
                }
                buffer = vec![0u8; required_bytes(&header) + 8 * size_of::<ThreadRecord>()];
            }
            Err(error) => return Err(error),
        }
    }
}

/// The header at the start of `bytes`, if it is one (e.g. after a too-small call).
pub fn decode_header(bytes: &[u8]) -> Option<SnapshotHeader> {
    if bytes.len() < size_of::<SnapshotHeader>() {
        return None;
    }
    let header: SnapshotHeader = read_record(bytes, 0);
    (header.magic == SNAPSHOT_MAGIC).then_some(header)
}

/// Decodes a complete snapshot buffer.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, Error> {
    if bytes.len() < size_of::<SnapshotHeader>() {
        return Err(Error::InvalidArgument);
    }
    let header: SnapshotHeader = read_record(bytes, 0);
    if header.magic != SNAPSHOT_MAGIC || bytes.len() < required_bytes(&header) {
        return Err(Error::InvalidArgument);
    }
    let mut offset = size_of::<SnapshotHeader>();
    let mut threads = Vec::with_capacity(header.thread_count as usize);
    for _ in 0..header.thread_count {
        threads.push(read_record(bytes, offset));
        offset += size_of::<ThreadRecord>();
    }
    let mut processes = Vec::with_capacity(header.process_count as usize);
    for _ in 0..header.process_count {
        processes.push(read_record(bytes, offset));
        offset += size_of::<ProcessRecord>();
    }
    Ok(Snapshot {
        header,
        threads,
        processes,
    })
}
