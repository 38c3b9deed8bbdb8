//! Wrappers over x86-64 instructions: port I/O, MSRs, control registers, CPUID, TSC, halting.
//!
//! Every other part of the kernel reaches the CPU through this file (and the few
//! descriptor-table loaders beside it), so the kernel's inline assembly stays in one place.
//! Port I/O is the exception to "safe wrappers": a port write can reprogram any device
//! (the PIC, a DMA controller, …), so the raw port functions are `unsafe` and visible only
//! inside `arch::x86_64`; the rest of the kernel uses the device drivers beside this file
//! (`uart`, `pit`, `apic`, `debug_exit`), whose safe functions only touch their own device.

use core::arch::asm;

/// Writes a byte to an I/O port.
///
/// # Safety
/// `port` must belong to a device this kernel drives (a write to another one, say a DMA
/// controller, could change memory behind Rust's back), and the write must leave that
/// device in a state its driver expects.
pub(super) unsafe fn outb(port: u16, value: u8) {
    // SAFETY: port writes have no memory effects visible to Rust; the caller vouches for
    // the effect on the device.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    }
}

/// Reads a byte from an I/O port.
///
/// # Safety
/// As for `outb`: reading some device registers has side effects (it acknowledges or
/// consumes data), so the read must be one the device's driver expects.
pub(super) unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as for `outb`; a port read has no memory effects visible to Rust.
    unsafe {
        asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags))
    }
    value
}

/// Writes a 32-bit value to an I/O port.
///
/// # Safety
/// As for `outb`.
pub(super) unsafe fn outl(port: u16, value: u32) {
    // SAFETY: as for `outb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    }
}

/// Model-specific registers the kernel uses.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
pub enum Msr {
    ApicBase = 0x1b,
    Efer = 0xc000_0080,
    /// SYSCALL/SYSRET segment selectors.
    Star = 0xc000_0081,
    /// SYSCALL entry point.
    Lstar = 0xc000_0082,
    /// RFLAGS bits SYSCALL clears.
    SyscallFlagMask = 0xc000_0084,
    GsBase = 0xc000_0101,
    /// GS base swapped in by SWAPGS.
    KernelGsBase = 0xc000_0102,
    /// Architectural performance monitoring (only present when CPUID leaf 0xA reports a
    /// version ≥ 1; `nmi.rs` checks before touching them): general counter 0, its event
    /// select, and (version ≥ 2) the global control, status and overflow-clear registers.
    Pmc0 = 0xc1,
    PerfEventSelect0 = 0x186,
    PerfGlobalStatus = 0x38e,
    PerfGlobalControl = 0x38f,
    PerfGlobalOverflowClear = 0x390,
}

/// EFER bits.
pub const EFER_NXE: u64 = 1 << 11;

/// Reads a model-specific register.
pub fn rdmsr(msr: Msr) -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: `Msr` only names architectural MSRs; those that not every CPU has (the PMU's)
    // are read only after CPUID said they exist. Reading an MSR touches no memory.
    unsafe {
        asm!("rdmsr", in("ecx") msr as u32, out("eax") low, out("edx") high, options(nomem, nostack, preserves_flags))
    }
    (u64::from(high) << 32) | u64::from(low)
}

/// Writes a model-specific register.
///
/// # Safety
/// The value must keep the CPU in a state the kernel expects (e.g. never clear EFER.LME).
pub unsafe fn wrmsr(msr: Msr, value: u64) {
    // SAFETY: the caller guarantees the value is sound for this MSR.
    unsafe {
        asm!("wrmsr", in("ecx") msr as u32, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags))
    }
}

/// CR0 write-protect bit: supervisor writes honour read-only pages.
pub const CR0_WP: u64 = 1 << 16;
/// CR4 bits.
pub const CR4_PGE: u64 = 1 << 7;
pub const CR4_SMEP: u64 = 1 << 20;
pub const CR4_SMAP: u64 = 1 << 21;

pub fn read_cr0() -> u64 {
    let value: u64;
    // SAFETY: reading CR0 has no side effects.
    unsafe { asm!("mov {}, cr0", out(reg) value, options(nomem, nostack, preserves_flags)) }
    value
}

/// Faulting linear address of the last page fault.
pub fn read_cr2() -> u64 {
    let value: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) value, options(nomem, nostack, preserves_flags)) }
    value
}

/// Physical address of the active top-level page table (plus flag bits).
pub fn read_cr3() -> u64 {
    let value: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) value, options(nomem, nostack, preserves_flags)) }
    value
}

