//! `sig_test`: judges signals, signal managers and stop/resume (scenario `pm-signals`).
//! Through PM and `sig_child`: a null dereference becomes SIGSEGV and the parent's wait
//! sees a status naming it; a child that catches SIGSEGV runs its handler (PM delivers the
//! signal and resumes the held thread); a child catches SIGUSR1 sent by its parent and its sleep
//! returns EINTR; this process catches a signal it sends itself (the handler has run when
//! `kill` returns, x87/SSE registers intact) and a masked one waits until unmasked; a
//! spinner's CPU time does not move while it is stopped and moves again after SIGCONT;
//! SIGKILL of a child blocked in send, receive, a mutex wait or a sleep leaves no thread or
//! process behind and its partner gets a clean error; PM becomes the manager of the boot
//! process `sig_victim` (MANAGE) and ends it with SIGSEGV when it faults; and bad requests
//! (forged pid, signal 0 or 64, signalling PM or VM, catching KILL, forged signal frames)
//! each get their own error while the system keeps running.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use vigil_programs::{context, expect_refusal, finish};
use vigil_rt::abi::introspect::state_code;
use vigil_rt::abi::pm::{request, signal_action};
use vigil_rt::abi::signal::{frame, status, Signal};
use vigil_rt::introspect::{self, Snapshot};
use vigil_rt::signal::{self, Action};
use vigil_rt::{ipc, pm, println, syscall, thread, Endpoint, Error, Message};

vigil_rt::entry!(main);

static CAUGHT: AtomicU64 = AtomicU64::new(0);

fn on_usr1(signal: Signal) {
    if signal == Signal::USR1 {
        // Uses the x87/SSE registers the interrupted code may hold values in.
        let x = core::hint::black_box(0.25f64);
        core::hint::black_box(x * 3.0 + 1.0);
        CAUGHT.fetch_add(1, Ordering::Relaxed);
    }
}

fn main(_args: &str) -> i32 {
    finish("sig_test", run())
}

fn snapshot() -> Result<Snapshot, String> {
    introspect::snapshot().map_err(|e| format!("snapshot: {e}"))
}

fn pid_named(name: &str) -> Result<u64, String> {
    snapshot()?
        .processes
        .iter()
        .find(|process| process.name() == name)
        .map(|process| u64::from(process.pid))
        .ok_or_else(|| format!("no process named {name}"))
}

/// CPU time of every thread of `pid`.
fn cpu_of(pid: u64) -> Result<u64, String> {
    Ok(snapshot()?
        .threads
        .iter()
        .filter(|t| u64::from(t.pid) == pid)
        .map(|t| t.counters.cpu_ns)
        .sum())
}

/// Waits (up to 2 s) until a thread of `pid` is in state `state`; its endpoint.
fn thread_in(pid: u64, state: u8) -> Result<Endpoint, String> {
    for _ in 0..200 {
        let found = snapshot()?
            .threads
            .iter()
            .find(|t| u64::from(t.pid) == pid && t.state == state)
            .map(|t| t.endpoint);
        if let Some(endpoint) = found {
            return Ok(endpoint);
        }
        thread::sleep(Duration::from_millis(10));
    }
    Err(format!("no thread of pid {pid} reached state {state}"))
}

/// A raw request to PM: the refusal, or the reply's payload.
fn raw(kind: u32, payload: [u64; 6]) -> Result<[u64; 6], Error> {
    ipc::request(
        pm::server()?,
        kind,
        payload,
        vigil_rt::abi::pm::request::REPLY,
    )
}

fn run() -> Result<String, String> {
    vigil_programs::lookup_with_retry("pm")?;
    let own = pid_named("sig_test")?;
    let me = ipc::self_endpoint();
    segv()?;
    catch_from_parent(me)?;
    self_and_mask(own)?;
    stop_and_continue()?;
    for (mode, state) in [
        ("send", state_code::SENDING),
        ("recv", state_code::RECEIVING),
        ("mutex", state_code::MUTEX),
        ("sleep", state_code::SLEEPING),
    ] {
        kill_blocked(me, mode, state)?;
    }
    manage()?;
    bad_input(own)?;
    Ok(String::from(
        "exceptions, handlers, masks, stop/continue, kills and managers",
    ))
}

