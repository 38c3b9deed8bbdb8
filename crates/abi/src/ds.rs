//! The data store (DS, `user/servers/ds`): the protocol by which services publish keyed
//! state and read it back after a restart — request kinds, payload layouts, limits and
//! errors, with the checked types a request becomes at DS's boundary.
//!
//! Every request is one `SendReceive`; DS answers with [`request::REPLY`]: `payload[0]` is
//! 0 or an `Error` code, results follow.
//!
//! A key is 1 ..= [`MAX_KEY_BYTES`] printable ASCII bytes (`!` ..= `~`), packed little-end
//! first into `payload[0..2]`, its length in the low byte of `payload[2]` ([`Key`]). A
//! value is 0 ..= [`MAX_VALUE_BYTES`] bytes: up to [`MAX_SMALL_VALUE_BYTES`] travel in the
//! message itself (`payload[3..6]`, the length in bits 8..16 of `payload[2]`), larger ones
//! by a grant that DS safe-copies from (publish) or into (retrieve).
//!
//! Ownership: a key belongs to the process *name* that first published it. Before it may
//! publish or delete, a process proves its name once with [`request::IDENTIFY`] (DS checks
//! that the name's main thread is the sender), so a restarted instance — same name, new
//! endpoint — identifies again and owns its keys. Any process may retrieve any key: DS
//! holds state to be handed back, not secrets.

use crate::error::Error;

/// The process name of DS (a system server of the boot table, started before RS).
pub const DS_SERVER_NAME: &str = "ds";

/// Longest key.
pub const MAX_KEY_BYTES: usize = 16;
/// Longest value carried in the message (three payload words).
pub const MAX_SMALL_VALUE_BYTES: usize = 24;
/// Longest value of one key (by grant).
pub const MAX_VALUE_BYTES: usize = 4096;
/// Most keys DS holds.
pub const MAX_KEYS: usize = 64;
/// Most value bytes DS holds over all keys.
pub const MAX_TOTAL_BYTES: usize = 64 << 10;
/// Most identified endpoints DS remembers at once (entries of dead endpoints are dropped
/// when the table is full).
pub const MAX_IDENTITIES: usize = 32;
/// Longest process name `IDENTIFY` carries (the kernel's limit, as RS's names).
pub const MAX_OWNER_BYTES: usize = crate::rs::MAX_NAME_BYTES;

/// Request kinds DS answers (and the INTROSPECT of `server_introspect`, topic `DataStore`).
pub mod request {
    /// payload: a process name as `rs::pack_name` packs it → `[0]`. DS checks that the
    /// name's main thread is the sender (`PermissionDenied` if not, `InvalidArgument` for a
    /// bad name) and remembers the sender as that name. `OutOfResources` if
    /// `MAX_IDENTITIES` live endpoints are identified already.
    pub const IDENTIFY: u32 = 0x0600_0001;
    /// payload `[key, key, lengths, value, value, value]` (lengths: key length | value
    /// length << 8) → `[0]`: stores the small value under the key, replacing the old value
    /// in one step. `PermissionDenied` if the sender has not identified or the key belongs
    /// to another name; `OutOfResources` if DS is full (keys or bytes).
    pub const PUBLISH: u32 = 0x0600_0002;
    /// payload `[key, key, key length, grant, bytes, 0]` → `[0]`: DS safe-copies `bytes`
    /// (at most `MAX_VALUE_BYTES`) from the sender's READ grant and stores them; the old
    /// value is replaced only once the whole copy succeeded (`BadGrant` leaves it as it
    /// was). Refusals as `PUBLISH`.
    pub const PUBLISH_RANGE: u32 = 0x0600_0003;
    /// payload `[key, key, key length, 0, 0, 0]` → `[0, length, value, value, value,
    /// owner_is_caller]`: a value of at most `MAX_SMALL_VALUE_BYTES`; a longer one is
    /// `InvalidArgument` (use `RETRIEVE_RANGE`); `NotFound` if no such key.
    pub const RETRIEVE: u32 = 0x0600_0004;
    /// payload `[key, key, key length, grant, bytes, 0]` → `[0, length]`: DS copies the
    /// value into the sender's WRITE grant. `bytes` 0 only tells the length (no grant
    /// needed); a buffer shorter than the value is `InvalidArgument`.
    pub const RETRIEVE_RANGE: u32 = 0x0600_0005;
    /// payload `[key, key, key length, 0, 0, 0]` → `[0]`. `NotFound`, `PermissionDenied`
    /// as above.
    pub const DELETE: u32 = 0x0600_0006;
    /// Every answer.
    pub const REPLY: u32 = 0x0600_00ff;
}

/// A checked key: printable ASCII, 1 ..= `MAX_KEY_BYTES` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    bytes: [u8; MAX_KEY_BYTES],
    len: u8,
}

