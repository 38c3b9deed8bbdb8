//! `vm_demand`: heap pages come from the VM server on first touch — touching N fresh heap
//! pages raises the process's resident pages (kernel snapshot) by exactly N. Prints `vm_demand: PASS …` and shuts the machine down.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use vigil_rt::abi::vm::PAGE_SIZE;
use vigil_rt::{introspect, ipc, println, syscall};

vigil_rt::entry!(main);

/// Heap pages touched.
const PAGES: usize = 256;

/// This process's resident pages, from a kernel snapshot.
fn resident() -> Result<u64, &'static str> {
    let me = ipc::self_endpoint();
    let snapshot = introspect::snapshot().map_err(|_| "snapshot failed")?;
    snapshot
        .processes
        .iter()
        .find(|process| process.main_thread == me)
        .map(|process| process.memory_pages)
        .ok_or("no record of this process")
}

fn run() -> Result<(u64, u64), &'static str> {
    let page = PAGE_SIZE as usize;
    // Reserved but untouched: the allocator writes only its bookkeeping at the edges.
    let mut block: Vec<u8> = Vec::with_capacity((PAGES + 2) * page);
    let spare = block.spare_capacity_mut();
    let first = (page - spare.as_ptr() as usize % page) % page + page;
    // Warm up: the snapshot's own buffers become resident before the measurement.
    resident()?;
    let before = resident()?;
    for i in 0..PAGES {
        let byte = &mut spare[first + i * page];
        byte.write(0xa5);
    }
    let after = resident()?;
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
