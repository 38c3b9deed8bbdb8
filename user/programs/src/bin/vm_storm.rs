//! `vm_storm`: memory through the VM server, judged by the kernel's own figures.
//!
//! `vm_storm` (the judge): asks VM for a 64 MiB anonymous mapping and touches every page —
//! the kernel's resident count for the process must rise by exactly 16,384 pages and VM's
//! figures agree; unmapping it gives every frame back (the snapshot's free frames return to
//! where they were); 1,000 map/touch/unmap cycles leave free frames unchanged; bad requests
//! (sizes, ranges, flags, names, unknown objects, kernel calls it may not make) get clear
//! errors and VM keeps serving. Prints `vm_storm: PASS …` and shuts down.
//! `vm_storm readonly`: maps a read-only region, reads it (zero), then writes it — VM
//! refuses the write and the kernel kills the process.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use vigil_rt::abi::vm::{MapFlags, PageRange, Pid, SharedRanges, ShmName, PAGE_SIZE};
use vigil_rt::{introspect, ipc, println, syscall, vm, Error};

vigil_rt::entry!(main);

/// The storm: 64 MiB.
const STORM_BYTES: u64 = 64 << 20;
const CYCLES: u32 = 1000;

/// (this process's resident pages, free frames) from a kernel snapshot.
fn kernel_figures() -> Result<(u64, u64), String> {
    let me = ipc::self_endpoint();
    let snapshot = introspect::snapshot().map_err(|e| format!("snapshot: {e}"))?;
    let resident = snapshot
        .processes
        .iter()
        .find(|process| process.main_thread == me)
        .map(|process| process.memory_pages)
        .ok_or("no record of this process")?;
    Ok((resident, snapshot.header.free_frames))
}

/// Touches one byte of every page of `[base, base + bytes)`.
fn touch(base: u64, bytes: u64) {
    for page in 0..bytes / PAGE_SIZE {
        let address = (base + page * PAGE_SIZE) as *mut u8;
        // SAFETY: VM mapped [base, base + bytes) for this process, writable and not
        // otherwise used; the first touch of each page faults it in through VM.
        unsafe { address.write_volatile(page as u8) };
    }
}

