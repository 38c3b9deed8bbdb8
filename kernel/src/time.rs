//! Kernel time: a nanosecond clock from the TSC (calibrated at boot) and the periodic tick count.

use crate::arch::{cpu, pit};
use core::sync::atomic::{AtomicU64, Ordering};

/// Frequency of the periodic timer interrupt.
pub const TICK_HZ: u32 = 100;
/// Length of the PIT window used to calibrate the TSC.
const CALIBRATION_WINDOW_MS: u64 = 20;

static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per TSC tick as a 32.32 fixed-point number, so a conversion is one
/// multiplication instead of a 128-bit division (which is a software routine).
static NS_PER_TICK_FIXED: AtomicU64 = AtomicU64::new(0);
const FIXED_POINT_SHIFT: u32 = 32;
static TICKS: AtomicU64 = AtomicU64::new(0);
/// `now_ns()` at the last timer tick (for the watchdog's report).
static LAST_TICK_NS: AtomicU64 = AtomicU64::new(0);

/// Marks "time zero": called first thing at boot.
pub fn mark_boot() {
    BOOT_TSC.store(cpu::rdtsc(), Ordering::Relaxed);
}

/// Calibrates the TSC against the PIT. Returns the frequency in Hz, or `None` when no PIT
/// answered (then the clock stays at zero and timestamps read 0).
pub fn calibrate_tsc() -> Option<u64> {
    let hz = pit::measure_tsc_hz(CALIBRATION_WINDOW_MS)?.max(1);
    TSC_HZ.store(hz, Ordering::Relaxed);
    NS_PER_TICK_FIXED.store(ns_per_tick_fixed(hz), Ordering::Relaxed);
    Some(hz)
}

/// 10^9 / hz in 32.32 fixed point (hz ≥ 1 MHz keeps it below 2^42).
const fn ns_per_tick_fixed(hz: u64) -> u64 {
    ((1_000_000_000u128 << FIXED_POINT_SHIFT) / hz as u128) as u64
}

/// Calibrated TSC frequency in Hz (0 before calibration).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Converts a TSC delta to nanoseconds (0 before calibration). The relative error of the
/// fixed-point factor is below 2^-30 at any TSC rate above 1 MHz.
pub fn tsc_to_ns(tsc_delta: u64) -> u64 {
    let factor = NS_PER_TICK_FIXED.load(Ordering::Relaxed);
    ((u128::from(tsc_delta) * u128::from(factor)) >> FIXED_POINT_SHIFT) as u64
}

/// Nanoseconds since boot.
pub fn now_ns() -> u64 {
    ns_at(cpu::rdtsc())
}

/// Nanoseconds since boot at TSC value `tsc` (read earlier by the caller, so one read can
/// serve the CPU accounting and a trace timestamp).
#[inline]
pub fn ns_at(tsc: u64) -> u64 {
    tsc_to_ns(tsc.wrapping_sub(BOOT_TSC.load(Ordering::Relaxed)))
}

/// Called by the timer interrupt.
pub fn on_timer_tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
    LAST_TICK_NS.store(now_ns(), Ordering::Relaxed);
}

/// Kernel time of the last timer tick (0 before the first).
pub fn last_tick_ns() -> u64 {
    LAST_TICK_NS.load(Ordering::Relaxed)
}

/// Timer interrupts since the timer started.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}
