//! Sleep and AlarmSet: the system calls on the kernel's timer queue (`kcore::timer`).

use crate::syscall::Next;
use crate::system::Kernel;
use vigil_abi::syscall::{AlarmSetArgs, SleepArgs};
use vigil_abi::Error;
use vigil_kcore::slot::ThreadSlot;
use vigil_kcore::timer::TimerKind;

/// Sleep: blocks the caller for at least `duration_ns`.
pub fn sleep(kernel: &mut Kernel, caller: ThreadSlot, args: SleepArgs) -> Result<Next, Error> {
    let until = crate::time::now_ns().saturating_add(args.duration_ns);
    let generation = kernel.table.endpoint(caller).generation();
    kernel
        .timers
        .set(caller.get(), generation, TimerKind::Wakeup, until);
    Next::from_outcome(kernel.table.sleep(caller, until))
}

/// AlarmSet: a periodic CLOCK notification every `period_ns`; 0 cancels.
pub fn alarm_set(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: AlarmSetArgs,
) -> Result<Next, Error> {
    let period_ns = args.period_ns;
    if period_ns == 0 {
        kernel.timers.cancel_alarm(caller.get());
    } else {
        let generation = kernel.table.endpoint(caller).generation();
        let first = crate::time::now_ns().saturating_add(period_ns);
        kernel.timers.set(
            caller.get(),
            generation,
            TimerKind::Alarm { period_ns },
            first,
        );
    }
    Ok(Next::Return(0))
}
