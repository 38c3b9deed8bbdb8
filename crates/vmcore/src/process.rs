//! One process's memory map: heap, thread stacks, mappings, the pages VM counts resident.
//!
//! Everything here is bookkeeping of one process; rules that involve shared objects or the
//! decision protocol live in [`crate::Vm`].

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use vigil_abi::layout::{
    HEAP_BASE, INITIAL_STACK_BYTES, MAPPING_AREA_END, MAPPING_AREA_START, STACK_AREA_TOP,
    STACK_REGION_SIZE, USER_END, USER_IMAGE_END, USER_IMAGE_MIN,
};

use crate::error::InvalidReason;
use crate::{ObjectId, Released, MAX_THREADS, PAGE_SIZE};

/// Lowest address of the stack area: the bottom of the last thread slot's region.
pub(crate) const STACK_AREA_BOTTOM: u64 = STACK_AREA_TOP - MAX_THREADS as u64 * STACK_REGION_SIZE;
/// First address of the kernel half (canonical addresses with bit 47 set).
const KERNEL_HALF_START: u64 = 0xffff_8000_0000_0000;

const _: () = assert!(STACK_AREA_BOTTOM >= MAPPING_AREA_END);
const _: () = assert!(INITIAL_STACK_BYTES.is_multiple_of(PAGE_SIZE));
const _: () = assert!(INITIAL_STACK_BYTES < STACK_REGION_SIZE - PAGE_SIZE);

/// A region a process asked VM for in the mapping area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// First address (page aligned).
    pub base: u64,
    /// Length in bytes (a non-zero page multiple).
    pub bytes: u64,
    /// What backs it.
    pub kind: MappingKind,
}

impl Mapping {
    /// End (exclusive).
    pub fn end(&self) -> u64 {
        self.base + self.bytes
    }

    /// Whether the process may write it.
    pub fn writable(&self) -> bool {
        match self.kind {
            MappingKind::Anonymous { writable } | MappingKind::Shared { writable, .. } => writable,
        }
    }
}

/// What backs a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MappingKind {
    /// Private demand-zero memory.
    Anonymous { writable: bool },
    /// A view of the whole of shared object `object`.
    Shared { object: ObjectId, writable: bool },
}

/// What backs a resident page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Residency {
    /// A frame of the process's own.
    Private,
    /// A frame belonging to a shared object.
    Shared,
}

/// Where a fault address falls and what mapping it would get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub writable: bool,
    /// For a shared mapping: the object and the object page the address is in.
    pub object: Option<(ObjectId, u64)>,
}

/// Counters VM keeps per process (a snapshot, see [`ProcessMemory::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Pages mapped into the process that VM counts (private and shared).
    pub resident_pages: u64,
    /// Of those, pages whose frame belongs to a shared object.
    pub shared_resident_pages: u64,
    /// The most pages ever resident at once.
    pub peak_resident_pages: u64,
    /// Sum of the sizes of the process's regions (heap, stack regions, mappings), in bytes.
    pub virtual_bytes: u64,
    /// The memory limit: resident pages never exceed it.
    pub limit_pages: u64,
    /// Faults resolved by mapping a zeroed private page (heap, stack growth, anonymous).
    pub demand_zero_faults: u64,
    /// Faults resolved by mapping a shared object's page (first touch included).
    pub shared_faults: u64,
    /// Faults VM judged invalid (protection faults included).
    pub invalid_faults: u64,
    /// Faults and requests refused because of the memory limit.
    pub out_of_memory: u64,
    /// Maps VM decided that the kernel then failed to make.
    pub map_failures: u64,
}

/// The memory map of one process.
#[derive(Clone, Debug)]
pub struct ProcessMemory {
    pub(crate) heap_bytes: u64,
    pub(crate) threads: BTreeSet<u32>,
    pub(crate) mappings: BTreeMap<u64, Mapping>,
    pub(crate) resident: BTreeMap<u64, Residency>,
    pub(crate) stats: MemoryStats,
}

impl ProcessMemory {
    pub(crate) fn new(limit_pages: u64) -> ProcessMemory {
        ProcessMemory {
            heap_bytes: 0,
            threads: BTreeSet::new(),
            mappings: BTreeMap::new(),
            resident: BTreeMap::new(),
            stats: MemoryStats {
                limit_pages,
                ..MemoryStats::default()
            },
        }
    }

    /// Size of the heap region `[HEAP_BASE, HEAP_BASE + heap_bytes)`.
    pub fn heap_bytes(&self) -> u64 {
        self.heap_bytes
    }

