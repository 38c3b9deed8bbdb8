//! Entries from user mode: system calls and interrupts/exceptions taken while a thread ran.
//!
//! The thread's registers are already saved in its `Thread::context` when these
//! run (on the kernel stack, interrupts off). Each takes the kernel lock, does its work and
//! leaves through the scheduler with that same lock (`sched::leave`), which may resume
//! another thread.

use crate::arch::trap::{self, TrapFrame, TrapKind};
use crate::lock::MutexGuard;
use crate::sched;
use crate::system::{Kernel, KERNEL};
use vigil_abi::syscall::Syscall;
use vigil_kcore::slot::ThreadSlot;

/// What every SYSCALL entry does first: the kernel lock, the calling thread (whose saved
/// registers `frame` is) and its system-call counter.
#[inline(always)]
fn enter_syscall(frame: *mut TrapFrame) -> (MutexGuard<'static, Kernel>, ThreadSlot) {
    let mut kernel = KERNEL.lock();
    let slot = kernel
        .current()
        .expect("system call with no current thread");
    debug_assert!(core::ptr::eq(frame, kernel.threads[slot].context()));
    kernel.threads[slot].counters_mut().syscalls += 1;
    (kernel, slot)
}

/// Called by the SYSCALL stub for every call but the two register IPC calls.
pub extern "C" fn syscall_from_user(frame: *mut TrapFrame) -> ! {
    let (mut kernel, slot) = enter_syscall(frame);
    // The call number (RAX).
    let number = kernel.threads[slot].context().rax;
    if Kernel::is_fast_ipc_call(number) {
        ipc_call_from_user(kernel, slot, number)
    }
    kernel.account_cpu_time();
    kernel.handle_syscall(slot);
    sched::leave(kernel)
}

/// Called by the SYSCALL stub for `SendReceiveRegisters` (RAX 27): `register_call_from_user`.
pub extern "C" fn send_receive_registers_from_user(frame: *mut TrapFrame) -> ! {
    register_call_from_user::<{ Syscall::SendReceiveRegisters as u64 }>(frame)
}

/// Called by the SYSCALL stub for `ReplyReceiveRegisters` (RAX 28): `register_call_from_user`.
pub extern "C" fn reply_receive_registers_from_user(frame: *mut TrapFrame) -> ! {
    register_call_from_user::<{ Syscall::ReplyReceiveRegisters as u64 }>(frame)
}

/// A register IPC call, `NUMBER` (the stub told the two apart by RAX, so each has its own
/// straight line): the register fast path (`Kernel::fast_register_call`) when the IPC fast
/// path may run, straight into the partner; else, or on any doubt, the way every other IPC
/// call takes (`ipc_call_from_user`).
#[inline(always)]
fn register_call_from_user<const NUMBER: u64>(frame: *mut TrapFrame) -> ! {
    let (mut kernel, slot) = enter_syscall(frame);
    debug_assert_eq!(kernel.threads[slot].context().rax, NUMBER);
    // One test for both: the fast paths may run and a direct switch needs no scheduling
    // checks (`TraceLink::register_fast_path_open`); else the general way decides.
    if kernel.trace.register_fast_path_open() {
        if let Some((partner, now)) = kernel.fast_register_call::<NUMBER>(slot) {
            sched::enter_partner(kernel, slot, partner, now)
        }
    }
    ipc_call_from_user(kernel, slot, NUMBER)
}

/// A `SendReceive` or `ReplyReceive`, memory or register form (`Kernel::is_fast_ipc_call`;
/// a register call here found the register fast path closed), on a way of its own so the
/// general one keeps its shape: the IPC fast path's general fast operation when it may run,
/// whose CPU time is charged at the switch or the exit only (`Kernel::fast_ipc_call`),
/// straight into the partner it woke when the scheduler would pick it; else the general way.
#[inline(never)]
fn ipc_call_from_user(mut kernel: MutexGuard<'_, Kernel>, slot: ThreadSlot, number: u64) -> ! {
    if kernel.fast_ipc_allowed() {
        if let Some(switch) = kernel.fast_ipc_call(slot, number) {
            sched::enter_partner(kernel, slot, switch.partner, switch.now)
        }
    } else {
        kernel.account_cpu_time();
        kernel.handle_syscall(slot);
    }
    sched::leave(kernel)
}

/// Called by `trap_common` for a trap taken in user mode.
pub extern "C" fn interrupt_from_user(frame: *mut TrapFrame) -> ! {
    let mut kernel = KERNEL.lock();
    kernel.account_cpu_time();
    let slot = kernel.current().expect("user trap with no current thread");
    debug_assert!(core::ptr::eq(frame, kernel.threads[slot].context()));
    let vector = kernel.threads[slot].context().vector;
    let endpoint = kernel.table.endpoint(slot);
    crate::trace::emit(
        vigil_abi::trace::EventKind::Interrupt,
        endpoint,
        [vector, 0, 0],
    );
    match trap::classify(vector) {
        TrapKind::Exception => kernel.user_exception(slot),
        TrapKind::MachineEvent => {
            let context = *kernel.threads[slot].context();
            drop(kernel);
            trap::fatal_exception(&context)
        }
        kind => trap::device_interrupt(kind, vector, &mut kernel),
    }
    sched::leave(kernel)
}
