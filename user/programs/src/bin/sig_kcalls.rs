//! `sig_kcalls`: judges the signal manager's kernel calls on their own (scenario
//! `pm-signal-kcalls`), booted with `kcalls=pm+snapshot+shutdown` beside the boot process
//! `sig_victim` (`sig_child -- victim`). It makes itself the victim's manager
//! (`PmSetSignalManager`), stops and resumes it (the snapshot shows who stopped it), pokes
//! it into a null dereference and collects the event (`PmNextEvent`: pid, thread, vector
//! 14, address 0, the RIP), sees the thread held for it in the snapshot, resumes it
//! (`PmResumeThread`: it faults again and is held again) and kills it; and every bad call
//! — a forged pid or thread, a process it does not manage, itself, signal 0, a kernel
//! handler address, a wild event buffer, a thread that is not held, a direct-signal set
//! with KILL or STOP or with a handler outside user space — gets its own error.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::time::Duration;

use vigil_programs::{context, expect_refusal, finish};
use vigil_rt::abi::introspect::state_code;
use vigil_rt::abi::signal::{event, CatchableSet, Signal, KIND_PROCESS_EVENT};
use vigil_rt::abi::syscall::KernelCall;
use vigil_rt::abi::vm::Pid;
use vigil_rt::{introspect, ipc, syscall, thread, Endpoint, Error, Message};

vigil_rt::entry!(main);

fn main(args: &str) -> i32 {
    if args.trim() == "orphan" {
        return match orphan() {
            Ok(()) => 0,
            Err(reason) => {
                vigil_rt::println!("FAIL: {reason}");
                1
            }
        };
    }
    finish(
        "sig_kcalls",
        run().and_then(|done| judge_orphans().map(|o| format!("{done}; {o}"))),
    )
}

/// `sig_kcalls -- orphan` (as `sig_orphaner`): becomes the manager of `sig_victim2` and
/// `sig_victim3`, leaves the first held at its null dereference and the second stopped,
/// and exits, so the kernel must settle both without a manager.
fn orphan() -> Result<(), String> {
    let faulting = vigil_programs::lookup_with_retry("sig_victim2")?;
    vigil_programs::lookup_with_retry("sig_victim3")?;
    let own = pid_named("sig_orphaner")?;
    let (second, third) = (pid_named("sig_victim2")?, pid_named("sig_victim3")?);
    for victim in [second, third] {
        context(
            syscall::pm_set_signal_manager(Pid(victim), Pid(own)),
            "PmSetSignalManager",
        )?;
    }
    context(ipc::send(faulting, &Message::new(1)), "poke")?;
    let event = next_event()?;
    if event[event::PID] != u64::from(second) || event[event::VECTOR] != 14 {
        return Err(format!("the event: {event:?}"));
    }
    context(syscall::pm_stop(Pid(third)), "PmStop")?;
    if victim_state(third)?.3 != own {
        return Err(String::from("sig_victim3 is not stopped by the orphaner"));
    }
    vigil_rt::println!("exiting with pid {second} held for me and pid {third} stopped by me");
    Ok(())
}

