//! `crash_panic`: panics, so the runtime's panic handler must print
//! `panic: <message> at <file>:<line>:<col>` and exit the process with status 101.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

vigil_rt::entry!(main);

fn main(args: &str) -> i32 {
    let value = core::hint::black_box(42);
    panic!("deliberate panic: value={value} args={args:?}");
}