fn segv() -> Result<(), String> {
    let pid = context(pm::spawn("sig_child", "segv"), "spawn segv")?;
    let exited = context(pm::wait(Some(pid)), "wait segv")?;
    let signal = status::signal_of(exited.status);
    if signal != Some(Signal::SEGV) || exited.status & status::REPORTED == 0 {
        return Err(format!(
            "the null dereference ended with status {:#x}",
            exited.status
        ));
    }
    println!(
        "child {pid} ended by SIGSEGV (status {:#x}, with the report)",
        exited.status
    );
    // Caught: PM delivers SIGSEGV into the handler and resumes the held thread.
    let pid = context(pm::spawn("sig_child", "catchsegv"), "spawn catchsegv")?;
    let exited = context(pm::wait(Some(pid)), "wait catchsegv")?;
    if exited.status != 77 {
        return Err(format!(
            "the child catching SIGSEGV ended with status {:#x}",
            exited.status
        ));
    }
    println!("child {pid} caught its own SIGSEGV: the handler ran and exited 77");
    Ok(())
}

fn catch_from_parent(me: Endpoint) -> Result<(), String> {
    let pid = context(
        pm::spawn("sig_child", &format!("catch {}", me.0)),
        "spawn catch",
    )?;
    let ready = context(ipc::receive(Endpoint::ANY), "receive ready")?;
    if ready.kind != 0x5160_0001 {
        return Err(format!("the catching child sent kind {:#x}", ready.kind));
    }
    context(signal::kill(pid, Signal::USR1), "kill USR1")?;
    let exited = context(pm::wait(Some(pid)), "wait catch")?;
    if exited.status != 42 {
        return Err(format!(
            "the catching child exited with {:#x}",
            exited.status
        ));
    }
    println!("child {pid} caught SIGUSR1 sent by its parent: status 42");
    // The same with the frame on a stack page VM has not mapped yet.
    let pid = context(
        pm::spawn("sig_child", &format!("edgecatch {}", me.0)),
        "spawn edgecatch",
    )?;
    let ready = context(ipc::receive(Endpoint::ANY), "receive ready")?;
    if ready.kind != 0x5160_0001 {
        return Err(format!("the edge child sent kind {:#x}", ready.kind));
    }
    thread_in(pid, state_code::SLEEPING)?;
    context(signal::kill(pid, Signal::USR1), "kill USR1 at the edge")?;
    let exited = context(pm::wait(Some(pid)), "wait edgecatch")?;
    if exited.status != 43 {
        return Err(format!("the edge child exited with {:#x}", exited.status));
    }
    println!("child {pid} caught SIGUSR1 with its frame on a fresh stack page: status 43");
    Ok(())
}

fn self_and_mask(own: u64) -> Result<(), String> {
    // A boot process: PM handles its signals once it manages it.
    context(raw(request::MANAGE, [own, 0, 0, 0, 0, 0]), "MANAGE self")?;
    context(
        signal::action(Signal::USR1, Action::Handler(on_usr1)),
        "sigaction",
    )?;
    let kept = core::hint::black_box(1.5f64);
    context(signal::kill(own, Signal::USR1), "kill self")?;
    let after = core::hint::black_box(kept) * 2.0;
    if CAUGHT.load(Ordering::Relaxed) != 1 || after != 3.0 {
        return Err(format!(
            "after kill(self): handler ran {} times, 1.5 * 2 = {after}",
            CAUGHT.load(Ordering::Relaxed)
        ));
    }
    // That went the direct way: the kernel itself delivers a caught, unmasked signal to
    // its own process (PM mirrored it), and the raw call says so.
    if signal::own_pid() != Some(own) {
        return Err(format!(
            "the runtime's own pid is {:?}, not {own}",
            signal::own_pid()
        ));
    }
    context(syscall::signal_raise(Signal::USR1), "SignalRaise USR1")?;
    if CAUGHT.load(Ordering::Relaxed) != 2 {
        return Err(String::from(
            "SignalRaise of a caught SIGUSR1 did not run the handler",
        ));
    }
    // Not caught (USR2: default, terminate): the kernel leaves it to PM, nothing happens.
    expect_refusal(
        "SignalRaise of an uncaught signal",
        syscall::signal_raise(Signal::USR2).map(|_| ()),
        Error::NotReady,
    )?;
    context(signal::block(Signal::USR1.bit()), "block")?;
    // Masked: no longer the kernel's to deliver.
    expect_refusal(
        "SignalRaise of a masked signal",
        syscall::signal_raise(Signal::USR1).map(|_| ()),
        Error::NotReady,
    )?;
    CAUGHT.fetch_sub(1, Ordering::Relaxed);
    context(signal::kill(own, Signal::USR1), "kill self masked")?;
    thread::sleep(Duration::from_millis(20));
    if CAUGHT.load(Ordering::Relaxed) != 1 {
        return Err(String::from("a masked SIGUSR1 ran the handler"));
    }
    let previous = context(signal::unblock(Signal::USR1.bit()), "unblock")?;
    if CAUGHT.load(Ordering::Relaxed) != 2 || previous != Signal::USR1.bit() {
        return Err(format!(
            "after unblocking: handler ran {} times, previous mask {previous:#x}",
            CAUGHT.load(Ordering::Relaxed)
        ));
    }
    // Unmasked again: the mirror follows PM's mask.
    context(
        syscall::signal_raise(Signal::USR1),
        "SignalRaise after unblock",
    )?;
    if CAUGHT.load(Ordering::Relaxed) != 3 {
        return Err(String::from(
            "after unblocking, SignalRaise did not run the handler",
        ));
    }
    CAUGHT.fetch_sub(1, Ordering::Relaxed);
    println!(
        "caught SIGUSR1 sent to itself before kill returned (in the kernel, without PM); masked, it waited for the unblock"
    );
    // KILL and STOP are never masked: blocking them leaves the mask as it was.
    context(
        signal::block(Signal::KILL.bit() | Signal::STOP.bit()),
        "block KILL",
    )?;
    let mask = context(signal::unblock(0), "read the mask")?;
    if mask != 0 {
        return Err(format!("blocking KILL and STOP made the mask {mask:#x}"));
    }
    println!("KILL and STOP stay unmasked");
    Ok(())
}

