//! PmHostReply (43): the process manager's (or, for a service command, the reincarnation
//! server's) answer to a host command the kernel forwarded (`crate::host_command`); the
//! kernel sends it to the host as the result frame.

use alloc::vec;

use crate::syscall::Next;
use crate::system::Kernel;
use crate::usercopy;
use vigil_abi::host_command::{MAX_TEXT_BYTES, MAX_TREE_RECORDS};
use vigil_abi::server_introspect::PROCESS_RECORD_BYTES;
use vigil_abi::syscall::PmHostReplyArgs;
use vigil_abi::Error;
use vigil_kcore::slot::ThreadSlot;

/// Only PM or RS answers (`PermissionDenied` for anyone else), and only the commands that
/// went to it (`PermissionDenied` for the other's); the request must be one delivered and
/// still waiting (`NotFound` otherwise: answered, timed out or forged). The data is read
/// and checked before the request is completed, so a bad call loses nothing.
pub fn run(kernel: &mut Kernel, caller: ThreadSlot, args: PmHostReplyArgs) -> Result<Next, Error> {
    let process = kernel.threads[caller].process();
    if kernel.pm.process() != Some(process) && kernel.rs.process() != Some(process) {
        return Err(Error::PermissionDenied);
    }
    let pending = kernel
        .host_commands
        .waiting(args.request.0)
        .ok_or(Error::NotFound)?;
    if !kernel.answers_host_command(process, pending.command) {
        return Err(Error::PermissionDenied);
    }
    if args.data.len() > MAX_TEXT_BYTES.max(MAX_TREE_RECORDS * PROCESS_RECORD_BYTES) {
        return Err(Error::InvalidArgument);
    }
    let mut data = vec![0u8; args.data.len()];
    usercopy::read(kernel.space_of(caller), args.data, &mut data)?;
    let manager = kernel.processes[process].pid();
    let frame = crate::host_command::answer(
        &pending,
        args.outcome,
        &data,
        manager,
        crate::time::now_ns(),
    )?;
    kernel.host_commands.complete(args.request.0);
    crate::monitor::send(&frame);
    Ok(Next::Return(0))
}
