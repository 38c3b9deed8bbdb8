//! MutexWait and MutexWake: the kernel half of user-space mutexes.
//!
//! The lock word names its owner (`mutex_word`), so a waiter's state records whom it waits
//! for and mutex wait chains are as visible as IPC ones.

use crate::syscall::Next;
use crate::system::Kernel;
use crate::usercopy;
use vigil_abi::syscall::{mutex_word, MutexWaitArgs, MutexWakeArgs};
use vigil_abi::{Endpoint, Error};
use vigil_kcore::slot::{ProcessSlot, ThreadSlot};

/// MutexWait: blocks while the word still holds `expected`.
pub fn wait(kernel: &mut Kernel, caller: ThreadSlot, args: MutexWaitArgs) -> Result<Next, Error> {
    let word = usercopy::read_value(kernel.space_of(caller), args.word)?;
    if u64::from(word) != args.expected {
        return Ok(Next::Return(0));
    }
    let process = kernel.threads[caller].process();
    let owner = mutex_word::owner(word)
        .and_then(ThreadSlot::new)
        .map_or(Endpoint::NONE, |owner| {
            endpoint_if_in_process(kernel, owner, process)
        });
    Next::from_outcome(kernel.table.mutex_wait(caller, args.word, owner))
}

/// MutexWake: wakes the longest waiter on the word; returns how many were woken.
pub fn wake(kernel: &mut Kernel, caller: ThreadSlot, args: MutexWakeArgs) -> Result<Next, Error> {
    let (table, mut env) = kernel.ipc_parts();
    Ok(Next::Return(table.mutex_wake(&mut env, caller, args.word)))
}

/// The endpoint of thread `slot` if it is a live thread of `process` (the owner a mutex
/// word names), else `Endpoint::NONE`.
fn endpoint_if_in_process(kernel: &Kernel, slot: ThreadSlot, process: ProcessSlot) -> Endpoint {
    if kernel.threads[slot].process() == process
        && kernel.table.state(slot) != vigil_abi::wait::ThreadState::Free
    {
        kernel.table.endpoint(slot)
    } else {
        Endpoint::NONE
    }
}