fn storm() -> Result<String, String> {
    // Warm up the snapshot's buffers so they do not count as the storm's pages.
    kernel_figures()?;
    let (resident_before, free_before) = kernel_figures()?;
    let vm_before = vm::stats().map_err(|e| format!("stats: {e}"))?;
    let base = vm::map_anonymous(STORM_BYTES, true).map_err(|e| format!("map 64 MiB: {e}"))?;
    let (resident_mapped, _) = kernel_figures()?;
    if resident_mapped != resident_before {
        return Err(format!(
            "mapping alone made {} pages resident",
            resident_mapped - resident_before
        ));
    }
    touch(base, STORM_BYTES);
    let (resident_after, _) = kernel_figures()?;
    let vm_after = vm::stats().map_err(|e| format!("stats: {e}"))?;
    let pages = STORM_BYTES / PAGE_SIZE;
    if resident_after - resident_before != pages {
        return Err(format!(
            "touched {pages} pages but resident went {resident_before} -> {resident_after}"
        ));
    }
    let vm_faults = vm_after.demand_zero_faults - vm_before.demand_zero_faults;
    if vm_faults != pages || vm_after.resident_pages - vm_before.resident_pages != pages {
        return Err(format!(
            "VM counted {vm_faults} faults, resident {} -> {}",
            vm_before.resident_pages, vm_after.resident_pages
        ));
    }
    vm::unmap(base, STORM_BYTES).map_err(|e| format!("unmap: {e}"))?;
    let (resident_unmapped, free_unmapped) = kernel_figures()?;
    // Every page's frame is back; the page tables of the area stay until the process exits
    // (one per 2 MiB, and the two above them).
    let tables = STORM_BYTES / (2 << 20) + 2;
    let kept = free_before - free_unmapped;
    if resident_unmapped != resident_before || kept > tables {
        return Err(format!(
            "after unmapping: resident {resident_unmapped} (was {resident_before}), free frames {free_unmapped} (was {free_before}, at most {tables} page tables may stay)"
        ));
    }
    // Many small cycles leave nothing behind: after the first, free frames never move.
    let first = vm::map_anonymous(2 * PAGE_SIZE, true).map_err(|e| format!("cycle 0: map: {e}"))?;
    touch(first, 2 * PAGE_SIZE);
    vm::unmap(first, 2 * PAGE_SIZE).map_err(|e| format!("cycle 0: unmap: {e}"))?;
    let (_, free_cycles_start) = kernel_figures()?;
    for cycle in 1..CYCLES {
        let region = vm::map_anonymous(2 * PAGE_SIZE, true)
            .map_err(|e| format!("cycle {cycle}: map: {e}"))?;
        touch(region, 2 * PAGE_SIZE);
        vm::unmap(region, 2 * PAGE_SIZE).map_err(|e| format!("cycle {cycle}: unmap: {e}"))?;
    }
    let (_, free_cycled) = kernel_figures()?;
    if free_cycled != free_cycles_start {
        return Err(format!(
            "after {CYCLES} cycles: free frames {free_cycled} (was {free_cycles_start})"
        ));
    }
    // Bad requests: each refused, and VM still serves afterwards.
    vigil_programs::expect_refusal(
        "a size that is not a page multiple",
        vm::map_anonymous(4097, true),
        Error::InvalidArgument,
    )?;
    vigil_programs::expect_refusal(
        "a zero size",
        vm::map_anonymous(0, true),
        Error::InvalidArgument,
    )?;
    vigil_programs::expect_refusal(
        "more than the mapping area",
        vm::map_anonymous(1 << 46, true),
        Error::OutOfResources,
    )?;
    vigil_programs::expect_refusal(
        "unmapping a kernel address",
        vm::unmap(0xffff_8000_0000_0000, PAGE_SIZE),
        Error::Fault,
    )?;
    vigil_programs::expect_refusal(
        "unmapping memory that is not mapped",
        vm::unmap(0x3000_0000_0000, PAGE_SIZE),
        Error::NotFound,
    )?;
    vigil_programs::expect_refusal(
        "unmapping an unaligned address",
        vm::unmap(base + 1, PAGE_SIZE),
        Error::InvalidArgument,
    )?;
    let refused = 6 + bad_shared_requests(base)?;
    let last =
        vm::map_anonymous(PAGE_SIZE, true).map_err(|e| format!("VM stopped serving: {e}"))?;
    touch(last, PAGE_SIZE);
    Ok(format!(
        "{pages} pages touched = +{pages} resident (VM agrees: {vm_faults} demand-zero faults); unmapped: every frame back ({kept} page-table frames kept until exit); {CYCLES} map/unmap cycles: unchanged; {refused} bad requests refused"
    ))
}