impl Key {
    pub fn new(text: &str) -> Result<Key, Error> {
        Key::from_bytes(text.as_bytes())
    }

    pub fn from_bytes(text: &[u8]) -> Result<Key, Error> {
        if text.is_empty() || text.len() > MAX_KEY_BYTES || !text.iter().all(u8::is_ascii_graphic) {
            return Err(Error::InvalidArgument);
        }
        let mut bytes = [0; MAX_KEY_BYTES];
        bytes[..text.len()].copy_from_slice(text);
        Ok(Key {
            bytes,
            len: text.len() as u8,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub fn as_str(&self) -> &str {
        // Printable ASCII only (checked at construction).
        core::str::from_utf8(self.as_bytes()).unwrap_or("?")
    }

    /// The key's words for `payload[0..2]`.
    pub fn words(&self) -> [u64; 2] {
        let mut words = [0u64; 2];
        for (index, byte) in self.bytes.iter().enumerate() {
            words[index / 8] |= u64::from(*byte) << ((index % 8) * 8);
        }
        words
    }

    /// The key a request carries: `payload[0..2]` and the length in the low byte of
    /// `payload[2]`. Bytes past the length must be 0 (so one key has one encoding).
    pub fn from_payload(payload: &[u64; 6]) -> Result<Key, Error> {
        let len = (payload[2] & 0xff) as usize;
        if len == 0 || len > MAX_KEY_BYTES {
            return Err(Error::InvalidArgument);
        }
        let mut bytes = [0u8; MAX_KEY_BYTES];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = (payload[index / 8] >> ((index % 8) * 8)) as u8;
        }
        if bytes[len..].iter().any(|&byte| byte != 0) {
            return Err(Error::InvalidArgument);
        }
        Key::from_bytes(&bytes[..len])
    }
}

impl core::fmt::Display for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `payload[2]` of a small `PUBLISH`: the key length and the value length.
pub fn lengths_word(key: &Key, value_len: usize) -> u64 {
    u64::from(key.len) | ((value_len as u64) << 8)
}

/// A `PUBLISH` payload: `InvalidArgument` for a value above `MAX_SMALL_VALUE_BYTES`.
pub fn publish_payload(key: &Key, value: &[u8]) -> Result<[u64; 6], Error> {
    if value.len() > MAX_SMALL_VALUE_BYTES {
        return Err(Error::InvalidArgument);
    }
    let [k0, k1] = key.words();
    let mut payload = [k0, k1, lengths_word(key, value.len()), 0, 0, 0];
    for (index, byte) in value.iter().enumerate() {
        payload[3 + index / 8] |= u64::from(*byte) << ((index % 8) * 8);
    }
    Ok(payload)
}

/// A small value in `words` (`payload[3..6]` of `PUBLISH`, `[2..5]` of `RETRIEVE`'s reply)
/// of `len` bytes, into `out`; bytes past `len` must be 0.
pub fn unpack_small_value(
    words: &[u64],
    len: usize,
    out: &mut [u8; MAX_SMALL_VALUE_BYTES],
) -> Result<usize, Error> {
    if len > MAX_SMALL_VALUE_BYTES || words.len() * 8 < MAX_SMALL_VALUE_BYTES {
        return Err(Error::InvalidArgument);
    }
    for (index, byte) in out.iter_mut().enumerate() {
        *byte = (words[index / 8] >> ((index % 8) * 8)) as u8;
    }
    if out[len..].iter().any(|&byte| byte != 0) {
        return Err(Error::InvalidArgument);
    }
    Ok(len)
}

/// A small value packed into three words (`RETRIEVE`'s reply).
pub fn pack_small_value(value: &[u8]) -> Result<[u64; 3], Error> {
    if value.len() > MAX_SMALL_VALUE_BYTES {
        return Err(Error::InvalidArgument);
    }
    let mut words = [0u64; 3];
    for (index, byte) in value.iter().enumerate() {
        words[index / 8] |= u64::from(*byte) << ((index % 8) * 8);
    }
    Ok(words)
}

/// A request DS has checked: what the raw message becomes once, at the boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Identify {
        name: [u8; MAX_OWNER_BYTES],
        len: usize,
    },
    Publish {
        key: Key,
        value: [u8; MAX_SMALL_VALUE_BYTES],
        len: usize,
    },
    PublishRange {
        key: Key,
        grant: u64,
        bytes: usize,
    },
    Retrieve {
        key: Key,
    },
    RetrieveRange {
        key: Key,
        grant: u64,
        bytes: usize,
    },
    Delete {
        key: Key,
    },
}

