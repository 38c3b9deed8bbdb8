//! `vm_syscall`: system calls whose user memory is not there yet are suspended, served by
//! VM and run again — the caller sees only the result (MINIX's VMREQUEST).
//!
//! Every buffer below lies in a fresh demand-zero mapping that nothing has touched, so the
//! kernel finds its pages missing: a receive into it, a kernel snapshot into it, a name read
//! from it, an async table in it, a grant of it, a safe copy into it. Each call must give the
//! result it gives with present memory, and the process's resident pages (kernel snapshot)
//! must grow by exactly the pages those calls touched. A buffer at an address VM does not
//! know must make the call fail with EFAULT, and the program runs on. Prints
//! `vm_syscall: PASS …` and shuts the machine down.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use core::time::Duration;
use vigil_rt::abi::async_message::AsyncMessage;
use vigil_rt::abi::introspect::SNAPSHOT_MAGIC;
use vigil_rt::abi::syscall::grant_access;
use vigil_rt::abi::vm::PAGE_SIZE;
use vigil_rt::{alarm, introspect, ipc, syscall, vm, Endpoint, Error, Message};

vigil_rt::entry!(main);

/// A fresh, untouched, writable demand-zero mapping of `pages` pages.
fn fresh(pages: u64) -> Result<u64, String> {
    vm::map_anonymous(pages * PAGE_SIZE, true).map_err(|e| format!("map_anonymous: {e}"))
}

/// `len` bytes at `address` of a mapping of ours, as a byte slice.
fn bytes_at(address: u64, len: usize) -> &'static mut [u8] {
    // SAFETY: `address` is the base of a writable anonymous mapping VM made for this process
    // (at least `len` bytes, never unmapped while the program runs); demand-zero memory
    // reads as zeros, valid `u8`s; each mapping is used through one slice at a time.
    unsafe { core::slice::from_raw_parts_mut(address as *mut u8, len) }
}

/// This process's resident pages, from a kernel snapshot into a buffer already touched.
fn resident(buffer: &mut [u8]) -> Result<u64, String> {
    let me = ipc::self_endpoint();
    let len = syscall::snapshot(buffer).map_err(|e| format!("snapshot: {e}"))? as usize;
    let snapshot = introspect::decode(&buffer[..len]).map_err(|e| format!("decode: {e}"))?;
    snapshot
        .processes
        .iter()
        .find(|process| process.main_thread == me)
        .map(|process| process.memory_pages)
        .ok_or_else(|| "no record of this process".into())
}

/// This thread's (system calls, kernel calls) counters, from a snapshot into `buffer`
/// (already touched): the snapshot call itself is counted in both.
fn call_counts(buffer: &mut [u8]) -> Result<(u64, u64), String> {
    let me = ipc::self_endpoint();
    let len = syscall::snapshot(buffer).map_err(|e| format!("snapshot: {e}"))? as usize;
    let snapshot = introspect::decode(&buffer[..len]).map_err(|e| format!("decode: {e}"))?;
    snapshot
        .threads
        .iter()
        .find(|thread| thread.endpoint == me)
        .map(|thread| (thread.counters.syscalls, thread.counters.kernel_calls))
        .ok_or_else(|| "no record of this thread".into())
}

