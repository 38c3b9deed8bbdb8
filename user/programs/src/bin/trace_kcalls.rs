//! `trace_kcalls`: the tracing kernel calls (PmGetRegisters, PmSetRegisters, PmPeek,
//! PmPoke) driven directly, as PM will drive them (booted with `kcalls=pm+vm+shutdown`).
//!
//! It builds a tiny process itself (PmCreate, PmMapImage, PmCopyTo, PmStart: it is then
//! that process's signal manager) whose code is two spin loops, and checks that it reads
//! the spinner's registers where the code says they must be, moves it to the other loop by
//! writing `rip`, patches its read-only code with a poke and runs the patch, and that every
//! bad call is refused with its own error and changes nothing: a thread or process it does
//! not manage (itself, VM), a kernel `rip`, the trap flag, an unmapped or oversized range,
//! a poke into a frame another mapping shares. Prints `trace_kcalls: PASS …` and shuts down.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::time::Duration;
use vigil_rt::abi::layout::USER_IMAGE_MIN;
use vigil_rt::abi::pm::{ImageFlags, Priority, MAX_COPY_BYTES};
use vigil_rt::abi::ptrace::{Registers, TraceFlags};
use vigil_rt::abi::signal::{event, ProcessEvent};
use vigil_rt::abi::vm::{MapFlags, PageRange, Pid, SharedRanges, PAGE_SIZE};
use vigil_rt::abi::Endpoint;
use vigil_rt::{ipc, println, ptrace, syscall, thread, Error};

vigil_rt::entry!(main);

/// Where the tracee's code page goes, and a second page that shares its frame.
const CODE: u64 = USER_IMAGE_MIN;
const SHARED_VIEW: u64 = USER_IMAGE_MIN + 0x10_0000;

/// `mov rax, 0x1234; 1: jmp 1b` at 0, `mov rbx, 0x9999; 1: jmp 1b` at 9.
const SPINNERS: [u8; 18] = [
    0x48, 0xc7, 0xc0, 0x34, 0x12, 0x00, 0x00, 0xeb, 0xfe, // at 0: loop at 7
    0x48, 0xc7, 0xc3, 0x99, 0x99, 0x00, 0x00, 0xeb, 0xfe, // at 9: loop at 16
];
/// `mov rdx, 0x7777; 1: jmp 1b`, poked in at 0x20 (its loop at 0x27).
const PATCH: [u8; 9] = [0x48, 0xc7, 0xc2, 0x77, 0x77, 0x00, 0x00, 0xeb, 0xfe];

fn refused(what: &str, result: Result<(), Error>, expected: Error) -> Result<(), String> {
    match result {
        Err(error) if error == expected => {
            println!("refused as expected: {what}: {error}");
            Ok(())
        }
        other => Err(format!("{what}: expected {expected}, got {other:?}")),
    }
}

/// Lets the tracee (lower priority) run for a while.
fn let_it_run() {
    thread::sleep(Duration::from_millis(30));
}

fn registers(thread: Endpoint) -> Result<Registers, String> {
    ptrace::get_registers(thread).map_err(|e| format!("get_registers: {e}"))
}

fn check(what: &str, got: u64, want: u64) -> Result<(), String> {
    if got != want {
        return Err(format!("{what}: {got:#x}, expected {want:#x}"));
    }
    Ok(())
}

