//! DS's INTROSPECT answer (`vigil_abi::server_introspect`, topic `DataStore`): one
//! `ds::KeyRecord` per key — key, owner, value size, publishes — written into the client's
//! WRITE grant with one `SafeCopyTo`. Other topics are `NoSuchCall`; a bad request gets its
//! error and DS carries on.

use alloc::vec::Vec;
use vigil_rt::abi::ds::{KEY_RECORD_BYTES, KEY_RECORD_VERSION};
use vigil_rt::abi::server_introspect::{IntrospectReply, IntrospectRequest, Topic};
use vigil_rt::ipc::{self, GrantId};
use vigil_rt::{println, Error, Message};

use vigil_dscore::Store;

/// The reply to an INTROSPECT `message`.
pub fn answer(store: &Store, message: &Message) -> Message {
    let request = match IntrospectRequest::from_message(message) {
        Ok(request) => request,
        Err(error) => {
            println!("{}: INTROSPECT refused: {error}", message.source);
            return IntrospectReply::refusal(error);
        }
    };
    let outcome = if request.topic == Topic::DataStore {
        write(store, message, &request)
    } else {
        Err(Error::NoSuchCall)
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

fn write(
    store: &Store,
    message: &Message,
    request: &IntrospectRequest,
) -> Result<IntrospectReply, Error> {
    let available = store.keys() as u64;
    let count = request.records_to_write(KEY_RECORD_BYTES, available)?;
    if count > 0 {
        let bytes: Vec<u8> = store
            .records()
            .skip(request.first as usize)
            .take(count as usize)
            .flat_map(|record| record.to_bytes())
            .collect();
        ipc::safe_copy_to(message.source, GrantId(request.grant), 0, &bytes)?;
    }
    Ok(IntrospectReply {
        written: count,
        available,
        record_bytes: KEY_RECORD_BYTES as u64,
        version: KEY_RECORD_VERSION,
        topic: request.topic,
    })
}
