//! Periodic alarms: notifications from `Endpoint::CLOCK`, received like any notification
//! (`payload[0]` = ticks coalesced into the delivery, `payload[1]` = kernel time in ns).

use core::time::Duration;

use vigil_abi::Error;

use crate::syscall;

/// Asks for a notification from `Endpoint::CLOCK` every `period` (replacing any earlier
/// alarm of this thread); a zero period cancels.
pub fn set(period: Duration) -> Result<(), Error> {
    let period_ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
    syscall::alarm_set_ns(period_ns).map(|_| ())
}

/// Cancels the alarm.
pub fn cancel() -> Result<(), Error> {
    syscall::alarm_set_ns(0).map(|_| ())
}
