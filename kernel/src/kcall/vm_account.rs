//! VmSetVirtual: VM tells the kernel a process's virtual size, which only VM knows (the
//! regions it placed), so the snapshot can report it beside the figures the kernel counts
//! itself (resident, peak, faults). Kept apart from the memory calls in `vm.rs`.

use crate::syscall::Next;
use crate::system::Kernel;
use vigil_abi::syscall::VmSetVirtualArgs;
use vigil_abi::Error;
use vigil_kcore::slot::ThreadSlot;

/// VmSetVirtual: records VM's virtual size of a live process (`NotFound` otherwise).
pub fn set_virtual(
    kernel: &mut Kernel,
    _caller: ThreadSlot,
    args: VmSetVirtualArgs,
) -> Result<Next, Error> {
    let slot = kernel
        .processes
        .by_pid(args.process.0)
        .ok_or(Error::NotFound)?;
    kernel.processes[slot].set_vm_virtual_bytes(args.bytes);
    Ok(Next::Return(0))
}
