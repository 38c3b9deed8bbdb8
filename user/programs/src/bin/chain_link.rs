//! `chain_link`: one link of a blocked IPC chain for the monitor scenarios. Booted as
//! `name=chain_a -- chain_b`, `name=chain_b -- chain_c` and `name=chain_c -- none`: each
//! does a SendReceive to the next link, which never takes the request because it is itself
//! blocked sending to the next one; the last link sleeps and never receives. The host sees
//! `chain_a → chain_b → chain_c (sleeping)` with every wait target.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use vigil_abi::Message;
use vigil_programs::lookup_with_retry;
use vigil_rt::{ipc, println};

vigil_rt::entry!(main);

fn main(args: &str) -> i32 {
    let next = args.trim();
    if next == "none" || next.is_empty() {
        println!("chain_link: end of the chain, sleeping instead of receiving");
        loop {
            vigil_rt::thread::sleep(core::time::Duration::from_secs(3600));
        }
    }
    let destination = match lookup_with_retry(next) {
        Ok(endpoint) => endpoint,
        Err(reason) => {
            println!("chain_link: FAIL: {reason}");
            return 1;
        }
    };
    println!("chain_link: send_receive to {next} ({destination})");
    let mut message = Message::new(1);
    match ipc::send_receive(destination, &mut message) {
        Ok(()) => println!("chain_link: {next} replied — the chain was not blocked"),
        Err(error) => println!("chain_link: send_receive to {next} failed: {error}"),
    }
    0
}
