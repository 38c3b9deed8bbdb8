//! `bench_client`: micro-benchmarks in TSC cycles (under `-icount shift=0`, guest
//! instructions). Each measurement warms up, then times 10,000 iterations one by one with
//! `rdtsc` and prints exactly one line
//! `bench: <name> median_cycles=<n> min_cycles=<n> iterations=<n>`, for
//! - `null_syscall`: the SelfEndpoint system call;
//! - `ipc_roundtrip`: send_receive of a null message to `bench_server` and its reply;
//! - `notify_roundtrip`: notify `bench_server`, receive its notification back;
//! - `context_switch`: two threads of this process alternating with yield_now (one sample
//!   is a yield there and back, so it is halved: cycles per switch);
//!
//! then `bench: done`, and shuts down with success. Boot with `kcalls=shutdown`.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use vigil_programs::{lookup_with_retry, median_and_min};
use vigil_rt::{ipc, println, process, syscall, thread, tsc, Endpoint, Message};

vigil_rt::entry!(main);

const ITERATIONS: usize = 10_000;
const WARMUP: usize = 1_000;

fn main(_args: &str) -> i32 {
    let server = match lookup_with_retry("bench_server") {
        Ok(server) => server,
        Err(error) => {
            println!("bench: FAIL: {error}");
            process::shutdown(false);
        }
    };
    let mut ok = true;
    ok &= measure("null_syscall", 1, || syscall::self_endpoint().is_ok());
    ok &= measure("ipc_roundtrip", 1, || ipc_round_trip(server));
    ok &= measure("notify_roundtrip", 1, || notify_round_trip(server));
    ok &= context_switch();
    if ok {
        println!("bench: done");
    } else {
        println!("bench: FAIL: a measured operation failed");
    }
    process::shutdown(ok)
}

fn ipc_round_trip(server: Endpoint) -> bool {
    let mut message = Message::default();
    ipc::send_receive(server, &mut message).is_ok()
}

fn notify_round_trip(server: Endpoint) -> bool {
    ipc::notify(server).is_ok() && ipc::receive(server).is_ok_and(|answer| answer.is_notification())
}

/// Runs `operation` WARMUP times, then ITERATIONS times each timed with `tsc()`; prints the
/// line for `name` with each sample divided by `per_sample`. False if any call failed.
fn measure(name: &str, per_sample: u64, mut operation: impl FnMut() -> bool) -> bool {
    let mut ok = true;
    for _ in 0..WARMUP {
        ok &= operation();
    }
    let mut samples: Vec<u64> = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let start = tsc();
        ok &= operation();
        let end = tsc();
        samples.push(end.wrapping_sub(start) / per_sample);
    }
    report(name, &mut samples);
    if !ok {
        println!("bench: {name}: some calls failed");
    }
    ok
}

fn report(name: &str, samples: &mut [u64]) {
    let (median, min) = median_and_min(samples).unwrap_or((0, 0));
    println!(
        "bench: {name} median_cycles={median} min_cycles={min} iterations={}",
        samples.len()
    );
}

/// Set when the measuring thread is finished, to stop its partner.
static SWITCHING_DONE: AtomicBool = AtomicBool::new(false);

/// Two threads yield to each other; the measuring one times each yield-and-back.
fn context_switch() -> bool {
    let partner = thread::spawn(|| {
        while !SWITCHING_DONE.load(Ordering::Relaxed) {
            thread::yield_now();
        }
    });
    let measurer = thread::spawn(|| {
        let ok = measure("context_switch", 2, || syscall::yield_now().is_ok());
        SWITCHING_DONE.store(true, Ordering::Relaxed);
        if !ok {
            syscall::thread_exit(1);
        }
    });
    let measured = measurer.join();
    let partnered = partner.join();
    matches!(measured, Ok(0)) && partnered.is_ok()
}
