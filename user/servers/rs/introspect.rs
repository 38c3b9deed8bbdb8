//! RS's INTROSPECT answer (`vigil_abi::server_introspect`): topic `Services`, one
//! `ServiceRecord` per entry of RS's table (supervised services, then the system servers),
//! by index, and topic `ServiceBacktraces`, one `ServiceBacktraceRecord` per entry (the
//! backtrace of its last failure by an exception), each written into the client's WRITE
//! grant with one `SafeCopyTo`. The service records also answer the host's service list.
//! Bad requests (another topic, a buffer smaller than one record, a grant that is not
//! there or not writable) are refused with the error in the reply; RS carries on.

use alloc::vec::Vec;
use vigil_rt::abi::server_introspect::{
    record_text, IntrospectReply, IntrospectRequest, ServiceBacktraceRecord, ServiceRecord, Topic,
    SERVICE_BACKTRACE_RECORD_BYTES, SERVICE_BACKTRACE_RECORD_VERSION, SERVICE_RECORD_BYTES,
    SERVICE_RECORD_VERSION,
};
use vigil_rt::abi::signal::BACKTRACE_FRAMES;
use vigil_rt::ipc::{self, GrantId};
use vigil_rt::{println, Error, Message};

use super::Rs;

/// The reply to an INTROSPECT `message`.
pub fn answer(rs: &Rs, message: &Message) -> Message {
    let request = match IntrospectRequest::from_message(message) {
        Ok(request) => request,
        Err(error) => {
            println!(
                "{}: INTROSPECT refused: {error} (topic {})",
                message.source, message.payload[0]
            );
            return IntrospectReply::refusal(error);
        }
    };
    let outcome = match request.topic {
        Topic::Services => write(
            message,
            &request,
            SERVICE_RECORD_VERSION,
            rs.services.len() as u64,
            service_records(rs),
        ),
        Topic::ServiceBacktraces => write(
            message,
            &request,
            SERVICE_BACKTRACE_RECORD_VERSION,
            rs.services.len() as u64,
            backtrace_records(rs),
        ),
        _ => Err(Error::NoSuchCall),
    };
    if let Err(error) = outcome {
        println!(
            "{}: INTROSPECT {} refused: {error}",
            message.source,
            request.topic.name()
        );
    }
    IntrospectReply::message(outcome.map_err(|error| (request.topic, error)))
}

/// Copies the records (`available` of them, `N` bytes each) the request asks for into
/// its grant.
fn write<const N: usize>(
    message: &Message,
    request: &IntrospectRequest,
    version: u64,
    available: u64,
    records: impl Iterator<Item = [u8; N]>,
) -> Result<IntrospectReply, Error> {
    let count = request.records_to_write(N, available)?;
    if count > 0 {
        let bytes: Vec<u8> = records
            .skip(request.first as usize)
            .take(count as usize)
            .flatten()
            .collect();
        ipc::safe_copy_to(message.source, GrantId(request.grant), 0, &bytes)?;
    }
    Ok(IntrospectReply {
        written: count,
        available,
        record_bytes: N as u64,
        version,
        topic: request.topic,
    })
}

/// One backtrace record per service, by index (`frames` 0 if it never failed by an
/// exception).
pub fn backtrace_records(
    rs: &Rs,
) -> impl Iterator<Item = [u8; SERVICE_BACKTRACE_RECORD_BYTES]> + '_ {
    rs.services.iter().enumerate().map(|(index, service)| {
        let mut addresses = [0u64; BACKTRACE_FRAMES];
        let frames = service.backtrace.len().min(BACKTRACE_FRAMES);
        addresses[..frames].copy_from_slice(&service.backtrace[..frames]);
        ServiceBacktraceRecord {
            index: index as u32,
            frames: frames as u32,
            vector: service.backtrace_vector,
            addresses,
        }
        .to_bytes()
    })
}

/// One record per service, by index.
pub fn service_records(rs: &Rs) -> impl Iterator<Item = [u8; SERVICE_RECORD_BYTES]> + '_ {
    rs.services.iter().enumerate().map(|(index, service)| {
        ServiceRecord {
            index: index as u32,
            state: service.state as u32,
            pid: u32::try_from(service.pid).unwrap_or(u32::MAX),
            held: u8::from(service.held),
            restarts: service.restarts,
            failures_in_a_row: service.failures_in_a_row,
            version: service.version,
            last_reason: service.last.reason,
            last_detail: service.last.detail,
            last_failure_ns: service.last_failure_ns,
            started_ns: service.started_ns,
            name: record_text(service.name.as_bytes()),
            program: record_text(service.program.as_bytes()),
            ..ServiceRecord::default()
        }
        .to_bytes()
    })
}
