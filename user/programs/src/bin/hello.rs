//! `hello`: the demo program (the default of `cargo xtask run`): greets with its endpoint
//! and arguments, and exits 0.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use vigil_rt::{ipc, println, thread};

vigil_rt::entry!(main);

fn main(args: &str) -> i32 {
    let words: Vec<&str> = args.split_whitespace().collect();
    println!(
        "hello from Vigil user space: endpoint {}, thread {} of this process, args {:?}",
        ipc::self_endpoint(),
        thread::index_in_process(),
        words
    );
    0
}
