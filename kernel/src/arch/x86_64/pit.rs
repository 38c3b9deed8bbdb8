//! The legacy 8254 PIT: channel 2 is a known-frequency reference to calibrate the TSC at
//! boot; channel 0 can drive the NMI watchdog (through the 8259 and LINT0, `nmi.rs`).

use super::cpu::{self, rdtsc};

/// The PIT's input clock in Hz.
const PIT_HZ: u64 = 1_193_182;
/// The ports this module uses.
#[derive(Clone, Copy)]
#[repr(u16)]
enum Port {
    Channel0Data = 0x40,
    Channel2Data = 0x42,
    Command = 0x43,
    /// Port 0x61: bit 0 gates channel 2, bit 1 drives the speaker, bit 5 is channel 2's
    /// output.
    Gate = 0x61,
}
const CHANNEL2_OUTPUT: u8 = 1 << 5;
/// Longest channel-0 period: the divisor is 16 bits (65536 written as 0).
pub const MAX_CHANNEL0_PERIOD_NS: u64 = 65_536 * 1_000_000_000 / PIT_HZ;

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

/// Starts channel 0 as a square wave (mode 3) of about `period_ns` (at most
/// `MAX_CHANNEL0_PERIOD_NS`), one rising edge per period on IRQ 0. Returns the period it
/// runs at, in nanoseconds.
pub fn start_channel0(period_ns: u64) -> u64 {
    let divisor = (PIT_HZ * period_ns / 1_000_000_000).clamp(2, 65_536);
    // A square wave has its rising edge once a period and its falling edge half a period
    // later, by when the NMI handler has acknowledged the 8259 (`apic::claim_pic_irq0`).
    write(Port::Command, 0b0011_0110); // channel 0, lobyte/hibyte, mode 3, binary
    let written = (divisor & 0xffff) as u16; // 65536 is written as 0
    write(Port::Channel0Data, written as u8);
    write(Port::Channel0Data, (written >> 8) as u8);
    divisor * 1_000_000_000 / PIT_HZ
}
