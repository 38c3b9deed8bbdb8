//! `preempt_driver`: a high-priority thread that sleeps 20 ms fifty times while a
//! low-priority spinner hogs the CPU, measuring how late it wakes (now − intended wake
//! time). With preemption the median lateness stays below 20 ms; without it the driver
//! would wait for the spinner's quantum to end (about half a quantum, 25 ms, on average).
//! Boot with `prio=4 kcalls=shutdown`, the spinner with `prio=12`.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use vigil_programs::{context, finish, lookup_with_retry, median_and_min, ms_text};
use vigil_rt::{ipc, println, thread, time};

vigil_rt::entry!(main);

const SLEEPS: usize = 50;
const SLEEP: Duration = Duration::from_millis(20);
const LIMIT_NS: u64 = 20_000_000;

fn main(_args: &str) -> i32 {
    finish("preempt", run())
}

fn run() -> Result<String, String> {
    let spinner = lookup_with_retry("preempt_spinner")?;
    // Wait until the spinner runs (it notifies us), so every sleep competes with it.
    let hello = context(ipc::receive(spinner), "waiting for the spinner")?;
    if !hello.is_notification() {
        return Err(format!(
            "expected a notification from the spinner, got kind {:#x}",
            hello.kind
        ));
    }
    let mut lateness: Vec<u64> = Vec::with_capacity(SLEEPS);
    for _ in 0..SLEEPS {
        let intended = time::now_ns() + SLEEP.as_nanos() as u64;
        thread::sleep(SLEEP);
        lateness.push(time::now_ns().saturating_sub(intended));
    }
    let max = lateness.iter().copied().max().unwrap_or(0);
    let (median, min) = median_and_min(&mut lateness).ok_or("no samples")?;
    println!(
        "lateness over {SLEEPS} sleeps of 20 ms: median {} min {} max {}",
        ms_text(median),
        ms_text(min),
        ms_text(max)
    );
    if median >= LIMIT_NS {
        return Err(format!(
            "median lateness {} is not below {} — the spinner was not preempted",
            ms_text(median),
            ms_text(LIMIT_NS)
        ));
    }
    Ok(format!("median lateness {}", ms_text(median)))
}
