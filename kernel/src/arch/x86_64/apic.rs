//! Local APIC (periodic timer, end-of-interrupt, the LVT entries the NMI watchdog routes) and
//! the legacy 8259 PIC, which is masked except for IRQ 0 when the watchdog uses the PIT.

use super::cpu::{inb, outb, rdmsr, rdtsc, wrmsr, Msr};
use super::paging::phys_to_virt;
use core::sync::atomic::{AtomicU64, Ordering};

/// Vector of the local APIC timer.
pub const TIMER_VECTOR: u8 = 0x30;
/// Vector of COM2's receive interrupt (ISA IRQ 3, routed through the I/O APIC).
pub const MONITOR_RECEIVE_VECTOR: u8 = 0x31;
/// Vector the local APIC uses for spurious interrupts.
pub const SPURIOUS_VECTOR: u8 = 0xff;

const REG_ID: u64 = 0x20;
const REG_EOI: u64 = 0xb0;
const REG_SPURIOUS: u64 = 0xf0;
const REG_LVT_TIMER: u64 = 0x320;
const REG_LVT_PERF_COUNTER: u64 = 0x340;
const REG_LVT_LINT0: u64 = 0x350;
const REG_TIMER_INITIAL: u64 = 0x380;
const REG_TIMER_CURRENT: u64 = 0x390;
const REG_TIMER_DIVIDE: u64 = 0x3e0;

const APIC_BASE_ENABLE: u64 = 1 << 11;
const SOFTWARE_ENABLE: u32 = 1 << 8;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
const DIVIDE_BY_16: u32 = 0b0011;
/// LVT delivery mode NMI (bits 10:8 = 100): the vector field is ignored.
const LVT_DELIVERY_NMI: u32 = 0b100 << 8;

const PIC1_COMMAND: u16 = 0x20;
const PIC1_DATA: u16 = 0x21;
const PIC2_COMMAND: u16 = 0xa0;
const PIC2_DATA: u16 = 0xa1;
/// OCW3 with the poll bit: the next read of the command port acts as an interrupt
/// acknowledge and returns the highest pending line (bit 7 = one was pending).
const PIC_OCW3_POLL: u8 = 0x0c;
const PIC_POLL_PENDING: u8 = 0x80;
const PIC_NON_SPECIFIC_EOI: u8 = 0x20;

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

/// This CPU's local APIC id (the destination the I/O APIC's entries name).
pub fn local_id() -> u8 {
    (read_register(REG_ID) >> 24) as u8
}

/// Signals end of interrupt to the local APIC.
pub fn end_of_interrupt() {
    write_register(REG_EOI, 0);
}

/// Routes the local APIC's LINT0 pin (wired to the 8259's INT output) as an edge-triggered
/// NMI, instead of the ExtINT "virtual wire" the firmware leaves there. Nothing reaches
/// LINT0 until a PIC line is unmasked.
pub fn route_lint0_as_nmi() {
    write_register(REG_LVT_LINT0, LVT_DELIVERY_NMI);
}

/// Makes a performance-counter overflow deliver an NMI. The CPU masks this entry each time
/// it delivers one, so the NMI handler calls this again to re-arm it.
pub fn route_perf_counter_as_nmi() {
    write_register(REG_LVT_PERF_COUNTER, LVT_DELIVERY_NMI);
}

/// Unmasks IRQ 0 (PIT channel 0) on the master 8259, all other lines stay masked. With
/// LINT0 in NMI mode each PIT edge becomes an NMI; the CPU never acknowledges it as an
/// interrupt, so `claim_pic_irq0` must.
pub fn unmask_pic_irq0() {
    // SAFETY: the master PIC's data port; only IRQ 0 is unmasked, and its output goes to
    // LINT0, which `route_lint0_as_nmi` has made an NMI (no vector is ever fetched).
    unsafe { outb(PIC1_DATA, 0xfe) }
}

/// Acknowledges a pending IRQ 0 on the master 8259 (poll, then end of interrupt) and says
/// whether one was pending: an NMI through LINT0 skips the INTA cycle, so without this the
/// request would stay latched and the next PIT edge would not reach the CPU.
pub fn claim_pic_irq0() -> bool {
    // SAFETY: the master PIC's command port: OCW3 (poll), the poll read and a non-specific
    // EOI, the sequence the 8259 defines for polled operation; only IRQ 0 is unmasked.
    unsafe {
        outb(PIC1_COMMAND, PIC_OCW3_POLL);
        let poll = inb(PIC1_COMMAND);
        if poll & PIC_POLL_PENDING == 0 {
            return false;
        }
        outb(PIC1_COMMAND, PIC_NON_SPECIFIC_EOI);
        poll & 0x07 == 0
    }
}
