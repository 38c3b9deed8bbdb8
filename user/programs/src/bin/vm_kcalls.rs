//! `vm_kcalls`: the kernel's shared-frame mechanism, driven directly through the memory
//! kernel calls (booted with `kcalls=vm+snapshot+shutdown` and `mem=16M`, not as the VM
//! server, in a part of its own mapping area VM never uses for it).
//!
//! A view made with `VmMapShared` sees the source's frames (writes either way are seen both
//! ways) and costs no frame; each bad call is refused with its own error and changes
//! nothing (an unknown pid, a source page not mapped, a writable view of a read-only page,
//! a target page already mapped, bad ranges and flags); unmapping the source keeps the
//! frames alive for the view, and unmapping the view frees them (free frames back at the
//! baseline exactly). `VmLimitOf` reports the boot table's `mem=`. Prints
//! `vm_kcalls: PASS …` and shuts down.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use vigil_rt::abi::syscall::{KernelCall, KernelCallTrapArgs, Syscall};
use vigil_rt::abi::vm::{MapFlags, PageRange, Pid, SharedRanges, PAGE_SIZE};
use vigil_rt::{introspect, ipc, println, syscall, Error};

vigil_rt::entry!(main);

/// Where the source, the view and a read-only page go (high in the mapping area, far from
/// VM's first-fit placements).
const SOURCE: u64 = 0x6000_0000_0000;
const VIEW: u64 = 0x6000_0010_0000;
const READ_ONLY: u64 = 0x6000_0020_0000;
/// Where refused calls aim (never mapped).
const SPARE: u64 = 0x6000_0030_0000;
const PAGES: u64 = 4;

fn free_frames() -> Result<u64, String> {
    introspect::snapshot()
        .map(|snapshot| snapshot.header.free_frames)
        .map_err(|e| format!("snapshot: {e}"))
}

fn range(start: u64, pages: u64) -> Result<PageRange, String> {
    PageRange::new(start, pages).map_err(|e| format!("range {start:#x}+{pages}: {e}"))
}

fn ranges(source: u64, target: u64, pages: u64) -> Result<SharedRanges, String> {
    SharedRanges::new(source, target, pages).map_err(|e| format!("ranges: {e}"))
}

fn read(address: u64) -> u64 {
    // SAFETY: the caller names a page this program mapped with VmMap/VmMapShared.
    unsafe { (address as *const u64).read_volatile() }
}

fn write(address: u64, value: u64) {
    // SAFETY: the caller names a writable page this program mapped with VmMap.
    unsafe { (address as *mut u64).write_volatile(value) }
}

/// `VmMapShared` with raw registers (to hand the kernel what a typed call cannot).
fn map_shared_raw(registers: [u64; 5]) -> Result<u64, Error> {
    let r = KernelCallTrapArgs {
        call: KernelCall::VmMapShared as u64,
        arguments: vigil_rt::abi::syscall::KernelCallRegisters(registers),
    }
    .encode();
    // SAFETY: VmMapShared reads no memory of the caller through its registers.
    Error::from_return_value(unsafe {
        syscall::syscall6(
            Syscall::KernelCall as u64,
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
        )
    })
}

