//! The VM server's INTROSPECT answers (`vigil_abi::server_introspect`): the memory of every
//! process and the shared-memory objects with their mappers, from the policy's own figures,
//! written into the client's WRITE grant with one `SafeCopyTo`. Bad requests (unknown topic,
//! a buffer smaller than one record, a grant that is not there, not for VM, read-only or
//! smaller than the size named) are refused with the error in the reply and logged; VM
//! carries on.

use alloc::vec::Vec;
use vigil_rt::abi::server_introspect::{
    others_may, shared_record_type, IntrospectReply, IntrospectRequest, MemoryRecord,
    SharedMapperRecord, SharedObjectRecord, Topic, MEMORY_RECORD_BYTES, MEMORY_RECORD_VERSION,
    SHARED_RECORD_BYTES, SHARED_RECORD_NAME_BYTES, SHARED_RECORD_VERSION,
};
use vigil_rt::ipc::{self, GrantId};
use vigil_rt::{println, Endpoint, Error, Message};
use vigil_vmcore::{OthersMay, Vm};

/// The reply to an INTROSPECT `message`.
pub fn answer(vm: &Vm, message: &Message) -> Message {
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
        Topic::Memory => {
            let available = vm.pids().count() as u64;
            write(
                message.source,
                &request,
                MEMORY_RECORD_VERSION,
                available,
                memory_records(vm),
            )
        }
        Topic::SharedObjects => {
            let records = shared_records(vm);
            write(
                message.source,
                &request,
                SHARED_RECORD_VERSION,
                records.len() as u64,
                records.into_iter(),
            )
        }
        Topic::Services
        | Topic::OpenFiles
        | Topic::Processes
        | Topic::DataStore
        | Topic::ServiceBacktraces => Err(Error::NoSuchCall),
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

/// Copies the records the request asks for (of `available`) into its grant.
fn write<const N: usize>(
    client: Endpoint,
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
        ipc::safe_copy_to(client, GrantId(request.grant), 0, &bytes)?;
    }
    Ok(IntrospectReply {
        written: count,
        available,
        record_bytes: N as u64,
        version,
        topic: request.topic,
    })
}

/// One record per process VM knows, by pid.
fn memory_records(vm: &Vm) -> impl Iterator<Item = [u8; MEMORY_RECORD_BYTES]> + '_ {
    vm.pids().filter_map(|pid| {
        let stats = vm.process(pid)?.stats();
        Some(
            MemoryRecord {
                pid,
                resident_pages: stats.resident_pages,
                virtual_bytes: stats.virtual_bytes,
                shared_pages: stats.shared_resident_pages,
                peak_pages: stats.peak_resident_pages,
                limit_pages: stats.limit_pages,
                demand_zero_faults: stats.demand_zero_faults,
                shared_faults: stats.shared_faults,
                invalid_faults: stats.invalid_faults,
                out_of_memory: stats.out_of_memory,
                map_failures: stats.map_failures,
                ..MemoryRecord::default()
            }
            .to_bytes(),
        )
    })
}

/// Each object, by id, followed by its mappers.
fn shared_records(vm: &Vm) -> Vec<[u8; SHARED_RECORD_BYTES]> {
    let mut records = Vec::new();
    for object in vm.objects() {
        let mut name = [0; SHARED_RECORD_NAME_BYTES];
        let name_len = object.name.len().min(SHARED_RECORD_NAME_BYTES);
        name[..name_len].copy_from_slice(&object.name[..name_len]);
        records.push(
            SharedObjectRecord {
                record_type: shared_record_type::OBJECT,
                id: object.id.0,
                owner: object.owner,
                mapper_count: object.mappers.len() as u32,
                bytes: object.bytes,
                resident_pages: object.resident_pages,
                others_may: match object.others_may {
                    OthersMay::Read => others_may::READ,
                    OthersMay::ReadWrite => others_may::READ_WRITE,
                },
                destroy_pending: u8::from(object.destroy_pending),
                name_len: name_len as u8,
                name,
                ..SharedObjectRecord::default()
            }
            .to_bytes(),
        );
        for mapper in &object.mappers {
            records.push(
                SharedMapperRecord {
                    record_type: shared_record_type::MAPPER,
                    object: object.id.0,
                    pid: mapper.pid,
                    writable: u8::from(mapper.writable),
                    base: mapper.base,
                    resident_pages: mapper.resident_pages,
                    ..SharedMapperRecord::default()
                }
                .to_bytes(),
            );
        }
    }
    records
}
