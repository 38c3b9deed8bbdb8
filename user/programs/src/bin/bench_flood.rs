//! `bench_flood`: the hostile low-priority program of the wake-up lateness benchmark.
//!
//! Waits for a message from `bench_client` whose `payload[0]` is a duration in
//! nanoseconds, then floods the console with 4,096-byte DebugWrites of 2,048 short lines
//! each until that time has passed, and waits again. Boot it with a lower priority than
//! `bench_client` (`prio=12`), so it runs exactly while the measuring thread sleeps — and
//! any kernel time a DebugWrite takes in one piece delays that thread's wake-up.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use vigil_rt::{ipc, syscall, Endpoint};

vigil_rt::entry!(main);

fn main(_args: &str) -> i32 {
    let mut flood = [0u8; 4096];
    for pair in flood.chunks_mut(2) {
        pair.copy_from_slice(b"~\n");
    }
    loop {
        let Ok(order) = ipc::receive(Endpoint::ANY) else {
            continue;
        };
        let Ok(start) = syscall::clock_ns() else {
            continue;
        };
        let until = start.saturating_add(order.payload[0]);
        while syscall::clock_ns().is_ok_and(|now| now < until) {
            // The raw call, not `print`: one 4,096-byte write per call, as a hostile
            // program would make it (the kernel takes a bounded part of it).
            let _ = syscall::debug_write(&flood);
        }
    }
}
