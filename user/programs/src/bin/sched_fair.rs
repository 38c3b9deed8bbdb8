//! `sched_fair`: two CPU-bound threads of equal priority count loop iterations for about
//! 2 s while the main thread sleeps; round robin must give them counts within 10 % of each
//! other. Boot with `kcalls=shutdown`, under `-icount shift=0` (the scenario does): only then
//! is an iteration count a measure of the CPU time a thread was given, whatever the host does.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use vigil_programs::{context, finish, ratio_text};
use vigil_rt::{println, thread};

vigil_rt::entry!(main);

const RUN_TIME: Duration = Duration::from_secs(2);
/// The smaller count must be at least this many thousandths of the larger.
const MIN_RATIO_THOUSANDTHS: u64 = 900;

static STOP: AtomicBool = AtomicBool::new(false);
static COUNTS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

fn main(_args: &str) -> i32 {
    finish("fair", run())
}

/// Counts iterations until told to stop, publishing the count as it goes.
fn count(index: usize) {
    let mut iterations: u64 = 0;
    while !STOP.load(Ordering::Relaxed) {
        iterations += 1;
        COUNTS[index].store(iterations, Ordering::Relaxed);
    }
}

fn run() -> Result<String, String> {
    let first = thread::spawn(|| count(0));
    let second = thread::spawn(|| count(1));
    thread::sleep(RUN_TIME);
    // Snapshot both counts at one moment (both counters are off the CPU while we run).
    let a = COUNTS[0].load(Ordering::Relaxed);
    let b = COUNTS[1].load(Ordering::Relaxed);
    STOP.store(true, Ordering::Relaxed);
    context(first.join(), "joining the first counter")?;
    context(second.join(), "joining the second counter")?;
    let (low, high) = (a.min(b), a.max(b));
    let ratio = ratio_text(low, high);
    println!(
        "counts after {} s: a={a} b={b} ratio={ratio}",
        RUN_TIME.as_secs()
    );
    if low == 0 {
        return Err(format!("a thread never ran: a={a} b={b}"));
    }
    if u128::from(low) * 1000 < u128::from(high) * u128::from(MIN_RATIO_THOUSANDTHS) {
        return Err(format!(
            "unfair: a={a} b={b} ratio={ratio} (below 0.{MIN_RATIO_THOUSANDTHS})"
        ));
    }
    Ok(format!("a={a} b={b} ratio={ratio}"))
}