    /// Indices of the threads whose stack regions exist.
    pub fn threads(&self) -> impl Iterator<Item = u32> + '_ {
        self.threads.iter().copied()
    }

    /// The mappings, by base address.
    pub fn mappings(&self) -> impl Iterator<Item = &Mapping> + '_ {
        self.mappings.values()
    }

    /// Whether VM counts the page containing `address` resident.
    pub fn is_resident(&self, address: u64) -> bool {
        self.resident.contains_key(&page_of(address))
    }

    /// Resident pages in ascending order.
    pub fn resident_pages(&self) -> impl Iterator<Item = u64> + '_ {
        self.resident.keys().copied()
    }

    /// The counters, with the virtual size computed now.
    pub fn stats(&self) -> MemoryStats {
        MemoryStats {
            virtual_bytes: self.virtual_bytes(),
            ..self.stats
        }
    }

    /// Sum of region sizes. Cannot overflow: the regions are disjoint parts of the user half.
    fn virtual_bytes(&self) -> u64 {
        let stacks = self.threads.len() as u64 * STACK_REGION_SIZE;
        let mappings: u64 = self.mappings.values().map(|mapping| mapping.bytes).sum();
        self.heap_bytes + stacks + mappings
    }

    /// Pages the process may still have made resident before reaching its limit.
    pub(crate) fn headroom(&self) -> u64 {
        self.stats
            .limit_pages
            .saturating_sub(self.stats.resident_pages)
    }

    /// Counts `page` resident.
    pub(crate) fn make_resident(&mut self, page: u64, residency: Residency) {
        if self.resident.insert(page, residency).is_none() {
            self.stats.resident_pages += 1;
            if residency == Residency::Shared {
                self.stats.shared_resident_pages += 1;
            }
            self.stats.peak_resident_pages = self
                .stats
                .peak_resident_pages
                .max(self.stats.resident_pages);
        }
    }

    /// Stops counting every resident page in `[start, end)`, listing it in `released`.
    pub(crate) fn release_range(&mut self, start: u64, end: u64, released: &mut Released) {
        let pages: Vec<(u64, Residency)> = self
            .resident
            .range(start..end)
            .map(|(&page, &residency)| (page, residency))
            .collect();
        for (page, residency) in pages {
            self.resident.remove(&page);
            self.stats.resident_pages -= 1;
            match residency {
                Residency::Private => released.private_pages.push(page),
                Residency::Shared => {
                    self.stats.shared_resident_pages -= 1;
                    released.shared_pages.push(page);
                }
            }
        }
    }

    /// The mapping containing `address`, if any.
    pub(crate) fn mapping_at(&self, address: u64) -> Option<&Mapping> {
        self.mappings
            .range(..=address)
            .next_back()
            .map(|(_, mapping)| mapping)
            .filter(|mapping| address < mapping.end())
    }

    /// First free `bytes`-long range of the mapping area, lowest address first.
    pub(crate) fn first_fit(&self, bytes: u64) -> Option<u64> {
        let mut candidate = MAPPING_AREA_START;
        for mapping in self.mappings.values() {
            if mapping.base.checked_sub(candidate)? >= bytes {
                return Some(candidate);
            }
            candidate = mapping.end();
        }
        (MAPPING_AREA_END.checked_sub(candidate)? >= bytes).then_some(candidate)
    }

    /// Which region `address` is in and how it may be mapped, or why it is no place to map.
    pub(crate) fn locate(&self, address: u64) -> Result<Target, InvalidReason> {
        let private = |writable| {
            Ok(Target {
                writable,
                object: None,
            })
        };
        if address >= USER_END {
            return Err(if address >= KERNEL_HALF_START {
                InvalidReason::KernelAddress
            } else {
                InvalidReason::NonCanonical
            });
        }
        if (USER_IMAGE_MIN..USER_IMAGE_END).contains(&address) {
            return Err(InvalidReason::Image);
        }
        if address >= HEAP_BASE && address - HEAP_BASE < self.heap_bytes {
            return private(true);
        }
        if (STACK_AREA_BOTTOM..STACK_AREA_TOP).contains(&address) {
            let slot = ((STACK_AREA_TOP - 1 - address) / STACK_REGION_SIZE) as u32;
            if self.threads.contains(&slot) {
                let lowest_address = stack_region_base(slot) + PAGE_SIZE;
                if address < lowest_address {
                    return Err(InvalidReason::StackOverflow {
                        thread: slot,
                        lowest_address,
                    });
                }
                return private(true);
            }
            // Below a stack's guard page, in a slot no thread uses: the stack above ran
            // past its guard page (a frame larger than a page skips it).
            if let Some(above) = slot
                .checked_sub(1)
                .filter(|above| self.threads.contains(above))
            {
                let lowest_address = stack_region_base(above) + PAGE_SIZE;
                return Err(InvalidReason::StackOverflow {
                    thread: above,
                    lowest_address,
                });
            }
            return Err(InvalidReason::NotMapped);
        }
        match self.mapping_at(address) {
            Some(mapping) => Ok(Target {
                writable: mapping.writable(),
                object: match mapping.kind {
                    MappingKind::Anonymous { .. } => None,
                    MappingKind::Shared { object, .. } => {
                        Some((object, (page_of(address) - mapping.base) / PAGE_SIZE))
                    }
                },
            }),
            None => Err(InvalidReason::NotMapped),
        }
    }
}

/// The page containing `address`.
pub(crate) fn page_of(address: u64) -> u64 {
    address & !(PAGE_SIZE - 1)
}

/// Lowest address of thread `thread`'s stack region (its guard page). `thread < MAX_THREADS`.
pub(crate) fn stack_region_base(thread: u32) -> u64 {
    STACK_AREA_TOP - (u64::from(thread) + 1) * STACK_REGION_SIZE
}

/// End (exclusive) of thread `thread`'s stack region. `thread < MAX_THREADS`.
pub(crate) fn stack_region_top(thread: u32) -> u64 {
    STACK_AREA_TOP - u64::from(thread) * STACK_REGION_SIZE
}
