//! Local APIC (periodic timer, end-of-interrupt) and the legacy 8259 PIC, which is masked.

use super::cpu::{outb, rdmsr, rdtsc, wrmsr, Msr};
use super::paging::phys_to_virt;
use core::sync::atomic::{AtomicU64, Ordering};

/// Vector of the local APIC timer.
pub const TIMER_VECTOR: u8 = 0x30;
/// Vector the local APIC uses for spurious interrupts.
pub const SPURIOUS_VECTOR: u8 = 0xff;

const REG_EOI: u64 = 0xb0;
const REG_SPURIOUS: u64 = 0xf0;
const REG_LVT_TIMER: u64 = 0x320;
const REG_TIMER_INITIAL: u64 = 0x380;
const REG_TIMER_CURRENT: u64 = 0x390;
const REG_TIMER_DIVIDE: u64 = 0x3e0;

const APIC_BASE_ENABLE: u64 = 1 << 11;
const SOFTWARE_ENABLE: u32 = 1 << 8;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
const DIVIDE_BY_16: u32 = 0b0011;

/// Virtual address of the local APIC registers (0 until `init`).
static LAPIC_BASE: AtomicU64 = AtomicU64::new(0);

fn write_register(offset: u64, value: u32) {
    let base = LAPIC_BASE.load(Ordering::Relaxed);
    debug_assert!(base != 0, "local APIC used before init");
    // SAFETY: `base` maps the local APIC's 4 KiB register page (uncached, via the direct
    // map) and `offset` is one of the architectural register offsets above.
    unsafe { core::ptr::write_volatile((base + offset) as *mut u32, value) }
}

fn read_register(offset: u64) -> u32 {
    let base = LAPIC_BASE.load(Ordering::Relaxed);
    // SAFETY: as for `write_register`.
    unsafe { core::ptr::read_volatile((base + offset) as *const u32) }
}

/// Remaps the 8259 PICs away from the exception vectors (to 0x20..0x2f) and masks every
/// line, so only the local APIC delivers interrupts.
pub fn disable_legacy_pic() {
    const PIC1_COMMAND: u16 = 0x20;
    const PIC1_DATA: u16 = 0x21;
    const PIC2_COMMAND: u16 = 0xa0;
    const PIC2_DATA: u16 = 0xa1;
    // SAFETY: the standard 8259 initialisation sequence on the two PICs' own ports; the
    // PICs are programmed nowhere else, and with every line masked they deliver nothing.
    unsafe {
        outb(PIC1_COMMAND, 0x11); // ICW1: init, expect ICW4
        outb(PIC2_COMMAND, 0x11);
        outb(PIC1_DATA, 0x20); // ICW2: vector offsets
        outb(PIC2_DATA, 0x28);
        outb(PIC1_DATA, 0x04); // ICW3: slave on IRQ 2
        outb(PIC2_DATA, 0x02);
        outb(PIC1_DATA, 0x01); // ICW4: 8086 mode
        outb(PIC2_DATA, 0x01);
        outb(PIC1_DATA, 0xff); // mask everything
        outb(PIC2_DATA, 0xff);
    }
}

/// Enables the local APIC. Returns its physical base address.
pub fn init() -> u64 {
    let apic_base_msr = rdmsr(Msr::ApicBase);
    let phys = apic_base_msr & 0x000f_ffff_ffff_f000;
    // SAFETY: setting the global-enable bit of IA32_APIC_BASE keeps the same base address.
    unsafe { wrmsr(Msr::ApicBase, apic_base_msr | APIC_BASE_ENABLE) };
    LAPIC_BASE.store(phys_to_virt(phys), Ordering::Relaxed);
    write_register(REG_SPURIOUS, SOFTWARE_ENABLE | u32::from(SPURIOUS_VECTOR));
    phys
}

/// Measures the APIC timer rate against the (calibrated) TSC and starts it in periodic
/// mode at `hz`. Returns the timer's input rate in ticks per second.
pub fn start_periodic_timer(hz: u32, tsc_hz: u64) -> u64 {
    write_register(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    write_register(REG_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    write_register(REG_TIMER_INITIAL, u32::MAX);
    let window_tsc = tsc_hz / 100; // 10 ms
    let start = rdtsc();
    while rdtsc().wrapping_sub(start) < window_tsc {
        core::hint::spin_loop();
    }
    let counted = u64::from(u32::MAX - read_register(REG_TIMER_CURRENT));
    let elapsed_tsc = rdtsc().wrapping_sub(start);
    let timer_hz = if elapsed_tsc == 0 {
        0
    } else {
        (u128::from(counted) * u128::from(tsc_hz) / u128::from(elapsed_tsc)) as u64
    };
    let initial = (timer_hz / u64::from(hz)).clamp(1, u64::from(u32::MAX)) as u32;
    write_register(REG_LVT_TIMER, LVT_PERIODIC | u32::from(TIMER_VECTOR));
    write_register(REG_TIMER_INITIAL, initial);
    timer_hz
}

/// Signals end of interrupt to the local APIC.
pub fn end_of_interrupt() {
    write_register(REG_EOI, 0);
}
