//! The legacy 8254 PIT, used once at boot as a known-frequency reference to calibrate the TSC.

use super::cpu::{self, rdtsc};

/// The PIT's input clock in Hz.
const PIT_HZ: u64 = 1_193_182;
/// The ports this module uses.
#[derive(Clone, Copy)]
#[repr(u16)]
enum Port {
    Channel2Data = 0x42,
    Command = 0x43,
    /// Port 0x61: bit 0 gates channel 2, bit 1 drives the speaker, bit 5 is channel 2's
    /// output.
    Gate = 0x61,
}
const CHANNEL2_OUTPUT: u8 = 1 << 5;

/// Writes a PIT port or the gate port.
fn write(port: Port, value: u8) {
    // SAFETY: the PIT is programmed only here, and of port 0x61 this module changes only
    // the channel-2 gate and speaker bits (it writes the others back as it read them);
    // neither device can reach memory.
    unsafe { cpu::outb(port as u16, value) }
}

/// Reads the gate port (0x61).
fn read_gate() -> u8 {
    // SAFETY: reading port 0x61 has no side effects.
    unsafe { cpu::inb(Port::Gate as u16) }
}

/// Measures TSC ticks per second by counting TSC ticks across `window_ms` milliseconds of
/// PIT channel 2 in one-shot mode. Returns `None` if the PIT never finishes (no PIT).
pub fn measure_tsc_hz(window_ms: u64) -> Option<u64> {
    let pit_ticks = PIT_HZ * window_ms / 1000;
    let pit_ticks = pit_ticks.clamp(1, 0xffff) as u16;
    // Gate low, speaker off, while programming.
    let gate = read_gate() & !0x03;
    write(Port::Gate, gate);
    write(Port::Command, 0b1011_0000); // channel 2, lobyte/hibyte, mode 0 (one-shot), binary
    write(Port::Channel2Data, pit_ticks as u8);
    write(Port::Channel2Data, (pit_ticks >> 8) as u8);
    // Raising the gate starts the count.
    write(Port::Gate, gate | 0x01);
    let start = rdtsc();
    let mut polls: u64 = 0;
    while read_gate() & CHANNEL2_OUTPUT == 0 {
        polls += 1;
        if polls > 100_000_000 {
            return None;
        }
    }
    let end = rdtsc();
    write(Port::Gate, gate);
    let elapsed_tsc = end.wrapping_sub(start);
    Some(elapsed_tsc * PIT_HZ / u64::from(pit_ticks))
}
