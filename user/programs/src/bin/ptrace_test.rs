//! `ptrace_test`: every tracing verb through PM (`vigil_rt::trace`), for the `ptrace-pm`
//! scenario (booted `kcalls=snapshot+shutdown`, with `trace_target`, `pm_child`, `vtrace`
//! and this program as `ptrace_helper` among the `boot=pm` images).
//!
//! Spawn traced, registers, peek and poke, a single step, syscall stops (one call changed
//! at its entry), detach; following children; a tracer's death letting its tracee go;
//! every bad request refused; then `vtrace -f trace_target spawn` runs and its output is
//! the scenario's to check. As `ptrace_helper -- tracer PID` it attaches to PID, sleeps
//! and exits (the tracer that dies).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::time::Duration;
use vigil_rt::abi::introspect::state_code;
use vigil_rt::abi::ptrace::request::{event, mode, options, MAX_PEEK_BYTES, TRACE};
use vigil_rt::abi::ptrace::{direct, ResumeMode};
use vigil_rt::abi::syscall::Syscall;
use vigil_rt::abi::Endpoint;
use vigil_rt::trace::{self, TraceEvent};
use vigil_rt::{introspect, ipc, pm, println, thread, Error};

vigil_rt::entry!(main);

fn refused(what: &str, result: Result<(), Error>, expected: Error) -> Result<(), String> {
    match result {
        Err(error) if error == expected => {
            println!("refused as expected: {what}: {error}");
            Ok(())
        }
        other => Err(format!("{what}: expected {expected}, got {other:?}")),
    }
}

fn next(pid: u64) -> Result<TraceEvent, String> {
    trace::wait(pid, false)
        .map_err(|e| format!("wait for {pid}: {e}"))?
        .ok_or_else(|| String::from("wait answered nothing"))
}

fn expect(pid: u64, kind: u64, what: &str) -> Result<TraceEvent, String> {
    let stop = next(pid)?;
    if stop.kind != kind || stop.pid != pid {
        return Err(format!(
            "{what}: got {stop:?}, expected kind {kind} of pid {pid}"
        ));
    }
    Ok(stop)
}

fn go(pid: u64, how: u64) -> Result<(), String> {
    trace::resume(pid, how).map_err(|e| format!("continue {pid}: {e}"))
}

/// The process record of `pid` in a fresh snapshot.
fn stopped_by(pid: u64) -> Result<u32, String> {
    let snapshot = introspect::snapshot().map_err(|e| format!("snapshot: {e}"))?;
    snapshot
        .processes
        .iter()
        .find(|p| u64::from(p.pid) == pid)
        .map(|p| p.stopped_by)
        .ok_or_else(|| format!("pid {pid} is not in the snapshot"))
}

/// A raw TRACE request, to send what the typed client cannot.
fn raw_trace(payload: [u64; 6]) -> Result<(), Error> {
    ipc::request(
        pm::server()?,
        TRACE,
        payload,
        vigil_rt::abi::pm::request::REPLY,
    )
    .map(|_| ())
}

