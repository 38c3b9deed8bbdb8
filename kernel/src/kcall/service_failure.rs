//! RS's kernel calls about a failure it records: the backtrace of a thread held after a
//! CPU exception (`ServiceBacktrace`, the restart history's backtrace; only for a process
//! whose signal manager is the caller), and the crashes of the system servers RS cannot
//! restart, which the kernel queued for it (`ServiceSystemCrash`, `crate::rs`). The walk
//! of the user stack is `crate::backtrace::user_frames` for both.

use crate::syscall::Next;
use crate::system::Kernel;
use crate::usercopy;
use vigil_abi::ptrace::stop;
use vigil_abi::signal::{event, system_crash};
use vigil_abi::syscall::{ServiceBacktraceArgs, ServiceSystemCrashArgs};
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

/// ServiceSystemCrash: the oldest system-server crash queued for RS, written to `out`.
pub fn system_crash(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: ServiceSystemCrashArgs,
) -> Result<Next, Error> {
    if kernel.rs.process() != Some(kernel.threads[caller].process()) {
        return Err(Error::PermissionDenied);
    }
    // Check the buffer first, so a bad one loses no crash.
    usercopy::write_value(
        kernel.space_of(caller),
        args.out,
        &[0u64; system_crash::WORDS],
    )?;
    let Some(crash) = kernel.rs.take_system_crash() else {
        return Ok(Next::Return(0));
    };
    let written = usercopy::write_value(kernel.space_of(caller), args.out, &crash);
    debug_assert!(written.is_ok(), "the buffer was just written");
    Ok(Next::Return(1))
}
