//! Exactly-once requests: the request id a client puts in a request, and the record a
//! service keeps in DS of each client's last completed request with its reply, stored in
//! the same DS value as the service's state (so "state changed" and "reply recorded" are
//! one DS publish). The runtime helper (`vigil_rt::exactly_once`) does the DS side; this
//! module is the table and its byte layout, host-tested.
//!
//! Protocol: a client numbers its requests 1, 2, 3, … (one at a time: the next only once
//! the previous was answered) under a client id unique to it (the runtime uses its
//! endpoint, which the kernel never reissues). A retry — after the service died with the
//! request in flight — resends the same id. The service answers a request whose id is
//! its client's last completed one from the record, without executing it; a newer one
//! it executes and records; an older one (the client already had a later answer) is
//! `InvalidArgument`. A request with sequence 0 carries no id: executed every time.
//!
//! Bound: [`MAX_CLIENTS`] records (one per client). A new client when the table is full
//! takes the record of the client whose last request is oldest; that client loses its
//! record, so only if it then retried its last request *after* `MAX_CLIENTS` other
//! clients completed requests would that request run twice.

use crate::error::Error;

/// Where a request carries its id: `payload[CLIENT_WORD]`, `payload[SEQUENCE_WORD]` (the
/// same words for every exactly-once service, so one runtime client serves them all).
pub const CLIENT_WORD: usize = 1;
pub const SEQUENCE_WORD: usize = 2;

/// Records a service keeps (clients × 1).
pub const MAX_CLIENTS: usize = 16;
/// Words of a recorded reply (a message payload).
pub const REPLY_WORDS: usize = 6;
/// Most bytes of service state stored with the records.
pub const MAX_STATE_BYTES: usize = 1024;
/// Marks the stored value's layout ("vigil-x1"), so a value of another shape is refused.
pub const MAGIC: u64 = u64::from_le_bytes(*b"vigil-x1");

const HEADER_WORDS: usize = 3;
const RECORD_WORDS: usize = 3 + REPLY_WORDS;

/// A client-chosen request id: who (a client id) and which (sequence, 1 …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestId {
    pub client: u64,
    pub sequence: u64,
}

impl RequestId {
    /// The id of a request's words (`client`, `sequence`); `None` for sequence 0 (no id).
    pub fn from_words(client: u64, sequence: u64) -> Option<RequestId> {
        (sequence != 0).then_some(RequestId { client, sequence })
    }
}

/// One client's last completed request and its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientRecord {
    pub id: RequestId,
    /// When it was recorded, by the table's own count of commits (for eviction).
    pub stamp: u64,
    pub reply: [u64; REPLY_WORDS],
}

/// What to do with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not done before: execute it, then `commit`.
    Execute,
    /// Its client's last completed request: answer with the recorded reply.
    Replay([u64; REPLY_WORDS]),
    /// Older than its client's last completed request.
    Stale,
}

/// The service state and the client records, as stored in one DS value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    records: [Option<ClientRecord>; MAX_CLIENTS],
    commits: u64,
}

impl Table {
    pub fn verdict(&self, id: RequestId) -> Verdict {
        match self
            .records
            .iter()
            .flatten()
            .find(|r| r.id.client == id.client)
        {
            Some(record) if record.id.sequence == id.sequence => Verdict::Replay(record.reply),
            Some(record) if record.id.sequence > id.sequence => Verdict::Stale,
            _ => Verdict::Execute,
        }
    }

    /// Records `reply` as `id`'s client's last completed request (replacing its old
    /// record, else an empty slot, else the oldest record).
    pub fn record(&mut self, id: RequestId, reply: [u64; REPLY_WORDS]) {
        self.commits += 1;
        let stamp = self.commits;
        let slot = self
            .records
            .iter()
            .position(|r| r.is_some_and(|r| r.id.client == id.client))
            .or_else(|| self.records.iter().position(Option::is_none))
            .unwrap_or_else(|| {
                (0..MAX_CLIENTS)
                    .min_by_key(|&i| self.records[i].map_or(0, |r| r.stamp))
                    .unwrap_or(0)
            });
        self.records[slot] = Some(ClientRecord { id, stamp, reply });
    }

    pub fn clients(&self) -> usize {
        self.records.iter().flatten().count()
    }

