//! The store of Vigil's data store server (DS, `user/servers/ds`): the keys, their values
//! and owners, and the limits (`vigil_abi::ds`) — keys, bytes per key and in total —
//! checked before anything changes, so a refused publish leaves the store as it was.
//! Nothing here talks to the kernel, so it all runs on the host.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;

use vigil_abi::ds::{Key, KeyRecord, MAX_KEYS, MAX_OWNER_BYTES, MAX_TOTAL_BYTES, MAX_VALUE_BYTES};
use vigil_abi::Error;

/// A process name (an owner), checked by IDENTIFY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    bytes: [u8; MAX_OWNER_BYTES],
    len: u8,
}

impl Owner {
    /// `name` of 1 ..= `MAX_OWNER_BYTES` bytes (IDENTIFY's unpacking checked it).
    pub fn new(name: &[u8]) -> Option<Owner> {
        if name.is_empty() || name.len() > MAX_OWNER_BYTES {
            return None;
        }
        let mut bytes = [0; MAX_OWNER_BYTES];
        bytes[..name.len()].copy_from_slice(name);
        Some(Owner {
            bytes,
            len: name.len() as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("?")
    }
}

struct Entry {
    key: Key,
    owner: Owner,
    value: Vec<u8>,
    publishes: u64,
}

/// Every key DS holds.
#[derive(Default)]
pub struct Store {
    entries: Vec<Entry>,
    total_bytes: usize,
}

impl Store {
    fn find(&self, key: &Key) -> Option<usize> {
        self.entries.iter().position(|entry| entry.key == *key)
    }

    /// Stores `value` under `key` for `owner`: `PermissionDenied` if another name owns the
    /// key, `InvalidArgument` for a value above `MAX_VALUE_BYTES`, `OutOfResources` if it
    /// would pass `MAX_KEYS` or `MAX_TOTAL_BYTES`.
    pub fn publish(&mut self, owner: Owner, key: Key, value: &[u8]) -> Result<(), Error> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(Error::InvalidArgument);
        }
        match self.find(&key) {
            Some(index) => {
                let entry = &self.entries[index];
                if entry.owner != owner {
                    return Err(Error::PermissionDenied);
                }
                let total = self.total_bytes - entry.value.len() + value.len();
                if total > MAX_TOTAL_BYTES {
                    return Err(Error::OutOfResources);
                }
                let entry = &mut self.entries[index];
                entry.value.clear();
                entry.value.extend_from_slice(value);
                entry.publishes += 1;
                self.total_bytes = total;
            }
            None => {
                if self.entries.len() >= MAX_KEYS
                    || self.total_bytes + value.len() > MAX_TOTAL_BYTES
                {
                    return Err(Error::OutOfResources);
                }
                self.entries.push(Entry {
                    key,
                    owner,
                    value: Vec::from(value),
                    publishes: 1,
                });
                self.total_bytes += value.len();
            }
        }
        Ok(())
    }

    /// The value under `key` and whether `asker` owns it (`NotFound` if no such key).
    pub fn value(&self, key: &Key, asker: Option<Owner>) -> Result<(&[u8], bool), Error> {
        let entry = &self.entries[self.find(key).ok_or(Error::NotFound)?];
        Ok((&entry.value, asker == Some(entry.owner)))
    }

    /// Removes `key`: `NotFound`, or `PermissionDenied` if another name owns it.
    pub fn delete(&mut self, owner: Owner, key: &Key) -> Result<(), Error> {
        let index = self.find(key).ok_or(Error::NotFound)?;
        if self.entries[index].owner != owner {
            return Err(Error::PermissionDenied);
        }
        let entry = self.entries.swap_remove(index);
        self.total_bytes -= entry.value.len();
        Ok(())
    }

    pub fn keys(&self) -> usize {
        self.entries.len()
    }

    pub fn total_bytes(&self) -> usize {
        self.total_bytes
    }