impl Request {
    /// Checks a message: `NoSuchCall` for an unknown kind, `InvalidArgument` for a bad key,
    /// length or reserved word that is not 0.
    pub fn parse(kind: u32, payload: &[u64; 6]) -> Result<Request, Error> {
        let only_key = |payload: &[u64; 6]| {
            if payload[2] >> 8 != 0 || payload[3..].iter().any(|&word| word != 0) {
                return Err(Error::InvalidArgument);
            }
            Key::from_payload(payload)
        };
        let range = |payload: &[u64; 6]| {
            if payload[2] >> 8 != 0 || payload[5] != 0 {
                return Err(Error::InvalidArgument);
            }
            let bytes = usize::try_from(payload[4])
                .ok()
                .filter(|&bytes| bytes <= MAX_VALUE_BYTES)
                .ok_or(Error::InvalidArgument)?;
            Ok((Key::from_payload(payload)?, payload[3], bytes))
        };
        Ok(match kind {
            request::IDENTIFY => {
                let mut name = [0u8; MAX_OWNER_BYTES];
                if payload[5] != 0 {
                    return Err(Error::InvalidArgument);
                }
                let len = crate::rs::unpack_name(payload, &mut name)?;
                Request::Identify { name, len }
            }
            request::PUBLISH => {
                let key = Key::from_payload(payload)?;
                let len = usize::try_from(payload[2] >> 8).map_err(|_| Error::InvalidArgument)?;
                let mut value = [0u8; MAX_SMALL_VALUE_BYTES];
                unpack_small_value(&payload[3..], len, &mut value)?;
                Request::Publish { key, value, len }
            }
            request::PUBLISH_RANGE => {
                let (key, grant, bytes) = range(payload)?;
                Request::PublishRange { key, grant, bytes }
            }
            request::RETRIEVE => Request::Retrieve {
                key: only_key(payload)?,
            },
            request::RETRIEVE_RANGE => {
                let (key, grant, bytes) = range(payload)?;
                Request::RetrieveRange { key, grant, bytes }
            }
            request::DELETE => Request::Delete {
                key: only_key(payload)?,
            },
            _ => return Err(Error::NoSuchCall),
        })
    }
}

/// Bytes of one `DataStore` INTROSPECT record ([`KeyRecord`]).
pub const KEY_RECORD_BYTES: usize = 64;
/// Layout version of [`KeyRecord`].
pub const KEY_RECORD_VERSION: u64 = 1;

/// One key DS holds, as INTROSPECT (topic `DataStore`) reports it: 16 key bytes, 32 owner
/// bytes (both zero-padded), the value's length (u32), the key's length (u8), the owner's
/// length (u8), 2 reserved bytes, and how many times it was published (u64).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyRecord {
    pub key: [u8; MAX_KEY_BYTES],
    pub owner: [u8; MAX_OWNER_BYTES],
    pub value_bytes: u32,
    pub key_len: u8,
    pub owner_len: u8,
    pub publishes: u64,
}

impl KeyRecord {
    pub fn to_bytes(&self) -> [u8; KEY_RECORD_BYTES] {
        let mut out = [0u8; KEY_RECORD_BYTES];
        out[..16].copy_from_slice(&self.key);
        out[16..48].copy_from_slice(&self.owner);
        out[48..52].copy_from_slice(&self.value_bytes.to_le_bytes());
        out[52] = self.key_len;
        out[53] = self.owner_len;
        out[56..64].copy_from_slice(&self.publishes.to_le_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8; KEY_RECORD_BYTES]) -> KeyRecord {
        let mut record = KeyRecord::default();
        record.key.copy_from_slice(&bytes[..16]);
        record.owner.copy_from_slice(&bytes[16..48]);
        record.value_bytes = u32::from_le_bytes([bytes[48], bytes[49], bytes[50], bytes[51]]);
        record.key_len = bytes[52].min(MAX_KEY_BYTES as u8);
        record.owner_len = bytes[53].min(MAX_OWNER_BYTES as u8);
        let mut publishes = [0u8; 8];
        publishes.copy_from_slice(&bytes[56..64]);
        record.publishes = u64::from_le_bytes(publishes);
        record
    }

    pub fn key_bytes(&self) -> &[u8] {
        &self.key[..usize::from(self.key_len)]
    }

