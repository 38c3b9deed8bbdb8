//! `vm_introspect`: asks the VM server for its INTROSPECT topics through a grant and checks
//! them against the kernel's snapshot.
//!
//! The judge (no arguments): maps 64 anonymous pages and touches them — VM's memory record
//! (resident, virtual, demand-zero faults) and the kernel's process record (resident,
//! virtual, faults not present, peak) each move by exactly that much; the two agree on the
//! rest (what the kernel has beyond VM is the program image, in resident and virtual
//! alike); unmapping gives the pages back in both and the peak stays. The idler's record
//! agrees with the kernel's the same way. The shared-objects topic answers with its record
//! layout (no objects: the glue does not serve them yet). A one-record buffer is truncated
//! visibly (written < available) and paging with `first` gets the rest. Bad requests — an
//! unknown topic, a topic VM does not answer, a bad, foreign, read-only or short grant, a
//! buffer smaller than a record, reserved words set — each get their error, and VM still
//! answers after them. Prints `vm_introspect: PASS …` and shuts down.
//! `vm_introspect idle`: touches 8 heap pages and sleeps (a second process for VM to report).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use vigil_rt::abi::introspect::ProcessRecord;
use vigil_rt::abi::server_introspect::{
    IntrospectReply, IntrospectRequest, MemoryRecord, Topic, INTROSPECT, MEMORY_RECORD_BYTES,
    MEMORY_RECORD_VERSION, SHARED_RECORD_BYTES, SHARED_RECORD_VERSION,
};
use vigil_rt::abi::vm::PAGE_SIZE;
use vigil_rt::ipc::{self, GrantId};
use vigil_rt::server_introspect as si;
use vigil_rt::{introspect, println, syscall, time, vm, Endpoint, Error, Message};

vigil_rt::entry!(main);

/// Pages mapped and touched by the judge.
const PAGES: u64 = 64;
/// Heap pages the idler touches.
const IDLE_PAGES: usize = 8;

/// Grows the stack past the 16 KiB the kernel mapped, so VM learns of this thread's stack
/// (and counts the kernel's initial pages) before anything is measured.
#[inline(never)]
fn grow_stack() {
    let mut deep = [0u8; 48 * 1024];
    for i in (0..deep.len()).step_by(PAGE_SIZE as usize) {
        deep[i] = 1;
    }
    core::hint::black_box(&mut deep);
}

/// The kernel's record of process `pid` (this one if `None`).
fn kernel_record(pid: Option<u32>) -> Result<ProcessRecord, String> {
    let me = ipc::self_endpoint();
    let snapshot = introspect::snapshot().map_err(|e| format!("snapshot: {e}"))?;
    snapshot
        .processes
        .iter()
        .find(|p| pid.map_or(p.main_thread == me, |pid| p.pid == pid))
        .copied()
        .ok_or_else(|| format!("no kernel record of pid {pid:?}"))
}

/// VM's record of `pid`.
fn vm_record(server: Endpoint, pid: u32) -> Result<MemoryRecord, String> {
    si::memory(server)
        .map_err(|e| format!("INTROSPECT memory: {e}"))?
        .into_iter()
        .find(|r| r.pid == pid)
        .ok_or_else(|| format!("VM has no memory record of pid {pid}"))
}

/// The kernel's and VM's records of `pid` (this process if `None`), read VM, kernel, VM
/// until VM's figures did not move in between (the reads themselves can fault a page in).
fn figures(server: Endpoint, pid: Option<u32>) -> Result<(ProcessRecord, MemoryRecord), String> {
    for _ in 0..5 {
        let pid_now = match pid {
            Some(pid) => pid,
            None => kernel_record(None)?.pid,
        };
        let before = vm_record(server, pid_now)?;
        let kernel = kernel_record(Some(pid_now))?;
        let after = vm_record(server, pid_now)?;
        if before == after {
            return Ok((kernel, after));
        }
    }
    Err("VM's figures kept moving while being read".into())
}