/// Bad shared-memory, flag and kernel-call requests: each refused with its own error, and
/// VM keeps serving. Returns how many.
fn bad_shared_requests(unmapped: u64) -> Result<u32, String> {
    let name = |text: &str| ShmName::new(text.as_bytes()).map(|n| n.to_words());
    let words = name("storm").map_err(|e| format!("name: {e}"))?;
    let raw_create = |words: [u64; 4], bytes: u64, flags: u64| {
        vm::shm_create_raw([words[0], words[1], words[2], words[3], bytes, flags])
    };
    let cases: [(&str, Result<u64, Error>, Error); 16] = [
        (
            "MAP_ANONYMOUS with an unknown flag bit",
            vm::map_anonymous_with(PAGE_SIZE, 4),
            Error::InvalidArgument,
        ),
        (
            "a populated map past the limit",
            vm::map_populated(256 << 20),
            Error::OutOfResources,
        ),
        (
            "an empty shared-object name",
            raw_create([0; 4], PAGE_SIZE, 0),
            Error::InvalidArgument,
        ),
        (
            "a name with a zero byte inside",
            raw_create([u64::from(b'a'), u64::from(b'b'), 0, 0], PAGE_SIZE, 0),
            Error::InvalidArgument,
        ),
        (
            "a shared object of 4097 bytes",
            raw_create(words, 4097, 0),
            Error::InvalidArgument,
        ),
        (
            "a shared object of 0 bytes",
            raw_create(words, 0, 0),
            Error::InvalidArgument,
        ),
        (
            "a shared object of 128 MiB",
            raw_create(words, 128 << 20, 0),
            Error::InvalidArgument,
        ),
        (
            "SHM_CREATE with an unknown flag bit",
            raw_create(words, PAGE_SIZE, 2),
            Error::InvalidArgument,
        ),
        (
            "mapping an unknown name",
            vm::shm_map("no-such-object", false).map(|m| m.base),
            Error::NotFound,
        ),
        (
            "SHM_MAP with an unknown flag bit",
            vm::shm_map_raw(words, 2).map(|m| m.base),
            Error::InvalidArgument,
        ),
        (
            "destroying an unknown object id",
            vm::shm_destroy(999_999).map(|()| 0),
            Error::NotFound,
        ),
        (
            "destroying an id beyond 32 bits",
            vm::shm_destroy(1 << 40).map(|()| 0),
            Error::NotFound,
        ),
        (
            "unmapping a wrapping range",
            vm::unmap(!0xfff, 2 * PAGE_SIZE).map(|()| 0),
            Error::Fault,
        ),
        (
            "unmapping what is no longer mapped",
            vm::unmap(unmapped, PAGE_SIZE).map(|()| 0),
            Error::NotFound,
        ),
        (
            "VmMap from a process without the vm kernel calls",
            PageRange::new(0x6000_0000_0000, 1)
                .and_then(|range| syscall::vm_map(Pid(1), range, MapFlags::WRITABLE)),
            Error::PermissionDenied,
        ),
        (
            "VmMapShared from a process without the vm kernel calls",
            SharedRanges::new(0x6000_0000_0000, 0x6000_0010_0000, 1).and_then(|ranges| {
                syscall::vm_map_shared(Pid(1), Pid(2), ranges, MapFlags::READ_ONLY)
            }),
            Error::PermissionDenied,
        ),
    ];
    let count = cases.len() as u32;
    for (what, result, wanted) in cases {
        vigil_programs::expect_refusal(what, result, wanted)?;
    }
    // A real object: its mapping can only be unmapped whole; its name cannot be taken.
    let object =
        vm::shm_create("storm", 2 * PAGE_SIZE, false).map_err(|e| format!("create: {e}"))?;
    vigil_programs::expect_refusal(
        "a second object of one name",
        vm::shm_create("storm", PAGE_SIZE, false),
        Error::Exists,
    )?;
    let mapping = vm::shm_map("storm", true).map_err(|e| format!("map: {e}"))?;
    vigil_programs::expect_refusal(
        "unmapping half of a shared mapping",
        vm::unmap(mapping.base, PAGE_SIZE),
        Error::InvalidArgument,
    )?;
    vm::unmap(mapping.base, mapping.bytes).map_err(|e| format!("unmap: {e}"))?;
    vm::shm_destroy(object).map_err(|e| format!("destroy: {e}"))?;
    Ok(count + 2)
}

fn read_only() -> ! {
    let base = match vm::map_anonymous(4 * PAGE_SIZE, false) {
        Ok(base) => base,
        Err(error) => {
            println!("vm_storm: FAIL read-only map: {error}");
            syscall::process_exit(1);
        }
    };
    // SAFETY: VM mapped these pages for this process; reading never changes them.
    let value = unsafe { (base as *const u8).read_volatile() };
    println!("read-only page reads {value}; now writing it");
    // SAFETY: the same mapping; the write is meant to fault (VM refuses it).
    unsafe { (base as *mut u8).write_volatile(1) };
    println!("vm_storm: FAIL wrote to a read-only mapping");
    syscall::process_exit(1)
}

fn main(args: &str) -> i32 {
    if args.trim() == "readonly" {
        read_only();
    }
    vigil_programs::finish("vm_storm", storm())
}
