//! `vm_shared`: shared memory through the VM server, judged by what each process reads and
//! by the kernel's free-frame count.
//!
//! `vm_shared` (the owner and judge, `kcalls=snapshot+shutdown`): creates an object and
//! writes a pattern; the peer (`vm_shared name=shm_peer -- peer`) maps it writable, sees
//! the pattern and writes its marks back, which the owner then sees; the reader
//! (`vm_shared name=shm_reader -- reader`) maps it read-only, reads the pattern, then
//! writes: VM refuses the fault and only the reader dies. Bad requests are refused (a
//! writable map of an object others may only read, a destroy by a non-owner, a map after
//! destroy). A second object then shows the frames: its pages cost exactly one frame each
//! however many processes map them, survive the owner's unmap and destroy while the peer
//! still maps them, and all come back when the last mapping goes (free frames equal the
//! baseline). Prints `vm_shared: PASS …` and shuts down.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use vigil_rt::abi::vm::PAGE_SIZE;
use vigil_rt::{introspect, ipc, println, vm, Endpoint, Error, Message};

vigil_rt::entry!(main);

/// Pages of each object.
const PAGES: u64 = 8;
const BYTES: u64 = PAGES * PAGE_SIZE;

/// Owner → peer/reader requests (payload[0] = which object: 0 "warm", 1 "shm", 2 "ro").
const MAP_CHECK_WRITE: u32 = 0x5348_0001;
const RECHECK_UNMAP: u32 = 0x5348_0002;
const READ_THEN_WRITE: u32 = 0x5348_0003;
/// payload[0] = object index, payload[1] = object id: try a writable map and a destroy.
const TRY_FORBIDDEN: u32 = 0x5348_0004;
const REPLY: u32 = 0x5348_00ff;

const NAMES: [&str; 3] = ["warm", "shm", "ro"];

/// The byte the owner writes at `offset` of object page `page`.
fn pattern(page: u64, offset: u64) -> u8 {
    (page * 31 + offset * 7 + 1) as u8
}

/// The word the peer writes at offset 8 of each page.
fn peer_mark(page: u64) -> u64 {
    0xb0b0_0000 + page
}

fn byte_at(address: u64) -> u8 {
    // SAFETY: callers pass addresses inside a mapping VM made for this process (whole
    // object); a read faults the page in through VM.
    unsafe { (address as *const u8).read_volatile() }
}

fn write_pattern(base: u64) {
    for page in 0..PAGES {
        for offset in 0..PAGE_SIZE {
            let address = (base + page * PAGE_SIZE + offset) as *mut u8;
            // SAFETY: `[base, base + BYTES)` is a writable shared mapping of this process.
            unsafe { address.write_volatile(pattern(page, offset)) };
        }
    }
}

/// Whether every byte of the mapping at `base` is the owner's pattern, except the peer's
/// marks at offsets 8..16 if `marked`.
fn check_pattern(base: u64, marked: bool) -> Result<(), String> {
    for page in 0..PAGES {
        for offset in 0..PAGE_SIZE {
            if marked && (8..16).contains(&offset) {
                continue;
            }
            let found = byte_at(base + page * PAGE_SIZE + offset);
            if found != pattern(page, offset) {
                return Err(format!(
                    "page {page} offset {offset}: {found:#x}, not {:#x}",
                    pattern(page, offset)
                ));
            }
        }
        if marked {
            let mark = read_u64(base + page * PAGE_SIZE + 8);
            if mark != peer_mark(page) {
                return Err(format!(
                    "page {page}: mark {mark:#x}, not {:#x}",
                    peer_mark(page)
                ));
            }
        }
    }
    Ok(())
}

fn read_u64(address: u64) -> u64 {
    // SAFETY: an aligned word inside a mapping VM made for this process.
    unsafe { (address as *const u64).read_volatile() }
}

/// Free frames and the thread count, from a kernel snapshot.
fn free_frames() -> Result<u64, String> {
    let snapshot = introspect::snapshot().map_err(|e| format!("snapshot: {e}"))?;
    Ok(snapshot.header.free_frames)
}

/// Whether a process named `name` is alive.
/// The kernel snapshot's shared pages of process `name` (the views it maps of frames
/// another mapping holds too).
fn shared_pages(name: &str) -> Result<u64, String> {
    let snapshot = introspect::snapshot().map_err(|e| format!("snapshot: {e}"))?;
    snapshot
        .processes
        .iter()
        .find(|p| p.name() == name)
        .map(|p| p.shared_pages)
        .ok_or_else(|| format!("no process {name}"))
}

fn alive(name: &str) -> Result<bool, String> {
    let snapshot = introspect::snapshot().map_err(|e| format!("snapshot: {e}"))?;
    Ok(snapshot.processes.iter().any(|p| p.name() == name))
}

