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

/// Bytes a snapshot with these counts needs, at the record sizes the header states (a
/// header from an older kernel may have smaller records; 0 means this runtime's size).
pub fn required_bytes(header: &SnapshotHeader) -> usize {
    let (thread_size, process_size) = record_sizes(header);
    size_of::<SnapshotHeader>()
        + header.thread_count as usize * thread_size
        + header.process_count as usize * process_size
}

/// The record sizes the header states (this runtime's where it states none).
fn record_sizes(header: &SnapshotHeader) -> (usize, usize) {
    let or_ours = |stated: u32, ours: usize| match stated {
        0 => ours,
        stated => stated as usize,
    };
    (
        or_ours(header.thread_record_size, size_of::<ThreadRecord>()),
        or_ours(header.process_record_size, size_of::<ProcessRecord>()),
    )
}

/// Reads a plain record of `stored` bytes at `offset`: a shorter record (an older snapshot
/// version) leaves the fields it lacks zero, a longer one's extra bytes are skipped.
fn read_record<T: Copy + Default>(bytes: &[u8], offset: usize, stored: usize) -> T {
    let mut value = T::default();
    let size = size_of::<T>().min(stored);
    // SAFETY: `T` is one of the ABI's `repr(C)` records of integers, valid for any bytes;
    // `size` is at most `size_of::<T>()`, and the caller checked `offset + stored <=
    // bytes.len()`.
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
                let header: SnapshotHeader = read_record(&buffer, 0, size_of::<SnapshotHeader>());
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
    let header: SnapshotHeader = read_record(bytes, 0, size_of::<SnapshotHeader>());
    (header.magic == SNAPSHOT_MAGIC).then_some(header)
}

/// Decodes a complete snapshot buffer.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, Error> {
    if bytes.len() < size_of::<SnapshotHeader>() {
        return Err(Error::InvalidArgument);
    }
    let header: SnapshotHeader = read_record(bytes, 0, size_of::<SnapshotHeader>());
    if header.magic != SNAPSHOT_MAGIC || bytes.len() < required_bytes(&header) {
        return Err(Error::InvalidArgument);
    }
    let (thread_size, process_size) = record_sizes(&header);
    let mut offset = size_of::<SnapshotHeader>();
    let mut threads = Vec::with_capacity(header.thread_count as usize);
    for _ in 0..header.thread_count {
        threads.push(read_record(bytes, offset, thread_size));
        offset += thread_size;
    }
    let mut processes = Vec::with_capacity(header.process_count as usize);
    for _ in 0..header.process_count {
        processes.push(read_record(bytes, offset, process_size));
        offset += process_size;
    }
    Ok(Snapshot {
        header,
        threads,
        processes,
    })
}
