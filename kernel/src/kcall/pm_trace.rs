//! The tracing kernel calls (`kcalls=pm`, 38..=41): a process's signal manager reads and
//! writes the registers of its threads and the memory of its address space.
//!
//! Only the manager may: PM checks who traces whom (the tracer relationship is PM's state);
//! the kernel checks that the caller manages the target, which no process does for itself,
//! for PM or for VM. The target is never running while its manager's call runs (one CPU),
//! so its registers are the ones it saved when it last entered the kernel.

use alloc::vec;

use crate::arch::trap::TrapFrame;
use crate::memory;
use crate::syscall::Next;
use crate::system::Kernel;
use crate::usercopy;
use vigil_abi::pm::MAX_COPY_BYTES;
use vigil_abi::ptrace::Registers;
use vigil_abi::syscall::{PmGetRegistersArgs, PmPeekArgs, PmPokeArgs, PmSetRegistersArgs};
use vigil_abi::user_memory::UserSlice;
use vigil_abi::vm::Pid;
use vigil_abi::{Endpoint, Error};
use vigil_kcore::slot::{ProcessSlot, ThreadSlot};

/// `PermissionDenied` unless the caller's process is the signal manager of `process`.
fn check_manager(kernel: &Kernel, caller: ThreadSlot, process: ProcessSlot) -> Result<(), Error> {
    let manager = kernel.process_of(caller).pid();
    if kernel.processes[process].signal_manager() != Some(manager) {
        return Err(Error::PermissionDenied);
    }
    Ok(())
}

/// The slot of `thread`, a thread of a process the caller manages.
fn managed_thread(
    kernel: &Kernel,
    caller: ThreadSlot,
    thread: Endpoint,
) -> Result<ThreadSlot, Error> {
    let slot = kernel.table.resolve(thread)?;
    check_manager(kernel, caller, kernel.threads[slot].process())?;
    Ok(slot)
}

/// The slot of process `pid`, which the caller manages.
fn managed_process(kernel: &Kernel, caller: ThreadSlot, pid: Pid) -> Result<ProcessSlot, Error> {
    let slot = kernel.processes.by_pid(pid.0).ok_or(Error::NotFound)?;
    check_manager(kernel, caller, slot)?;
    Ok(slot)
}

fn registers_of(frame: &TrapFrame) -> Registers {
    Registers {
        rax: frame.rax,
        rbx: frame.rbx,
        rcx: frame.rcx,
        rdx: frame.rdx,
        rsi: frame.rsi,
        rdi: frame.rdi,
        rbp: frame.rbp,
        rsp: frame.rsp,
        r8: frame.r8,
        r9: frame.r9,
        r10: frame.r10,
        r11: frame.r11,
        r12: frame.r12,
        r13: frame.r13,
        r14: frame.r14,
        r15: frame.r15,
        rip: frame.rip,
        rflags: frame.rflags,
    }
}

/// PmGetRegisters: the saved user registers of a managed thread.
pub fn get_registers(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: PmGetRegistersArgs,
) -> Result<Next, Error> {
    let slot = managed_thread(kernel, caller, args.thread)?;
    let words = registers_of(kernel.threads[slot].context()).to_words();
    usercopy::write_value(kernel.space_of(caller), args.out, &words)?;
    Ok(Next::Return(0))
}

/// PmSetRegisters: replaces the saved user registers of a managed thread, once they pass
/// `Registers::check_write` (a user `rip`, only the flags a program may change).
pub fn set_registers(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: PmSetRegistersArgs,
) -> Result<Next, Error> {
    let slot = managed_thread(kernel, caller, args.thread)?;
    let words = usercopy::read_value(kernel.space_of(caller), args.registers)?;
    let new = Registers::from_words(&words);
    let frame = kernel.threads[slot].context_mut();
    new.check_write(frame.rflags)?;
    frame.rax = new.rax;
    frame.rbx = new.rbx;
    frame.rcx = new.rcx;
    frame.rdx = new.rdx;
    frame.rsi = new.rsi;
    frame.rdi = new.rdi;
    frame.rbp = new.rbp;
    frame.rsp = new.rsp;
    frame.r8 = new.r8;
    frame.r9 = new.r9;
    frame.r10 = new.r10;
    frame.r11 = new.r11;
    frame.r12 = new.r12;
    frame.r13 = new.r13;
    frame.r14 = new.r14;
    frame.r15 = new.r15;
    frame.rip = new.rip;
    frame.rflags = new.rflags;
    Ok(Next::Return(0))
}

/// The target range of a peek or poke: at most `MAX_COPY_BYTES`, in user memory.
fn target_range(address: u64, len: usize) -> Result<UserSlice<u8>, Error> {
    if len as u64 > MAX_COPY_BYTES {
        return Err(Error::InvalidArgument);
    }
    UserSlice::<u8>::new(address, len as u64)
}

/// PmPeek: bytes of a managed process's memory into the caller's buffer.
pub fn peek(kernel: &mut Kernel, caller: ThreadSlot, args: PmPeekArgs) -> Result<Next, Error> {
    let slot = managed_process(kernel, caller, args.process)?;
    let source = target_range(args.address, args.buffer.len())?;
    // The caller's buffer first: a fault there is the caller's to have served by VM.
    usercopy::check(
        kernel.space_of(caller),
        args.buffer,
        usercopy::Access::Write,
    )?;
    let mut bytes = vec![0u8; source.len()];
    if usercopy::read(kernel.processes[slot].space(), source, &mut bytes).is_err() {
        // The target's page is missing, not the caller's: nothing for VM to serve.
        usercopy::forget_missing_page();
        return Err(Error::Fault);
    }
    usercopy::write(kernel.space_of(caller), args.buffer, &bytes)?;
    Ok(Next::Return(0))
}

/// PmPoke: the caller's bytes into a managed process's mapped memory, read-only pages
/// included, but never a page whose frame another mapping holds too.
pub fn poke(kernel: &mut Kernel, caller: ThreadSlot, args: PmPokeArgs) -> Result<Next, Error> {
    let slot = managed_process(kernel, caller, args.process)?;
    let destination = target_range(args.address, args.data.len())?;
    let mut bytes = vec![0u8; destination.len()];
    usercopy::read(kernel.space_of(caller), args.data, &mut bytes)?;
    let target = &kernel.processes[slot];
    if !destination.is_empty() {
        let first = destination.address() & !0xfff;
        let last = (destination.address() + destination.len() as u64 - 1) & !0xfff;
        for page in (first..=last).step_by(4096) {
            let (frame, _) = target.user_page(page).ok_or(Error::Fault)?;
            if memory::frame_holders(frame) > 1 {
                return Err(Error::PermissionDenied);
            }
        }
    }
    if usercopy::fill(target.space(), destination, &bytes).is_err() {
        usercopy::forget_missing_page();
        return Err(Error::Fault);
    }
    Ok(Next::Return(0))
}