fn verbs() -> Result<(), String> {
    let pid = trace::spawn("trace_target", 0).map_err(|e| format!("spawn traced: {e}"))?;
    let attached = expect(pid, event::ATTACHED, "spawned traced")?;
    let registers = trace::get_registers(attached.thread).map_err(|e| format!("regs: {e}"))?;
    let entry = registers.rip;
    // Peek the first instructions and poke them back unchanged.
    let mut code = [0u8; 16];
    trace::peek(pid, entry, &mut code).map_err(|e| format!("peek: {e}"))?;
    if code == [0; 16] {
        return Err(String::from("peek read zeros at the entry"));
    }
    trace::poke(pid, entry, &code).map_err(|e| format!("poke: {e}"))?;
    let mut again = [0u8; 16];
    trace::peek(pid, entry, &mut again).map_err(|e| format!("peek again: {e}"))?;
    if again != code {
        return Err(String::from("the code changed after poking it back"));
    }
    println!("peek/poke at the entry {entry:#x}: {:02x?}", &code[..4]);
    // One instruction.
    go(pid, mode::STEP)?;
    let step = expect(pid, event::STEP, "single step")?;
    if step.rip == entry {
        return Err(format!("a step from {entry:#x} stayed there"));
    }
    println!("single step: rip {entry:#x} -> {:#x}", step.rip);
    // System calls: the first is lookup("vm"); the second, lookup("nope"), is changed into
    // SelfEndpoint at its entry.
    go(pid, mode::SYSCALLS)?;
    let first = expect(pid, event::SYSCALL_ENTRY, "first call's entry")?;
    if first.value != Syscall::Lookup as u64 {
        return Err(format!("the first call is {}, not Lookup", first.value));
    }
    go(pid, mode::SYSCALLS)?;
    let exit = expect(pid, event::SYSCALL_EXIT, "first call's exit")?;
    let vm = ipc::lookup("vm").map_err(|e| format!("lookup vm: {e}"))?;
    if exit.value != vm.0 {
        return Err(format!(
            "lookup(vm) returned {:#x}, not {:#x}",
            exit.value, vm.0
        ));
    }
    go(pid, mode::SYSCALLS)?;
    let second = expect(pid, event::SYSCALL_ENTRY, "second call's entry")?;
    let mut changed = trace::get_registers(second.thread).map_err(|e| format!("regs: {e}"))?;
    changed.rax = Syscall::SelfEndpoint as u64;
    trace::set_registers(second.thread, &changed).map_err(|e| format!("set regs: {e}"))?;
    go(pid, mode::SYSCALLS)?;
    let changed_exit = expect(pid, event::SYSCALL_EXIT, "changed call's exit")?;
    if changed_exit.value != second.thread.0 {
        return Err(format!(
            "the changed call returned {:#x}, not the tracee's endpoint",
            changed_exit.value
        ));
    }
    println!(
        "syscall stops: lookup(vm) = vm; lookup(\"nope\") changed at entry into self_endpoint"
    );
    // The direct path: with the tracee held at a stop, continue-and-wait is one system
    // call, and the kernel hands over the next stop itself (the 1 ms sleep's entry, exit).
    let sleep_entry = trace::resume_and_wait(pid, mode::SYSCALLS)
        .map_err(|e| format!("direct continue to sleep's entry: {e}"))?;
    let sleep_exit = trace::resume_and_wait(pid, mode::SYSCALLS)
        .map_err(|e| format!("direct continue to sleep's exit: {e}"))?;
    if !(sleep_entry.direct && sleep_exit.direct)
        || sleep_entry.kind != event::SYSCALL_ENTRY
        || sleep_exit.kind != event::SYSCALL_EXIT
        || sleep_entry.value != Syscall::Sleep as u64
    {
        return Err(format!(
            "expected sleep's entry and exit from the kernel, got {sleep_entry:?} and {sleep_exit:?}"
        ));
    }
    println!("direct path: sleep's entry and exit stops came from the kernel, not PM");
    // Bad requests, the tracee still stopped.
    refused("attach to PM", trace::attach(2, 0), Error::PermissionDenied)?;
    refused("attach to VM", trace::attach(1, 0), Error::PermissionDenied)?;
    let me = introspect::snapshot()
        .ok()
        .and_then(|s| {
            let me = ipc::self_endpoint();
            s.threads
                .iter()
                .find(|t| t.endpoint == me)
                .map(|t| u64::from(t.pid))
        })
        .ok_or("own pid")?;
    refused("attach to itself", trace::attach(me, 0), Error::SelfTarget)?;
    refused(
        "attach to no process",
        trace::attach(4000, 0),
        Error::NotFound,
    )?;
    refused("attach twice", trace::attach(pid, 0), Error::Exists)?;
    let mut record = [0u64; direct::RECORD_WORDS];
    refused(
        "direct wait on a process it does not trace",
        trace::resume_wait_kernel(1, ResumeMode::WaitOnly, &mut record).map(|_| ()),
        Error::PermissionDenied,
    )?;
    refused(
        "direct wait on no process",
        trace::resume_wait_kernel(4000, ResumeMode::WaitOnly, &mut record).map(|_| ()),
        Error::NotFound,
    )?;
    match trace::resume_wait_kernel(pid, ResumeMode::WaitOnly, &mut record) {
        Ok(direct::NOT_AT_STOP) => println!("direct wait-only on a held tracee: NOT_AT_STOP"),
        other => {
            return Err(format!(
                "a wait-only direct call on a held tracee answered {other:?}, not NOT_AT_STOP"
            ))
        }
    }
    refused(
        "attach with unknown options",
        trace::attach(pid, 8),
        Error::InvalidArgument,
    )?;
    refused(
        "registers of an untraced thread",
        trace::get_registers(ipc::self_endpoint()).map(|_| ()),
        Error::PermissionDenied,
    )?;
    refused(
        "registers of a forged endpoint",
        trace::get_registers(Endpoint(0xdead_0000_0001)).map(|_| ()),
        Error::DeadEndpoint,
    )?;
    refused(
        "continue in mode 7",
        trace::resume(pid, 7),
        Error::InvalidArgument,
    )?;
    refused(
        "continue an untraced pid",
        trace::resume(me, mode::RUN),
        Error::PermissionDenied,
    )?;
    refused(
        "peek of 0 bytes",
        raw_trace([7, pid, entry, 0, 0, 0]),
        Error::InvalidArgument,
    )?;
    refused(
        "peek of more than MAX_PEEK_BYTES",
        raw_trace([7, pid, entry, 0, MAX_PEEK_BYTES + 1, 0]),
        Error::InvalidArgument,
    )?;
    refused(
        "peek with a forged grant",
        raw_trace([7, pid, entry, 77, 8, 0]),
        Error::BadGrant,
    )?;
    let mut byte = [0u8; 1];
    refused(
        "peek of an unmapped address",
        trace::peek(pid, 0x10, &mut byte),
        Error::Fault,
    )?;
    refused(
        "unknown verb",
        raw_trace([99, pid, 0, 0, 0, 0]),
        Error::NoSuchCall,
    )?;
    refused(
        "wait with unknown flags",
        raw_trace([4, pid, 6, 0, 0, 0]),
        Error::InvalidArgument,
    )?;
    refused(
        "detach an untraced pid",
        trace::detach(me),
        Error::PermissionDenied,
    )?;
    // Detached, it runs to its end; its parent (this program) collects it.
    trace::detach(pid).map_err(|e| format!("detach: {e}"))?;
    let exited = pm::wait(Some(pid)).map_err(|e| format!("wait: {e}"))?;
    if exited.status != 3 {
        return Err(format!("the detached tracee ended with {}", exited.status));
    }
    refused(
        "wait after its tracee ended",
        trace::wait(pid, true).map(|_| ()),
        Error::NotFound,
    )?;
    println!("detached: the tracee ran to its end (status 3)");
    Ok(())
}

