//! `mutex_counter`: two threads each increment a shared counter 10,000 times under
//! `sync::Mutex`, yielding inside the critical section now and then so that the other
//! thread contends and sleeps in the kernel (MutexWait/MutexWake); the total must be
//! 20,000. Boot with `kcalls=shutdown`.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use vigil_programs::{context, finish};
use vigil_rt::sync::Mutex;
use vigil_rt::thread;

vigil_rt::entry!(main);

const INCREMENTS: u64 = 10_000;
const THREADS: u64 = 2;
/// Every this many increments a thread yields while holding the lock.
const YIELD_EVERY: u64 = 64;

static COUNTER: Mutex<u64> = Mutex::new(0);

fn main(_args: &str) -> i32 {
    finish("mutex", run())
}

fn increment() {
    for i in 0..INCREMENTS {
        let mut counter = COUNTER.lock();
        let value = *counter;
        if i % YIELD_EVERY == 0 {
            thread::yield_now();
        }
        *counter = value + 1;
    }
}

fn run() -> Result<String, String> {
    let first = thread::spawn(increment);
    let second = thread::spawn(increment);
    context(first.join(), "joining the first thread")?;
    context(second.join(), "joining the second thread")?;
    let total = match COUNTER.try_lock() {
        Some(counter) => *counter,
        None => return Err(format!("the mutex is still locked: {COUNTER:?}")),
    };
    if total != INCREMENTS * THREADS {
        return Err(format!(
            "total {total}, expected {} — increments were lost",
            INCREMENTS * THREADS
        ));
    }
    Ok(format!("total={total}"))
}
