//! Ending the process, and stopping the machine (for test and benchmark programs).

use vigil_abi::Error;

use crate::syscall;

/// Ends every thread of this process; the kernel reports `status`.
pub fn exit(status: i32) -> ! {
    // Sign-extended, so a negative status reads as such where the kernel prints an i64.
    syscall::process_exit(i64::from(status) as u64)
}

/// Stops the machine with success or failure (the `Shutdown` kernel call: QEMU exits).
/// The process must be booted with that kernel call allowed (`kcalls=shutdown`, `all`).
/// If the kernel refuses, says so and exits the process (status 0 or 1) instead.
pub fn shutdown(success: bool) -> ! {
    let status = u64::from(!success);
    let error = match syscall::shutdown(status) {
        Ok(_) => Error::InvalidArgument,
        Err(error) => error,
    };
    crate::println!("shutdown refused: {error}; exiting the process instead");
    exit(status as i32)
}