    /// One INTROSPECT record per key, in store order.
    pub fn records(&self) -> impl Iterator<Item = KeyRecord> + '_ {
        self.entries.iter().map(|entry| {
            let mut record = KeyRecord {
                value_bytes: entry.value.len() as u32,
                key_len: entry.key.as_bytes().len() as u8,
                owner_len: entry.owner.len,
                publishes: entry.publishes,
                ..KeyRecord::default()
            };
            record.key[..entry.key.as_bytes().len()].copy_from_slice(entry.key.as_bytes());
            record.owner = entry.owner.bytes;
            record
        })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    fn key(text: &str) -> Key {
        Key::new(text).unwrap()
    }

    #[test]
    fn only_the_owner_overwrites_or_deletes_and_anyone_reads() {
        let mut store = Store::default();
        let hello = Owner::new(b"hello_service").unwrap();
        let other = Owner::new(b"other").unwrap();
        store.publish(hello, key("k"), b"one").unwrap();
        store.publish(hello, key("k"), b"two").unwrap();
        assert_eq!(store.value(&key("k"), Some(hello)), Ok((&b"two"[..], true)));
        assert_eq!(
            store.value(&key("k"), Some(other)),
            Ok((&b"two"[..], false))
        );
        assert_eq!(store.value(&key("k"), None), Ok((&b"two"[..], false)));
        assert_eq!(
            store.publish(other, key("k"), b"x"),
            Err(Error::PermissionDenied)
        );
        assert_eq!(store.delete(other, &key("k")), Err(Error::PermissionDenied));
        assert_eq!(store.records().next().unwrap().publishes, 2);
        store.delete(hello, &key("k")).unwrap();
        assert_eq!(store.value(&key("k"), None), Err(Error::NotFound));
        assert_eq!(store.delete(hello, &key("k")), Err(Error::NotFound));
        assert_eq!(store.total_bytes(), 0);
        assert!(Owner::new(b"").is_none());
        assert!(Owner::new(&[b'a'; MAX_OWNER_BYTES + 1]).is_none());
    }

    #[test]
    fn the_limits_refuse_without_changing_the_store() {
        let mut store = Store::default();
        let owner = Owner::new(b"o").unwrap();
        let big = [1u8; MAX_VALUE_BYTES];
        assert_eq!(
            store.publish(owner, key("huge"), &[0; MAX_VALUE_BYTES + 1]),
            Err(Error::InvalidArgument)
        );
        let fit = MAX_TOTAL_BYTES / MAX_VALUE_BYTES;
        for index in 0..fit {
            store
                .publish(owner, key(&format!("b{index}")), &big)
                .unwrap();
        }
        assert_eq!(store.total_bytes(), MAX_TOTAL_BYTES);
        assert_eq!(
            store.publish(owner, key("one-more"), b"x"),
            Err(Error::OutOfResources)
        );
        // A value may shrink when full, and grow back into its own room.
        store.publish(owner, key("b0"), b"small").unwrap();
        store.publish(owner, key("b0"), &big).unwrap();
        // Growing a value past the total is refused, and the old value stays.
        store.publish(owner, key("b2"), b"s").unwrap();
        store.publish(owner, key("n"), &[3u8; 4000]).unwrap();
        assert_eq!(
            store.publish(owner, key("b2"), &big),
            Err(Error::OutOfResources)
        );
        assert_eq!(store.value(&key("b2"), None).unwrap().0, b"s");
        store.delete(owner, &key("n")).unwrap();
        for index in 0..fit {
            store.delete(owner, &key(&format!("b{index}"))).unwrap();
        }
        for index in 0..MAX_KEYS {
            store
                .publish(owner, key(&format!("k{index}")), b"v")
                .unwrap();
        }
        assert_eq!(
            store.publish(owner, key("k-last"), b"v"),
            Err(Error::OutOfResources)
        );
        assert_eq!(store.keys(), MAX_KEYS);
        assert_eq!(store.total_bytes(), MAX_KEYS);
    }
}
