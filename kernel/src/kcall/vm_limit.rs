//! VmLimitOf: VM learns the memory limit the boot table set for a process (`mem=`).

use crate::syscall::Next;
use crate::system::Kernel;
use vigil_abi::syscall::VmLimitOfArgs;
use vigil_abi::Error;
use vigil_kcore::slot::ThreadSlot;

/// VmLimitOf: the process's limit in pages, 0 if the boot table set none (`NotFound` for a
/// pid no live process has).
pub fn limit_of(
    kernel: &mut Kernel,
    _caller: ThreadSlot,
    args: VmLimitOfArgs,
) -> Result<Next, Error> {
    let slot = kernel
        .processes
        .by_pid(args.process.0)
        .ok_or(Error::NotFound)?;
    Ok(Next::Return(kernel.processes[slot].memory_limit_pages()))
}
