//! SafeCopyFrom / SafeCopyTo: bulk copies through a memory grant.

use crate::system::Kernel;
use vigil_abi::{Endpoint, Error};

/// Arguments: granter endpoint, grant id, offset in the grant, local address, length.
pub fn run(
    kernel: &mut Kernel,
    caller: u16,
    [granter, grant, offset, local, len]: [u64; 5],
    into_caller: bool,
) -> Result<u64, Error> {
    kernel.safe_copy(
        caller,
        Endpoint(granter),
        grant,
        offset,
        local,
        len,
        into_caller,
    )
}