fn run() -> Result<String, String> {
    let me = ipc::self_endpoint();
    let vm = ipc::lookup("vm").map_err(|e| format!("lookup vm: {e}"))?;
    let my_pid = Pid(syscall::vm_process_of(me).map_err(|e| format!("own pid: {e}"))? as u32);

    let lowest = Priority::new(u64::from(Priority::LOWEST)).map_err(|e| format!("{e}"))?;
    let pid = syscall::pm_create("tracee", lowest, 0, 0).map_err(|e| format!("create: {e}"))?;
    let pid = Pid(pid as u32);
    let page = PageRange::new(CODE, 1).map_err(|e| format!("{e}"))?;
    syscall::pm_map_image(pid, page, ImageFlags::EXECUTABLE).map_err(|e| format!("map: {e}"))?;
    syscall::pm_copy_to(pid, CODE, &SPINNERS).map_err(|e| format!("copy: {e}"))?;
    let tracee = syscall::pm_start(pid, CODE, b"").map_err(|e| format!("start: {e}"))?;
    let_it_run();

    // Reading: the spinner is in its first loop, with the value it loaded.
    let first = registers(tracee)?;
    check("rip in the first loop", first.rip, CODE + 7)?;
    check("rax", first.rax, 0x1234)?;
    let mut code = [0u8; SPINNERS.len()];
    ptrace::peek(pid, CODE, &mut code).map_err(|e| format!("peek: {e}"))?;
    if code != SPINNERS {
        return Err(format!("peek read {code:02x?}, not the code"));
    }

    // Writing rip: it runs the second loop, with the other registers as they were.
    let mut moved = first;
    moved.rip = CODE + 9;
    ptrace::set_registers(tracee, &moved).map_err(|e| format!("set_registers: {e}"))?;
    let_it_run();
    let second = registers(tracee)?;
    check("rip in the second loop", second.rip, CODE + 16)?;
    check("rbx", second.rbx, 0x9999)?;
    check("rax kept", second.rax, 0x1234)?;

    // Poking read-only code, then running the patch.
    ptrace::poke(pid, CODE + 0x20, &PATCH).map_err(|e| format!("poke: {e}"))?;
    let mut patched = [0u8; PATCH.len()];
    ptrace::peek(pid, CODE + 0x20, &mut patched).map_err(|e| format!("peek patch: {e}"))?;
    if patched != PATCH {
        return Err(format!("the patch reads back as {patched:02x?}"));
    }
    let mut to_patch = second;
    to_patch.rip = CODE + 0x20;
    ptrace::set_registers(tracee, &to_patch).map_err(|e| format!("set_registers: {e}"))?;
    let_it_run();
    let third = registers(tracee)?;
    check("rip in the patch", third.rip, CODE + 0x27)?;
    check("rdx", third.rdx, 0x7777)?;

    // Refusals; each leaves the tracee as it was.
    let mut bad = third;
    bad.rip = 0xffff_ffff_8000_0000;
    refused(
        "a kernel rip",
        ptrace::set_registers(tracee, &bad),
        Error::InvalidArgument,
    )?;
    bad.rip = 0x8000_0000_0000;
    refused(
        "a non-canonical rip",
        ptrace::set_registers(tracee, &bad),
        Error::InvalidArgument,
    )?;
    bad = third;
    bad.rflags |= 1 << 8;
    refused(
        "the trap flag",
        ptrace::set_registers(tracee, &bad),
        Error::InvalidArgument,
    )?;
    bad.rflags = third.rflags & !(1 << 9);
    refused(
        "interrupts off",
        ptrace::set_registers(tracee, &bad),
        Error::InvalidArgument,
    )?;
    let_it_run();
    let after = registers(tracee)?;
    check("rip after the refusals", after.rip, CODE + 0x27)?;
    refused(
        "registers of its own thread",
        ptrace::get_registers(me).map(|_| ()),
        Error::PermissionDenied,
    )?;
    refused(
        "registers of VM",
        ptrace::get_registers(vm).map(|_| ()),
        Error::PermissionDenied,
    )?;
    refused(
        "a stale endpoint",
        ptrace::get_registers(Endpoint(0xdead_0000_0001)).map(|_| ()),
        Error::DeadEndpoint,
    )?;
    let mut byte = [0u8; 1];
    refused(
        "peek of itself",
        ptrace::peek(my_pid, CODE, &mut byte),
        Error::PermissionDenied,
    )?;
    refused(
        "peek of no process",
        ptrace::peek(Pid(999_999), CODE, &mut byte),
        Error::NotFound,
    )?;
    refused(
        "peek of an unmapped page",
        ptrace::peek(pid, CODE + 0x20_0000, &mut byte),
        Error::Fault,
    )?;
    refused(
        "poke of an unmapped page",
        ptrace::poke(pid, CODE + PAGE_SIZE, &PATCH),
        Error::Fault,
    )?;
    let mut big = alloc::vec![0u8; MAX_COPY_BYTES as usize + 1];
    refused(
        "an oversized peek",
        ptrace::peek(pid, CODE, &mut big),
        Error::InvalidArgument,
    )?;
    refused(
        "a peek at a kernel address",
        ptrace::peek(pid, 0xffff_ffff_8000_0000, &mut byte),
        Error::Fault,
    )?;
    // A frame two mappings hold: a poke would change both.
    let ranges = SharedRanges::new(CODE, SHARED_VIEW, 1).map_err(|e| format!("{e}"))?;
    syscall::vm_map_shared(pid, pid, ranges, MapFlags::READ_ONLY)
        .map_err(|e| format!("share: {e}"))?;
    refused(
        "poke of a shared frame",
        ptrace::poke(pid, CODE + 0x20, &[0x90]),
        Error::PermissionDenied,
    )?;
    ptrace::peek(pid, CODE + 0x20, &mut patched).map_err(|e| format!("peek again: {e}"))?;
    if patched != PATCH {
        return Err(String::from("a refused poke changed the code"));
    }

    syscall::pm_kill(pid, 9).map_err(|e| format!("kill: {e}"))?;
    // Its manager is not PM, so nobody keeps its exit: the slot is free at once.
    refused(
        "registers of the killed tracee",
        ptrace::get_registers(tracee).map(|_| ()),
        Error::DeadEndpoint,
    )?;
    refused(
        "peek of the killed tracee",
        ptrace::peek(pid, CODE, &mut byte),
        Error::NotFound,
    )?;
    Ok(format!(
        "registers read at rip {:#x}, rip moved twice, read-only code patched, 16 bad calls refused",
        CODE + 7
    ))
}

