//! The VM server's kernel calls: map, unmap, protect and query pages of a process, and
//! resume or fail a thread waiting for VM.
//!
//! They are mechanism only: the caller (VM, by its kernel-call mask) decides what to map
//! where. Each checks everything before it changes anything: the process exists, the range
//! (a `PageRange`, checked when decoded) is free or mapped as the call needs, the frames are
//! there. The work per call is bounded by `MAX_PAGES_PER_CALL`.

use crate::memory;
use crate::syscall::Next;
use crate::system::Kernel;
use crate::thread::frames_to_map;
use vigil_abi::syscall::{
    VmFailArgs, VmMapArgs, VmProcessOfArgs, VmProtectArgs, VmQueryArgs, VmResumeArgs, VmUnmapArgs,
};
use vigil_abi::vm::Pid;
use vigil_abi::wait::ThreadState;
use vigil_abi::{Endpoint, Error};
use vigil_kcore::slot::{ProcessSlot, ThreadSlot};

/// The live process with `pid` (`NotFound` otherwise).
fn process(kernel: &Kernel, pid: Pid) -> Result<ProcessSlot, Error> {
    kernel.processes.by_pid(pid.0).ok_or(Error::NotFound)
}

/// VmMap: fresh zeroed frames at every page of the range.
pub fn map(kernel: &mut Kernel, _caller: ThreadSlot, args: VmMapArgs) -> Result<Next, Error> {
    let slot = process(kernel, args.process)?;
    let target = &kernel.processes[slot];
    if target.any_mapped(args.range) {
        return Err(Error::Exists);
    }
    if (memory::free_frames() as u64) < frames_to_map(args.range.pages()) {
        return Err(Error::OutOfResources);
    }
    kernel.processes[slot].map_fresh(args.range, args.flags);
    Ok(Next::Return(0))
}

/// VmUnmap: the range's mapped pages go, their frames back to the allocator.
pub fn unmap(kernel: &mut Kernel, _caller: ThreadSlot, args: VmUnmapArgs) -> Result<Next, Error> {
    let slot = process(kernel, args.process)?;
    Ok(Next::Return(kernel.processes[slot].unmap_range(args.range)))
}

/// VmProtect: new access for the range's mapped pages.
pub fn protect(
    kernel: &mut Kernel,
    _caller: ThreadSlot,
    args: VmProtectArgs,
) -> Result<Next, Error> {
    let slot = process(kernel, args.process)?;
    Ok(Next::Return(
        kernel.processes[slot].protect_range(args.range, args.flags),
    ))
}

/// VmQuery: how many pages of the range are mapped.
pub fn query(kernel: &mut Kernel, _caller: ThreadSlot, args: VmQueryArgs) -> Result<Next, Error> {
    let slot = process(kernel, args.process)?;
    Ok(Next::Return(kernel.processes[slot].mapped_in(args.range)))
}

/// VmProcessOf: the pid of the process `thread` belongs to.
pub fn process_of(
    kernel: &mut Kernel,
    _caller: ThreadSlot,
    args: VmProcessOfArgs,
) -> Result<Next, Error> {
    let slot = kernel.table.resolve(args.thread)?;
    Ok(Next::Return(u64::from(kernel.process_of(slot).pid())))
}

/// The slot of `thread` if it is waiting for VM (`BadEndpoint`/`DeadEndpoint` for a bad
/// or stale endpoint, `InvalidArgument` if it waits for nothing of VM's).
fn waiting_thread(kernel: &Kernel, thread: Endpoint) -> Result<(ThreadSlot, u64), Error> {
    let slot = kernel.table.resolve(thread)?;
    match kernel.table.state(slot) {
        ThreadState::WaitingForVm { address, .. } => Ok((slot, address)),
        _ => Err(Error::InvalidArgument),
    }
}

/// VmResume: the fault is handled; the thread runs the faulting instruction again.
pub fn resume(kernel: &mut Kernel, _caller: ThreadSlot, args: VmResumeArgs) -> Result<Next, Error> {
    let (slot, _) = waiting_thread(kernel, args.thread)?;
    kernel.resume_from_vm(slot);
    Ok(Next::Return(0))
}

/// VmFail: the fault is invalid; it becomes an exception for the thread's process (or,
/// for a suspended system call, that call returns `Fault`). VM's own threads never wait
/// for VM, so the caller is never the one killed.
pub fn fail(kernel: &mut Kernel, _caller: ThreadSlot, args: VmFailArgs) -> Result<Next, Error> {
    let (slot, _) = waiting_thread(kernel, args.thread)?;
    kernel.fail_from_vm(slot, "refused by the VM server (its log says why)");
    Ok(Next::Return(0))
}
