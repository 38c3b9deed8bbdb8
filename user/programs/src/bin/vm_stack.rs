//! `vm_stack`: the stack grows through the VM server. `vm_stack grow` recurses through
//! 160 KiB of stack (the kernel maps 16 KiB; VM maps the rest page by page) and prints
//! `vm_stack: grew …`; `vm_stack overflow` recurses without end until the guard page, where
//! VM refuses the fault and the kernel kills the process with a report.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use vigil_rt::println;

vigil_rt::entry!(main);

/// Recurses `depth` times with a page of stack per frame; returns a checksum so the
/// frames cannot be optimised away.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let mut page = [0u8; 4096];
    page[0] = depth as u8;
    page[4095] = 1;
    let page = core::hint::black_box(page);
    if depth == 0 {
        return u64::from(page[0]) + u64::from(page[4095]);
    }
    recurse(depth - 1) + u64::from(page[0])
}

fn main(args: &str) -> i32 {
    match args.trim() {
        "grow" => {
            let sum = recurse(40);
            println!("vm_stack: grew the stack through 40 pages (checksum {sum})");
            0
        }
        "overflow" => {
            println!("vm_stack: recursing until the stack limit");
            let sum = recurse(u64::MAX);
            println!("vm_stack: FAIL returned from unbounded recursion ({sum})");
            1
        }
        other => {
            println!("vm_stack: unknown mode '{other}' (grow or overflow)");
            2
        }
    }
}