/// Touches one byte of every page of `[base, base + bytes)`.
fn touch(base: u64, bytes: u64) {
    for page in 0..bytes / PAGE_SIZE {
        let address = (base + page * PAGE_SIZE) as *mut u8;
        // SAFETY: VM mapped [base, base + bytes) writable for this process and nothing else
        // uses it; each first touch faults the page in through VM.
        unsafe { address.write_volatile(1) };
    }
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

/// What the kernel has of a process beyond what VM counts: the image, in pages and bytes.
/// The two must say the same thing.
fn image_offset(kernel: &ProcessRecord, vm: &MemoryRecord) -> Result<u64, String> {
    let pages = kernel.memory_pages.checked_sub(vm.resident_pages);
    let bytes = kernel.virtual_bytes.checked_sub(vm.virtual_bytes);
    match (pages, bytes) {
        (Some(pages), Some(bytes)) if pages > 0 && pages * PAGE_SIZE == bytes => Ok(pages),
        _ => Err(format!(
            "pid {}: kernel resident {} / virtual {:#x} vs VM resident {} / virtual {:#x}: the difference is not the image in both",
            kernel.pid, kernel.memory_pages, kernel.virtual_bytes, vm.resident_pages, vm.virtual_bytes
        )),
    }
}

/// Sends a raw INTROSPECT message and reads the reply.
fn raw(server: Endpoint, mut message: Message) -> Result<IntrospectReply, Error> {
    ipc::send_receive(server, &mut message)?;
    IntrospectReply::from_message(&message)
}

fn request(topic: Topic, grant: GrantId, bytes: usize) -> Message {
    IntrospectRequest {
        topic,
        grant: grant.0,
        bytes: bytes as u64,
        first: 0,
    }
    .to_message()
}

/// Every bad request gets its error; returns how many were tried.
fn bad_requests(server: Endpoint) -> Result<u32, String> {
    let mut unknown = Message::with_payload(INTROSPECT, [99, 0, 0, 0, 0, 0]);
    vigil_programs::expect_refusal("an unknown topic", raw(server, unknown), Error::NoSuchCall)?;
    vigil_programs::expect_refusal(
        "a topic VM does not answer (services)",
        raw(server, request(Topic::Services, GrantId(0), 0)),
        Error::NoSuchCall,
    )?;
    unknown = request(Topic::Memory, GrantId(0), 0);
    unknown.payload[4] = 1;
    vigil_programs::expect_refusal(
        "a reserved word set",
        raw(server, unknown),
        Error::InvalidArgument,
    )?;
    let mut buffer = vec![0u8; 4096];
    vigil_programs::expect_refusal(
        "a grant id that names no grant",
        raw(server, request(Topic::Memory, GrantId(0xdead_0001), 4096)),
        Error::BadGrant,
    )?;
    let me = ipc::self_endpoint();
    let foreign = ipc::with_write_grant(me, &mut buffer, |grant| {
        raw(server, request(Topic::Memory, grant, 4096))
    })
    .map_err(|e| format!("grant to self: {e}"))?;
    vigil_programs::expect_refusal("a grant for another process", foreign, Error::BadGrant)?;
    let read_only = ipc::with_read_grant(server, &buffer, |grant| {
        raw(server, request(Topic::Memory, grant, 4096))
    })
    .map_err(|e| format!("read grant: {e}"))?;
    vigil_programs::expect_refusal(
        "a read-only grant (wrong direction)",
        read_only,
        Error::BadGrant,
    )?;
    let short = ipc::with_write_grant(server, &mut buffer[..MEMORY_RECORD_BYTES], |grant| {
        raw(server, request(Topic::Memory, grant, 4096))
    })
    .map_err(|e| format!("short grant: {e}"))?;
    vigil_programs::expect_refusal(
        "a grant smaller than the size named",
        short,
        Error::BadGrant,
    )?;
    let tiny = ipc::with_write_grant(server, &mut buffer[..50], |grant| {
        raw(server, request(Topic::Memory, grant, 50))
    })
    .map_err(|e| format!("tiny grant: {e}"))?;
    vigil_programs::expect_refusal(
        "a buffer smaller than one record",
        tiny,
        Error::InvalidArgument,
    )?;
    Ok(8)
}

/// A one-record buffer is truncated visibly, and `first` pages through the rest.
fn truncation(server: Endpoint) -> Result<u64, String> {
    let mut one = [0u8; MEMORY_RECORD_BYTES];
    let mut pids = Vec::new();
    let mut first = 0;
    loop {
        let reply = si::introspect(server, Topic::Memory, &mut one, first)
            .map_err(|e| format!("paging at {first}: {e}"))?;
        check(
            reply.version == MEMORY_RECORD_VERSION
                && reply.record_bytes == MEMORY_RECORD_BYTES as u64,
            || format!("memory topic layout: {reply:?}"),
        )?;
        if first == 0 {
            check(reply.written == 1 && reply.available >= 2, || {
                format!("a one-record buffer: {reply:?}")
            })?;
        }
        if reply.written == 0 {
            check(first == reply.available, || {
                format!("paging ended early: {reply:?}")
            })?;
            break;
        }
        pids.push(MemoryRecord::from_bytes(&one).pid);
        first += reply.written;
    }
    let all: Vec<u32> = si::memory(server)
        .map_err(|e| format!("memory: {e}"))?
        .iter()
        .map(|r| r.pid)
        .collect();
    check(pids == all, || {
        format!("paged pids {pids:?} differ from one call's {all:?}")
    })?;
    Ok(first)
}

fn run() -> Result<String, String> {
    let server = vm::server().map_err(|e| format!("no VM server: {e}"))?;
    grow_stack();
    // The idler is a second process VM knows; wait until it has touched its pages.
    let deadline = time::now_ns() + 5_000_000_000;
    let idler = loop {
        let snapshot = introspect::snapshot().map_err(|e| format!("snapshot: {e}"))?;
        let idler = snapshot
            .processes
            .iter()
            .find(|p| p.name() == "idler")
            .map(|p| p.pid);
        if let Some(pid) = idler {
            if vm_record(server, pid).is_ok_and(|r| r.resident_pages >= IDLE_PAGES as u64) {
                break pid;
            }
        }
        if time::now_ns() > deadline {
            return Err("the idler never showed up in VM's records".into());
        }
        syscall::sleep_ns(10_000_000).map_err(|e| format!("sleep: {e}"))?;
    };
    // Warm up: the buffers of both reads become resident before anything is measured.
    figures(server, None)?;
    let (k0, v0) = figures(server, None)?;
    let image = image_offset(&k0, &v0)?;
    check(
        v0.limit_pages > 0 && v0.peak_pages >= v0.resident_pages && v0.shared_pages == 0,
        || format!("VM's own figures: {v0:?}"),
    )?;
    check(
        k0.peak_pages >= k0.memory_pages && k0.shared_pages == 0 && k0.faults_not_present > 0,
        || format!("the kernel's figures: {k0:?}"),
    )?;

    let bytes = PAGES * PAGE_SIZE;
    let base = vm::map_anonymous(bytes, true).map_err(|e| format!("map: {e}"))?;
    touch(base, bytes);
    let (k1, v1) = figures(server, None)?;
    check(
        v1.resident_pages == v0.resident_pages + PAGES
            && v1.demand_zero_faults == v0.demand_zero_faults + PAGES
            && v1.virtual_bytes == v0.virtual_bytes + bytes,
        || format!("VM after touching {PAGES} pages: {v0:?} -> {v1:?}"),
    )?;
    check(
        k1.memory_pages == k0.memory_pages + PAGES
            && k1.faults_not_present == k0.faults_not_present + PAGES
            && k1.faults_protection == k0.faults_protection
            && k1.virtual_bytes == k0.virtual_bytes + bytes
            && k1.peak_pages >= k1.memory_pages,
        || format!("the kernel after touching {PAGES} pages: {k0:?} -> {k1:?}"),
    )?;
    check(image_offset(&k1, &v1)? == image, || {
        "the kernel's and VM's figures drifted apart".into()
    })?;

    vm::unmap(base, bytes).map_err(|e| format!("unmap: {e}"))?;
    let (k2, v2) = figures(server, None)?;
    check(
        k2.memory_pages == k0.memory_pages
            && v2.resident_pages == v0.resident_pages
            && k2.virtual_bytes == k0.virtual_bytes
            && v2.virtual_bytes == v0.virtual_bytes
            && k2.peak_pages >= k1.memory_pages
            && v2.peak_pages >= v1.resident_pages,
        || format!("after unmapping: kernel {k2:?}, VM {v2:?}"),
    )?;
    check(k2.grants == 0, || {
        format!("{} grants left open by the INTROSPECT calls", k2.grants)
    })?;

    let (ki, vi) = figures(server, Some(idler))?;
    let idler_image = image_offset(&ki, &vi)?;

    let mut shared = vec![0u8; 4 * SHARED_RECORD_BYTES];
    let reply = si::introspect(server, Topic::SharedObjects, &mut shared, 0)
        .map_err(|e| format!("shared objects: {e}"))?;
    check(
        reply.version == SHARED_RECORD_VERSION
            && reply.record_bytes == SHARED_RECORD_BYTES as u64
            && reply.written == reply.available,
        || format!("shared objects topic: {reply:?}"),
    )?;
    let objects = si::shared_objects(server).map_err(|e| format!("shared objects: {e}"))?;

    let processes = truncation(server)?;
    let bad = bad_requests(server)?;
    // VM survived every bad request and still answers.
    let (k3, v3) = figures(server, None)?;
    check(image_offset(&k3, &v3)? == image, || {
        "figures after the bad requests".into()
    })?;
    println!(
        "vm_introspect: touched {PAGES} pages: VM resident {} -> {} = kernel resident {} -> {} less the image's {image} pages; virtual +{bytes} in both; faults not present +{PAGES}",
        v0.resident_pages, v1.resident_pages, k0.memory_pages, k1.memory_pages,
    );
    println!(
        "vm_introspect: peak {} pages kept after unmap; idler agrees (image {idler_image} pages); {processes} memory records paged one at a time; {} shared records",
        k2.peak_pages,
        objects.len(),
    );
    Ok(format!("{bad} bad requests refused, VM still answering"))
}

/// Touches `IDLE_PAGES` heap pages and sleeps until the judge ends the run.
fn idle() -> ! {
    grow_stack();
    let pages: Vec<Vec<u8>> = (0..IDLE_PAGES)
        .map(|_| vec![1u8; PAGE_SIZE as usize])
        .collect();
    core::hint::black_box(&pages);
    loop {
        let _ = syscall::sleep_ns(1_000_000_000);
    }
}

fn main(args: &str) -> i32 {
    if args.trim() == "idle" {
        idle();
    }
    vigil_programs::finish("vm_introspect", run())
}
