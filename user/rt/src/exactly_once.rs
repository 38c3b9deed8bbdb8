//! Exactly-once requests across a service's restart (`vigil_abi::exactly_once`), both
//! sides:
//! - [`Ledger`], for a service: its state and its clients' last completed requests with
//!   their replies, kept in DS under one key. `verdict` says whether a request is new or
//!   answered from the record; `commit` stores the new state *and* the reply in one DS
//!   publish, so a crash before it means "not executed" and after it "answered from the
//!   record".
//! - [`Client`], for a client: numbers its requests, and when the service dies with one in
//!   flight, finds it again by name and resends the same id.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use vigil_abi::ds::Key;
use vigil_abi::exactly_once::{
    RequestId, Table, Verdict, CLIENT_WORD, MAX_STATE_BYTES, REPLY_WORDS, SEQUENCE_WORD,
};
use vigil_abi::{Endpoint, Error, Message};

use crate::ds::DataStore;
use crate::{ipc, thread};

/// A service's exactly-once ledger: its state and client records, in DS when there is one
/// (without DS both live only in memory and a restart starts afresh).
pub struct Ledger {
    store: Option<(DataStore, Key)>,
    /// The name this process proves to DS before it publishes (`IDENTIFY`); None for a
    /// ledger opened with `open_inherited`, which publishes under its endpoint's identity.
    owner: Option<String>,
    /// Whether DS knows the current endpoint as `owner`. Not at first: a replacement RS
    /// starts gets the service's kept endpoint only when it takes it over in its receive
    /// loop, so it identifies at its first publish, and again if DS no longer knows it.
    identified: bool,
    table: Table,
    state: Vec<u8>,
}

impl Ledger {
    /// Reads back what `key` holds (`initial` state and no records if nothing yet); the
    /// first `commit` identifies to DS as `owner`. Without DS (`NotFound`) the ledger lives
    /// in memory; any other DS failure, or a stored value of another shape, is an error.
    pub fn open(owner: &str, key: &str, initial: &[u8]) -> Result<Ledger, Error> {
        Self::open_with(Some(owner), key, initial)
    }

    /// `open` without `IDENTIFY`: the caller's endpoint keeps the DS identity an earlier
    /// holder of it proved (a live-update candidate swapped into the service's kept
    /// endpoint, or a replacement that took it over, running under another program name).
    /// Its publishes are refused if that endpoint never identified as the key's owner.
    pub fn open_inherited(key: &str, initial: &[u8]) -> Result<Ledger, Error> {
        Self::open_with(None, key, initial)
    }

    fn open_with(owner: Option<&str>, key: &str, initial: &[u8]) -> Result<Ledger, Error> {
        let key = Key::new(key)?;
        let fresh = |store| Ledger {
            store,
            owner: owner.map(String::from),
            ..Ledger::in_memory(initial)
        };
        let ds = match DataStore::find() {
            Ok(ds) => ds,
            Err(Error::NotFound) => return Ok(Ledger::in_memory(initial)),
            Err(error) => return Err(error),
        };
        let mut bytes = vec![0u8; Table::max_encoded_bytes()];
        let len = match ds.retrieve(&key, &mut bytes) {
            Ok(len) => len,
            Err(Error::NotFound) => return Ok(fresh(Some((ds, key)))),
            Err(error) => return Err(error),
        };
        let mut state = vec![0u8; MAX_STATE_BYTES];
        let (table, state_len) = Table::decode(&bytes[..len], &mut state)?;
        state.truncate(state_len);
        Ok(Ledger {
            store: Some((ds, key)),
            owner: owner.map(String::from),
            identified: false,
            table,
            state,
        })
    }

    /// A ledger in memory only (no DS, or DS refused this process): state and records
    /// last as long as the process.
    pub fn in_memory(initial: &[u8]) -> Ledger {
        Ledger {
            store: None,
            owner: None,
            identified: false,
            table: Table::default(),
            state: Vec::from(initial),
        }
    }

    /// Whether the state is kept in DS.
    pub fn is_stored(&self) -> bool {
        self.store.is_some()
    }

    pub fn state(&self) -> &[u8] {
        &self.state
    }

    /// Clients with a record.
    pub fn clients(&self) -> usize {
        self.table.clients()
    }

    /// The id of `message` (`None`: no id, execute every time).
    pub fn request_id(message: &Message) -> Option<RequestId> {
        RequestId::from_words(message.payload[CLIENT_WORD], message.payload[SEQUENCE_WORD])
    }

