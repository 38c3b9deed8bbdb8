//! `pm_child`: a program the process manager spawns in the `pm-*` scenarios. Its
//! arguments say what it does: `exit N` (exit with status N), `syscalls` (system calls
//! forever, for the traced-call bench row), `receive` / `sleep` /
//! `mutex` (block forever there, to be killed), `tree DEPTH` (spawn a `tree DEPTH-1`
//! child; the middle of a tree exits at once with its child's pid as status, orphaning
//! it; the leaf exits 5; a node whose child is a leaf waits for it and prints its status).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use core::time::Duration;

use vigil_rt::abi::Endpoint;
use vigil_rt::sync::Mutex;
use vigil_rt::{ipc, pm, println, thread};

vigil_rt::entry!(main);

fn main(args: &str) -> i32 {
    let mut words = args.split_whitespace();
    match (
        words.next(),
        words.next().and_then(|w| w.parse::<u64>().ok()),
    ) {
        (Some("exit"), Some(status)) => status as i32,
        (Some("syscalls"), _) => loop {
            // System calls forever, for the traced-call bench row.
            let _ = vigil_rt::syscall::self_endpoint();
        },
        (Some("receive"), _) => {
            let _ = ipc::receive(Endpoint::ANY);
            1
        }
        (Some("sleep"), _) => {
            thread::sleep(Duration::from_secs(3600));
            1
        }
        (Some("mutex"), _) => {
            let lock: &'static Mutex<u32> =
                alloc::boxed::Box::leak(alloc::boxed::Box::new(Mutex::new(0u32)));
            let held = lock.lock();
            let other = thread::spawn(move || {
                let _ = *lock.lock();
            });
            let _ = other.join();
            drop(held);
            1
        }
        (Some("tree"), Some(depth)) => tree(depth),
        _ => {
            println!("unknown arguments {args:?}");
            2
        }
    }
}

fn tree(depth: u64) -> i32 {
    if depth == 0 {
        thread::sleep(Duration::from_millis(200));
        return 5;
    }
    let child = match pm::spawn("pm_child", &alloc::format!("tree {}", depth - 1)) {
        Ok(pid) => pid,
        Err(error) => {
            println!("tree {depth}: spawn failed: {error}");
            return 3;
        }
    };
    if depth == 1 {
        match pm::wait(Some(child)) {
            Ok(exited) => println!(
                "tree 1: child {} exited with status {}",
                exited.pid, exited.status
            ),
            Err(error) => println!("tree 1: wait failed: {error}"),
        }
        return 0;
    }
    // The middle of the tree leaves its child behind: PM becomes its parent.
    child as i32
}
