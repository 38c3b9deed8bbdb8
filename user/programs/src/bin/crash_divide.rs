//! `crash_divide`: divides by zero with the `div` instruction (Rust's `/` would panic
//! first), so the CPU raises #DE: the kernel must report the user fault naming this process
//! and kill it.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use vigil_rt::println;

vigil_rt::entry!(main);

fn main(_args: &str) -> i32 {
    println!("dividing by zero");
    let divisor = core::hint::black_box(0u64);
    let quotient: u64;
    // SAFETY: deliberately raises #DE (divisor 0); the kernel kills this process at the
    // `div`, and no memory is touched.
    unsafe {
        core::arch::asm!(
            "xor edx, edx",
            "div {divisor}",
            divisor = in(reg) divisor,
            inout("rax") 1234u64 => quotient,
            out("rdx") _,
            options(nomem, nostack),
        );
    }
    println!("FAIL: 1234 / 0 = {quotient} and survived");
    1
}
