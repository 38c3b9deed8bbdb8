//! Time: the kernel clock (nanoseconds since boot).

use core::time::Duration;

use crate::syscall;

/// Nanoseconds since boot, from the kernel's clock.
pub fn now_ns() -> u64 {
    // ClockNs cannot fail; 0 would only show up if a kernel broke that promise.
    syscall::clock_ns().unwrap_or(0)
}

/// Time since boot.
pub fn now() -> Duration {
    Duration::from_nanos(now_ns())
}
