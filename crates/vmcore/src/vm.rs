//! The VM server's state: every process's memory map and the shared objects, and the rules
//! that turn faults and requests into decisions.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use vigil_abi::layout::{
    HEAP_BASE, HEAP_MAX, INITIAL_STACK_BYTES, MAPPING_AREA_END, MAPPING_AREA_START, USER_END,
};

use crate::error::{InvalidReason, VmError};
use crate::process::{
    page_of, stack_region_base, stack_region_top, Mapping, MappingKind, MemoryStats, ProcessMemory,
    Residency, Target,
};
use crate::shared::{Mapper, ObjectInfo, OthersMay, SharedObject};
use crate::{
    ObjectId, Pid, MAX_MAPPINGS_PER_PROCESS, MAX_SHARED_OBJECTS, MAX_THREADS, PAGE_SIZE,
    SHARED_NAME_MAX, SHARED_OBJECT_MAX_BYTES,
};

/// The access that faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Execute,
}

/// What the glue should do about a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Map a fresh zeroed frame of the process's own at `page`.
    MapZero { page: u64, writable: bool },
    /// First touch of a shared object's page: allocate a zeroed frame, keep it as the backing
    /// of `object_page` of `object`, and map it at `page`.
    MapZeroShared {
        object: ObjectId,
        object_page: u64,
        page: u64,
        writable: bool,
    },
    /// Map the frame already backing `object_page` of `object` at `page`.
    MapShared {
        object: ObjectId,
        object_page: u64,
        page: u64,
        writable: bool,
    },
    /// Do not map: the thread gets an exception.
    Invalid(InvalidReason),
}

impl Decision {
    /// The page a map decision maps.
    fn page(&self) -> Option<u64> {
        match *self {
            Decision::MapZero { page, .. }
            | Decision::MapZeroShared { page, .. }
            | Decision::MapShared { page, .. } => Some(page),
            Decision::Invalid(_) => None,
        }
    }
}

/// What the glue must give back after a request shrank or removed memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// Pages to unmap whose frames were the process's own: free them.
    pub private_pages: Vec<u64>,
    /// Pages to unmap whose frames belong to a shared object: keep those frames.
    pub shared_pages: Vec<u64>,
    /// Objects that ceased to exist: free the frames of the listed object pages.
    pub destroyed_objects: Vec<DestroyedObject>,
}

/// A shared object that ceased to exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestroyedObject {
    pub object: ObjectId,
    /// Object pages (index from 0) that had a frame.
    pub resident_pages: Vec<u64>,
}

/// The one map decision waiting for the kernel's answer.
#[derive(Clone, Copy, Debug)]
struct Outstanding {
    pid: Pid,
    access: Access,
    decision: Decision,
}

/// All processes' memory maps and all shared objects.
#[derive(Clone, Debug)]
pub struct Vm {
    default_limit_pages: u64,
    processes: BTreeMap<Pid, ProcessMemory>,
    objects: BTreeMap<ObjectId, SharedObject>,
    names: BTreeMap<Vec<u8>, ObjectId>,
    next_object: u32,
    outstanding: Option<Outstanding>,
}

impl Vm {
    /// No processes and no objects; processes created later get `default_limit_pages`.
    pub fn new(default_limit_pages: u64) -> Vm {
        Vm {
            default_limit_pages,
            processes: BTreeMap::new(),
            objects: BTreeMap::new(),
            names: BTreeMap::new(),
            next_object: 1,
            outstanding: None,
        }
    }

    /// Starts tracking process `pid`: no heap, no threads, no mappings, the default limit.
    pub fn create_process(&mut self, pid: Pid) -> Result<(), VmError> {
        if self.processes.contains_key(&pid) {
            return Err(VmError::ProcessExists(pid));
        }
        self.processes
            .insert(pid, ProcessMemory::new(self.default_limit_pages));
        Ok(())
    }

    /// The memory map of `pid`.
    pub fn process(&self, pid: Pid) -> Option<&ProcessMemory> {
        self.processes.get(&pid)
    }

