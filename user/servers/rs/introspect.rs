//! RS's INTROSPECT answer (`vigil_abi::server_introspect`, topic `Services`): one
//! `ServiceRecord` per supervised service, by index, written into the client's WRITE grant
//! with one `SafeCopyTo`. The same records answer the host's service list. Bad requests
//! (another topic, a buffer smaller than one record, a grant that is not there or not
//! writable) are refused with the error in the reply; RS carries on.

use alloc::vec::Vec;
use vigil_rt::abi::server_introspect::{
    record_text, IntrospectReply, IntrospectRequest, ServiceRecord, Topic, SERVICE_RECORD_BYTES,
    SERVICE_RECORD_VERSION,
};
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
        Topic::Services => write(rs, message, &request),
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

/// Copies the service records the request asks for into its grant.
fn write(
    rs: &Rs,
    message: &Message,
    request: &IntrospectRequest,
) -> Result<IntrospectReply, Error> {
    let available = rs.services.len() as u64;
    let count = request.records_to_write(SERVICE_RECORD_BYTES, available)?;
    if count > 0 {
        let bytes: Vec<u8> = service_records(rs)
            .skip(request.first as usize)
            .take(count as usize)
            .flatten()
            .collect();
        ipc::safe_copy_to(message.source, GrantId(request.grant), 0, &bytes)?;
    }
    Ok(IntrospectReply {
        written: count,
        available,
        record_bytes: SERVICE_RECORD_BYTES as u64,
        version: SERVICE_RECORD_VERSION,
        topic: request.topic,
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
