//! Property tests: random request sequences (hostile ones included) against a page-by-page
//! model, checking VM's invariants after every step.
//!
//! The model knows nothing of regions as ranges: it keeps every page of every region in a
//! map and finds free space by scanning pages, so it is slow and plainly right. The glue is
//! simulated too: a map decision is committed or failed as the op says, and the pages VM
//! releases are removed from a fake "kernel page table" that must match VM's resident pages.

use std::collections::{BTreeMap, BTreeSet};
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;
use vigil_abi::layout::{
    HEAP_BASE, INITIAL_STACK_BYTES, MAPPING_AREA_END, MAPPING_AREA_START, STACK_AREA_TOP,
    STACK_REGION_SIZE, USER_END, USER_IMAGE_MIN,
};

use crate::*;

const PAGE: u64 = PAGE_SIZE;
const PIDS: [Pid; 3] = [1, 2, 3];
const NAMES: [&[u8]; 3] = [b"a", b"b", b"c"];
const DEFAULT_LIMIT: u64 = 10;

#[derive(Clone, Copy, Debug)]
enum Place {
    Heap(u64),
    Stack { slot: u32, page: u64 },
    Mapping(u64),
    Image,
    Kernel,
    Anywhere(u64),
}

#[derive(Clone, Debug)]
enum Op {
    CreateProcess(usize),
    Exit(usize),
    SetLimit(usize, u64),
    SetHeap(usize, u64),
    ThreadStarted(usize, u32),
    ThreadExited(usize, u32),
    MapAnonymous {
        pid: usize,
        pages: u64,
        writable: bool,
    },
    /// Unmap part of the pid's `mapping`-th mapping (modulo their count), `pages` from
    /// `skip` pages in, or (`None`) all of it.
    Unmap {
        pid: usize,
        mapping: usize,
        skip: u64,
        pages: Option<u64>,
    },
    UnmapAnything {
        pid: usize,
        address: u64,
        length: u64,
    },
    CreateShared {
        pid: usize,
        name: usize,
        pages: u64,
        others_write: bool,
    },
    MapShared {
        pid: usize,
        object: u32,
        writable: bool,
    },
    DestroyShared {
        pid: usize,
        object: u32,
    },
    Fault {
        pid: usize,
        place: Place,
        offset: u64,
        access: Access,
        kernel_maps: bool,
    },
}

fn place() -> impl Strategy<Value = Place> {
    prop_oneof![
        3 => (0u64..8).prop_map(Place::Heap),
        3 => (0u32..4, prop_oneof![0u64..3, 58u64..64])
            .prop_map(|(slot, page)| Place::Stack { slot, page }),
        6 => (0u64..12).prop_map(Place::Mapping),
        1 => Just(Place::Image),
        1 => Just(Place::Kernel),
        1 => any::<u64>().prop_map(Place::Anywhere),
    ]
}

fn access() -> impl Strategy<Value = Access> {
    prop_oneof![4 => Just(Access::Read), 4 => Just(Access::Write), 1 => Just(Access::Execute)]
}