fn run(expected_limit: u64) -> Result<String, String> {
    let me =
        syscall::vm_process_of(ipc::self_endpoint()).map_err(|e| format!("own pid: {e}"))? as u32;
    let me = Pid(me);
    let limit = syscall::vm_limit_of(me).map_err(|e| format!("VmLimitOf: {e}"))?;
    if limit != expected_limit {
        return Err(format!(
            "VmLimitOf says {limit} pages, the boot table {expected_limit}"
        ));
    }
    vigil_programs::expect_refusal(
        "VmLimitOf of no process",
        syscall::vm_limit_of(Pid(999_999)),
        Error::NotFound,
    )?;
    let rw = MapFlags::WRITABLE;
    let ro = MapFlags::READ_ONLY;
    // Warm up: the page tables of all three places exist from here on.
    syscall::vm_map(me, range(SOURCE, PAGES)?, rw).map_err(|e| format!("warm map: {e}"))?;
    syscall::vm_map(me, range(READ_ONLY, 1)?, ro).map_err(|e| format!("map read-only: {e}"))?;
    syscall::vm_map_shared(me, me, ranges(SOURCE, VIEW, PAGES)?, ro)
        .map_err(|e| format!("warm view: {e}"))?;
    syscall::vm_unmap(me, range(VIEW, PAGES)?).map_err(|e| format!("warm unmap: {e}"))?;
    syscall::vm_unmap(me, range(SOURCE, PAGES)?).map_err(|e| format!("warm unmap: {e}"))?;
    free_frames()?;
    let baseline = free_frames()?;

    syscall::vm_map(me, range(SOURCE, PAGES)?, rw).map_err(|e| format!("map source: {e}"))?;
    for page in 0..PAGES {
        write(SOURCE + page * PAGE_SIZE, 0x5eed_0000 + page);
    }
    let mapped = free_frames()?;
    if mapped != baseline - PAGES {
        return Err(format!(
            "mapping {PAGES} pages: free {baseline} -> {mapped}"
        ));
    }
    syscall::vm_map_shared(me, me, ranges(SOURCE, VIEW, PAGES)?, ro)
        .map_err(|e| format!("view: {e}"))?;
    if free_frames()? != mapped {
        return Err("a view cost frames".into());
    }
    for page in 0..PAGES {
        let found = read(VIEW + page * PAGE_SIZE);
        if found != 0x5eed_0000 + page {
            return Err(format!("view page {page} reads {found:#x}"));
        }
    }
    write(SOURCE + 8, 42);
    if read(VIEW + 8) != 42 {
        return Err("a write through the source is not seen through the view".into());
    }
    // Bad calls: refused, nothing changes.
    let source_pages =
        || syscall::vm_query(me, range(SOURCE, PAGES).unwrap_or_else(|_| unreachable!()));
    let cases: [(&str, Result<u64, Error>, Error); 10] = [
        (
            "a target page already mapped",
            syscall::vm_map_shared(me, me, ranges(SOURCE, VIEW, PAGES)?, ro),
            Error::Exists,
        ),
        (
            "a source page not mapped",
            syscall::vm_map_shared(me, me, ranges(SOURCE, SPARE, PAGES + 1)?, ro),
            Error::Fault,
        ),
        (
            "a writable view of a read-only page",
            syscall::vm_map_shared(me, me, ranges(READ_ONLY, SPARE, 1)?, rw),
            Error::PermissionDenied,
        ),
        (
            "an unknown target pid",
            syscall::vm_map_shared(me, Pid(999_999), ranges(SOURCE, VIEW, PAGES)?, ro),
            Error::NotFound,
        ),
        (
            "an unknown source pid",
            syscall::vm_map_shared(Pid(999_999), me, ranges(SOURCE, VIEW, PAGES)?, ro),
            Error::NotFound,
        ),
        (
            "an unknown flag bit",
            map_shared_raw([u64::from(me.0) * 0x1_0000_0001, SOURCE, SPARE, 1, 2]),
            Error::InvalidArgument,
        ),
        (
            "a target in kernel space",
            map_shared_raw([
                u64::from(me.0) * 0x1_0000_0001,
                SOURCE,
                0xffff_8000_0000_0000,
                1,
                0,
            ]),
            Error::Fault,
        ),
        (
            "a target that wraps around",
            map_shared_raw([u64::from(me.0) * 0x1_0000_0001, SOURCE, !0xfff, 2, 0]),
            Error::Fault,
        ),
        (
            "an unaligned source",
            map_shared_raw([u64::from(me.0) * 0x1_0000_0001, SOURCE + 8, SPARE, 1, 0]),
            Error::InvalidArgument,
        ),
        (
            "513 pages",
            map_shared_raw([u64::from(me.0) * 0x1_0000_0001, SOURCE, SPARE, 513, 0]),
            Error::InvalidArgument,
        ),
    ];
    for (what, result, wanted) in cases {
        vigil_programs::expect_refusal(what, result, wanted)?;
    }
    let untouched =
        syscall::vm_query(me, range(SPARE, PAGES + 1)?).map_err(|e| format!("query: {e}"))?;
    if untouched != 0 || source_pages() != Ok(PAGES) || free_frames()? != mapped {
        return Err(format!(
            "a refused call changed something ({untouched} pages mapped)"
        ));
    }
    // The source goes: the view keeps the frames (and their contents).
    syscall::vm_unmap(me, range(SOURCE, PAGES)?).map_err(|e| format!("unmap source: {e}"))?;
    let kept = free_frames()?;
    if kept != mapped || read(VIEW + 8) != 42 || read(VIEW + PAGE_SIZE) != 0x5eed_0001 {
        return Err(format!(
            "after unmapping the source: free {kept} (was {mapped}), or the view lost its data"
        ));
    }
    // The view goes: the frames are free.
    syscall::vm_unmap(me, range(VIEW, PAGES)?).map_err(|e| format!("unmap view: {e}"))?;
    let last = free_frames()?;
    if last != baseline {
        return Err(format!(
            "after unmapping the view: free {last}, baseline {baseline}"
        ));
    }
    syscall::vm_unmap(me, range(READ_ONLY, 1)?).map_err(|e| format!("unmap read-only: {e}"))?;
    Ok(format!(
        "free frames {baseline} -> {mapped} (source) -> {mapped} (view) -> {kept} (source unmapped) -> {last} (view unmapped); 10 bad calls refused; limit {limit} pages"
    ))
}

fn main(args: &str) -> i32 {
    let expected = args.trim().parse().unwrap_or(0);
    let status = match run(expected) {
        Ok(summary) => {
            println!("vm_kcalls: PASS {summary}");
            0
        }
        Err(reason) => {
            println!("vm_kcalls: FAIL {reason}");
            1
        }
    };
    let _ = syscall::shutdown(status);
    status as i32
}