fn follow() -> Result<(), String> {
    let parent = trace::spawn("trace_target -- spawn", options::FOLLOW_CHILDREN)
        .map_err(|e| format!("spawn traced: {e}"))?;
    expect(parent, event::ATTACHED, "followed parent")?;
    go(parent, mode::RUN)?;
    let child = next(0)?;
    if child.kind != event::ATTACHED || child.value != parent {
        return Err(format!(
            "expected the child's ATTACHED from {parent}, got {child:?}"
        ));
    }
    go(child.pid, mode::RUN)?;
    let mut ended = [false; 2];
    while ended != [true; 2] {
        let stop = next(0)?;
        if stop.kind != event::EXITED || stop.value != 3 {
            return Err(format!("expected exits with status 3, got {stop:?}"));
        }
        ended[usize::from(stop.pid == parent)] = true;
    }
    let _ = pm::wait(Some(parent));
    println!(
        "followed: child {} of {parent} traced from its start; both exited 3",
        child.pid
    );
    Ok(())
}

fn tracer_death() -> Result<(), String> {
    let victim = pm::spawn("pm_child", "sleep").map_err(|e| format!("spawn victim: {e}"))?;
    let helper = pm::spawn("ptrace_helper", &format!("tracer {victim}"))
        .map_err(|e| format!("spawn helper: {e}"))?;
    let mut seen_stopped = false;
    for _ in 0..100 {
        if stopped_by(victim)? != 0 {
            seen_stopped = true;
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    if !seen_stopped {
        return Err(String::from(
            "the victim never showed as stopped by its tracer",
        ));
    }
    let helper_exit = pm::wait(Some(helper)).map_err(|e| format!("wait helper: {e}"))?;
    if helper_exit.status != 0 {
        return Err(format!(
            "the helper tracer ended with {}",
            helper_exit.status
        ));
    }
    let after = stopped_by(victim)?;
    if after != 0 {
        return Err(format!(
            "after its tracer died the victim is still stopped by {after}"
        ));
    }
    pm::kill(victim, 9).map_err(|e| format!("kill victim: {e}"))?;
    let _ = pm::wait(Some(victim));
    println!("tracer death: pid {victim} detached and running again when tracer {helper} ended");
    Ok(())
}

/// The tracee is killed while its tracer waits for it in the kernel: the wait ends with
/// "ask PM", and PM's answer is the exit.
fn killed_while_waiting() -> Result<(), String> {
    let pid = trace::spawn("pm_child -- syscalls", 0).map_err(|e| format!("spawn traced: {e}"))?;
    expect(pid, event::ATTACHED, "spawned traced")?;
    // Held at a trace stop, so the next continue-and-wait is the direct one; it lets the
    // tracee run untraced, and the only thing that can end the wait is the kill.
    go(pid, mode::SYSCALLS)?;
    expect(pid, event::SYSCALL_ENTRY, "a first call's entry")?;
    let killer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        if let Err(error) = pm::kill(pid, 137) {
            println!("killing {pid} failed: {error}");
        }
    });
    let stop = trace::resume_and_wait(pid, mode::RUN).map_err(|e| format!("wait: {e}"))?;
    let _ = killer.join();
    if stop.kind != event::EXITED || stop.direct || stop.value != 137 {
        return Err(format!(
            "killed while waited for directly: expected PM's EXITED 137, got {stop:?}"
        ));
    }
    let _ = pm::wait(Some(pid));
    println!("killed while waited for in the kernel: PM reported its exit (137)");
    Ok(())
}