fn op() -> impl Strategy<Value = Op> {
    let pid = 0..PIDS.len() + 1; // The last one is never created.
    prop_oneof![
        2 => pid.clone().prop_map(Op::CreateProcess),
        1 => pid.clone().prop_map(Op::Exit),
        1 => (pid.clone(), 0u64..16).prop_map(|(pid, pages)| Op::SetLimit(pid, pages)),
        1 => (pid.clone(), 0u64..12).prop_map(|(pid, pages)| Op::SetHeap(pid, pages)),
        2 => (pid.clone(), 0u32..4).prop_map(|(pid, thread)| Op::ThreadStarted(pid, thread)),
        1 => (pid.clone(), 0u32..4).prop_map(|(pid, thread)| Op::ThreadExited(pid, thread)),
        4 => (pid.clone(), 0u64..5, any::<bool>())
            .prop_map(|(pid, pages, writable)| Op::MapAnonymous { pid, pages, writable }),
        3 => (pid.clone(), any::<usize>(), 0u64..4, prop::option::weighted(0.6, 0u64..4))
            .prop_map(|(pid, mapping, skip, pages)| Op::Unmap { pid, mapping, skip, pages }),
        1 => (pid.clone(), any::<u64>(), any::<u64>()).prop_map(|(pid, address, length)| {
            Op::UnmapAnything { pid, address, length }
        }),
        2 => (pid.clone(), 0..NAMES.len(), 0u64..4, any::<bool>()).prop_map(
            |(pid, name, pages, others_write)| Op::CreateShared { pid, name, pages, others_write }
        ),
        4 => (pid.clone(), 0u32..5, any::<bool>())
            .prop_map(|(pid, object, writable)| Op::MapShared { pid, object, writable }),
        1 => (pid.clone(), 0u32..8).prop_map(|(pid, object)| Op::DestroyShared { pid, object }),
        24 => (pid, place(), 0..PAGE, access(), prop::bool::weighted(0.85)).prop_map(
            |(pid, place, offset, access, kernel_maps)| {
                Op::Fault { pid, place, offset, access, kernel_maps }
            }
        ),
    ]
}

/// How the model sees one page of a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RegionPage {
    writable: bool,
    object: Option<(ObjectId, u64)>,
}

#[derive(Clone, Debug)]
struct ModelMapping {
    bytes: u64,
    writable: bool,
    object: Option<ObjectId>,
}

#[derive(Clone, Debug, Default)]
struct ModelProcess {
    limit: u64,
    heap_pages: u64,
    threads: BTreeSet<u32>,
    mappings: BTreeMap<u64, ModelMapping>,
    /// The fake kernel page table: page → mapped from an object?
    resident: BTreeMap<u64, bool>,
    peak: u64,
    demand_zero: u64,
    shared: u64,
    invalid: u64,
    out_of_memory: u64,
    map_failures: u64,
}

impl ModelProcess {
    /// Which region page `page` is, or `Err` with the invalid reason.
    fn region_page(&self, page: u64) -> Result<RegionPage, InvalidReason> {
        let private = Ok(RegionPage {
            writable: true,
            object: None,
        });
        if page >= USER_END {
            return Err(if page >= 0xffff_8000_0000_0000 {
                InvalidReason::KernelAddress
            } else {
                InvalidReason::NonCanonical
            });
        }
        if (USER_IMAGE_MIN..vigil_abi::layout::USER_IMAGE_END).contains(&page) {
            return Err(InvalidReason::Image);
        }
        if (0..self.heap_pages).any(|index| HEAP_BASE + index * PAGE == page) {
            return private;
        }
        for slot in 0..MAX_THREADS as u32 {
            let top = STACK_AREA_TOP - u64::from(slot) * STACK_REGION_SIZE;
            let bottom = top - STACK_REGION_SIZE;
            if !(bottom..top).contains(&page) {
                continue;
            }
            let overflow = |thread: u32| {
                let lowest_address =
                    STACK_AREA_TOP - u64::from(thread + 1) * STACK_REGION_SIZE + PAGE;
                Err(InvalidReason::StackOverflow {
                    thread,
                    lowest_address,
                })
            };
            if self.threads.contains(&slot) {
                return if page == bottom {
                    overflow(slot)
                } else {
                    private
                };
            }
            if slot > 0 && self.threads.contains(&(slot - 1)) {
                return overflow(slot - 1);
            }
            return Err(InvalidReason::NotMapped);
        }
        for (&base, mapping) in &self.mappings {
            if base <= page && page < base + mapping.bytes {
                let object = mapping.object.map(|object| (object, (page - base) / PAGE));
                return Ok(RegionPage {
                    writable: mapping.writable,
                    object,
                });
            }
        }
        Err(InvalidReason::NotMapped)
    }