/// Makes 32 KiB of stack resident so deeper calls later do not fault new stack pages in
/// (which would move the free-frame count).
#[inline(never)]
fn touch_stack() {
    let mut buffer = [0u8; 32 * 1024];
    for i in (0..buffer.len()).step_by(PAGE_SIZE as usize) {
        // SAFETY: a local array.
        unsafe { core::ptr::write_volatile(&mut buffer[i], 1) };
    }
    core::hint::black_box(&buffer);
}

/// Sends `kind` to `to` and waits for the reply; Ok(payload) if it says ok.
fn ask(to: Endpoint, kind: u32, payload: [u64; 6]) -> Result<[u64; 6], Error> {
    let mut message = Message::with_payload(kind, payload);
    ipc::send_receive(to, &mut message)?;
    match message.payload[0] {
        0 => Ok(message.payload),
        _ => Err(Error::InvalidArgument),
    }
}

fn require(what: &str, found: u64, wanted: u64) -> Result<(), String> {
    if found == wanted {
        Ok(())
    } else {
        Err(format!("{what}: free frames {found}, expected {wanted}"))
    }
}

fn owner() -> Result<String, String> {
    touch_stack();
    let peer = ipc::lookup("shm_peer").map_err(|e| format!("lookup shm_peer: {e}"))?;
    let reader = ipc::lookup("shm_reader").map_err(|e| format!("lookup shm_reader: {e}"))?;
    free_frames()?;

    // The story: the owner writes, the peer reads and writes back, the reader reads and
    // dies writing.
    let warm = vm::shm_create("warm", BYTES, true).map_err(|e| format!("create warm: {e}"))?;
    let mine = vm::shm_map("warm", true).map_err(|e| format!("map warm: {e}"))?;
    if mine.bytes != BYTES || mine.object != warm {
        return Err(format!("map warm: {mine:?}"));
    }
    write_pattern(mine.base);
    println!(
        "owner: wrote the pattern into object {warm} at {:#x}",
        mine.base
    );
    ask(peer, MAP_CHECK_WRITE, [0; 6]).map_err(|e| format!("peer on warm: {e}"))?;
    check_pattern(mine.base, true).map_err(|e| format!("owner after the peer wrote: {e}"))?;
    println!("owner: sees the peer's marks in every page");
    // Both touched every page, so both map every page as a view of VM's frame, and the
    // kernel snapshot says so.
    let (own_shared, peer_shared) = (shared_pages("vm_shared")?, shared_pages("shm_peer")?);
    if own_shared != PAGES || peer_shared != PAGES {
        return Err(format!(
            "the snapshot counts {own_shared} (owner) and {peer_shared} (peer) shared pages, \
             not {PAGES} each"
        ));
    }
    println!("owner: the snapshot shows {PAGES} shared pages in the owner and in the peer");
    match ask(reader, READ_THEN_WRITE, [0; 6]) {
        Err(Error::PartnerDied) => println!("owner: the reader died writing, as it should"),
        other => return Err(format!("the reader should have died, got {other:?}")),
    }
    if alive("shm_reader")? {
        return Err("the reader is still alive".into());
    }
    if !alive("shm_peer")? {
        return Err("the peer died with the reader".into());
    }
    check_pattern(mine.base, true).map_err(|e| format!("owner after the reader died: {e}"))?;
    // Forbidden to others: a writable map of an object others may only read, a destroy.
    let ro = vm::shm_create("ro", BYTES, false).map_err(|e| format!("create ro: {e}"))?;
    ask(peer, TRY_FORBIDDEN, [2, ro, 0, 0, 0, 0]).map_err(|e| format!("peer on ro: {e}"))?;
    ask(peer, TRY_FORBIDDEN, [0, warm, 0, 0, 0, 0]).map_err(|e| format!("peer on warm: {e}"))?;
    vm::shm_destroy(ro).map_err(|e| format!("destroy ro: {e}"))?;
    vigil_programs::expect_refusal(
        "a second create of one name",
        vm::shm_create("warm", BYTES, true),
        Error::Exists,
    )?;
    ask(peer, RECHECK_UNMAP, [0; 6]).map_err(|e| format!("peer unmapping warm: {e}"))?;
    vm::unmap(mine.base, mine.bytes).map_err(|e| format!("unmap warm: {e}"))?;
    vm::shm_destroy(warm).map_err(|e| format!("destroy warm: {e}"))?;
    vigil_programs::expect_refusal(
        "mapping a destroyed object",
        vm::shm_map("warm", false),
        Error::NotFound,
    )?;
    vigil_programs::expect_refusal(
        "destroying it twice",
        vm::shm_destroy(warm),
        Error::NotFound,
    )?;

    // The frames, on a second object that reuses the same places (so every page table
    // that serves it exists already and the count moves by object frames only).
    free_frames()?;
    let baseline = free_frames()?;
    let shm = vm::shm_create("shm", BYTES, true).map_err(|e| format!("create shm: {e}"))?;
    let mine = vm::shm_map("shm", true).map_err(|e| format!("map shm: {e}"))?;
    write_pattern(mine.base);
    let written = free_frames()?;
    require(
        "after the owner touched every page",
        written,
        baseline - PAGES,
    )?;
    ask(peer, MAP_CHECK_WRITE, [1, 0, 0, 0, 0, 0]).map_err(|e| format!("peer on shm: {e}"))?;
    require(
        "after the peer mapped every page too",
        free_frames()?,
        written,
    )?;
    check_pattern(mine.base, true).map_err(|e| format!("owner on shm: {e}"))?;
    vm::unmap(mine.base, mine.bytes).map_err(|e| format!("unmap shm: {e}"))?;
    vm::shm_destroy(shm).map_err(|e| format!("destroy shm: {e}"))?;
    require(
        "after the owner's unmap and destroy (the peer still maps it)",
        free_frames()?,
        written,
    )?;
    ask(peer, RECHECK_UNMAP, [1, 0, 0, 0, 0, 0]).map_err(|e| format!("peer unmapping shm: {e}"))?;
    let last = free_frames()?;
    require("after the last mapping went", last, baseline)?;
    Ok(format!(
        "free frames {baseline} -> {written} -> {last}: {PAGES} frames for {PAGES} pages and 2 mappers, kept while a destroyed object was mapped, back at the last unmap"
    ))
}

