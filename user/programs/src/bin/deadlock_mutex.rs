//! `deadlock_mutex`: two threads take two mutexes in opposite order and deadlock for good —
//! the kernel records each waiter's `Mutex { address, owner }`, so the host's detector must
//! report the cycle naming both threads and both lock addresses.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use core::time::Duration;
use vigil_rt::sync::Mutex;
use vigil_rt::{println, thread};

vigil_rt::entry!(main);

static FIRST: Mutex<u64> = Mutex::new(0);
static SECOND: Mutex<u64> = Mutex::new(0);

fn take_both(name: &str, a: &'static Mutex<u64>, b: &'static Mutex<u64>) {
    let mut held = a.lock();
    *held += 1;
    println!(
        "deadlock_mutex: {name} ({}) holds {:p}, now wants {:p}",
        thread::current(),
        a,
        b
    );
    // Give the other thread time to take its first lock, so the deadlock is certain.
    thread::sleep(Duration::from_millis(100));
    let mut other = b.lock();
    *other += 1;
    println!("deadlock_mutex: {name} got both locks: there was no deadlock");
}

fn main(_args: &str) -> i32 {
    let left = thread::spawn(|| take_both("left", &FIRST, &SECOND));
    let right = thread::spawn(|| take_both("right", &SECOND, &FIRST));
    let _ = left.join();
    let _ = right.join();
    1
}
