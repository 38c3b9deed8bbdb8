//! The client side of DS, the data store (`vigil_abi::ds`): identify as one's process name,
//! publish, retrieve and delete keyed values — small ones in the message, larger ones
//! through a grant that lives only for the call.

use vigil_abi::ds::{
    publish_payload, request, unpack_small_value, Key, DS_SERVER_NAME, MAX_SMALL_VALUE_BYTES,
};
use vigil_abi::rs::pack_name;
use vigil_abi::{Endpoint, Error};

use crate::ipc;

/// A connection to DS (its endpoint; DS is a system server and never restarts).
#[derive(Clone, Copy, Debug)]
pub struct DataStore {
    server: Endpoint,
}

impl DataStore {
    /// DS by name (`NotFound` when the system runs without one).
    pub fn find() -> Result<DataStore, Error> {
        ipc::lookup(DS_SERVER_NAME).map(|server| DataStore { server })
    }

    pub fn endpoint(&self) -> Endpoint {
        self.server
    }

    /// One raw request: the reply's payload after its status word, or DS's refusal. For
    /// tests that forge requests, too.
    pub fn call(&self, kind: u32, payload: [u64; 6]) -> Result<[u64; 5], Error> {
        let [_, a, b, c, d, e] = ipc::request(self.server, kind, payload, request::REPLY)?;
        Ok([a, b, c, d, e])
    }

    /// Proves to DS that this thread is the main thread of the process named `name`, so
    /// it may publish and delete the keys of that name.
    pub fn identify(&self, name: &str) -> Result<(), Error> {
        self.call(request::IDENTIFY, pack_name(name)?).map(|_| ())
    }

    /// Stores `value` under `key`, replacing the old value in one step: in the message if
    /// it fits, else through a READ grant.
    pub fn publish(&self, key: &Key, value: &[u8]) -> Result<(), Error> {
        if value.len() <= MAX_SMALL_VALUE_BYTES {
            return self
                .call(request::PUBLISH, publish_payload(key, value)?)
                .map(|_| ());
        }
        let [k0, k1] = key.words();
        let len = key.as_bytes().len() as u64;
        ipc::with_read_grant(self.server, value, |grant| {
            self.call(
                request::PUBLISH_RANGE,
                [k0, k1, len, grant.0, value.len() as u64, 0],
            )
        })?
        .map(|_| ())
    }

    /// The value under `key`, copied into `buffer` through a WRITE grant; returns its
    /// length. `InvalidArgument` if `buffer` is shorter than the value; an empty buffer
    /// only asks the length.
    pub fn retrieve(&self, key: &Key, buffer: &mut [u8]) -> Result<usize, Error> {
        let [k0, k1] = key.words();
        let len = key.as_bytes().len() as u64;
        let bytes = buffer.len() as u64;
        let reply = if buffer.is_empty() {
            self.call(request::RETRIEVE_RANGE, [k0, k1, len, 0, 0, 0])?
        } else {
            ipc::with_write_grant(self.server, buffer, |grant| {
                self.call(request::RETRIEVE_RANGE, [k0, k1, len, grant.0, bytes, 0])
            })??
        };
        usize::try_from(reply[0])
            .ok()
            .filter(|&value_len| buffer.is_empty() || value_len <= buffer.len())
            .ok_or(Error::InvalidArgument)
    }

    /// A small value (at most `MAX_SMALL_VALUE_BYTES`) in the reply message itself, and
    /// whether this process owns the key.
    pub fn retrieve_small(
        &self,
        key: &Key,
        out: &mut [u8; MAX_SMALL_VALUE_BYTES],
    ) -> Result<(usize, bool), Error> {
        let [k0, k1] = key.words();
        let reply = self.call(
            request::RETRIEVE,
            [k0, k1, key.as_bytes().len() as u64, 0, 0, 0],
        )?;
        let len = usize::try_from(reply[0]).map_err(|_| Error::InvalidArgument)?;
        let len = unpack_small_value(&reply[1..4], len, out)?;
        Ok((len, reply[4] != 0))
    }

    /// Removes `key` (only its owner may).
    pub fn delete(&self, key: &Key) -> Result<(), Error> {
        let [k0, k1] = key.words();
        self.call(
            request::DELETE,
            [k0, k1, key.as_bytes().len() as u64, 0, 0, 0],
        )
        .map(|_| ())
    }
}
