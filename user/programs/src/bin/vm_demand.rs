//! `vm_demand`: heap pages come from the VM server on first touch — touching N fresh heap
//! pages raises the process's resident pages (kernel snapshot) by exactly N, and its page
//! faults by N; the snapshot's peak is at least the resident count and its virtual size is
//! VM's. Prints `vm_demand: PASS …` and shuts the machine down.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use vigil_rt::abi::introspect::ProcessRecord;
use vigil_rt::abi::vm::PAGE_SIZE;
use vigil_rt::{introspect, ipc, println, syscall, vm};

vigil_rt::entry!(main);

/// Heap pages touched.
const PAGES: usize = 256;

/// This process's record in a kernel snapshot.
fn record() -> Result<ProcessRecord, &'static str> {
    let me = ipc::self_endpoint();
    let snapshot = introspect::snapshot().map_err(|_| "snapshot failed")?;
    snapshot
        .processes
        .iter()
        .find(|process| process.main_thread == me)
        .copied()
        .ok_or("no record of this process")
}

/// This process's resident pages, from a kernel snapshot.
fn resident() -> Result<u64, &'static str> {
    record().map(|record| record.memory_pages)
}

/// The kernel's VM figures agree with the faults taken and with VM's own: `faults` more page
/// faults than at `before`, a peak at least the resident count, VM's virtual size.
fn check_figures(before: &ProcessRecord, faults: u64) -> Result<(), &'static str> {
    let after = record()?;
    if after.page_faults - before.page_faults != faults {
        return Err("the snapshot's page_faults did not grow by the pages touched");
    }
    if after.peak_memory_pages < after.memory_pages || after.peak_memory_pages == 0 {
        return Err("the snapshot's peak_memory_pages is below memory_pages");
    }
    let stats = vm::stats().map_err(|_| "VM's STATS request failed")?;
    if after.virtual_bytes == 0 || after.virtual_bytes != stats.virtual_bytes {
        return Err("the snapshot's virtual_bytes differs from VM's figure");
    }
    Ok(())
}

fn run() -> Result<(u64, u64), &'static str> {
    let page = PAGE_SIZE as usize;
    // Reserved but untouched: the allocator writes only its bookkeeping at the edges.
    let mut block: Vec<u8> = Vec::with_capacity((PAGES + 2) * page);
    let spare = block.spare_capacity_mut();
    let first = (page - spare.as_ptr() as usize % page) % page + page;
    // Warm up: the snapshot's own buffers become resident before the measurement.
    resident()?;
    let before_record = record()?;
    let before = before_record.memory_pages;
    for i in 0..PAGES {
        let byte = &mut spare[first + i * page];
        byte.write(0xa5);
    }
    let after = resident()?;
    check_figures(&before_record, PAGES as u64)?;
    Ok((before, after))
}

fn main(_args: &str) -> i32 {
    let status = match run() {
        Ok((before, after)) if after - before == PAGES as u64 => {
            println!(
                "vm_demand: PASS touched {PAGES} heap pages: resident {before} -> {after} (+{})",
                after - before
            );
            0
        }
        Ok((before, after)) => {
            println!(
                "vm_demand: FAIL touched {PAGES} heap pages but resident went {before} -> {after}"
            );
            1
        }
        Err(reason) => {
            println!("vm_demand: FAIL {reason}");
            1
        }
    };
    let _ = syscall::shutdown(status);
    status as i32
}