    /// Pids of every process VM tracks, ascending.
    pub fn pids(&self) -> impl Iterator<Item = Pid> + '_ {
        self.processes.keys().copied()
    }

    fn process_mut(&mut self, pid: Pid) -> Result<&mut ProcessMemory, VmError> {
        self.processes
            .get_mut(&pid)
            .ok_or(VmError::UnknownProcess(pid))
    }

    /// Sets `pid`'s memory limit; refused below what it has resident.
    pub fn set_limit(&mut self, pid: Pid, limit_pages: u64) -> Result<(), VmError> {
        let process = self.process_mut(pid)?;
        let resident_pages = process.stats.resident_pages;
        if limit_pages < resident_pages {
            return Err(VmError::LimitBelowResident {
                pid,
                limit_pages,
                resident_pages,
            });
        }
        process.stats.limit_pages = limit_pages;
        Ok(())
    }

    /// Sets the heap to `[HEAP_BASE, HEAP_BASE + bytes)` (brk). Shrinking releases the pages
    /// beyond the new end. A heap larger than the whole limit is refused as out of memory.
    pub fn set_heap_size(&mut self, pid: Pid, bytes: u64) -> Result<Released, VmError> {
        let process = self.process_mut(pid)?;
        check_aligned(bytes)?;
        if bytes > HEAP_MAX {
            return Err(VmError::HeapTooLarge { bytes });
        }
        check_fits_limit(pid, process, bytes / PAGE_SIZE)?;
        let mut released = Released::default();
        if bytes < process.heap_bytes {
            process.release_range(
                HEAP_BASE + bytes,
                HEAP_BASE + process.heap_bytes,
                &mut released,
            );
        }
        process.heap_bytes = bytes;
        Ok(released)
    }

    /// The kernel created thread `thread` of `pid` and mapped the top `INITIAL_STACK_BYTES` of
    /// its stack region: VM creates the region and counts those pages resident. Refused (and
    /// nothing recorded) if they would take the process over its limit.
    pub fn thread_started(&mut self, pid: Pid, thread: u32) -> Result<(), VmError> {
        let process = self.process_mut(pid)?;
        if thread as usize >= MAX_THREADS {
            return Err(VmError::ThreadOutOfRange { thread });
        }
        if process.threads.contains(&thread) {
            return Err(VmError::ThreadExists { pid, thread });
        }
        let pages = INITIAL_STACK_BYTES / PAGE_SIZE;
        if process.headroom() < pages {
            process.stats.out_of_memory += 1;
            return Err(out_of_memory(pid, process, pages));
        }
        process.threads.insert(thread);
        let top = stack_region_top(thread);
        for page in (top - INITIAL_STACK_BYTES..top).step_by(PAGE_SIZE as usize) {
            process.make_resident(page, Residency::Private);
        }
        Ok(())
    }

    /// Thread `thread` of `pid` exited: its stack region goes, with every page in it.
    pub fn thread_exited(&mut self, pid: Pid, thread: u32) -> Result<Released, VmError> {
        let process = self.process_mut(pid)?;
        if !process.threads.remove(&thread) {
            return Err(VmError::UnknownThread { pid, thread });
        }
        let mut released = Released::default();
        process.release_range(
            stack_region_base(thread),
            stack_region_top(thread),
            &mut released,
        );
        Ok(released)
    }

    /// Maps `bytes` of private demand-zero memory at the lowest free range of the mapping
    /// area; returns its base. A mapping larger than the whole limit is refused as out of
    /// memory (it could never be touched in full).
    pub fn map_anonymous(&mut self, pid: Pid, bytes: u64, writable: bool) -> Result<u64, VmError> {
        let process = self.process_mut(pid)?;
        let base = place_mapping(pid, process, bytes)?;
        let kind = MappingKind::Anonymous { writable };
        process.mappings.insert(base, Mapping { base, bytes, kind });
        Ok(base)
    }

    /// Whether every page of the anonymous mapping at `base` may be mapped now
    /// (`MAP_ANONYMOUS` with populate): `base` must start an anonymous mapping of which no
    /// page is resident, and its pages must fit under the limit (else out of memory,
    /// counted as a refusal). Returns its pages; nothing else changes. The glue then maps
    /// them all and reports it with [`Vm::populated`] — or, if the kernel cannot, unmaps
    /// them and the mapping ([`Vm::unmap`]), with nothing counted.
    pub fn populate(&mut self, pid: Pid, base: u64) -> Result<u64, VmError> {
        let process = self.process_mut(pid)?;
        let pages = populatable(process, base)?;
        if process.headroom() < pages {
            process.stats.out_of_memory += 1;
            return Err(out_of_memory(pid, process, pages));
        }
        Ok(pages)
    }

    /// The kernel mapped every page of the anonymous mapping at `base`: VM counts them
    /// resident. Re-checks what [`Vm::populate`] checked and counts nothing if that no
    /// longer holds (`StaleDecision`: the glue must unmap them).
    pub fn populated(&mut self, pid: Pid, base: u64) -> Result<(), VmError> {
        let process = self.process_mut(pid)?;
        let pages = populatable(process, base)?;
        if process.headroom() < pages {
            return Err(VmError::StaleDecision { pid, page: base });
        }
        for page in (base..base + pages * PAGE_SIZE).step_by(PAGE_SIZE as usize) {
            process.make_resident(page, Residency::Private);
        }
        Ok(())
    }

    /// Unmaps `[address, address + bytes)`, which one mapping must cover: part of an
    /// anonymous mapping (what is left either side stays, as one or two mappings) or the
    /// whole of a shared-memory mapping.
    pub fn unmap(&mut self, pid: Pid, address: u64, bytes: u64) -> Result<Released, VmError> {
        let process = self.process_mut(pid)?;
        let end = check_mapping_range(address, bytes)?;
        let not_mapped = VmError::NotMapped {
            address,
            length: bytes,
        };
        let mapping = *process.mapping_at(address).ok_or(not_mapped)?;
        if end > mapping.end() {
            return Err(not_mapped);
        }
        let mut released = Released::default();
        match mapping.kind {
            MappingKind::Anonymous { .. } => {
                let splits = address > mapping.base && end < mapping.end();
                if splits && process.mappings.len() >= MAX_MAPPINGS_PER_PROCESS {
                    return Err(VmError::TooManyMappings { pid });
                }
                process.mappings.remove(&mapping.base);
                if address > mapping.base {
                    let bytes = address - mapping.base;
                    process
                        .mappings
                        .insert(mapping.base, Mapping { bytes, ..mapping });
                }
                if end < mapping.end() {
                    let bytes = mapping.end() - end;
                    process.mappings.insert(
                        end,
                        Mapping {
                            base: end,
                            bytes,
                            ..mapping
                        },
                    );
                }
                process.release_range(address, end, &mut released);
            }
            MappingKind::Shared { object, .. } => {
                if address != mapping.base || end != mapping.end() {
                    return Err(VmError::PartialSharedUnmap {
                        base: mapping.base,
                        length: mapping.bytes,
                    });
                }
                process.mappings.remove(&mapping.base);
                process.release_range(address, end, &mut released);
                if let Some(shared) = self.objects.get_mut(&object) {
                    shared.mappers.remove(&(pid, mapping.base));
                }
                self.destroy_if_unused(object, &mut released);
            }
        }
        Ok(released)
    }

    /// Creates the shared object `name` of `bytes`, owned by `owner`, which may always map it
    /// writable; `others_may` says whether other processes may.
    pub fn create_shared(
        &mut self,
        owner: Pid,
        name: &[u8],
        bytes: u64,
        others_may: OthersMay,
    ) -> Result<ObjectId, VmError> {
        if !self.processes.contains_key(&owner) {
            return Err(VmError::UnknownProcess(owner));
        }
        if name.is_empty() {
            return Err(VmError::NameEmpty);
        }
        if name.len() > SHARED_NAME_MAX {
            return Err(VmError::NameTooLong { length: name.len() });
        }
        if let Some(&object) = self.names.get(name) {
            return Err(VmError::NameTaken { object });
        }
        if bytes == 0 {
            return Err(VmError::ZeroLength);
        }
        check_aligned(bytes)?;
        if bytes > SHARED_OBJECT_MAX_BYTES {
            return Err(VmError::ObjectTooLarge { bytes });
        }
        if self.objects.len() >= MAX_SHARED_OBJECTS {
            return Err(VmError::TooManyObjects);
        }
        let id = ObjectId(self.next_object);
        self.next_object = self
            .next_object
            .checked_add(1)
            .ok_or(VmError::TooManyObjects)?;
        let object = SharedObject {
            name: name.to_vec(),
            owner,
            bytes,
            others_may,
            resident: Default::default(),
            mappers: BTreeMap::new(),
            destroy_pending: false,
        };
        self.objects.insert(id, object);
        self.names.insert(name.to_vec(), id);
        Ok(id)
    }

    /// The live (not destroyed) object called `name`.
    pub fn find_shared(&self, name: &[u8]) -> Option<ObjectId> {
        self.names.get(name).copied()
    }

    /// Maps the whole of `object` into `pid` at the lowest free range of the mapping area;
    /// returns its base. Writable only for the owner or if the owner allowed it.
    pub fn map_shared(
        &mut self,
        pid: Pid,
        object: ObjectId,
        writable: bool,
    ) -> Result<u64, VmError> {
        let process = self
            .processes
            .get_mut(&pid)
            .ok_or(VmError::UnknownProcess(pid))?;
        let shared = self
            .objects
            .get_mut(&object)
            .ok_or(VmError::UnknownObject(object))?;
        if shared.destroy_pending {
            return Err(VmError::ObjectBeingDestroyed(object));
        }
        if writable && shared.owner != pid && shared.others_may == OthersMay::Read {
            return Err(VmError::ReadOnlyObject { pid, object });
        }
        // Objects are created with a page-multiple size no larger than the mapping area, so
        // only the area's room and the mapping count can refuse it.
        let base = place_mapping(pid, process, shared.bytes)?;
        let kind = MappingKind::Shared { object, writable };
        process.mappings.insert(
            base,
            Mapping {
                base,
                bytes: shared.bytes,
                kind,
            },
        );
        shared.mappers.insert((pid, base), writable);
        Ok(base)
    }

    /// The owner destroys `object`: its name is free at once; the object itself goes when no
    /// process maps it (now, if none does). Only the owner may, once.
    pub fn destroy_shared(&mut self, pid: Pid, object: ObjectId) -> Result<Released, VmError> {
        if !self.processes.contains_key(&pid) {
            return Err(VmError::UnknownProcess(pid));
        }
        let shared = self
            .objects
            .get_mut(&object)
            .ok_or(VmError::UnknownObject(object))?;
        if shared.owner != pid {
            return Err(VmError::NotOwner {
                pid,
                object,
                owner: shared.owner,
            });
        }
        if shared.destroy_pending {
            return Err(VmError::ObjectBeingDestroyed(object));
        }
        let mut released = Released::default();
        self.request_destroy(object, &mut released);
        Ok(released)
    }

    /// Marks `object` destroyed, frees its name, and removes it if nobody maps it.
    fn request_destroy(&mut self, object: ObjectId, released: &mut Released) {
        if let Some(shared) = self.objects.get_mut(&object) {
            shared.destroy_pending = true;
            self.names.remove(&shared.name);
            shared.name.clear();
        }
        self.destroy_if_unused(object, released);
    }

    /// Removes `object` if its owner destroyed it and its last mapper is gone.
    fn destroy_if_unused(&mut self, object: ObjectId, released: &mut Released) {
        let unused = self
            .objects
            .get(&object)
            .is_some_and(|shared| shared.destroy_pending && shared.mappers.is_empty());
        if let Some(shared) = unused.then(|| self.objects.remove(&object)).flatten() {
            let resident_pages = shared.resident.into_iter().collect();
            released.destroyed_objects.push(DestroyedObject {
                object,
                resident_pages,
            });
        }
    }

    /// What VM knows about `object`.
    pub fn object(&self, object: ObjectId) -> Option<ObjectInfo<'_>> {
        let shared = self.objects.get(&object)?;
        let mappers = shared
            .mappers
            .iter()
            .map(|(&(pid, base), &writable)| Mapper {
                pid,
                base,
                writable,
                resident_pages: self.processes.get(&pid).map_or(0, |process| {
                    process.resident.range(base..base + shared.bytes).count() as u64
                }),
            })
            .collect();
        Some(ObjectInfo {
            id: object,
            name: &shared.name,
            owner: shared.owner,
            bytes: shared.bytes,
            others_may: shared.others_may,
            resident_pages: shared.resident.len() as u64,
            mappers,
            destroy_pending: shared.destroy_pending,
        })
    }

    /// Every object VM keeps, by id.
    pub fn objects(&self) -> Vec<ObjectInfo<'_>> {
        self.objects
            .keys()
            .filter_map(|&object| self.object(object))
            .collect()
    }

    /// Decides what a fault of `pid` at `address` means. A map decision stays outstanding
    /// until the glue reports the kernel's answer with [`Vm::mapped`] or [`Vm::map_failed`];
    /// until then every other fault is refused (`DecisionOutstanding`). An out-of-memory
    /// refusal is an error, not a decision: the glue reports it (see [`Vm::largest_users`]).
    pub fn fault(&mut self, pid: Pid, address: u64, access: Access) -> Result<Decision, VmError> {
        if let Some(outstanding) = self.outstanding {
            let page = outstanding.decision.page().unwrap_or(0);
            return Err(VmError::DecisionOutstanding {
                pid: outstanding.pid,
                page,
            });
        }
        let decision = self.decide(pid, address, access);
        let process = self.process_mut(pid)?;
        match decision {
            Err(VmError::OutOfMemory { .. }) => process.stats.out_of_memory += 1,
            Ok(Decision::Invalid(_)) => process.stats.invalid_faults += 1,
            Ok(decision) => {
                self.outstanding = Some(Outstanding {
                    pid,
                    access,
                    decision,
                })
            }
            Err(_) => {}
        }
        decision
    }

    /// The decision for a fault, changing nothing.
    fn decide(&self, pid: Pid, address: u64, access: Access) -> Result<Decision, VmError> {
        let process = self
            .processes
            .get(&pid)
            .ok_or(VmError::UnknownProcess(pid))?;
        let Target { writable, object } = match process.locate(address) {
            Ok(target) => target,
            Err(reason) => return Ok(Decision::Invalid(reason)),
        };
        let page = page_of(address);
        if access == Access::Execute {
            return Ok(Decision::Invalid(InvalidReason::Execute));
        }
        if access == Access::Write && !writable {
            return Ok(Decision::Invalid(InvalidReason::WriteToReadOnly));
        }
        if process.resident.contains_key(&page) {
            return Ok(Decision::Invalid(InvalidReason::Protection));
        }
        if process.headroom() == 0 {
            return Err(out_of_memory(pid, process, 1));
        }
        Ok(match object {
            None => Decision::MapZero { page, writable },
            Some((object, object_page)) => {
                let backed = self
                    .objects
                    .get(&object)
                    .is_some_and(|shared| shared.resident.contains(&object_page));
                if backed {
                    Decision::MapShared {
                        object,
                        object_page,
                        page,
                        writable,
                    }
                } else {
                    Decision::MapZeroShared {
                        object,
                        object_page,
                        page,
                        writable,
                    }
                }
            }
        })
    }

    /// The kernel made the outstanding map of `page` for `pid`: VM counts it. If the memory
    /// changed since the decision so that VM would no longer decide the same, VM counts
    /// nothing and says `StaleDecision` (the glue must unmap the page).
    pub fn mapped(&mut self, pid: Pid, page: u64) -> Result<(), VmError> {
        let outstanding = self.take_outstanding(pid, page)?;
        if self.decide(pid, page, outstanding.access) != Ok(outstanding.decision) {
            return Err(VmError::StaleDecision { pid, page });
        }
        let process = self.process_mut(pid)?;
        match outstanding.decision {
            Decision::MapZero { .. } => {
                process.make_resident(page, Residency::Private);
                process.stats.demand_zero_faults += 1;
            }
            Decision::MapShared { .. } => {
                process.make_resident(page, Residency::Shared);
                process.stats.shared_faults += 1;
            }
            Decision::MapZeroShared {
                object,
                object_page,
                ..
            } => {
                process.make_resident(page, Residency::Shared);
                process.stats.shared_faults += 1;
                if let Some(shared) = self.objects.get_mut(&object) {
                    shared.resident.insert(object_page);
                }
            }
            Decision::Invalid(_) => {}
        }
        Ok(())
    }

    /// The kernel could not make the outstanding map of `page` for `pid`: VM counts nothing
    /// but the failure.
    pub fn map_failed(&mut self, pid: Pid, page: u64) -> Result<(), VmError> {
        self.take_outstanding(pid, page)?;
        if let Some(process) = self.processes.get_mut(&pid) {
            process.stats.map_failures += 1;
        }
        Ok(())
    }

    /// Ends the outstanding decision if it is `pid`'s for `page`.
    fn take_outstanding(&mut self, pid: Pid, page: u64) -> Result<Outstanding, VmError> {
        match self.outstanding {
            Some(outstanding)
                if outstanding.pid == pid && outstanding.decision.page() == Some(page) =>
            {
                self.outstanding = None;
                Ok(outstanding)
            }
            _ => Err(VmError::NoOutstandingDecision { pid, page }),
        }
    }

    /// Up to `count` processes with the most resident pages, biggest first (ties: lower
    /// pid first), for an out-of-memory report.
    pub fn largest_users(&self, count: usize) -> Vec<(Pid, MemoryStats)> {
        let mut users: Vec<(Pid, MemoryStats)> = self
            .processes
            .iter()
            .map(|(&pid, process)| (pid, process.stats()))
            .collect();
        users.sort_by(|a, b| {
            b.1.resident_pages
                .cmp(&a.1.resident_pages)
                .then(a.0.cmp(&b.0))
        });
        users.truncate(count);
        users
    }

    /// `pid` is gone: VM forgets its memory and its outstanding decision, unmaps its shared
    /// mappings and destroys the objects it owned (each goes when its last mapper unmaps it).
    pub fn process_exited(&mut self, pid: Pid) -> Result<Released, VmError> {
        let mut process = self
            .processes
            .remove(&pid)
            .ok_or(VmError::UnknownProcess(pid))?;
        if self
            .outstanding
            .is_some_and(|outstanding| outstanding.pid == pid)
        {
            self.outstanding = None;
        }
        let mut released = Released::default();
        process.release_range(0, USER_END, &mut released);
        let mut touched = Vec::new();
        for mapping in process.mappings.values() {
            if let MappingKind::Shared { object, .. } = mapping.kind {
                if let Some(shared) = self.objects.get_mut(&object) {
                    shared.mappers.remove(&(pid, mapping.base));
                }
                touched.push(object);
            }
        }
        let owned: Vec<ObjectId> = self
            .objects
            .iter()
            .filter(|(_, shared)| shared.owner == pid && !shared.destroy_pending)
            .map(|(&object, _)| object)
            .collect();
        for object in owned {
            self.request_destroy(object, &mut released);
        }
        for object in touched {
            self.destroy_if_unused(object, &mut released);
        }
        Ok(released)
    }
}

