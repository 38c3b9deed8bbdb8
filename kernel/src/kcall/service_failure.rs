//! RS's kernel calls about a failure it records: the backtrace of a thread held after a
//! CPU exception (`ServiceBacktrace`, the restart history's backtrace), and the end of a
//! crashed system server RS manages but cannot restart (`ServiceEndSystem`). The walk of
//! the user stack is `crate::backtrace::user_frames`; both act only on a process whose
//! signal manager is the caller.

use crate::syscall::Next;
use crate::system::Kernel;
use crate::usercopy;
use vigil_abi::ptrace::stop;
use vigil_abi::signal::event;
use vigil_abi::syscall::{ServiceBacktraceArgs, ServiceEndSystemArgs};
use vigil_abi::wait::ThreadState;
use vigil_abi::Error;
use vigil_kcore::slot::{ProcessSlot, ThreadSlot};

/// The vector `slot` is held at, if it is held after a CPU exception (not a trace stop).
fn held_exception(kernel: &Kernel, slot: ThreadSlot) -> Option<u64> {
    match kernel.table.state(slot) {
        ThreadState::HeldForManager { vector, .. }
            if stop::event_kind(vector) == event::EXCEPTION =>
        {
            Some(vector)
        }
        _ => None,
    }
}

/// Whether the caller is `process`'s signal manager.
fn manages(kernel: &Kernel, caller: ThreadSlot, process: ProcessSlot) -> bool {
    kernel.processes[process].signal_manager() == Some(kernel.process_of(caller).pid())
}

/// ServiceBacktrace: the held thread's pc and return addresses, written to `out`.
pub fn backtrace(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: ServiceBacktraceArgs,
) -> Result<Next, Error> {
    let slot = kernel.table.resolve(args.thread)?;
    let process = kernel.threads[slot].process();
    if !manages(kernel, caller, process) {
        return Err(Error::PermissionDenied);
    }
    if held_exception(kernel, slot).is_none() {
        return Err(Error::InvalidArgument);
    }
    let context = kernel.threads[slot].context();
    let (frames, count) =
        crate::backtrace::user_frames(kernel.processes[process].space(), context.rip, context.rbp);
    usercopy::write_value(kernel.space_of(caller), args.out, &frames)?;
    Ok(Next::Return(count as u64))
}

/// ServiceEndSystem: a system server held after an exception ends as with no manager.
pub fn end_system(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: ServiceEndSystemArgs,
) -> Result<Next, Error> {
    let process = kernel
        .processes
        .by_pid(args.process.0)
        .ok_or(Error::NotFound)?;
    if !manages(kernel, caller, process) || !kernel.processes[process].is_system_server() {
        return Err(Error::PermissionDenied);
    }
    let vector = kernel
        .table
        .threads_of(process)
        .find_map(|slot| held_exception(kernel, slot))
        .ok_or(Error::NotReady)?;
    let record = &kernel.processes[process];
    crate::error!(
        "system server '{}' (pid {}) ended by its signal manager (pid {}) after {}: killed as with no manager",
        record.name(),
        record.pid(),
        kernel.process_of(caller).pid(),
        crate::arch::trap::exception_name(vector).0
    );
    kernel.exit_process(process, 128 + vector);
    Ok(Next::Return(0))
}
