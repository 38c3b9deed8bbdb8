//! Shared-memory objects: named, owned, page-granular backing shared by every mapper.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::{ObjectId, Pid};

/// Which mappings the owner allows processes other than itself to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OthersMay {
    /// Others may map the object read-only only.
    Read,
    /// Others may map it read-only or writable.
    ReadWrite,
}

/// One process's mapping of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapper {
    pub pid: Pid,
    /// Where the object starts in that process.
    pub base: u64,
    pub writable: bool,
    /// Object pages this mapper has mapped (resident in its address space).
    pub resident_pages: u64,
}

/// What VM reports about an object (the data for finding over-users of shared memory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo<'a> {
    pub id: ObjectId,
    /// Empty once the owner destroyed the object (the name is free again then).
    pub name: &'a [u8],
    pub owner: Pid,
    pub bytes: u64,
    pub others_may: OthersMay,
    /// Object pages that have a frame.
    pub resident_pages: u64,
    pub mappers: Vec<Mapper>,
    /// The owner destroyed it; it goes away when its last mapper unmaps it.
    pub destroy_pending: bool,
}

/// A shared object VM keeps.
#[derive(Clone, Debug)]
pub(crate) struct SharedObject {
    pub name: Vec<u8>,
    pub owner: Pid,
    pub bytes: u64,
    pub others_may: OthersMay,
    /// Object pages (index from 0) backed by a frame.
    pub resident: BTreeSet<u64>,
    /// (pid, base) → writable.
    pub mappers: BTreeMap<(Pid, u64), bool>,
    pub destroy_pending: bool,
}
