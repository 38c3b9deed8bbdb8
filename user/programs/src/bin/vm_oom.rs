//! `vm_oom`: memory limits and out-of-memory through the VM server.
//!
//! `vm_oom` (the judge, `kcalls=snapshot+shutdown`) runs the others one at a time and
//! judges by the kernel's free-frame count: `vm_oom name=limited mem=8M -- limited 2048`
//! maps populated memory until VM says ENOMEM and checks that it then has exactly its
//! limit (2048 pages) resident; `vm_oom name=hog -- hog` (the default limit, larger than
//! the machine) does the same until the kernel's free memory runs out. Each then exits;
//! VM's out-of-memory report names it, the system keeps running, and after each exit the
//! judge sees every frame it took back (free frames at the baseline, plus the exited
//! process's own few pages and page tables). Prints `vm_oom: PASS …` and shuts down.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use vigil_rt::abi::vm::PAGE_SIZE;
use vigil_rt::{introspect, ipc, println, syscall, vm, Endpoint, Error, Message};

vigil_rt::entry!(main);

const PING: u32 = 0x4f4d_0001;
const GO: u32 = 0x4f4d_0002;
const REPLY: u32 = 0x4f4d_00ff;
/// Page tables (and the PML4) an exiting process may give back beyond its mapped pages.
const TABLE_SLACK: u64 = 16;

/// (free frames, the memory pages of process `name`) from one snapshot.
fn figures(name: &str) -> Result<(u64, Option<u64>), String> {
    let snapshot = introspect::snapshot().map_err(|e| format!("snapshot: {e}"))?;
    let pages = snapshot
        .processes
        .iter()
        .find(|p| p.name() == name)
        .map(|p| p.memory_pages);
    Ok((snapshot.header.free_frames, pages))
}

/// Runs one allocator: makes sure it is idle, takes the baseline, lets it go, waits for its
/// exit, and checks the frames came back. Returns (pages it got, summary).
fn run(name: &str) -> Result<(u64, String), String> {
    let endpoint = ipc::lookup(name).map_err(|e| format!("lookup {name}: {e}"))?;
    let mut ping = Message::new(PING);
    ipc::send_receive(endpoint, &mut ping).map_err(|e| format!("ping {name}: {e}"))?;
    figures(name)?;
    let (baseline, Some(own_pages)) = figures(name)? else {
        return Err(format!("no record of {name}"));
    };
    let mut go = Message::new(GO);
    ipc::send_receive(endpoint, &mut go).map_err(|e| format!("{name}: {e}"))?;
    if go.kind != REPLY || go.payload[0] != 0 {
        return Err(format!("{name} failed (its log says why)"));
    }
    let pages = go.payload[1];
    // It exits after replying: wait for it to be gone.
    let mut waited = 0;
    let free = loop {
        let (free, record) = figures(name)?;
        if record.is_none() {
            break free;
        }
        waited += 1;
        if waited > 500 {
            return Err(format!("{name} never exited"));
        }
        let _ = syscall::sleep_ns(10_000_000);
    };
    let back = free as i64 - baseline as i64;
    if back < own_pages as i64 || back > (own_pages + TABLE_SLACK) as i64 {
        return Err(format!(
            "after {name} exited: free frames {free}, baseline {baseline}: {back:+} (it had {own_pages} pages of its own besides the {pages} it populated)"
        ));
    }
    Ok((
        pages,
        format!("{name}: {pages} pages populated, then ENOMEM; after its exit free frames {baseline} -> {free}"),
    ))
}

fn judge() -> Result<String, String> {
    let (limited_pages, limited) = run("limited")?;
    let (hog_pages, hog) = run("hog")?;
    if hog_pages <= limited_pages {
        return Err(format!("the hog got only {hog_pages} pages"));
    }
    // The system still serves memory.
    let base = vm::map_populated(16 * PAGE_SIZE).map_err(|e| format!("after the hog: {e}"))?;
    vm::unmap(base, 16 * PAGE_SIZE).map_err(|e| format!("unmap: {e}"))?;
    Ok(format!("{limited}; {hog}"))
}

/// Maps populated `chunk`-byte mappings until VM refuses; returns how many pages it got.
fn populate_until_refused(chunk: u64) -> Result<u64, String> {
    let mut pages = 0;
    loop {
        match vm::map_populated(chunk) {
            Ok(base) => {
                // Every page is there already: touching it costs no fault.
                // SAFETY: VM mapped `[base, base + chunk)` writable for this process.
                unsafe { ((base + chunk - PAGE_SIZE) as *mut u8).write_volatile(1) };
                pages += chunk / PAGE_SIZE;
            }
            Err(Error::OutOfResources) => return Ok(pages),
            Err(error) => return Err(format!("a populated map of {chunk} bytes: {error}")),
        }
    }
}

/// Allocates until ENOMEM: 1 MiB at a time, then 64 KiB, then page by page, so the last
/// refusal is at the limit (or the end of free memory) exactly and the mappings stay few. `limit` (pages) is what the boot table set, if it set one.
fn allocate(limit: Option<u64>) -> Result<u64, String> {
    let before = vm::stats().map_err(|e| format!("stats: {e}"))?;
    let faults_before = before.demand_zero_faults;
    let pages = populate_until_refused(1 << 20)?
        + populate_until_refused(64 * 1024)?
        + populate_until_refused(PAGE_SIZE)?;
    let after = vm::stats().map_err(|e| format!("stats: {e}"))?;
    println!(
        "ENOMEM after {pages} populated pages: {} pages resident (peak {})",
        after.resident_pages, after.peak_resident_pages
    );
    if after.resident_pages != before.resident_pages + pages {
        return Err(format!(
            "VM counts {} resident, {} before + {pages} populated",
            after.resident_pages, before.resident_pages
        ));
    }
    if after.demand_zero_faults != faults_before {
        return Err("populated pages were faulted in one by one".into());
    }
    match limit {
        Some(limit) if after.resident_pages != limit => Err(format!(
            "refused at {} resident pages, but the limit is {limit}",
            after.resident_pages
        )),
        None if after.resident_pages >= (128 << 20) / PAGE_SIZE => {
            Err("the hog reached VM's default limit, not the end of free memory".into())
        }
        _ => Ok(pages),
    }
}

/// An allocator: answers a ping, then on GO allocates, replies and exits.
fn allocator(limit: Option<u64>) -> ! {
    loop {
        let Ok(message) = ipc::receive(Endpoint::ANY) else {
            continue;
        };
        let mut reply = Message::new(REPLY);
        if message.kind == GO {
            match allocate(limit) {
                Ok(pages) => reply.payload[1] = pages,
                Err(reason) => {
                    println!("vm_oom: FAIL {reason}");
                    reply.payload[0] = 1;
                }
            }
            let _ = ipc::send(message.source, &reply);
            syscall::process_exit(0);
        }
        let _ = ipc::send(message.source, &reply);
    }
}

fn main(args: &str) -> i32 {
    let mut words = args.split_whitespace();
    match words.next() {
        Some("limited") => allocator(words.next().and_then(|w| w.parse().ok())),
        Some("hog") => allocator(None),
        _ => {}
    }
    vigil_programs::finish("vm_oom", judge())
}
