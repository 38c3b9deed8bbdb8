//! RS's kernel calls that keep a service's endpoint across a restart: mark a service's
//! main thread (`ServiceKeepEndpoint`), let a replacement take over the tombstone it
//! leaves (`ServiceTakeOver`), give a tombstone up (`ServiceRelease`), and for live update
//! exchange the endpoints of two quiescent main threads (`ServiceSwap`). The IPC half —
//! queues, pending messages, the checks of the safe state — is `kcore::ipc::service`;
//! here are the privileges and the kernel's own per-slot state (registers, FPU, timers,
//! the process's main thread), which moves with the thread.

use crate::syscall::Next;
use crate::system::Kernel;
use vigil_abi::syscall::{
    ServiceKeepEndpointArgs, ServiceReleaseArgs, ServiceSwapArgs, ServiceTakeOverArgs,
};
use vigil_abi::{Endpoint, Error};
use vigil_kcore::slot::ThreadSlot;

/// The slot of `thread` if it is the main thread of a live process the caller manages:
/// errors as `resolve`'s, `PermissionDenied` if the caller is not its signal manager,
/// `InvalidArgument` if it is another thread of its process.
fn managed_main_thread(
    kernel: &Kernel,
    caller: ThreadSlot,
    thread: Endpoint,
) -> Result<ThreadSlot, Error> {
    let slot = kernel.table.resolve(thread)?;
    let process = &kernel.processes[kernel.threads[slot].process()];
    if process.signal_manager() != Some(kernel.process_of(caller).pid()) {
        return Err(Error::PermissionDenied);
    }
    if process.main_thread() != thread {
        return Err(Error::InvalidArgument);
    }
    Ok(slot)
}

/// ServiceKeepEndpoint: `thread` leaves a restart tombstone when it dies.
pub fn keep_endpoint(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: ServiceKeepEndpointArgs,
) -> Result<Next, Error> {
    let slot = managed_main_thread(kernel, caller, args.thread)?;
    kernel.table.keep_endpoint(slot);
    Ok(Next::Return(0))
}

/// ServiceTakeOver: the replacement's main thread moves into the tombstone's slot.
pub fn take_over(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: ServiceTakeOverArgs,
) -> Result<Next, Error> {
    let (tombstone, replacement) = (args.tombstone, args.replacement);
    let new = managed_main_thread(kernel, caller, replacement)?;
    let (old, _) = kernel.table.check_take_over(tombstone, replacement)?;
    // A traced thread's stops are keyed by its slot: not a safe state to move it in.
    if kernel.trace.is_traced(new) {
        return Err(Error::Busy);
    }
    // The kernel's half first: the resumed receive reaches the buffer through `old`.
    kernel.save_fpu_of(new);
    kernel.cpu.forget(new);
    kernel.threads.move_thread(new, old, tombstone);
    kernel.republish_thread_endpoint(old);
    kernel
        .timers
        .move_timers(new.get(), old.get(), tombstone.generation());
    let process = kernel.threads[old].process();
    kernel.processes[process].set_main_thread(tombstone);
    let result = {
        let (table, mut env) = kernel.ipc_parts();
        table.take_over(&mut env, tombstone, replacement)
    };
    // `check_take_over` passed and nothing ran in between: it cannot be refused now.
    debug_assert_eq!(result, Ok(()));
    let record = &kernel.processes[process];
    crate::info!(
        "service: '{}' (pid {}) took over endpoint {tombstone} (its own {replacement} is gone)",
        record.name(),
        record.pid()
    );
    crate::trace::emit(
        vigil_abi::trace::EventKind::ThreadCreate,
        tombstone,
        [u64::from(record.pid()), 0, 0],
    );
    result.map(|()| Next::Return(0))
}

/// ServiceRelease: the tombstone's waiting senders fail and its slot is freed.
pub fn release(
    kernel: &mut Kernel,
    _caller: ThreadSlot,
    args: ServiceReleaseArgs,
) -> Result<Next, Error> {
    let (table, mut env) = kernel.ipc_parts();
    table.release_tombstone(&mut env, args.tombstone)?;
    crate::info!("service: endpoint {} released", args.tombstone);
    Ok(Next::Return(0))
}

/// ServiceSwap: two quiescent main threads exchange slots and endpoints (live update).
pub fn swap(kernel: &mut Kernel, caller: ThreadSlot, args: ServiceSwapArgs) -> Result<Next, Error> {
    let (a, b) = (args.a, args.b);
    if a == b {
        return Err(Error::InvalidArgument);
    }
    let first = managed_main_thread(kernel, caller, a)?;
    let second = managed_main_thread(kernel, caller, b)?;
    kernel.table.check_swap(a, b)?;
    if kernel.trace.is_traced(first) || kernel.trace.is_traced(second) {
        return Err(Error::Busy);
    }
    for slot in [first, second] {
        kernel.save_fpu_of(slot);
        kernel.cpu.forget(slot);
    }
    kernel.threads.swap_threads(first, second);
    kernel.republish_thread_endpoint(first);
    kernel.republish_thread_endpoint(second);
    kernel
        .timers
        .swap_timers(first.get(), a.generation(), second.get(), b.generation());
    // The thread now at `first` (endpoint `a`) is the one whose process had `b`.
    let (process_at_a, process_at_b) = (
        kernel.threads[first].process(),
        kernel.threads[second].process(),
    );
    kernel.processes[process_at_a].set_main_thread(a);
    kernel.processes[process_at_b].set_main_thread(b);
    let result = kernel.table.swap_endpoints(a, b);
    // `check_swap` passed and nothing ran in between: it cannot be refused now.
    debug_assert_eq!(result, Ok(()));
    crate::info!(
        "service: '{}' (pid {}) serves {a}, '{}' (pid {}) serves {b} (swapped)",
        kernel.processes[process_at_a].name(),
        kernel.processes[process_at_a].pid(),
        kernel.processes[process_at_b].name(),
        kernel.processes[process_at_b].pid()
    );
    result.map(|()| Next::Return(0))
}