fn stop_and_continue() -> Result<(), String> {
    let pm_pid = pid_named("pm")?;
    let pid = context(pm::spawn("sig_child", "spin"), "spawn spin")?;
    thread::sleep(Duration::from_millis(30));
    context(signal::kill(pid, Signal::STOP), "SIGSTOP")?;
    thread::sleep(Duration::from_millis(20));
    let record = snapshot()?
        .processes
        .into_iter()
        .find(|p| u64::from(p.pid) == pid)
        .ok_or("the stopped spinner is gone")?;
    if u64::from(record.stopped_by) != pm_pid {
        return Err(format!("stopped_by is {} not PM", record.stopped_by));
    }
    let stopped = cpu_of(pid)?;
    thread::sleep(Duration::from_millis(100));
    context(signal::kill(pid, Signal::STOP), "SIGSTOP again")?;
    let still = cpu_of(pid)?;
    if still != stopped {
        return Err(format!("stopped spinner ran: {stopped} → {still} ns"));
    }
    context(signal::kill(pid, Signal::CONT), "SIGCONT")?;
    thread::sleep(Duration::from_millis(100));
    let resumed = cpu_of(pid)?;
    if resumed <= still {
        return Err(format!(
            "continued spinner did not run: {still} → {resumed} ns"
        ));
    }
    context(signal::kill(pid, Signal::STOP), "SIGSTOP before KILL")?;
    context(
        signal::kill(pid, Signal::KILL),
        "SIGKILL of a stopped process",
    )?;
    let exited = context(pm::wait(Some(pid)), "wait spin")?;
    if status::signal_of(exited.status) != Some(Signal::KILL) {
        return Err(format!("the killed spinner's status {:#x}", exited.status));
    }
    println!(
        "stopped spinner held at {still} ns for 100 ms, ran again after SIGCONT; SIGKILL while stopped: status {:#x}",
        exited.status
    );
    Ok(())
}

fn kill_blocked(me: Endpoint, mode: &str, state: u8) -> Result<(), String> {
    let before = snapshot()?.threads.len();
    let pid = context(
        pm::spawn("sig_child", &format!("{mode} {}", me.0)),
        "spawn blocked",
    )?;
    let blocked = thread_in(pid, state)?;
    context(signal::kill(pid, Signal::KILL), "SIGKILL")?;
    let exited = context(pm::wait(Some(pid)), "wait blocked")?;
    if status::signal_of(exited.status) != Some(Signal::KILL) {
        return Err(format!("{mode}: status {:#x}", exited.status));
    }
    let after = snapshot()?;
    if after.threads.iter().any(|t| u64::from(t.pid) == pid)
        || after.processes.iter().any(|p| u64::from(p.pid) == pid)
        || after.threads.iter().any(|t| t.wait_target == blocked)
        || after.threads.len() != before
    {
        return Err(format!(
            "{mode}: something of pid {pid} stayed ({} threads before, {} after)",
            before,
            after.threads.len()
        ));
    }
    let partner = ipc::send_nonblocking(blocked, &Message::new(1));
    if partner != Err(Error::DeadEndpoint) {
        return Err(format!(
            "{mode}: sending to the killed thread gave {partner:?}"
        ));
    }
    println!(
        "SIGKILL of a child blocked in {mode}: nothing left; its partner gets {}",
        Error::DeadEndpoint
    );
    Ok(())
}

