//! SafeCopyFrom / SafeCopyTo: bulk copies through a memory grant.

use crate::grant::{CopyDirection, SafeCopyRequest};
use crate::system::Kernel;
use vigil_abi::{Endpoint, Error};

/// Arguments: granter endpoint, grant id, offset in the grant, local address, length.
pub fn run(
    kernel: &mut Kernel,
    caller: u16,
    [granter, grant, offset, local, len]: [u64; 5],
    direction: CopyDirection,
) -> Result<u64, Error> {
    let request = SafeCopyRequest {
        granter: Endpoint(granter),
        grant,
        offset,
        local,
        len,
        direction,
    };
    kernel.safe_copy(caller, request)
}
