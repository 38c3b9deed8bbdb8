//! `crash_null`: reads address 0, which is never mapped: the kernel must report a #PF user
//! fault naming this process and kill it, and the rest of the system must keep running.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use vigil_rt::println;

vigil_rt::entry!(main);

fn main(_args: &str) -> i32 {
    println!("reading address 0");
    let address = core::hint::black_box(0u64);
    let value: u64;
    // SAFETY: deliberately faults: the first 4 MiB of every address space are unmapped, so
    // the kernel kills this process at the load and the value is never used.
    unsafe {
        core::arch::asm!(
            "mov {value}, qword ptr [{address}]",
            address = in(reg) address,
            value = out(reg) value,
            options(nostack, readonly),
        );
    }
    println!("FAIL: read {value:#x} from address 0 and survived");
    1
}