/// A suspended call counts once, whether VM resumes it (it runs again) or fails it (it
/// returns EFAULT without running again): two kernel calls, one of each, and one system
/// call that VM fails move the counters by exactly 3 system calls and 2 kernel calls.
fn suspended_calls_count_once(buffer: &mut [u8]) -> Result<(), String> {
    let missing = bytes_at(fresh(4)?, 4 * PAGE_SIZE as usize);
    let gone = fresh(1)?;
    vm::unmap(gone, PAGE_SIZE).map_err(|e| format!("unmap: {e}"))?;
    // SAFETY: the kernel only reads or writes these bytes of an address VM no longer maps;
    // the slices are never dereferenced here.
    let (gone_text, gone_buffer) = unsafe {
        (
            core::slice::from_raw_parts(gone as *const u8, 8),
            core::slice::from_raw_parts_mut(gone as *mut u8, 4096),
        )
    };
    call_counts(buffer)?;
    let (syscalls, kernel_calls) = call_counts(buffer)?;
    let resumed = syscall::snapshot(missing).map(|_| ());
    let failed_call = syscall::debug_write(gone_text).map(|_| ());
    let failed_kernel_call = syscall::snapshot(gone_buffer).map(|_| ());
    let (syscalls_after, kernel_calls_after) = call_counts(buffer)?;
    let outcome = (resumed, failed_call, failed_kernel_call);
    if outcome != (Ok(()), Err(Error::Fault), Err(Error::Fault)) {
        return Err(format!("the calls gave {outcome:?}"));
    }
    // The calls in between, plus the last snapshot itself.
    let counted = (syscalls_after - syscalls, kernel_calls_after - kernel_calls);
    if counted != (4, 3) {
        return Err(format!(
            "3 system calls (2 kernel calls) counted as {} ({}), not once each",
            counted.0 - 1,
            counted.1 - 1
        ));
    }
    Ok(())
}

/// Receive into a missing page: an alarm's notification from CLOCK lands there.
fn receive_into_missing() -> Result<u64, String> {
    let base = fresh(1)?;
    alarm::set(Duration::from_millis(1)).map_err(|e| format!("alarm: {e}"))?;
    // SAFETY: a page-aligned, writable page of ours (see `bytes_at`); any bit pattern,
    // zeros included, is a valid `Message`.
    let message = unsafe { &mut *(base as *mut Message) };
    let result = syscall::receive(Endpoint::CLOCK, message);
    alarm::cancel().map_err(|e| format!("alarm cancel: {e}"))?;
    result.map_err(|e| format!("receive into a missing page: {e}"))?;
    if message.source != Endpoint::CLOCK {
        return Err(format!("received from {} instead of CLOCK", message.source));
    }
    Ok(1)
}

/// A snapshot into 16 missing pages: complete and valid.
fn snapshot_into_missing() -> Result<u64, String> {
    let pages = 16;
    let buffer = bytes_at(fresh(pages)?, (pages * PAGE_SIZE) as usize);
    let len = syscall::snapshot(buffer).map_err(|e| format!("snapshot into missing pages: {e}"))?;
    let snapshot = introspect::decode(&buffer[..len as usize])
        .map_err(|e| format!("snapshot into missing pages does not decode: {e}"))?;
    if snapshot.header.magic != SNAPSHOT_MAGIC || snapshot.processes.is_empty() {
        return Err("snapshot into missing pages is empty".into());
    }
    Ok(len.div_ceil(PAGE_SIZE))
}

/// A name read from a missing page: the call runs (NotFound: no process has an empty-ish
/// name of zeros), rather than failing with Fault.
fn lookup_from_missing() -> Result<u64, String> {
    let name = bytes_at(fresh(1)?, 8);
    let text = core::str::from_utf8(name).map_err(|_| "zero bytes are UTF-8")?;
    match syscall::lookup(text) {
        Err(Error::NotFound) => Ok(1),
        other => Err(format!("lookup of a name in a missing page: {other:?}")),
    }
}

/// An async table in a missing page: read and rewritten (nothing VALID, nothing sent).
fn async_table_in_missing() -> Result<u64, String> {
    let table = fresh(1)? as *mut AsyncMessage;
    // SAFETY: four zeroed entries of a page of ours that stays mapped; no entry is VALID,
    // so the kernel never delivers from the table or writes it after this call.
    let result = unsafe { syscall::send_async(table, 4) };
    result.map_err(|e| format!("async table in a missing page: {e}"))?;
    Ok(1)
}