/// The peer: serves the owner's requests, keeping its current mapping.
fn peer() -> ! {
    let mut mapping: Option<vm::SharedMapping> = None;
    loop {
        let Ok(message) = ipc::receive(Endpoint::ANY) else {
            continue;
        };
        let name = NAMES[(message.payload[0] as usize).min(NAMES.len() - 1)];
        let outcome: Result<(), String> = match message.kind {
            MAP_CHECK_WRITE => vm::shm_map(name, true)
                .map_err(|e| format!("map {name}: {e}"))
                .and_then(|m| {
                    mapping = Some(m);
                    check_pattern(m.base, false)?;
                    for page in 0..PAGES {
                        let address = (m.base + page * PAGE_SIZE + 8) as *mut u64;
                        // SAFETY: a writable mapping of the whole object, word aligned.
                        unsafe { address.write_volatile(peer_mark(page)) };
                    }
                    println!("peer: saw the pattern in '{name}' and wrote its marks");
                    Ok(())
                }),
            RECHECK_UNMAP => match mapping.take() {
                Some(m) => check_pattern(m.base, true)
                    .and_then(|()| vm::unmap(m.base, m.bytes).map_err(|e| format!("unmap: {e}")))
                    .map(|()| println!("peer: '{name}' still reads right; unmapped it")),
                None => Err("nothing mapped".into()),
            },
            TRY_FORBIDDEN => {
                let writable = if name == "ro" {
                    vigil_programs::expect_refusal(
                        "a writable map of an object others may only read",
                        vm::shm_map(name, true),
                        Error::PermissionDenied,
                    )
                } else {
                    Ok(())
                };
                writable.and_then(|()| {
                    vigil_programs::expect_refusal(
                        "a destroy by a process that does not own the object",
                        vm::shm_destroy(message.payload[1]),
                        Error::PermissionDenied,
                    )
                })
            }
            _ => Err(format!("unknown request {:#x}", message.kind)),
        };
        let mut reply = Message::new(REPLY);
        if let Err(reason) = outcome {
            println!("vm_shared: FAIL peer: {reason}");
            reply.payload[0] = 1;
        }
        let _ = ipc::send(message.source, &reply);
    }
}

/// The reader: maps the first object read-only, reads it, then writes it (and dies).
fn reader() -> ! {
    loop {
        let Ok(message) = ipc::receive(Endpoint::ANY) else {
            continue;
        };
        if message.kind != READ_THEN_WRITE {
            continue;
        }
        let outcome = vm::shm_map("warm", false)
            .map_err(|e| format!("map warm read-only: {e}"))
            .and_then(|m| check_pattern(m.base, true).map(|()| m));
        match outcome {
            Ok(m) => {
                println!("reader: read the pattern through a read-only mapping; now writing it");
                // SAFETY: the mapping is read-only: this write is meant to fault (VM
                // refuses it and the kernel kills this process).
                unsafe { (m.base as *mut u8).write_volatile(0xff) };
                println!("vm_shared: FAIL the reader wrote a read-only mapping");
            }
            Err(reason) => println!("vm_shared: FAIL reader: {reason}"),
        }
        let mut reply = Message::new(REPLY);
        reply.payload[0] = 1;
        let _ = ipc::send(message.source, &reply);
    }
}

fn main(args: &str) -> i32 {
    match args.trim() {
        "peer" => peer(),
        "reader" => reader(),
        _ => {}
    }
    vigil_programs::finish("vm_shared", owner())
}
