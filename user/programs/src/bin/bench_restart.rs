//! `bench_restart`: the restart benchmark of `cargo xtask bench` (its own boot: VM, PM, RS
//! supervising `hello_service:stable=0`, this program). Each sample ends hello and times,
//! with `rdtsc`, from the fatal request to the first answer at the same endpoint
//! (`ipc::call_service` waits on the restart tombstone until the replacement takes it
//! over): `restart_crash_to_serving` for a null dereference (RS hears of it at once, as
//! its signal manager), `restart_exit_to_serving` for an exit (PM's exit notice tells RS at
//! once), `restart_hang_to_serving` for a hang (RS's pings go unanswered: silent for 3 of
//! its default 100 ms periods, it kills the instance; the row is detection plus restart),
//! and from the same hangs `hang_detected`: from the HANG request to its failure with
//! `Restarted`, i.e. RS's verdict and the kill. Prints `bench: <name> median_cycles=…
//! min_cycles=… iterations=… max_cycles=…` per row, then `bench: done`, and shuts down.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use vigil_programs::{lookup_with_retry, median_and_min};
use vigil_rt::abi::rs::hello;
use vigil_rt::{ipc, println, process, tsc, Endpoint, Error, Message};

vigil_rt::entry!(main);

/// Restarts timed per row (after one untimed warm-up).
const SAMPLES: usize = 20;

/// One request by plain `send_receive`: the fatal one, which must fail with `Restarted`.
fn fatal(server: Endpoint, kind: u32, argument: u64) -> bool {
    let mut message = Message::with_payload(kind, [argument, 0, 0, 0, 0, 0]);
    matches!(
        ipc::send_receive(server, &mut message),
        Err(Error::Restarted)
    )
}

/// The first answer at the kept endpoint: a GET through `call_service`.
fn answered(server: Endpoint) -> bool {
    let mut message = Message::with_payload(hello::request::GET, [0; 6]);
    ipc::call_service(server, &mut message).is_ok()
        && message.kind == hello::request::REPLY
        && message.payload[0] == 0
}

/// Prints the row `name` of `samples`.
fn print_row(name: &str, samples: &mut [u64]) {
    let max = samples.iter().copied().max().unwrap_or(0);
    let (median, min) = median_and_min(samples).unwrap_or((0, 0));
    println!(
        "bench: {name} median_cycles={median} min_cycles={min} iterations={} max_cycles={max}",
        samples.len()
    );
}

/// Times `SAMPLES` restarts by `kind`: prints the row `name` (the fatal request to the
/// first answer) and, if `failed_name` is given, the row of the fatal request to its
/// failure (`Restarted`). False if a call went wrong.
fn row(name: &str, failed_name: Option<&str>, server: Endpoint, kind: u32, argument: u64) -> bool {
    let mut ok = fatal(server, kind, argument) && answered(server);
    let mut to_serving: Vec<u64> = Vec::with_capacity(SAMPLES);
    let mut to_failure: Vec<u64> = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let start = tsc();
        ok &= fatal(server, kind, argument);
        to_failure.push(tsc().wrapping_sub(start));
        ok &= answered(server);
        to_serving.push(tsc().wrapping_sub(start));
    }
    print_row(name, &mut to_serving);
    if let Some(failed_name) = failed_name {
        print_row(failed_name, &mut to_failure);
    }
    ok
}

fn main(_args: &str) -> i32 {
    let server = match lookup_with_retry(hello::SERVICE_NAME) {
        Ok(server) => server,
        Err(error) => {
            println!("bench: FAIL: {error}");
            process::shutdown(false)
        }
    };
    let ok = answered(server)
        && row(
            "restart_crash_to_serving",
            None,
            server,
            hello::request::CRASH,
            0,
        )
        && row(
            "restart_exit_to_serving",
            None,
            server,
            hello::request::EXIT,
            3,
        )
        && row(
            "restart_hang_to_serving",
            Some("hang_detected"),
            server,
            hello::request::HANG,
            0,
        );
    if ok {
        println!("bench: done");
    } else {
        println!("bench: FAIL: a restart did not go as expected");
    }
    process::shutdown(ok)
}
