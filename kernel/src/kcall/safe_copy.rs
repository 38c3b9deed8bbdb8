//! SafeCopyFrom / SafeCopyTo: bulk copies through a memory grant.

use crate::grant::{CopyDirection, SafeCopyRequest};
use crate::syscall::Next;
use crate::system::Kernel;
use vigil_abi::syscall::{SafeCopyFromArgs, SafeCopyToArgs};
use vigil_abi::Error;
use vigil_kcore::slot::ThreadSlot;

/// SafeCopyFrom: grant → caller.
pub fn from_grant(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: SafeCopyFromArgs,
) -> Result<Next, Error> {
    let request = SafeCopyRequest {
        granter: args.granter,
        grant: args.grant,
        offset: args.offset,
        local: args.local,
        direction: CopyDirection::FromGrant,
    };
    kernel.safe_copy(caller, request).map(|()| Next::Return(0))
}

/// SafeCopyTo: caller → grant.
pub fn to_grant(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: SafeCopyToArgs,
) -> Result<Next, Error> {
    let request = SafeCopyRequest {
        granter: args.granter,
        grant: args.grant,
        offset: args.offset,
        local: args.local,
        direction: CopyDirection::ToGrant,
    };
    kernel.safe_copy(caller, request).map(|()| Next::Return(0))
}
