//! The client side of INTROSPECT (`vigil_abi::server_introspect`): ask any server for the
//! records of a topic, written by the server straight into a buffer of ours through a WRITE
//! grant that lives only for the call.

use alloc::vec;
use alloc::vec::Vec;
use vigil_abi::server_introspect::{
    IntrospectReply, IntrospectRequest, MemoryRecord, ProcessTreeRecord, ServiceRecord,
    SharedRecord, Topic, MEMORY_RECORD_BYTES, PROCESS_RECORD_BYTES, SERVICE_RECORD_BYTES,
    SHARED_RECORD_BYTES,
};
use vigil_abi::{Endpoint, Error};

use crate::ipc;

/// One INTROSPECT call: `server` writes the records of `topic` from index `first` into
/// `buffer` (as many whole records as fit). An empty buffer only counts them.
pub fn introspect(
    server: Endpoint,
    topic: Topic,
    buffer: &mut [u8],
    first: u64,
) -> Result<IntrospectReply, Error> {
    let bytes = buffer.len() as u64;
    let ask = |grant: u64| {
        let mut message = IntrospectRequest {
            topic,
            grant,
            bytes,
            first,
        }
        .to_message();
        ipc::send_receive(server, &mut message)?;
        IntrospectReply::from_message(&message)
    };
    let reply = if buffer.is_empty() {
        ask(0)?
    } else {
        ipc::with_write_grant(server, buffer, |grant| ask(grant.0))??
    };
    if reply.topic != topic || reply.written.saturating_mul(reply.record_bytes) > bytes {
        return Err(Error::InvalidArgument);
    }
    Ok(reply)
}

/// Every record of `topic` of `record_bytes` each: counts them, then asks for all of them
/// (again, larger, if more appeared meanwhile). Returns the reply and the bytes written.
fn all_records(
    server: Endpoint,
    topic: Topic,
    record_bytes: usize,
) -> Result<(IntrospectReply, Vec<u8>), Error> {
    let mut expected = introspect(server, topic, &mut [], 0)?.available;
    loop {
        // Room for a few more than counted, and never an empty buffer (which only counts).
        let mut buffer = vec![0u8; (expected as usize + 4) * record_bytes];
        let reply = introspect(server, topic, &mut buffer, 0)?;
        if reply.record_bytes as usize != record_bytes {
            return Err(Error::InvalidArgument);
        }
        if reply.written == reply.available {
            buffer.truncate(reply.written as usize * record_bytes);
            return Ok((reply, buffer));
        }
        expected = reply.available;
    }
}

/// The memory topic of `server` (the VM server): one record per process.
pub fn memory(server: Endpoint) -> Result<Vec<MemoryRecord>, Error> {
    let (_, bytes) = all_records(server, Topic::Memory, MEMORY_RECORD_BYTES)?;
    Ok(bytes
        .chunks_exact(MEMORY_RECORD_BYTES)
        .map(|chunk| {
            let mut record = [0; MEMORY_RECORD_BYTES];
            record.copy_from_slice(chunk);
            MemoryRecord::from_bytes(&record)
        })
        .collect())
}

/// The shared-objects topic of `server` (the VM server): each object followed by its
/// mappers. A record of a type this runtime does not know is `InvalidArgument`.
pub fn shared_objects(server: Endpoint) -> Result<Vec<SharedRecord>, Error> {
    let (_, bytes) = all_records(server, Topic::SharedObjects, SHARED_RECORD_BYTES)?;
    bytes
        .chunks_exact(SHARED_RECORD_BYTES)
        .map(|chunk| {
            let mut record = [0; SHARED_RECORD_BYTES];
            record.copy_from_slice(chunk);
            SharedRecord::from_bytes(&record).ok_or(Error::InvalidArgument)
        })
        .collect()
}

/// The processes topic of `server` (PM): its process tree, one record per process.
pub fn process_tree(server: Endpoint) -> Result<Vec<ProcessTreeRecord>, Error> {
    let (_, bytes) = all_records(server, Topic::Processes, PROCESS_RECORD_BYTES)?;
    Ok(bytes
        .chunks_exact(PROCESS_RECORD_BYTES)
        .map(|chunk| {
            let mut record = [0; PROCESS_RECORD_BYTES];
            record.copy_from_slice(chunk);
            ProcessTreeRecord::from_bytes(&record)
        })
        .collect())
}

/// The services topic of `server` (RS): one record per supervised service, by index.
pub fn services(server: Endpoint) -> Result<Vec<ServiceRecord>, Error> {
    let (_, bytes) = all_records(server, Topic::Services, SERVICE_RECORD_BYTES)?;
    Ok(bytes
        .chunks_exact(SERVICE_RECORD_BYTES)
        .map(|chunk| {
            let mut record = [0; SERVICE_RECORD_BYTES];
            record.copy_from_slice(chunk);
            ServiceRecord::from_bytes(&record)
        })
        .collect())
}

/// The service-backtraces topic of `server` (RS): per service, by index, the backtrace of
/// its last failure by an exception.
pub fn service_backtraces(
    server: Endpoint,
) -> Result<Vec<vigil_abi::server_introspect::ServiceBacktraceRecord>, Error> {
    use vigil_abi::server_introspect::{ServiceBacktraceRecord, SERVICE_BACKTRACE_RECORD_BYTES};
    let (_, bytes) = all_records(
        server,
        Topic::ServiceBacktraces,
        SERVICE_BACKTRACE_RECORD_BYTES,
    )?;
    Ok(bytes
        .chunks_exact(SERVICE_BACKTRACE_RECORD_BYTES)
        .map(|chunk| {
            let mut record = [0; SERVICE_BACKTRACE_RECORD_BYTES];
            record.copy_from_slice(chunk);
            ServiceBacktraceRecord::from_bytes(&record)
        })
        .collect())
}

/// The data-store topic of `server` (DS): one record per key (key, owner, size).
pub fn data_store(server: Endpoint) -> Result<Vec<vigil_abi::ds::KeyRecord>, Error> {
    use vigil_abi::ds::{KeyRecord, KEY_RECORD_BYTES};
    let (_, bytes) = all_records(server, Topic::DataStore, KEY_RECORD_BYTES)?;
    Ok(bytes
        .chunks_exact(KEY_RECORD_BYTES)
        .map(|chunk| {
            let mut record = [0; KEY_RECORD_BYTES];
            record.copy_from_slice(chunk);
            KeyRecord::from_bytes(&record)
        })
        .collect())
}