/// After `sig_orphaner` exited: its held victim ended with its exception's status, its
/// stopped one runs (receiving) with no stop left.
fn judge_orphans() -> Result<String, String> {
    let third = pid_named("sig_victim3")?;
    let mut gone = false;
    for _ in 0..200 {
        if pid_named("sig_orphaner").is_err() && pid_named("sig_victim2").is_err() {
            gone = true;
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    if !gone {
        return Err(String::from(
            "sig_orphaner or its held victim sig_victim2 is still there after 2 s",
        ));
    }
    let (state, _, _, stopped_by) = victim_state(third)?;
    if stopped_by != 0 || state != state_code::RECEIVING {
        return Err(format!(
            "sig_victim3 after its manager exited: state {state}, stopped_by {stopped_by}"
        ));
    }
    // No manager now: PM may not signal it either, and nobody holds it.
    Ok(String::from(
        "a manager's exit ended its held victim and resumed its stopped one",
    ))
}

fn pid_named(name: &str) -> Result<u32, String> {
    introspect::snapshot()
        .map_err(|e| format!("snapshot: {e}"))?
        .processes
        .iter()
        .find(|process| process.name() == name)
        .map(|process| process.pid)
        .ok_or_else(|| format!("no process named {name}"))
}

/// The victim's main thread state and wait target, and its process's `stopped_by`.
fn victim_state(pid: u32) -> Result<(u8, Endpoint, u64, u32), String> {
    let snapshot = introspect::snapshot().map_err(|e| format!("snapshot: {e}"))?;
    let thread = snapshot
        .threads
        .iter()
        .find(|t| t.pid == pid)
        .ok_or("the victim has no thread")?;
    let process = snapshot
        .processes
        .iter()
        .find(|p| p.pid == pid)
        .ok_or("the victim is gone")?;
    Ok((
        thread.state,
        thread.wait_target,
        thread.wait_argument,
        process.stopped_by,
    ))
}

/// Waits for the kernel's event notice, then collects one event.
fn next_event() -> Result<[u64; 8], String> {
    let notice = context(ipc::receive(Endpoint::KERNEL), "receive the event notice")?;
    if notice.kind != KIND_PROCESS_EVENT {
        return Err(format!("the kernel sent kind {:#x}", notice.kind));
    }
    context(syscall::pm_next_event(), "PmNextEvent")?.ok_or_else(|| String::from("no event"))
}

fn run() -> Result<String, String> {
    let me = ipc::self_endpoint();
    let own = pid_named("sig_kcalls")?;
    let pm = pid_named("pm")?;
    let vm = pid_named("vm")?;
    let victim_endpoint = vigil_programs::lookup_with_retry("sig_victim")?;
    let victim = pid_named("sig_victim")?;
    let forged = Pid(999_999);

    expect_refusal(
        "manage a forged pid",
        syscall::pm_set_signal_manager(forged, Pid(own)),
        Error::NotFound,
    )?;
    expect_refusal(
        "a forged manager",
        syscall::pm_set_signal_manager(Pid(victim), forged),
        Error::NotFound,
    )?;
    expect_refusal(
        "be one's own manager",
        syscall::pm_set_signal_manager(Pid(own), Pid(own)),
        Error::InvalidArgument,
    )?;
    expect_refusal(
        "manage VM",
        syscall::pm_set_signal_manager(Pid(vm), Pid(own)),
        Error::PermissionDenied,
    )?;
    expect_refusal(
        "signal a process it does not manage",
        syscall::pm_signal(Pid(victim), Signal::USR1, 0),
        Error::PermissionDenied,
    )?;
    expect_refusal(
        "stop PM",
        syscall::pm_stop(Pid(pm)),
        Error::PermissionDenied,
    )?;
    expect_refusal("stop itself", syscall::pm_stop(Pid(own)), Error::SelfTarget)?;
    expect_refusal(
        "signal a forged pid",
        syscall::pm_signal(forged, Signal::USR1, 0),
        Error::NotFound,
    )?;
    // Signal 0 never gets past the boundary: the raw registers, as a forger would pass them.
    let raw = |signal: u64| {
        let registers = [u64::from(victim), signal, 0, 0, 0];
        // SAFETY: no memory is named.
        unsafe { raw_kernel_call(KernelCall::PmSignal, registers) }
    };
    expect_refusal("signal 0", raw(0), Error::InvalidArgument)?;
    expect_refusal("signal 64", raw(64), Error::InvalidArgument)?;
    // PmSignalDirect: the same checks of who, then of what it may raise where.
    let usr1 = CatchableSet::new(Signal::USR1.bit()).map_err(|e| format!("{e}"))?;
    let handler = vigil_rt::abi::layout::USER_IMAGE_MIN;
    expect_refusal(
        "direct signals of a forged pid",
        syscall::pm_signal_direct(forged, usr1, handler),
        Error::NotFound,
    )?;
    expect_refusal(
        "direct signals of a process it does not manage",
        syscall::pm_signal_direct(Pid(victim), usr1, handler),
        Error::PermissionDenied,
    )?;
    expect_refusal(
        "direct signals of itself",
        syscall::pm_signal_direct(Pid(own), usr1, handler),
        Error::SelfTarget,
    )?;
    let raw_direct = |bits: u64, handler: u64| {
        let registers = [u64::from(victim), bits, handler, 0, 0];
        // SAFETY: no memory is named.
        unsafe { raw_kernel_call(KernelCall::PmSignalDirect, registers) }
    };
    for (what, bits) in [
        ("direct KILL", Signal::KILL.bit()),
        ("direct STOP", Signal::STOP.bit()),
        ("direct bit 0", 1),
    ] {
        expect_refusal(what, raw_direct(bits, handler), Error::InvalidArgument)?;
    }

    context(
        syscall::pm_set_signal_manager(Pid(victim), Pid(own)),
        "PmSetSignalManager",
    )?;
    expect_refusal(
        "a kernel handler address",
        syscall::pm_signal(Pid(victim), Signal::USR1, 0xffff_8000_0000_0000),
        Error::InvalidArgument,
    )?;
    for (what, wild) in [
        ("a direct handler in the kernel", 0xffff_8000_0000_0000),
        ("a direct handler at null", 0),
    ] {
        expect_refusal(
            what,
            syscall::pm_signal_direct(Pid(victim), usr1, wild),
            Error::InvalidArgument,
        )?;
    }
    // Set and cleared (an empty set needs no handler): the victim's own behaviour is
    // sig_test's to judge; here only that a managed process is accepted.
    context(
        syscall::pm_signal_direct(Pid(victim), usr1, handler),
        "PmSignalDirect",
    )?;
    context(
        syscall::pm_signal_direct(Pid(victim), CatchableSet::EMPTY, 0),
        "PmSignalDirect (clear)",
    )?;
    let main_thread = victim_endpoint;
    expect_refusal(
        "resume a thread that is not held",
        syscall::pm_resume_thread(main_thread),
        Error::InvalidArgument,
    )?;
    expect_refusal(
        "resume a forged thread",
        syscall::pm_resume_thread(Endpoint::new(900, 77)),
        Error::DeadEndpoint,
    )?;
    // SAFETY: the buffer is in the unmapped null zone: the kernel refuses it.
    let wild = unsafe { raw_kernel_call(KernelCall::PmNextEvent, [0x10, 0, 0, 0, 0]) };
    expect_refusal("a wild event buffer", wild, Error::Fault)?;
    if context(syscall::pm_next_event(), "PmNextEvent")?.is_some() {
        return Err(String::from("an event before any exception"));
    }

    // Stop and resume: idempotent, visible with who stopped it.
    context(syscall::pm_stop(Pid(victim)), "PmStop")?;
    context(syscall::pm_stop(Pid(victim)), "PmStop again")?;
    let (_, _, _, stopped_by) = victim_state(victim)?;
    if stopped_by != own {
        return Err(format!("stopped_by {stopped_by}, not {own}"));
    }
    context(syscall::pm_resume(Pid(victim)), "PmResume")?;
    context(syscall::pm_resume(Pid(victim)), "PmResume again")?;
    let (state, _, _, stopped_by) = victim_state(victim)?;
    if stopped_by != 0 || state != state_code::RECEIVING {
        return Err(format!(
            "after resume: state {state}, stopped_by {stopped_by}"
        ));
    }

    // The exception: an event, a held thread, resumed into the same fault, then killed.
    context(ipc::send(victim_endpoint, &Message::new(1)), "poke")?;
    let first = next_event()?;
    let fine = first[event::PID] == u64::from(victim)
        && first[event::THREAD] == main_thread.0
        && first[event::KIND] == event::EXCEPTION
        && first[event::VECTOR] == 14
        && first[event::FAULT_ADDRESS] == 0
        && first[event::RIP] >= 0x40_0000;
    if !fine {
        return Err(format!("the event: {first:?}"));
    }
    let (state, target, vector, _) = victim_state(victim)?;
    if state != state_code::HELD_FOR_MANAGER || target != me || vector != 14 {
        return Err(format!(
            "held state {state}, target {target}, vector {vector}"
        ));
    }
    vigil_rt::println!(
        "event: pid {victim} thread {main_thread} vector 14 address 0 at {:#x}; held for {me}",
        first[event::RIP]
    );
    context(syscall::pm_resume_thread(main_thread), "PmResumeThread")?;
    let second = next_event()?;
    if second[event::RIP] != first[event::RIP] {
        return Err(format!(
            "the resumed thread faulted at {:#x}",
            second[event::RIP]
        ));
    }
    context(
        syscall::pm_kill(Pid(victim), 139),
        "PmKill of the held victim",
    )?;
    thread::sleep(Duration::from_millis(10));
    if pid_named("sig_victim").is_ok() {
        return Err(String::from("the killed victim is still there"));
    }
    Ok(String::from(
        "manager change, stop/resume, event, held thread resumed and killed",
    ))
}

/// A kernel call with raw argument registers (to pass what the typed wrappers cannot).
///
/// # Safety
/// The registers must name no memory the kernel could write that the caller relies on.
unsafe fn raw_kernel_call(call: KernelCall, registers: [u64; 5]) -> Result<u64, Error> {
    // SAFETY: guaranteed by the caller.
    let rax = unsafe {
        syscall::syscall6(
            vigil_rt::abi::syscall::Syscall::KernelCall as u64,
            call as u64,
            registers[0],
            registers[1],
            registers[2],
            registers[3],
            registers[4],
        )
    };
    Error::from_return_value(rax)
}