/// Where the syscall tracee's code goes.
const LOOPER: u64 = USER_IMAGE_MIN + 0x20_0000;

/// `0: mov eax, 19 (ClockNs); 5: syscall; 7: mov eax, 11 (Yield); 12: syscall; 14: jmp 0`.
const SYSCALL_LOOP: [u8; 16] = [
    0xb8, 0x13, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xb8, 0x0b, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf0,
];

/// The next event about a process this program manages (waiting up to about 2 s).
fn next_event() -> Result<ProcessEvent, String> {
    for _ in 0..200 {
        if let Some(event) = syscall::pm_next_event().map_err(|e| format!("next_event: {e}"))? {
            return Ok(event);
        }
        thread::sleep(Duration::from_millis(10));
    }
    Err(String::from("no event within 2 s"))
}

/// Resumes the held tracee and checks the next event's kind and rip.
fn expect_stop(tracee: Endpoint, what: &str, kind: u64, rip: u64) -> Result<Registers, String> {
    let event = next_event()?;
    if event[event::KIND] != kind || event[event::RIP] != rip || event[event::THREAD] != tracee.0 {
        return Err(format!(
            "{what}: event {event:x?}, expected kind {kind} at rip {rip:#x}"
        ));
    }
    registers(tracee)
}

fn resume(tracee: Endpoint) -> Result<(), String> {
    syscall::pm_resume_thread(tracee)
        .map(|_| ())
        .map_err(|e| format!("resume: {e}"))
}