    /// What to do with a request of `id`.
    pub fn verdict(&self, id: Option<RequestId>) -> Verdict {
        id.map_or(Verdict::Execute, |id| self.table.verdict(id))
    }

    /// The request `id` (if any) executed: `state` is the new state and `reply` its answer.
    /// One DS publish stores both; on failure nothing changed (the caller answers the
    /// error and keeps its old state).
    pub fn commit(
        &mut self,
        id: Option<RequestId>,
        state: &[u8],
        reply: [u64; REPLY_WORDS],
    ) -> Result<(), Error> {
        let mut table = self.table.clone();
        if let Some(id) = id {
            table.record(id, reply);
        }
        if let Some((ds, key)) = &self.store {
            let mut bytes = vec![0u8; Table::max_encoded_bytes()];
            let len = table.encode(state, &mut bytes)?;
            if let (Some(owner), false) = (&self.owner, self.identified) {
                ds.identify(owner)?;
                self.identified = true;
            }
            match (ds.publish(key, &bytes[..len]), &self.owner) {
                // DS knew an endpoint this thread no longer has (RS moved it onto the
                // service's kept endpoint, or swapped it in a live update): prove the
                // name again from this one, once.
                (Err(Error::PermissionDenied), Some(owner)) => {
                    ds.identify(owner)?;
                    ds.publish(key, &bytes[..len])?;
                }
                (result, _) => result?,
            }
        } else if state.len() > MAX_STATE_BYTES {
            return Err(Error::InvalidArgument);
        }
        self.table = table;
        self.state.clear();
        self.state.extend_from_slice(state);
        Ok(())
    }
}

/// How often a [`Client`] tries to reach its service for one request before giving up (it
/// sleeps 1 ms after each failed look-up: a bound, not a timing).
pub const MAX_ATTEMPTS: u32 = 20_000;

/// A client of an exactly-once service found by name: every call carries a fresh request
/// id; a call the service's instance died holding (`Restarted`: RS kept the endpoint) is
/// resent, same id, to the same endpoint, and one whose endpoint died (`DeadEndpoint`,
/// `PartnerDied`: a service without a kept endpoint) to the instance found by name next.
pub struct Client {
    name: &'static str,
    server: Endpoint,
    id: u64,
    sequence: u64,
    /// Resends so far (each after a failed attempt).
    pub retries: u64,
}

impl Client {
    /// A client of the service named `name`, with this thread's endpoint as its client id
    /// (the kernel never reissues an endpoint, so no other client has it).
    pub fn new(name: &'static str) -> Client {
        Client {
            name,
            server: Endpoint::NONE,
            id: ipc::self_endpoint().0,
            sequence: 0,
            retries: 0,
        }
    }

    pub fn client_id(&self) -> u64 {
        self.id
    }

    /// The id the next call will carry.
    pub fn next_id(&self) -> RequestId {
        RequestId {
            client: self.id,
            sequence: self.sequence + 1,
        }
    }

    /// Sends request `kind` with `payload` (its id words filled in) until an instance of
    /// the service answers; returns the reply. Errors other than the service's death are
    /// returned at once.
    pub fn call(&mut self, kind: u32, mut payload: [u64; 6]) -> Result<Message, Error> {
        self.sequence += 1;
        payload[CLIENT_WORD] = self.id;
        payload[SEQUENCE_WORD] = self.sequence;
        let mut last = Error::NotFound;
        let mut dead = Endpoint::NONE;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                self.retries += 1;
            }
            if !self.server.is_thread() {
                match ipc::lookup(self.name) {
                    Ok(server) if server != dead => self.server = server,
                    // Its name still names the instance that died: not replaced yet.
                    Ok(_) => {
                        thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                    Err(error) => {
                        last = error;
                        thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                }
            }
            let mut message = Message::with_payload(kind, payload);
            match ipc::send_receive(self.server, &mut message) {
                Ok(()) => return Ok(message),
                // The instance died holding this request, and RS keeps the endpoint: the
                // same id again, to the same endpoint (it waits there for the replacement).
                Err(Error::Restarted) => last = Error::Restarted,
                // The instance died before or while answering: find the next one.
                Err(error @ (Error::DeadEndpoint | Error::PartnerDied)) => {
                    last = error;
                    dead = self.server;
                    self.server = Endpoint::NONE;
                }
                Err(error) => return Err(error),
            }
        }
        Err(last)
    }
}