/// A grant of missing memory, then a safe copy into other missing memory: both run, and
/// the data arrives.
fn grant_and_copy_missing() -> Result<u64, String> {
    let me = ipc::self_endpoint();
    let granted = bytes_at(fresh(2)?, 2 * PAGE_SIZE as usize);
    // SAFETY: the grant (to ourselves) covers our own mapping, revoked below before the
    // slice is used again.
    let grant = unsafe {
        ipc::grant_create(
            me,
            granted.as_ptr(),
            granted.len(),
            grant_access::READ | grant_access::WRITE,
        )
    }
    .map_err(|e| format!("grant of missing memory: {e}"))?;
    // On the stack, not the heap: a fresh heap page would count as touched too.
    let mut pattern = [0u8; 64];
    pattern
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = i as u8);
    // Into the granted (still missing) second page, from present memory.
    let copied_in = ipc::safe_copy_to(me, grant, PAGE_SIZE as usize, &pattern)
        .map_err(|e| format!("safe copy into a granted missing page: {e}"));
    // Out of the grant into a missing page of another mapping.
    let destination = bytes_at(fresh(1)?, pattern.len());
    let copied_out = copied_in.and_then(|()| {
        ipc::safe_copy_from(me, grant, PAGE_SIZE as usize, destination)
            .map_err(|e| format!("safe copy into a missing page: {e}"))
    });
    ipc::grant_revoke(grant).map_err(|e| format!("revoke: {e}"))?;
    copied_out?;
    if *destination != pattern[..] || granted[PAGE_SIZE as usize..][..64] != pattern[..] {
        return Err("the copied bytes did not arrive".into());
    }
    // The grant's first page, the granted second page, the destination page.
    Ok(3)
}

/// A buffer at an address VM never mapped: EFAULT, and this program runs on.
fn unknown_address_fails() -> Result<(), String> {
    let base = fresh(1)?;
    vm::unmap(base, PAGE_SIZE).map_err(|e| format!("unmap: {e}"))?;
    // SAFETY: the kernel only reads 8 bytes at the address; nothing here reads them (the
    // slice is never dereferenced by this program).
    let name = unsafe { core::slice::from_raw_parts(base as *const u8, 8) };
    let result = syscall::debug_write(name);
    match result {
        Err(Error::Fault) => Ok(()),
        other => Err(format!(
            "a buffer VM does not know gave {other:?}, not EFAULT"
        )),
    }
}

/// A request sent to VM without waiting for the answer (Send, not SendReceive) must not hold
/// VM: its reply is dropped, and VM serves the next request (and every page fault) at once.
fn request_without_waiting() -> Result<(), String> {
    let server = vm::server().map_err(|e| format!("lookup vm: {e}"))?;
    let request = Message::new(vigil_rt::abi::vm::request::STATS);
    ipc::send(server, &request).map_err(|e| format!("send to VM: {e}"))?;
    fresh(1)
        .map(|_| ())
        .map_err(|e| format!("VM after a request it could not answer: {e}"))
}

fn run() -> Result<String, String> {
    let mut buffer = vec![0u8; 64 * 1024];
    resident(&mut buffer)?;
    let before = resident(&mut buffer)?;
    let mut touched = 0;
    touched += receive_into_missing()?;
    touched += snapshot_into_missing()?;
    touched += lookup_from_missing()?;
    touched += async_table_in_missing()?;
    touched += grant_and_copy_missing()?;
    let after = resident(&mut buffer)?;
    unknown_address_fails()?;
    suspended_calls_count_once(&mut buffer)?;
    request_without_waiting()?;
    if after - before != touched {
        return Err(format!(
            "the calls touched {touched} missing pages but resident went {before} -> {after}"
        ));
    }
    Ok(format!(
        "7 calls ran on {touched} missing pages: resident {before} -> {after} (+{touched}); \
         an unknown address gave EFAULT; suspended calls counted once; VM dropped the reply to a client that did not wait"
    ))
}

fn main(_args: &str) -> i32 {
    vigil_programs::finish("vm_syscall", run())
}
