//! `fpu_isolation SEED`: x87/MMX/SSE registers belong to their thread.
//!
//! Two or more copies run with different seeds. Each first checks that it starts from the
//! documented initial state (every MMX and XMM register it reads zero, x87 control word
//! 0x37f, MXCSR 0x1f80) — nothing another process left behind — then 300 times writes
//! seed-derived values into MM0, MM7, XMM0, XMM8, XMM15 and MXCSR's rounding mode, yields to
//! the other copies, and checks the values are still its own. Prints
//! `fpu_isolation: PASS seed N …` or `FAIL` with the first difference, and exits with 0 or 1.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::arch::asm;
use vigil_rt::{println, syscall};

vigil_rt::entry!(main);

const ROUNDS: u64 = 300;

/// The registers the test owns: MM0, MM7, XMM0, XMM8 and XMM15 (low quadwords), MXCSR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Registers {
    mm0: u64,
    mm7: u64,
    xmm0: u64,
    xmm8: u64,
    xmm15: u64,
    mxcsr: u32,
}

impl Registers {
    /// Distinct values for `seed` in round `round`; the rounding mode (MXCSR bits 13–14)
    /// differs between seeds, with every exception still masked.
    fn for_round(seed: u64, round: u64) -> Registers {
        let base = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ round;
        Registers {
            mm0: base,
            mm7: base.rotate_left(13),
            xmm0: base.rotate_left(27),
            xmm8: !base,
            xmm15: base ^ 0x5555_aaaa_5555_aaaa,
            mxcsr: 0x1f80 | (((seed % 3) as u32 + 1) << 13),
        }
    }
}

fn write(registers: &Registers) {
    // SAFETY: moves values into MMX/XMM registers and MXCSR (a valid value: only the
    // rounding mode changes); this program keeps no floating-point values of its own in
    // them (it is built soft-float), and no memory is touched but the MXCSR operand.
    unsafe {
        asm!(
            "movq mm0, {mm0}",
            "movq mm7, {mm7}",
            "movq xmm0, {xmm0}",
            "movq xmm8, {xmm8}",
            "movq xmm15, {xmm15}",
            "ldmxcsr [{mxcsr}]",
            mm0 = in(reg) registers.mm0,
            mm7 = in(reg) registers.mm7,
            xmm0 = in(reg) registers.xmm0,
            xmm8 = in(reg) registers.xmm8,
            xmm15 = in(reg) registers.xmm15,
            mxcsr = in(reg) &registers.mxcsr,
            options(nostack, readonly),
        );
    }
}

fn read() -> Registers {
    let (mm0, mm7, xmm0, xmm8, xmm15): (u64, u64, u64, u64, u64);
    let mut mxcsr = 0u32;
    // SAFETY: only reads the registers and stores MXCSR into a local.
    unsafe {
        asm!(
            "movq {mm0}, mm0",
            "movq {mm7}, mm7",
            "movq {xmm0}, xmm0",
            "movq {xmm8}, xmm8",
            "movq {xmm15}, xmm15",
            "stmxcsr [{mxcsr}]",
            mm0 = out(reg) mm0,
            mm7 = out(reg) mm7,
            xmm0 = out(reg) xmm0,
            xmm8 = out(reg) xmm8,
            xmm15 = out(reg) xmm15,
            mxcsr = in(reg) &mut mxcsr,
            options(nostack),
        );
    }
    Registers {
        mm0,
        mm7,
        xmm0,
        xmm8,
        xmm15,
        mxcsr,
    }
}

/// The x87 control word.
fn x87_control_word() -> u16 {
    let mut word = 0u16;
    // SAFETY: FNSTCW stores the control word into the local.
    unsafe { asm!("fnstcw [{}]", in(reg) &mut word, options(nostack)) };
    word
}

fn run(seed: u64) -> Result<(), String> {
    let initial = read();
    let control = x87_control_word();
    let fresh = Registers {
        mm0: 0,
        mm7: 0,
        xmm0: 0,
        xmm8: 0,
        xmm15: 0,
        mxcsr: 0x1f80,
    };
    if initial != fresh || control != 0x37f {
        return Err(format!(
            "started with {initial:x?}, x87 control {control:#x}: not the initial state"
        ));
    }
    for round in 0..ROUNDS {
        let mine = Registers::for_round(seed, round);
        write(&mine);
        let _ = syscall::yield_now();
        let now = read();
        if now != mine {
            return Err(format!(
                "round {round}: wrote {mine:x?}, found {now:x?} after a yield"
            ));
        }
    }
    Ok(())
}

fn main(args: &str) -> i32 {
    let Ok(seed) = args.trim().parse::<u64>() else {
        println!("fpu_isolation: FAIL usage: fpu_isolation SEED (got '{args}')");
        return 2;
    };
    match run(seed) {
        Ok(()) => {
            println!(
                "fpu_isolation: PASS seed {seed}: initial state clean, {ROUNDS} rounds of \
                 MMX/XMM/MXCSR values kept across yields"
            );
            0
        }
        Err(reason) => {
            println!("fpu_isolation: FAIL seed {seed}: {reason}");
            1
        }
    }
}