    /// The stored value: `[MAGIC, commits, state bytes, state (padded to words), records
    /// count, records (client, sequence, stamp, reply)…]`, little-endian words.
    /// `InvalidArgument` for state above `MAX_STATE_BYTES`.
    pub fn encode(&self, state: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        if state.len() > MAX_STATE_BYTES {
            return Err(Error::InvalidArgument);
        }
        let state_words = state.len().div_ceil(8);
        let total = (HEADER_WORDS + state_words + 1 + self.clients() * RECORD_WORDS) * 8;
        if out.len() < total {
            return Err(Error::InvalidArgument);
        }
        let mut at = 0;
        let mut put = |word: u64, at: &mut usize| {
            out[*at..*at + 8].copy_from_slice(&word.to_le_bytes());
            *at += 8;
        };
        put(MAGIC, &mut at);
        put(self.commits, &mut at);
        put(state.len() as u64, &mut at);
        for chunk in state.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            put(u64::from_le_bytes(word), &mut at);
        }
        put(self.clients() as u64, &mut at);
        for record in self.records.iter().flatten() {
            put(record.id.client, &mut at);
            put(record.id.sequence, &mut at);
            put(record.stamp, &mut at);
            for word in record.reply {
                put(word, &mut at);
            }
        }
        Ok(at)
    }

    /// Bytes `encode` needs at most.
    pub const fn max_encoded_bytes() -> usize {
        (HEADER_WORDS + MAX_STATE_BYTES / 8 + 1 + MAX_CLIENTS * RECORD_WORDS) * 8
    }

    /// The table and the state (copied into `state`; its length returned) of a stored
    /// value; `InvalidArgument` for anything `encode` would not have written.
    pub fn decode(bytes: &[u8], state: &mut [u8]) -> Result<(Table, usize), Error> {
        let mut words = bytes.chunks_exact(8).map(|chunk| {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            u64::from_le_bytes(word)
        });
        let mut next = || words.next().ok_or(Error::InvalidArgument);
        if !bytes.len().is_multiple_of(8) || next()? != MAGIC {
            return Err(Error::InvalidArgument);
        }
        let commits = next()?;
        let state_len = usize::try_from(next()?).map_err(|_| Error::InvalidArgument)?;
        if state_len > MAX_STATE_BYTES || state_len > state.len() {
            return Err(Error::InvalidArgument);
        }
        for index in 0..state_len.div_ceil(8) {
            let word = next()?.to_le_bytes();
            let start = index * 8;
            let end = (start + 8).min(state_len);
            state[start..end].copy_from_slice(&word[..end - start]);
        }
        let count = usize::try_from(next()?).map_err(|_| Error::InvalidArgument)?;
        if count > MAX_CLIENTS {
            return Err(Error::InvalidArgument);
        }
        let mut table = Table {
            commits,
            ..Table::default()
        };
        for slot in table.records.iter_mut().take(count) {
            let id = RequestId {
                client: next()?,
                sequence: next()?,
            };
            let stamp = next()?;
            let mut reply = [0u64; REPLY_WORDS];
            for word in reply.iter_mut() {
                *word = next()?;
            }
            if id.sequence == 0 || stamp > commits {
                return Err(Error::InvalidArgument);
            }
            *slot = Some(ClientRecord { id, stamp, reply });
        }
        if next().is_ok() {
            return Err(Error::InvalidArgument);
        }
        Ok((table, state_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(client: u64, sequence: u64) -> RequestId {
        RequestId { client, sequence }
    }

    #[test]
    fn a_completed_request_is_replayed_a_newer_one_executed_an_older_one_stale() {
        let mut table = Table::default();
        assert_eq!(table.verdict(id(7, 1)), Verdict::Execute);
        table.record(id(7, 1), [0, 41, 0, 0, 0, 0]);
        assert_eq!(
            table.verdict(id(7, 1)),
            Verdict::Replay([0, 41, 0, 0, 0, 0])
        );
        assert_eq!(table.verdict(id(7, 2)), Verdict::Execute);
        assert_eq!(table.verdict(id(8, 1)), Verdict::Execute);
        table.record(id(7, 2), [0, 42, 0, 0, 0, 0]);
        assert_eq!(table.verdict(id(7, 1)), Verdict::Stale);
        assert_eq!(table.clients(), 1, "one record per client");
        assert_eq!(RequestId::from_words(7, 0), None);
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_oldest_client() {
        let mut table = Table::default();
        for client in 0..MAX_CLIENTS as u64 {
            table.record(id(client, 1), [client; REPLY_WORDS]);
        }
        table.record(id(0, 2), [0; REPLY_WORDS]); // client 0 is now the newest
        table.record(id(99, 1), [99; REPLY_WORDS]);
        assert_eq!(table.clients(), MAX_CLIENTS);
        assert_eq!(
            table.verdict(id(1, 1)),
            Verdict::Execute,
            "client 1 was oldest"
        );
        assert_eq!(table.verdict(id(0, 2)), Verdict::Replay([0; REPLY_WORDS]));
        assert_eq!(table.verdict(id(99, 1)), Verdict::Replay([99; REPLY_WORDS]));
    }

    #[test]
    fn the_stored_value_round_trips_and_forged_ones_are_refused() {
        let mut table = Table::default();
        table.record(id(3, 9), [0, 5, 0, 0, 0, 1]);
        table.record(id(4, 1), [8, 0, 0, 0, 0, 0]);
        let mut bytes = [0u8; Table::max_encoded_bytes()];
        let len = table.encode(b"counter", &mut bytes).unwrap();
        let mut state = [0u8; MAX_STATE_BYTES];
        let (back, state_len) = Table::decode(&bytes[..len], &mut state).unwrap();
        assert_eq!(back, table);
        assert_eq!(&state[..state_len], b"counter");
        // Cut short, one word too many, another magic, a count above the bound.
        assert!(Table::decode(&bytes[..len - 8], &mut state).is_err());
        assert!(Table::decode(&bytes[..len + 8], &mut state).is_err());
        let mut forged = bytes;
        forged[0] ^= 1;
        assert!(Table::decode(&forged[..len], &mut state).is_err());
        let mut forged = bytes;
        forged[24 + 8..24 + 16].copy_from_slice(&(MAX_CLIENTS as u64 + 1).to_le_bytes());
        assert!(Table::decode(&forged[..len], &mut state).is_err());
        assert!(Table::decode(&bytes[..len - 3], &mut state).is_err());
        assert_eq!(
            table.encode(&[0; MAX_STATE_BYTES + 1], &mut bytes),
            Err(Error::InvalidArgument)
        );
        let full = Table::max_encoded_bytes();
        assert!(
            full <= crate::ds::MAX_VALUE_BYTES,
            "one DS value holds it all"
        );
    }
}