    /// The lowest mapping-area address with `pages` free pages after it, scanning pages.
    fn first_fit(&self, pages: u64) -> Option<u64> {
        let taken = |page: u64| {
            self.mappings
                .iter()
                .any(|(&base, mapping)| base <= page && page < base + mapping.bytes)
        };
        let mut candidate = MAPPING_AREA_START;
        'search: loop {
            for index in 0..pages {
                let page = candidate + index * PAGE;
                if page >= MAPPING_AREA_END {
                    return None;
                }
                if taken(page) {
                    candidate = page + PAGE;
                    continue 'search;
                }
            }
            return Some(candidate);
        }
    }

    /// Drops the resident pages in `[start, end)`, returning (private, shared) pages.
    fn release(&mut self, start: u64, end: u64) -> (Vec<u64>, Vec<u64>) {
        let pages: Vec<(u64, bool)> = self
            .resident
            .iter()
            .filter(|(&page, _)| start <= page && page < end)
            .map(|(&p, &s)| (p, s))
            .collect();
        let mut released = (Vec::new(), Vec::new());
        for (page, shared) in pages {
            self.resident.remove(&page);
            if shared {
                released.1.push(page)
            } else {
                released.0.push(page)
            }
        }
        released
    }
}

#[derive(Clone, Debug)]
struct ModelObject {
    name: Vec<u8>,
    owner: Pid,
    pages: u64,
    others_write: bool,
    resident: BTreeSet<u64>,
    pending: bool,
}

#[derive(Default)]
struct Model {
    processes: BTreeMap<Pid, ModelProcess>,
    objects: BTreeMap<ObjectId, ModelObject>,
    next_object: u32,
}

impl Model {
    fn mappers(&self, object: ObjectId) -> Vec<(Pid, u64, bool)> {
        let mut mappers = Vec::new();
        for (&pid, process) in &self.processes {
            for (&base, mapping) in &process.mappings {
                if mapping.object == Some(object) {
                    mappers.push((pid, base, mapping.writable));
                }
            }
        }
        mappers
    }

    /// Removes `object` if destroyed and unmapped; returns it as VM reports it.
    fn destroy_if_unused(&mut self, object: ObjectId) -> Option<DestroyedObject> {
        let pending = self.objects.get(&object).is_some_and(|o| o.pending);
        if pending && self.mappers(object).is_empty() {
            let gone = self.objects.remove(&object)?;
            return Some(DestroyedObject {
                object,
                resident_pages: gone.resident.into_iter().collect(),
            });
        }
        None
    }
}

fn address_of(place: Place, offset: u64) -> u64 {
    match place {
        Place::Heap(page) => HEAP_BASE + page * PAGE + offset,
        Place::Stack { slot, page } => {
            STACK_AREA_TOP - u64::from(slot + 1) * STACK_REGION_SIZE + page * PAGE + offset
        }
        Place::Mapping(page) => MAPPING_AREA_START + page * PAGE + offset,
        Place::Image => USER_IMAGE_MIN + offset,
        Place::Kernel => 0xffff_8000_0000_0000 + offset,
        Place::Anywhere(address) => address,
    }
}

