//! `spinner`: a CPU hog for the monitor scenarios — spins forever, printing once a second
//! how many iterations it has done (so a host can see it is alive but busy).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use vigil_rt::{println, time};

vigil_rt::entry!(main);

fn main(_args: &str) -> i32 {
    println!("spinner: spinning");
    let mut iterations: u64 = 0;
    let mut next_report = time::now_ns() + 1_000_000_000;
    loop {
        iterations = core::hint::black_box(iterations.wrapping_add(1));
        if iterations.is_multiple_of(65_536) && time::now_ns() >= next_report {
            println!("spinner: {iterations} iterations");
            next_report += 1_000_000_000;
        }
    }
}
