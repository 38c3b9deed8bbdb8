//! The signal manager's kernel calls: collect exception events (`PmNextEvent`), resume a
//! held thread (`PmResumeThread`), change a process's manager (`PmSetSignalManager`),
//! signal a process (`PmSignal`), stop and resume it (`PmStop`, `PmResume`: MINIX's
//! runctl), and mirror the signals a process may raise itself (`PmSignalDirect`). The
//! mechanism is in `crate::signal`; the decisions are the manager's.
//!
//! Every call but `PmSetSignalManager` acts only on a process whose manager is the caller
//! (else `PermissionDenied`); a pid that names no live process is `NotFound`.

use crate::syscall::Next;
use crate::system::Kernel;
use crate::usercopy;
use vigil_abi::layout::{USER_END, USER_IMAGE_MIN};
use vigil_abi::signal::CatchableSet;
use vigil_abi::syscall::{
    PmNextEventArgs, PmResumeArgs, PmResumeThreadArgs, PmSetSignalManagerArgs, PmSignalArgs,
    PmSignalDirectArgs, PmStopArgs,
};
use vigil_abi::vm::Pid;
use vigil_abi::wait::ThreadState;
use vigil_abi::Error;
use vigil_kcore::slot::{ProcessSlot, ThreadSlot};

/// The caller's pid.
fn caller_pid(kernel: &Kernel, caller: ThreadSlot) -> u32 {
    kernel.process_of(caller).pid()
}

/// A live process the caller manages (never the caller's own).
fn managed(kernel: &Kernel, caller: ThreadSlot, pid: Pid) -> Result<ProcessSlot, Error> {
    let slot = kernel.processes.by_pid(pid.0).ok_or(Error::NotFound)?;
    if slot == kernel.threads[caller].process() {
        return Err(Error::SelfTarget);
    }
    if kernel.processes[slot].signal_manager() != Some(caller_pid(kernel, caller)) {
        return Err(Error::PermissionDenied);
    }
    Ok(slot)
}

/// PmNextEvent: one event about a process the caller manages, written to `out`.
pub fn next_event(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: PmNextEventArgs,
) -> Result<Next, Error> {
    // Check the buffer first, so a bad one loses no event.
    usercopy::write_value(kernel.space_of(caller), args.out, &[0u64; 8])?;
    let manager = caller_pid(kernel, caller);
    let Some(event) = kernel.next_process_event(manager) else {
        return Ok(Next::Return(0));
    };
    let written = usercopy::write_value(kernel.space_of(caller), args.out, &event);
    debug_assert!(written.is_ok(), "the buffer was just written");
    Ok(Next::Return(1))
}

/// PmResumeThread: a held thread of a process the caller manages runs again.
pub fn resume_thread(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: PmResumeThreadArgs,
) -> Result<Next, Error> {
    let slot = kernel.table.resolve(args.thread)?;
    let pid = Pid(kernel.process_of(slot).pid());
    managed(kernel, caller, pid)?;
    if !matches!(kernel.table.state(slot), ThreadState::HeldForManager { .. }) {
        return Err(Error::InvalidArgument);
    }
    kernel.release_held_thread(slot);
    Ok(Next::Return(0))
}

/// PmSetSignalManager: `manager` handles `process`'s exceptions and signals.
pub fn set_signal_manager(
    kernel: &mut Kernel,
    _caller: ThreadSlot,
    args: PmSetSignalManagerArgs,
) -> Result<Next, Error> {
    let target = kernel
        .processes
        .by_pid(args.process.0)
        .ok_or(Error::NotFound)?;
    let manager = kernel
        .processes
        .by_pid(args.manager.0)
        .ok_or(Error::NotFound)?;
    if target == manager {
        return Err(Error::InvalidArgument);
    }
    if Some(target) == kernel.vm_server_process() || Some(target) == kernel.pm.process() {
        return Err(Error::PermissionDenied);
    }
    if !kernel.processes[manager].started() {
        return Err(Error::InvalidArgument);
    }
    kernel.processes[target].set_signal_manager(args.manager.0);
    // What the previous manager let it raise itself is the new one's to decide.
    kernel.processes[target].signals.direct = CatchableSet::EMPTY;
    kernel.processes[target].signals.direct_handler = 0;
    crate::info!(
        "signal: pid {} ('{}') is managed by pid {} ('{}') now",
        args.process.0,
        kernel.processes[target].name(),
        args.manager.0,
        kernel.processes[manager].name()
    );
    Ok(Next::Return(0))
}

/// PmSignal: interrupt the target's waits and, with a handler, deliver into it.
pub fn signal(kernel: &mut Kernel, caller: ThreadSlot, args: PmSignalArgs) -> Result<Next, Error> {
    let slot = managed(kernel, caller, args.process)?;
    let signaller = kernel.table.endpoint(caller);
    kernel
        .signal_process(slot, args.signal, args.handler, signaller)
        .map(Next::Return)
}

/// PmStop: the process's threads do not run until `PmResume`.
pub fn stop(kernel: &mut Kernel, caller: ThreadSlot, args: PmStopArgs) -> Result<Next, Error> {
    let slot = managed(kernel, caller, args.process)?;
    let by = caller_pid(kernel, caller);
    kernel.stop_process(slot, by);
    Ok(Next::Return(0))
}

/// PmResume: a stopped process runs again.
pub fn resume(kernel: &mut Kernel, caller: ThreadSlot, args: PmResumeArgs) -> Result<Next, Error> {
    let slot = managed(kernel, caller, args.process)?;
    kernel.resume_process(slot);
    Ok(Next::Return(0))
}

/// PmSignalDirect: the signals the process may raise itself (`SignalRaise`), into
/// `handler`; replaces the previous set.
pub fn signal_direct(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: PmSignalDirectArgs,
) -> Result<Next, Error> {
    let slot = managed(kernel, caller, args.process)?;
    let handler = if args.set.is_empty() {
        0
    } else if (USER_IMAGE_MIN..USER_END).contains(&args.handler) {
        args.handler
    } else {
        return Err(Error::InvalidArgument);
    };
    let signals = &mut kernel.processes[slot].signals;
    signals.direct = args.set;
    signals.direct_handler = handler;
    Ok(Next::Return(0))
}
