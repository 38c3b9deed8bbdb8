//! `survivor`: judges the crash scenario. A high-priority process that looks up
//! `crash_null`, `crash_divide` and `crash_panic`, sleeps 300 ms while they fault or panic,
//! checks that it is still running and that all three are gone (their endpoints are dead),
//! and shuts down with success.
//! Boot with `prio=2 kcalls=shutdown`.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use vigil_programs::finish;
use vigil_rt::{ipc, println, thread, time, Endpoint, Error};

vigil_rt::entry!(main);

const CRASHERS: [&str; 3] = ["crash_null", "crash_divide", "crash_panic"];

fn main(_args: &str) -> i32 {
    finish("survivor", run())
}

fn run() -> Result<String, String> {
    let before: Vec<Result<Endpoint, Error>> = CRASHERS.iter().map(|n| ipc::lookup(n)).collect();
    let start = time::now_ns();
    thread::sleep(Duration::from_millis(300));
    let slept_ms = (time::now_ns() - start) / 1_000_000;
    println!("still alive after sleeping {slept_ms} ms");
    for (name, looked_up) in CRASHERS.iter().zip(before) {
        // Either the name is gone, or the endpoint it had now names a dead thread.
        let endpoint = match looked_up.or_else(|_| ipc::lookup(name)) {
            Ok(endpoint) => endpoint,
            Err(Error::NotFound) => {
                println!("{name}: no longer known (NotFound)");
                continue;
            }
            Err(error) => return Err(format!("lookup({name:?}): {error}")),
        };
        match ipc::notify(endpoint) {
            Err(Error::DeadEndpoint) => println!("{name} ({endpoint}): dead"),
            Ok(()) => return Err(format!("{name} ({endpoint}) is still alive")),
            Err(error) => return Err(format!("notify {name} ({endpoint}): {error}")),
        }
    }
    Ok(format!(
        "alive after {slept_ms} ms; {} are dead",
        CRASHERS.join(", ")
    ))
}