/// Trace stops: entry and exit of each call (with the call changed at its entry), steps
/// (one over a SYSCALL instruction), and no stop once the flags are off.
fn trace_stops() -> Result<String, String> {
    let lowest = Priority::new(u64::from(Priority::LOWEST)).map_err(|e| format!("{e}"))?;
    let pid = syscall::pm_create("looper", lowest, 0, 0).map_err(|e| format!("create: {e}"))?;
    let pid = Pid(pid as u32);
    let page = PageRange::new(LOOPER, 1).map_err(|e| format!("{e}"))?;
    syscall::pm_map_image(pid, page, ImageFlags::EXECUTABLE).map_err(|e| format!("map: {e}"))?;
    syscall::pm_copy_to(pid, LOOPER, &SYSCALL_LOOP).map_err(|e| format!("copy: {e}"))?;
    let tracee = syscall::pm_start(pid, LOOPER, b"").map_err(|e| format!("start: {e}"))?;
    ptrace::set_flags(tracee, TraceFlags::SYSCALLS).map_err(|e| format!("flags: {e}"))?;

    let entry = expect_stop(tracee, "ClockNs entry", event::SYSCALL_ENTRY, LOOPER + 5)?;
    check("ClockNs number at entry", entry.rax, 19)?;
    resume(tracee)?;
    let exit = expect_stop(tracee, "ClockNs exit", event::SYSCALL_EXIT, LOOPER + 7)?;
    if exit.rax == 0 || Error::from_return_value(exit.rax).is_err() {
        return Err(format!("ClockNs returned {:#x}", exit.rax));
    }
    resume(tracee)?;
    let mut entry = expect_stop(tracee, "Yield entry", event::SYSCALL_ENTRY, LOOPER + 12)?;
    check("Yield number at entry", entry.rax, 11)?;
    // The tracer changes the call: SelfEndpoint (18) runs instead.
    entry.rax = 18;
    ptrace::set_registers(tracee, &entry).map_err(|e| format!("set at entry: {e}"))?;
    resume(tracee)?;
    let exit = expect_stop(
        tracee,
        "changed call's exit",
        event::SYSCALL_EXIT,
        LOOPER + 14,
    )?;
    check(
        "SelfEndpoint's result (the changed call ran)",
        exit.rax,
        tracee.0,
    )?;

    let previous = ptrace::set_flags(tracee, TraceFlags::STEP).map_err(|e| format!("{e}"))?;
    if previous != TraceFlags::SYSCALLS {
        return Err(format!("previous flags {previous:?}"));
    }
    resume(tracee)?;
    expect_stop(tracee, "step over jmp", event::STEP, LOOPER)?;
    ptrace::set_flags(tracee, TraceFlags::STEP).map_err(|e| format!("{e}"))?;
    resume(tracee)?;
    let at_syscall = expect_stop(tracee, "step over mov", event::STEP, LOOPER + 5)?;
    check("eax after the stepped mov", at_syscall.rax, 19)?;
    ptrace::set_flags(tracee, TraceFlags::STEP).map_err(|e| format!("{e}"))?;
    resume(tracee)?;
    let after_call = expect_stop(tracee, "step over syscall", event::STEP, LOOPER + 7)?;
    if after_call.rax == 19 || Error::from_return_value(after_call.rax).is_err() {
        return Err(format!(
            "the stepped-over ClockNs left rax {:#x}",
            after_call.rax
        ));
    }
    if after_call.rflags & (1 << 8) != 0 {
        return Err(String::from("the trap flag is still set after the step"));
    }

    ptrace::set_flags(tracee, TraceFlags::NONE).map_err(|e| format!("{e}"))?;
    resume(tracee)?;
    let_it_run();
    if let Some(event) = syscall::pm_next_event().map_err(|e| format!("{e}"))? {
        return Err(format!("an event with the flags off: {event:x?}"));
    }
    let free = registers(tracee)?;
    if !(LOOPER..LOOPER + 16).contains(&free.rip) {
        return Err(format!("the untraced looper is at {:#x}", free.rip));
    }

    refused(
        "trace flags of its own thread",
        ptrace::set_flags(ipc::self_endpoint(), TraceFlags::SYSCALLS).map(|_| ()),
        Error::SelfTarget,
    )?;
    let vm = ipc::lookup("vm").map_err(|e| format!("lookup vm: {e}"))?;
    refused(
        "trace flags of VM",
        ptrace::set_flags(vm, TraceFlags::SYSCALLS).map(|_| ()),
        Error::PermissionDenied,
    )?;
    refused(
        "resuming a thread that is not held",
        syscall::pm_resume_thread(tracee).map(|_| ()),
        Error::InvalidArgument,
    )?;
    syscall::pm_kill(pid, 9).map_err(|e| format!("kill: {e}"))?;
    Ok(String::from(
        "entry and exit stops (a call changed at entry), 3 steps (one over SYSCALL), none untraced",
    ))
}

fn main(_args: &str) -> i32 {
    match run().and_then(|summary| {
        let stops = trace_stops()?;
        println!("trace stops: {stops}");
        Ok(summary)
    }) {
        Ok(summary) => {
            println!("PASS {summary}");
            vigil_rt::process::shutdown(true)
        }
        Err(reason) => {
            println!("FAIL: {reason}");
            vigil_rt::process::shutdown(false)
        }
    }
}
