//! `ds`: the data store (issue 10, MINIX's DS). A system server of the boot table (booted
//! as `ds kcalls=safecopy`, before RS): services publish keyed state — small values in the
//! message, ranges of up to 4 KiB by grant — and read it back after a restart
//! (`vigil_abi::ds`). A key belongs to the process name that published it: a process
//! proves its name once with IDENTIFY (DS checks that the name's main thread is the
//! sender), so a restarted instance owns its keys again; others may read, not overwrite
//! or delete. Every request is checked at the boundary (`ds::Request::parse`); a bad one
//! gets its error and DS keeps serving. DS also answers INTROSPECT (topic `DataStore`).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

mod introspect;

use alloc::vec;
use alloc::vec::Vec;

use vigil_dscore::{Owner, Store};
use vigil_rt::abi::ds::{
    pack_small_value, request, Request, MAX_IDENTITIES, MAX_SMALL_VALUE_BYTES,
};
use vigil_rt::abi::server_introspect::INTROSPECT;
use vigil_rt::ipc::{self, GrantId};
use vigil_rt::{println, Endpoint, Error, Message};

vigil_rt::entry!(main);

/// Refusals DS logs one by one; after these it logs every `REFUSALS_LOGGED`th (a fuzzing
/// client must not flood the console).
const REFUSALS_LOGGED: u64 = 64;

struct Ds {
    store: Store,
    /// Requests refused so far.
    refusals: u64,
    /// Endpoints that proved their process name with IDENTIFY.
    identities: Vec<(Endpoint, Owner)>,
}

impl Ds {
    fn owner_of(&self, client: Endpoint) -> Option<Owner> {
        self.identities
            .iter()
            .find(|(endpoint, _)| *endpoint == client)
            .map(|(_, owner)| *owner)
    }

    /// The name `client` proved, or `PermissionDenied`.
    fn identified(&self, client: Endpoint) -> Result<Owner, Error> {
        self.owner_of(client).ok_or(Error::PermissionDenied)
    }

    fn identify(&mut self, client: Endpoint, name: &[u8]) -> Result<[u64; 5], Error> {
        let owner = Owner::new(name).ok_or(Error::InvalidArgument)?;
        let text = owner.as_str();
        if ipc::lookup(text) != Ok(client) {
            return Err(Error::PermissionDenied);
        }
        // One identity per name: the name's live main thread (a restarted instance
        // replaces its dead predecessor's entry).
        self.identities
            .retain(|(endpoint, known)| *endpoint != client && *known != owner);
        if self.identities.len() >= MAX_IDENTITIES {
            self.identities
                .retain(|(endpoint, known)| ipc::lookup(known.as_str()) == Ok(*endpoint));
        }
        if self.identities.len() >= MAX_IDENTITIES {
            return Err(Error::OutOfResources);
        }
        self.identities.push((client, owner));
        Ok([0; 5])
    }

    fn handle(&mut self, client: Endpoint, request: Request) -> Result<[u64; 5], Error> {
        match request {
            Request::Identify { name, len } => self.identify(client, &name[..len]),
            Request::Publish { key, value, len } => {
                let owner = self.identified(client)?;
                self.store.publish(owner, key, &value[..len])?;
                Ok([0; 5])
            }
            Request::PublishRange { key, grant, bytes } => {
                let owner = self.identified(client)?;
                // Copied whole before the store changes: a failed copy leaves the old value.
                let mut value = vec![0u8; bytes];
                ipc::safe_copy_from(client, GrantId(grant), 0, &mut value)?;
                self.store.publish(owner, key, &value)?;
                Ok([0; 5])
            }
            Request::Retrieve { key } => {
                let (value, owned) = self.store.value(&key, self.owner_of(client))?;
                if value.len() > MAX_SMALL_VALUE_BYTES {
                    return Err(Error::InvalidArgument);
                }
                let [v0, v1, v2] = pack_small_value(value)?;
                Ok([value.len() as u64, v0, v1, v2, u64::from(owned)])
            }
            Request::RetrieveRange { key, grant, bytes } => {
                let (value, owned) = self.store.value(&key, self.owner_of(client))?;
                if bytes != 0 {
                    if bytes < value.len() {
                        return Err(Error::InvalidArgument);
                    }
                    ipc::safe_copy_to(client, GrantId(grant), 0, value)?;
                }
                Ok([value.len() as u64, u64::from(owned), 0, 0, 0])
            }
            Request::Delete { key } => {
                let owner = self.identified(client)?;
                self.store.delete(owner, &key)?;
                Ok([0; 5])
            }
        }
    }
}

fn reply(client: Endpoint, message: &Message) {
    if let Err(error) = ipc::send_nonblocking(client, message) {
        println!("reply to {client} dropped: {error} (it did not wait for the answer)");
    }
}

fn main(_args: &str) -> i32 {
    let mut ds = Ds {
        store: Store::default(),
        refusals: 0,
        identities: Vec::new(),
    };
    println!("data store ready at {}", ipc::self_endpoint());
    loop {
        let message = match ipc::receive(Endpoint::ANY) {
            Ok(message) => message,
            Err(error) => {
                println!("receive failed: {error}");
                continue;
            }
        };
        let client = message.source;
        if message.is_notification() || !client.is_thread() {
            continue;
        }
        if message.kind == INTROSPECT {
            reply(client, &introspect::answer(&ds.store, &message));
            continue;
        }
        let outcome = Request::parse(message.kind, &message.payload)
            .and_then(|request| ds.handle(client, request));
        let payload = match outcome {
            Ok([a, b, c, d, e]) => [0, a, b, c, d, e],
            Err(error) => {
                ds.refusals += 1;
                if ds.refusals <= REFUSALS_LOGGED || ds.refusals.is_multiple_of(REFUSALS_LOGGED) {
                    println!(
                        "{client}: request {:#x} refused: {error} ({} keys, {} bytes held; refusal {})",
                        message.kind,
                        ds.store.keys(),
                        ds.store.total_bytes(),
                        ds.refusals
                    );
                }
                [error as u64, 0, 0, 0, 0, 0]
            }
        };
        reply(client, &Message::with_payload(request::REPLY, payload));
    }
}
