//! `trace_target`: a program with a known sequence of system calls, for `vtrace`'s scenario
//! (booted `boot=pm`): two lookups (one fails), a 1 ms sleep, a line on the console, a bogus
//! request to VM (answered with an error reply), then exit status 3. With `spawn`, it first
//! spawns `trace_target` again (without `spawn`) and waits for it, to show `vtrace -f`.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use core::time::Duration;
use vigil_rt::{ipc, pm, println, thread, Message};

vigil_rt::entry!(main);

/// A request kind VM does not know.
const BOGUS_VM_REQUEST: u32 = 0x0200_0099;

fn main(args: &str) -> i32 {
    if args.trim() == "spawn" {
        match pm::spawn("trace_target", "") {
            Ok(pid) => {
                let status = pm::wait(Some(pid)).map(|exited| exited.status);
                println!("child {pid} ended: {status:?}");
            }
            Err(error) => println!("spawn failed: {error}"),
        }
    }
    let vm = ipc::lookup("vm");
    let _ = ipc::lookup("nope");
    thread::sleep(Duration::from_millis(1));
    println!("hello from trace_target");
    if let Ok(vm) = vm {
        let mut message = Message::new(BOGUS_VM_REQUEST);
        let _ = ipc::send_receive(vm, &mut message);
    }
    3
}
