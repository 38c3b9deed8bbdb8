//! The I/O APIC: routes one ISA interrupt line (COM2's IRQ 3) to a local APIC vector.
//!
//! The legacy 8259 cannot carry device interrupts in Vigil: its output is wired to LINT0,
//! which the NMI watchdog turns into an NMI. Device lines therefore go through the I/O
//! APIC, which the kernel finds at the address every PC chipset and QEMU's `pc` and `q35`
//! machines use (0xfec0_0000; the kernel reads no ACPI tables), checked by its version
//! register before use. Every redirection entry but the ones routed here stays masked.

use super::paging::phys_to_virt;
use core::sync::atomic::{AtomicU64, Ordering};

/// Physical address of the I/O APIC's register window.
const IOAPIC_PHYS: u64 = 0xfec0_0000;
/// Offsets in the window: write a register index to IOREGSEL, then read or write IOWIN.
const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
/// Register indices.
const REG_VERSION: u32 = 0x01;
const REG_REDIRECTION_BASE: u32 = 0x10;
/// Redirection entry bit: the line is masked.
const ENTRY_MASKED: u32 = 1 << 16;

/// Virtual address of the register window, 0 until `init` found the I/O APIC.
static BASE: AtomicU64 = AtomicU64::new(0);

fn select_and_write(base: u64, index: u32, value: u32) {
    // SAFETY: `base` maps the I/O APIC's register window (device memory, uncached in the
    // direct map); IOREGSEL/IOWIN are its two architectural registers, and the kernel runs
    // with interrupts off on one CPU, so the select-then-access pair is not interleaved.
    unsafe {
        core::ptr::write_volatile((base + IOREGSEL) as *mut u32, index);
        core::ptr::write_volatile((base + IOWIN) as *mut u32, value);
    }
}

fn select_and_read(base: u64, index: u32) -> u32 {
    // SAFETY: as for `select_and_write`.
    unsafe {
        core::ptr::write_volatile((base + IOREGSEL) as *mut u32, index);
        core::ptr::read_volatile((base + IOWIN) as *const u32)
    }
}

/// Finds the I/O APIC and masks every line. Returns the number of lines it has, or `None`
/// when none answers at the standard address (device lines then stay unused and their
/// drivers poll).
pub fn init() -> Option<u32> {
    let base = phys_to_virt(IOAPIC_PHYS);
    let version = select_and_read(base, REG_VERSION);
    // Bits 7:0 are the version (0x11 for the 82093AA, 0x20 for the ICH's and QEMU's q35),
    // bits 23:16 the highest entry. An absent device reads as all ones (or zeros).
    let lines = ((version >> 16) & 0xff) + 1;
    if version == u32::MAX || !(0x10..=0x2f).contains(&(version & 0xff)) || lines < 16 {
        return None;
    }
    for line in 0..lines {
        select_and_write(base, REG_REDIRECTION_BASE + 2 * line, ENTRY_MASKED);
        select_and_write(base, REG_REDIRECTION_BASE + 2 * line + 1, 0);
    }
    BASE.store(base, Ordering::Relaxed);
    Some(lines)
}

/// Delivers ISA line `irq` (edge-triggered, active high, as ISA lines are; QEMU maps ISA
/// lines 1–15 to the same input) as `vector` to the local APIC with id `apic_id`, in fixed
/// delivery mode. False if `init` found no I/O APIC.
pub fn route_isa_line(irq: u8, vector: u8, apic_id: u8) -> bool {
    let base = BASE.load(Ordering::Relaxed);
    if base == 0 {
        return false;
    }
    let index = REG_REDIRECTION_BASE + 2 * u32::from(irq);
    select_and_write(base, index + 1, u32::from(apic_id) << 24);
    select_and_write(base, index, u32::from(vector));
    true
}