fn manage() -> Result<(), String> {
    let victim = vigil_programs::lookup_with_retry("sig_victim")?;
    let pid = pid_named("sig_victim")?;
    context(raw(request::MANAGE, [pid, 0, 0, 0, 0, 0]), "MANAGE")?;
    context(ipc::send(victim, &Message::new(7)), "poke the victim")?;
    for _ in 0..200 {
        if !snapshot()?
            .processes
            .iter()
            .any(|p| u64::from(p.pid) == pid)
        {
            println!("PM managed boot process sig_victim (pid {pid}) and ended it by SIGSEGV");
            return Ok(());
        }
        thread::sleep(Duration::from_millis(10));
    }
    Err(String::from("the managed victim is still there"))
}

fn bad_input(own: u64) -> Result<(), String> {
    let pm_pid = pid_named("pm")?;
    let vm_pid = pid_named("vm")?;
    let signal = |pid: u64, number: u64| raw(request::SIGNAL, [pid, number, 0, 0, 0, 0]);
    expect_refusal("signal a forged pid", signal(999_999, 10), Error::NotFound)?;
    expect_refusal("signal 0", signal(own, 0), Error::InvalidArgument)?;
    expect_refusal("signal 64", signal(own, 64), Error::InvalidArgument)?;
    expect_refusal(
        "signal u64::MAX",
        signal(own, u64::MAX),
        Error::InvalidArgument,
    )?;
    expect_refusal("SIGKILL to PM", signal(pm_pid, 9), Error::PermissionDenied)?;
    expect_refusal("SIGKILL to VM", signal(vm_pid, 9), Error::PermissionDenied)?;
    let entry = on_usr1 as *const () as u64;
    expect_refusal(
        "catch SIGKILL",
        raw(
            request::SIGACTION,
            [9, signal_action::CATCH, entry, 0, 0, 0],
        ),
        Error::InvalidArgument,
    )?;
    expect_refusal(
        "catch with no entry",
        raw(request::SIGACTION, [10, signal_action::CATCH, 0, 0, 0, 0]),
        Error::InvalidArgument,
    )?;
    expect_refusal(
        "MANAGE a forged pid",
        raw(request::MANAGE, [999_999, 0, 0, 0, 0, 0]),
        Error::NotFound,
    )?;
    expect_refusal(
        "MANAGE VM",
        raw(request::MANAGE, [vm_pid, 0, 0, 0, 0, 0]),
        Error::PermissionDenied,
    )?;
    expect_refusal(
        "MANAGE PM",
        raw(request::MANAGE, [pm_pid, 0, 0, 0, 0, 0]),
        Error::InvalidArgument,
    )?;
    for number in [0, 64, u64::MAX] {
        expect_refusal(
            &format!("SignalRaise of signal {number}"),
            syscall::signal_raise_raw(number).map(|_| ()),
            Error::InvalidArgument,
        )?;
    }
    // Forged signal frames: each refused, nothing restored.
    let mut forged = [0u64; frame::WORDS];
    let address = forged.as_ptr() as u64;
    // SAFETY: the kernel refuses these frames (checked below), so the call returns.
    let zero = unsafe { syscall::signal_return(address) };
    expect_refusal(
        "SignalReturn of a zeroed frame",
        Err::<(), _>(zero),
        Error::InvalidArgument,
    )?;
    forged[frame::MAGIC] = frame::MAGIC_VALUE;
    forged[frame::SIGNAL] = 10;
    forged[frame::RIP] = 0xffff_8000_0000_1000;
    forged[frame::FPU + 3] = 0x1f80;
    let address = core::hint::black_box(&forged).as_ptr() as u64;
    // SAFETY: as above (a kernel RIP is refused).
    let kernel_rip = unsafe { syscall::signal_return(address) };
    expect_refusal(
        "SignalReturn to a kernel RIP",
        Err::<(), _>(kernel_rip),
        Error::InvalidArgument,
    )?;
    forged[frame::RIP] = bad_input as *const () as u64;
    forged[frame::FPU + 3] = 0xffff_1f80;
    let address = core::hint::black_box(&forged).as_ptr() as u64;
    // SAFETY: as above (an MXCSR with reserved bits is refused).
    let mxcsr = unsafe { syscall::signal_return(address) };
    expect_refusal(
        "SignalReturn with a bad MXCSR",
        Err::<(), _>(mxcsr),
        Error::InvalidArgument,
    )?;
    // SAFETY: as above (the address is in the unmapped null zone).
    let wild = unsafe { syscall::signal_return(0x1000) };
    expect_refusal(
        "SignalReturn of a wild pointer",
        Err::<(), _>(wild),
        Error::Fault,
    )?;
    Ok(())
}