/// The tracer is killed while it waits for its tracee in the kernel: no wait stays, and
/// the tracee runs on untraced.
fn tracer_killed_while_waiting() -> Result<(), String> {
    let victim = pm::spawn("pm_child", "syscalls").map_err(|e| format!("spawn victim: {e}"))?;
    let helper = pm::spawn("ptrace_helper", &format!("tracer {victim} wait"))
        .map_err(|e| format!("spawn helper: {e}"))?;
    let mut waiting = false;
    for _ in 0..200 {
        let snapshot = introspect::snapshot().map_err(|e| format!("snapshot: {e}"))?;
        waiting = snapshot.threads.iter().any(|t| {
            u64::from(t.pid) == helper
                && t.state == state_code::WAITING_FOR_TRACEE
                && t.wait_argument == victim
        });
        if waiting {
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    if !waiting {
        return Err(format!(
            "the helper {helper} never showed waiting for tracee {victim} in a snapshot"
        ));
    }
    pm::kill(helper, 137).map_err(|e| format!("kill helper: {e}"))?;
    let _ = pm::wait(Some(helper));
    let snapshot = introspect::snapshot().map_err(|e| format!("snapshot: {e}"))?;
    if let Some(left) = snapshot
        .threads
        .iter()
        .find(|t| t.state == state_code::WAITING_FOR_TRACEE)
    {
        return Err(format!(
            "a tracer wait stayed after its tracer died: {left:?}"
        ));
    }
    let after = stopped_by(victim)?;
    if after != 0 {
        return Err(format!(
            "after its tracer died the victim is stopped by {after}"
        ));
    }
    pm::kill(victim, 9).map_err(|e| format!("kill victim: {e}"))?;
    let _ = pm::wait(Some(victim));
    println!("tracer killed while waiting in the kernel: no wait left, pid {victim} untraced");
    Ok(())
}

fn run_vtrace() -> Result<(), String> {
    let pid = pm::spawn("vtrace", "-f trace_target spawn").map_err(|e| format!("vtrace: {e}"))?;
    let exited = pm::wait(Some(pid)).map_err(|e| format!("wait vtrace: {e}"))?;
    if exited.status != 0 {
        return Err(format!("vtrace ended with {}", exited.status));
    }
    Ok(())
}

fn main(args: &str) -> i32 {
    let mut words = args.split_whitespace();
    if words.next() == Some("tracer") {
        let Some(victim) = words.next().and_then(|w| w.parse::<u64>().ok()) else {
            println!("usage: tracer PID");
            return 2;
        };
        if let Err(error) = trace::attach(victim, 0) {
            println!("attach to {victim} failed: {error}");
            return 1;
        }
        if words.next() == Some("wait") {
            // To a trace stop through PM, then run it untraced and wait in the kernel for a
            // stop that never comes (until this helper is killed).
            let _ = trace::wait(victim, false);
            let _ = trace::resume(victim, mode::SYSCALLS);
            let _ = trace::wait(victim, false);
            let stop = trace::resume_and_wait(victim, mode::RUN);
            println!("the helper's direct wait ended: {stop:?}");
            return 1;
        }
        thread::sleep(Duration::from_millis(200));
        return 0;
    }
    let result = verbs()
        .and_then(|()| follow())
        .and_then(|()| tracer_death())
        .and_then(|()| killed_while_waiting())
        .and_then(|()| tracer_killed_while_waiting())
        .and_then(|()| run_vtrace());
    match result {
        Ok(()) => {
            println!("PASS every tracing verb, direct stops, follow, tracer death, kills during direct waits, vtrace");
            vigil_rt::process::shutdown(true)
        }
        Err(reason) => {
            println!("FAIL: {reason}");
            vigil_rt::process::shutdown(false)
        }
    }
}
