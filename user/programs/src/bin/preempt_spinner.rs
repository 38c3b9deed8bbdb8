//! `preempt_spinner`: a low-priority CPU hog for the preemption scenario: tells
//! `preempt_driver` it is running, then spins forever.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use vigil_programs::lookup_with_retry;
use vigil_rt::{ipc, println};

vigil_rt::entry!(main);

fn main(_args: &str) -> i32 {
    match lookup_with_retry("preempt_driver").map(ipc::notify) {
        Ok(Ok(())) => println!("spinning"),
        Ok(Err(error)) => println!("notifying the driver failed: {error}; spinning anyway"),
        Err(error) => println!("{error}; spinning anyway"),
    }
    loop {
        core::hint::spin_loop();
    }
}