    pub fn owner_bytes(&self) -> &[u8] {
        &self.owner[..usize::from(self.owner_len)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_and_round_trip_through_a_payload() {
        let key = Key::new("hello.state").unwrap();
        let [k0, k1] = key.words();
        let payload = [k0, k1, 11, 0, 0, 0];
        assert_eq!(Key::from_payload(&payload), Ok(key));
        assert_eq!(key.as_str(), "hello.state");
        assert_eq!(Key::new(""), Err(Error::InvalidArgument));
        assert_eq!(Key::new("a b"), Err(Error::InvalidArgument));
        assert_eq!(Key::new("é"), Err(Error::InvalidArgument));
        assert_eq!(Key::new(&"k".repeat(17)), Err(Error::InvalidArgument));
        assert!(Key::new(&"k".repeat(16)).is_ok());
        // A length past the bytes, a byte past the length, a length of 0 or above 16.
        assert_eq!(
            Key::from_payload(&[k0, k1, 12, 0, 0, 0]),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            Key::from_payload(&[k0, k1 | 1 << 56, 11, 0, 0, 0]),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            Key::from_payload(&[k0, k1, 0, 0, 0, 0]),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            Key::from_payload(&[u64::MAX, u64::MAX, 17, 0, 0, 0]),
            Err(Error::InvalidArgument)
        );
        // Control bytes are not a key.
        assert_eq!(
            Key::from_payload(&[0x0a, 0, 1, 0, 0, 0]),
            Err(Error::InvalidArgument)
        );
    }

    #[test]
    fn small_values_round_trip_and_bad_lengths_are_refused() {
        let key = Key::new("k").unwrap();
        let value = b"twenty-four bytes, exact";
        assert_eq!(value.len(), MAX_SMALL_VALUE_BYTES);
        let payload = publish_payload(&key, value).unwrap();
        match Request::parse(request::PUBLISH, &payload).unwrap() {
            Request::Publish {
                key: parsed,
                value: out,
                len,
            } => {
                assert_eq!(parsed, key);
                assert_eq!(&out[..len], value);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert_eq!(publish_payload(&key, &[0; 25]), Err(Error::InvalidArgument));
        let mut forged = publish_payload(&key, b"abc").unwrap();
        forged[2] = 1 | 25 << 8;
        assert_eq!(
            Request::parse(request::PUBLISH, &forged),
            Err(Error::InvalidArgument)
        );
        forged[2] = 1 | 2 << 8; // "abc" is longer than 2: byte 3 is not padding
        assert_eq!(
            Request::parse(request::PUBLISH, &forged),
            Err(Error::InvalidArgument)
        );
        forged[2] = 1 | u64::MAX << 8;
        assert_eq!(
            Request::parse(request::PUBLISH, &forged),
            Err(Error::InvalidArgument)
        );
        let words = pack_small_value(b"abc").unwrap();
        let mut out = [0u8; MAX_SMALL_VALUE_BYTES];
        assert_eq!(unpack_small_value(&words, 3, &mut out), Ok(3));
        assert_eq!(&out[..3], b"abc");
    }

    #[test]
    fn requests_are_checked_at_the_boundary() {
        let key = Key::new("state").unwrap();
        let [k0, k1] = key.words();
        assert_eq!(Request::parse(0x0600_0077, &[0; 6]), Err(Error::NoSuchCall));
        assert_eq!(
            Request::parse(request::RETRIEVE, &[k0, k1, 5, 0, 0, 0]),
            Ok(Request::Retrieve { key })
        );
        // Reserved words must be 0.
        assert_eq!(
            Request::parse(request::RETRIEVE, &[k0, k1, 5, 1, 0, 0]),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            Request::parse(request::DELETE, &[k0, k1, 5 | 1 << 8, 0, 0, 0]),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            Request::parse(request::PUBLISH_RANGE, &[k0, k1, 5, 9, 4096, 0]),
            Ok(Request::PublishRange {
                key,
                grant: 9,
                bytes: 4096
            })
        );
        assert_eq!(
            Request::parse(request::PUBLISH_RANGE, &[k0, k1, 5, 9, 4097, 0]),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            Request::parse(request::RETRIEVE_RANGE, &[k0, k1, 5, 9, u64::MAX, 0]),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            Request::parse(request::RETRIEVE_RANGE, &[k0, k1, 5, 9, 8, 1]),
            Err(Error::InvalidArgument)
        );
        let name = crate::rs::pack_name("hello_service").unwrap();
        match Request::parse(request::IDENTIFY, &name).unwrap() {
            Request::Identify { name, len } => assert_eq!(&name[..len], b"hello_service"),
            other => panic!("parsed as {other:?}"),
        }
        let mut forged = name;
        forged[4] = 0;
        assert_eq!(
            Request::parse(request::IDENTIFY, &forged),
            Err(Error::InvalidArgument)
        );
    }

    #[test]
    fn key_records_round_trip() {
        let mut record = KeyRecord {
            value_bytes: 4096,
            key_len: 5,
            owner_len: 13,
            publishes: 1 << 40,
            ..KeyRecord::default()
        };
        record.key[..5].copy_from_slice(b"state");
        record.owner[..13].copy_from_slice(b"hello_service");
        let back = KeyRecord::from_bytes(&record.to_bytes());
        assert_eq!(back, record);
        assert_eq!(back.key_bytes(), b"state");
        assert_eq!(back.owner_bytes(), b"hello_service");
    }
}