fn check_aligned(value: u64) -> Result<(), VmError> {
    if value.is_multiple_of(PAGE_SIZE) {
        Ok(())
    } else {
        Err(VmError::Misaligned { value })
    }
}

/// Checks a range a client names in the mapping area; returns its end.
fn check_mapping_range(address: u64, length: u64) -> Result<u64, VmError> {
    check_aligned(address)?;
    if length == 0 {
        return Err(VmError::ZeroLength);
    }
    check_aligned(length)?;
    let end = address
        .checked_add(length)
        .ok_or(VmError::WrapAround { address, length })?;
    if end > USER_END {
        return Err(VmError::KernelSpace { address, length });
    }
    if address < MAPPING_AREA_START || end > MAPPING_AREA_END {
        return Err(VmError::OutsideMappingArea { address, length });
    }
    Ok(end)
}

/// The pages of the anonymous mapping starting at `base` if none of them is resident.
fn populatable(process: &ProcessMemory, base: u64) -> Result<u64, VmError> {
    let mapping = *process.mappings.get(&base).ok_or(VmError::NotMapped {
        address: base,
        length: PAGE_SIZE,
    })?;
    if !matches!(mapping.kind, MappingKind::Anonymous { .. })
        || process.resident.range(base..mapping.end()).next().is_some()
    {
        return Err(VmError::NotMapped {
            address: base,
            length: mapping.bytes,
        });
    }
    Ok(mapping.bytes / PAGE_SIZE)
}

