//! `introspect_check`: checks the snapshot kernel call from user space. Booted as
//! `introspect_check kcalls=snapshot+shutdown` next to `pingpong_server` and a copy of itself
//! `name=introspect_denied -- denied` without privileges. Checks: a too-small buffer gets
//! only the header with the counts it needs; a full snapshot is consistent (this thread
//! Running, its helper thread Receiving from it, the server Receiving from ANY, every
//! thread's process present, this process with 2 threads and CPU time); generations and
//! timestamps increase; a process without the privilege is refused with EPERM.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::time::Duration;
use vigil_abi::introspect::{state_code, SnapshotHeader};
use vigil_abi::{Endpoint, Error};
use vigil_programs::{context, finish, lookup_with_retry};
use vigil_rt::{introspect, ipc, println, syscall, thread};

vigil_rt::entry!(main);

fn main(args: &str) -> i32 {
    if args.trim() == "denied" {
        let outcome = match syscall::snapshot(&mut [0u8; 4096]) {
            Err(Error::PermissionDenied) => Ok(String::from(
                "snapshot without privilege refused with EPERM",
            )),
            other => Err(format!(
                "snapshot without privilege returned {other:?}, expected EPERM"
            )),
        };
        let passed = vigil_programs::report("introspect-denied", &outcome);
        return if passed { 0 } else { 1 };
    }
    finish("introspect", run())
}

fn run() -> Result<String, String> {
    let main_thread = ipc::self_endpoint();
    // A helper blocked receiving from us: its wait target must be our endpoint.
    let helper = thread::spawn(move || {
        let _ = ipc::receive(main_thread);
    });
    let server = lookup_with_retry("pingpong_server")?;
    thread::sleep(Duration::from_millis(50));

    // Too small: EINVAL, and the header tells the required size.
    let mut small = [0u8; core::mem::size_of::<SnapshotHeader>()];
    match syscall::snapshot(&mut small) {
        Err(Error::InvalidArgument) => {}
        other => {
            return Err(format!(
                "a header-sized buffer returned {other:?}, expected EINVAL"
            ))
        }
    }
    let header = introspect::decode_header(&small).ok_or("the short call wrote no valid header")?;
    if header.thread_count < 3 || header.process_count < 2 {
        return Err(format!(
            "short call counts {} threads, {} processes",
            header.thread_count, header.process_count
        ));
    }
    if syscall::snapshot(&mut [0u8; 8]) != Err(Error::InvalidArgument) {
        return Err(String::from(
            "a buffer smaller than the header was not refused",
        ));
    }

    let first = context(introspect::snapshot(), "snapshot")?;
    let find = |endpoint: Endpoint| first.threads.iter().find(|t| t.endpoint == endpoint);
    let me = find(main_thread).ok_or("this thread is not in the snapshot")?;
    if me.state != state_code::RUNNING || me.counters.cpu_ns == 0 || me.counters.syscalls == 0 {
        return Err(format!(
            "this thread: state {} cpu {} ns syscalls {}",
            me.state, me.counters.cpu_ns, me.counters.syscalls
        ));
    }
    let helper_record =
        find(helper.endpoint()).ok_or("the helper thread is not in the snapshot")?;
    if helper_record.state != state_code::RECEIVING || helper_record.wait_target != main_thread {
        return Err(format!(
            "helper: state {} waiting on {:?}, expected RECEIVING from {main_thread:?}",
            helper_record.state, helper_record.wait_target
        ));
    }
    let server_record = find(server).ok_or("the server is not in the snapshot")?;
    if server_record.state != state_code::RECEIVING || server_record.wait_target != Endpoint::ANY {
        return Err(format!(
            "server: state {} waiting on {:?}",
            server_record.state, server_record.wait_target
        ));
    }
    for thread in &first.threads {
        if !first.processes.iter().any(|p| p.pid == thread.pid) {
            return Err(format!(
                "thread {:?} names pid {}, which is not in the snapshot",
                thread.endpoint, thread.pid
            ));
        }
    }
    let own = first
        .processes
        .iter()
        .find(|p| p.name() == "introspect_check")
        .ok_or("own process missing")?;
    if own.threads != 2 || own.memory_pages == 0 || own.cpu_ns < me.counters.cpu_ns {
        return Err(format!(
            "own process: {} threads, {} pages, {} ns",
            own.threads, own.memory_pages, own.cpu_ns
        ));
    }

    let second = context(introspect::snapshot(), "second snapshot")?;
    if second.header.generation <= first.header.generation
        || second.header.timestamp_ns <= first.header.timestamp_ns
    {
        return Err(String::from("generation or timestamp did not increase"));
    }
    // Let the unprivileged copy report, then make sure it is gone.
    thread::sleep(Duration::from_millis(100));
    if ipc::lookup("introspect_denied").is_ok() {
        return Err(String::from("introspect_denied is still running"));
    }
    println!(
        "introspect: {} threads, {} processes in {} bytes",
        first.header.thread_count,
        first.header.process_count,
        introspect::required_bytes(&first.header)
    );
    Ok(format!(
        "snapshot generation {} consistent",
        second.header.generation
    ))
}
