//! `pm_parent`: a long-running parent for the host-command scenario. It spawns
//! `pm_child` with its arguments (default `sleep`: a child that sleeps for an hour, to be
//! killed from the host), waits for it, prints the child's exit status, and then keeps
//! running (sleeping), so the scenario can see that the parent survives its child's kill.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use core::time::Duration;

use vigil_rt::{pm, println, thread};

vigil_rt::entry!(main);

fn main(args: &str) -> i32 {
    let arguments = match args.trim() {
        "" => "sleep",
        given => given,
    };
    let child = match pm::spawn("pm_child", arguments) {
        Ok(pid) => pid,
        Err(error) => {
            println!("FAIL spawn of pm_child {arguments}: {error}");
            return 1;
        }
    };
    println!("spawned pm_child pid {child} ({arguments}); waiting for it");
    match pm::wait(Some(child)) {
        Ok(exited) => println!("child {} exited with status {}", exited.pid, exited.status),
        Err(error) => println!("FAIL wait for pid {child}: {error}"),
    }
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}