/// Switches to another top-level page table.
///
/// # Safety
/// `pml4_phys` must be a valid PML4 that maps the running code, its stack and all data the
/// kernel touches afterwards at the same virtual addresses.
#[inline(always)]
pub unsafe fn write_cr3(pml4_phys: u64) {
    // SAFETY: the caller guarantees the new tables keep the kernel mapped.
    unsafe { asm!("mov cr3, {}", in(reg) pml4_phys, options(nostack, preserves_flags)) }
}

pub fn read_cr4() -> u64 {
    let value: u64;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) value, options(nomem, nostack, preserves_flags)) }
    value
}

/// Sets bits in CR4.
///
/// # Safety
/// The bits must be supported by the CPU (else #GP) and the kernel must be ready for them
/// (e.g. SMAP forbids supervisor access to user pages).
pub unsafe fn set_cr4_bits(bits: u64) {
    let value = read_cr4() | bits;
    // SAFETY: the caller guarantees the bits are supported and wanted.
    unsafe { asm!("mov cr4, {}", in(reg) value, options(nostack, preserves_flags)) }
}

/// Result of one CPUID leaf.
#[derive(Clone, Copy, Debug)]
pub struct CpuidResult {
    pub eax: u32,
    pub ebx: u32,
    pub edx: u32,
}

/// The highest basic CPUID leaf.
pub fn max_cpuid_leaf() -> u32 {
    cpuid(0, 0).eax
}

/// Executes CPUID for `leaf`/`subleaf`.
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    let result = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    CpuidResult {
        eax: result.eax,
        ebx: result.ebx,
        edx: result.edx,
    }
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is unprivileged here (CR4.TSD clear) and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Disables maskable interrupts.
pub fn disable_interrupts() {
    // SAFETY: clearing IF only delays interrupt delivery.
    unsafe { asm!("cli", options(nomem, nostack)) }
}

/// Enables interrupts and halts until the next one arrives, atomically (no lost wake-up),
/// then disables them again: the kernel itself always runs with interrupts off.
pub fn wait_for_interrupt() {
    // SAFETY: STI takes effect after the next instruction, so an interrupt pending now
    // wakes the HLT instead of being taken before it; handlers are installed by then.
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) }
}

/// Stops this CPU for good (interrupts off, halt forever).
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: with interrupts disabled HLT only wakes for NMI/SMI, after which we halt again.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}

/// The current frame pointer (RBP); the start of a backtrace of the caller.
#[inline(always)]
pub fn frame_pointer() -> u64 {
    let rbp: u64;
    // SAFETY: reading RBP has no side effects; the kernel is built with frame pointers.
    unsafe { asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags)) }
    rbp
}

/// Executes `div` with a zero divisor, raising #DE — for the fault-dump self-test only.
/// (Rust's `/` checks for zero and panics instead, so this needs the raw instruction.)
#[inline(never)]
pub fn divide_by_zero_for_selftest(dividend: u64) -> u64 {
    let quotient: u64;
    // SAFETY: the resulting #DE is handled by the exception handler, which reports it and
    // stops the machine; no memory is touched.
    unsafe {
        asm!("xor edx, edx", "xor ecx, ecx", "div rcx",
            inout("rax") dividend => quotient, out("rcx") _, out("rdx") _,
            options(nomem, nostack))
    }
    quotient
}

/// Invalidates the TLB entry for one virtual address.
pub fn invlpg(virt: u64) {
    // SAFETY: dropping a TLB entry only forces a fresh page-table walk.
    unsafe { asm!("invlpg [{}]", in(reg) virt, options(nostack, preserves_flags)) }
}

/// CPU features the kernel cares about, read once at boot.
#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    pub nx: bool,
    pub smep: bool,
    pub smap: bool,
    pub pge: bool,
    pub invariant_tsc: bool,
    pub apic: bool,
}

impl Features {
    pub fn detect() -> Features {
        let max_leaf = cpuid(0, 0).eax;
        let max_ext = cpuid(0x8000_0000, 0).eax;
        let leaf1 = cpuid(1, 0);
        let leaf7 = if max_leaf >= 7 {
            cpuid(7, 0)
        } else {
            CpuidResult {
                eax: 0,
                ebx: 0,
                edx: 0,
            }
        };
        let ext1 = if max_ext >= 0x8000_0001 {
            cpuid(0x8000_0001, 0).edx
        } else {
            0
        };
        let ext7 = if max_ext >= 0x8000_0007 {
            cpuid(0x8000_0007, 0).edx
        } else {
            0
        };
        Features {
            nx: ext1 & (1 << 20) != 0,
            smep: leaf7.ebx & (1 << 7) != 0,
            smap: leaf7.ebx & (1 << 20) != 0,
            pge: leaf1.edx & (1 << 13) != 0,
            apic: leaf1.edx & (1 << 9) != 0,
            invariant_tsc: ext7 & (1 << 8) != 0,
        }
    }
}
