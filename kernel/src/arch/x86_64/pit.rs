//! The legacy 8254 PIT, used once at boot as a known-frequency reference to calibrate the TSC.

use super::cpu::{inb, outb, rdtsc};

/// The PIT's input clock in Hz.
const PIT_HZ: u64 = 1_193_182;
const CHANNEL2_DATA: u16 = 0x42;
const COMMAND: u16 = 0x43;
/// Port 0x61: bit 0 gates channel 2, bit 1 drives the speaker, bit 5 is channel 2's output.
const GATE_PORT: u16 = 0x61;
const CHANNEL2_OUTPUT: u8 = 1 << 5;

/// Measures TSC ticks per second by counting TSC ticks across `window_ms` milliseconds of
/// PIT channel 2 in one-shot mode. Returns `None` if the PIT never finishes (no PIT).
pub fn measure_tsc_hz(window_ms: u64) -> Option<u64> {
    let pit_ticks = PIT_HZ * window_ms / 1000;
    let pit_ticks = pit_ticks.clamp(1, 0xffff) as u16;
    // Gate low, speaker off, while programming.
    let gate = inb(GATE_PORT) & !0x03;
    outb(GATE_PORT, gate);
    outb(COMMAND, 0b1011_0000); // channel 2, lobyte/hibyte, mode 0 (one-shot), binary
    outb(CHANNEL2_DATA, pit_ticks as u8);
    outb(CHANNEL2_DATA, (pit_ticks >> 8) as u8);
    // Raising the gate starts the count.
    outb(GATE_PORT, gate | 0x01);
    let start = rdtsc();
    let mut polls: u64 = 0;
    while inb(GATE_PORT) & CHANNEL2_OUTPUT == 0 {
        polls += 1;
        if polls > 100_000_000 {
            return None;
        }
    }
    let end = rdtsc();
    outb(GATE_PORT, gate);
    let elapsed_tsc = end.wrapping_sub(start);
    Some(elapsed_tsc * PIT_HZ / u64::from(pit_ticks))
}