/// What VM must hold whatever happened.
fn check_invariants(vm: &Vm) -> Result<(), TestCaseError> {
    let mut shared_mappers: BTreeMap<ObjectId, Vec<(Pid, u64, bool)>> = BTreeMap::new();
    for pid in vm.pids() {
        let process = vm.process(pid).unwrap();
        let stats = process.stats();
        let mut end = MAPPING_AREA_START;
        for mapping in process.mappings() {
            prop_assert!(mapping.base >= end, "mappings overlap or leave the area");
            prop_assert!(
                mapping.bytes > 0 && mapping.bytes % PAGE == 0 && mapping.base % PAGE == 0
            );
            end = mapping.end();
            if let MappingKind::Shared { object, writable } = mapping.kind {
                shared_mappers
                    .entry(object)
                    .or_default()
                    .push((pid, mapping.base, writable));
            }
        }
        prop_assert!(end <= MAPPING_AREA_END);
        prop_assert_eq!(
            process.resident_pages().count() as u64,
            stats.resident_pages
        );
        prop_assert!(
            stats.resident_pages <= stats.limit_pages,
            "resident over the limit"
        );
        prop_assert!(
            stats.resident_pages * PAGE <= stats.virtual_bytes,
            "resident over virtual"
        );
        prop_assert!(stats.shared_resident_pages <= stats.resident_pages);
        prop_assert!(stats.peak_resident_pages >= stats.resident_pages);
        let mut shared = 0;
        for page in process.resident_pages() {
            let in_heap = page >= HEAP_BASE && page < HEAP_BASE + process.heap_bytes();
            let in_stack = process.threads().any(|thread| {
                let top = STACK_AREA_TOP - u64::from(thread) * STACK_REGION_SIZE;
                page >= top - STACK_REGION_SIZE + PAGE && page < top
            });
            let mapping = process
                .mappings()
                .find(|m| m.base <= page && page < m.end());
            if matches!(mapping.map(|m| m.kind), Some(MappingKind::Shared { .. })) {
                shared += 1;
            }
            prop_assert!(
                in_heap || in_stack || mapping.is_some(),
                "resident page {:#x} in no region",
                page
            );
        }
        prop_assert_eq!(shared, stats.shared_resident_pages);
    }
    for info in vm.objects() {
        let mappers: Vec<(Pid, u64, bool)> = info
            .mappers
            .iter()
            .map(|m| (m.pid, m.base, m.writable))
            .collect();
        let none = Vec::new();
        prop_assert_eq!(&mappers, shared_mappers.get(&info.id).unwrap_or(&none));
        prop_assert!(info.resident_pages <= info.bytes / PAGE);
        prop_assert!(
            !info.destroy_pending || !mappers.is_empty(),
            "unmapped destroyed object kept"
        );
        prop_assert_eq!(info.destroy_pending, info.name.is_empty());
        if !info.destroy_pending {
            prop_assert_eq!(vm.find_shared(info.name), Some(info.id));
        }
    }
    // No mapping names an object VM forgot.
    for object in shared_mappers.keys() {
        prop_assert!(vm.object(*object).is_some());
    }
    Ok(())
}

