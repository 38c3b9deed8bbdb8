//! `timers`: a periodic alarm at 20 ms: receives 10 notifications from CLOCK (the first half
//! with receive(ANY), the rest with receive(CLOCK)), each with a later kernel time in
//! payload[1], spaced by at least the period on average. Boot with `kcalls=shutdown`.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use vigil_programs::{context, finish, ms_text};
use vigil_rt::{alarm, ipc, println, time, Endpoint};

vigil_rt::entry!(main);

const PERIOD: Duration = Duration::from_millis(20);
const NOTIFICATIONS: usize = 10;

fn main(_args: &str) -> i32 {
    finish("timers", run())
}

fn run() -> Result<String, String> {
    let start_ns = time::now_ns();
    context(alarm::set(PERIOD), "alarm::set(20 ms)")?;
    let mut times: Vec<u64> = Vec::with_capacity(NOTIFICATIONS);
    let mut ticks = 0;
    for index in 0..NOTIFICATIONS {
        let from = if index < NOTIFICATIONS / 2 {
            Endpoint::ANY
        } else {
            Endpoint::CLOCK
        };
        let message = context(ipc::receive(from), &format!("receive({from}) #{index}"))?;
        if !message.is_notification() || message.source != Endpoint::CLOCK {
            return Err(format!(
                "message {index}: kind {:#x} from {} (expected a notification from CLOCK)",
                message.kind, message.source
            ));
        }
        let at = message.payload[1];
        if let Some(&previous) = times.last() {
            if at <= previous {
                return Err(format!(
                    "notification {index} at {at} ns is not after the previous one at \
                     {previous} ns"
                ));
            }
        }
        times.push(at);
        ticks += message.payload[0];
    }
    context(alarm::cancel(), "alarm::cancel")?;
    let span = times[NOTIFICATIONS - 1].saturating_sub(start_ns);
    let intervals: Vec<String> = times
        .windows(2)
        .map(|pair| ms_text(pair[1] - pair[0]))
        .collect();
    println!("intervals: {}", intervals.join(", "));
    let minimum_span = PERIOD.as_nanos() as u64 * (NOTIFICATIONS as u64 - 1);
    if span < minimum_span {
        return Err(format!(
            "{NOTIFICATIONS} notifications within {} of setting the alarm (expected at least {})",
            ms_text(span),
            ms_text(minimum_span)
        ));
    }
    Ok(format!(
        "{NOTIFICATIONS} notifications ({ticks} alarm ticks) over {}",
        ms_text(span)
    ))
}