/// Refuses a region of `pages` that alone exceeds the process's limit.
fn check_fits_limit(pid: Pid, process: &mut ProcessMemory, pages: u64) -> Result<(), VmError> {
    if pages > process.stats.limit_pages {
        process.stats.out_of_memory += 1;
        return Err(VmError::OutOfMemory {
            pid,
            limit_pages: process.stats.limit_pages,
            resident_pages: process.stats.resident_pages,
            requested_pages: pages,
        });
    }
    Ok(())
}

/// Checks a new mapping of `bytes` for `pid` and finds where it goes.
fn place_mapping(pid: Pid, process: &mut ProcessMemory, bytes: u64) -> Result<u64, VmError> {
    if bytes == 0 {
        return Err(VmError::ZeroLength);
    }
    check_aligned(bytes)?;
    check_fits_limit(pid, process, bytes / PAGE_SIZE)?;
    if process.mappings.len() >= MAX_MAPPINGS_PER_PROCESS {
        return Err(VmError::TooManyMappings { pid });
    }
    process
        .first_fit(bytes)
        .ok_or(VmError::NoSpace { length: bytes })
}

fn out_of_memory(pid: Pid, process: &ProcessMemory, requested_pages: u64) -> VmError {
    VmError::OutOfMemory {
        pid,
        limit_pages: process.stats.limit_pages,
        resident_pages: process.stats.resident_pages,
        requested_pages,
    }
}