/// VM's accounting equals the model's.
fn check_against_model(vm: &Vm, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        vm.pids().collect::<Vec<_>>(),
        model.processes.keys().copied().collect::<Vec<_>>()
    );
    for (&pid, expected) in &model.processes {
        let process = vm.process(pid).unwrap();
        let stats = process.stats();
        prop_assert_eq!(
            process.resident_pages().collect::<Vec<_>>(),
            expected.resident.keys().copied().collect::<Vec<_>>()
        );
        prop_assert_eq!(
            stats.shared_resident_pages,
            expected.resident.values().filter(|&&s| s).count() as u64
        );
        let mapped: u64 = expected.mappings.values().map(|m| m.bytes).sum();
        let virtual_bytes =
            expected.heap_pages * PAGE + expected.threads.len() as u64 * STACK_REGION_SIZE + mapped;
        prop_assert_eq!(stats.virtual_bytes, virtual_bytes);
        prop_assert_eq!(
            (
                stats.limit_pages,
                stats.peak_resident_pages,
                stats.demand_zero_faults,
                stats.shared_faults
            ),
            (
                expected.limit,
                expected.peak,
                expected.demand_zero,
                expected.shared
            )
        );
        prop_assert_eq!(
            (
                stats.invalid_faults,
                stats.out_of_memory,
                stats.map_failures
            ),
            (
                expected.invalid,
                expected.out_of_memory,
                expected.map_failures
            )
        );
    }
    prop_assert_eq!(
        vm.objects().iter().map(|o| o.id).collect::<Vec<_>>(),
        model.objects.keys().copied().collect::<Vec<_>>()
    );
    for (&id, expected) in &model.objects {
        let info = vm.object(id).unwrap();
        prop_assert_eq!(
            (info.owner, info.bytes, info.destroy_pending),
            (expected.owner, expected.pages * PAGE, expected.pending)
        );
        prop_assert_eq!(info.resident_pages, expected.resident.len() as u64);
        let mappers: Vec<(Pid, u64, bool)> = info
            .mappers
            .iter()
            .map(|m| (m.pid, m.base, m.writable))
            .collect();
        prop_assert_eq!(mappers, model.mappers(id));
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut vm = Vm::new(DEFAULT_LIMIT);
    let mut model = Model {
        next_object: 1,
        ..Model::default()
    };
    let pid_of = |index: usize| PIDS.get(index).copied().unwrap_or(99);
    for op in ops {
        match op {
            Op::CreateProcess(index) => {
                let pid = pid_of(index);
                let result = vm.create_process(pid);
                let fresh = !model.processes.contains_key(&pid);
                prop_assert_eq!(result.is_ok(), fresh);
                if fresh {
                    model.processes.insert(
                        pid,
                        ModelProcess {
                            limit: DEFAULT_LIMIT,
                            ..ModelProcess::default()
                        },
                    );
                }
            }
            Op::Exit(index) => {
                let pid = pid_of(index);
                let result = vm.process_exited(pid);
                let Some(mut process) = model.processes.remove(&pid) else {
                    prop_assert_eq!(result, Err(VmError::UnknownProcess(pid)));
                    continue;
                };
                let released = result.unwrap();
                let (private, shared) = process.release(0, u64::MAX);
                prop_assert_eq!(&released.private_pages, &private);
                prop_assert_eq!(&released.shared_pages, &shared);
                let mut destroyed = Vec::new();
                let owned: Vec<ObjectId> = model
                    .objects
                    .iter()
                    .filter(|(_, o)| o.owner == pid && !o.pending)
                    .map(|(&id, _)| id)
                    .collect();
                for id in owned {
                    model.objects.get_mut(&id).unwrap().pending = true;
                    destroyed.extend(model.destroy_if_unused(id));
                }
                for mapping in process.mappings.values() {
                    if let Some(id) = mapping.object {
                        destroyed.extend(model.destroy_if_unused(id));
                    }
                }
                prop_assert_eq!(released.destroyed_objects, destroyed);
            }
            Op::SetLimit(index, pages) => {
                let pid = pid_of(index);
                let result = vm.set_limit(pid, pages);
                let expected = model
                    .processes
                    .get_mut(&pid)
                    .filter(|p| pages >= p.resident.len() as u64);
                prop_assert_eq!(result.is_ok(), expected.is_some());
                if let Some(process) = expected {
                    process.limit = pages;
                }
            }
            Op::SetHeap(index, pages) => {
                let pid = pid_of(index);
                let result = vm.set_heap_size(pid, pages * PAGE);
                let Some(process) = model.processes.get_mut(&pid) else {
                    prop_assert!(result.is_err());
                    continue;
                };
                if pages > process.limit {
                    process.out_of_memory += 1;
                    prop_assert!(
                        matches!(result, Err(VmError::OutOfMemory { .. })),
                        "{:?}",
                        result
                    );
                    continue;
                }
                let (private, shared) = process.release(
                    HEAP_BASE + pages * PAGE,
                    HEAP_BASE + process.heap_pages.max(pages) * PAGE,
                );
                process.heap_pages = pages;
                prop_assert!(shared.is_empty());
                prop_assert_eq!(result.map(|r| r.private_pages), Ok(private));
            }
            Op::ThreadStarted(index, thread) => {
                let pid = pid_of(index);
                let result = vm.thread_started(pid, thread);
                let Some(process) = model.processes.get_mut(&pid) else {
                    prop_assert!(result.is_err());
                    continue;
                };
                let initial = INITIAL_STACK_BYTES / PAGE;
                if process.threads.contains(&thread) {
                    prop_assert!(result.is_err());
                } else if process.resident.len() as u64 + initial > process.limit {
                    process.out_of_memory += 1;
                    prop_assert!(
                        matches!(result, Err(VmError::OutOfMemory { .. })),
                        "{:?}",
                        result
                    );
                } else {
                    prop_assert_eq!(result, Ok(()));
                    process.threads.insert(thread);
                    let top = STACK_AREA_TOP - u64::from(thread) * STACK_REGION_SIZE;
                    for index in 1..=initial {
                        process.resident.insert(top - index * PAGE, false);
                    }
                    process.peak = process.peak.max(process.resident.len() as u64);
                }
            }
            Op::ThreadExited(index, thread) => {
                let pid = pid_of(index);
                let result = vm.thread_exited(pid, thread);
                let Some(process) = model
                    .processes
                    .get_mut(&pid)
                    .filter(|p| p.threads.contains(&thread))
                else {
                    prop_assert!(result.is_err());
                    continue;
                };
                process.threads.remove(&thread);
                let top = STACK_AREA_TOP - u64::from(thread) * STACK_REGION_SIZE;
                let (private, _) = process.release(top - STACK_REGION_SIZE, top);
                prop_assert_eq!(result.map(|r| r.private_pages), Ok(private));
            }
            Op::MapAnonymous {
                pid: index,
                pages,
                writable,
            } => {
                let pid = pid_of(index);
                let result = vm.map_anonymous(pid, pages * PAGE, writable);
                let Some(process) = model.processes.get_mut(&pid) else {
                    prop_assert!(result.is_err());
                    continue;
                };
                if pages == 0 {
                    prop_assert_eq!(result, Err(VmError::ZeroLength));
                } else if pages > process.limit {
                    process.out_of_memory += 1;
                    prop_assert!(
                        matches!(result, Err(VmError::OutOfMemory { .. })),
                        "{:?}",
                        result
                    );
                } else {
                    let base = process.first_fit(pages).unwrap();
                    prop_assert_eq!(result, Ok(base));
                    process.mappings.insert(
                        base,
                        ModelMapping {
                            bytes: pages * PAGE,
                            writable,
                            object: None,
                        },
                    );
                }
            }
            Op::Unmap {
                pid: index,
                mapping,
                skip,
                pages,
            } => {
                let pid = pid_of(index);
                let Some(process) = model.processes.get_mut(&pid) else {
                    continue;
                };
                if process.mappings.is_empty() {
                    continue;
                }
                let start = *process
                    .mappings
                    .keys()
                    .nth(mapping % process.mappings.len())
                    .unwrap();
                let (address, length) = match pages {
                    Some(pages) => (start + skip * PAGE, pages * PAGE),
                    None => (start, process.mappings[&start].bytes),
                };
                let result = vm.unmap(pid, address, length);
                // `skip` may lead past the chosen mapping, into a hole or the next one.
                let covering = process
                    .mappings
                    .iter()
                    .find(|(&base, m)| base <= address && address < base + m.bytes);
                let Some((&base, chosen)) = covering else {
                    prop_assert!(result.is_err());
                    continue;
                };
                let chosen = chosen.clone();
                let end = address + length;
                let inside = length > 0 && end <= base + chosen.bytes;
                match chosen.object {
                    _ if !inside => {
                        prop_assert!(result.is_err());
                    }
                    Some(_) if address != base || end != base + chosen.bytes => {
                        prop_assert!(
                            matches!(result, Err(VmError::PartialSharedUnmap { .. })),
                            "{:?}",
                            result
                        );
                    }
                    Some(object) => {
                        process.mappings.remove(&base);
                        let (private, shared) = process.release(address, end);
                        let released = result.unwrap();
                        prop_assert_eq!(
                            (released.private_pages, released.shared_pages),
                            (private, shared)
                        );
                        let destroyed: Vec<_> =
                            model.destroy_if_unused(object).into_iter().collect();
                        prop_assert_eq!(released.destroyed_objects, destroyed);
                    }
                    None => {
                        process.mappings.remove(&base);
                        if address > base {
                            process.mappings.insert(
                                base,
                                ModelMapping {
                                    bytes: address - base,
                                    ..chosen.clone()
                                },
                            );
                        }
                        if end < base + chosen.bytes {
                            process.mappings.insert(
                                end,
                                ModelMapping {
                                    bytes: base + chosen.bytes - end,
                                    ..chosen.clone()
                                },
                            );
                        }
                        let (private, _) = process.release(address, end);
                        prop_assert_eq!(result.map(|r| r.private_pages), Ok(private));
                    }
                }
            }
            Op::UnmapAnything {
                pid: index,
                address,
                length,
            } => {
                // Random ranges almost never name a mapping: VM must refuse them and live.
                let pid = pid_of(index);
                let before = vm.process(pid).map(|p| p.mappings().count());
                if vm.unmap(pid, address, length).is_ok() {
                    // Vanishingly unlikely; keep the model honest by resyncing nothing and
                    // failing loudly instead.
                    prop_assert!(false, "random unmap {:#x}+{:#x} succeeded", address, length);
                }
                prop_assert_eq!(vm.process(pid).map(|p| p.mappings().count()), before);
            }
            Op::CreateShared {
                pid: index,
                name,
                pages,
                others_write,
            } => {
                let pid = pid_of(index);
                let others_may = if others_write {
                    OthersMay::ReadWrite
                } else {
                    OthersMay::Read
                };
                let result = vm.create_shared(pid, NAMES[name], pages * PAGE, others_may);
                let taken = model
                    .objects
                    .values()
                    .any(|o| !o.pending && o.name == NAMES[name]);
                if !model.processes.contains_key(&pid) || taken || pages == 0 {
                    prop_assert!(result.is_err());
                } else {
                    let id = ObjectId(model.next_object);
                    model.next_object += 1;
                    prop_assert_eq!(result, Ok(id));
                    let object = ModelObject {
                        name: NAMES[name].to_vec(),
                        owner: pid,
                        pages,
                        others_write,
                        resident: BTreeSet::new(),
                        pending: false,
                    };
                    model.objects.insert(id, object);
                }
            }
            Op::MapShared {
                pid: index,
                object,
                writable,
            } => {
                let (pid, object) = (pid_of(index), ObjectId(object));
                let result = vm.map_shared(pid, object, writable);
                let allowed = model
                    .objects
                    .get(&object)
                    .filter(|o| !o.pending && (!writable || o.owner == pid || o.others_write));
                let (Some(process), Some(shared)) = (model.processes.get_mut(&pid), allowed) else {
                    prop_assert!(result.is_err());
                    continue;
                };
                if shared.pages > process.limit {
                    process.out_of_memory += 1;
                    prop_assert!(
                        matches!(result, Err(VmError::OutOfMemory { .. })),
                        "{:?}",
                        result
                    );
                    continue;
                }
                let base = process.first_fit(shared.pages).unwrap();
                prop_assert_eq!(result, Ok(base));
                process.mappings.insert(
                    base,
                    ModelMapping {
                        bytes: shared.pages * PAGE,
                        writable,
                        object: Some(object),
                    },
                );
            }
            Op::DestroyShared { pid: index, object } => {
                let (pid, object) = (pid_of(index), ObjectId(object));
                let result = vm.destroy_shared(pid, object);
                let mine = model.processes.contains_key(&pid)
                    && model
                        .objects
                        .get(&object)
                        .is_some_and(|o| o.owner == pid && !o.pending);
                if !mine {
                    prop_assert!(result.is_err());
                    continue;
                }
                model.objects.get_mut(&object).unwrap().pending = true;
                let destroyed: Vec<_> = model.destroy_if_unused(object).into_iter().collect();
                prop_assert_eq!(result.map(|r| r.destroyed_objects), Ok(destroyed));
            }
            Op::Fault {
                pid: index,
                place,
                offset,
                access,
                kernel_maps,
            } => {
                let pid = pid_of(index);
                let address = address_of(place, offset);
                let page = address & !(PAGE - 1);
                let result = vm.fault(pid, address, access);
                let Some(process) = model.processes.get_mut(&pid) else {
                    prop_assert_eq!(result, Err(VmError::UnknownProcess(pid)));
                    continue;
                };
                let expected = match process.region_page(page) {
                    Err(reason) => Ok(Decision::Invalid(reason)),
                    Ok(_) if access == Access::Execute => {
                        Ok(Decision::Invalid(InvalidReason::Execute))
                    }
                    Ok(region) if access == Access::Write && !region.writable => {
                        Ok(Decision::Invalid(InvalidReason::WriteToReadOnly))
                    }
                    Ok(_) if process.resident.contains_key(&page) => {
                        Ok(Decision::Invalid(InvalidReason::Protection))
                    }
                    Ok(_) if process.resident.len() as u64 >= process.limit => Err(()),
                    Ok(RegionPage {
                        writable,
                        object: None,
                    }) => Ok(Decision::MapZero { page, writable }),
                    Ok(RegionPage {
                        writable,
                        object: Some((object, object_page)),
                    }) => {
                        if model.objects[&object].resident.contains(&object_page) {
                            Ok(Decision::MapShared {
                                object,
                                object_page,
                                page,
                                writable,
                            })
                        } else {
                            Ok(Decision::MapZeroShared {
                                object,
                                object_page,
                                page,
                                writable,
                            })
                        }
                    }
                };
                match expected {
                    Err(()) => {
                        process.out_of_memory += 1;
                        prop_assert!(
                            matches!(result, Err(VmError::OutOfMemory { .. })),
                            "{:?}",
                            result
                        );
                    }
                    Ok(Decision::Invalid(reason)) => {
                        process.invalid += 1;
                        prop_assert_eq!(result, Ok(Decision::Invalid(reason)));
                    }
                    Ok(decision) => {
                        prop_assert_eq!(result, Ok(decision));
                        if !kernel_maps {
                            prop_assert_eq!(vm.map_failed(pid, page), Ok(()));
                            process.map_failures += 1;
                            continue;
                        }
                        prop_assert_eq!(vm.mapped(pid, page), Ok(()));
                        let shared = !matches!(decision, Decision::MapZero { .. });
                        process.resident.insert(page, shared);
                        process.peak = process.peak.max(process.resident.len() as u64);
                        if shared {
                            process.shared += 1;
                        } else {
                            process.demand_zero += 1;
                        }
                        if let Decision::MapZeroShared {
                            object,
                            object_page,
                            ..
                        } = decision
                        {
                            model
                                .objects
                                .get_mut(&object)
                                .unwrap()
                                .resident
                                .insert(object_page);
                        }
                    }
                }
            }
        }
        check_invariants(&vm)?;
        check_against_model(&vm, &model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn vm_matches_a_page_by_page_model(ops in proptest::collection::vec(op(), 1..120)) {
        // Most rules need a live process with memory: start from three of them, each with
        // a heap and a main thread, then do anything.
        let mut all: Vec<Op> = (0..PIDS.len())
            .flat_map(|pid| [Op::CreateProcess(pid), Op::SetHeap(pid, 6), Op::ThreadStarted(pid, 0)])
            .collect();
        all.extend(ops);
        run(all)?;
    }
}
